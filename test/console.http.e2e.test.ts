// The console over the http listener without a browser: off unless configured, over HTTPS
// (http.tls) with a Secure session cookie, and an account's trouble on the overview. The real daemon (node dist/cli.js run) on loopback,
// its certificate signed by the run's test CA (which this process trusts).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { hashPassword } from '../src/access/passwords.js';
import { generateServerCertificate } from '../src/simulator/certs.js';
import { rawConfigFor, sendMessage, simulatorSuite, spawnRelay } from './helpers/harness.js';
import { loadTestCa } from './helpers/testCa.js';

describe('console on the http listener', () => {
  const suite = simulatorSuite();

  test('off unless configured: only /healthz, /readyz and /metrics answer', async (t) => {
    const dir = suite.dir();
    const relay = await spawnRelay(rawConfigFor(suite.sim, join(dir, 'spool'), { http: { host: '127.0.0.1', port: 0 } }), dir);
    t.after(() => relay.stop());
    const http = await relay.waitForLog('the http listener', (l) => l.event === 'http-listening');
    assert.equal(http.console, false);
    const base = `http://127.0.0.1:${http.port as number}`;
    for (const path of ['/', '/login', '/queue', '/assets/console.css']) assert.equal((await fetch(`${base}${path}`)).status, 404, path);
    assert.equal((await fetch(`${base}/login`, { method: 'POST', body: 'username=a&password=b' })).status, 405);
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
  });

  test('http.tls: the console and the health endpoints over HTTPS; the session cookie is Secure', async (t) => {
    const dir = suite.dir();
    const cert = await generateServerCertificate(loadTestCa());
    writeFileSync(join(dir, 'http.pem'), cert.certPem);
    writeFileSync(join(dir, 'http.key'), cert.keyPem, { mode: 0o600 });
    const password = 'a long console password';
    const relay = await spawnRelay(
      rawConfigFor(suite.sim, join(dir, 'spool'), {
        http: { host: '127.0.0.1', port: 0, tls: { cert: join(dir, 'http.pem'), key: join(dir, 'http.key') } },
        console: { users: [{ username: 'admin', passwordHash: await hashPassword(password) }] },
      }),
      dir,
    );
    t.after(() => relay.stop());
    const http = await relay.waitForLog('the http listener', (l) => l.event === 'http-listening');
    assert.equal(http.protocol, 'https');
    const base = `https://localhost:${http.port as number}`;
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    await assert.rejects(fetch(`http://127.0.0.1:${http.port as number}/healthz`), 'no plain HTTP on the TLS port');

    const login = await fetch(`${base}/login`, { method: 'POST', body: new URLSearchParams({ username: 'admin', password, next: '/queue' }), redirect: 'manual' });
    assert.equal(login.status, 303);
    assert.equal(login.headers.get('location'), '/queue');
    const cookie = login.headers.get('set-cookie') ?? '';
    assert.match(cookie, /^m365relay_session=[\w-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200; Secure$/);
    const queue = await fetch(`${base}/queue`, { headers: { Cookie: cookie.split(';')[0] ?? '' } });
    assert.equal(queue.status, 200);
    assert.match(await queue.text(), /<h1>Queue<\/h1>/);
  });

  test("the overview tells why an account holds, with the advice, and when its secret expires; never the secret", async (t) => {
    const dir = suite.dir();
    const password = 'another console password';
    const relay = await spawnRelay(
      rawConfigFor(suite.sim, join(dir, 'spool'), {
        http: { host: '127.0.0.1', port: 0 },
        console: { users: [{ username: 'ops', passwordHash: await hashPassword(password) }] },
        microsoft365: { clientSecret: 'wrong-secret', clientSecretExpires: '2027-05-01' },
      }),
      dir,
    );
    t.after(() => relay.stop());
    const http = await relay.waitForLog('the http listener', (l) => l.event === 'http-listening');
    const base = `http://127.0.0.1:${http.port as number}`;
    await sendMessage(relay.port);
    await relay.waitForLog('the account to hold', (l) => l.event === 'upstream-unavailable', 20_000);
    const login = await fetch(`${base}/login`, { method: 'POST', body: new URLSearchParams({ username: 'ops', password }), redirect: 'manual' });
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const page = await (await fetch(`${base}/`, { headers: { Cookie: cookie } })).text();
    const row = /<tr data-account="default">[\s\S]*?<\/tr>/.exec(page)?.[0] ?? assert.fail('no row for the default account');
    assert.match(row, /holding/);
    assert.match(row, /AADSTS7000215/);
    assert.match(row, /class="advice">the client secret is wrong: put the secret VALUE \(not its ID\)/);
    assert.match(row, /secret expires <time datetime="2027-05-01T00:00:00\.000Z">2027-05-01 00:00:00 UTC<\/time>/);
    assert.doesNotMatch(page, /wrong-secret/);
    // The message waits, or is the probe under way right now.
    const count = (label: string) => Number(new RegExp(`<span class="n">(?:<a [^>]*>)?(\\d+)(?:</a>)?</span><span class="label">${label}`).exec(page)?.[1]);
    assert.equal(count('waiting') + count('being delivered now'), 1);
  });

  test('an http.tls certificate that cannot be used stops the start, naming the key', async () => {
    const dir = suite.dir();
    writeFileSync(join(dir, 'http.pem'), 'not a certificate');
    writeFileSync(join(dir, 'http.key'), 'not a key');
    await assert.rejects(
      spawnRelay(rawConfigFor(suite.sim, join(dir, 'spool'), { http: { host: '127.0.0.1', port: 0, tls: { cert: join(dir, 'http.pem'), key: join(dir, 'http.key') } } }), dir),
      /http\.tls\.cert: .*http\.pem is not a PEM certificate/,
    );
  });
});
