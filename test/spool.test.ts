import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { silentLogger } from '../src/observability/logger.js';
import { Spool, SpoolWriteError } from '../src/spool/index.js';
import { tempDir } from './helpers/tmp.js';

const envelope = { from: 'scanner@printer.local', to: ['a@contoso.com', 'b@contoso.com'] };
const client = { address: '127.0.0.1' };

async function queueOne(spool: Spool, body = 'Subject: x\r\n\r\nhello\r\n'): Promise<string> {
  const incoming = spool.incoming();
  await incoming.write(Readable.from([Buffer.from(body)]));
  await incoming.commit({ envelope, client });
  return incoming.id;
}

test('spool: a committed message is on disk with its metadata, mode 0600, and announced', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const spool = await Spool.open(tmp.dir, silentLogger());
  const announced: string[] = [];
  spool.on('queued', (meta) => announced.push(meta.id));
  const id = await queueOne(spool);
  assert.deepEqual(announced, [id]);
  assert.equal(readFileSync(spool.dataPath(id), 'utf8'), 'Subject: x\r\n\r\nhello\r\n');
  assert.equal(statSync(spool.dataPath(id)).mode & 0o777, 0o600);
  const [entry] = await spool.list();
  assert.equal(entry?.state, 'queued');
  assert.equal(entry?.meta.size, 21);
  assert.deepEqual(entry?.meta.recipients.map((r) => r.status), ['pending', 'pending']);
  assert.deepEqual(readdirSync(join(tmp.dir, 'tmp')), []);
});

test('spool: claim is exclusive; defer, fail and complete move the metadata', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const spool = await Spool.open(tmp.dir, silentLogger());
  const id = await queueOne(spool);
  const meta = await spool.claim(id);
  assert.ok(meta);
  assert.equal(await spool.claim(id), null, 'a second claim must fail');
  await spool.defer({ ...meta, attempts: 1, lastError: '451 busy', nextAttemptAt: new Date(Date.now() + 60_000).toISOString() });
  let [entry] = await spool.list();
  assert.equal(entry?.state, 'deferred');
  assert.equal(entry?.meta.lastError, '451 busy');
  const again = await spool.claim(id);
  assert.ok(again);
  await spool.fail({ ...again, attempts: 2, lastError: '554 5.2.252 SendAsDenied' });
  [entry] = await spool.list();
  assert.equal(entry?.state, 'failed');
  assert.ok(entry?.meta.failedAt);
  assert.ok(existsSync(spool.dataPath(id)), 'a failed message keeps its data');

  const id2 = await queueOne(spool);
  await spool.claim(id2);
  await spool.complete(id2);
  assert.ok(!existsSync(spool.dataPath(id2)));
  assert.deepEqual((await spool.list()).map((e) => e.meta.id), [id]);
});

test('spool: recovery returns claimed messages, drops unacknowledged data, quarantines corrupt entries', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const spool = await Spool.open(tmp.dir, silentLogger());
  const claimed = await queueOne(spool);
  await spool.claim(claimed); // "crashed" mid-delivery
  const waiting = await queueOne(spool);
  const corrupt = await queueOne(spool);
  writeFileSync(join(tmp.dir, 'queue', `${corrupt}.json`), '{"version":1, truncated');
  const noData = await queueOne(spool);
  rmSync(spool.dataPath(noData));
  writeFileSync(join(tmp.dir, 'data', '0000000000000000000.eml'), 'never acknowledged'); // data without metadata
  writeFileSync(join(tmp.dir, 'tmp', 'leftover.json'), '{}');

  const restarted = await Spool.open(tmp.dir, silentLogger());
  const { report, queuedIds } = await restarted.recover();
  // Recovery reads directory listings only: the missing data file is found there...
  assert.deepEqual(queuedIds, [claimed, waiting, corrupt].sort());
  assert.equal(report.returnedFromActive, 1);
  assert.equal(report.movedToCorrupt, 1);
  // ...and the unreadable metadata when the queue is loaded.
  const loaded = [];
  for await (const batch of restarted.loadQueued(queuedIds)) loaded.push(...batch);
  assert.deepEqual(loaded.map((m) => m.id).sort(), [claimed, waiting].sort());
  assert.equal(report.removedOrphanData, 1);
  assert.equal(report.removedTemp, 1);
  assert.deepEqual(readdirSync(join(tmp.dir, 'corrupt')).sort(), [`${corrupt}.eml`, `${corrupt}.json`, `${noData}.json`].sort());
  assert.deepEqual(readdirSync(join(tmp.dir, 'active')), []);
});

test('spool: a defer interrupted between its two steps keeps the newer copy', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const spool = await Spool.open(tmp.dir, silentLogger());
  const id = await queueOne(spool);
  const meta = await spool.claim(id);
  assert.ok(meta);
  // the deferred copy was written to queue/, the active/ copy not yet removed
  writeFileSync(join(tmp.dir, 'queue', `${id}.json`), JSON.stringify({ ...meta, attempts: 1, lastError: 'newer' }));
  const reopened = await Spool.open(tmp.dir, silentLogger());
  const { queuedIds } = await reopened.recover();
  const loaded = [];
  for await (const batch of reopened.loadQueued(queuedIds)) loaded.push(...batch);
  assert.equal(loaded.length, 1);
  assert.equal(loaded[0]?.lastError, 'newer');
  assert.deepEqual(readdirSync(join(tmp.dir, 'active')), []);
});

test('spool: a write failure is a SpoolWriteError, the input is drained, nothing is queued', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const spool = await Spool.open(tmp.dir, silentLogger());
  // Fault injection that works even as root (CI runs as root, which ignores permissions):
  // the data directory is replaced by a plain file, so creating a data file fails with ENOTDIR.
  rmSync(join(tmp.dir, 'data'), { recursive: true });
  writeFileSync(join(tmp.dir, 'data'), '');
  const input = Readable.from([Buffer.from('x'.repeat(1000))]);
  await assert.rejects(spool.incoming().write(input), SpoolWriteError);
  assert.ok(input.readableEnded);
  assert.deepEqual(await spool.list(), []);
});

test('spool: an error in the middle of the stream is a SpoolWriteError and leaves nothing after abort', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const spool = await Spool.open(tmp.dir, silentLogger());
  const incoming = spool.incoming();
  const broken = new Readable({
    read() {
      this.push(Buffer.from('partial'));
      this.destroy(new Error('client went away'));
    },
  });
  await assert.rejects(incoming.write(broken), SpoolWriteError);
  await incoming.abort();
  assert.deepEqual(readdirSync(join(tmp.dir, 'data')), []);
  await assert.rejects(incoming.commit({ envelope, client }), SpoolWriteError);
});

test('spool: a large message is streamed in chunks, not buffered', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const spool = await Spool.open(tmp.dir, silentLogger());
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let sent = 0;
  const total = 8 * 1024 * 1024;
  const source = new Readable({
    read() {
      if (sent >= total) return this.push(null);
      sent += chunk.length;
      this.push(chunk);
    },
  });
  const incoming = spool.incoming();
  assert.equal(await incoming.write(source), total);
  await incoming.commit({ envelope, client });
  assert.equal(statSync(spool.dataPath(incoming.id)).size, total);
});
