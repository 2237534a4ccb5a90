// Who may send as whom, and how fast: users[].allowedSenders, allowNetworks entries with
// allowedSenders, limits.messagesPerMinutePerClient. Real listener, raw SMTP on loopback.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ClientRateLimit, SenderBinding } from '../src/access/index.js';
import { startListener } from './helpers/listener.js';
import { RawSmtp } from './helpers/rawSmtp.js';

const QUEUED = /^250 2\.0\.0 Ok: queued as /;
const body = 'Subject: bound\r\n\r\nhello\r\n';

async function session(t: { after: (fn: () => unknown) => void }, port: number): Promise<RawSmtp> {
  const s = await RawSmtp.connect(port);
  t.after(() => s.close());
  await s.command('EHLO device');
  return s;
}

describe('sender binding and client rate limits', () => {
  test('a network entry with allowedSenders: its devices may use only those senders (550 5.7.1 otherwise, logged)', async (t) => {
    const { port, logs, spool } = await startListener(t, { allowNetworks: [{ network: '127.0.0.0/8', allowedSenders: ['scanner@contoso.com', '@scans.contoso.com'] }] });
    const s = await session(t, port);
    assert.match(await s.send('scanner@contoso.com', ['ops@contoso.com'], body), QUEUED);
    assert.match(await s.send('mfp3@scans.contoso.com', ['ops@contoso.com'], body), QUEUED);
    assert.equal(await s.command('MAIL FROM:<ceo@contoso.com>'), '550 5.7.1 Sender address not allowed for this client');
    assert.equal(await s.command('MAIL FROM:<x@sub.scans.contoso.com>'), '550 5.7.1 Sender address not allowed for this client', 'a @domain is that domain, not its subdomains');
    assert.equal(await s.command('MAIL FROM:<>'), '550 5.7.1 Sender address not allowed for this client');
    const refused = logs.filter((l) => l.event === 'rejected' && l.reason === 'sender not allowed');
    assert.deepEqual(refused.map((l) => l.from), ['ceo@contoso.com', 'x@sub.scans.contoso.com', '<>']);
    assert.equal((await spool.list()).length, 2);
  });

  test('the most specific allowNetworks entry applies; a plain CIDR entry binds to nothing', () => {
    const binding = new SenderBinding({
      allowNetworks: ['10.0.0.0/8', { network: '10.1.2.0/24', allowedSenders: ['scanner@contoso.com'] }, { network: '10.1.0.0/16', allowedSenders: ['@contoso.com'] }],
      users: [{ username: 'nas', password: 'x', allowedSenders: ['nas@contoso.com'] }, { username: 'app', password: 'x' }],
    });
    assert.deepEqual(binding.sendersFor({ address: '10.1.2.7' }), ['scanner@contoso.com']);
    assert.deepEqual(binding.sendersFor({ address: '10.1.9.7' }), ['@contoso.com']);
    assert.equal(binding.sendersFor({ address: '10.9.9.9' }), null);
    assert.deepEqual(binding.sendersFor({ user: 'nas', address: '10.1.2.7' }), ['nas@contoso.com'], 'a logged-in user is bound by its own list');
    assert.equal(binding.sendersFor({ user: 'app', address: '10.1.2.7' }), null);
    assert.equal(binding.allows({ address: '10.1.9.7' }, 'Alerts@CONTOSO.com'), true);
  });

  test('a user with allowedSenders is bound after AUTH; a user without is not', async (t) => {
    const { port } = await startListener(t, {
      allowNetworks: [],
      users: [
        { username: 'scanner', password: 'scanner-pass', allowedSenders: ['scanner@contoso.com'] },
        { username: 'app', password: 'app-pass' },
      ],
    });
    const s = await session(t, port);
    assert.match(await s.command(`AUTH PLAIN ${Buffer.from('\0scanner\0scanner-pass').toString('base64')}`), /^235/);
    assert.equal(await s.command('MAIL FROM:<someone@contoso.com>'), '550 5.7.1 Sender address not allowed for this client');
    assert.match(await s.send('scanner@contoso.com', ['ops@contoso.com'], body), QUEUED);
    const other = await session(t, port);
    assert.match(await other.command(`AUTH PLAIN ${Buffer.from('\0app\0app-pass').toString('base64')}`), /^235/);
    assert.match(await other.send('anyone@fabrikam.com', ['ops@contoso.com'], body), QUEUED);
  });

  test('limits.messagesPerMinutePerClient: over it, 451 4.7.1 (the device retries later); others are not affected', async (t) => {
    const { port, logs } = await startListener(t, { allowNetworks: ['127.0.0.0/8'], limits: { messagesPerMinutePerClient: 3 } });
    const s = await session(t, port);
    for (let i = 0; i < 3; i++) assert.match(await s.send('ups@contoso.com', ['ops@contoso.com'], body), QUEUED);
    assert.equal(await s.command('MAIL FROM:<ups@contoso.com>'), '451 4.7.1 Too many messages from this client, try again later');
    assert.ok(logs.some((l) => l.event === 'rejected' && l.reason === 'client rate limit'));
  });

  test('client rate limit: a sliding minute per client, on monotonic time', () => {
    const rate = new ClientRateLimit();
    assert.equal(rate.admit('a', 0, 2), true);
    assert.equal(rate.admit('a', 10_000, 2), true);
    assert.equal(rate.admit('a', 20_000, 2), false);
    assert.equal(rate.admit('b', 20_000, 2), true, 'another client has its own minute');
    assert.equal(rate.admit('a', 60_001, 2), true, 'the first one left the window');
    assert.equal(rate.admit('a', 60_002, undefined), true, 'no limit configured');
  });
});
