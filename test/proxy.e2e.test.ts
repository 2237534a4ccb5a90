// Outbound through an HTTP proxy, end to end: the relay reaches the simulator's token endpoint,
// Graph and SMTP submission only through a CONNECT proxy on loopback (TLS stays end to end and
// verified against the simulator's certificate), with and without proxy authentication; and
// check-config --connect names the proxy and tells refused / 407 / 403-to-CONNECT apart.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { stringify } from 'yaml';
import { cliAsync, rawConfigFor, sendMessage, simulatorSuite, spawnRelay, startInProcessRelay } from './helpers/harness.js';
import { graphConfig, graphAccount, GRAPH_APP } from './helpers/graph.js';
import { startConnectProxy, type TestProxy } from './helpers/connectProxy.js';
import { waitFor } from './helpers/wait.js';
import { loadTestCa } from './helpers/testCa.js';
import { generateServerCertificate } from '../src/simulator/certs.js';

const APP = '11111111-2222-3333-4444-555555555555';
const SECRET = 'pr0xy-Secret-9';

describe('outbound through an HTTP proxy', () => {
  const suite = simulatorSuite({
    rateLimit: null,
    apps: [
      { clientId: APP, clientSecret: 'sim-secret' },
      { clientId: GRAPH_APP, clientSecret: 'graph-secret' },
    ],
    mailboxes: [
      { address: 'relay@contoso.com', apps: [APP], sendAs: ['@contoso.com'] },
      { address: 'alerts@contoso.com', apps: [GRAPH_APP], sendAs: ['@ops.contoso.com'] },
    ],
  });

  const targets = (proxy: TestProxy) => proxy.connects.filter((c) => c.status === 200).map((c) => c.target);
  const tokenTarget = () => new URL(suite.sim.authorityHost).host;

  test('SMTP: token endpoint and SMTP submission both go through an authenticating proxy; the password is never logged', async (t) => {
    suite.sim.reset();
    const proxy = await startConnectProxy({ user: 'relay', password: SECRET });
    t.after(() => proxy.close());
    const relay = await startInProcessRelay(rawConfigFor(suite.sim, join(suite.dir(), 'spool'), { proxy: `http://relay:${SECRET}@127.0.0.1:${proxy.port}` }));
    t.after(() => relay.stop());
    await sendMessage(relay.port, { from: 'scanner@contoso.com', to: ['alice@contoso.com'] });
    const [got] = await suite.sim.waitForMessages(1, 15_000);
    assert.notEqual(got?.via, 'graph');
    assert.deepEqual(got?.envelope.to, ['alice@contoso.com']);
    const seen = targets(proxy);
    assert.ok(seen.includes(tokenTarget()), `token endpoint through the proxy: ${seen.join(', ')}`);
    assert.ok(seen.includes(`${suite.sim.smtpHost}:${suite.sim.smtpPort}`), `SMTP through the proxy: ${seen.join(', ')}`);
    await waitFor('the delivered line', () => relay.logs.find((l) => l.event === 'delivered'), 10_000);
    assert.doesNotMatch(JSON.stringify(relay.logs), new RegExp(SECRET));
  });

  test('an https:// proxy: TLS to the proxy (its certificate verified), then TLS to Microsoft inside the tunnel', async (t) => {
    suite.sim.reset();
    const proxy = await startConnectProxy({ user: 'relay', password: SECRET, tls: await generateServerCertificate(loadTestCa()) });
    t.after(() => proxy.close());
    const relay = await startInProcessRelay(rawConfigFor(suite.sim, join(suite.dir(), 'spool'), { proxy: `https://relay:${SECRET}@localhost:${proxy.port}` }));
    t.after(() => relay.stop());
    await sendMessage(relay.port, { from: 'scanner@contoso.com', to: ['erin@contoso.com'] });
    await suite.sim.waitForMessages(1, 15_000);
    assert.ok(targets(proxy).includes(tokenTarget()));
    assert.ok(targets(proxy).includes(`${suite.sim.smtpHost}:${suite.sim.smtpPort}`));
  });

  test('Graph: token endpoint and Graph through the proxy (no authentication); another account with proxy: direct bypasses it', async (t) => {
    suite.sim.reset();
    const proxy = await startConnectProxy();
    t.after(() => proxy.close());
    const raw = graphConfig(suite.sim, join(suite.dir(), 'spool'), graphAccount(suite.sim));
    const relay = await startInProcessRelay({ ...raw, proxy: proxy.url, microsoft365: { ...(raw.microsoft365 as object), proxy: 'direct' } });
    t.after(() => relay.stop());
    await sendMessage(relay.port, { from: 'nas@ops.contoso.com', to: ['bob@contoso.com'] });
    const [viaGraph] = await suite.sim.waitForMessages(1, 15_000);
    assert.equal(viaGraph?.via, 'graph');
    const seen = targets(proxy);
    assert.ok(seen.includes(tokenTarget()), `token endpoint through the proxy: ${seen.join(', ')}`);
    assert.ok(seen.includes(new URL(suite.sim.graphHost).host), `Graph through the proxy: ${seen.join(', ')}`);
    const before = proxy.connects.length;
    // The default account has proxy: direct: its token and SMTP session do not touch the proxy.
    await sendMessage(relay.port, { from: 'scanner@contoso.com', to: ['carol@contoso.com'] });
    await suite.sim.waitForMessages(2, 15_000);
    assert.equal(proxy.connects.length, before, 'the direct account did not use the proxy');
  });

  test('HTTPS_PROXY from the environment when the key is absent (the daemon as a child process); NO_PROXY bypasses it', async (t) => {
    suite.sim.reset();
    const proxy = await startConnectProxy({ user: 'env', password: SECRET });
    t.after(() => proxy.close());
    const dir = suite.dir();
    const env = { HTTPS_PROXY: `http://env:${SECRET}@127.0.0.1:${proxy.port}`, NO_PROXY: '' };
    const relay = await spawnRelay(rawConfigFor(suite.sim, join(dir, 'spool')), dir, { env });
    t.after(() => relay.stop());
    await sendMessage(relay.port, { from: 'scanner@contoso.com', to: ['dave@contoso.com'] });
    await suite.sim.waitForMessages(1, 15_000);
    assert.ok(targets(proxy).includes(`${suite.sim.smtpHost}:${suite.sim.smtpPort}`));
    await relay.waitForLog('the delivered line', (l) => l.event === 'delivered');
    assert.doesNotMatch(JSON.stringify(relay.logs) + relay.stderr(), new RegExp(SECRET));

    // check-config shows where the proxy came from, redacted; with NO_PROXY naming the host, no proxy.
    const file = join(dir, 'check.yaml');
    writeFileSync(file, stringify(rawConfigFor(suite.sim, join(dir, 'spool2'))));
    const shown = await cliAsync(['check-config', '--config', file], { ...process.env, ...env });
    assert.equal(shown.code, 0, shown.stdout + shown.stderr);
    assert.match(shown.stdout, new RegExp(`via proxy http://\\*\\*\\*@127\\.0\\.0\\.1:${proxy.port} \\(from HTTPS_PROXY\\)`));
    assert.doesNotMatch(shown.stdout + shown.stderr, new RegExp(SECRET));
    const bypassed = await cliAsync(['check-config', '--config', file, '--connect'], { ...process.env, ...env, NO_PROXY: suite.sim.smtpHost });
    const count = proxy.connects.length;
    assert.equal(bypassed.code, 0, bypassed.stdout + bypassed.stderr);
    assert.doesNotMatch(bypassed.stdout, /via proxy/);
    assert.equal(proxy.connects.length, count, 'NO_PROXY: nothing went through the proxy');
  });

  describe('check-config --connect names the proxy and the fix', () => {
    const check = (proxyUrl: string, extra: Record<string, unknown> = {}) => {
      const dir = suite.dir();
      const file = join(dir, 'relay.yaml');
      writeFileSync(file, stringify(rawConfigFor(suite.sim, join(dir, 'spool'), { proxy: proxyUrl, ...extra })));
      return cliAsync(['check-config', '--config', file, '--connect']);
    };

    test('through a working proxy: ok, each step names the proxy', async (t) => {
      const proxy = await startConnectProxy({ user: 'relay', password: SECRET });
      t.after(() => proxy.close());
      const out = await check(`http://relay:${SECRET}@127.0.0.1:${proxy.port}`);
      assert.equal(out.code, 0, out.stdout + out.stderr);
      assert.match(out.stdout, /\[ok {2}\] token for app .* via proxy http:\/\/\*\*\*@127\.0\.0\.1:\d+: obtained/);
      assert.match(out.stdout, /\[ok {2}\] SMTP session with .* via proxy http:\/\/\*\*\*@127\.0\.0\.1:\d+ /);
      assert.doesNotMatch(out.stdout + out.stderr, new RegExp(SECRET));
    });

    test('proxy refused (nothing listens there)', async () => {
      const closed = createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const port = (closed.address() as AddressInfo).port;
      await new Promise<void>((resolve) => closed.close(() => resolve()));
      const out = await check(`http://127.0.0.1:${port}`);
      assert.equal(out.code, 1, out.stdout + out.stderr);
      assert.match(out.stdout, /\[FAIL\] token for app/);
      assert.match(out.stdout, new RegExp(`problem: the proxy http://127\\.0\\.0\\.1:${port} cannot be reached`));
      assert.match(out.stdout, /fix: check the proxy's host and port in the proxy key of the configuration.*proxy: direct/);
    });

    test('proxy needs authentication (407), and refuses wrong credentials', async (t) => {
      const proxy = await startConnectProxy({ user: 'relay', password: SECRET });
      t.after(() => proxy.close());
      const none = await check(proxy.url);
      assert.equal(none.code, 1, none.stdout + none.stderr);
      assert.match(none.stdout, /problem: the proxy http:\/\/127\.0\.0\.1:\d+ needs authentication \(407 Proxy Authentication Required\)/);
      assert.match(none.stdout, /fix: put the proxy account in the URL: proxy: "http:\/\/\$\{PROXY_USER\}:\$\{PROXY_PASSWORD\}@host:port"/);
      const wrong = await check(`http://relay:wrong-${SECRET}@127.0.0.1:${proxy.port}`);
      assert.equal(wrong.code, 1);
      assert.match(wrong.stdout, /problem: the proxy http:\/\/\*\*\*@127\.0\.0\.1:\d+ refused the user name or password \(407\)/);
      assert.doesNotMatch(wrong.stdout + wrong.stderr, new RegExp(SECRET));
    });

    test('the proxy forbids CONNECT to the SMTP port (403): the token passes, SMTP fails with the fix', async (t) => {
      const proxy = await startConnectProxy({ refusePorts: [suite.sim.smtpPort] });
      t.after(() => proxy.close());
      const out = await check(proxy.url);
      assert.equal(out.code, 1, out.stdout + out.stderr);
      assert.match(out.stdout, /\[ok {2}\] token for app/);
      assert.match(out.stdout, /\[FAIL\] SMTP session with/);
      assert.match(out.stdout, new RegExp(`problem: the proxy http://127\\.0\\.0\\.1:${proxy.port} does not allow a tunnel to ${suite.sim.smtpHost}:${suite.sim.smtpPort} \\(answered 403 to CONNECT\\)`));
      assert.match(out.stdout, new RegExp(`fix: allow CONNECT to ${suite.sim.smtpHost}:${suite.sim.smtpPort} in the proxy .*transport: graph.*proxy: direct`));
    });
  });
});
