// The mail log through the real daemon: real SMTP clients, the relay delivering to the simulator,
// then the log read back with MailLogReader (the API the console uses) and with `m365-relay log`.
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { openSqlite } from '../src/maillog/sqlite.js';
import { MailLogReader, type MailLogMessage } from '../src/maillog/index.js';
import { QueueAdmin, wakeDaemon } from '../src/spool/index.js';
import { cli, rawConfigFor, sampleMessage, sendMessage, simulatorSuite, spawnRelay, startInProcessRelay, type InProcessRelay } from './helpers/harness.js';
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

  test('m365-relay log and log show against a running daemon', async (t) => {
    const work = suite.dir();
    const file = join(work, 'relay.yaml');
    const raw = rawConfigFor(suite.sim, join(work, 'spool'), { retry: { schedule: ['1h'], maxAge: '2h', jitter: 0 } });
    const relay = await spawnRelay(raw, work);
    t.after(() => relay.stop());
    const log = (...args: string[]) => cli(['log', ...args, '--config', file]);
    const json = (...args: string[]) => {
      const result = log(...args, '--json');
      assert.equal(result.code, 0, result.stderr);
      return JSON.parse(result.stdout) as Array<{ id: string; state: string; receivedAt: string; sender: string; subject: string | null }>;
    };

    // Polled in-process (read-only, as the CLI opens it); the CLI itself is checked below.
    const path = join(work, 'spool', 'maillog.sqlite');
    const stateOf = (id: string) => {
      try {
        const reader = MailLogReader.open(path);
        try {
          return reader.search({ id })[0]?.state;
        } finally {
          reader.close();
        }
      } catch {
        return undefined;
      }
    };
    const states = () => json().map((m) => m.state).join();
    // One at a time: an injected fault must meet the message it is meant for.
    const delivered = queueIdOf(
      (await sendMessage(relay.port, { from: 'mfp@printer.local', to: ['alice@contoso.com'], raw: `Message-ID: <q-1@printer.local>\r\n${sampleMessage({ from: 'mfp@printer.local', to: ['alice@contoso.com'], subject: 'Quarterly report' })}` })).response,
    );
    await waitFor('the first message delivered', () => stateOf(delivered) === 'delivered', 30_000, 200);
    suite.sim.faults.rejectRecipients.set('gone@contoso.com', '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup');
    t.after(() => suite.sim.faults.rejectRecipients.delete('gone@contoso.com'));
    const failed = queueIdOf((await sendMessage(relay.port, { to: ['gone@contoso.com'] })).response);
    await waitFor('the second message failed', () => stateOf(failed) === 'failed', 30_000, 200);
    suite.sim.faults.failNext(1, '451 4.7.500 Server busy. Please try again later.');
    const deferred = queueIdOf((await sendMessage(relay.port, { to: ['later@contoso.com'] })).response);
    await waitFor('the third message deferred', () => stateOf(deferred) === 'deferred', 30_000, 200);
    assert.equal(states(), 'deferred,failed,delivered');

    // An administrator holds the deferred message with the queue command; the log says who.
    const held = cli(['queue', 'hold', deferred, '--config', file]);
    assert.equal(held.code, 0, held.stderr);
    await waitFor('the hold in the mail log', () => stateOf(deferred) === 'held', 20_000, 200);
    assert.equal(states(), 'held,failed,delivered');

    assert.deepEqual(
      json().map((m) => m.id),
      [deferred, failed, delivered],
      'newest first',
    );
    // Every search option at once, each matching only the delivered message.
    const every = ['--to', 'ALICE@contoso.com', '--from', 'mfp@printer.local', '--message-id', 'q-1@printer.local', '--subject', 'quarterly', '--state', 'delivered'];
    const window = ['--since', '1h', '--until', new Date(Date.now() + 60_000).toISOString(), '--limit', '5'];
    assert.deepEqual(
      json(...every, ...window).map((m) => m.id),
      [delivered],
    );
    assert.deepEqual(
      json('--id', failed, '--state', 'failed').map((m) => m.id),
      [failed],
    );
    assert.deepEqual(
      json('--state', 'held', '--limit', '1').map((m) => m.id),
      [deferred],
    );
    assert.deepEqual(json('--until', '1h'), []);
    assert.match(json('--id', delivered)[0]?.receivedAt ?? '', /^\d{4}-\d\d-\d\dT/);

    const table = log();
    assert.equal(table.code, 0);
    assert.match(table.stdout, /^RECEIVED\s+ID\s+STATE\s+FROM\s+TO\s+SUBJECT\s+LAST REPLY/);
    assert.ok(table.stdout.indexOf(deferred) < table.stdout.indexOf(delivered), 'newest first');
    assert.match(table.stdout, /3 message\(s\)/);

    const show = log('show', delivered);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /state:\s+delivered/);
    assert.match(show.stdout, /subject:\s+Quarterly report/);
    assert.match(show.stdout, /attempt\s+account default \(smtp\), \d+ ms, upstream id \S+: 250 2\.0\.0 OK/);
    const heldShow = JSON.parse(log('show', deferred, '--json').stdout) as { message: { state: string }; events: Array<{ kind: string; detail: Record<string, unknown> }> };
    assert.equal(heldShow.message.state, 'held');
    assert.deepEqual(
      heldShow.events.map((e) => e.kind),
      ['received', 'attempt', 'deferred', 'admin', 'held'],
    );
    assert.equal(heldShow.events[3]?.detail.action, 'hold');
    assert.equal(typeof heldShow.events[3]?.detail.user, 'string');
    const failedShow = log('show', failed);
    assert.match(failedShow.stdout, /failed\s+550 5\.1\.10 .*; no failure notice/);

    // Mistakes: the reason on one line and where to read more.
    const unknown = log('show', '0ZZZZZZZZZZZZZZZZZZ');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no message 0ZZZZZZZZZZZZZZZZZZ in the mail log/);
    const bad = log('--state', 'lost');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--state takes one of delivered, deferred, failed, held[\s\S]*Try 'm365-relay log --help'/);
    const help = cli(['log', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: m365-relay log --config FILE/);
    assert.match(cli(['--help']).stdout, /m365-relay log show ID --config FILE/);
  });

  test('mailLog.enabled: false: no file and no reader', async (t) => {
    const dir = suite.dir();
    const spoolDir = join(dir, 'spool');
    const r = await startInProcessRelay(rawConfigFor(suite.sim, spoolDir, { mailLog: { enabled: false } }));
    t.after(() => r.stop());
    const id = queueIdOf((await sendMessage(r.port, { to: ['alice@contoso.com'] })).response);
    await waitFor('the delivery', () => r.logs.find((l) => l.event === 'delivered' && l.msgId === id), 20_000);
    assert.equal(r.relay.mailLog, null);
    assert.equal(existsSync(join(spoolDir, 'maillog.sqlite')), false);
  });

  test('a failure notice: the failed message says it was sent, and the notice has its own history', async (t) => {
    const dir = suite.dir();
    const r = await startInProcessRelay(rawConfigFor(suite.sim, join(dir, 'spool'), { failureNotices: { notify: 'admin', adminAddress: 'it@contoso.com' } }));
    t.after(() => r.stop());
    suite.sim.faults.rejectRecipients.set('missing@contoso.com', '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup');
    t.after(() => suite.sim.faults.rejectRecipients.delete('missing@contoso.com'));
    const failed = queueIdOf((await sendMessage(r.port, { to: ['missing@contoso.com'] })).response);
    await waitForState(r, failed, 'failed');
    const failure = r.relay.mailLog?.show(failed)?.events.find((e) => e.kind === 'failed');
    assert.equal(failure?.detail.noticeSent, true);
    const noticeId = String(failure?.detail.noticeId);
    const notice = await waitForState(r, noticeId, 'delivered');
    assert.deepEqual(notice.recipients, ['it@contoso.com']);
    assert.equal(notice.sender, '');
    assert.equal(notice.listener, 'local');
    assert.match(notice.subject ?? '', /\S/);
    assert.deepEqual(
      r.relay.mailLog?.show(noticeId)?.events.map((e) => e.kind),
      ['received', 'attempt', 'delivered'],
    );
  });

  test('a mail log locked by another program (an sqlite3 shell): mail flows at once, the records follow', async (t) => {
    const dir = suite.dir();
    const spoolDir = join(dir, 'spool');
    const r = await startInProcessRelay(rawConfigFor(suite.sim, spoolDir));
    t.after(() => r.stop());
    const first = queueIdOf((await sendMessage(r.port, { to: ['alice@contoso.com'] })).response);
    await waitForState(r, first, 'delivered');

    // Another writer holds the write lock, as `sqlite3 maillog.sqlite` with BEGIN IMMEDIATE would.
    const other = openSqlite(join(spoolDir, 'maillog.sqlite'), { busyTimeoutMs: 0 });
    t.after(() => other.close());
    other.exec('BEGIN IMMEDIATE');
    const during = queueIdOf((await sendMessage(r.port, { to: ['bob@contoso.com'] })).response);
    await waitFor('the delivery while locked', () => r.logs.find((l) => l.event === 'delivered' && l.msgId === during), 20_000);
    const error = await waitFor('the mail log error', () => r.logs.find((l) => l.event === 'maillog-error'), 10_000);
    assert.match(JSON.stringify(error), /SQLITE_BUSY|locked/i);
    other.exec('COMMIT');
    await waitForState(r, during, 'delivered', 60_000);
  });
});
