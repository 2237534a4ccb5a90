import { randomBytes } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { link, mkdir, readFile, stat, unlink, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { writeFileDurably } from './fd.js';

/**
 * One owner per spool. The daemon takes `<spool.dir>/lock` before recovery reads or changes
 * anything, and holds it until it stops. Node has no flock(2), so the lock is a file created
 * atomically (link(2) of a fully written temp file fails if it exists) that names its owner.
 *
 * Whether an owner is alive is decided by what can be known:
 * - on the same machine and in the same pid namespace (the usual case: a second `run`, a restart
 *   after kill -9), /proc tells for certain: the pid must exist with the same start time, so a
 *   dead owner's lock is taken over at once and a reused pid is not mistaken for it;
 * - otherwise (another container on the same volume, another host on a shared disk) only the
 *   owner's heartbeat can: the owner touches the file every HEARTBEAT_MS and a lock untouched for
 *   STALE_MS is taken as abandoned.
 */
export const LOCK_FILE = 'lock';
const TAKEOVER_FILE = 'lock.takeover';
const HEARTBEAT_MS = 10_000;
const STALE_MS = 60_000;
/** A takeover guard older than this was left by a process that died while taking over. */
const TAKEOVER_STALE_MS = 10_000;

export interface LockOwner {
  pid: number;
  host: string;
  /** Kernel boot id and pid namespace: together they say whether `pid` can be looked up here. */
  bootId: string;
  pidNamespace: string;
  /** The process's start time in clock ticks since boot (/proc/PID/stat field 22). */
  startTicks: string;
  startedAt: string;
  nonce: string;
}

/** A running relay already owns the spool. */
export class SpoolLockedError extends Error {
  override readonly name = 'SpoolLockedError';
  readonly code = 'ESPOOLLOCKED';
  constructor(
    readonly dir: string,
    readonly owner: LockOwner,
  ) {
    const where = owner.host === hostname() ? '' : ` on ${owner.host}`;
    super(
      owner.nonce === ''
        ? `spool ${dir} has a lock file (${join(dir, LOCK_FILE)}) that cannot be read and was written just now; try again in a few seconds`
        : `spool ${dir} is in use by pid ${owner.pid}${where} (running since ${owner.startedAt}); stop that relay first, or give this one another spool.dir`,
    );
  }
}

export type OwnerState = 'alive' | 'dead';

/** Where the lock's owner can be checked: the identity of the process asking. */
export interface Vantage {
  bootId: string;
  pidNamespace: string;
  /** The start ticks of a pid here, or null when there is no such process. */
  startTicksOf(pid: number): string | null;
  /** How long ago the lock file was last touched. */
  heartbeatAgeMs: number;
}

/** Whether the process named in a lock still runs (pure: all facts come in `here`). */
export function judgeOwner(owner: LockOwner, here: Vantage): OwnerState {
  const sameMachine = owner.bootId !== '' && owner.bootId === here.bootId && owner.pidNamespace === here.pidNamespace;
  if (sameMachine) return here.startTicksOf(owner.pid) === owner.startTicks ? 'alive' : 'dead';
  return here.heartbeatAgeMs < STALE_MS ? 'alive' : 'dead';
}

/** The held lock: refreshed in the background, released by release(). */
export class SpoolLock {
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    readonly dir: string,
    readonly owner: LockOwner,
  ) {
    this.heartbeat = setInterval(() => {
      const now = new Date();
      utimes(lockPath(dir), now, now).catch(() => undefined);
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  /** Removes the lock file if it is still ours. */
  async release(): Promise<void> {
    clearInterval(this.heartbeat);
    const current = await readOwner(this.dir);
    if (current?.nonce === this.owner.nonce) await unlink(lockPath(this.dir)).catch(() => undefined);
  }
}

/**
 * Takes the spool's lock or throws SpoolLockedError naming the owner. Creates the spool directory
 * itself if needed (nothing inside it is read or changed before the lock is held).
 */
export async function acquireSpoolLock(dir: string): Promise<SpoolLock> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const me = selfIdentity();
  for (let tries = 0; tries < 3; tries++) {
    if (await createLock(dir, me)) return new SpoolLock(dir, me);
    const found = await inspectSpoolLock(dir);
    if (!found) continue; // released meanwhile
    if (found.state === 'alive') throw new SpoolLockedError(dir, found.owner);
    await takeOver(dir, found.owner);
  }
  const found = await inspectSpoolLock(dir);
  if (found) throw new SpoolLockedError(dir, found.owner);
  throw new Error(`could not take the lock of spool ${dir}: it changed hands repeatedly; try again`);
}

/** Who holds the spool's lock and whether it is alive; null when nobody does. For check-config and status. */
export async function inspectSpoolLock(dir: string): Promise<{ owner: LockOwner; state: OwnerState } | null> {
  let owner: LockOwner | null;
  let mtimeMs: number;
  try {
    [owner, mtimeMs] = await Promise.all([readOwner(dir), stat(lockPath(dir)).then((s) => s.mtimeMs)]);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const heartbeatAgeMs = Date.now() - mtimeMs;
  // A lock file that cannot be read (emptied or damaged by hand or by a disk fault; a relay writes
  // it whole) is nobody's once it is a few seconds old.
  if (!owner) return { owner: UNREADABLE_OWNER, state: heartbeatAgeMs > UNREADABLE_GRACE_MS ? 'dead' : 'alive' };
  const me = selfIdentity();
  const state = judgeOwner(owner, { bootId: me.bootId, pidNamespace: me.pidNamespace, startTicksOf, heartbeatAgeMs });
  return { owner, state };
}

/** Stands for the owner of a lock file that cannot be read (its nonce matches no real owner's). */
const UNREADABLE_OWNER: LockOwner = { pid: 0, host: 'unknown', bootId: '', pidNamespace: '', startTicks: '', startedAt: 'unknown', nonce: '' };
const UNREADABLE_GRACE_MS = 5_000;

function lockPath(dir: string): string {
  return join(dir, LOCK_FILE);
}

/** Creates the lock file whole, atomically: false when one exists. */
async function createLock(dir: string, me: LockOwner): Promise<boolean> {
  const temp = join(dir, `${LOCK_FILE}.${me.pid}.${me.nonce}`);
  await writeFileDurably(temp, Buffer.from(`${JSON.stringify(me)}\n`));
  try {
    await link(temp, lockPath(dir));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

/**
 * Removes a dead owner's lock. Two processes may find the same dead lock at once: the takeover
 * guard lets one of them remove it, and the lock is re-read under the guard so that a lock which
 * another process has meanwhile taken (with a new nonce) is never removed.
 */
async function takeOver(dir: string, dead: LockOwner): Promise<void> {
  const guard = join(dir, TAKEOVER_FILE);
  try {
    await writeFileDurably(guard, Buffer.from(`${process.pid}\n`));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const age = Date.now() - (await stat(guard).then((s) => s.mtimeMs, () => Date.now()));
    if (age > TAKEOVER_STALE_MS) await unlink(guard).catch(() => undefined);
    return; // the other taker goes first; the caller looks again
  }
  try {
    const current = await readOwner(dir).catch(() => undefined);
    const stillDead = dead.nonce === '' ? current === null : current?.nonce === dead.nonce;
    if (stillDead) await unlink(lockPath(dir)).catch(() => undefined);
  } finally {
    await unlink(guard).catch(() => undefined);
  }
}

async function readOwner(dir: string): Promise<LockOwner | null> {
  const text = await readFile(lockPath(dir), 'utf8');
  try {
    const owner = JSON.parse(text) as LockOwner;
    return typeof owner?.pid === 'number' && typeof owner.nonce === 'string' ? owner : null;
  } catch {
    return null;
  }
}

let self: LockOwner | null = null;

function selfIdentity(): LockOwner {
  self ??= {
    pid: process.pid,
    host: hostname(),
    bootId: readProc('/proc/sys/kernel/random/boot_id'),
    pidNamespace: readLink('/proc/self/ns/pid'),
    startTicks: startTicksOf(process.pid) ?? '',
    startedAt: new Date(Date.now() - process.uptime() * 1000).toISOString(),
    nonce: randomBytes(8).toString('hex'),
  };
  return self;
}

function startTicksOf(pid: number): string | null {
  const stat = readProc(`/proc/${pid}/stat`);
  if (!stat) return null;
  // Field 2 (comm) may contain spaces and parentheses: count from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19] ?? null; // field 22 of the whole line
}

function readProc(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
}

function readLink(path: string): string {
  try {
    // readlink of /proc/self/ns/pid gives "pid:[4026531836]"
    return readlinkSync(path);
  } catch {
    return '';
  }
}
