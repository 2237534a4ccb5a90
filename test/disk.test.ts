// A real full disk: the spool on a small tmpfs (mounting needs root, which CI has; elsewhere the
// test is skipped with the reason). Clients get 451/452 and keep their mail; acceptance resumes by
// itself when space returns.
import assert from 'node:assert/strict';
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { startListener } from './helpers/listener.js';
import { RawSmtp } from './helpers/rawSmtp.js';
import { rawConfigFor, sendMessage, startInProcessRelay, startTestSimulator } from './helpers/harness.js';
import { fillDisk, smallDisk } from './helpers/disk.js';
import { waitFor } from './helpers/wait.js';

test('disk full: ENOSPC mid-message answers 451, a reserve answers 452 4.3.1, both recover without a restart', async (t) => {
  const disk = smallDisk('2m');
  if ('refused' in disk) return t.skip(`cannot mount a tmpfs here (${disk.refused})`);
  const { mountPoint, unmount } = disk;
  // after() hooks run in order: the listener (registered below) closes first, then this unmounts.

  const spoolDir = join(mountPoint, 'spool');
  const { port, spool, logs } = await startListener(t, { maxMessageSize: 10_000_000 }, undefined, { dir: spoolDir, minFreeSpace: '512KB' });
  const s = await RawSmtp.connect(port);
  t.after(() => s.close());
  await s.command('EHLO x');

  // A 3 MB message does not fit on a 2 MB disk: the write fails with ENOSPC, the client gets 451
  // (it keeps the message), and the partial file is removed.
  const big = `Subject: big\r\n\r\n${'y'.repeat(3 * 1024 * 1024)}\r\n`;
  assert.equal(await s.send('a@b.c', ['x@contoso.com'], big), '451 4.3.0 Error: queue file write error, try again later');
  assert.ok(logs.find((l) => l.event === 'spool-error' && /ENOSPC|no space/i.test(String(l.err))));
  assert.deepEqual(readdirSync(join(spoolDir, 'data')), []);
  assert.match(await s.send('a@b.c', ['x@contoso.com'], 'Subject: small\r\n\r\nfits\r\n'), /^250 2\.0\.0/);

  // Under the reserve (512 KB free of 2 MB), new mail is refused before any byte is written.
  writeFileSync(join(mountPoint, 'ballast'), Buffer.alloc(1700 * 1024));
  assert.equal(await s.command('MAIL FROM:<a@b.c>'), '452 4.3.1 Insufficient system storage, try again later');
  rmSync(join(mountPoint, 'ballast'));
  assert.match(await s.send('a@b.c', ['x@contoso.com'], 'Subject: again\r\n\r\nspace is back\r\n'), /^250 2\.0\.0/);
  assert.equal((await spool.list()).length, 2);
  s.close();
  t.after(unmount);
});

test('disk full while an outcome is recorded: the write is retried until it lands, nothing stays in active/', async (t) => {
  const disk = smallDisk('4m');
  if ('refused' in disk) return t.skip(`cannot mount a tmpfs here (${disk.refused})`);
  const { mountPoint, unmount } = disk;
  const sim = await startTestSimulator({ rateLimit: null });
  const spoolDir = join(mountPoint, 'spool');
  const r = await startInProcessRelay(rawConfigFor(sim, spoolDir, { spool: { dir: spoolDir, minFreeSpace: '1KB' }, retry: { schedule: ['200ms'] } }));
  // after() hooks run in order: relay, simulator, then the tmpfs.
  t.after(() => r.stop());
  t.after(() => sim.close());
  t.after(unmount);

  // Exchange unreachable: the message is received and waits (its account holds).
  sim.faults.refuseConnections = true;
  await sendMessage(r.port, { to: ['full@contoso.com'] });
  await waitFor('the account holding', () => r.logs.find((l) => l.event === 'upstream-unavailable'), 10_000);

  // Fill the disk to the last byte: the next probe fails too, and recording that (the message
  // goes back to the queue with its last error) cannot be written.
  const ballast = join(mountPoint, 'ballast');
  fillDisk(ballast);
  await waitFor('the spool-write alert', () => r.logs.find((l) => l.event === 'alert' && l.alert === 'spool-write' && /ENOSPC|no space/i.test(JSON.stringify(l.err))), 30_000);
  assert.equal(readdirSync(join(spoolDir, 'active')).length, 1, 'still being recorded, not lost');

  // Room again, and Exchange back with one 451: the pending write lands, then the deferral, then the delivery.
  sim.faults.failNext(1, '451 4.7.500 Server busy. Please try again later.');
  sim.faults.refuseConnections = false;
  rmSync(ballast);
  await sim.waitForMessages(1, 30_000);
  await waitFor('the spool empty', () => readdirSync(join(spoolDir, 'active')).length === 0 && readdirSync(join(spoolDir, 'queue')).length === 0, 10_000);
  assert.ok(r.logs.some((l) => l.event === 'deferred' && l.class === 'temporary-failure'), 'the deferral was recorded once the disk had room');
});
