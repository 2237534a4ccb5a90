// Operating the real daemon: the health and metrics endpoint scraped over HTTP, and SIGHUP reloads
// (valid, invalid, and one that fixes the Microsoft 365 credentials) without dropping connections.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { stringify } from 'yaml';
import { rawConfigFor, sampleMessage, sendMessage, simulatorSuite, spawnRelay } from './helpers/harness.js';
import { RawSmtp } from './helpers/rawSmtp.js';
import { waitFor } from './helpers/wait.js';

async function get(port: number, path: string, method = 'GET'): Promise<{ status: number; body: string; type: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method, signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: await res.text(), type: res.headers.get('content-type') ?? '' };
}

/** The value of one sample in Prometheus text format, or undefined. */
function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(labels ? `${name}{${labels}}` : `${name} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('operations', () => {
  const suite = simulatorSuite();

  test('health and metrics: /healthz, /readyz, /metrics tell what happened', async (t) => {
    const sim = suite.sim;
    sim.reset();
    const work = suite.dir();
    const relay = await spawnRelay(rawConfigFor(sim, join(work, 'spool'), { http: { host: '127.0.0.1', port: 0 } }), work);
    t.after(() => relay.kill());
    const httpPort = Number((await relay.waitForLog('the http endpoint', (l) => l.event === 'http-listening')).port);

    assert.deepEqual(await get(httpPort, '/healthz'), { status: 200, body: 'ok\n', type: 'text/plain' });
    await relay.waitForLog('the first token', (l) => l.event === 'token');
    const ready = await get(httpPort, '/readyz');
    assert.equal(ready.status, 200, ready.body);
    const readyBody = JSON.parse(ready.body) as { ready: boolean; checks: Record<string, { ok: boolean }> };
    assert.deepEqual(Object.keys(readyBody.checks).sort(), ['credentials', 'spool', 'token', 'upstream']);

    await sendMessage(relay.port, { from: 'alerts@contoso.com', raw: sampleMessage({ from: 'alerts@contoso.com' }) });
    await relay.waitForLog('the delivery', (l) => l.event === 'delivered');
    sim.faults.rejectData = '554 5.6.0 Corrupt message content';
    await sendMessage(relay.port, { from: 'alerts@contoso.com', raw: sampleMessage({ from: 'alerts@contoso.com' }) });
    await relay.waitForLog('the failure', (l) => l.event === 'failed');
    sim.faults.rejectData = null;

    const metrics = await get(httpPort, '/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.type, /^text\/plain/);
    assert.equal(sample(metrics.body, 'm365relay_messages_received_total'), 2);
    assert.equal(sample(metrics.body, 'm365relay_messages_delivered_total'), 1);
    assert.equal(sample(metrics.body, 'm365relay_messages_failed_total', 'reason="permanent-failure"'), 1);
    assert.equal(sample(metrics.body, 'm365relay_upstream_replies_total', 'code="250"'), 1);
    assert.equal(sample(metrics.body, 'm365relay_queue_messages', 'state="failed"'), 1);
    assert.equal(sample(metrics.body, 'm365relay_queue_messages', 'state="waiting"'), 0);
    assert.equal(sample(metrics.body, 'm365relay_queue_oldest_message_age_seconds'), 0);
    assert.ok((sample(metrics.body, 'm365relay_token_requests_total', 'result="success"') ?? 0) >= 1);
    assert.equal(sample(metrics.body, 'm365relay_delivery_latency_seconds_count'), 1);
    assert.match(metrics.body, /^m365relay_smtp_connections\{listener="127\.0\.0\.1:\d+"\} \d+$/m);
    assert.match(metrics.body, /^m365relay_process_resident_memory_bytes \d+/m);

    // Upstream unreachable (a fresh daemon, so no pooled session is still open): a deferral, and
    // readiness says so.
    await relay.stop();
    sim.faults.refuseConnections = true;
    const again = await spawnRelay(rawConfigFor(sim, join(work, 'spool2'), { http: { host: '127.0.0.1', port: 0 } }), work, { name: 'second.yaml' });
    t.after(() => again.kill());
    const port2 = Number((await again.waitForLog('the http endpoint', (l) => l.event === 'http-listening')).port);
    await sendMessage(again.port, { from: 'alerts@contoso.com', raw: sampleMessage({ from: 'alerts@contoso.com' }) });
    await again.waitForLog('the deferral', (l) => l.event === 'deferred');
    const notReady = await get(port2, '/readyz');
    assert.equal(notReady.status, 503);
    assert.equal((JSON.parse(notReady.body) as { checks: { upstream: { ok: boolean } } }).checks.upstream.ok, false);
    const waiting = await get(port2, '/metrics');
    assert.equal(sample(waiting.body, 'm365relay_queue_messages', 'state="waiting"'), 1);
    assert.ok((sample(waiting.body, 'm365relay_queue_oldest_message_age_seconds') ?? -1) >= 0);
    assert.equal(sample(waiting.body, 'm365relay_messages_deferred_total', 'reason="network"'), 1);
    sim.faults.refuseConnections = false;

    assert.equal((await get(port2, '/nope')).status, 404);
    assert.equal((await get(port2, '/metrics', 'POST')).status, 405);
    assert.equal(await again.stop(), 0);
  });

  test('SIGHUP reload: new access rules apply, open sessions survive, an invalid file is refused', async (t) => {
    const sim = suite.sim;
    sim.reset();
    const work = suite.dir();
    const raw = rawConfigFor(sim, join(work, 'spool'), { allowNetworks: ['192.168.10.0/24'] });
    const relay = await spawnRelay(raw, work);
    t.after(() => relay.kill());
    const file = join(work, 'relay.yaml');

    const open = await RawSmtp.connect(relay.port);
    t.after(() => open.close());
    await open.command('EHLO before-reload');
    assert.equal(await open.command('MAIL FROM:<a@contoso.com>'), '530 5.7.0 Authentication required');

    writeFileSync(file, stringify({ ...raw, allowNetworks: ['127.0.0.1/32'] }));
    relay.proc.kill('SIGHUP');
    await relay.waitForLog('the reload', (l) => l.event === 'reloaded');
    // The session opened before the reload is still there and now may relay.
    assert.match(await open.command('MAIL FROM:<alerts@contoso.com>'), /^250 /);
    await open.command('QUIT');
    await sendMessage(relay.port, { from: 'alerts@contoso.com', raw: sampleMessage({ from: 'alerts@contoso.com' }) });
    await sim.waitForMessages(1);

    writeFileSync(file, 'listen: [{ port: 0 }]\nmicrosoft365: { tenantId: x }\n');
    relay.proc.kill('SIGHUP');
    const failed = await relay.waitForLog('the refused reload', (l) => l.event === 'reload-failed');
    assert.equal(failed.level, 'error');
    assert.match(JSON.stringify(failed.problems), /spool/);
    await sendMessage(relay.port, { from: 'alerts@contoso.com', to: ['still@contoso.com'], raw: sampleMessage({ from: 'alerts@contoso.com' }) });
    await sim.waitForMessages(2);
    assert.equal(await relay.stop(), 0);
  });

  test('SIGHUP reload of the Microsoft 365 settings: a fixed secret delivers the waiting mail without a restart', async (t) => {
    const sim = suite.sim;
    sim.reset();
    const work = suite.dir();
    const raw = rawConfigFor(sim, join(work, 'spool'), { microsoft365: { clientSecret: 'expired-or-wrong' }, retry: { schedule: ['1h'] } });
    const relay = await spawnRelay(raw, work);
    t.after(() => relay.kill());
    await sendMessage(relay.port, { from: 'alerts@contoso.com', raw: sampleMessage({ from: 'alerts@contoso.com', subject: 'waiting for the fix' }) });
    await relay.waitForLog('the alert', (l) => l.event === 'alert' && /client secret is wrong/.test(String(l.advice)));
    await relay.waitForLog('the deferral', (l) => l.event === 'deferred');

    const m365 = raw.microsoft365 as Record<string, unknown>;
    writeFileSync(join(work, 'relay.yaml'), stringify({ ...raw, microsoft365: { ...m365, clientSecret: 'sim-secret' }, retry: { schedule: ['1h'] } }));
    relay.proc.kill('SIGHUP');
    await relay.waitForLog('the reload', (l) => l.event === 'reloaded' && l.microsoft365Changed === true);
    // The message is deferred for an hour; an administrator retries it now.
    const { spawnSync } = await import('node:child_process');
    const { CLI } = await import('./helpers/harness.js');
    assert.equal(spawnSync(process.execPath, [CLI, 'queue', 'retry', '--all', '--config', join(work, 'relay.yaml')], { timeout: 10_000 }).status, 0);
    const [got] = await sim.waitForMessages(1, 15_000);
    assert.match(got!.raw.toString(), /Subject: waiting for the fix/);
    await waitFor('the delivered line', () => relay.logs.find((l) => l.event === 'delivered'));
    assert.equal(await relay.stop(), 0);
  });
});
