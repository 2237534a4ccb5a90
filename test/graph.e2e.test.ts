// transport: graph, end to end: devices send plain SMTP to the relay, the relay sends through the
// simulator's Microsoft Graph (real TLS, real tokens for https://graph.microsoft.com/.default, the
// 4 MB request limit, drafts and upload sessions, 429 with Retry-After, access checks).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { silentLogger } from '../src/observability/logger.js';
import { TokenProvider } from '../src/oauth/index.js';
import { classify } from '../src/relay/classify.js';
import { GraphTransport } from '../src/relay/graphTransport.js';
import { UpstreamError } from '../src/relay/transport.js';
import { rawConfigFor, sampleMessage, sendMessage, simulatorSuite, toConfig } from './helpers/harness.js';
import { waitFor } from './helpers/wait.js';
import { GRAPH_APP, graphAccount as graphAccountFor, startGraphRelay } from './helpers/graph.js';
import { attachmentOf, scanBytes } from './helpers/mime.js';
import { xoauth2Transport } from './helpers/xoauth2.js';

const APP = '11111111-2222-3333-4444-555555555555';
const STRANGER_APP = 'dddddddd-0000-0000-0000-000000000002';

function messageWithAttachment(attachment: Buffer, to: string): string {
  const boundary = 'scan-boundary-42';
  return [
    'From: "MFP 2nd floor" <mfp@ops.contoso.com>',
    `To: ${to}`,
    'Subject: Scanned document',
    'MIME-Version: 1.0',
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Your scan is attached.',
    `--${boundary}`,
    'Content-Type: application/pdf; name="scan.pdf"',
    'Content-Disposition: attachment; filename="scan.pdf"',
    'Content-Transfer-Encoding: base64',
    '',
    attachment.toString('base64').replace(/.{76}/g, '$&\r\n'),
    `--${boundary}--`,
    '',
  ].join('\r\n');
}

describe('Microsoft Graph transport', () => {
  const suite = simulatorSuite({
    rateLimit: null,
    apps: [
      { clientId: APP, clientSecret: 'sim-secret' },
      { clientId: GRAPH_APP, clientSecret: 'graph-secret' },
      { clientId: STRANGER_APP, clientSecret: 'stranger-secret' },
    ],
    mailboxes: [
      { address: 'relay@contoso.com', apps: [APP], sendAs: ['@contoso.com'] },
      { address: 'alerts@contoso.com', apps: [GRAPH_APP], sendAs: ['@ops.contoso.com'], smtpAuthEnabled: false },
    ],
  });

  const graphAccount = (extra: Record<string, unknown> = {}) => graphAccountFor(suite.sim, extra);
  const relayWith = (account: Record<string, unknown>, retry: Record<string, unknown> = {}) => startGraphRelay(suite.sim, suite.dir(), account, retry);

  test('a small message goes out through sendMail; envelope-only recipients are kept as Bcc', async (t) => {
    suite.sim.reset();
    const relay = await relayWith(graphAccount());
    t.after(() => relay.stop());
    await sendMessage(relay.port, { from: 'nas@ops.contoso.com', to: ['alice@contoso.com', 'audit@contoso.com'], raw: sampleMessage({ from: 'nas@ops.contoso.com', to: ['alice@contoso.com'], subject: 'Disk 3 degraded' }) });
    const [got] = await suite.sim.waitForMessages(1);
    assert.equal(got?.via, 'graph');
    assert.equal(got?.mailbox, 'alerts@contoso.com');
    assert.equal(got?.clientId, GRAPH_APP);
    assert.deepEqual(got?.envelope.to.sort(), ['alice@contoso.com', 'audit@contoso.com']);
    assert.match(got?.raw.toString('utf8') ?? '', /^Bcc: audit@contoso\.com\r$/m);
    assert.match(got?.raw.toString('utf8') ?? '', /^Subject: Disk 3 degraded\r$/m);
    const delivered = await waitFor('the delivered log line', () => relay.logs.find((l) => l.event === 'delivered'), 5000);
    assert.equal(delivered.account, 'alerts');
  });

  test('a 30 MB scan goes through a draft and an upload session and arrives intact', async (t) => {
    suite.sim.reset();
    const relay = await relayWith(graphAccount());
    t.after(() => relay.stop());
    const scan = scanBytes(22 * 1024 * 1024);
    const raw = messageWithAttachment(scan, 'alice@contoso.com');
    assert.ok(raw.length > 30_000_000, `the message is ${raw.length} bytes`);
    const before = suite.sim.stats.graphRequests;
    await sendMessage(relay.port, { from: 'mfp@ops.contoso.com', to: ['alice@contoso.com'], raw });
    const [got] = await suite.sim.waitForMessages(1, 60_000);
    const arrived = attachmentOf(got!.raw, 'scan.pdf');
    assert.ok(arrived, 'the attachment is in the sent message');
    assert.equal(arrived.length, scan.length);
    assert.equal(createHash('sha256').update(arrived).digest('hex'), createHash('sha256').update(scan).digest('hex'));
    assert.match(got!.raw.toString('latin1'), /Your scan is attached\./);
    // draft + session + 7 chunks of 3.125 MiB + send: far more than one request, each under 4 MB.
    assert.ok(suite.sim.stats.graphRequests - before >= 10, `${suite.sim.stats.graphRequests - before} Graph requests`);
  });

  test('429 with a long Retry-After: the account rests that long and the message is deferred; a short one is waited out', async (t) => {
    suite.sim.reset();
    const relay = await relayWith(graphAccount(), { schedule: ['1h'] });
    t.after(() => relay.stop());
    suite.sim.faults.graphFailNext(1, 429, 30);
    const info = await sendMessage(relay.port, { from: 'ups@ops.contoso.com', to: ['alice@contoso.com'], raw: sampleMessage({ from: 'ups@ops.contoso.com' }) });
    const id = /queued as (\S+)/.exec(info.response)?.[1];
    const deferred = await waitFor('the deferral', () => relay.logs.find((l) => l.event === 'deferred' && l.msgId === id), 10_000);
    assert.equal(deferred.class, 'graph-throttled');
    const throttled = relay.logs.find((l) => l.event === 'throttled');
    assert.equal(throttled?.pauseFor, '30s', 'rests as long as Retry-After says');

    suite.sim.faults.graphFailNext(1, 429, 1);
    const other = await relayWith(graphAccount());
    t.after(() => other.stop());
    await sendMessage(other.port, { from: 'ups@ops.contoso.com', to: ['bob@contoso.com'], raw: sampleMessage({ from: 'ups@ops.contoso.com', to: ['bob@contoso.com'] }) });
    await suite.sim.waitForMessages(1, 10_000);
    const delivered = await waitFor('the delivered log line', () => other.logs.find((l) => l.event === 'delivered'), 5000);
    assert.equal(delivered.attempts, 1, 'a 1 s Retry-After is waited out within the attempt');
  });

  test('503 is transient, 403 is a configuration problem with the fix, mail stays queued', async (t) => {
    suite.sim.reset();
    const relay = await relayWith(graphAccount({ clientId: STRANGER_APP, clientSecret: 'stranger-secret' }), { schedule: ['1h'] });
    t.after(() => relay.stop());
    await sendMessage(relay.port, { from: 'ups@ops.contoso.com', to: ['alice@contoso.com'], raw: sampleMessage({ from: 'ups@ops.contoso.com' }) });
    const alert = await waitFor('the configuration alert', () => relay.logs.find((l) => l.event === 'alert' && l.alert === 'configuration'), 10_000);
    assert.match(String(alert.advice), /Mail\.Send/);
    assert.equal(relay.logs.filter((l) => l.event === 'failed').length, 0, 'kept, not failed');
    assert.equal(classify({ httpStatus: 503, graphCode: 'ServiceUnavailable' }).class, 'transient');
    assert.equal(classify({ httpStatus: 503, graphCode: 'ServiceUnavailable', retryAfterMs: 30_000 }).class, 'throttled', '503 with Retry-After rests the mailbox like 429');
    assert.equal(classify({ httpStatus: 400, graphCode: 'ErrorInvalidRecipients' }).class, 'permanent');
    assert.equal(classify({ httpStatus: 404, graphCode: 'ErrorInvalidUser' }).class, 'configuration');
  });

  test('tokens are for one API: an Exchange token is refused by Graph (401, renew), a Graph token by SMTP (535)', async () => {
    suite.sim.reset();
    const config = toConfig(rawConfigFor(suite.sim, '/tmp/unused', { microsoft365: { clientId: GRAPH_APP, clientSecret: 'graph-secret', mailbox: 'alerts@contoso.com' } })).microsoft365;
    const exchangeTokens = new TokenProvider(config, silentLogger());
    const graph = new GraphTransport({ graphHost: suite.sim.graphHost, mailbox: 'alerts@contoso.com', timeoutMs: 5000 }, exchangeTokens, silentLogger());
    try {
      const err = await graph.send({ from: 'alerts@contoso.com', to: ['a@contoso.com'] }, Readable.from([Buffer.from(sampleMessage({ from: 'alerts@contoso.com', to: ['a@contoso.com'] }))]), { messageId: 'tokens-test' }).catch((e: unknown) => e);
      assert.ok(err instanceof UpstreamError);
      assert.equal(err.failure.httpStatus, 401);
      assert.equal(classify(err.failure).class, 'token-rejected');
    } finally {
      graph.close();
    }
    const graphTokens = new TokenProvider({ ...config, clientId: APP, clientSecret: 'sim-secret', scope: 'https://graph.microsoft.com/.default' }, silentLogger());
    const token = await graphTokens.getToken();
    const smtp = xoauth2Transport(suite.sim, token.accessToken, 'relay@contoso.com');
    try {
      await assert.rejects(smtp.sendMail({ envelope: { from: 'relay@contoso.com', to: ['a@contoso.com'] }, raw: sampleMessage() }), /535 5\.7\.3/);
    } finally {
      smtp.close();
    }
  });
});
