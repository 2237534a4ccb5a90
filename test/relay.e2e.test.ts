// End to end through real components on loopback: nodemailer (a device) -> the real listener ->
// the durable spool -> the relay worker -> the built-in Microsoft 365 simulator (real TLS, a real
// HTTPS token endpoint that msal-node talks to, real XOAUTH2 checks). Nothing is mocked.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Simulator } from '../src/simulator/index.js';
import { generateClientCertificate } from '../src/simulator/index.js';
import { rawConfigFor, sampleMessage, sendMessage, startInProcessRelay, startTestSimulator, tempDir, type InProcessRelay } from './helpers/harness.js';
import { clientBytes } from './helpers/listener.js';
import { waitFor } from './helpers/wait.js';

function headerOf(raw: Buffer): string {
  const text = raw.toString('latin1');
  return text.slice(0, text.indexOf('\r\n\r\n') + 2);
}
function bodyOf(raw: Buffer): Buffer {
  return raw.subarray(raw.indexOf('\r\n\r\n') + 4);
}

describe('relay end to end', () => {
  let sim: Simulator;
  const dirs: Array<() => void> = [];
  const relays: InProcessRelay[] = [];

  before(async () => {
    sim = await startTestSimulator({ rateLimit: null });
  });
  after(async () => {
    for (const r of relays) await r.stop();
    await sim.close();
    for (const remove of dirs) remove();
  });

  /** A relay for one test, stopped when the test ends: its pooled sessions count against the mailbox's limit. */
  async function relay(t: { after: (fn: () => Promise<void>) => void }, overrides: Record<string, unknown> = {}): Promise<InProcessRelay> {
    const tmp = tempDir();
    dirs.push(tmp.remove);
    const r = await startInProcessRelay(rawConfigFor(sim, join(tmp.dir, 'spool'), overrides));
    relays.push(r);
    t.after(() => r.stop());
    return r;
  }

  test('a scanner message is rewritten to the mailbox and arrives byte-identical otherwise', async (t) => {
    sim.reset();
    const r = await relay(t);
    const body = 'Scan attached.\r\n.leading dot stays\r\n' + 'x'.repeat(5000) + '\r\n';
    const raw = ['From: "Scanner 3rd floor" <scanner@printer.local>', 'To: alice@contoso.com', 'Subject: Scan', 'Date: Mon, 23 Nov 2026 08:00:00 +0000', 'Message-ID: <scan-1@printer.local>', '', body].join('\r\n');
    const info = await sendMessage(r.port, { from: 'scanner@printer.local', to: ['alice@contoso.com'], raw });
    assert.match(info.response, /^250 2\.0\.0 Ok: queued as [0-9A-Z]+$/);
    const [got] = await sim.waitForMessages(1);
    assert.ok(got);
    assert.equal(got.mailbox, 'relay@contoso.com');
    assert.deepEqual(got.envelope, { from: 'relay@contoso.com', to: ['alice@contoso.com'] });
    const id = /queued as (\S+)/.exec(info.response)?.[1] ?? '';
    // The relay's own Received: field first (naming this hop), then the device's header, rewritten.
    const { received: stamp, rest } = clientBytes(got.raw, id);
    assert.match(stamp, /^Received: from \S+ \(\[127\.0\.0\.1\]\)\r\n\tby \S+ \(m365-relay\) with ESMTP id /);
    assert.equal(
      headerOf(rest),
      'From: "Scanner 3rd floor" <relay@contoso.com>\r\nReply-To: scanner@printer.local\r\nTo: alice@contoso.com\r\nSubject: Scan\r\nDate: Mon, 23 Nov 2026 08:00:00 +0000\r\nMessage-ID: <scan-1@printer.local>\r\n',
    );
    assert.deepEqual(bodyOf(got.raw), Buffer.from(body));
    await waitFor('the delivered log line', () => r.logs.find((l) => l.event === 'delivered' && l.msgId === id));
    const received = r.logs.find((l) => l.event === 'received' && l.msgId === id);
    assert.ok(received, 'a received line with the message id');
    await waitFor('the spool to empty', async () => (await r.relay.spool.list()).length === 0);
  });

  test('a sender the mailbox may send as passes unchanged, to several recipients', async (t) => {
    sim.reset();
    const r = await relay(t);
    const to = ['alice@contoso.com', 'bob@fabrikam.com', 'carol@contoso.com'];
    const raw = sampleMessage({ from: 'alerts@contoso.com', to }).replace('"Scanner 3rd floor" ', '') + '';
    const full = raw.replace('MIME-Version', 'Date: Mon, 23 Nov 2026 08:00:00 +0000\r\nMessage-ID: <a1@contoso.com>\r\nMIME-Version');
    const info = await sendMessage(r.port, { from: 'alerts@contoso.com', to, raw: full });
    const [got] = await sim.waitForMessages(1);
    assert.deepEqual(got?.envelope, { from: 'alerts@contoso.com', to });
    // After the relay's Received: field (no "for": several recipients), byte-identical.
    const { received: stamp, rest } = clientBytes(got?.raw ?? Buffer.alloc(0), /queued as (\S+)/.exec(info.response)?.[1] ?? '');
    assert.doesNotMatch(stamp, /\tfor </, 'recipients are not listed when there are several');
    assert.equal(rest.toString('latin1'), full, 'byte-identical: nothing needed rewriting');
  });

  test('Date and Message-ID are added when the device sent none', async (t) => {
    sim.reset();
    const r = await relay(t);
    await sendMessage(r.port, { from: 'alerts@contoso.com', raw: 'From: alerts@contoso.com\r\nSubject: UPS on battery\r\n\r\nLoad 40%\r\n' });
    const [got] = await sim.waitForMessages(1);
    const header = headerOf(got!.raw);
    assert.match(header, /\r\nDate: [A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d \+0000\r\n/);
    assert.match(header, /\r\nMessage-ID: <[0-9A-Z]+@contoso\.com>\r\n/);
  });

  test('a revoked token (still cached by msal) is replaced by a fresh one and the message delivered', async (t) => {
    sim.reset();
    const r = await relay(t);
    // The daemon fetched a token at start; msal keeps serving it from its cache.
    await waitFor('the token fetched at start', () => r.logs.find((l) => l.event === 'token'));
    const issued = sim.stats.tokensIssued;
    sim.revokeAllTokens();
    await sendMessage(r.port, { to: ['bob@contoso.com'] });
    const [got] = await sim.waitForMessages(1);
    assert.deepEqual(got?.envelope.to, ['bob@contoso.com']);
    assert.equal(sim.stats.tokensIssued, issued + 1, 'exactly one new token was fetched');
    await waitFor('the token-rejected log line', () => r.logs.find((l) => l.event === 'token-rejected'));
    const delivered = await waitFor('the delivered line', () => r.logs.find((l) => l.event === 'delivered'));
    assert.equal(delivered.attempts, 1, 'renewed and retried within the same attempt');
  });

  test('certificate credentials: a signed client assertion gets the token', async () => {
    const cert = await generateClientCertificate('m365-relay test app');
    const certSim = await startTestSimulator({
      apps: [{ clientId: 'cccccccc-0000-0000-0000-000000000001', certificatePem: cert.certPem }],
      mailboxes: [{ address: 'relay@contoso.com', apps: ['cccccccc-0000-0000-0000-000000000001'], sendAs: ['@contoso.com'] }],
    });
    try {
      const tmp = tempDir();
      dirs.push(tmp.remove);
      writeFileSync(join(tmp.dir, 'app.crt'), cert.certPem);
      writeFileSync(join(tmp.dir, 'app.key'), cert.keyPem, { mode: 0o600 });
      const raw = rawConfigFor(certSim, join(tmp.dir, 'spool'), {
        microsoft365: { clientId: 'cccccccc-0000-0000-0000-000000000001', clientSecret: undefined, clientCertificate: { privateKeyFile: join(tmp.dir, 'app.key'), certificateFile: join(tmp.dir, 'app.crt') } },
      });
      const r = await startInProcessRelay(raw);
      try {
        await sendMessage(r.port);
        const [got] = await certSim.waitForMessages(1);
        assert.equal(got?.clientId, 'cccccccc-0000-0000-0000-000000000001');
      } finally {
        await r.stop();
      }
    } finally {
      await certSim.close();
    }
  });

  test('a transient failure is deferred with its reason, then retried and delivered', async (t) => {
    sim.reset();
    const r = await relay(t);
    sim.faults.failNext(1, '451 4.7.500 Server busy. Please try again later.');
    const info = await sendMessage(r.port);
    const id = /queued as (\S+)/.exec(info.response)?.[1];
    const deferred = await waitFor('the deferred log line', () => r.logs.find((l) => l.event === 'deferred' && l.msgId === id));
    assert.match(String(deferred.reason), /^451 4\.7\.500/);
    assert.ok(deferred.nextAttemptAt);
    const [got] = await sim.waitForMessages(1);
    assert.ok(got);
    const delivered = await waitFor('the delivered log line', () => r.logs.find((l) => l.event === 'delivered' && l.msgId === id));
    assert.equal(delivered.attempts, 2);
  });

  test('a permanent failure ends in failed with the upstream reply kept', async (t) => {
    sim.reset();
    const r = await relay(t);
    sim.faults.rejectData = '554 5.6.0 Corrupt message content';
    try {
      const info = await sendMessage(r.port);
      const id = /queued as (\S+)/.exec(info.response)?.[1];
      await waitFor('the failed log line', () => r.logs.find((l) => l.event === 'failed' && l.msgId === id));
      const [entry] = await r.relay.spool.list();
      assert.equal(entry?.state, 'failed');
      assert.equal(entry?.meta.lastError, '554 5.6.0 Corrupt message content');
      assert.equal(entry?.meta.attempts, 1, 'a permanent reply is not retried');
    } finally {
      sim.faults.rejectData = null;
    }
  });

  test('a recipient rejected on its own fails alone; the others are delivered', async (t) => {
    sim.reset();
    const r = await relay(t);
    sim.faults.rejectRecipients.set('ghost@contoso.com', '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup');
    try {
      await sendMessage(r.port, { from: 'alerts@contoso.com', to: ['alice@contoso.com', 'ghost@contoso.com', 'bob@contoso.com'] });
      const [got] = await sim.waitForMessages(1);
      assert.deepEqual(got?.envelope.to, ['alice@contoso.com', 'bob@contoso.com']);
      const entry = await waitFor('the message to be marked failed', async () => (await r.relay.spool.list()).find((e) => e.state === 'failed'));
      assert.deepEqual(
        entry.meta.recipients.map((x) => [x.address, x.status]),
        [['alice@contoso.com', 'delivered'], ['ghost@contoso.com', 'failed'], ['bob@contoso.com', 'delivered']],
      );
      assert.match(entry.meta.lastError ?? '', /^550 5\.1\.10/);
    } finally {
      sim.faults.rejectRecipients.clear();
    }
  });

  test('SendAs denied upstream (sendAs lists more than Exchange allows) fails with the reason', async (t) => {
    sim.reset();
    const r = await relay(t, { microsoft365: { sendAs: ['@contoso.com', '@fabrikam.com'] } });
    await sendMessage(r.port, { from: 'noreply@fabrikam.com', raw: 'From: noreply@fabrikam.com\r\nSubject: x\r\n\r\nx\r\n' });
    const entry = await waitFor('the message to fail', async () => (await r.relay.spool.list()).find((e) => e.state === 'failed'));
    assert.match(entry.meta.lastError ?? '', /^554 5\.2\.252 SendAsDenied/);
  });

  test('secrets and tokens never reach the log', async (t) => {
    sim.reset();
    const r = await relay(t);
    await sendMessage(r.port);
    await sim.waitForMessages(1);
    const text = JSON.stringify(r.logs);
    assert.ok(!text.includes('sim-secret'), 'the client secret is not logged');
    assert.doesNotMatch(text, /Bearer|access_token/);
  });
});
