import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classify } from '../src/relay/classify.js';
import { applyTransaction, decideOutcome, type TransactionResult } from '../src/relay/outcome.js';
import type { MessageMeta } from '../src/spool/index.js';

const NOW = Date.parse('2026-11-26T12:00:00Z');
const policy = { schedule: [15_000, 60_000, 120_000], maxAge: 5 * 86_400_000, jitter: 0 };
const pauses = { throttlePause: 30_000, quotaPause: 3_600_000 };

function meta(to: string[], extra: Partial<MessageMeta> = {}): MessageMeta {
  return {
    version: 1,
    id: '0MIB2K3F4A1B2C3D4E5',
    envelope: { from: 'scanner@printer.local', to },
    recipients: to.map((address) => ({ address, status: 'pending' as const })),
    client: { address: '127.0.0.1' },
    size: 100,
    receivedAt: new Date(NOW - 60_000).toISOString(),
    attempts: 0,
    nextAttemptAt: null,
    lastError: null,
    ...extra,
  };
}

function run(m: MessageMeta, result: TransactionResult, sent = m.recipients.filter((r) => r.status === 'pending').map((r) => r.address)) {
  const { recipients, failure } = applyTransaction(m.recipients, sent, result);
  return decideOutcome({ meta: m, recipients, failure, policy, pauses, now: NOW, random: 0 });
}

const ok = (rejected: Array<{ address: string; responseCode?: number; response: string }> = []): TransactionResult => ({ kind: 'accepted', rejected, response: '250 2.0.0 OK <q1@x>' });
const failed = (failure: Parameters<typeof classify>[0], rejected: Array<{ address: string; responseCode?: number; response: string }> = []): TransactionResult => ({ kind: 'failed', failure, rejected });

const cases: Array<{ name: string; meta: MessageMeta; result: TransactionResult; action: string; account: string; attempts: number; statuses?: string[]; alert?: string | null }> = [
  { name: 'final 250: complete', meta: meta(['a@contoso.com']), result: ok(), action: 'complete', account: 'reachable', attempts: 1 },
  {
    name: 'an IDN recipient reported in punycode is delivered, not left pending',
    meta: meta(['alice@contoso.com', 'user@bücher.de']),
    result: ok(),
    action: 'complete',
    account: 'reachable',
    attempts: 1,
  },
  {
    name: 'a rejection reported in punycode and another case fails the IDN recipient only',
    meta: meta(['alice@contoso.com', 'user@Bücher.de']),
    result: ok([{ address: 'user@xn--bcher-kva.de', responseCode: 550, response: '550 5.1.10 RESOLVER.ADR.RecipientNotFound' }]),
    action: 'fail',
    account: 'reachable',
    attempts: 1,
    statuses: ['delivered', 'failed'],
  },
  {
    name: 'a 4xx to one RCPT defers that recipient only',
    meta: meta(['a@contoso.com', 'b@contoso.com']),
    result: ok([{ address: 'b@contoso.com', responseCode: 451, response: '451 4.4.0 try later' }]),
    action: 'defer',
    account: 'reachable',
    attempts: 1,
    statuses: ['delivered', 'pending'],
  },
  { name: '451 at the end of DATA: the message is deferred (charged)', meta: meta(['a@contoso.com']), result: failed({ responseCode: 451, response: '451 4.7.500 Server busy', stage: 'envelope' }), action: 'defer', account: 'reachable', attempts: 1 },
  { name: 'connection lost after the data was sent: deferred (a duplicate is possible, a loss is not)', meta: meta(['a@contoso.com']), result: failed({ code: 'ECONNECTION', message: 'Connection closed unexpectedly', stage: 'data' }), action: 'defer', account: 'reachable', attempts: 1 },
  { name: 'connection refused: the account holds, the message is not charged', meta: meta(['a@contoso.com']), result: failed({ code: 'ESOCKET', message: 'connect ECONNREFUSED' }), action: 'requeue', account: 'hold', attempts: 0, alert: null },
  { name: '421 at the greeting: the account holds', meta: meta(['a@contoso.com']), result: failed({ code: 'EPROTOCOL', responseCode: 421, response: '421 4.3.2 Service not available', stage: 'session' }), action: 'requeue', account: 'hold', attempts: 0 },
  { name: 'a reset between MAIL and DATA: the account holds', meta: meta(['a@contoso.com']), result: failed({ code: 'ECONNECTION', message: 'Connection closed unexpectedly', stage: 'envelope' }), action: 'requeue', account: 'hold', attempts: 0 },
  { name: 'token endpoint down: the account holds', meta: meta(['a@contoso.com']), result: failed({ code: 'ETOKEN', tokenKind: 'transient', message: '503', stage: 'session' }), action: 'requeue', account: 'hold', attempts: 0 },
  { name: 'wrong secret: the account holds and alerts', meta: meta(['a@contoso.com']), result: failed({ code: 'ETOKEN', tokenKind: 'configuration', message: 'AADSTS7000215', stage: 'session' }), action: 'requeue', account: 'hold', attempts: 0, alert: 'configuration' },
  { name: 'SMTP AUTH disabled: the account holds and alerts', meta: meta(['a@contoso.com']), result: failed({ code: 'EAUTH', responseCode: 535, response: '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled' }), action: 'requeue', account: 'hold', attempts: 0, alert: 'configuration' },
  { name: 'throttled (432): the account pauses 30 s, the message is not charged', meta: meta(['a@contoso.com']), result: failed({ responseCode: 432, response: '432 4.3.2 Concurrent connections limit exceeded.', stage: 'envelope' }), action: 'requeue', account: 'pause:30000', attempts: 0 },
  { name: 'daily quota: the account pauses an hour and alerts', meta: meta(['a@contoso.com']), result: failed({ responseCode: 554, response: '554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException', stage: 'envelope' }), action: 'requeue', account: 'pause:3600000', attempts: 0, alert: 'quota' },
  { name: 'SendAsDenied: failed, with advice in the classification', meta: meta(['a@contoso.com']), result: failed({ responseCode: 554, response: '554 5.2.252 SendAsDenied; relay@contoso.com not allowed to send as x@y', stage: 'data' }), action: 'fail', account: 'reachable', attempts: 1 },
  { name: '552 too large: failed', meta: meta(['a@contoso.com']), result: failed({ responseCode: 552, response: '552 5.3.4 Message size exceeds fixed maximum message size', stage: 'envelope' }), action: 'fail', account: 'reachable', attempts: 1 },
  {
    name: 'every recipient rejected one by one: each keeps its own reply',
    meta: meta(['a@contoso.com', 'b@contoso.com']),
    result: failed({ code: 'EENVELOPE', responseCode: 550, response: "550 Can't send mail - all recipients were rejected", stage: 'envelope' }, [
      { address: 'a@contoso.com', responseCode: 550, response: '550 5.1.10 not found a' },
      { address: 'b@contoso.com', responseCode: 451, response: '451 4.4.0 later b' },
    ]),
    action: 'defer',
    account: 'reachable',
    attempts: 1,
    statuses: ['failed', 'pending'],
  },
  {
    name: 'an earlier transaction delivered some: an outage now charges nothing and keeps them delivered',
    meta: meta(['a@contoso.com', 'b@contoso.com'], { recipients: [{ address: 'a@contoso.com', status: 'delivered' }, { address: 'b@contoso.com', status: 'pending' }] }),
    result: failed({ code: 'ESOCKET', message: 'connect ECONNREFUSED' }),
    action: 'requeue',
    account: 'hold',
    attempts: 0,
    statuses: ['delivered', 'pending'],
  },
];

for (const c of cases) {
  test(`outcome: ${c.name}`, () => {
    const d = run(c.meta, c.result);
    assert.equal(d.verdict.action, c.action);
    assert.equal(d.account.kind === 'pause' ? `pause:${d.account.ms}` : d.account.kind, c.account);
    assert.equal(d.meta.attempts, c.attempts);
    if (c.statuses) assert.deepEqual(d.meta.recipients.map((r) => r.status), c.statuses);
    if (c.alert !== undefined) assert.equal(d.alert?.key ?? null, c.alert);
    if (c.action === 'requeue') assert.equal(d.meta.nextAttemptAt, c.meta.nextAttemptAt, 'an account failure keeps the message in its place');
  });
}

test('outcome: the first retry after a message-level 4xx comes within 30 s (default schedule starts at 15 s)', () => {
  const d = run(meta(['a@contoso.com']), failed({ responseCode: 451, response: '451 4.7.500 Server busy', stage: 'envelope' }));
  assert.equal(d.verdict.action, 'defer');
  assert.ok(d.verdict.action === 'defer' && d.verdict.delayMs <= 30_000);
});

test('outcome: a message past retry.maxAge fails as expired with its last reply', () => {
  const old = meta(['a@contoso.com'], { receivedAt: new Date(NOW - 6 * 86_400_000).toISOString(), attempts: 40 });
  const d = run(old, failed({ responseCode: 451, response: '451 4.7.500 Server busy', stage: 'envelope' }));
  assert.equal(d.verdict.action, 'fail');
  assert.ok(d.verdict.action === 'fail' && d.verdict.expired);
  assert.match(d.meta.lastError ?? '', /expired after .* last error: 451 4\.7\.500/);
});

test('classify: whose failure it is is a column of the table', () => {
  assert.equal(classify({ code: 'ETIMEDOUT', message: 'Greeting never received' }).scope, 'account');
  assert.equal(classify({ code: 'ECONNECTION', message: 'Connection closed unexpectedly', stage: 'data' }).scope, 'message');
  assert.equal(classify({ responseCode: 451, response: '451 4.3.0 x', stage: 'envelope' }).scope, 'message');
  assert.equal(classify({ responseCode: 451, response: '451 4.3.0 x', stage: 'session' }).scope, 'account');
  assert.equal(classify({ responseCode: 550, response: '550 5.1.1 no', stage: 'envelope' }).scope, 'message');
  assert.equal(classify({ httpStatus: 503, graphCode: 'ServiceUnavailable' }).scope, 'account');
  assert.match(classify({ responseCode: 554, response: '554 5.2.252 SendAsDenied' }).advice ?? '', /Add-RecipientPermission/);
});
