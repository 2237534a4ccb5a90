// Which proxy a connection uses (configuration, environment, NO_PROXY as curl reads it), how a
// proxy URL is shown, and the CONNECT tunnel's answers told apart, against a proxy on loopback.
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { noProxyMatches, openTunnel, parseProxyUrl, proxyFor, ProxyError, redactProxyUrl } from '../src/proxy/index.js';
import { parseConfig } from '../src/config/index.js';
import { startConnectProxy } from './helpers/connectProxy.js';

describe('NO_PROXY, as curl reads it', () => {
  const cases: Array<[host: string, noProxy: string, bypass: boolean]> = [
    ['login.microsoftonline.com', '*', true],
    ['login.microsoftonline.com', 'microsoftonline.com', true],
    ['login.microsoftonline.com', '.microsoftonline.com', true],
    ['microsoftonline.com', '.microsoftonline.com', true],
    ['login.microsoftonline.com', 'online.com', false],
    ['notmicrosoftonline.com', 'microsoftonline.com', false],
    ['smtp.office365.com', 'example.com, smtp.office365.com', true],
    ['smtp.office365.com', 'example.com smtp.office365.com', true],
    ['SMTP.Office365.com.', 'smtp.office365.COM', true],
    ['smtp.office365.com', 'smtp.office365.com:587', false],
    ['smtp.office365.com', '', false],
    ['smtp.office365.com', ',,', false],
    ['10.1.2.3', '10.0.0.0/8', true],
    ['10.1.2.3', '10.1.2.3', true],
    ['10.1.2.4', '10.1.2.3', false],
    ['10.1.2.3', '10.0.0.0/33', false],
    ['10.1.2.3', '2.3', false],
    ['fd00::5', 'fd00::/8', true],
    ['[fd00::5]', 'fd00::5', true],
    ['fd00::5', '10.0.0.0/8', false],
    // Loopback is not special (curl): proxied unless listed.
    ['127.0.0.1', 'localhost', false],
    ['127.0.0.1', '127.0.0.1', true],
    ['localhost', 'localhost', true],
    ['127.0.0.1', '127.0.0.0/8', true],
  ];
  for (const [host, noProxy, bypass] of cases) {
    test(`${host} with NO_PROXY="${noProxy}": ${bypass ? 'direct' : 'proxied'}`, () => {
      assert.equal(noProxyMatches(host, noProxy), bypass);
    });
  }
});

describe('which proxy a connection uses', () => {
  test('the configured value wins over the environment; direct means none', () => {
    const env = { HTTPS_PROXY: 'http://env-proxy:8080' };
    assert.equal(proxyFor('http://cfg:3128', 'smtp.office365.com', env)?.url.host, 'cfg:3128');
    assert.equal(proxyFor('http://cfg:3128', 'smtp.office365.com', env)?.source, 'proxy');
    assert.equal(proxyFor('direct', 'smtp.office365.com', env), null);
    // NO_PROXY is the environment's: it does not override a configured proxy.
    assert.equal(proxyFor('http://cfg:3128', 'smtp.office365.com', { NO_PROXY: '*' })?.url.hostname, 'cfg');
  });

  test('without the key: https_proxy before HTTPS_PROXY, no_proxy before NO_PROXY', () => {
    assert.equal(proxyFor(undefined, 'graph.microsoft.com', {}), null);
    assert.equal(proxyFor(undefined, 'graph.microsoft.com', { HTTPS_PROXY: 'http://upper:1' })?.source, 'HTTPS_PROXY');
    assert.equal(proxyFor(undefined, 'graph.microsoft.com', { https_proxy: 'http://lower:1', HTTPS_PROXY: 'http://upper:1' })?.url.hostname, 'lower');
    assert.equal(proxyFor(undefined, 'graph.microsoft.com', { HTTPS_PROXY: 'http://p:1', NO_PROXY: 'microsoft.com' }), null);
    assert.notEqual(proxyFor(undefined, 'graph.microsoft.com', { HTTPS_PROXY: 'http://p:1', no_proxy: 'example.com', NO_PROXY: 'microsoft.com' }), null);
    // HTTP_PROXY is for plain http:// and is not used (all our connections are TLS).
    assert.equal(proxyFor(undefined, 'graph.microsoft.com', { HTTP_PROXY: 'http://p:1' }), null);
  });

  test('proxy URLs: http and https with credentials; anything else is refused without showing the secret', () => {
    assert.equal(parseProxyUrl('https://u:p%40ss@proxy.corp:8443').password, 'p%40ss');
    assert.throws(() => parseProxyUrl('socks5://u:hunter2@proxy:1080'), (e: Error) => /not supported/.test(e.message) && !e.message.includes('hunter2'));
    assert.throws(() => parseProxyUrl('http://u:hunter2@proxy:3128/path'), (e: Error) => /path/.test(e.message) && !e.message.includes('hunter2'));
    assert.throws(() => parseProxyUrl('u:hunter2@proxy'), (e: Error) => !e.message.includes('hunter2'));
    assert.equal(redactProxyUrl(new URL('http://user:hunter2@proxy.corp:3128')), 'http://***@proxy.corp:3128');
    assert.equal(redactProxyUrl(new URL('http://proxy.corp:3128')), 'http://proxy.corp:3128');
    assert.equal(redactProxyUrl('http://user:hunter2@not a url'), 'http://***@not a url');
  });

  test('the configuration: global proxy, an account overriding it, ${VAR} credentials, errors without the password', () => {
    const base = (extra: string) => `listen: [{port: 0}]\nspool: {dir: /tmp/x}\nmicrosoft365: {tenantId: t, clientId: c, clientSecret: s, mailbox: relay@contoso.com}\n${extra}`;
    const config = parseConfig(
      base('proxy: "http://${PROXY_USER}:${PROXY_PASSWORD}@proxy.corp:3128"\naccounts:\n  direct1: {tenantId: t, clientId: c, clientSecret: s, mailbox: a@contoso.com, proxy: direct}\n'),
      '/tmp/relay.yaml',
      { PROXY_USER: 'relay', PROXY_PASSWORD: 'hunter2' },
    );
    assert.equal(config.microsoft365.proxy, 'http://relay:hunter2@proxy.corp:3128');
    assert.equal(config.accounts.direct1?.proxy, 'direct');
    assert.throws(
      () => parseConfig(base('proxy: "ftp://relay:hunter2@proxy.corp"\n'), '/tmp/relay.yaml', {}),
      (e: Error) => /proxy: ftp:\/\/ proxies are not supported/.test(e.message) && !e.message.includes('hunter2'),
    );
    assert.throws(
      () => parseConfig(base(''), '/tmp/relay.yaml', { HTTPS_PROXY: 'socks5://relay:hunter2@p:1080' }),
      (e: Error) => /HTTPS_PROXY is not usable/.test(e.message) && !e.message.includes('hunter2'),
    );
  });
});

describe('the CONNECT tunnel', () => {
  async function echoServer() {
    const server = createServer((s) => s.pipe(s));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { port: (server.address() as AddressInfo).port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
  }

  test('opens a tunnel, sending Basic credentials from the URL (percent-decoded)', async (t) => {
    const echo = await echoServer();
    const proxy = await startConnectProxy({ user: 'relay', password: 'p@ss:word' });
    t.after(async () => {
      await proxy.close();
      await echo.close();
    });
    const socket = await openTunnel(new URL(`http://relay:p%40ss%3Aword@127.0.0.1:${proxy.port}`), '127.0.0.1', echo.port, 10_000);
    socket.write('ping');
    const got = await new Promise<string>((resolve) => socket.once('data', (d: Buffer) => resolve(d.toString())));
    socket.destroy();
    assert.equal(got, 'ping');
    assert.deepEqual(proxy.connects.map((c) => [c.target, c.status]), [[`127.0.0.1:${echo.port}`, 200]]);
  });

  test('407 without credentials, 407 with wrong ones, 403 for a refused port, and a proxy that is not there', async (t) => {
    const proxy = await startConnectProxy({ user: 'relay', password: 'right', refusePorts: [587] });
    t.after(() => proxy.close());
    const attempt = (url: string, port = 443) => openTunnel(new URL(url), '127.0.0.1', port, 10_000).then(() => assert.fail('no tunnel expected'), (e: unknown) => e as ProxyError);

    const noAuth = await attempt(proxy.url);
    assert.ok(noAuth instanceof ProxyError);
    assert.equal(noAuth.kind, 'auth');
    assert.match(noAuth.message, /needs authentication/);

    const wrong = await attempt(`http://relay:hunter2@127.0.0.1:${proxy.port}`);
    assert.equal(wrong.kind, 'auth');
    assert.match(wrong.message, /refused the credentials/);
    assert.doesNotMatch(wrong.message, /hunter2/);
    assert.equal(wrong.proxy, `http://***@127.0.0.1:${proxy.port}`);

    const forbidden = await attempt(`http://relay:right@127.0.0.1:${proxy.port}`, 587);
    assert.equal(forbidden.kind, 'forbidden');
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.target, '127.0.0.1:587');

    const closed = await echoServer();
    await closed.close(); // a port nobody listens on now
    const refused = await attempt(`http://127.0.0.1:${closed.port}`);
    assert.equal(refused.kind, 'unreachable');
    assert.match(refused.message, /ECONNREFUSED/);
  });

  test('a proxy that never answers: a timeout, bounded', async (t) => {
    const silent = createServer(() => undefined);
    const held: Array<import('node:net').Socket> = [];
    silent.on('connection', (s) => held.push(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    t.after(() => {
      for (const s of held) s.destroy();
      silent.close();
    });
    const err = await openTunnel(new URL(`http://127.0.0.1:${(silent.address() as AddressInfo).port}`), '127.0.0.1', 443, 300).catch((e: unknown) => e as ProxyError);
    assert.ok(err instanceof ProxyError);
    assert.equal(err.kind, 'timeout');
  });
});
