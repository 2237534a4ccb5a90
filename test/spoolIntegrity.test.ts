// The spool's own guarantees: one copy of a message at every step, lost races are not
// corruption, corrupt entries are shown and restorable, queue commands leave a record for the
// daemon's log, and the spool keeps one owner (user and process).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { silentLogger } from '../src/observability/logger.js';
import { acquireSpoolLock, checkSpoolOwner, inspectSpoolLock, QueueAdmin, QueueCommandError, Spool, SpoolLockedError, SpoolOwnerError, takeAdminActions } from '../src/spool/index.js';
import { judgeOwner, type LockOwner } from '../src/spool/lock.js';
import { CLI } from './helpers/harness.js';
import { captureLogger } from './helpers/logs.js';
import { tempDir } from './helpers/tmp.js';

async function setup(t: { after: (fn: () => void) => void }, logger = silentLogger()) {
  const tmp = tempDir();
  t.after(tmp.remove);
  const spool = await Spool.open(tmp.dir, logger);
  const queue = async () => {
    const incoming = spool.incoming();
    await incoming.write(Readable.from([Buffer.from('Subject: hello\r\nFrom: a@b.c\r\n\r\nbody\r\n')]));
    await incoming.commit({ envelope: { from: 'a@b.c', to: ['x@contoso.com'] }, client: { address: '127.0.0.1' } });
    return incoming.id;
  };
  return { spool, admin: new QueueAdmin(spool), queue, dir: tmp.dir };
}

test('spool: a claim that loses a race is a lost race, not corruption', async (t) => {
  const { spool, queue, dir } = await setup(t);
  const id = await queue();
  const first = await spool.claim(id);
  assert.ok(first);
  // The loser's rename finds nothing: null, and nothing moves to corrupt/.
  assert.equal(await spool.claim(id), null);
  // The first delivery defers; a second claim succeeds, and the first's work can no longer remove
  // the second's file (deferral renames, it never unlinks a path someone may have claimed since).
  await spool.defer({ ...first, attempts: 1 });
  const second = await spool.claim(id);
  assert.equal(second?.attempts, 1);
  await spool.complete(id);
  assert.deepEqual(readdirSync(join(dir, 'corrupt')), []);
  assert.deepEqual(readdirSync(join(dir, 'active')), []);
});

test('spool: recovery accounts for hold/: an interrupted hold leaves the message held, not also queued', async (t) => {
  const { spool, queue, dir } = await setup(t);
  const id = await queue();
  // What a `queue hold` killed between its steps can leave: the message in admin/ and in hold/.
  const meta = readFileSync(join(dir, 'queue', `${id}.json`));
  writeFileSync(join(dir, 'hold', `${id}.json`), meta);
  copyFileSync(join(dir, 'queue', `${id}.json`), join(dir, 'admin', `${id}.json`));
  spawnSync('rm', [join(dir, 'queue', `${id}.json`)]);
  const { queuedIds } = await spool.recover();
  assert.deepEqual(queuedIds, []);
  assert.deepEqual((await spool.list()).map((e) => e.state), ['hold']);
});

test('queue admin: hold and release never leave two copies; every command is recorded for the daemon log', async (t) => {
  const { spool, admin, queue, dir } = await setup(t);
  const id = await queue();
  await admin.hold(id);
  assert.deepEqual([readdirSync(join(dir, 'queue')), readdirSync(join(dir, 'hold')), readdirSync(join(dir, 'admin'))], [[], [`${id}.json`], []]);
  await admin.release(id);
  await admin.retry(id);
  await admin.delete(id);
  const actions = await takeAdminActions(spool);
  assert.deepEqual(actions.map((a) => [a.action, a.msgId]), [['hold', id], ['release', id], ['retry', id], ['delete', id]]);
  assert.ok(actions.every((a) => typeof a.user === 'string' && a.user.length > 0));
  assert.deepEqual(await takeAdminActions(spool), [], 'each record is logged once');
});

test('spool: an unreadable entry goes to corrupt/ with an alert naming it; queue list shows it; restore puts it back once whole', async (t) => {
  const { logger, lines } = captureLogger();
  const { spool, admin, queue, dir } = await setup(t, logger);
  const id = await queue();
  const good = readFileSync(join(dir, 'queue', `${id}.json`));
  writeFileSync(join(dir, 'queue', `${id}.json`), '{"version":1,'); // torn
  assert.equal(await spool.claim(id), null);
  const alert = lines.find((l) => l.event === 'alert' && l.alert === 'spool-corrupt');
  assert.equal(alert?.msgId, id);
  assert.equal(alert?.level, 'error');
  const [corrupt] = await spool.listCorrupt();
  assert.equal(corrupt?.id, id);
  assert.match(String(corrupt?.problem), /JSON|Unexpected|end/i);
  await assert.rejects(admin.restore(id), (err: Error) => err instanceof QueueCommandError && /not valid metadata/.test(err.message));
  writeFileSync(join(dir, 'corrupt', `${id}.json`), good);
  await admin.restore(id);
  const [entry] = await spool.list();
  assert.equal(entry?.meta.id, id);
  assert.equal(entry?.state, 'queued');
  assert.ok(existsSync(spool.dataPath(id)));
  assert.deepEqual(await spool.listCorrupt(), []);
});

test('spool lock: a live owner refuses a second one; judged by /proc on this machine, by heartbeat elsewhere', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const lock = await acquireSpoolLock(tmp.dir);
  await assert.rejects(acquireSpoolLock(tmp.dir), (err: Error) => err instanceof SpoolLockedError && err.message.includes(`is in use by pid ${process.pid}`));
  assert.equal((await inspectSpoolLock(tmp.dir))?.state, 'alive');
  await lock.release();
  assert.equal(await inspectSpoolLock(tmp.dir), null);

  // A lock file someone emptied (not a relay: it writes the file whole) is taken over once stale.
  writeFileSync(join(tmp.dir, 'lock'), '');
  const old = new Date(Date.now() - 60_000);
  utimesSync(join(tmp.dir, 'lock'), old, old);
  const taken = await acquireSpoolLock(tmp.dir);
  assert.equal((await inspectSpoolLock(tmp.dir))?.owner.pid, process.pid);
  await taken.release();

  const owner: LockOwner = { pid: 4242, host: 'h', bootId: 'boot', pidNamespace: 'pid:[1]', startTicks: '100', startedAt: '', nonce: 'n' };
  const here = { bootId: 'boot', pidNamespace: 'pid:[1]', heartbeatAgeMs: 0 };
  assert.equal(judgeOwner(owner, { ...here, startTicksOf: () => '100' }), 'alive');
  assert.equal(judgeOwner(owner, { ...here, startTicksOf: () => '999' }), 'dead', 'a reused pid is not the owner');
  assert.equal(judgeOwner(owner, { ...here, startTicksOf: () => null }), 'dead');
  // Another container (pid namespace) or host: only the heartbeat can tell.
  assert.equal(judgeOwner(owner, { ...here, pidNamespace: 'pid:[2]', startTicksOf: () => null, heartbeatAgeMs: 5_000 }), 'alive');
  assert.equal(judgeOwner(owner, { ...here, bootId: 'other', startTicksOf: () => '100', heartbeatAgeMs: 120_000 }), 'dead');
});

test('spool owner: queue commands as another user are refused with the user to use, and change nothing', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to act as another user');
  const tmp = tempDir();
  t.after(tmp.remove);
  chmodSync(tmp.dir, 0o755);
  const spoolDir = join(tmp.dir, 'spool');
  mkdirSync(spoolDir, { mode: 0o755 });
  chownSync(spoolDir, 65534, 65534);
  const config = join(tmp.dir, 'relay.yaml');
  writeFileSync(
    config,
    stringify({ listen: [{ port: 2525 }], spool: { dir: spoolDir }, microsoft365: { tenantId: 't', clientId: 'c', clientSecret: 's', mailbox: 'relay@contoso.com' } }),
  );
  chmodSync(config, 0o644);
  await assert.rejects(checkSpoolOwner(spoolDir), (err: Error) => err instanceof SpoolOwnerError && /nobody/.test(err.message));
  const asRoot = spawnSync(process.execPath, [CLI, 'queue', 'hold', '0MIB2K3F4A1B2C3D4E5', '--config', config], { encoding: 'utf8', timeout: 15_000 });
  assert.equal(asRoot.status, 1);
  assert.match(asRoot.stderr, /belongs to user nobody: run this command as that user \(for example: sudo -u nobody/);
  assert.deepEqual(readdirSync(spoolDir), [], 'nothing was created in the spool');
  // And the owner itself may (where that user can run this node binary at all).
  if (spawnSync(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(CLI)})`], { uid: 65534, gid: 65534 }).status !== 0) return;
  const asOwner = spawnSync(process.execPath, [CLI, 'queue', 'list', '--config', config], { encoding: 'utf8', timeout: 15_000, uid: 65534, gid: 65534 });
  assert.equal(asOwner.status, 0, asOwner.stderr);
});
