// The mail log through the real daemon: real SMTP clients, the relay delivering to the simulator,
// then the log read back with MailLogReader (the API the console uses) and with `m365-relay log`.
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { MailLogReader, type MailLogMessage } from '../src/maillog/index.js';
import { QueueAdmin } from '../src/spool/index.js';
import { wakeDaemon } from '../src/spool/index.js';
import { rawConfigFor, sampleMessage, sendMessage, simulatorSuite, startInProcessRelay, type InProcessRelay } from './helpers/harness.js';
import { waitFor } from './helpers/wait.js';

const suite = simulatorSuite();

/** The relay's own reader; waits (bounded) until the message's row reaches `state`. */
function waitForState(r: InProcessRelay, id: string, state: MailLogMessage['state'], timeoutMs = 20_000): Promise<MailLogMessage> {
  return waitFor(`message ${id} to be ${state} in the mail log`, () => r.relay.mailLog?.search({ id }).find((m) => m.state === state), timeoutMs);
}

function queueIdOf(response: string): string {
  const id = /queued as (\S+)/.exec(response)?.[1];
  assert.ok(id, `no queue id in "${response}"`);
  return id;
}

describe('mail log', () => {
  test('a delivered, a deferred-then-delivered, a failed and a held message each have their history', async (t) => {
    const dir = suite.dir();
    const spoolDir = join(dir, 'spool');
    const r = await startInProcessRelay(rawConfigFor(suite.sim, spoolDir, { retry: { schedule: ['300ms'], maxAge: '1h', jitter: 0 } }));
    t.after(() => r.stop());
    const reader = r.relay.mailLog;
    assert.ok(reader, 'the mail log is on by default');

    // Delivered at once.
    const delivered = queueIdOf(
      (await sendMessage(r.port, { from: 'scanner@printer.local', to: ['Alice@Contoso.com'], raw: `Message-ID: <scan-1@printer.local>\r\n${sampleMessage({ to: ['Alice@Contoso.com'], subject: 'Invoice =?utf-8?q?M=C3=A4rz?= 2026' })}` })).response,
    );
    const row = await waitForState(r, delivered, 'delivered');
    assert.equal(row.sender, 'scanner@printer.local');
    // nodemailer writes the domain in lower case; the local part stays as the device gave it.
    assert.deepEqual(row.recipients, ['Alice@contoso.com']);
    assert.equal(row.messageId, '<scan-1@printer.local>');
    assert.equal(row.subject, 'Invoice März 2026');
    assert.equal(row.clientAddress, '127.0.0.1');
    assert.equal(row.clientName !== null, true);
    assert.equal(row.tls, false);
    assert.equal(row.user, null);
    assert.equal(row.listener, `127.0.0.1:${r.port}`);
    assert.equal(row.account, 'default');
    assert.match(row.lastReply ?? '', /^250 2\.0\.0 OK <[^>]+>/);
    assert.ok(row.size > 0);
    const shown = r.relay.mailLog?.show(delivered);
    assert.ok(shown);
    assert.deepEqual(
      shown.events.map((e) => e.kind),
      ['received', 'attempt', 'delivered'],
    );
    const attempt = shown.events[1]!.detail;
    assert.equal(attempt.account, 'default');
    assert.equal(attempt.transport, 'smtp');
    assert.match(String(attempt.reply), /^250 /);
    assert.equal(typeof attempt.durationMs, 'number');
    const upstream = suite.sim.received.at(-1);
    assert.ok(upstream);
    assert.match(String(attempt.upstreamId), /\S+/);
    assert.ok(String(row.lastReply).includes(`<${String(attempt.upstreamId)}>`), 'the upstream queue id is the one in the 250 reply');

    // Deferred once (451), then delivered by the retry.
    suite.sim.faults.failNext(1, '451 4.7.500 Server busy. Please try again later.');
    const deferredThenDelivered = queueIdOf((await sendMessage(r.port, { to: ['bob@contoso.com'] })).response);
    await waitForState(r, deferredThenDelivered, 'delivered');
    const history = r.relay.mailLog?.show(deferredThenDelivered);
    assert.deepEqual(
      history?.events.map((e) => e.kind),
      ['received', 'attempt', 'deferred', 'attempt', 'delivered'],
    );
    const deferral = history?.events[2]?.detail ?? {};
    assert.match(String(deferral.reason), /451 4\.7\.500 Server busy/);
    assert.ok(typeof deferral.nextAttemptAt === 'string' && Number.isFinite(Date.parse(deferral.nextAttemptAt)), 'the next attempt is recorded');
    assert.match(String(history?.events[1]?.detail.reply), /^451 /);

    // Failed for good (550 for the only recipient).
    suite.sim.faults.rejectRecipients.set('nobody@contoso.com', '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup');
    t.after(() => suite.sim.faults.rejectRecipients.delete('nobody@contoso.com'));
    const failed = queueIdOf((await sendMessage(r.port, { to: ['nobody@contoso.com'] })).response);
    await waitForState(r, failed, 'failed');
    const failure = r.relay.mailLog?.show(failed)?.events.find((e) => e.kind === 'failed');
    assert.ok(failure);
    assert.match(String(failure.detail.reason), /550 5\.1\.10/);
    assert.equal(failure.detail.noticeSent, false, 'no failureNotices configured: no notice');

    // Held by an administrator (the queue command's record, picked up by the daemon) while deferred.
    suite.sim.faults.failNext(1, '451 4.7.500 Server busy. Please try again later.');
    const held = queueIdOf((await sendMessage(r.port, { to: ['carol@contoso.com'] })).response);
    await waitForState(r, held, 'deferred');
    await waitFor('the hold to be taken', async () => {
      try {
        await new QueueAdmin(r.relay.spool, { user: 'operator' }).hold(held);
        return true;
      } catch {
        return false; // being retried at this moment: try again
      }
    });
    await wakeDaemon(spoolDir);
    await waitForState(r, held, 'held');
    const heldEvents = r.relay.mailLog?.show(held)?.events ?? [];
    assert.deepEqual(
      heldEvents.filter((e) => e.kind === 'admin' || e.kind === 'held').map((e) => [e.kind, e.detail.user, e.detail.action]),
      [
        ['admin', 'operator', 'hold'],
        ['held', 'operator', undefined],
      ],
    );

    const counts = r.relay.mailLog?.stateCounts();
    assert.deepEqual(counts, { queued: 0, deferred: 0, delivered: 2, failed: 1, held: 1, deleted: 0 });
    const hours = r.relay.mailLog?.perHour(Date.now() - 24 * 3_600_000, Date.now() + 1) ?? [];
    assert.equal(hours.length, 25);
    assert.equal(hours.reduce((n, h) => n + h.delivered, 0), 2);
    assert.equal(hours.reduce((n, h) => n + h.failed, 0), 1);

    // The file and its WAL companions are the owner's only.
    const path = join(spoolDir, 'maillog.sqlite');
    for (const file of [path, `${path}-wal`, `${path}-shm`]) assert.equal(statSync(file).mode & 0o777, 0o600, `${file} is 0600`);

    // A reader of its own (as `m365-relay log` opens it) sees the same while the daemon runs.
    const own = MailLogReader.open(path);
    t.after(() => own.close());
    assert.deepEqual(
      own.search({}).map((m) => m.id),
      [held, failed, deferredThenDelivered, delivered],
      'newest first',
    );
  });
});
