// `check-config`, beyond the file: what `run` will need from this host, checked as the user that
// runs the command (the unit runs it as the service's user before every start and reload).
import { accessSync, constants, existsSync } from 'node:fs';
import { access, stat, unlink } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import type { RelayConfig } from '../config/index.js';
import { readTls, readTlsFiles } from '../listener/options.js';
import { mailLogPathOf } from '../maillog/index.js';
import { writeFileDurably } from '../spool/fd.js';
import { checkSpoolOwner, inspectSpoolLock, type LockOwner } from '../spool/index.js';
import { bindProblem, isErrno, spoolProblem } from '../startError.js';

export interface PreflightResult {
  /** What stops `run`: each names its config key. */
  problems: Array<{ key: string; message: string }>;
  /** Worth knowing, not a failure (the spool is in use by the running relay, ...). */
  notes: string[];
}

export async function preflight(config: RelayConfig): Promise<PreflightResult> {
  const result: PreflightResult = { problems: [], notes: [] };
  const problem = (key: string, message: string) => result.problems.push({ key, message });

  const owner = await spoolChecks(config.spool.dir, problem);
  if (owner) result.notes.push(`the spool is in use by the running relay (pid ${owner.pid}${owner.host ? ` on ${owner.host}` : ''}, since ${owner.startedAt}); its ports are expected to be busy`);

  // A running relay holds its own ports: busy ports are then not a problem for `run` after a restart.
  const held = owner?.pid;
  const binds = config.listen.map((l, i) => ({ key: `listen[${i}].port`, host: l.host, port: l.port }));
  if (config.http) binds.push({ key: 'http.port', host: config.http.host, port: config.http.port });
  for (const b of binds) {
    if (b.port === 0) continue; // any free port: nothing to check
    const err = await tryBind(b.host, b.port);
    if (!err) continue;
    const found = bindProblem(b.key, b.host, b.port, err, err.code === 'EADDRINUSE' ? held : undefined);
    if (err.code === 'EADDRINUSE' && held !== undefined) result.notes.push(found.message);
    else problem(found.key, `${found.message.slice(found.key.length + 2)}`);
  }

  const mailLog = mailLogPathOf(config);
  if (mailLog) {
    const note = mailLogNote(mailLog);
    if (note) result.notes.push(note);
  }

  const tlsChecks: Array<[string, () => unknown]> = config.listen.map((listen, i) => [`listen[${i}].tls`, () => readTls(listen, i)]);
  const httpTls = config.http?.tls;
  if (httpTls) tlsChecks.push(['http.tls', () => readTlsFiles(httpTls, 'http.tls')]);
  for (const [key, check] of tlsChecks) {
    try {
      check();
    } catch (err) {
      const e = err as Error & { key?: string };
      problem(e.key ?? key, e.message.replace(/^[^:]+: /, ''));
    }
  }
  return result;
}

/** Owner, lock, and a real write (create, fsync, remove) in the spool; returns a live lock's owner. */
async function spoolChecks(dir: string, problem: (key: string, message: string) => void): Promise<LockOwner | undefined> {
  const say = (err: unknown) => {
    const e = isErrno(err) ? spoolProblem(dir, err) : null;
    problem('spool.dir', e ? e.message.slice('spool.dir: '.length) : (err as Error).message);
  };
  const exists = await stat(dir).then(
    (s) => s.isDirectory() || Promise.reject(Object.assign(new Error(`${dir} is not a directory`), { code: 'ENOTDIR', path: dir })),
    (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? false : Promise.reject(err)),
  ).catch((err: unknown) => {
    say(err);
    return null;
  });
  if (exists === null) return undefined;
  if (!exists) {
    // `run` creates it: the nearest existing parent must let this user do that.
    let parent = dirname(dir);
    while (parent !== dirname(parent) && !(await stat(parent).then(() => true, () => false))) parent = dirname(parent);
    await access(parent, constants.W_OK | constants.X_OK).catch((err: NodeJS.ErrnoException) =>
      problem('spool.dir', `${dir} does not exist and cannot be created: ${parent} is not writable (${err.code}) for uid ${process.geteuid?.() ?? '?'}; create it for the relay's user or choose another spool.dir`),
    );
    return undefined;
  }
  try {
    await checkSpoolOwner(dir);
  } catch (err) {
    problem('spool.dir', (err as Error).message);
    return undefined;
  }
  let owner: LockOwner | undefined;
  try {
    const lock = await inspectSpoolLock(dir);
    if (lock?.state === 'alive') owner = lock.owner;
  } catch (err) {
    say(err);
    return undefined;
  }
  for (const where of [dir, join(dir, 'tmp')]) {
    if (where !== dir && !(await stat(where).then(() => true, () => false))) continue;
    const probe = join(where, `.check-config.${process.pid}`);
    try {
      await writeFileDurably(probe, Buffer.from('probe\n'));
      await unlink(probe);
    } catch (err) {
      await unlink(probe).catch(() => undefined);
      say(err);
      break;
    }
  }
  return owner;
}

/** Binds host:port for a moment; the error, or null when it could be bound. */
function tryBind(host: string, port: number): Promise<NodeJS.ErrnoException | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(null)));
  });
}

/** The relay runs without a writable mail log (mail is never held up by it), so this is a note, not a problem. */
function mailLogNote(path: string): string | null {
  const target = existsSync(path) ? path : nearestExisting(dirname(path));
  try {
    accessSync(target, constants.W_OK);
    return null;
  } catch (err) {
    return `mailLog: ${target} is not writable (${(err as NodeJS.ErrnoException).code}) for uid ${process.geteuid?.() ?? '?'}: the relay runs, but records nothing in the mail log (${path}) until it is`;
  }
}

function nearestExisting(dir: string): string {
  for (let d = dir; ; d = dirname(d)) if (existsSync(d) || d === dirname(d)) return d;
}
