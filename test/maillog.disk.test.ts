// A mail log that cannot be written never costs a message: the mail log on a small tmpfs of its
// own (mounting needs root, which CI has; elsewhere skipped with the reason), made read-only or
// filled to the last byte under the running relay. Clients still get 250, the relay still
// delivers, the problem is logged (rate-limited), and the records are written once it is fixed.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { fillDisk, remount, smallDisk } from './helpers/disk.js';
import { rawConfigFor, sendMessage, simulatorSuite, startInProcessRelay, type InProcessRelay } from './helpers/harness.js';
import { waitFor } from './helpers/wait.js';

const suite = simulatorSuite();

async function relayWithMailLogOn(t: TestContext, size: string): Promise<{ r: InProcessRelay; mountPoint: string } | null> {
  const disk = smallDisk(size);
  if ('refused' in disk) {
    t.skip(`cannot mount a tmpfs here (${disk.refused})`);
    return null;
  }
  const spoolDir = join(suite.dir(), 'spool');
  const r = await startInProcessRelay(rawConfigFor(suite.sim, spoolDir, { mailLog: { path: join(disk.mountPoint, 'maillog.sqlite') } }));
  // after() hooks run in order: the relay stops, then the tmpfs goes.
  t.after(() => r.stop());
  t.after(disk.unmount);
  return { r, mountPoint: disk.mountPoint };
}

/** Sends one message and waits until the simulator has it: the 250 and the delivery. */
async function sendAndDeliver(r: InProcessRelay, to: string): Promise<string> {
  const before = suite.sim.received.length;
  const info = await sendMessage(r.port, { to: [to] });
  assert.match(info.response, /^250 /);
  const id = /queued as (\S+)/.exec(info.response)?.[1] ?? '';
  await waitFor(`${to} delivered upstream`, () => suite.sim.received.length > before && r.logs.find((l) => l.event === 'delivered' && l.msgId === id), 20_000);
  return id;
}

const inLog = (r: InProcessRelay, id: string) => r.relay.mailLog?.search({ id }).find((m) => m.state === 'delivered');

describe('mail log on a broken disk', () => {
  test('read-only: mail is accepted and delivered; the records are written once the file is writable again', async (t) => {
    const disk = smallDisk('8m');
    if ('refused' in disk) return t.skip(`cannot mount a tmpfs here (${disk.refused})`);
    const { mountPoint } = disk;
    const raw = rawConfigFor(suite.sim, join(suite.dir(), 'spool'), { mailLog: { path: join(mountPoint, 'maillog.sqlite') } });
    // A first run writes the mail log; then its file system goes read-only (Linux refuses that
    // while a file on it is open for writing, hence between two runs).
    const before = await startInProcessRelay(raw);
    t.after(() => before.stop());
    const first = await sendAndDeliver(before, 'alice@contoso.com');
    await waitFor('the first message in the mail log', () => inLog(before, first), 10_000);
    await before.stop();
    remount(mountPoint, 'ro');

    const r = await startInProcessRelay(raw);
    // after() hooks run in order: the relay stops, then the tmpfs goes.
    t.after(() => r.stop());
    t.after(disk.unmount);
    const during = [await sendAndDeliver(r, 'bob@contoso.com'), await sendAndDeliver(r, 'carol@contoso.com')];
    const error = await waitFor('the mail log error', () => r.logs.find((l) => l.event === 'maillog-error'), 10_000);
    assert.match(String(error.msg), /mail is still accepted and delivered/);
    assert.equal(r.logs.filter((l) => l.event === 'maillog-error').length, 1, 'said once, not per record');
    assert.equal(inLog(r, during[0]!), undefined);

    remount(mountPoint, 'rw');
    for (const id of during) await waitFor(`${id} in the mail log after the remount`, () => inLog(r, id), 60_000);
    assert.ok(r.logs.find((l) => l.event === 'maillog-recovered'));
    assert.ok(inLog(r, first), 'the first run\'s records are still there');
    assert.deepEqual(
      r.relay.mailLog?.show(during[0]!)?.events.map((e) => e.kind),
      ['received', 'attempt', 'delivered'],
      'the whole history, in order',
    );
  });

  test('read-only from the start: the relay starts and delivers without a mail log file', async (t) => {
    const disk = smallDisk('1m');
    if ('refused' in disk) return t.skip(`cannot mount a tmpfs here (${disk.refused})`);
    remount(disk.mountPoint, 'ro');
    const spoolDir = join(suite.dir(), 'spool');
    const r = await startInProcessRelay(rawConfigFor(suite.sim, spoolDir, { mailLog: { path: join(disk.mountPoint, 'maillog.sqlite') } }));
    t.after(() => r.stop());
    t.after(disk.unmount);
    await sendAndDeliver(r, 'dave@contoso.com');
    assert.ok(await waitFor('the mail log error', () => r.logs.find((l) => l.event === 'maillog-error'), 10_000));
    assert.equal(r.relay.mailLog, null, 'nothing to read');
  });

  test('full: mail is accepted and delivered; the records are written once there is room', async (t) => {
    const setup = await relayWithMailLogOn(t, '1m');
    if (!setup) return;
    const { r, mountPoint } = setup;
    const first = await sendAndDeliver(r, 'alice@contoso.com');
    await waitFor('the first message in the mail log', () => inLog(r, first), 10_000);

    const ballast = join(mountPoint, 'ballast');
    fillDisk(ballast);
    t.after(() => rmSync(ballast, { force: true }));
    const during: string[] = [];
    // Enough records that the WAL must grow past the pages it already has.
    for (let i = 0; i < 12 && !r.logs.some((l) => l.event === 'maillog-error'); i++) {
      during.push(await sendAndDeliver(r, `user${i}@contoso.com`));
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    const error = await waitFor('the mail log error', () => r.logs.find((l) => l.event === 'maillog-error'), 10_000);
    assert.match(JSON.stringify(error), /SQLITE_FULL|full|ENOSPC/i);
    // Still accepting and delivering while full.
    during.push(await sendAndDeliver(r, 'late@contoso.com'));

    rmSync(ballast);
    for (const id of during) await waitFor(`${id} in the mail log once there is room`, () => inLog(r, id), 90_000);
  });
});
