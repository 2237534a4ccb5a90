import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { silentLogger } from '../src/observability/logger.js';
import { QueueAdmin, QueueCommandError, Spool, wakeDaemon, watchWakeups } from '../src/spool/index.js';
import { tempDir } from './helpers/tmp.js';
import { waitFor } from './helpers/wait.js';

async function setup(t: { after: (fn: () => void) => void }) {
  const tmp = tempDir();
  t.after(tmp.remove);
  const spool = await Spool.open(tmp.dir, silentLogger());
  const admin = new QueueAdmin(spool);
  const queue = async () => {
    const incoming = spool.incoming();
    await incoming.write(Readable.from([Buffer.from('Subject: hello\r\nFrom: a@b.c\r\n\r\nbody\r\n')]));
    await incoming.commit({ envelope: { from: 'a@b.c', to: ['x@contoso.com', 'y@contoso.com'] }, client: { address: '127.0.0.1' } });
    return incoming.id;
  };
  return { spool, admin, queue, dir: tmp.dir };
}

test('queue admin: retry puts a failed message back, due now, failed recipients pending again, lifetime restarted', async (t) => {
  const { spool, admin, queue } = await setup(t);
  const id = await queue();
  const meta = await spool.claim(id);
  assert.ok(meta);
  await spool.fail({ ...meta, attempts: 3, lastError: '554 no', recipients: [{ address: 'x@contoso.com', status: 'delivered' }, { address: 'y@contoso.com', status: 'failed', lastError: '554 no' }] });
  await admin.retry(id);
  const found = await admin.find(id);
  assert.equal(found?.entry.state, 'deferred');
  assert.equal(found?.entry.meta.nextAttemptAt, null);
  assert.ok(found?.entry.meta.requeuedAt);
  assert.deepEqual(found?.entry.meta.recipients.map((r) => r.status), ['delivered', 'pending']);
  assert.deepEqual(readdirSync(join(spool.dir, 'admin')), []);
});

test('queue admin: hold and release; delete removes data and metadata', async (t) => {
  const { spool, admin, queue } = await setup(t);
  const id = await queue();
  await admin.hold(id);
  assert.equal((await admin.find(id))?.entry.state, 'hold');
  assert.equal(await spool.claim(id), null, 'a held message cannot be claimed for delivery');
  await assert.rejects(admin.hold(id), QueueCommandError);
  await admin.release(id);
  assert.equal((await admin.find(id))?.entry.state, 'queued');
  await admin.delete(id);
  assert.equal(await admin.find(id), null);
  assert.ok(!existsSync(spool.dataPath(id)));
});

test('queue admin: a message being delivered is refused; unknown and malformed ids are explained', async (t) => {
  const { spool, admin, queue } = await setup(t);
  const id = await queue();
  await spool.claim(id);
  await assert.rejects(admin.delete(id), /being delivered right now; try again/);
  await assert.rejects(admin.retry('0000000000000000000'), /no message 0000000000000000000 in the spool/);
  await assert.rejects(admin.show('../../etc/passwd'), /is not a message id/);
});

test('queue admin: show gives metadata and headers; retry --all counts deferred and failed', async (t) => {
  const { spool, admin, queue } = await setup(t);
  const a = await queue();
  const b = await queue();
  const c = await queue();
  const ma = await spool.claim(a);
  await spool.defer({ ...ma!, attempts: 1, nextAttemptAt: new Date(Date.now() + 3_600_000).toISOString(), lastError: '451 busy' });
  const mb = await spool.claim(b);
  await spool.fail({ ...mb!, attempts: 1, lastError: '554 no' });
  const shown = await admin.show(a);
  assert.match(shown.headers, /^Subject: hello\r\nFrom: a@b\.c$/);
  assert.equal(shown.entry.meta.lastError, '451 busy');
  assert.equal(await admin.retryAll(), 3);
  for (const id of [a, b, c]) assert.equal((await admin.find(id))?.entry.meta.nextAttemptAt, null);
});

test('queue admin: a command that died holding a message returns it to the queue at start', async (t) => {
  const { spool, queue, dir } = await setup(t);
  const id = await queue();
  await spool.moveMeta('queue', 'admin', id);
  const { queuedIds } = await (await Spool.open(dir, silentLogger())).recover();
  assert.deepEqual(queuedIds, [id]);
});

test('queue admin: wakeDaemon reaches a watcher', async (t) => {
  const { spool } = await setup(t);
  let woken = 0;
  const stop = watchWakeups(spool, () => woken++);
  t.after(stop);
  await wakeDaemon(spool.dir);
  await waitFor('the wake-up', () => woken > 0, 5000);
});
