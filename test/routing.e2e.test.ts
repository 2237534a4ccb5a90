// Several Microsoft 365 accounts through the real daemon and the simulator: routes pick the
// mailbox and app, one broken or throttled account never holds up another, a reload fixes or
// removes an account without a restart, and `queue list` shows each message's account.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { stringify } from 'yaml';
import { CLI, rawConfigFor, sampleMessage, sendMessage, simulatorSuite, spawnRelay, type ChildRelay } from './helpers/harness.js';
import { waitFor } from './helpers/wait.js';

const APP = {
  relay: { clientId: 'aaaaaaaa-0000-0000-0000-00000000000d', clientSecret: 'relay-secret' },
  scans: { clientId: 'aaaaaaaa-0000-0000-0000-00000000000a', clientSecret: 'scans-secret' },
  alerts: { clientId: 'aaaaaaaa-0000-0000-0000-00000000000b', clientSecret: 'alerts-secret' },
};

interface Item {
  id: string;
  state: string;
  account: string;
  route: string | null;
}

function queueList(file: string): Item[] {
  const result = spawnSync(process.execPath, [CLI, 'queue', 'list', '--config', file, '--json'], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout) as Item[];
}

async function readyz(port: number): Promise<{ status: number; body: { checks: Record<string, { ok: boolean; accounts: Record<string, { ok: boolean }> }> } }> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: (await res.json()) as never };
}

describe('routing to several Microsoft 365 accounts', () => {
  const suite = simulatorSuite({
    rateLimit: null,
    apps: Object.values(APP),
    mailboxes: [
      { address: 'relay@contoso.com', apps: [APP.relay.clientId], sendAs: ['@contoso.com'] },
      { address: 'scans@contoso.com', apps: [APP.scans.clientId] },
      { address: 'alerts@contoso.com', apps: [APP.alerts.clientId], sendAs: ['@ops.contoso.com'] },
    ],
  });

  function config(spoolDir: string, scansSecret: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
    const sim = suite.sim;
    const common = { tenantId: sim.tenantId, authorityHost: sim.authorityHost, smtpHost: sim.smtpHost, smtpPort: sim.smtpPort, tokenTimeout: '5s', smtpTimeout: '5s', rateLimit: { messages: 1000, perSeconds: 60 } };
    return rawConfigFor(sim, spoolDir, {
      users: [{ username: 'scanner', password: 'scanner-pw' }],
      http: { host: '127.0.0.1', port: 0 },
      microsoft365: { ...APP.relay, mailbox: 'relay@contoso.com' },
      accounts: {
        scans: { ...common, ...APP.scans, clientSecret: scansSecret, mailbox: 'scans@contoso.com', maxConnections: 2 },
        alerts: { ...common, ...APP.alerts, mailbox: 'alerts@contoso.com', throttlePause: '1h' },
      },
      routes: [
        { user: 'scanner', account: 'scans' },
        { sender: '@ops.contoso.com', account: 'alerts' },
      ],
      ...extra,
    });
  }

  const scan = (relay: ChildRelay, subject: string) =>
    sendMessage(relay.port, { auth: { user: 'scanner', pass: 'scanner-pw' }, raw: sampleMessage({ subject }) });
  const alert = (relay: ChildRelay, subject: string) =>
    sendMessage(relay.port, { from: 'nagios@ops.contoso.com', raw: sampleMessage({ from: 'nagios@ops.contoso.com', subject }) });
  const plain = (relay: ChildRelay, subject: string) =>
    sendMessage(relay.port, { from: 'app@contoso.com', raw: sampleMessage({ from: 'app@contoso.com', subject }) });
  const subjects = (mailbox: string) =>
    suite.sim.received.filter((m) => m.mailbox === mailbox).map((m) => /Subject: (.*)\r\n/.exec(m.raw.toString())?.[1]).sort();

  test('a broken account holds back only its own mail; fixing it by reload delivers it; queue list shows the account', async (t) => {
    const sim = suite.sim;
    sim.reset();
    const work = suite.dir();
    const file = join(work, 'relay.yaml');
    const relay = await spawnRelay(config(join(work, 'spool'), 'wrong-secret'), work);
    t.after(() => relay.kill());
    const httpPort = Number((await relay.waitForLog('the http endpoint', (l) => l.event === 'http-listening')).port);

    // More scanner messages than the scans account has connections: with one shared set of
    // slots they would all wait on its paused pacing and keep everything else out.
    for (let i = 0; i < 5; i++) await scan(relay, `scan ${i}`);
    await relay.waitForLog('the alert for the scans account', (l) => l.event === 'alert' && l.account === 'scans' && /client secret is wrong/.test(String(l.advice)));
    await relay.waitForLog('the scans account holding its deliveries', (l) => l.event === 'upstream-unavailable' && l.account === 'scans');

    for (let i = 0; i < 3; i++) await alert(relay, `alert ${i}`);
    await plain(relay, 'plain 0');
    await sim.waitForMessages(4, 15_000);
    assert.deepEqual(subjects('alerts@contoso.com'), ['alert 0', 'alert 1', 'alert 2']);
    assert.deepEqual(subjects('relay@contoso.com'), ['plain 0']);
    assert.deepEqual(subjects('scans@contoso.com'), []);
    assert.ok(sim.received.every((m) => (m.mailbox === 'alerts@contoso.com' ? m.clientId === APP.alerts.clientId : m.clientId === APP.relay.clientId)), 'each account used its own app');
    const delivered = await waitFor('four delivered lines', () => {
      const lines = relay.logs.filter((l) => l.event === 'delivered');
      return lines.length >= 4 ? lines : null;
    });
    assert.deepEqual(delivered.map((l) => l.account).sort(), ['alerts', 'alerts', 'alerts', 'default']);

    const listed = queueList(file);
    assert.equal(listed.length, 5);
    assert.ok(listed.every((i) => i.account === 'scans' && i.route === 'user scanner'), JSON.stringify(listed));
    const table = spawnSync(process.execPath, [CLI, 'queue', 'list', '--config', file], { encoding: 'utf8', timeout: 20_000 });
    assert.match(table.stdout, /^ID\s+STATE\s+TRIES\s+ACCOUNT\s+FROM/m);
    assert.match(table.stdout, /\sscans\s+scanner@printer\.local/);

    const notReady = await readyz(httpPort);
    assert.equal(notReady.status, 503);
    assert.equal(notReady.body.checks.token?.ok, false);
    assert.equal(notReady.body.checks.token?.accounts.scans?.ok, false);
    assert.equal(notReady.body.checks.token?.accounts.alerts?.ok, true);
    assert.equal(notReady.body.checks.token?.accounts.default?.ok, true);

    // The fix: only the scans account changes, and only it gets a new token source.
    const alertsTokens = relay.logs.filter((l) => l.event === 'token' && l.account === 'alerts').length;
    writeFileSync(file, stringify(config(join(work, 'spool'), APP.scans.clientSecret)));
    relay.proc.kill('SIGHUP');
    await relay.waitForLog('the reload', (l) => l.event === 'reloaded' && l.accountsChanged === true && l.microsoft365Changed === false);
    assert.deepEqual(relay.logs.filter((l) => l.event === 'account-changed').map((l) => l.account), ['scans']);
    await sim.waitForMessages(9, 20_000);
    assert.deepEqual(subjects('scans@contoso.com'), ['scan 0', 'scan 1', 'scan 2', 'scan 3', 'scan 4']);
    assert.ok(sim.received.filter((m) => m.mailbox === 'scans@contoso.com').every((m) => m.clientId === APP.scans.clientId));
    await waitFor('an empty queue', () => queueList(file).length === 0, 10_000);
    assert.equal(relay.logs.filter((l) => l.event === 'token' && l.account === 'alerts').length, alertsTokens, 'the unchanged account kept its token source');
    const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
    assert.match(metrics, /^m365relay_account_messages_total\{account="alerts",outcome="delivered"\} 3$/m);
    assert.match(metrics, /^m365relay_account_messages_total\{account="scans",outcome="delivered"\} 5$/m);
    assert.match(metrics, /^m365relay_account_messages_total\{account="scans",outcome="deferred"\} [1-9]\d*$/m);
    const ready = await waitFor('readiness', async () => ((await readyz(httpPort)).status === 200 ? true : null), 10_000);
    assert.ok(ready);
    assert.equal(await relay.stop(), 0);
  });

  test('a throttled account rests alone; removing an account sends its waiting mail through the default account', async (t) => {
    const sim = suite.sim;
    sim.reset();
    const work = suite.dir();
    const file = join(work, 'relay.yaml');
    const relay = await spawnRelay(config(join(work, 'spool'), APP.scans.clientSecret), work);
    t.after(() => relay.kill());

    // Exchange throttles the alerts mailbox: that account rests for an hour (throttlePause).
    sim.faults.failNext(1, '432 4.3.2 Concurrent connections limit exceeded.');
    await alert(relay, 'alert throttled');
    await relay.waitForLog('the throttling', (l) => l.event === 'throttled' && l.account === 'alerts');
    await alert(relay, 'alert waiting');
    await scan(relay, 'scan during the rest');
    await plain(relay, 'plain during the rest');
    await sim.waitForMessages(2, 15_000);
    assert.deepEqual(subjects('scans@contoso.com'), ['scan during the rest']);
    assert.deepEqual(subjects('relay@contoso.com'), ['plain during the rest']);
    assert.deepEqual(subjects('alerts@contoso.com'), []);
    assert.deepEqual(queueList(file).map((i) => i.account), ['alerts', 'alerts']);

    // The alerts account is removed (its mailbox moved): its waiting mail goes out through the
    // default account, with a warning. The throttled message was the account's trouble, not its
    // own: it was never charged an attempt and kept its place, so it goes too.
    const next = config(join(work, 'spool'), APP.scans.clientSecret, { routes: [{ user: 'scanner', account: 'scans' }] });
    delete (next.accounts as Record<string, unknown>).alerts;
    writeFileSync(file, stringify(next));
    relay.proc.kill('SIGHUP');
    await relay.waitForLog('the removal', (l) => l.event === 'account-removed' && l.account === 'alerts');
    await sim.waitForMessages(4, 15_000);
    assert.deepEqual(subjects('relay@contoso.com'), ['alert throttled', 'alert waiting', 'plain during the rest']);
    assert.deepEqual(queueList(file), []);
    const fallback = await waitFor('two fallback warnings', () => {
      const lines = relay.logs.filter((l) => l.event === 'route-fallback');
      return lines.length >= 2 ? lines : null;
    });
    assert.ok(fallback.every((l) => l.level === 'warn' && l.routedTo === 'alerts' && l.account === 'default'), JSON.stringify(fallback));
    // New mail from that sender now goes to the default account by the new routes.
    await alert(relay, 'alert after the reload');
    await sim.waitForMessages(5, 15_000);
    const last = relay.logs.filter((l) => l.event === 'received').pop();
    assert.equal(last?.account, 'default');
    assert.equal(await relay.stop(), 0);
  });
});
