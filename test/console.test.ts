// The web console's decisions, by tables: the plain-HTTP login rule, queue actions and filters,
// the mail log query, redirects, sessions (on an injected clock), CSRF, escaping, the chart.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { QueueListItem } from '../src/cli/queueList.js';
import { parseConfig } from '../src/config/index.js';
import { hourlyChart, last24Hours } from '../src/console/chart.js';
import { html, trusted } from '../src/console/html.js';
import { upstreamReplies } from '../src/console/pages.js';
import { actionsFor, filterQueue, isLoopback, parseLogQuery, plainHttpRefusal, safeBack } from '../src/console/policy.js';
import { csrfMatches, SESSION_IDLE_MS, SESSION_MAX_MS, SessionStore } from '../src/console/sessions.js';
import type { MailLogEvent } from '../src/maillog/index.js';
import { configProblems } from './helpers/configProblems.js';
import { tempDir } from './helpers/tmp.js';

const HASH = 'scrypt$N=16384,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA==$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=';
const config = (extra: string) => `
listen: [{ port: 2525 }]
spool: { dir: ./spool }
microsoft365: { tenantId: t, clientId: c, clientSecret: s, mailbox: relay@contoso.com }
${extra}
`;

describe('console configuration', () => {
  test('console on the http listener, loopback by default; http.tls paths relative to the file; plain HTTP logins off by default', (t) => {
    const tmp = tempDir();
    t.after(tmp.remove);
    mkdirSync(join(tmp.dir, 'tls'));
    for (const name of ['console.pem', 'console.key']) writeFileSync(join(tmp.dir, 'tls', name), '');
    const c = parseConfig(config(`http: { port: 8025, tls: { cert: tls/console.pem, key: tls/console.key } }\nconsole: { users: [{ username: admin, passwordHash: "${HASH}" }] }`), join(tmp.dir, 'relay.yaml'), {});
    assert.equal(c.http?.host, '127.0.0.1');
    assert.deepEqual(c.http?.tls, { cert: join(tmp.dir, 'tls/console.pem'), key: join(tmp.dir, 'tls/console.key') });
    assert.deepEqual(c.console, { users: [{ username: 'admin', passwordHash: HASH }], allowPlainHttp: false });
  });

  const refused: Array<[string, string, RegExp]> = [
    ['without http', `console: { users: [{ username: admin, passwordHash: "${HASH}" }] }`, /console: the console is served by the http listener: add http/],
    ['without users', 'http: { port: 8025 }\nconsole: { users: [] }', /console\.users: list at least one administrator/],
    ['a user twice', `http: { port: 8025 }\nconsole: { users: [{ username: admin, passwordHash: "${HASH}" }, { username: admin, passwordHash: "${HASH}" }] }`, /console\.users\[1\]\.username: admin is listed twice/],
    ['a password instead of a hash', 'http: { port: 8025 }\nconsole: { users: [{ username: admin, password: secret }] }', /console\.users\[0\]/],
    ['a malformed hash', 'http: { port: 8025 }\nconsole: { users: [{ username: admin, passwordHash: nope }] }', /console\.users\[0\]\.passwordHash: not a password hash from `m365-relay hash-password`/],
    ['a misspelt key', `http: { port: 8025 }\nconsole: { users: [{ username: admin, passwordHash: "${HASH}" }], allowPlainHTTP: true }`, /allowPlainHttp/],
  ];
  for (const [name, extra, expected] of refused) {
    test(`refused: ${name}`, () => assert.match(configProblems(config(extra), {}), expected));
  }
});

describe('console policy', () => {
  test('logins over plain HTTP only from loopback, unless TLS or allowPlainHttp', () => {
    const cases: Array<[boolean, boolean, string | undefined, boolean]> = [
      [false, false, '127.0.0.1', true],
      [false, false, '127.8.9.10', true],
      [false, false, '::1', true],
      [false, false, '::ffff:127.0.0.1', true],
      [false, false, '192.168.1.20', false],
      [false, false, '::ffff:192.168.1.20', false],
      [false, false, 'fe80::1', false],
      [false, false, undefined, false],
      [true, false, '192.168.1.20', true],
      [false, true, '192.168.1.20', true],
    ];
    for (const [tls, allowPlainHttp, clientAddress, allowed] of cases) {
      const refusal = plainHttpRefusal({ tls, allowPlainHttp, clientAddress });
      assert.equal(refusal === null, allowed, `${JSON.stringify({ tls, allowPlainHttp, clientAddress })}`);
      if (refusal) assert.match(refusal, /http\.tls.*console\.allowPlainHttp: true/);
    }
    assert.equal(isLoopback('10.0.0.1'), false);
  });

  test('actions offered per state follow the queue commands', () => {
    assert.deepEqual(actionsFor('queued'), ['retry', 'hold', 'delete']);
    assert.deepEqual(actionsFor('deferred'), ['retry', 'hold', 'delete']);
    assert.deepEqual(actionsFor('hold'), ['release', 'retry', 'delete']);
    assert.deepEqual(actionsFor('failed'), ['retry', 'delete']);
    assert.deepEqual(actionsFor('corrupt'), ['restore']);
  });

  test('queue filters: state and account exactly, sender and recipient by part, any case', () => {
    const item = (id: string, state: QueueListItem['state'], account: string, from: string, to: string[]): QueueListItem => ({ id, state, account, from, recipients: to, attempts: 0, lastError: null, nextAttemptAt: null, route: null, parent: null, part: null });
    const items = [item('A', 'deferred', 'default', 'scanner@printer.local', ['Alice@contoso.com']), item('B', 'failed', 'ops', 'ups@ops.contoso.com', ['bob@contoso.com', 'carol@fabrikam.com']), item('C', 'hold', 'default', '', ['dave@contoso.com'])];
    const ids = (f: Parameters<typeof filterQueue>[1]) => filterQueue(items, f).map((i) => i.id).join('');
    assert.equal(ids({}), 'ABC');
    assert.equal(ids({ state: 'failed' }), 'B');
    assert.equal(ids({ account: 'default' }), 'AC');
    assert.equal(ids({ from: 'PRINTER' }), 'A');
    assert.equal(ids({ to: 'alice@contoso.com' }), 'A');
    assert.equal(ids({ to: 'fabrikam' }), 'B');
    assert.equal(ids({ state: 'hold', to: 'fabrikam' }), '');
  });

  test('the mail log query is read as the log command reads its options', () => {
    const now = Date.parse('2026-05-04T12:00:00Z');
    const parse = (q: string) => parseLogQuery(new URLSearchParams(q), now);
    assert.deepEqual(parse(''), { filter: { limit: 50 }, problem: null });
    assert.deepEqual(parse('to=&from=&state=&since='), { filter: { limit: 50 }, problem: null });
    assert.deepEqual(parse('to=bob%40contoso.com&state=failed&since=2h&limit=20&message-id=%3Cx%40y%3E&account=ops'), {
      filter: { to: 'bob@contoso.com', state: 'failed', since: now - 7_200_000, limit: 20, messageId: '<x@y>', account: 'ops' },
      problem: null,
    });
    assert.equal(parse('until=2026-05-01T08:00:00Z').filter.until, Date.parse('2026-05-01T08:00:00Z'));
    assert.equal(parse('limit=999999').filter.limit, 1000);
    assert.match(parse('state=bounced').problem ?? '', /^state takes one of delivered, deferred, failed, held/);
    assert.match(parse('since=yesterday-ish').problem ?? '', /^since takes a duration/);
    assert.match(parse('limit=-1').problem ?? '', /^limit takes a positive whole number/);
  });

  test('back after an action: only a path of this console', () => {
    const cases: Array<[unknown, string]> = [
      ['/queue?state=failed', '/queue?state=failed'],
      ['/message/0MIB2K3F4A1B2C3D4E5', '/message/0MIB2K3F4A1B2C3D4E5'],
      ['//evil.example/x', '/queue'],
      ['/\\evil.example', '/queue'],
      ['https://evil.example/', '/queue'],
      ['javascript:alert(1)', '/queue'],
      ['/a b', '/queue'],
      [undefined, '/queue'],
    ];
    for (const [value, expected] of cases) assert.equal(safeBack(value), expected, String(value));
  });
});

describe('console sessions', () => {
  test('a session ends after 30 minutes idle and 12 hours after the login, whatever the activity', () => {
    let now = 1_000_000;
    const store = new SessionStore(() => now);
    const s = store.create('admin');
    now += SESSION_IDLE_MS - 1;
    assert.equal(store.touch(s.id)?.username, 'admin', 'used just before the idle limit');
    now += SESSION_IDLE_MS + 1;
    assert.equal(store.touch(s.id), null, 'idle too long');

    const busy = store.create('admin');
    for (let t = 0; t < SESSION_MAX_MS; t += SESSION_IDLE_MS / 2) {
      now += SESSION_IDLE_MS / 2;
      if (now - busy.createdAt <= SESSION_MAX_MS) assert.ok(store.touch(busy.id), `alive at ${now - busy.createdAt} ms`);
    }
    now = busy.createdAt + SESSION_MAX_MS + 1;
    assert.equal(store.touch(busy.id), null, 'past the absolute lifetime');
    assert.equal(store.touch(undefined), null);
    assert.equal(store.touch('forged'), null);
  });

  test('ending a session; ids and CSRF tokens are long random strings; the token is compared exactly', () => {
    const store = new SessionStore();
    const a = store.create('alice');
    const b = store.create('bob');
    assert.notEqual(a.id, b.id);
    assert.notEqual(a.csrf, b.csrf);
    assert.ok(a.id.length >= 43 && a.csrf.length >= 43);
    assert.ok(store.touch(a.id) && store.touch(b.id));
    store.end(b.id);
    assert.equal(store.touch(b.id), null);
    assert.equal(csrfMatches(a, a.csrf), true);
    for (const wrong of [undefined, '', a.csrf.slice(1), `${a.csrf}x`, b.csrf, 42]) assert.equal(csrfMatches(a, wrong), false, String(wrong));
  });
});

describe('console rendering', () => {
  test('every value is escaped; markup only from html itself', () => {
    const evil = `<script>alert("x")</script>'&`;
    assert.equal(html`<p title="${evil}">${evil}</p>`.text, '<p title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;&amp;">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;&amp;</p>');
    assert.equal(html`<ul>${['a<', 'b'].map((x) => html`<li>${x}</li>`)}</ul>`.text, '<ul><li>a&lt;</li><li>b</li></ul>');
    assert.equal(html`${null}${undefined}${false}${0}${trusted('<b>')}`.text, '0<b>');
  });

  test('the chart has the 24 hours ending now, in order, each with its figures', () => {
    const hour = 3_600_000;
    const now = Date.parse('2026-05-04T12:34:00Z');
    const current = Date.parse('2026-05-04T12:00:00Z');
    const hours = last24Hours([{ hourStart: current, delivered: 3, failed: 1 }, { hourStart: current - 5 * hour, delivered: 7, failed: 0 }, { hourStart: current - 30 * hour, delivered: 9, failed: 9 }], now);
    assert.equal(hours.length, 24);
    assert.equal(hours[0]?.hourStart, current - 23 * hour);
    assert.deepEqual(hours[23], { hourStart: current, delivered: 3, failed: 1 });
    assert.deepEqual(hours[18], { hourStart: current - 5 * hour, delivered: 7, failed: 0 });
    assert.equal(hours.reduce((n, h) => n + h.delivered + h.failed, 0), 11, 'older hours are left out');
    const svg = hourlyChart(hours).text;
    assert.match(svg, /aria-label="Last 24 hours: 10 delivered, 1 failed"/);
    assert.equal((svg.match(/class="delivered"/g) ?? []).length, 2);
    assert.equal((svg.match(/class="failed"/g) ?? []).length, 1);
    assert.match(svg, /<title>12:00 UTC: 3 delivered, 1 failed<\/title>/);
    assert.doesNotMatch(svg, /style=|<script/, 'nothing the CSP would block');
  });

  test("upstream replies: each attempt's reply, or the reason recorded after it when Exchange refused before DATA", () => {
    const ev = (at: number, kind: MailLogEvent['kind'], detail: Record<string, unknown>): MailLogEvent => ({ at, kind, detail });
    const replies = upstreamReplies([
      ev(1, 'received', {}),
      ev(2, 'attempt', { account: 'default', reply: null, durationMs: 10 }),
      ev(3, 'deferred', { reason: '451 4.7.500 Server busy' }),
      ev(4, 'attempt', { account: 'default', reply: null }),
      ev(5, 'attempt', { account: 'ops', reply: '250 2.0.0 OK <X@Y> [Hostname=Z]', upstreamId: 'X@Y', durationMs: 65 }),
      ev(6, 'delivered', { reply: '250 2.0.0 OK <X@Y> [Hostname=Z]' }),
    ]);
    assert.deepEqual(replies, [
      { at: 2, account: 'default', reply: '451 4.7.500 Server busy', upstreamId: undefined, durationMs: 10 },
      { at: 5, account: 'ops', reply: '250 2.0.0 OK <X@Y> [Hostname=Z]', upstreamId: 'X@Y', durationMs: 65 },
    ]);
  });
});
