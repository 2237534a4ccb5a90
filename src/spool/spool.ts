import { EventEmitter } from 'node:events';
import { createReadStream, type ReadStream } from 'node:fs';
import { copyFile, link, mkdir, readdir, readFile, rename, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../observability/logger.js';
import { crashPoint } from './crashPoints.js';
import { SpoolWriteError } from './errors.js';
import { fsyncPath, writeFileDurably } from './fd.js';
import { DirectorySyncer } from './fsync.js';
import { isMessageId, newMessageId } from './ids.js';
import { SpoolIncoming, type IncomingMessage, type MessageSink } from './incoming.js';
import type { CommitInput, MessageMeta, SpoolState } from './types.js';

/** Directories of metadata files; the directory is the state. */
const STATE_DIRS = { queue: 'queue', active: 'active', failed: 'failed', hold: 'hold', admin: 'admin' } as const;
export type StateDir = keyof typeof STATE_DIRS;
/** Committed parts of split messages on their way into queue/ (see Spool.commitSplit). */
const SPLIT_DIR = 'split';

export interface SpoolEntry {
  meta: MessageMeta;
  state: SpoolState;
}

export interface RecoveryReport {
  queued: number;
  returnedFromActive: number;
  removedTemp: number;
  removedOrphanData: number;
  movedToCorrupt: number;
}

export interface SpoolEvents {
  queued: [meta: MessageMeta];
}

/**
 * The on-disk queue. Layout under `dir`:
 *   data/<id>.eml      the message bytes as received (immutable)
 *   queue/<id>.json    waiting for delivery (queued, or deferred when attempts > 0)
 *   active/<id>.json   claimed by the relay worker
 *   failed/<id>.json   failed for good, reason kept
 *   hold/<id>.json     held by an administrator
 *   admin/<id>.json    taken by a `queue` command for a moment (returned to the queue at start)
 *   tmp/               metadata being written (cleaned at start)
 *   split/<parent>/    the parts of a split message, committed together (moved into queue/ at once)
 *   corrupt/           entries that could not be read, moved aside, never deleted
 * Every state change is an atomic rename of the metadata file followed by a directory fsync.
 */
export class Spool extends EventEmitter<SpoolEvents> implements MessageSink {
  private readonly syncer = new DirectorySyncer();

  private constructor(
    readonly dir: string,
    private readonly logger: Logger,
  ) {
    super();
  }

  static async open(dir: string, logger: Logger): Promise<Spool> {
    for (const sub of ['data', 'tmp', 'corrupt', 'control', SPLIT_DIR, ...Object.values(STATE_DIRS)]) {
      await mkdir(join(dir, sub), { recursive: true, mode: 0o700 });
    }
    return new Spool(dir, logger);
  }

  metaPath(state: StateDir, id: string): string {
    return join(this.dir, STATE_DIRS[state], `${id}.json`);
  }

  dataPath(id: string): string {
    return join(this.dir, 'data', `${id}.eml`);
  }

  incoming(): IncomingMessage {
    const id = newMessageId();
    return new SpoolIncoming(id, this.dataPath(id), (msgId, size, input) => this.commitIncoming(msgId, size, input));
  }

  private async commitIncoming(id: string, size: number, input: CommitInput): Promise<MessageMeta[]> {
    const receivedAt = new Date().toISOString();
    const newMeta = (metaId: string, to: string[], route: CommitInput['route']): MessageMeta => ({
      version: 1,
      id: metaId,
      envelope: { from: input.envelope.from, to },
      recipients: to.map((address) => ({ address, status: 'pending' })),
      client: input.client,
      size,
      receivedAt,
      attempts: 0,
      nextAttemptAt: null,
      lastError: null,
      ...(input.notice && { notice: input.notice }),
      ...(route && { route }),
    });
    const parts = input.parts ?? [];
    if (parts.length > 1) {
      const metas = parts.map((part, i) => ({ ...newMeta(newMessageId(), part.to, part.route), split: { parent: id, part: i + 1, of: parts.length } }));
      await this.commitSplit(id, metas);
      return metas;
    }
    const meta = newMeta(id, input.envelope.to, parts[0]?.route ?? input.route);
    try {
      await this.writeMeta('queue', meta, () => crashPoint('after-meta-rename'));
      // The data file's directory entry must be durable too before we answer 250.
      await this.syncer.sync(join(this.dir, 'data'));
    } catch (err) {
      throw new SpoolWriteError(`cannot queue message ${id}: ${(err as Error).message}`, { cause: err });
    }
    crashPoint('before-ack');
    this.emit('queued', meta);
    return [meta];
  }

  /**
   * Queues the parts of a split message all together or not at all. The invariant: no part is in
   * queue/ (deliverable) unless every part is durable. Each part's data file is a hard link to the
   * message's (a copy where links are not possible), so that every part owns its files as an
   * unsplit message does. The metadata files are written into a directory under tmp/ and fsynced;
   * the one atomic rename of that directory into split/ is the commit point. The parts then move
   * into queue/ (recover() finishes that after a crash). A crash before the commit leaves only
   * files in tmp/ and unreferenced data, which the next start removes: nothing is delivered and the
   * client, who got no 250, sends the message again. A crash after it delivers every part, even
   * when the 250 was not sent yet: the same window as an unsplit message (RFC 1047).
   */
  private async commitSplit(parentId: string, parts: MessageMeta[]): Promise<void> {
    const staging = join(this.dir, 'tmp', `split-${parentId}`);
    const committed = join(this.dir, SPLIT_DIR, parentId);
    let isCommitted = false;
    try {
      for (const part of parts) await linkOrCopy(this.dataPath(parentId), this.dataPath(part.id));
      await this.syncer.sync(join(this.dir, 'data'));
      await mkdir(staging, { mode: 0o700 });
      for (const part of parts) await writeFileDurably(join(staging, `${part.id}.json`), Buffer.from(JSON.stringify(part)));
      await fsyncPath(staging);
      crashPoint('split-before-commit');
      await rename(staging, committed);
      isCommitted = true;
      await this.syncer.sync(join(this.dir, SPLIT_DIR));
      crashPoint('split-after-commit');
    } catch (err) {
      if (!isCommitted) {
        await rm(staging, { recursive: true, force: true }).catch(() => undefined);
        for (const part of parts) await rm(this.dataPath(part.id), { force: true }).catch(() => undefined);
      }
      throw new SpoolWriteError(`cannot queue message ${parentId} (split for ${parts.length} accounts): ${(err as Error).message}`, { cause: err });
    }
    // Committed: from here on the message is accepted whatever happens; a part that cannot be moved
    // into queue/ now is moved by the next rescan or start.
    try {
      await this.unpackSplit(parentId);
      await unlink(this.dataPath(parentId)).catch(ignoreMissing);
      await this.syncer.sync(join(this.dir, 'data'));
    } catch (err) {
      this.logger.error({ event: 'alert', alert: 'spool-write', msgId: parentId, err }, `the parts of message ${parentId} are queued but could not be moved into ${join(this.dir, 'queue')}; the relay retries at its next queue rescan`);
      return;
    }
    crashPoint('before-ack');
    for (const part of parts) this.emit('queued', part);
  }

  /** Moves the committed parts of a split message from split/<parent>/ into queue/. Returns their ids. */
  private async unpackSplit(parentId: string): Promise<string[]> {
    const dir = join(this.dir, SPLIT_DIR, parentId);
    const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [] as string[]; // unpacked meanwhile by a queue rescan
      throw err;
    });
    const ids = names.filter((n) => n.endsWith('.json') && isMessageId(n.slice(0, -5))).map((n) => n.slice(0, -5));
    for (const id of ids) {
      // ENOENT: a queue rescan running at the same moment moved it already.
      await rename(join(dir, `${id}.json`), this.metaPath('queue', id)).catch(ignoreMissing);
      crashPoint('split-during-unpack');
    }
    await this.syncer.sync(join(this.dir, STATE_DIRS.queue));
    await rm(dir, { recursive: true, force: true });
    await this.syncer.sync(join(this.dir, SPLIT_DIR));
    return ids;
  }

  /**
   * Split messages committed but not yet in queue/ (a crash, or a failed move): moved now. Run by
   * recover() and by the relay's queue rescans. Returns the ids of the parts moved.
   */
  async unpackPendingSplits(): Promise<string[]> {
    const moved: string[] = [];
    for (const parent of await readdir(join(this.dir, SPLIT_DIR)).catch(() => [] as string[])) {
      if (!isMessageId(parent)) continue;
      moved.push(...(await this.unpackSplit(parent)));
      await unlink(this.dataPath(parent)).catch(ignoreMissing);
    }
    return moved;
  }

  /**
   * Writes metadata to tmp/, fsyncs it, renames it into the state directory and fsyncs that (the
   * directory fsync is left to the caller with `syncDir: false`, when a rename follows at once).
   */
  async writeMeta(state: StateDir, meta: MessageMeta, afterRename?: () => void, syncDir = true): Promise<void> {
    const tmp = join(this.dir, 'tmp', `${meta.id}.${process.pid}.${Math.random().toString(36).slice(2)}.json`);
    try {
      await writeFileDurably(tmp, Buffer.from(JSON.stringify(meta)));
      await rename(tmp, this.metaPath(state, meta.id));
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => undefined); // a full disk must not keep a half-written file
      throw err;
    }
    afterRename?.();
    if (syncDir) await this.syncer.sync(join(this.dir, STATE_DIRS[state]));
  }

  /**
   * Renames a metadata file between states and fsyncs both directories. (A claim would survive
   * without the fsync, a power cut only re-queueing the message; but measured on 2 cores, the
   * fsync's wait keeps deliveries from taking CPU from the listener: see bench/README.md.)
   */
  async moveMeta(from: StateDir, to: StateDir, id: string): Promise<boolean> {
    try {
      await rename(this.metaPath(from, id), this.metaPath(to, id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    await Promise.all([this.syncer.sync(join(this.dir, STATE_DIRS[to])), this.syncer.sync(join(this.dir, STATE_DIRS[from]))]);
    return true;
  }

  async readMeta(state: StateDir, id: string): Promise<MessageMeta> {
    return parseMeta(await readFile(this.metaPath(state, id), 'utf8'), id);
  }

  /**
   * Takes a queued message for delivery. Returns null when it is no longer queued (delivered,
   * deleted or held meanwhile: the rename is what makes the claim exclusive), or when its metadata
   * cannot be read (then it is moved to corrupt/ with an alert).
   */
  async claim(id: string): Promise<MessageMeta | null> {
    if (!(await this.moveMeta('queue', 'active', id))) return null;
    crashPoint('after-claim');
    try {
      return await this.readMeta('active', id);
    } catch (err) {
      // Gone after our rename: someone else's doing (a lost race), not a corrupt entry.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      await this.quarantine('active', id, err);
      return null;
    }
  }

  /**
   * Delivered to every recipient: the message leaves the spool. The fsync keeps a power cut from
   * bringing it back (which would send it twice).
   */
  async complete(id: string): Promise<void> {
    await unlink(this.metaPath('active', id)).catch(ignoreMissing);
    await unlink(this.dataPath(id)).catch(ignoreMissing);
    await Promise.all([this.syncer.sync(join(this.dir, STATE_DIRS.active)), this.syncer.sync(join(this.dir, 'data'))]);
  }

  /** Back to the queue with updated metadata (attempts, nextAttemptAt, lastError, recipients). */
  async defer(meta: MessageMeta): Promise<void> {
    await this.replaceActive('queue', meta);
  }

  /** Failed for good: the metadata (with the reason) moves to failed/, the data is kept. */
  async fail(meta: MessageMeta): Promise<void> {
    await this.replaceActive('failed', { ...meta, failedAt: meta.failedAt ?? new Date().toISOString(), nextAttemptAt: null });
  }

  /** Records progress of a message being delivered (recipients done so far), durably, where it is. */
  async checkpoint(meta: MessageMeta): Promise<void> {
    await this.writeMeta('active', meta);
  }

  /**
   * Rewrites the claimed metadata in place, then renames it to its next state: every step leaves
   * exactly one copy (a crash in between leaves the new metadata in active/, which recovery puts
   * back in the queue), and no unlink can hit a file that someone else has claimed since.
   */
  private async replaceActive(to: StateDir, meta: MessageMeta): Promise<void> {
    await this.writeMeta('active', meta, undefined, false);
    crashPoint('between-defer-steps');
    if (!(await this.moveMeta('active', to, meta.id))) throw new Error(`metadata of ${meta.id} vanished from active/ while it was being recorded`);
  }

  /** For /readyz: can a file be created, fsynced and removed in the spool right now? */
  async probeWritable(): Promise<{ ok: boolean; error: string | null }> {
    const probe = join(this.dir, 'tmp', `probe.${process.pid}.${Date.now()}`);
    try {
      await writeFileDurably(probe, Buffer.from('ok'));
      await unlink(probe);
      return { ok: true, error: null };
    } catch (err) {
      await rm(probe, { force: true }).catch(() => undefined);
      return { ok: false, error: (err as Error).message };
    }
  }

  openData(id: string, start = 0): ReadStream {
    return createReadStream(this.dataPath(id), { start, highWaterMark: 256 * 1024 });
  }

  async ids(state: StateDir): Promise<string[]> {
    const names = await readdir(join(this.dir, STATE_DIRS[state]));
    return names.filter((n) => n.endsWith('.json') && isMessageId(n.slice(0, -5))).map((n) => n.slice(0, -5));
  }

  /** Every message, for `queue list`. Unreadable entries are skipped (recovery moves them aside). */
  async list(states: StateDir[] = ['queue', 'active', 'hold', 'failed', 'admin']): Promise<SpoolEntry[]> {
    const entries = new Map<string, SpoolEntry>();
    const moved: string[] = [];
    for (const state of states) {
      for (const id of await this.ids(state)) {
        try {
          const meta = await this.readMeta(state, id);
          entries.set(id, { meta, state: stateOf(state, meta) });
        } catch (err) {
          // Moved to another state meanwhile (a delivery or a command): looked up again below.
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') moved.push(id);
        }
      }
    }
    for (const id of moved) {
      if (entries.has(id)) continue;
      for (const state of states) {
        const meta = await this.readMeta(state, id).catch(() => null);
        if (meta) {
          entries.set(id, { meta, state: stateOf(state, meta) });
          break;
        }
      }
    }
    return [...entries.values()].sort((a, b) => a.meta.id.localeCompare(b.meta.id));
  }

  /**
   * Run once at start, before the listener and the worker: brings the spool back to a consistent
   * state after a crash. Claimed-but-unfinished messages go back to the queue (they may have reached
   * Exchange: better twice than never), leftovers are removed, entries whose data is missing are
   * moved aside. Only directory listings are read here, so a large queue does not delay the start;
   * the metadata is read afterwards by loadQueued().
   */
  async recover(): Promise<{ report: RecoveryReport; queuedIds: string[] }> {
    const report: RecoveryReport = { queued: 0, returnedFromActive: 0, removedTemp: 0, removedOrphanData: 0, movedToCorrupt: 0 };
    for (const name of await readdir(join(this.dir, 'tmp'))) {
      await rm(join(this.dir, 'tmp', name), { force: true, recursive: true });
      report.removedTemp++;
    }
    // Split messages committed before the crash: their parts join the queue like any other.
    await this.unpackPendingSplits();

    const queuedIds = new Set(await this.ids('queue'));
    const failedIds = new Set(await this.ids('failed'));
    const heldIds = new Set(await this.ids('hold'));
    // A queue command that died holding a message, and messages claimed for delivery when the
    // process stopped: back to the queue, unless a newer copy already is in queue/, hold/ or
    // failed/ (left by an older version that wrote the destination before removing the source).
    for (const state of ['admin', 'active'] as const) {
      for (const id of await this.ids(state)) {
        if (queuedIds.has(id) || failedIds.has(id) || heldIds.has(id)) {
          await unlink(this.metaPath(state, id)).catch(ignoreMissing);
        } else {
          await rename(this.metaPath(state, id), this.metaPath('queue', id));
          queuedIds.add(id);
          if (state === 'active') report.returnedFromActive++;
        }
      }
    }

    const dataIds = new Set((await readdir(join(this.dir, 'data'))).filter((n) => n.endsWith('.eml')).map((n) => n.slice(0, -4)));
    const known = new Set<string>();
    const entries: Array<[StateDir, string]> = [
      ...[...queuedIds].map((id): [StateDir, string] => ['queue', id]),
      ...[...heldIds].map((id): [StateDir, string] => ['hold', id]),
      ...[...failedIds].map((id): [StateDir, string] => ['failed', id]),
    ];
    for (const [state, id] of entries) {
      if (!dataIds.has(id)) {
        await this.quarantine(state, id, new Error('its data file is missing'));
        queuedIds.delete(id);
        report.movedToCorrupt++;
      } else {
        known.add(id);
      }
    }
    for (const id of dataIds) {
      if (known.has(id)) continue;
      // Data without metadata was never acknowledged (the client did not get 250).
      await rm(this.dataPath(id), { force: true });
      report.removedOrphanData++;
    }
    for (const sub of ['tmp', 'data', SPLIT_DIR, ...Object.values(STATE_DIRS)]) await this.syncer.sync(join(this.dir, sub));
    report.queued = queuedIds.size;
    return { report, queuedIds: [...queuedIds].sort() };
  }

  /**
   * Reads the metadata of queued messages (after recover()), a batch at a time, oldest first.
   * Unreadable entries are moved to corrupt/ and skipped.
   */
  async *loadQueued(ids: readonly string[], batchSize = 128): AsyncGenerator<MessageMeta[]> {
    for (let i = 0; i < ids.length; i += batchSize) {
      const batch = await Promise.all(
        ids.slice(i, i + batchSize).map(async (id) => {
          try {
            return await this.readMeta('queue', id);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null; // claimed or changed meanwhile
            await this.quarantine('queue', id, err);
            return null;
          }
        }),
      );
      yield batch.filter((m): m is MessageMeta => m !== null);
    }
  }

  /**
   * Moves an entry that cannot be read (metadata or data missing, unreadable, not valid) into
   * corrupt/ for an administrator, with an alert that names it: `queue list` shows it, and
   * `queue restore ID` puts it back once its files are whole.
   */
  async quarantine(state: StateDir, id: string, reason: unknown): Promise<void> {
    await rename(this.metaPath(state, id), this.corruptPath(id, 'json')).catch(ignoreMissing);
    await rename(this.dataPath(id), this.corruptPath(id, 'eml')).catch(ignoreMissing);
    await Promise.all([this.syncer.sync(join(this.dir, 'corrupt')), this.syncer.sync(join(this.dir, STATE_DIRS[state])), this.syncer.sync(join(this.dir, 'data'))]);
    this.logger.error(
      { event: 'alert', alert: 'spool-corrupt', msgId: id, state, err: reason },
      `message ${id} cannot be read from the spool and was moved to ${join(this.dir, 'corrupt')}; fix its files (owner, permissions) and run: m365-relay queue restore ${id}`,
    );
  }

  corruptPath(id: string, kind: 'json' | 'eml'): string {
    return join(this.dir, 'corrupt', `${id}.${kind}`);
  }

  /** Entries in corrupt/, for `queue list`: the metadata when it can be read, else why not. */
  async listCorrupt(): Promise<Array<{ id: string; meta: MessageMeta | null; problem: string | null }>> {
    const names = await readdir(join(this.dir, 'corrupt')).catch(() => [] as string[]);
    const ids = [...new Set(names.map((n) => n.replace(/\.(json|eml)$/, '')).filter(isMessageId))].sort();
    return Promise.all(
      ids.map(async (id) => {
        try {
          return { id, meta: parseMeta(await readFile(this.corruptPath(id, 'json'), 'utf8'), id), problem: null };
        } catch (err) {
          return { id, meta: null, problem: (err as Error).message };
        }
      }),
    );
  }
}

/** A message waiting in queue/ is "deferred" once it has been tried, "queued" before. */
export function stateOf(dir: StateDir, meta: MessageMeta): SpoolState {
  if (dir === 'queue' || dir === 'admin') return meta.attempts > 0 ? 'deferred' : 'queued';
  return dir;
}

export function parseMeta(text: string, id: string): MessageMeta {
  const meta = JSON.parse(text) as MessageMeta;
  if (meta?.version !== 1 || meta.id !== id || !meta.envelope || !Array.isArray(meta.recipients)) {
    throw new Error(`metadata of ${id} is not a valid spool entry`);
  }
  return meta;
}

function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}

/** A second name for an immutable data file; a durable copy where the file system has no hard links. */
async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EMLINK' && code !== 'EXDEV') throw err;
    await copyFile(from, to, 1 /* COPYFILE_EXCL */);
    await fsyncPath(to);
  }
}
