// transport: graph, what it guarantees, end to end against the simulator's Graph (real TLS, real
// tokens, drafts with recipient fields, upload sessions): exactly the envelope receives the message,
// bodies arrive as bodies, no draft is left behind (failures and kill -9 included), Retry-After in
// both forms, and a stop ends a Retry-After wait at once.
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { ReceivedMessage } from '../src/simulator/index.js';
import { rawConfigFor, sendMessage, simulatorSuite, spawnRelay, startInProcessRelay } from './helpers/harness.js';
import { GRAPH_APP, GRAPH_MAILBOX, graphAccount as graphAccountFor, graphConfig, startGraphRelay } from './helpers/graph.js';
import { base64Lines, partWhere, scanBytes, sha256 } from './helpers/mime.js';
import { waitFor } from './helpers/wait.js';

const APP = '11111111-2222-3333-4444-555555555555';
const MAILBOX = GRAPH_MAILBOX;

function textMessage(subject: string, to: string[], body = 'UPS on battery.'): string {
  return [`From: "UPS" <ups@ops.contoso.com>`, `To: ${to.join(', ')}`, `Subject: ${subject}`, 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', '', body, ''].join('\r\n');
}

/** HTML of about `size` bytes, 7bit lines, no Content-Transfer-Encoding needed. */
function bigHtml(size: number): string {
  const lines = ['<html><body>', '<p><img src="cid:logo@mfp"></p>'];
  let total = 0;
  for (let i = 0; total < size; i++) {
    const line = `<p>Row ${i}: toner levels nominal, drum ${i % 97}%, tray ${i % 5} ok.</p>`;
    lines.push(line);
    total += line.length + 2;
  }
  lines.push('</body></html>');
  return lines.join('\r\n');
}

/** multipart/mixed [ multipart/related [ HTML (no CTE), inline PNG with Content-ID ], PDF ]. */
function newsletter(subject: string, to: string[], html: string, png: Buffer, pdf: Buffer): string {
  return [
    'From: "MFP 2nd floor" <mfp@ops.contoso.com>',
    `To: ${to.join(', ')}`,
    `Subject: ${subject}`,
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="outer-7"',
    '',
    '--outer-7',
    'Content-Type: multipart/related; boundary="related-7"; type="text/html"',
    '',
    '--related-7',
    'Content-Type: text/html; charset=us-ascii',
    '',
    html,
    '--related-7',
    'Content-Type: image/png; name="logo.png"',
    'Content-Disposition: inline; filename="logo.png"',
    'Content-ID: <logo@mfp>',
    'Content-Transfer-Encoding: base64',
    '',
    base64Lines(png),
    '--related-7--',
    '',
    '--outer-7',
    'Content-Type: application/pdf; name="report.pdf"',
    'Content-Disposition: attachment; filename="report.pdf"',
    'Content-Transfer-Encoding: base64',
    '',
    base64Lines(pdf),
    '--outer-7--',
    '',
  ].join('\r\n');
}

/** A message over Graph's single-request size: a short text body and a 3.5 MB PDF. */
function withPdf(subject: string, to: string[], pdf = scanBytes(3_500_000, subject)): string {
  return newsletter(subject, to, '<p>see the report</p>', scanBytes(1000, 'logo'), pdf);
}

const copiesTo = (messages: ReceivedMessage[], address: string) => messages.filter((m) => m.envelope.to.includes(address)).length;

describe('Microsoft Graph transport: exactly the envelope, bodies intact, nothing left behind', () => {
  const suite = simulatorSuite({
    rateLimit: null,
    apps: [
      { clientId: APP, clientSecret: 'sim-secret' },
      { clientId: GRAPH_APP, clientSecret: 'graph-secret' },
    ],
    mailboxes: [
      { address: 'relay@contoso.com', apps: [APP], sendAs: ['@contoso.com'] },
      { address: MAILBOX, apps: [GRAPH_APP], sendAs: ['@ops.contoso.com'], smtpAuthEnabled: false },
    ],
  });

  const graphAccount = (extra: Record<string, unknown> = {}) => graphAccountFor(suite.sim, extra);
  const configFor = (spoolDir: string, account: Record<string, unknown>) => graphConfig(suite.sim, spoolDir, account);
  const relayWith = (account: Record<string, unknown> = graphAccount(), retry: Record<string, unknown> = {}) => startGraphRelay(suite.sim, suite.dir(), account, retry);

  const noDrafts = () => assert.deepEqual(suite.sim.graphDrafts(MAILBOX), [], 'no draft is left in the mailbox');

  test('sendMail: header recipients not in the envelope receive nothing, an envelope-only recipient receives it', async (t) => {
    suite.sim.reset();
    const relay = await relayWith();
    t.after(() => relay.stop());
    const raw = textMessage('Visible and blind', ['alice@contoso.com', '"Bob, Ops" <bob@contoso.com>', 'carol@contoso.com']);
    await sendMessage(relay.port, { from: 'ups@ops.contoso.com', to: ['alice@contoso.com', 'dave@contoso.com'], raw });
    const [got] = await suite.sim.waitForMessages(1);
    assert.deepEqual(got!.envelope.to.sort(), ['alice@contoso.com', 'dave@contoso.com']);
    const text = got!.raw.toString('utf8');
    assert.match(text, /^To: alice@contoso\.com\r$/m, 'the visible To keeps only who this envelope delivers to');
    assert.match(text, /^Bcc: dave@contoso\.com\r$/m);
    assert.doesNotMatch(text, /bob@|carol@/);
  });

  test('one message in two transactions (split envelope): each recipient gets one copy', async (t) => {
    suite.sim.reset();
    const relay = await relayWith();
    t.after(() => relay.stop());
    const raw = textMessage('Split by Postfix', ['a@contoso.com', 'b@contoso.com', 'c@contoso.com']);
    await sendMessage(relay.port, { from: 'ups@ops.contoso.com', to: ['a@contoso.com', 'b@contoso.com'], raw });
    await sendMessage(relay.port, { from: 'ups@ops.contoso.com', to: ['c@contoso.com'], raw });
    const got = await suite.sim.waitForMessages(2);
    await waitFor('both deliveries logged', () => relay.logs.filter((l) => l.event === 'delivered').length === 2 || undefined, 5000);
    for (const address of ['a@contoso.com', 'b@contoso.com', 'c@contoso.com']) assert.equal(copiesTo(got, address), 1, `${address} gets one copy`);
    assert.equal(suite.sim.received.length, 2);
  });

  test('a 6 MB multipart/related newsletter: the HTML is its body, the image inline with its Content-ID, the PDF intact', async (t) => {
    suite.sim.reset();
    const relay = await relayWith();
    t.after(() => relay.stop());
    const html = bigHtml(1_500_000);
    const png = scanBytes(1024 * 1024, 'png');
    const pdf = scanBytes(3_500_000, 'pdf');
    const raw = newsletter('Monthly printer report', ['alice@contoso.com', 'mallory@contoso.com'], html, png, pdf);
    assert.ok(raw.length > 6_000_000, `${raw.length} bytes`);
    const before = { ...suite.sim.stats };
    await sendMessage(relay.port, { from: 'mfp@ops.contoso.com', to: ['alice@contoso.com', 'audit@contoso.com'], raw });
    const [got] = await suite.sim.waitForMessages(1, 60_000);

    assert.deepEqual(got!.envelope.to.sort(), ['alice@contoso.com', 'audit@contoso.com'], 'the draft went to exactly the envelope');
    const body = partWhere(got!.raw, /^Content-Type: text\/html/im);
    assert.ok(body, 'an HTML part arrived');
    assert.doesNotMatch(body.headers, /attachment|filename|name=/i, 'the HTML is a body, not an attachment');
    assert.equal(body.body.toString('latin1'), html, 'the same HTML text');
    const image = partWhere(got!.raw, /^Content-ID: <logo@mfp>/im);
    assert.ok(image, 'the image kept its Content-ID');
    assert.match(image.headers, /Content-Disposition: inline/i);
    assert.equal(sha256(image.body), sha256(png));
    const report = partWhere(got!.raw, /filename="report\.pdf"/);
    assert.ok(report);
    assert.match(report.headers, /Content-Disposition: attachment/i);
    assert.equal(report.body.length, pdf.length);
    assert.equal(sha256(report.body), sha256(pdf), 'the PDF is byte-identical');
    assert.doesNotMatch(got!.raw.toString('latin1'), /filename="attachment|multipart\/related; name=/i, 'no structure became a file');

    assert.equal(suite.sim.stats.graphDraftsCreated - before.graphDraftsCreated, 1);
    assert.equal(suite.sim.stats.graphDraftsSent - before.graphDraftsSent, 1);
    noDrafts();
    await waitFor('the delivered log line', () => relay.logs.find((l) => l.event === 'delivered'), 5000);
    assert.deepEqual(readdirSync(join(relay.spoolDir, 'staging')), [], 'staging is emptied after the attempt');
    assert.equal(statSync(join(relay.spoolDir, 'staging')).mode & 0o777, 0o700);
  });

  test('an upload PUT answered 503 once: delivered once, the failed attempt leaves no draft', async (t) => {
    suite.sim.reset();
    const relay = await relayWith();
    t.after(() => relay.stop());
    const before = { ...suite.sim.stats };
    suite.sim.faults.graphFailNext(1, 503, undefined, 'upload');
    await sendMessage(relay.port, { from: 'mfp@ops.contoso.com', to: ['alice@contoso.com'], raw: withPdf('Upload hiccup', ['alice@contoso.com']) });
    await waitFor('the delivered log line', () => relay.logs.find((l) => l.event === 'delivered'), 30_000);
    // 503 without Retry-After is Graph unavailable: the account's fault (held and probed, the message not charged).
    assert.ok(relay.logs.some((l) => l.event === 'draft-removed' && l.reason === 'attempt failed'));
    assert.equal(suite.sim.received.length, 1, 'delivered once');
    assert.equal(suite.sim.stats.graphDraftsCreated - before.graphDraftsCreated, 2);
    assert.equal(suite.sim.stats.graphDraftsDeleted - before.graphDraftsDeleted, 1);
    assert.equal(suite.sim.stats.graphDraftsSent - before.graphDraftsSent, 1);
    noDrafts();
  });

  test('a large message goes to exactly the envelope too (draft recipient fields)', async (t) => {
    suite.sim.reset();
    const relay = await relayWith();
    t.after(() => relay.stop());
    await sendMessage(relay.port, { from: 'mfp@ops.contoso.com', to: ['carol@contoso.com', 'audit@contoso.com'], raw: withPdf('Large, split', ['alice@contoso.com', 'carol@contoso.com']) });
    const [got] = await suite.sim.waitForMessages(1, 30_000);
    assert.deepEqual(got!.envelope.to.sort(), ['audit@contoso.com', 'carol@contoso.com']);
    assert.match(got!.raw.toString('latin1'), /^To: carol@contoso\.com\r$/m, 'readers see the visible recipients of this envelope');
    noDrafts();
  });

  test('sendMail answered 5xx: retried, and logged as a possible duplicate (Exchange may have sent it)', async (t) => {
    suite.sim.reset();
    const relay = await relayWith();
    t.after(() => relay.stop());
    suite.sim.faults.graphFailNext(1, 504);
    const info = await sendMessage(relay.port, { from: 'ups@ops.contoso.com', to: ['alice@contoso.com'], raw: textMessage('Gateway timeout', ['alice@contoso.com']) });
    const id = /queued as (\S+)/.exec(info.response)?.[1];
    await waitFor('the delivered log line', () => relay.logs.find((l) => l.event === 'delivered'), 15_000);
    const warning = relay.logs.find((l) => l.event === 'possible-duplicate');
    assert.ok(relay.logs.indexOf(warning!) < relay.logs.findIndex((l) => l.event === 'delivered'), 'never a silent retry: the warning comes before the delivery');
    assert.equal(warning?.msgId, id);
    assert.equal(warning?.level, 'warn');
    assert.equal(warning?.request, 'sendMail');
  });

  test('a single body part Graph cannot take fails with a reason that says so; no draft is made', async (t) => {
    suite.sim.reset();
    const relay = await relayWith();
    t.after(() => relay.stop());
    const before = suite.sim.stats.graphDraftsCreated;
    const body = Array.from({ length: 100_000 }, (_, i) => `line ${i} of a very long log excerpt`).join('\r\n');
    await sendMessage(relay.port, { from: 'ups@ops.contoso.com', to: ['alice@contoso.com'], raw: textMessage('Huge log', ['alice@contoso.com'], body) });
    const failed = await waitFor('the failed log line', () => relay.logs.find((l) => l.event === 'failed'), 10_000);
    assert.match(String(failed.reason), /cannot go through Microsoft Graph intact: it is a single text\/plain part .*largeMessages: smtp/);
    assert.equal(suite.sim.stats.graphDraftsCreated, before);
  });

  test('largeMessages: smtp sends what Graph cannot take over SMTP AUTH', async (t) => {
    suite.sim.reset();
    const spoolDir = join(suite.dir(), 'spool');
    const account = { ...graphAccount(), clientId: APP, clientSecret: 'sim-secret', mailbox: 'relay@contoso.com', sendAs: ['@contoso.com'], smtpHost: suite.sim.smtpHost, smtpPort: suite.sim.smtpPort, largeMessages: 'smtp' };
    const relay = await startInProcessRelay(rawConfigFor(suite.sim, spoolDir, { accounts: { big: account }, routes: [{ sender: '@contoso.com', account: 'big' }] }));
    t.after(() => relay.stop());
    const body = Array.from({ length: 100_000 }, (_, i) => `line ${i} of a very long log excerpt`).join('\r\n');
    const raw = textMessage('Huge log over SMTP', ['alice@contoso.com'], body).replace('ups@ops.contoso.com', 'nas@contoso.com');
    await sendMessage(relay.port, { from: 'nas@contoso.com', to: ['alice@contoso.com'], raw });
    const [got] = await suite.sim.waitForMessages(1, 20_000);
    assert.equal(got!.via ?? 'smtp', 'smtp');
    assert.deepEqual(got!.envelope.to, ['alice@contoso.com']);
    assert.ok(relay.logs.some((l) => l.event === 'graph-smtp-fallback'));
  });

  test('Retry-After as an HTTP-date rests the mailbox until then; a longer one is capped at retryAfterMax', async (t) => {
    suite.sim.reset();
    const relay = await relayWith(graphAccount(), { schedule: ['1h'] });
    t.after(() => relay.stop());
    suite.sim.faults.graphFailNext(1, 429, new Date(Date.now() + 40_000));
    await sendMessage(relay.port, { from: 'ups@ops.contoso.com', to: ['alice@contoso.com'], raw: textMessage('Dated', ['alice@contoso.com']) });
    const throttled = await waitFor('the throttled log line', () => relay.logs.find((l) => l.event === 'throttled'), 10_000);
    assert.match(String(throttled.pauseFor), /^(3[89]|40)s$/, `rests until the date (${String(throttled.pauseFor)})`);

    const capped = await relayWith(graphAccount({ retryAfterMax: '2m' }), { schedule: ['1h'] });
    t.after(() => capped.stop());
    suite.sim.faults.graphFailNext(1, 429, new Date(Date.now() + 3_600_000));
    await sendMessage(capped.port, { from: 'ups@ops.contoso.com', to: ['alice@contoso.com'], raw: textMessage('Dated far', ['alice@contoso.com']) });
    const cut = await waitFor('the throttled log line', () => capped.logs.find((l) => l.event === 'throttled'), 10_000);
    assert.equal(cut.pauseFor, '2m');
  });

  test('a stop during a Retry-After wait returns at once; the message stays queued', async (t) => {
    suite.sim.reset();
    const relay = await relayWith(graphAccount(), { schedule: ['1h'] });
    t.after(() => relay.stop());
    const throttledBefore = suite.sim.stats.graphThrottled;
    // 4 s is waited out inside the send, and is shorter than the stop's grace for deliveries (5 s):
    // had the stop not ended the wait, the send would have gone through before the relay stopped.
    suite.sim.faults.graphFailNext(1, 429, 4);
    const info = await sendMessage(relay.port, { from: 'ups@ops.contoso.com', to: ['alice@contoso.com'], raw: textMessage('Stop while waiting', ['alice@contoso.com']) });
    const id = /queued as (\S+)/.exec(info.response)?.[1];
    await waitFor('the 429 answer', () => suite.sim.stats.graphThrottled > throttledBefore || undefined, 10_000);
    const requests = suite.sim.stats.graphRequests;
    await relay.stop();
    assert.equal(suite.sim.stats.graphRequests, requests, 'no request after the stop: the wait ended with it');
    assert.ok(relay.logs.some((l) => l.event === 'deferred' && l.msgId === id), 'deferred, not lost');
    assert.equal(suite.sim.received.length, 0);
  });

  test('kill -9 between draft creation and send: after the restart, delivered once and no draft left', async (t) => {
    suite.sim.reset();
    const work = suite.dir();
    const spoolDir = join(work, 'spool');
    const raw = configFor(spoolDir, graphAccount());
    const before = { ...suite.sim.stats };
    const relay = await spawnRelay(raw, work, { env: { M365_RELAY_CRASH_AT: 'graph-after-draft' } });
    t.after(() => relay.kill());
    await sendMessage(relay.port, { from: 'mfp@ops.contoso.com', to: ['alice@contoso.com'], raw: withPdf('Crash mid-draft', ['alice@contoso.com']) });
    assert.equal(await relay.exited, 'SIGKILL', 'killed at graph-after-draft');
    assert.equal(suite.sim.graphDrafts(MAILBOX).length, 1, 'the crash left a draft');
    assert.equal(suite.sim.received.length, 0);

    const restarted = await spawnRelay(raw, work, { name: 'restart.yaml' });
    t.after(() => restarted.kill());
    await restarted.waitForLog('the delivery', (l) => l.event === 'delivered', 30_000);
    assert.ok(restarted.logs.some((l) => l.event === 'draft-removed' && l.reason === 'left by an earlier attempt'));
    assert.equal(suite.sim.received.length, 1, 'delivered once');
    assert.equal(copiesTo(suite.sim.received, 'alice@contoso.com'), 1);
    assert.equal(suite.sim.stats.graphDraftsDeleted - before.graphDraftsDeleted, 1);
    noDrafts();
    assert.deepEqual(readdirSync(join(spoolDir, 'staging')), [], 'staging emptied at start and after the attempt');
    assert.equal(await restarted.stop(), 0);
  });
});
