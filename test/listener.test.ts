// The real listener (smtp-server) over loopback, with the real spool (or, where said, a fault-injected
// sink), driven by nodemailer and by raw sockets where the exact reply matters.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { before, describe, test, type TestContext } from 'node:test';
import nodemailer from 'nodemailer';
import { generate } from 'selfsigned';
import { stringify } from 'yaml';
import { hashPassword } from '../src/access/index.js';
import { parseConfig, type RelayConfig } from '../src/config/index.js';
import { createListener, type Listener } from '../src/listener/index.js';
import { Spool, SpoolWriteError, type IncomingMessage, type MessageSink } from '../src/spool/index.js';
import { captureLogger, type LogLine } from './helpers/logs.js';
import { clientBytes } from './helpers/listener.js';
import { RawSmtp } from './helpers/rawSmtp.js';
import { tempDir } from './helpers/tmp.js';

const TIMEOUT = { timeout: 20_000 };

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
const MESSAGE = 'From: scanner@printer.local\r\nTo: alice@contoso.com\r\nSubject: Scan\r\n\r\nScanned document.\r\n';
const QUEUED = /^250 2\.0\.0 Ok: queued as ([0-9A-Za-z]+)$/;

interface Started {
  port: number;
  host: string;
  spool: Spool;
  spoolDir: string;
  logs: LogLine[];
  queued: string[];
  listener: Listener;
  config: RelayConfig;
  dir: string;
  configFor(overrides: Record<string, unknown>): RelayConfig;
}

/**
 * The real listener over a real spool in a temp directory (or `sink` instead of the spool),
 * closed after the test. allowNetworks defaults to 127.0.0.1/32.
 */
async function startListener(
  t: TestContext,
  overrides: Record<string, unknown> = {},
  options: { listen?: Record<string, unknown>; sink?: MessageSink; files?: Record<string, string>; onQueued?: (id: string) => void } = {},
): Promise<Started> {
  const tmp = tempDir('m365-relay-listener-');
  t.after(tmp.remove);
  for (const [name, content] of Object.entries(options.files ?? {})) writeFileSync(join(tmp.dir, name), content);
  const spoolDir = join(tmp.dir, 'spool');
  const configFor = (o: Record<string, unknown>) =>
    parseConfig(
      stringify({
        listen: [options.listen ?? { port: 0, host: '127.0.0.1' }],
        allowNetworks: ['127.0.0.1/32'],
        spool: { dir: spoolDir, minFreeSpace: 0 },
        // Never contacted here: only the listener and the spool run.
        microsoft365: { tenantId: 't', clientId: 'c', clientSecret: 's', mailbox: 'relay@contoso.com' },
        ...o,
      }),
      join(tmp.dir, 'relay.yaml'),
      {},
    );
  const config = configFor(overrides);
  const { logger, lines } = captureLogger();
  const spool = await Spool.open(spoolDir, logger);
  const queued: string[] = [];
  const listener = createListener({
    config,
    sink: options.sink ?? spool,
    logger,
    onQueued: (id) => {
      queued.push(id);
      options.onQueued?.(id);
    },
  });
  const [bound] = await listener.start();
  t.after(() => listener.close(200));
  assert.ok(bound);
  return { port: bound.port, host: bound.host, spool, spoolDir, logs: lines, queued, listener, config, dir: tmp.dir, configFor };
}

async function connect(t: TestContext, port: number, host = '127.0.0.1'): Promise<RawSmtp> {
  const s = await RawSmtp.connect(port, host, { ready: true });
  t.after(() => s.close());
  return s;
}

function transport(port: number, extra: Record<string, unknown> = {}) {
  return nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    secure: false,
    ignoreTLS: true,
    name: 'printer.local',
    connectionTimeout: 5000,
    greetingTimeout: 5000,
    socketTimeout: 10_000,
    ...extra,
  });
}

async function sendWithNodemailer(port: number, mail: { from: string; to: string[]; raw?: string }, extra: Record<string, unknown> = {}) {
  const tr = transport(port, extra);
  try {
    return await tr.sendMail({ envelope: { from: mail.from, to: mail.to }, raw: mail.raw ?? MESSAGE });
  } finally {
    tr.close();
  }
}

const dataFiles = (spoolDir: string) => readdirSync(join(spoolDir, 'data'));

describe('listener: access without AUTH', () => {
  test('a client in allowNetworks sends without AUTH (nodemailer); 250 names the queue id; envelope, client and log line are right', TIMEOUT, async (t) => {
    const { port, spool, logs, queued } = await startListener(t);
    const info = await sendWithNodemailer(port, { from: 'scanner@printer.local', to: ['alice@contoso.com', 'Bob.Smith@contoso.com'] });
    const id = QUEUED.exec(info.response)?.[1];
    assert.ok(id, info.response);
    assert.deepEqual(queued, [id], 'onQueued got the id');
    const [entry, ...rest] = await spool.list();
    assert.equal(rest.length, 0);
    assert.equal(entry?.meta.id, id);
    assert.deepEqual(entry?.meta.envelope, { from: 'scanner@printer.local', to: ['alice@contoso.com', 'Bob.Smith@contoso.com'] });
    assert.deepEqual(entry?.meta.client, { address: '127.0.0.1', helo: 'printer.local', secure: false });
    // Stored: the relay's Received: field, then the message exactly as sent.
    const stored = clientBytes(readFileSync(spool.dataPath(id ?? '')), id ?? '');
    assert.equal(stored.rest.toString('utf8'), MESSAGE);
    assert.equal(entry?.meta.size, Buffer.byteLength(MESSAGE) + stored.received.length);
    const received = logs.filter((l) => l.event === 'received');
    assert.equal(received.length, 1);
    assert.deepEqual(
      { msgId: received[0]?.msgId, client: received[0]?.client, user: received[0]?.user, size: received[0]?.size, from: received[0]?.from, recipients: received[0]?.recipients, level: received[0]?.level },
      { msgId: id, client: '127.0.0.1', user: undefined, size: Buffer.byteLength(MESSAGE), from: 'scanner@printer.local', recipients: ['alice@contoso.com', 'Bob.Smith@contoso.com'], level: 'info' },
    );
  });

  test('EHLO advertises SIZE = maxMessageSize, 8BITMIME, SMTPUTF8, AUTH PLAIN LOGIN; no STARTTLS without a certificate', TIMEOUT, async (t) => {
    const { port } = await startListener(t);
    const s = await connect(t, port);
    const ehlo = await s.command('EHLO printer.local');
    const features = ehlo.split('\n').map((l) => l.slice(4));
    for (const f of ['SIZE 36700160', '8BITMIME', 'SMTPUTF8', 'PIPELINING', 'AUTH PLAIN LOGIN']) assert.ok(features.includes(f), `${f} in\n${ehlo}`);
    assert.doesNotMatch(ehlo, /STARTTLS/);
    assert.match(await s.command('STARTTLS'), /^5\d\d /, 'STARTTLS is not accepted either');
  });

  test('a HELO-only client (no EHLO) from an allowed network can send', TIMEOUT, async (t) => {
    const { port, spool } = await startListener(t);
    const s = await connect(t, port);
    assert.match(await s.command('HELO old-printer'), /^250 /);
    const reply = await s.send('UPS@Old-Printer', ['Ops@Contoso.COM', 'it@contoso.com'], 'Subject: on battery\r\n\r\nUPS on battery\r\n');
    const id = QUEUED.exec(reply)?.[1];
    assert.ok(id, reply);
    const [entry] = await spool.list();
    assert.equal(entry?.meta.client.helo, 'old-printer');
    assert.deepEqual(entry?.meta.envelope, { from: 'UPS@Old-Printer', to: ['Ops@Contoso.COM', 'it@contoso.com'] }, 'addresses keep their case');
  });

  test('the null sender <> is queued with from = ""', TIMEOUT, async (t) => {
    const { port, spool } = await startListener(t);
    const s = await connect(t, port);
    await s.command('EHLO printer.local');
    assert.match(await s.send('', ['ops@contoso.com'], 'Subject: bounce\r\n\r\nx\r\n'), QUEUED);
    assert.deepEqual((await spool.list())[0]?.meta.envelope, { from: '', to: ['ops@contoso.com'] });
  });

  test('SMTPUTF8 and 8BITMIME: UTF-8 addresses and 8-bit bytes are accepted and kept as sent', TIMEOUT, async (t) => {
    const { port, spool } = await startListener(t);
    const s = await connect(t, port);
    await s.command('EHLO printer.local');
    const body = Buffer.concat([Buffer.from('Subject: Grüße\r\n\r\n', 'utf8'), Buffer.from([0xe9, 0xff, 0x80]), Buffer.from('\r\n')]);
    const reply = await s.send('drucker@bücher.example', ['empfänger@contoso.com'], body, ' BODY=8BITMIME SMTPUTF8');
    const id = QUEUED.exec(reply)?.[1];
    assert.ok(id, reply);
    const [entry] = await spool.list();
    assert.deepEqual(entry?.meta.envelope, { from: 'drucker@bücher.example', to: ['empfänger@contoso.com'] });
    assert.deepEqual(clientBytes(readFileSync(spool.dataPath(id)), id).rest, body);
  });

  test('outside allowNetworks without AUTH: 530 5.7.0 at MAIL FROM, nothing queued (raw and nodemailer)', TIMEOUT, async (t) => {
    // 127.0.0.1 is "outside": the only allowed network is 192.168.10.0/24.
    const { port, spool, spoolDir, logs, queued } = await startListener(t, { allowNetworks: ['192.168.10.0/24'] });
    const s = await connect(t, port);
    await s.command('EHLO stranger');
    assert.equal(await s.command('MAIL FROM:<spam@evil.example>'), '530 5.7.0 Authentication required');
    assert.match(await s.command('RCPT TO:<victim@example.com>'), /^503 /, 'no transaction was opened');
    assert.match(await s.command('DATA'), /^503 /);
    await assert.rejects(sendWithNodemailer(port, { from: 'spam@evil.example', to: ['victim@example.com'] }), (err: { responseCode?: number }) => err.responseCode === 530);
    assert.deepEqual(await spool.list(), []);
    assert.deepEqual(dataFiles(spoolDir), []);
    assert.deepEqual(queued, []);
    const rejected = logs.find((l) => l.event === 'rejected' && l.client === '127.0.0.1');
    assert.ok(rejected);
    assert.equal(rejected.level, 'info');
  });

  test('XCLIENT cannot claim an allowed address', TIMEOUT, async (t) => {
    const { port, spool } = await startListener(t, { allowNetworks: ['192.168.10.0/24'] });
    const s = await connect(t, port);
    await s.command('EHLO stranger');
    assert.match(await s.command('XCLIENT ADDR=192.168.10.5'), /^5\d\d /);
    assert.equal(await s.command('MAIL FROM:<a@b.example>'), '530 5.7.0 Authentication required');
    assert.deepEqual(await spool.list(), []);
  });
});

describe('listener: IPv6', () => {
  let ipv6 = true;
  before(async () => {
    ipv6 = await new Promise<boolean>((resolve) => {
      const probe = net.createServer();
      probe.once('error', () => resolve(false));
      probe.listen(0, '::1', () => probe.close(() => resolve(true)));
    });
  });

  test('an IPv6 client in allowNetworks sends without AUTH; one outside gets 530', TIMEOUT, async (t) => {
    if (!ipv6) return t.skip('no IPv6 loopback here');
    const allowed = await startListener(t, { allowNetworks: ['::1/128'] }, { listen: { port: 0, host: '::1' } });
    assert.equal(allowed.host, '::1');
    const a = await connect(t, allowed.port, '::1');
    await a.command('EHLO v6-printer');
    assert.match(await a.send('a@v6.example', ['x@contoso.com'], 'Subject: v6\r\n\r\nv6\r\n'), QUEUED);
    assert.equal((await allowed.spool.list())[0]?.meta.client.address, '::1');

    const refused = await startListener(t, { allowNetworks: ['127.0.0.1/32'] }, { listen: { port: 0, host: '::1' } });
    const b = await connect(t, refused.port, '::1');
    await b.command('EHLO v6-printer');
    assert.equal(await b.command('MAIL FROM:<a@v6.example>'), '530 5.7.0 Authentication required');
    assert.deepEqual(await refused.spool.list(), []);
  });

  test('an IPv4 client on a dual-stack listener (::ffff:127.0.0.1) matches an IPv4 rule and is stored as IPv4', TIMEOUT, async (t) => {
    if (!ipv6) return t.skip('no IPv6 here');
    const { port, spool } = await startListener(t, { allowNetworks: ['127.0.0.0/8'] }, { listen: { port: 0, host: '::' } });
    const s = await connect(t, port, '127.0.0.1');
    await s.command('EHLO mapped');
    assert.match(await s.send('a@b.example', ['x@contoso.com'], 'Subject: mapped\r\n\r\nm\r\n'), QUEUED);
    assert.equal((await spool.list())[0]?.meta.client.address, '127.0.0.1');
  });
});

describe('listener: AUTH', () => {
  test('AUTH PLAIN and AUTH LOGIN as local users (raw); the user is stored with the message', TIMEOUT, async (t) => {
    const passwordHash = await hashPassword('s3cret pass');
    const { port, spool, logs } = await startListener(t, {
      allowNetworks: [],
      users: [{ username: 'scanner', passwordHash }, { username: 'nas', password: 'plain-pw' }],
    });
    const plain = await connect(t, port);
    await plain.command('EHLO mfp');
    assert.equal(await plain.command(`AUTH PLAIN ${b64('\0scanner\0s3cret pass')}`), '235 Authentication successful');
    assert.match(await plain.send('scanner@mfp.local', ['a@contoso.com'], MESSAGE), QUEUED);

    const login = await connect(t, port);
    await login.command('EHLO nas');
    assert.match(await login.command('AUTH LOGIN'), /^334 /);
    assert.match(await login.command(b64('nas')), /^334 /);
    assert.equal(await login.command(b64('plain-pw')), '235 Authentication successful');
    assert.match(await login.send('nas@local', ['a@contoso.com'], MESSAGE), QUEUED);

    const entries = await spool.list();
    assert.deepEqual(entries.map((e) => e.meta.client.user).sort(), ['nas', 'scanner']);
    assert.deepEqual(logs.filter((l) => l.event === 'received').map((l) => l.user).sort(), ['nas', 'scanner']);
    assert.ok(!JSON.stringify(logs).includes('s3cret') && !JSON.stringify(logs).includes('plain-pw'), 'passwords never reach the log');
  });

  test('nodemailer authenticates with PLAIN and with LOGIN from outside allowNetworks', TIMEOUT, async (t) => {
    const { port, spool } = await startListener(t, { allowNetworks: [], users: [{ username: 'scanner', passwordHash: await hashPassword('pw') }] });
    for (const method of ['PLAIN', 'LOGIN']) {
      const info = await sendWithNodemailer(port, { from: 'scanner@mfp.local', to: ['a@contoso.com'] }, { auth: { user: 'scanner', pass: 'pw', method } });
      assert.match(info.response, QUEUED, method);
    }
    assert.equal((await spool.list()).length, 2);
  });

  test('a wrong password: 535 5.7.8, warned with client and username (never the password), and nothing is queued', TIMEOUT, async (t) => {
    const { port, spool, spoolDir, logs, queued } = await startListener(t, { allowNetworks: [], users: [{ username: 'scanner', password: 'right-pw' }] });
    const s = await connect(t, port);
    await s.command('EHLO mfp');
    assert.equal(await s.command(`AUTH PLAIN ${b64('\0scanner\0wrong-pw')}`), '535 5.7.8 Error: authentication failed');
    assert.equal(await s.command('MAIL FROM:<scanner@mfp.local>'), '530 5.7.0 Authentication required');
    // An unknown user gets the same answer.
    assert.equal(await s.command(`AUTH PLAIN ${b64('\0ghost\0right-pw')}`), '535 5.7.8 Error: authentication failed');
    await assert.rejects(
      sendWithNodemailer(port, { from: 'scanner@mfp.local', to: ['a@contoso.com'] }, { auth: { user: 'scanner', pass: 'still-wrong' } }),
      (err: { responseCode?: number; response?: string }) => err.responseCode === 535 && err.response === '535 5.7.8 Error: authentication failed',
    );
    assert.deepEqual(await spool.list(), []);
    assert.deepEqual(dataFiles(spoolDir), []);
    assert.deepEqual(queued, []);
    const failed = logs.filter((l) => l.event === 'auth-failed');
    assert.deepEqual(failed.map((l) => [l.level, l.client, l.username]), [
      ['warn', '127.0.0.1', 'scanner'],
      ['warn', '127.0.0.1', 'ghost'],
      ['warn', '127.0.0.1', 'scanner'],
    ]);
    const text = JSON.stringify(logs);
    assert.ok(!text.includes('wrong-pw') && !text.includes('right-pw') && !text.includes('still-wrong'), 'no password in the log');
  });

  test('PLAIN with an authorization identity other than the login is refused (no proxy logins)', TIMEOUT, async (t) => {
    const { port } = await startListener(t, { allowNetworks: [], users: [{ username: 'scanner', password: 'pw' }, { username: 'boss', password: 'x' }] });
    const s = await connect(t, port);
    await s.command('EHLO mfp');
    assert.equal(await s.command(`AUTH PLAIN ${b64('boss\0scanner\0pw')}`), '535 5.7.8 Error: authentication failed');
    assert.equal(await s.command(`AUTH PLAIN ${b64('scanner\0scanner\0pw')}`), '235 Authentication successful');
  });
});

describe('listener: limits', () => {
  test('more recipients than maxRecipients: 452 4.5.3 at RCPT; a repeated recipient does not count', TIMEOUT, async (t) => {
    const { port, spool, logs } = await startListener(t, { maxRecipients: 2 });
    const s = await connect(t, port);
    await s.command('EHLO x');
    assert.match(await s.command('MAIL FROM:<a@b.example>'), /^250 /);
    assert.match(await s.command('RCPT TO:<one@contoso.com>'), /^250 /);
    assert.match(await s.command('RCPT TO:<two@contoso.com>'), /^250 /);
    assert.equal(await s.command('RCPT TO:<three@contoso.com>'), '452 4.5.3 Too many recipients');
    assert.equal(await s.command('RCPT TO:<four@contoso.com>'), '452 4.5.3 Too many recipients');
    assert.match(await s.command('RCPT TO:<TWO@contoso.com>'), /^250 /, 'the same recipient again is not one more');
    assert.match(await s.command('DATA'), /^354 /);
    assert.match(await s.command('Subject: two\r\n\r\nx\r\n.'), QUEUED);
    assert.equal((await spool.list())[0]?.meta.envelope.to.length, 2);
    assert.equal(logs.filter((l) => l.event === 'rejected' && l.reason === 'too many recipients').length, 1, 'logged once per transaction');
  });

  test('a message over maxMessageSize: SIZE advertised, 552 5.3.4 at end of DATA, nothing queued; the session goes on', TIMEOUT, async (t) => {
    const { port, spool, spoolDir, queued, logs } = await startListener(t, { maxMessageSize: 1000 });
    const s = await connect(t, port);
    assert.match(await s.command('EHLO x'), /^250[ -]SIZE 1000$/m);
    assert.match(await s.command('MAIL FROM:<a@b.example> SIZE=5000'), /^552 /, 'a declared size over the limit is refused at MAIL');
    assert.equal(await s.send('a@b.example', ['x@contoso.com'], `Subject: big\r\n\r\n${'x'.repeat(5000)}\r\n`), '552 5.3.4 Message size exceeds fixed maximum message size');
    assert.deepEqual(await spool.list(), []);
    assert.deepEqual(dataFiles(spoolDir), [], 'the partial data file was removed');
    assert.deepEqual(queued, []);
    assert.ok(logs.find((l) => l.event === 'rejected' && l.reason === 'message too large'));
    assert.match(await s.send('a@b.example', ['x@contoso.com'], 'Subject: small\r\n\r\nok\r\n'), QUEUED);
    // nodemailer sees the 552 too.
    await assert.rejects(
      sendWithNodemailer(port, { from: 'a@b.example', to: ['x@contoso.com'], raw: `Subject: big\r\n\r\n${'y'.repeat(3000)}\r\n` }),
      (err: { responseCode?: number }) => err.responseCode === 552,
    );
    assert.equal((await spool.list()).length, 1);
  });
});

describe('listener: the size limit protects the disk', () => {
  test('an oversized message is not written past maxMessageSize: the sink sees about the limit, then 552', TIMEOUT, async (t) => {
    // A counting sink that reads like the spool: it reports how many bytes would have reached the disk.
    const seen = { bytes: 0, aborted: 0 };
    const sink: MessageSink = {
      incoming: () => ({
        id: 'COUNTED',
        async write(data) {
          let bytes = 0;
          for await (const chunk of data) bytes += (chunk as Buffer).length;
          seen.bytes = bytes;
          return bytes;
        },
        async commit() {
          throw new Error('an oversized message must not be committed');
        },
        async abort() {
          seen.aborted++;
        },
      }),
    };
    const { port } = await startListener(t, { maxMessageSize: 10_000 }, { sink });
    const s = await connect(t, port);
    await s.command('EHLO x');
    const line = `${'x'.repeat(998)}\r\n`;
    const big = `Subject: big\r\n\r\n${line.repeat(3000)}`; // about 3 MB
    assert.equal(await s.send('a@b.example', ['x@contoso.com'], big, '', 15_000), '552 5.3.4 Message size exceeds fixed maximum message size');
    assert.ok(seen.bytes <= 10_000 + 64 * 1024, `the sink received ${seen.bytes} bytes of a ${big.length}-byte message`);
    assert.equal(seen.aborted, 1);
  });
});

/** A fault-injected sink: behaves like the spool's IncomingMessage, but fails where told. */
function faultySink(fail: 'write' | 'write-without-reading' | 'commit' | 'incoming') {
  const state = { aborted: 0, committed: 0 };
  const sink: MessageSink = {
    incoming(): IncomingMessage {
      if (fail === 'incoming') throw new Error('injected: cannot start a message');
      return {
        id: 'FAULTINJECTED',
        async write(data) {
          if (fail === 'write-without-reading') throw new SpoolWriteError('injected: EIO before reading');
          let bytes = 0;
          for await (const chunk of data) bytes += (chunk as Buffer).length; // consumes to the end, as the spool does
          if (fail === 'write') throw new SpoolWriteError('injected: EIO while writing');
          return bytes;
        },
        async commit() {
          if (fail === 'commit') throw new SpoolWriteError('injected: ENOSPC on the metadata file');
          state.committed++;
          return [];
        },
        async abort() {
          state.aborted++;
        },
      };
    },
  };
  return { sink, state };
}

describe('listener: spool failures (fault-injected sinks)', () => {
  for (const fail of ['write', 'write-without-reading', 'commit', 'incoming'] as const) {
    test(`a failure at ${fail}: 451 4.3.0, never 250 or 5xx; abort is called; the session goes on`, TIMEOUT, async (t) => {
      const { sink, state } = faultySink(fail);
      const { port, queued, logs } = await startListener(t, {}, { sink });
      const s = await connect(t, port);
      await s.command('EHLO x');
      const expected = '451 4.3.0 Error: queue file write error, try again later';
      assert.equal(await s.send('a@b.example', ['x@contoso.com'], `Subject: x\r\n\r\n${'z'.repeat(100_000)}\r\n`), expected);
      assert.equal(await s.send('a@b.example', ['x@contoso.com'], 'Subject: again\r\n\r\ny\r\n'), expected, 'the session still works');
      assert.deepEqual(queued, []);
      assert.equal(state.committed, 0);
      if (fail !== 'incoming') assert.equal(state.aborted, 2);
      assert.ok(logs.some((l) => l.level === 'error' && (l.event === 'spool-error' || l.event === 'handler-error')));
      assert.ok(!logs.some((l) => l.event === 'received'));
      // nodemailer sees the temporary failure.
      await assert.rejects(sendWithNodemailer(port, { from: 'a@b.example', to: ['x@contoso.com'] }), (err: { responseCode?: number }) => err.responseCode === 451);
    });
  }

  test('a client that disconnects in the middle of DATA leaves nothing queued and nothing behind', TIMEOUT, async (t) => {
    const { port, spool, spoolDir, logs } = await startListener(t);
    const s = await connect(t, port);
    await s.command('EHLO x');
    await s.command('MAIL FROM:<a@b.example>');
    await s.command('RCPT TO:<x@contoso.com>');
    assert.match(await s.command('DATA'), /^354 /);
    s.write('Subject: cut\r\n\r\npartial');
    await new Promise((resolve) => setTimeout(resolve, 50));
    s.close();
    await waitFor(() => logs.some((l) => l.event === 'aborted'), 'the aborted transaction to be logged');
    assert.deepEqual(await spool.list(), []);
    assert.deepEqual(dataFiles(spoolDir), []);
    // And the listener still serves.
    const ok = await connect(t, port);
    await ok.command('EHLO y');
    assert.match(await ok.send('a@b.example', ['x@contoso.com'], MESSAGE), QUEUED);
  });
});

async function waitFor(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('listener: TLS', () => {
  let pem: { cert: string; key: string };
  before(async () => {
    const generated = await generate([{ name: 'commonName', value: 'relay.lan' }], {
      keyType: 'ec',
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'relay.lan' }, { type: 7, ip: '127.0.0.1' }] }],
    });
    pem = { cert: generated.cert, key: generated.private };
  });

  async function tlsListener(t: TestContext, overrides: Record<string, unknown> = {}) {
    return startListener(t, { allowNetworks: [], users: [{ username: 'scanner', passwordHash: await hashPassword('pw') }], ...overrides }, {
      listen: { port: 0, host: '127.0.0.1', tls: { cert: 'relay.crt', key: 'relay.key' } },
      files: { 'relay.crt': pem.cert, 'relay.key': pem.key },
    });
  }

  test('with a certificate, STARTTLS is offered and AUTH only after it (raw)', TIMEOUT, async (t) => {
    const { port, spool } = await tlsListener(t);
    const s = await connect(t, port);
    const before = await s.command('EHLO mfp');
    assert.match(before, /^250[ -]STARTTLS$/m);
    assert.doesNotMatch(before, /AUTH/, 'no AUTH offered before STARTTLS');
    assert.match(await s.command(`AUTH PLAIN ${b64('\0scanner\0pw')}`), /^5\d\d /, 'no password over plain text when TLS is available');
    assert.equal(await s.command('MAIL FROM:<a@b.example>'), '530 5.7.0 Authentication required');
    await s.starttls({ rejectUnauthorized: false, servername: 'relay.lan' });
    const after = await s.command('EHLO mfp');
    assert.match(after, /^250[ -]AUTH PLAIN LOGIN$/m);
    assert.doesNotMatch(after, /STARTTLS/);
    assert.equal(await s.command(`AUTH PLAIN ${b64('\0scanner\0pw')}`), '235 Authentication successful');
    assert.match(await s.send('scanner@mfp.local', ['a@contoso.com'], MESSAGE), QUEUED);
    assert.deepEqual((await spool.list())[0]?.meta.client, { address: '127.0.0.1', user: 'scanner', helo: 'mfp', secure: true });
  });

  test('authRequiresTls (the default with tls): AUTH before STARTTLS gets 538 5.7.11 at once, logged; no password prompt', TIMEOUT, async (t) => {
    const { port, logs } = await tlsListener(t);
    const s = await connect(t, port);
    await s.command('EHLO old-printer');
    assert.equal(await s.command(`AUTH PLAIN ${b64('\0scanner\0pw')}`), '538 5.7.11 Encryption required for requested authentication mechanism');
    // LOGIN is refused before the username and password are asked for, not after.
    assert.equal(await s.command('AUTH LOGIN'), '538 5.7.11 Encryption required for requested authentication mechanism');
    const refused = logs.filter((l) => l.event === 'auth-refused');
    assert.deepEqual(refused.map((l) => [l.level, l.client, l.method]), [['warn', '127.0.0.1', 'PLAIN'], ['warn', '127.0.0.1', 'LOGIN']]);
    assert.doesNotMatch(JSON.stringify(logs), /scanner\\u0000pw|AHNjYW5uZXIAcHc/, 'the credentials are not logged');
    // The session goes on: STARTTLS, then AUTH works.
    await s.starttls({ rejectUnauthorized: false, servername: 'relay.lan' });
    await s.command('EHLO old-printer');
    assert.equal(await s.command(`AUTH PLAIN ${b64('\0scanner\0pw')}`), '235 Authentication successful');
  });

  test('authRequiresTls: false on a TLS listener: AUTH is advertised and accepted in plain text (old printers)', TIMEOUT, async (t) => {
    const { port } = await startListener(t, { allowNetworks: [], users: [{ username: 'scanner', passwordHash: await hashPassword('pw') }] }, {
      listen: { port: 0, host: '127.0.0.1', tls: { cert: 'relay.crt', key: 'relay.key' }, authRequiresTls: false },
      files: { 'relay.crt': pem.cert, 'relay.key': pem.key },
    });
    const s = await connect(t, port);
    const ehlo = await s.command('EHLO old-printer');
    assert.match(ehlo, /^250[ -]AUTH PLAIN LOGIN$/m);
    assert.match(ehlo, /^250[ -]STARTTLS$/m, 'STARTTLS stays offered to devices that can');
    assert.equal(await s.command(`AUTH PLAIN ${b64('\0scanner\0pw')}`), '235 Authentication successful');
  });

  test('authRequiresTls without tls, and a key that is not the certificate\'s, are refused naming the key', TIMEOUT, async () => {
    const tmp = tempDir('m365-relay-tls-');
    try {
      const other = await generate([{ name: 'commonName', value: 'other' }], { keyType: 'ec' });
      writeFileSync(join(tmp.dir, 'relay.crt'), pem.cert);
      writeFileSync(join(tmp.dir, 'other.key'), other.private);
      const base = { spool: { dir: join(tmp.dir, 'spool') }, microsoft365: { tenantId: 't', clientId: 'c', clientSecret: 's', mailbox: 'relay@contoso.com' } };
      assert.throws(() => parseConfig(stringify({ ...base, listen: [{ port: 0, authRequiresTls: true }] }), join(tmp.dir, 'relay.yaml'), {}), /listen\[0\]\.authRequiresTls: authRequiresTls: true needs a certificate/);
      const config = parseConfig(stringify({ ...base, listen: [{ port: 0, host: '127.0.0.1', tls: { cert: 'relay.crt', key: 'other.key' } }] }), join(tmp.dir, 'relay.yaml'), {});
      assert.throws(() => createListener({ config, sink: { incoming: () => { throw new Error('unused'); } }, logger: captureLogger().logger }), /listen\[0\]\.tls\.key: .*other\.key is not the key of the certificate .*relay\.crt/);
    } finally {
      tmp.remove();
    }
  });

  test('nodemailer upgrades with STARTTLS and authenticates', TIMEOUT, async (t) => {
    const { port, spool, logs } = await tlsListener(t);
    const info = await sendWithNodemailer(port, { from: 'scanner@mfp.local', to: ['a@contoso.com'] }, {
      ignoreTLS: false,
      requireTLS: true,
      tls: { rejectUnauthorized: false },
      auth: { user: 'scanner', pass: 'pw' },
    });
    assert.match(info.response, QUEUED);
    assert.equal((await spool.list())[0]?.meta.client.secure, true);
    assert.equal(logs.find((l) => l.event === 'received')?.secure, true);
  });

  test('a client in allowNetworks may still send in plain text on a TLS listener', TIMEOUT, async (t) => {
    const { port } = await tlsListener(t, { allowNetworks: ['127.0.0.1/32'] });
    const s = await connect(t, port);
    await s.command('EHLO old-scanner');
    assert.match(await s.send('a@b.example', ['x@contoso.com'], MESSAGE), QUEUED);
  });
});

describe('listener: lifecycle', () => {
  test('close(): idle sessions get 421 at once, a transaction under way finishes, new connections are refused', TIMEOUT, async (t) => {
    const { port, spool, listener } = await startListener(t);
    const busy = await connect(t, port);
    await busy.command('EHLO busy');
    await busy.command('MAIL FROM:<a@b.example>');
    await busy.command('RCPT TO:<x@contoso.com>');
    assert.match(await busy.command('DATA'), /^354 /);
    busy.write('Subject: during shutdown\r\n\r\nfirst half ');
    const idle = await connect(t, port);
    await idle.command('EHLO idle');

    const started = Date.now();
    const closing = listener.close(5000);
    assert.match(await idle.reply(2000), /^421 4\.3\.2 /, 'the idle session is told at once');
    await assert.rejects(RawSmtp.connect(port, '127.0.0.1', { ready: true }), 'no new connections');
    busy.write('second half\r\n');
    assert.match(await busy.command('.'), QUEUED, 'the transaction under way is answered');
    await closing;
    assert.ok(Date.now() - started < 4000, `close took ${Date.now() - started} ms: it did not wait out the grace period`);
    assert.equal((await spool.list()).length, 1);
    await listener.close(); // a second close is harmless
  });

  test('close(graceMs) is bounded: a stalled transaction is cut off and nothing is queued', TIMEOUT, async (t) => {
    const { port, spool, spoolDir, listener } = await startListener(t);
    const stalled = await connect(t, port);
    await stalled.command('EHLO slow');
    await stalled.command('MAIL FROM:<a@b.example>');
    await stalled.command('RCPT TO:<x@contoso.com>');
    assert.match(await stalled.command('DATA'), /^354 /);
    stalled.write('Subject: never finished\r\n\r\n');
    const started = Date.now();
    await listener.close(300);
    assert.ok(Date.now() - started < 3000, `close took ${Date.now() - started} ms`);
    assert.match(await stalled.reply(2000), /^421 |\(closed\)/);
    assert.deepEqual(await spool.list(), []);
    await waitFor(() => dataFiles(spoolDir).length === 0, 'the partial data file to be removed');
  });

  test('update(): a reload swaps allowNetworks and users for the next commands', TIMEOUT, async (t) => {
    const { port, listener, configFor, logs } = await startListener(t);
    const before = await connect(t, port);
    await before.command('EHLO x');
    assert.match(await before.command('MAIL FROM:<a@b.example>'), /^250 /);
    await before.command('RSET');

    listener.update(configFor({ allowNetworks: ['192.168.10.0/24'], users: [{ username: 'new-user', password: 'pw' }] }));
    assert.equal(await before.command('MAIL FROM:<a@b.example>'), '530 5.7.0 Authentication required', 'the open session follows the new rules');
    assert.equal(await before.command(`AUTH PLAIN ${b64('\0new-user\0pw')}`), '235 Authentication successful');
    assert.match(await before.send('a@b.example', ['x@contoso.com'], MESSAGE), QUEUED);
    assert.ok(logs.some((l) => l.event === 'reload'));

    // A configuration that cannot be applied changes nothing.
    assert.throws(() => listener.update(configFor({ users: [{ username: 'a', password: 'x' }, { username: 'a', password: 'y' }] })), /listed more than once/);
    const after = await connect(t, port);
    await after.command('EHLO y');
    assert.equal(await after.command('MAIL FROM:<a@b.example>'), '530 5.7.0 Authentication required');
  });

  test('start() on a port in use rejects with a clear error and leaves nothing bound', TIMEOUT, async (t) => {
    const first = await startListener(t);
    const tmp = tempDir('m365-relay-listener-');
    t.after(tmp.remove);
    const config = first.configFor({
      listen: [
        { port: 0, host: '127.0.0.1' },
        { port: first.port, host: '127.0.0.1' },
      ],
    });
    const second = createListener({ config, sink: first.spool, logger: captureLogger().logger });
    t.after(() => second.close(100));
    // The error names the key to change, the address, and what to do.
    await assert.rejects(second.start(), new RegExp(`listen\\[1\\]\\.port: 127\\.0\\.0\\.1:${first.port} is already in use by another program; stop that program`));
  });

  test('an onQueued callback that throws does not change the 250 nor crash anything', TIMEOUT, async (t) => {
    const { port, logs, queued } = await startListener(t, {}, {
      onQueued: () => {
        throw new Error('wake-up failed');
      },
    });
    const s = await connect(t, port);
    await s.command('EHLO x');
    const id = QUEUED.exec(await s.send('a@b.example', ['x@contoso.com'], MESSAGE))?.[1];
    assert.ok(id);
    assert.deepEqual(queued, [id]);
    assert.ok(logs.some((l) => l.event === 'handler-error' && l.handler === 'onQueued' && l.msgId === id));
    assert.match(await s.send('a@b.example', ['x@contoso.com'], MESSAGE), QUEUED);
  });

  test('broken clients (reset sockets, garbage, TLS bytes on a plain port) never take the listener down', TIMEOUT, async (t) => {
    const { port, spool } = await startListener(t);
    for (let i = 0; i < 5; i++) {
      const s = await connect(t, port);
      await s.command('EHLO x');
      await s.command('MAIL FROM:<a@b.example>');
      s.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0x01, 0x00, 0x00, 0x00, 0x00]));
      (s as unknown as { socket: net.Socket }).socket.resetAndDestroy();
    }
    const ok = await connect(t, port);
    await ok.command('EHLO after');
    assert.match(await ok.send('a@b.example', ['x@contoso.com'], MESSAGE), QUEUED);
    assert.equal((await spool.list()).length, 1);
  });
});
