import { watch, type FSWatcher } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { isMessageId } from './ids.js';
import type { Spool, SpoolEntry, StateDir } from './spool.js';
import { parseMeta, stateOf } from './spool.js';
import type { MessageMeta } from './types.js';

/** An administrator's request that cannot be done, with the reason in plain words. */
export class QueueCommandError extends Error {
  override readonly name = 'QueueCommandError';
}

const WAKEUP_FILE = 'wakeup';
/** Queue commands leave a record here for the daemon's log (control/actions/<time>-<id>-<rand>.json). */
const ACTIONS_DIR = 'actions';

export type AdminActionName = 'retry' | 'hold' | 'release' | 'delete' | 'restore';

/** What an administrator did, for the daemon's log: a message's history never just ends. */
export interface AdminAction {
  action: AdminActionName;
  msgId: string;
  user: string;
  pid: number;
  at: string;
}

/**
 * The `queue` commands, safe while the daemon runs. A command first takes the message with an
 * atomic rename into admin/ (the same kind of claim the worker makes), so the two never act on
 * one message at once; a message being delivered right now is refused with "try again". After a
 * change, the daemon is woken through a control file it watches, and reschedules from disk.
 */
export class QueueAdmin {
  /** `user`: who acts, as recorded (the web console's administrator); default the user running the command. */
  constructor(
    private readonly spool: Spool,
    private readonly options: { user?: string } = {},
  ) {}

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
    await this.record('retry', id);
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
    await this.record('hold', id);
  }

  async release(id: string): Promise<void> {
    const { meta } = await this.take(id, ['hold']);
    await this.put({ ...meta, nextAttemptAt: null }, 'queue');
    await this.record('release', id);
  }

  /** Removes a message for good (queued, deferred, held or failed). */
  async delete(id: string): Promise<void> {
    await this.take(id, ['queue', 'hold', 'failed']);
    // Metadata first: a crash in between leaves data without metadata, which recovery removes.
    await unlink(this.spool.metaPath('admin', id));
    await unlink(this.spool.dataPath(id)).catch(() => undefined);
    await this.record('delete', id);
  }

  /**
   * Puts a message from corrupt/ back in the queue, due now, once its files are whole again (the
   * metadata readable and valid, the data present). Refused with the reason otherwise.
   */
  async restore(id: string): Promise<void> {
    checkId(id);
    let meta: MessageMeta;
    try {
      meta = parseMeta(await readFile(this.spool.corruptPath(id, 'json'), 'utf8'), id);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new QueueCommandError(`no message ${id} in corrupt/ (see: queue list)`);
      if (code === 'EACCES') throw new QueueCommandError(`cannot read ${this.spool.corruptPath(id, 'json')}: give it to the spool's owner (chown) and run restore again`);
      throw new QueueCommandError(`${this.spool.corruptPath(id, 'json')} is not valid metadata (${(err as Error).message}); it cannot be restored`);
    }
    const data = this.spool.dataPath(id);
    try {
      await rename(this.spool.corruptPath(id, 'eml'), data);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // Not in corrupt/: only fine if the data file is still (or again) in data/.
      if (!(await readFile(data).then(() => true, () => false))) {
        throw new QueueCommandError(`the data of ${id} is missing (neither ${this.spool.corruptPath(id, 'eml')} nor ${data}): it cannot be restored`);
      }
    }
    await this.spool.writeMeta('queue', { ...meta, nextAttemptAt: null });
    await rm(this.spool.corruptPath(id, 'json'), { force: true });
    await this.record('restore', id);
  }

  private async record(action: AdminActionName, msgId: string): Promise<void> {
    const entry: AdminAction = { action, msgId, user: this.options.user ?? actingUser(), pid: process.pid, at: new Date().toISOString() };
    const dir = join(this.spool.dir, 'control', ACTIONS_DIR);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const name = `${Date.now().toString(36).padStart(9, '0')}-${msgId}-${Math.random().toString(36).slice(2, 8)}.json`;
    await writeFile(join(dir, name), `${JSON.stringify(entry)}\n`, { mode: 0o600 });
  }

  private async require(id: string): Promise<{ entry: SpoolEntry; dir: StateDir }> {
    const found = await this.find(id);
    if (found) return found;
    // The id a client was given for a message that was split: the commands act on one part each.
    const parts = (await this.spool.list()).filter((e) => e.meta.split?.parent === id).sort((a, b) => (a.meta.split?.part ?? 0) - (b.meta.split?.part ?? 0));
    if (parts.length > 0) {
      const list = parts.map((p) => `${p.meta.id} (account ${p.meta.route?.account ?? 'default'}, ${p.meta.envelope.to.join(', ')})`).join('; ');
      throw new QueueCommandError(`message ${id} was split by its recipients' routes into parts that are handled one by one: ${list}. Name a part's id`);
    }
    throw new QueueCommandError(`no message ${id} in the spool (see: queue list)`);
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

  /** Rewrites the taken metadata in admin/, then renames it to its state: never two copies. */
  private async put(meta: MessageMeta, to: StateDir): Promise<void> {
    await this.spool.writeMeta('admin', meta, undefined, false);
    await this.spool.moveMeta('admin', to, meta.id);
  }
}

/**
 * Tells a running daemon to re-read the queue from disk, log the actions recorded, and let holding
 * accounts probe at once. Nothing to do when there is no spool (yet).
 */
export async function wakeDaemon(spoolDir: string): Promise<void> {
  await writeFile(join(spoolDir, 'control', WAKEUP_FILE), `${Date.now()}\n`, { mode: 0o600 }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

/** Reads and removes the actions queue commands recorded, oldest first (for the daemon's log). */
export async function takeAdminActions(spool: Spool): Promise<AdminAction[]> {
  const dir = join(spool.dir, 'control', ACTIONS_DIR);
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json')).sort();
  const actions: AdminAction[] = [];
  for (const name of names) {
    try {
      actions.push(JSON.parse(await readFile(join(dir, name), 'utf8')) as AdminAction);
    } catch {
      // half written by a command that died: nothing to report
    }
    await rm(join(dir, name), { force: true });
  }
  return actions;
}

/** Who runs a queue command: the sudo user behind root when there is one. */
function actingUser(): string {
  const self = (() => {
    try {
      return userInfo().username;
    } catch {
      return `uid ${process.getuid?.() ?? '?'}`;
    }
  })();
  const sudo = process.env.SUDO_USER;
  return sudo && sudo !== self ? `${self} (sudo by ${sudo})` : self;
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
