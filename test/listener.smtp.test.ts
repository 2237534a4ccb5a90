// The real listener (smtp-server) with the real spool, driven over loopback by raw sockets and
// nodemailer: access rules, AUTH, limits, size, spool failures and hostile input.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import nodemailer from 'nodemailer';
import { stringify } from 'yaml';
import { hashPassword } from '../src/access/index.js';
import { parseConfig } from '../src/config/index.js';
import { createListener } from '../src/listener/index.js';
import { generateClientCertificate } from '../src/simulator/index.js';
import { SpaceGuard, Spool } from '../src/spool/index.js';
import { captureLogger } from './helpers/logs.js';
import { RawSmtp } from './helpers/rawSmtp.js';
import { tempDir } from './helpers/tmp.js';
import { startListener, transaction } from './helpers/listener.js';
import { waitFor } from './helpers/wait.js';

test('listener: an allowed client relays without AUTH; the reply names the queue id; the bytes are spooled as sent', async (t) => {
  const { port, spool, logs } = await startListener(t);
  const s = await RawSmtp.connect(port);
  t.after(() => s.close());
  const ehlo = await s.command('EHLO printer.local');
  assert.match(ehlo, /^250[ -]SIZE 36700160$/m);
  assert.match(ehlo, /^250[ -]AUTH PLAIN LOGIN$/m);
  assert.doesNotMatch(ehlo, /STARTTLS/, 'no STARTTLS without a certificate');
  // 8-bit header bytes, a NUL byte and bare LF line endings are kept as the device sent them.
  const data = Buffer.concat([Buffer.from('From: scanner@printer.local\nSubject: caf'), Buffer.from([0xe9, 0x00]), Buffer.from('\n\nbody line\r\n')]);
  const reply = await transaction(s, 'scanner@printer.local', ['a@contoso.com', 'B@Contoso.com'], data);
  const id = /^250 2\.0\.0 Ok: queued as ([0-9A-Z]+)$/.exec(reply)?.[1];
  assert.ok(id, reply);
  const [entry] = await spool.list();
  assert.equal(entry?.meta.id, id);
  assert.deepEqual(entry?.meta.envelope, { from: 'scanner@printer.local', to: ['a@contoso.com', 'B@Contoso.com'] });
  assert.equal(entry?.meta.client.address, '127.0.0.1');
  assert.equal(entry?.meta.client.helo, 'printer.local');
  assert.deepEqual(readFileSync(spool.dataPath(id)), Buffer.concat([data, Buffer.from('\r\n')]).subarray(0, data.length));
  assert.ok(logs.find((l) => l.event === 'received' && l.msgId === id && l.recipients === 2 && l.size === data.length));
});

test('listener: a HELO-only client from an allowed network can send', async (t) => {
  const { port, spool } = await startListener(t);
  const s = await RawSmtp.connect(port);
  t.after(() => s.close());
  assert.match(await s.command('HELO old-printer'), /^250 /);
  assert.match(await transaction(s, 'ups@local', ['ops@contoso.com'], 'Subject: on battery\r\n\r\nx\r\n'), /^250 2\.0\.0 Ok: queued as/);
  assert.equal((await spool.list()).length, 1);
});

test('listener: outside allowNetworks without AUTH gets 530 5.7.0 and nothing is queued', async (t) => {
  const { port, spool, logs } = await startListener(t, { allowNetworks: ['192.168.10.0/24'] });
  const s = await RawSmtp.connect(port);
  t.after(() => s.close());
  await s.command('EHLO stranger');
  assert.equal(await s.command('MAIL FROM:<spam@evil.example>'), '530 5.7.0 Authentication required');
  assert.match(await s.command('RCPT TO:<victim@example.com>'), /^503 /);
  assert.match(await s.command('DATA'), /^503 /);
  assert.deepEqual(await spool.list(), []);
  assert.ok(logs.find((l) => l.event === 'rejected' && l.client === '127.0.0.1'));
});

test('listener: AUTH PLAIN and AUTH LOGIN as local users; a wrong password is 535 5.7.8 and queues nothing', async (t) => {
  const passwordHash = await hashPassword('s3cret pass');
  const { port, spool, logs } = await startListener(t, { allowNetworks: [], users: [{ username: 'scanner', passwordHash }, { username: 'nas', password: 'plain-pw' }] });
  const plain = await RawSmtp.connect(port);
  t.after(() => plain.close());
  await plain.command('EHLO mfp');
  assert.equal(await plain.command(`AUTH PLAIN ${Buffer.from('\0scanner\0wrong').toString('base64')}`), '535 5.7.8 Error: authentication failed');
  assert.equal(await plain.command('MAIL FROM:<a@b.c>'), '530 5.7.0 Authentication required');
  assert.match(await plain.command(`AUTH PLAIN ${Buffer.from('\0scanner\0s3cret pass').toString('base64')}`), /^235 /);
  assert.match(await transaction(plain, 'scanner@mfp.local', ['a@contoso.com'], 'Subject: x\r\n\r\ny\r\n'), /^250 2\.0\.0 Ok: queued/);

  const login = await RawSmtp.connect(port);
  t.after(() => login.close());
  await login.command('EHLO nas');
  assert.match(await login.command('AUTH LOGIN'), /^334 /);
  assert.match(await login.command(Buffer.from('nas').toString('base64')), /^334 /);
  assert.match(await login.command(Buffer.from('plain-pw').toString('base64')), /^235 /);
  assert.match(await transaction(login, 'nas@local', ['a@contoso.com'], 'Subject: x\r\n\r\ny\r\n'), /^250 2\.0\.0 Ok: queued/);

  const entries = await spool.list();
  assert.deepEqual(entries.map((e) => e.meta.client.user).sort(), ['nas', 'scanner']);
  assert.ok(!JSON.stringify(logs).includes('s3cret'), 'passwords never reach the log');
  assert.ok(logs.find((l) => l.event === 'auth-failed' && l.username === 'scanner'));
});

test('listener: repeated AUTH failures slow down, then block the address for a while', async (t) => {
  const { port } = await startListener(t, { allowNetworks: [], users: [{ username: 'u', password: 'p' }], limits: { maxAuthFailures: 3, authBlockDuration: '1h' } });
  const s = await RawSmtp.connect(port);
  t.after(() => s.close());
  await s.command('EHLO guesser');
  for (let i = 0; i < 3; i++) assert.match(await s.command(`AUTH PLAIN ${Buffer.from(`\0u\0guess${i}`).toString('base64')}`), /^535 /);
  // Blocked now: even the right password is refused from this address.
  assert.equal(await s.command(`AUTH PLAIN ${Buffer.from('\0u\0p').toString('base64')}`), '454 4.7.0 Too many failed authentication attempts; try again later');
});

test('listener: IPv6 and IPv4-mapped clients match allowNetworks', async (t) => {
  const v6 = await startListener(t, { allowNetworks: ['::1/128'] }, { port: 0, host: '::1' });
  const a = await RawSmtp.connect(v6.port, '::1');
  t.after(() => a.close());
  await a.command('EHLO v6');
  assert.match(await a.command('MAIL FROM:<a@b.c>'), /^250 /);

  // A dual-stack socket sees 127.0.0.1 as ::ffff:127.0.0.1; the IPv4 rule must still apply.
  const dual = await startListener(t, { allowNetworks: ['127.0.0.0/8'] }, { port: 0, host: '::' });
  const b = await RawSmtp.connect(dual.port, '127.0.0.1');
  t.after(() => b.close());
  await b.command('EHLO mapped');
  assert.match(await transaction(b, 'a@b.c', ['x@contoso.com'], 'Subject: m\r\n\r\nm\r\n'), /^250 2\.0\.0/);
  assert.equal((await dual.spool.list())[0]?.meta.client.address, '127.0.0.1');

  const refused = await startListener(t, { allowNetworks: ['127.0.0.1/32'] }, { port: 0, host: '::1' });
  const c = await RawSmtp.connect(refused.port, '::1');
  t.after(() => c.close());
  await c.command('EHLO v6');
  assert.equal(await c.command('MAIL FROM:<a@b.c>'), '530 5.7.0 Authentication required');
});

test('listener: more recipients than maxRecipients get 452 4.5.3', async (t) => {
  const { port } = await startListener(t, { maxRecipients: 2 });
  const s = await RawSmtp.connect(port);
  t.after(() => s.close());
  await s.command('EHLO x');
  await s.command('MAIL FROM:<a@b.c>');
  assert.match(await s.command('RCPT TO:<1@contoso.com>'), /^250/);
  assert.match(await s.command('RCPT TO:<2@contoso.com>'), /^250/);
  assert.equal(await s.command('RCPT TO:<3@contoso.com>'), '452 4.5.3 Too many recipients');
});

test('listener: SIZE is advertised; a larger message gets 552 and is not queued', async (t) => {
  const { port, spool, dir } = await startListener(t, { maxMessageSize: 1000 });
  const s = await RawSmtp.connect(port);
  t.after(() => s.close());
  assert.match(await s.command('EHLO x'), /^250[ -]SIZE 1000$/m);
  assert.match(await s.command('MAIL FROM:<a@b.c> SIZE=5000'), /^552 /);
  assert.match(await transaction(s, 'a@b.c', ['x@contoso.com'], `Subject: big\r\n\r\n${'x'.repeat(5000)}\r\n`), /^552 /);
  assert.deepEqual(await spool.list(), []);
  assert.deepEqual(readdirSync(join(dir, 'spool', 'data')), []);
  assert.match(await transaction(s, 'a@b.c', ['x@contoso.com'], 'Subject: small\r\n\r\nok\r\n'), /^250 /);
});

test('listener: a spool write failure answers 451 4.3.0, never 250; it recovers without a restart', async (t) => {
  const { port, spool, dir, logs } = await startListener(t);
  const dataDir = join(dir, 'spool', 'data');
  // Fault injection that works as root too: the data directory becomes a plain file.
  rmSync(dataDir, { recursive: true });
  writeFileSync(dataDir, '');
  const s = await RawSmtp.connect(port);
  t.after(() => s.close());
  await s.command('EHLO x');
  assert.equal(await transaction(s, 'a@b.c', ['x@contoso.com'], 'Subject: x\r\n\r\ny\r\n'), '451 4.3.0 Error: queue file write error, try again later');
  assert.ok(logs.find((l) => l.event === 'spool-error'));
  rmSync(dataDir);
  mkdirSync(dataDir);
  assert.match(await transaction(s, 'a@b.c', ['x@contoso.com'], 'Subject: x\r\n\r\ny\r\n'), /^250 2\.0\.0/);
  assert.equal((await spool.list()).length, 1);
});

test('listener: under spool.minFreeSpace new mail gets 452 4.3.1', async (t) => {
  const { port, spool, logs } = await startListener(t, {}, undefined, { minFreeSpace: '1000000GB' });
  const s = await RawSmtp.connect(port);
  t.after(() => s.close());
  await s.command('EHLO x');
  assert.equal(await s.command('MAIL FROM:<a@b.c>'), '452 4.3.1 Insufficient system storage, try again later');
  assert.deepEqual(await spool.list(), []);
  assert.ok(logs.find((l) => l.event === 'disk-full' && l.level === 'error'));
});

test('listener: with a certificate, STARTTLS is offered and AUTH waits for it', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const cert = await generateClientCertificate('relay.lan');
  writeFileSync(join(tmp.dir, 'relay.crt'), cert.certPem);
  writeFileSync(join(tmp.dir, 'relay.key'), cert.keyPem);
  const { port, spool } = await startListener(t, { allowNetworks: [], users: [{ username: 'scanner', password: 'pw' }] }, { port: 0, host: '127.0.0.1', tls: { cert: join(tmp.dir, 'relay.crt'), key: join(tmp.dir, 'relay.key') } });
  const s = await RawSmtp.connect(port);
  t.after(() => s.close());
  const ehlo = await s.command('EHLO mfp');
  assert.match(ehlo, /STARTTLS/);
  assert.match(await s.command(`AUTH PLAIN ${Buffer.from('\0scanner\0pw').toString('base64')}`), /^5\d\d /, 'no password over plain text when TLS is available');
  // nodemailer upgrades with STARTTLS (the test certificate is self-signed: not verified here).
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, requireTLS: true, tls: { rejectUnauthorized: false }, auth: { user: 'scanner', pass: 'pw' } });
  const info = await transport.sendMail({ envelope: { from: 'scanner@mfp.local', to: ['a@contoso.com'] }, raw: 'Subject: tls\r\n\r\nsecure\r\n' });
  transport.close();
  assert.match(info.response, /^250 2\.0\.0 Ok: queued as/);
  assert.equal((await spool.list())[0]?.meta.client.secure, true);
});

test('listener: one address cannot hold more than maxConnectionsPerClient connections', async (t) => {
  const { port } = await startListener(t, { limits: { maxConnectionsPerClient: 2 } });
  const a = await RawSmtp.connect(port);
  const b = await RawSmtp.connect(port);
  t.after(() => {
    a.close();
    b.close();
  });
  const c = await RawSmtp.connect(port, '127.0.0.1', { greeting: false });
  t.after(() => c.close());
  assert.equal(await c.reply(), '421 4.7.0 Too many connections from your address, try again later');
  await waitFor('the refused connection to close', () => c.closed, 5000);
  a.close();
  await waitFor('a slot to free up', async () => {
    const d = await RawSmtp.connect(port, '127.0.0.1', { greeting: false });
    const greeting = await d.reply();
    d.close();
    return greeting.startsWith('220');
  }, 5000);
});

test('listener: hostile and broken input gets SMTP replies, never a crash', async (t) => {
  const { port, spool } = await startListener(t, { limits: { socketTimeout: '1s' } });
  const s = await RawSmtp.connect(port);
  t.after(() => s.close());
  assert.match(await s.command('MAIL FROM:<a@b.c>'), /^503 /, 'MAIL before EHLO');
  await s.command('EHLO x');
  assert.match(await s.command('DATA'), /^503 /, 'DATA before RCPT');
  assert.match(await s.command('RCPT TO:<a@b.c>'), /^503 /, 'RCPT before MAIL');
  assert.match(await s.command('MAIL FROM:<not an address'), /^5\d\d /);
  assert.match(await s.command('FROB'), /^5\d\d /);
  assert.match(await s.command(`MAIL FROM:<${'a'.repeat(20_000)}@b.c>`), /^(5\d\d|421) |connection closed/, 'overlong command line');

  // A pipelined flood on a fresh connection: every command gets its reply, in order.
  const p = await RawSmtp.connect(port);
  t.after(() => p.close());
  p.write('EHLO flood\r\n' + 'NOOP\r\n'.repeat(200) + 'MAIL FROM:<a@b.c>\r\nRCPT TO:<x@contoso.com>\r\nDATA\r\n');
  assert.match(await p.reply(), /^250-/);
  for (let i = 0; i < 200; i++) assert.match(await p.reply(), /^250 /);
  assert.match(await p.reply(), /^250 /);
  assert.match(await p.reply(), /^250 /);
  assert.match(await p.reply(), /^354 /);
  assert.match(await p.command('Subject: flood\r\n\r\nstill fine\r\n.'), /^250 2\.0\.0 Ok: queued/);

  // An idle client is disconnected after socketTimeout.
  const idle = await RawSmtp.connect(port);
  t.after(() => idle.close());
  assert.match(await idle.reply(5000), /^421 /);
  await waitFor('the idle client to be closed', () => idle.closed, 5000);
  assert.equal((await spool.list()).length, 1);

  // And a normal client is still served.
  const ok = await RawSmtp.connect(port);
  t.after(() => ok.close());
  await ok.command('EHLO after');
  assert.match(await transaction(ok, 'a@b.c', ['x@contoso.com'], 'Subject: ok\r\n\r\nok\r\n'), /^250 2\.0\.0/);
});
