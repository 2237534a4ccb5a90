import { fsyncPath } from './fd.js';

/**
 * fsyncs a directory so that renames and unlinks in it survive a power loss.
 * Concurrent requests for the same directory share one fsync (group commit): a request that arrives
 * while a sync is running waits for the next one, which then covers every change made before it began.
 */
export class DirectorySyncer {
  private readonly state = new Map<string, { running: Promise<void> | null; next: Promise<void> | null }>();

  sync(dir: string): Promise<void> {
    let entry = this.state.get(dir);
    if (!entry) {
      entry = { running: null, next: null };
      this.state.set(dir, entry);
    }
    const slot = entry;
    if (slot.next) return slot.next;
    if (!slot.running) {
      slot.running = fsyncPath(dir).finally(() => {
        slot.running = null;
      });
      return slot.running;
    }
    slot.next = slot.running
      .catch(() => undefined)
      .then(() => {
        slot.next = null;
        slot.running = fsyncPath(dir).finally(() => {
          slot.running = null;
        });
        return slot.running;
      });
    return slot.next;
  }
}
