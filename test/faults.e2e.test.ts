// Delivery under faults, through the real relay and the simulator's fault switches:
// upstream outage and recovery, lost final replies, token endpoint trouble, configuration errors
// from Entra and Exchange, throttling and quota, pacing, lifetime expiry.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { Simulator, SimulatorOptions } from '../src/simulator/index.js';
import { rawConfigFor, sampleMessage, sendMessage, startInProcessRelay, startTestSimulator, tempDir, type InProcessRelay } from './helpers/harness.js';
import { waitFor } from './helpers/wait.js';

describe('delivery under faults', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  async function setup(simOptions: SimulatorOptions = {}, overrides: Record<string, unknown> = {}): Promise<{ sim: Simulator; r: InProcessRelay }> {
    const sim = await startTestSimulator({ rateLimit: null, ...simOptions });
    cleanups.push(() => sim.close());
    const tmp = tempDir();
    cleanups.push(tmp.remove);
    const r = await startInProcessRelay(rawConfigFor(sim, join(tmp.dir, 'spool'), overrides));
    cleanups.push(() => r.stop());
    return { sim, r };
  }

  const send = (r: InProcessRelay, subject: string, to = ['alice@contoso.com']) =>
    sendMessage(r.port, { from: 'alerts@contoso.com', to, raw: sampleMessage({ from: 'alerts@contoso.com', to, subject }) });

  test('upstream outage: mail keeps being accepted, the breaker holds off, everything arrives on recovery', async () => {
    const { sim, r } = await setup();
    sim.faults.refuseConnections = true;
    for (let i = 0; i < 12; i++) await send(r, `outage ${i}`);
    await waitFor('a few failed attempts', () => r.logs.filter((l) => l.event === 'upstream-unavailable').length >= 2, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    // With 12 messages queued and no breaker, each 300 ms retry round would open 12 connections.
    assert.ok(sim.stats.connections <= 6, `${sim.stats.connections} connection attempts during the outage`);
    sim.faults.refuseConnections = false;
    await sim.waitForMessages(12, 30_000);
    assert.equal((await r.relay.spool.list()).length, 0);
  });

  test('a final reply lost after the data was sent is retried: a duplicate, never a loss', async () => {
    const { sim, r } = await setup();
    sim.faults.dropBeforeFinalReply = 1;
    await send(r, 'lost reply');
    const copies = await sim.waitForMessages(2, 15_000);
    assert.ok(copies.every((m) => m.raw.toString().includes('Subject: lost reply')));
    await waitFor('the delivered line', () => r.logs.find((l) => l.event === 'delivered'));
  });

  test('token endpoint down: messages wait, nothing fails, delivered when it is back', async () => {
    const { sim, r } = await setup();
    sim.faults.tokenEndpointDown = true;
    sim.revokeAllTokens(); // the cached token is refused, so a new one is needed
    await send(r, 'token down');
    await waitFor('a deferral for the token', () => r.logs.find((l) => l.event === 'deferred' && /token|Entra|503|temporarily/i.test(String(l.reason))), 15_000);
    assert.equal((await r.relay.spool.list()).filter((e) => e.state === 'failed').length, 0);
    sim.faults.tokenEndpointDown = false;
    await sim.waitForMessages(1, 30_000);
  });

  test('a slow token endpoint is bounded by tokenTimeout', async () => {
    const { sim, r } = await setup({}, { microsoft365: { tokenTimeout: '500ms' } });
    sim.faults.tokenEndpointDelayMs = 3000;
    sim.revokeAllTokens();
    await send(r, 'slow token');
    const deferred = await waitFor('a deferral', () => r.logs.find((l) => l.event === 'deferred'), 15_000);
    assert.match(String(deferred.reason), /timed out/);
    sim.faults.tokenEndpointDelayMs = 0;
    await sim.waitForMessages(1, 30_000);
  });

  test('a wrong client secret: mail stays queued, one error line says what to fix, not one per message', async () => {
    const { r } = await setup({}, { microsoft365: { clientSecret: 'not-the-secret' } });
    for (let i = 0; i < 5; i++) await send(r, `wrong secret ${i}`);
    await waitFor('the account holding', () => r.logs.find((l) => l.event === 'upstream-unavailable'), 15_000);
    await waitFor('the delivery alert', () => r.logs.filter((l) => l.event === 'alert' && l.alert === 'configuration').length >= 1, 15_000);
    const alerts = r.logs.filter((l) => l.event === 'alert' && l.level === 'error');
    assert.ok(alerts.length >= 1 && alerts.length <= 2, `${alerts.length} alert lines`); // one at start, at most one for delivery
    assert.ok(alerts.some((a) => /client secret is wrong/.test(String(a.advice))));
    const entries = await r.relay.spool.list();
    assert.equal(entries.length, 5);
    assert.ok(entries.every((e) => e.state !== 'failed'), 'a configuration error never fails mail');
    assert.ok(entries.every((e) => e.meta.attempts === 0), 'the account\'s problem charges no message an attempt');
  });

  test('SMTP AUTH disabled for the mailbox (535 5.7.139): queued, and an alert with the fix', async () => {
    const { r } = await setup({ mailboxes: [{ address: 'relay@contoso.com', apps: ['11111111-2222-3333-4444-555555555555'], sendAs: ['@contoso.com'], smtpAuthEnabled: false }] });
    await send(r, 'auth disabled');
    const alert = await waitFor('the alert', () => r.logs.find((l) => l.event === 'alert' && /SmtpClientAuthenticationDisabled/.test(String(l.advice))), 15_000);
    assert.equal(alert.level, 'error');
    // (list() skips an entry caught between two directories by a probe: look until it is seen)
    const entry = await waitFor('the message in the spool', async () => (await r.relay.spool.list())[0], 5_000);
    assert.ok(entry.state !== 'failed' && entry.meta.attempts === 0, `queued, not charged: ${JSON.stringify(entry)}`);
  });

  test('throttling (432 4.3.2) slows the mailbox down and the message is retried', async () => {
    const { sim, r } = await setup({}, { microsoft365: { throttlePause: '1s' } });
    sim.faults.failNext(1, '432 4.3.2 Concurrent connections limit exceeded. Visit https://aka.ms/concurrent_sending for more information.');
    await send(r, 'throttled');
    await waitFor('the throttled line', () => r.logs.find((l) => l.event === 'throttled'), 10_000);
    await sim.waitForMessages(1, 15_000);
  });

  test('daily quota (554 5.2.0 SubmissionQuotaExceeded) pauses the mailbox without failing the message', async () => {
    const { sim, r } = await setup({}, { microsoft365: { quotaPause: '1500ms' } });
    sim.faults.failNext(1, '554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception');
    await send(r, 'quota');
    await waitFor('the quota alert', () => r.logs.find((l) => l.event === 'alert' && l.alert === 'quota'), 10_000);
    assert.notEqual((await r.relay.spool.list())[0]?.state, 'failed');
    await sim.waitForMessages(1, 15_000);
  });

  test('pacing: a burst of 1,000 goes out at the allowed rate, within maxConnections, with no throttling reply', async () => {
    const limit = { messages: 250, perSeconds: 1 };
    const { sim, r } = await setup({ maxConnectionsPerMailbox: 3, rateLimit: limit }, { microsoft365: { maxConnections: 3, rateLimit: limit } });
    const total = 1000;
    await Promise.all(
      Array.from({ length: 8 }, async (_, c) => {
        for (let i = c; i < total; i += 8) await send(r, `paced ${i}`);
      }),
    );
    const got = await sim.waitForMessages(total, 60_000);
    assert.equal(got.length, total);
    assert.ok(sim.stats.maxConcurrentPerMailbox <= 3, `max concurrent sessions: ${sim.stats.maxConcurrentPerMailbox}`);
    assert.equal(sim.stats.throttled, 0, 'the upstream never had to throttle');
    const times = got.map((m) => m.at.getTime()).sort((a, b) => a - b);
    for (let i = limit.messages; i < times.length; i++) {
      assert.ok(times[i]! - times[i - limit.messages]! >= 1000 - 5, `more than ${limit.messages} within a second around message ${i}`);
    }
  });

  test('a message older than retry.maxAge fails with its last reply', async () => {
    const { sim, r } = await setup({}, { retry: { schedule: ['200ms'], maxAge: '1s' } });
    sim.faults.failNext(1000, '451 4.7.500 Server busy. Please try again later.');
    await send(r, 'expires');
    const failed = await waitFor('the expiry', () => r.logs.find((l) => l.event === 'failed'), 15_000);
    assert.match(String(failed.reason), /^expired after .* last error: 451 4\.7\.500/);
    const [entry] = await r.relay.spool.list();
    assert.equal(entry?.state, 'failed');
    sim.faults.failNext(0);
  });

  test('tokens are renewed in the background ahead of expiry', async () => {
    // A 302 s token is served by msal for 2 s (it renews 5 minutes early); the relay renews it itself.
    const { sim, r } = await setup({ tokenLifetimeSeconds: 302 });
    await waitFor('the first token', () => sim.stats.tokensIssued >= 1, 10_000);
    await waitFor('a background renewal', () => sim.stats.tokensIssued >= 2, 15_000);
    assert.equal(sim.received.length, 0, 'no message was needed to renew it');
    // The simulator counts the token when it answers; the relay logs it a moment later.
    await waitFor('the forced renewal in the log', () => r.logs.some((l) => l.event === 'token' && l.forced === true), 5_000);
  });
});
