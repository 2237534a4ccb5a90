import { watch, type FSWatcher } from 'node:fs';
import { readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isMessageId } from './ids.js';
import type { Spool, SpoolEntry, StateDir } from './spool.js';
import { stateOf } from './spool.js';
import type { MessageMeta } from './types.js';

/** An administrator's request that cannot be done, with the reason in plain words. */
export class QueueCommandError extends Error {
  override readonly name = 'QueueCommandError';
}

const WAKEUP_FILE = 'wakeup';

/**
 * The `queue` commands, safe while the daemon runs. A command first takes the message with an
 * atomic rename into admin/ (the same kind of claim the worker makes), so the two never act on
 * one message at once; a message being delivered right now is refused with "try again". After a
 * change, the daemon is woken through a control file it watches, and reschedules from disk.
 */
export class QueueAdmin {
  constructor(private readonly spool: Spool) {}

  async find(id: string): Promise<{ entry: SpoolEntry; dir: StateDir } | null> {
    checkId(id);
    for (const dir of ['queue', 'active', 'hold', 'failed', 'admin'] as const) {
      try {
        const meta = await this.spool.readMeta(dir, id);
        return { entry: { meta, state: stateOf(dir, meta) }, dir };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    return null;
  }

  /** The metadata and the message's header block, for `queue show`. */
  async show(id: string): Promise<{ entry: SpoolEntry; headers: string }> {
    const found = await this.require(id);
    const data = await readFile(this.spool.dataPath(id)).catch(() => Buffer.alloc(0));
    const text = data.subarray(0, 64 * 1024).toString('latin1');
    const end = text.search(/\r?\n\r?\n/);
    return { entry: found.entry, headers: end === -1 ? text : text.slice(0, end) };
  }

  /** A failed, held or deferred message goes back to the queue, due now. */
  async retry(id: string): Promise<void> {
    const { meta, from } = await this.take(id, ['failed', 'queue', 'hold']);
    const now = new Date().toISOString();
    const next: MessageMeta = {
      ...meta,
      nextAttemptAt: null,
      failedAt: undefined,
      requeuedAt: from === 'failed' ? now : meta.requeuedAt,
      recipients: meta.recipients.map((r) => (r.status === 'failed' ? { address: r.address, status: 'pending' } : r)),
    };
    await this.put(next, 'queue');
  }

  /** `queue retry --all`: every deferred and failed message, due now. Returns how many. */
  async retryAll(): Promise<number> {
    let count = 0;
    for (const dir of ['queue', 'failed'] as const) {
      for (const id of await this.spool.ids(dir)) {
        try {
          await this.retry(id);
          count++;
        } catch (err) {
          if (!(err instanceof QueueCommandError)) throw err; // taken by the worker meanwhile: it is being tried anyway
        }
      }
    }
    return count;
  }

  async hold(id: string): Promise<void> {
    const { meta } = await this.take(id, ['queue']);
    await this.put(meta, 'hold');
  }

  async release(id: string): Promise<void> {
    const { meta } = await this.take(id, ['hold']);
    await this.put({ ...meta, nextAttemptAt: null }, 'queue');
  }

  /** Removes a message for good (queued, deferred, held or failed). */
  async delete(id: string): Promise<void> {
    await this.take(id, ['queue', 'hold', 'failed']);
    await unlink(this.spool.dataPath(id)).catch(() => undefined);
    await unlink(this.spool.metaPath('admin', id));
  }

  /** Tells a running daemon to re-read the queue from disk. */
  async wakeDaemon(): Promise<void> {
    await writeFile(join(this.spool.dir, 'control', WAKEUP_FILE), `${Date.now()}\n`, { mode: 0o600 });
  }

  private async require(id: string): Promise<{ entry: SpoolEntry; dir: StateDir }> {
    const found = await this.find(id);
    if (!found) throw new QueueCommandError(`no message ${id} in the spool (see: queue list)`);
    return found;
  }

  private async take(id: string, allowed: StateDir[]): Promise<{ meta: MessageMeta; from: StateDir }> {
    const found = await this.require(id);
    if (found.dir === 'active' || found.dir === 'admin') {
      throw new QueueCommandError(`message ${id} is being delivered right now; try again in a moment`);
    }
    if (!allowed.includes(found.dir)) {
      throw new QueueCommandError(`message ${id} is ${describeDir(found.dir)}; this command applies to ${allowed.map(describeDir).join(' or ')} messages`);
    }
    if (!(await this.spool.moveMeta(found.dir, 'admin', id))) {
      throw new QueueCommandError(`message ${id} changed state meanwhile (being delivered?); try again`);
    }
    return { meta: await this.spool.readMeta('admin', id), from: found.dir };
  }

  private async put(meta: MessageMeta, to: StateDir): Promise<void> {
    await this.spool.writeMeta(to, meta);
    await rm(this.spool.metaPath('admin', meta.id), { force: true });
  }
}

/** Calls `onWake` (debounced) whenever a queue command pokes the daemon. Returns a stop function. */
export function watchWakeups(spool: Spool, onWake: () => void): () => void {
  let timer: NodeJS.Timeout | null = null;
  let watcher: FSWatcher | null = null;
  try {
    watcher = watch(join(spool.dir, 'control'), () => {
      if (timer) return;
      timer = setTimeout(() => {
        timer = null;
        onWake();
      }, 50);
    });
    watcher.on('error', () => undefined);
  } catch {
    // No inotify: the periodic rescan still picks changes up.
  }
  return () => {
    if (timer) clearTimeout(timer);
    watcher?.close();
  };
}

function checkId(id: string): void {
  if (!isMessageId(id)) throw new QueueCommandError(`"${id}" is not a message id (ids look like ${'0MIB2K3F4A1B2C3D4E5'})`);
}

function describeDir(dir: StateDir): string {
  return dir === 'queue' ? 'queued or deferred' : dir === 'hold' ? 'held' : dir;
}
