// The real listener with the real spool under hostile input and trouble, over raw sockets:
// odd bytes, password guessing, spool write failures, disk reserve, connection floods.
// (Access rules, AUTH, TLS and limits are in listener.test.ts.)
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { RawSmtp } from './helpers/rawSmtp.js';
import { clientBytes, startListener } from './helpers/listener.js';
import { waitFor } from './helpers/wait.js';

test('listener: NUL bytes, bare LF line endings and 8-bit headers are spooled exactly as sent', async (t) => {
  const { port, spool, logs } = await startListener(t);
  const s = await RawSmtp.connect(port);
  t.after(() => s.close());
  const ehlo = await s.command('EHLO printer.local');
  assert.match(ehlo, /^250[ -]SIZE 36700160$/m);
  assert.match(ehlo, /^250[ -]AUTH PLAIN LOGIN$/m);
  assert.doesNotMatch(ehlo, /STARTTLS/, 'no STARTTLS without a certificate');
  // 8-bit header bytes, a NUL byte and bare LF line endings are kept as the device sent them.
  const data = Buffer.concat([Buffer.from('From: scanner@printer.local\nSubject: caf'), Buffer.from([0xe9, 0x00]), Buffer.from('\n\nbody line\r\n')]);
  const reply = await s.send('scanner@printer.local', ['a@contoso.com', 'B@Contoso.com'], data);
  const id = /^250 2\.0\.0 Ok: queued as ([0-9A-Z]+)$/.exec(reply)?.[1];
  assert.ok(id, reply);
  const [entry] = await spool.list();
  assert.equal(entry?.meta.id, id);
  assert.deepEqual(entry?.meta.envelope, { from: 'scanner@printer.local', to: ['a@contoso.com', 'B@Contoso.com'] });
  assert.equal(entry?.meta.client.address, '127.0.0.1');
  assert.equal(entry?.meta.client.helo, 'printer.local');
  const stored = clientBytes(readFileSync(spool.dataPath(id)), id);
  assert.deepEqual(stored.rest, Buffer.concat([data, Buffer.from('\r\n')]).subarray(0, data.length));
  assert.match(stored.received, /^Received: [^\r]*\n\t/, 'the Received: field uses the message\'s own bare-LF line ending');
  assert.ok(logs.find((l) => l.event === 'received' && l.msgId === id && Array.isArray(l.recipients) && l.recipients.length === 2 && l.size === data.length));
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

test('listener: a spool write failure answers 451 4.3.0, never 250; it recovers without a restart', async (t) => {
  const { port, spool, dir, logs } = await startListener(t);
  const dataDir = join(dir, 'spool', 'data');
  // Fault injection that works as root too: the data directory becomes a plain file.
  rmSync(dataDir, { recursive: true });
  writeFileSync(dataDir, '');
  const s = await RawSmtp.connect(port);
  t.after(() => s.close());
  await s.command('EHLO x');
  assert.equal(await s.send('a@b.c', ['x@contoso.com'], 'Subject: x\r\n\r\ny\r\n'), '451 4.3.0 Error: queue file write error, try again later');
  assert.ok(logs.find((l) => l.event === 'spool-error'));
  rmSync(dataDir);
  mkdirSync(dataDir);
  assert.match(await s.send('a@b.c', ['x@contoso.com'], 'Subject: x\r\n\r\ny\r\n'), /^250 2\.0\.0/);
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
  assert.match(await ok.send('a@b.c', ['x@contoso.com'], 'Subject: ok\r\n\r\nok\r\n'), /^250 2\.0\.0/);
});
