// A `flow: device-code` account through the real CLI and daemon: `m365-relay login` (the test plays
// the user at the simulated Entra ID), delivery with the delegated token, a restart that sends from
// the persisted cache without a new sign-in, and a lost sign-in that keeps mail queued and says so.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { stringify } from 'yaml';
import { CLI, rawConfigFor, sendMessage, simulatorSuite, spawnRelay } from './helpers/harness.js';
import { waitFor } from './helpers/wait.js';

const PUBLIC_APP = 'cccccccc-0000-0000-0000-000000000001';
const MAILBOX = 'scans@contoso.com';

function httpText(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

/** `m365-relay login --account scans`, playing the user at the simulator: its output, after it exited 0. */
async function loginAs(t: { after: (fn: () => unknown) => void }, sim: { pendingUserCodes(): string[]; approveDeviceCode(code: string, user: string): void }, file: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const login = spawn(process.execPath, [CLI, 'login', '--config', file, '--account', 'scans', '--timeout', '20'], { stdio: ['ignore', 'pipe', 'pipe'], env });
  t.after(() => login.kill());
  let out = '';
  login.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
  login.stderr.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => login.once('exit', (code) => resolve(code)));
  const code = await waitFor('the device code in login output', () => sim.pendingUserCodes()[0], 15_000);
  sim.approveDeviceCode(code, MAILBOX);
  assert.equal(await exited, 0, out);
  assert.match(out, /Signed in as scans@contoso\.com/);
  return out;
}

describe('delegated sign-in (device code) through the daemon', () => {
  const suite = simulatorSuite({
    rateLimit: null,
    deviceCodeIntervalSeconds: 0.1,
    apps: [{ clientId: '11111111-2222-3333-4444-555555555555', clientSecret: 'sim-secret' }, { clientId: PUBLIC_APP }],
    mailboxes: [
      { address: 'relay@contoso.com', apps: ['11111111-2222-3333-4444-555555555555'], sendAs: ['@contoso.com'] },
      { address: MAILBOX, apps: [], sendAs: ['@contoso.com'] },
    ],
  });

  test('login, deliver as the signed-in user, restart from the cache, lose the sign-in and say so', async (t) => {
    const sim = suite.sim;
    sim.reset();
    const work = suite.dir();
    const cacheFile = join(work, 'signin', 'scans.json');
    const raw = rawConfigFor(sim, join(work, 'spool'), {
      http: { host: '127.0.0.1', port: 0 },
      accounts: {
        scans: { tenantId: sim.tenantId, clientId: PUBLIC_APP, flow: 'device-code', authorityHost: sim.authorityHost, smtpHost: sim.smtpHost, smtpPort: sim.smtpPort, mailbox: MAILBOX, sendAs: ['@contoso.com'], tokenCacheFile: cacheFile, tokenTimeout: '5s', smtpTimeout: '5s', rateLimit: { messages: 1000, perSeconds: 60 } },
      },
      routes: [{ sender: '@scanners.contoso.com', account: 'scans' }],
    });
    const file = join(work, 'relay.yaml');
    writeFileSync(file, stringify(raw));

    // 1. login: read the user code from its output, sign in as the mailbox at the simulator.
    await loginAs(t, sim, file);
    assert.equal(statSync(cacheFile).mode & 0o777, 0o600, 'the token cache is 0600');

    // check-config --connect signs in from the cache and logs in to SMTP as the user, nothing sent.
    const check = await new Promise<{ code: number; stdout: string }>((resolve) => {
      execFile(process.execPath, [CLI, 'check-config', '--config', file, '--connect'], { timeout: 30_000 }, (err, stdout) => resolve({ code: err ? 1 : 0, stdout }));
    });
    assert.equal(check.code, 0, check.stdout);
    assert.match(check.stdout, /account scans \(scans@contoso\.com\):\n {2}\[ok {2}\] delegated token for scans@contoso\.com/);
    assert.match(check.stdout, /\[ok {2}\] SMTP session with .* AUTH XOAUTH2 as scans@contoso\.com/);
    assert.equal(sim.received.length, 0);

    // 2. the relay delivers through the delegated account, routed by sender.
    const first = await spawnRelay(raw, work, { name: 'relay.yaml' });
    t.after(() => first.kill());
    await sendMessage(first.port, { from: 'mfp1@scanners.contoso.com', to: ['alice@contoso.com'] });
    const [one] = await sim.waitForMessages(1);
    assert.equal(one?.mailbox, MAILBOX);
    assert.equal(one?.user, MAILBOX, 'authenticated with the delegated token of the signed-in user');
    assert.equal(await first.stop(), 0);

    // 3. restart: the persisted cache signs the relay in, no new sign-in.
    const codesBefore = sim.stats.deviceCodesIssued;
    const second = await spawnRelay(raw, work, { name: 'relay.yaml' });
    t.after(() => second.kill());
    await sendMessage(second.port, { from: 'mfp2@scanners.contoso.com', to: ['bob@contoso.com'] });
    await sim.waitForMessages(2);
    assert.equal(sim.stats.deviceCodesIssued, codesBefore, 'no new device code after the restart');
    const httpPort = Number((await second.waitForLog('the http endpoint', (l) => l.event === 'http-listening')).port);
    const metrics = await httpText(httpPort, '/metrics');
    const remaining = Number(/^m365relay_signin_expires_in_seconds\{account="scans"\} (\S+)$/m.exec(metrics.body)?.[1]);
    assert.ok(remaining > 80 * 86_400, `the sign-in has about 90 days left: ${remaining}`);

    // 4. the sign-in is revoked (an authenticated upstream session would outlive that, as at
    // Exchange, so the relay restarts with only the cache): mail stays queued, the log says to run
    // login, /readyz and the metric agree.
    assert.equal(await second.stop(), 0);
    sim.revokeRefreshTokens(MAILBOX);
    sim.revokeAllTokens();
    const third = await spawnRelay(raw, work, { name: 'relay.yaml' });
    t.after(() => third.kill());
    const thirdHttp = Number((await third.waitForLog('the http endpoint', (l) => l.event === 'http-listening')).port);
    const info = await sendMessage(third.port, { from: 'mfp3@scanners.contoso.com', to: ['carol@contoso.com'] });
    const id = /queued as (\S+)/.exec(info.response)?.[1];
    const alert = await third.waitForLog('the lost sign-in alert', (l) => l.event === 'signin-lost' || (l.event === 'alert' && /m365-relay login/.test(String(l.advice ?? l.msg))));
    assert.match(JSON.stringify(alert), new RegExp(`m365-relay login --config ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} --account scans`));
    await third.waitForLog(`deferred ${id}`, (l) => l.event === 'deferred' && l.msgId === id);
    const ready = await httpText(thirdHttp, '/readyz');
    assert.equal(ready.status, 503);
    assert.match(ready.body, /"needsLogin": ?true/);
    assert.match((await httpText(thirdHttp, '/metrics')).body, /^m365relay_signin_expires_in_seconds\{account="scans"\} 0$/m);
    assert.equal(sim.received.length, 2, 'the message waits in the queue');
    await third.stop();
  });

  test('login --account scans needs only that account\'s settings: the default account\'s unset secret does not matter', async (t) => {
    const sim = suite.sim;
    sim.reset();
    const work = suite.dir();
    const cacheFile = join(work, 'signin', 'scans.json');
    const raw = rawConfigFor(sim, join(work, 'spool'), {
      microsoft365: { clientSecret: '${M365_RELAY_TEST_UNSET_DEFAULT_SECRET}' },
      accounts: {
        scans: { tenantId: sim.tenantId, clientId: PUBLIC_APP, flow: 'device-code', authorityHost: sim.authorityHost, smtpHost: sim.smtpHost, smtpPort: sim.smtpPort, mailbox: MAILBOX, tokenCacheFile: cacheFile, tokenCacheKey: '${M365_RELAY_TEST_SCANS_KEY}', tokenTimeout: '5s' },
      },
    });
    const file = join(work, 'relay.yaml');
    writeFileSync(file, stringify(raw));
    const env: NodeJS.ProcessEnv = { ...process.env, M365_RELAY_TEST_SCANS_KEY: 'a-long-enough-cache-key-for-the-test-0123456789' };
    delete env.M365_RELAY_TEST_UNSET_DEFAULT_SECRET;

    // The account's own reference must resolve: without its key, login names it.
    const { M365_RELAY_TEST_SCANS_KEY: _key, ...withoutKey } = env;
    const refused = await new Promise<{ code: number | null; out: string }>((resolve) => {
      execFile(process.execPath, [CLI, 'login', '--config', file, '--account', 'scans', '--timeout', '5'], { env: withoutKey, timeout: 20_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
      );
    });
    assert.equal(refused.code, 1);
    assert.match(refused.out, /accounts\.scans\.tokenCacheKey: environment variable M365_RELAY_TEST_SCANS_KEY is not set/);
    assert.doesNotMatch(refused.out, /M365_RELAY_TEST_UNSET_DEFAULT_SECRET/, 'the default account is not resolved');

    const out = await loginAs(t, sim, file, env);
    assert.match(out, /No mail is waiting|No mail of account scans was waiting|queued message\(s\) of account scans are being sent now/, 'login says what happens to queued mail');
  });
});
