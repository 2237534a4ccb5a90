// The mail log's writer and reader on a real SQLite file: search by each field, retention pruning
// on node:test's mock clock, and the writer's behaviour when the file cannot be used.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { filterOf, formatLogShow, formatLogTable, LogArgumentError } from '../src/cli/mailLog.js';
import { MailLogReader, MailLogUnavailableError, MailLogWriter, searchQuery, type MailLogEntry, type MessageFacts } from '../src/maillog/index.js';
import { openSqlite } from '../src/maillog/sqlite.js';
import { captureLogger } from './helpers/logs.js';
import { tempDir } from './helpers/tmp.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const T0 = Date.parse('2026-05-04T10:00:00Z');

function facts(over: Partial<MessageFacts> = {}): MessageFacts {
  return {
    receivedAt: T0,
    sender: 'scanner@printer.local',
    recipients: ['alice@contoso.com'],
    size: 1234,
    messageId: '<m1@printer.local>',
    subject: 'Scan',
    clientAddress: '192.0.2.10',
    clientName: 'mfp-3',
    user: null,
    listener: '0.0.0.0:25',
    tls: false,
    account: 'default',
    parent: null,
    ...over,
  };
}

function received(id: string, over: Partial<MessageFacts> = {}): MailLogEntry {
  const f = facts(over);
  return { id, at: f.receivedAt, kind: 'received', detail: { clientAddress: f.clientAddress }, facts: f };
}

function withWriter(t: TestContext, options: Partial<ConstructorParameters<typeof MailLogWriter>[0]> = {}) {
  const tmp = tempDir();
  t.after(tmp.remove);
  const { logger, lines } = captureLogger();
  const path = join(tmp.dir, 'maillog.sqlite');
  const writer = new MailLogWriter({ path, retentionMs: 30 * DAY, recordSubjects: true, logger, ...options });
  t.after(() => writer.close());
  return { writer, path, lines, dir: tmp.dir };
}

function openReader(t: TestContext, path: string): MailLogReader {
  const reader = MailLogReader.open(path);
  t.after(() => reader.close());
  return reader;
}

describe('mail log search', () => {
  test('finds messages by each field, newest first', (t) => {
    const { writer, path } = withWriter(t);
    writer.start();
    writer.record(received('A1', { receivedAt: T0, sender: 'Scanner@Printer.local', recipients: ['Alice@Contoso.com', 'bob@contoso.com'], messageId: '<Scan-1@printer.local>', subject: 'Invoice MÄRZ', account: 'default' }));
    writer.record(received('A2', { receivedAt: T0 + HOUR, sender: 'ups@alerts.local', recipients: ['user@bücher.de'], messageId: '<ups@x>', subject: 'Battery low', account: 'alerts' }));
    writer.record(received('A3', { receivedAt: T0 + 2 * HOUR, sender: '', recipients: ['jimbob@contoso.com'], messageId: null, subject: null }));
    writer.record({ id: 'A1', at: T0 + 60_000, kind: 'delivered', detail: { to: ['Alice@Contoso.com'] }, lastReply: '250 2.0.0 OK <q1>' });
    writer.record({ id: 'A2', at: T0 + HOUR + 60_000, kind: 'deferred', detail: { reason: '451 busy' } });
    writer.record({ id: 'A3', at: T0 + 2 * HOUR + 60_000, kind: 'failed', detail: { reason: '550 no' } });
    writer.flush();
    const reader = openReader(t, path);
    const ids = (filter: Parameters<MailLogReader['search']>[0]) => reader.search(filter).map((m) => m.id);

    assert.deepEqual(ids({}), ['A3', 'A2', 'A1'], 'newest first');
    // Recipient: a full address is that mailbox, any case; IDN in either form; a part matches any.
    assert.deepEqual(ids({ to: 'alice@contoso.com' }), ['A1']);
    assert.deepEqual(ids({ to: 'BOB@CONTOSO.COM' }), ['A1']);
    assert.deepEqual(ids({ to: 'bob@contoso.com' }), ['A1'], 'jimbob@ is another mailbox');
    assert.deepEqual(ids({ to: 'user@xn--bcher-kva.de' }), ['A2']);
    assert.deepEqual(ids({ to: 'User@Bücher.de' }), ['A2']);
    assert.deepEqual(ids({ to: '@bücher.de' }), ['A2']);
    assert.deepEqual(ids({ to: '@contoso.com' }), ['A3', 'A1']);
    assert.deepEqual(ids({ to: 'bob' }), ['A3', 'A1']);
    // Sender, likewise.
    assert.deepEqual(ids({ from: 'scanner@printer.local' }), ['A1']);
    assert.deepEqual(ids({ from: 'alerts' }), ['A2']);
    // Queue id, Message-ID (with or without brackets, any case), subject (any case, Unicode).
    assert.deepEqual(ids({ id: 'A2' }), ['A2']);
    assert.deepEqual(ids({ messageId: '<scan-1@printer.local>' }), ['A1']);
    assert.deepEqual(ids({ messageId: 'Scan-1@printer.local' }), ['A1']);
    assert.deepEqual(ids({ subject: 'märz' }), ['A1']);
    assert.deepEqual(ids({ subject: 'BATTERY' }), ['A2']);
    // State, account, time range, limit.
    assert.deepEqual(ids({ state: 'delivered' }), ['A1']);
    assert.deepEqual(ids({ state: 'deferred' }), ['A2']);
    assert.deepEqual(ids({ state: 'failed' }), ['A3']);
    assert.deepEqual(ids({ state: 'held' }), []);
    assert.deepEqual(ids({ account: 'alerts' }), ['A2']);
    assert.deepEqual(ids({ since: T0 + HOUR }), ['A3', 'A2']);
    assert.deepEqual(ids({ until: T0 + HOUR }), ['A2', 'A1']);
    assert.deepEqual(ids({ since: T0 + 30 * 60_000, until: T0 + 90 * 60_000 }), ['A2']);
    assert.deepEqual(ids({ limit: 2 }), ['A3', 'A2']);
    assert.deepEqual(ids({ to: '@contoso.com', state: 'failed' }), ['A3'], 'filters combine');
    assert.deepEqual(ids({ subject: "%' OR 1=1 --" }), [], 'search text is data, never SQL');

    const a1 = reader.show('A1');
    assert.equal(a1?.message.state, 'delivered');
    assert.equal(a1?.message.lastReply, '250 2.0.0 OK <q1>');
    assert.deepEqual(
      a1?.events.map((e) => e.kind),
      ['received', 'delivered'],
    );
    assert.equal(reader.show('NOPE'), null);
    assert.deepEqual(reader.stateCounts(), { queued: 0, deferred: 1, delivered: 1, failed: 1, held: 0, deleted: 0 });
  });

  test('log output shows control characters from devices and servers as "?"', () => {
    const m = { ...facts({ subject: 'Scan \x1b[2J\x1b]0;pwned\x07', clientName: 'evil\r\nhost' }), id: 'X1', state: 'delivered' as const, updatedAt: T0, lastReply: '250 ok\x1b[31m' };
    const table = formatLogTable([m], 50);
    const show = formatLogShow({ message: m, events: [{ at: T0, kind: 'received', detail: { clientAddress: '192.0.2.1', clientName: 'evil\r\nhost' } }] });
    for (const text of [table, show]) assert.equal(/[\x00-\x09\x0b-\x1f\x7f]/.test(text), false, JSON.stringify(text));
    assert.match(table, /Scan \?\[2J/);
  });

  test('searchQuery: every value is a parameter', () => {
    const { sql, params } = searchQuery({ to: 'a@b.c', subject: 'x', state: 'held', limit: 5 });
    assert.equal(sql.includes('a@b.c'), false);
    assert.deepEqual(params, ['a@b.c', 'x', 'held', 5]);
    assert.match(sql, /ORDER BY received_at DESC, id DESC LIMIT \?$/);
  });

  test('log options as a search (table)', () => {
    const now = T0;
    const cases: Array<[Record<string, string>, object]> = [
      [{ since: '2h' }, { since: now - 2 * HOUR }],
      [{ since: '30m', until: '10m' }, { since: now - 30 * 60_000, until: now - 10 * 60_000 }],
      [{ since: '2026-05-01T00:00:00Z' }, { since: Date.parse('2026-05-01T00:00:00Z') }],
      [{ until: '2026-05-04T09:00:00Z' }, { until: Date.parse('2026-05-04T09:00:00Z') }],
      [{ state: 'held', limit: '10' }, { state: 'held', limit: 10 }],
      [{ to: ' bob@contoso.com ', 'message-id': '<x@y>' }, { to: 'bob@contoso.com', messageId: '<x@y>' }],
    ];
    for (const [options, expected] of cases) assert.deepEqual(filterOf(options, now), expected, JSON.stringify(options));
    const refused: Array<Record<string, string>> = [{ state: 'queued' }, { since: 'yesterday-ish' }, { limit: '0' }, { limit: 'ten' }, { to: '' }, { since: '1h', until: '2h' }];
    for (const options of refused) assert.throws(() => filterOf(options, now), LogArgumentError, JSON.stringify(options));
  });
});

describe('mail log writer', () => {
  test('writes in the background: record() returns at once, the tick writes one batch', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: T0 });
    const { writer, path } = withWriter(t);
    writer.start();
    writer.record(received('B1'));
    const reader = openReader(t, path);
    assert.deepEqual(reader.search({}), [], 'nothing written yet');
    t.mock.timers.tick(100);
    assert.deepEqual(
      reader.search({}).map((m) => m.id),
      ['B1'],
    );
  });

  test('a backlog is written a batch per turn of the event loop, never all at once', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: T0 });
    const { writer, path } = withWriter(t);
    writer.start();
    for (let i = 0; i < 450; i++) writer.record(received(`K${i}`, { receivedAt: T0 + i }));
    const reader = openReader(t, path);
    const count = () => reader.search({ limit: 1000 }).length;
    t.mock.timers.tick(100);
    assert.equal(count(), 200);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(count(), 400);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(count(), 450);
  });

  test('retention: messages whose last event is older are pruned in the background', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: T0 });
    const { writer, path } = withWriter(t, { retentionMs: 2 * DAY, pruneEveryMs: HOUR });
    writer.start();
    writer.record(received('OLD', { receivedAt: T0 }));
    writer.record(received('BUSY', { receivedAt: T0 }));
    writer.record({ id: 'ORPHAN', at: T0, kind: 'admin', detail: { user: 'root', action: 'delete' } });
    t.mock.timers.tick(100);
    const reader = openReader(t, path);
    assert.equal(reader.search({}).length, 2);

    // A day later BUSY has news; an hour past two days after T0, OLD's last event is past retention.
    t.mock.timers.tick(DAY);
    writer.record({ id: 'BUSY', at: Date.now(), kind: 'deferred', detail: { reason: '451' } });
    t.mock.timers.tick(DAY - HOUR);
    assert.deepEqual(
      reader.search({}).map((m) => m.id).sort(),
      ['BUSY', 'OLD'],
      'within the retention: kept',
    );
    t.mock.timers.tick(2 * HOUR);
    assert.deepEqual(
      reader.search({}).map((m) => m.id),
      ['BUSY'],
    );
    assert.equal(reader.show('OLD'), null);
    assert.equal((reader as unknown as { db: { prepare(sql: string): { get(): { n: number } } } }).db.prepare("SELECT count(*) AS n FROM events WHERE message IN ('OLD', 'ORPHAN')").get().n, 0, 'their events are gone too');
    t.mock.timers.tick(DAY);
    assert.deepEqual(reader.search({}), []);
  });

  test('recordSubjects: false keeps subjects out of the file', (t) => {
    const { writer, path } = withWriter(t, { recordSubjects: false });
    writer.start();
    writer.record(received('S1', { subject: 'Salary review: Bob' }));
    writer.close();
    const reader = openReader(t, path);
    assert.equal(reader.show('S1')?.message.subject, null);
    assert.equal(readFileSync(path).includes('Salary review'), false);
  });

  test('the file and its -wal and -shm are 0600 whatever the umask', (t) => {
    const old = process.umask(0);
    t.after(() => process.umask(old));
    const { writer, path } = withWriter(t);
    writer.start();
    writer.record(received('P1'));
    writer.flush();
    for (const file of [path, `${path}-wal`, `${path}-shm`]) assert.equal(statSync(file).mode & 0o777, 0o600, file);
  });

  test('a file that is not a database is moved aside and a new mail log started', (t) => {
    const { writer, path, lines, dir } = withWriter(t);
    writeFileSync(path, 'this is not SQLite, '.repeat(500), { mode: 0o600 });
    writer.start();
    writer.record(received('C1'));
    writer.flush();
    assert.ok(lines.find((l) => l.event === 'maillog-error' && typeof l.movedTo === 'string'));
    assert.equal(readdirSync(dir).filter((n) => n.includes('.broken-')).length >= 1, true);
    assert.deepEqual(
      openReader(t, path).search({}).map((m) => m.id),
      ['C1'],
    );
  });

  test('an unusable place: record() never throws, the error is logged once, entries wait and are written when it works again', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: T0 });
    const { writer, path, lines } = withWriter(t);
    // A directory where the file should be: every open fails.
    mkdirSync(path);
    writer.start();
    for (let i = 0; i < 20; i++) {
      writer.record(received(`E${i}`));
      t.mock.timers.tick(1_000);
    }
    const errors = lines.filter((l) => l.event === 'maillog-error');
    assert.equal(errors.length, 1, 'rate-limited');
    assert.match(String(errors[0]?.msg), /mail is still accepted and delivered/);
    rmdirSync(path);
    t.mock.timers.tick(60_000);
    assert.ok(lines.find((l) => l.event === 'maillog-recovered'));
    assert.equal(openReader(t, path).search({ limit: 100 }).length, 20, 'nothing lost');
  });

  test('entries beyond maxPending are dropped oldest first, and the loss is reported', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: T0 });
    const { writer, path, lines } = withWriter(t, { maxPending: 5 });
    mkdirSync(path);
    writer.start();
    for (let i = 0; i < 8; i++) writer.record(received(`D${i}`, { receivedAt: T0 + i }));
    rmdirSync(path);
    t.mock.timers.tick(60_000);
    assert.deepEqual(
      openReader(t, path).search({}).map((m) => m.id),
      ['D7', 'D6', 'D5', 'D4', 'D3'],
    );
    assert.equal(lines.find((l) => l.event === 'maillog-recovered')?.dropped, 3);
  });

  test('the reader says what is wrong with a missing file', () => {
    assert.throws(() => MailLogReader.open('/nonexistent/maillog.sqlite'), (err: Error) => err instanceof MailLogUnavailableError && /no mail log at/.test(err.message));
  });
});

test('the SQLite engine: node:sqlite where Node has it (Node 24 never loads better-sqlite3 12, which aborts there), better-sqlite3 before', (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const db = openSqlite(join(tmp.dir, 'engine.sqlite'), { busyTimeoutMs: 0 });
  try {
    const builtin = (() => {
      try {
        return process.getBuiltinModule?.('node:sqlite') !== undefined;
      } catch {
        return false;
      }
    })();
    assert.equal(db.engine, builtin ? 'node:sqlite' : 'better-sqlite3');
    db.exec('CREATE TABLE t (a TEXT, b INTEGER)');
    const insert = db.prepare('INSERT INTO t (a, b) VALUES (@a, @b)');
    db.transaction(() => {
      assert.equal(Number(insert.run({ a: 'Ä', b: 1 }).changes), 1);
      insert.run({ a: 'x', b: 2 });
    })();
    assert.throws(() => db.transaction(() => {
      insert.run({ a: 'rolled back', b: 3 });
      throw new Error('boom');
    })(), /boom/);
    db.defineFunction('fold', (v) => (typeof v === 'string' ? v.toLowerCase() : null));
    assert.deepEqual(db.prepare('SELECT fold(a) AS f FROM t ORDER BY b').all().map((r) => ({ ...(r as object) })), [{ f: 'ä' }, { f: 'x' }]);
    db.pragma('user_version = 7');
    assert.equal(Number(db.pragma('user_version')), 7);
  } finally {
    db.close();
  }
  const loaded = Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('better-sqlite3'));
  assert.equal(loaded, db.engine === 'better-sqlite3', 'better-sqlite3 is loaded only where it is the engine');
});
