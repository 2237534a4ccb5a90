import { statfs } from 'node:fs/promises';

/**
 * Whether the spool's filesystem has room for more mail: free space above the configured reserve.
 * The answer is cached for a moment so that a burst of connections costs one statfs, and it is
 * re-read after that, so acceptance resumes by itself when space returns.
 */
export class SpaceGuard {
  private checkedAt = 0;
  private lastFree = Number.POSITIVE_INFINITY;
  private pending: Promise<number> | null = null;

  constructor(
    private readonly dir: string,
    private readonly reserveBytes: number,
    private readonly cacheMs = 1000,
  ) {}

  /** Free bytes available to this process, at most `cacheMs` old. */
  async freeBytes(): Promise<number> {
    if (Date.now() - this.checkedAt < this.cacheMs) return this.lastFree;
    this.pending ??= statfs(this.dir)
      .then((s) => {
        this.lastFree = Number(s.bavail) * Number(s.bsize);
        this.checkedAt = Date.now();
        return this.lastFree;
      })
      .finally(() => {
        this.pending = null;
      });
    return this.pending;
  }

  /** True when a message of `expectedSize` bytes still leaves the reserve free. */
  async hasRoom(expectedSize = 0): Promise<boolean> {
    if (this.reserveBytes <= 0 && expectedSize <= 0) return true;
    try {
      return (await this.freeBytes()) - expectedSize >= this.reserveBytes;
    } catch {
      return true; // statfs unsupported: the write itself will report a full disk
    }
  }
}
