// Choosing the Microsoft 365 account: the Router on its own, then through the real listener and
// spool (the route is stored with the message when it is queued).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { parseConfig } from '../src/config/index.js';
import { Router, senderMatches } from '../src/routing/index.js';
import { sampleMessage, sendMessage } from './helpers/harness.js';
import { startListener } from './helpers/listener.js';
import { waitFor } from './helpers/wait.js';

const routes = [
  { user: 'scanner', account: 'scans' },
  { network: '10.1.0.0/16', account: 'alerts' },
  { sender: '@ops.contoso.com', account: 'alerts' },
  { sender: 'ceo@contoso.com', account: 'exec' },
  { network: 'fd00:1::/32', account: 'v6' },
  { network: '10.0.0.0/8', account: 'lan' },
];
const router = new Router(routes);

test('router: user, network and sender rules; no match is the default account', () => {
  assert.deepEqual(router.resolve({ user: 'scanner', address: '192.168.1.5', sender: 'x@printer.local' }), { account: 'scans', rule: 'user scanner' });
  assert.deepEqual(router.resolve({ address: '10.1.20.30', sender: '' }), { account: 'alerts', rule: 'network 10.1.0.0/16' });
  assert.deepEqual(router.resolve({ address: '192.168.1.5', sender: 'Nagios@OPS.contoso.com' }), { account: 'alerts', rule: 'sender @ops.contoso.com' });
  assert.deepEqual(router.resolve({ address: '192.168.1.5', sender: 'ceo@contoso.com' }), { account: 'exec', rule: 'sender ceo@contoso.com' });
  assert.deepEqual(router.resolve({ address: 'fd00:1:2::9', sender: 'a@b.c' }), { account: 'v6', rule: 'network fd00:1::/32' });
  assert.deepEqual(router.resolve({ user: 'nas', address: '192.168.1.5', sender: 'nas@contoso.com' }), { account: 'default', rule: 'default' });
  assert.deepEqual(new Router([]).resolve({ user: 'scanner', address: '10.1.0.1', sender: 'a@ops.contoso.com' }), { account: 'default', rule: 'default' });
});

test('router: the first matching route wins, in file order', () => {
  // scanner at 10.1.x with an ops sender matches three routes: the user route is first.
  assert.equal(router.resolve({ user: 'scanner', address: '10.1.0.9', sender: 'a@ops.contoso.com' }).account, 'scans');
  // 10.1.x matches both 10.1.0.0/16 and the later 10.0.0.0/8.
  assert.equal(router.resolve({ address: '10.1.0.9', sender: '' }).rule, 'network 10.1.0.0/16');
  assert.equal(router.resolve({ address: '10.2.0.9', sender: '' }).rule, 'network 10.0.0.0/8');
  const reversed = new Router([...routes].reverse());
  assert.equal(reversed.resolve({ address: '10.1.0.9', sender: '' }).rule, 'network 10.0.0.0/8');
});

test('router: IPv4-mapped IPv6 client addresses match IPv4 networks', () => {
  assert.equal(router.resolve({ address: '::ffff:10.1.2.3', sender: '' }).account, 'alerts');
  assert.equal(router.resolve({ address: '::FFFF:10.9.2.3', sender: '' }).account, 'lan');
  assert.equal(router.resolve({ address: '::ffff:192.168.1.1', sender: '' }).account, 'default');
  assert.equal(router.resolve({ address: '', sender: '' }).account, 'default', 'an unknown address matches no network');
});

test('router: users match exactly; "@domain" matches that domain only, not subdomains; <> matches no sender rule', () => {
  assert.equal(router.resolve({ user: 'Scanner', address: '192.168.1.5', sender: '' }).account, 'default');
  assert.equal(senderMatches('@ops.contoso.com', 'a@ops.contoso.com'), true);
  assert.equal(senderMatches('@ops.contoso.com', 'a@eu.ops.contoso.com'), false);
  assert.equal(senderMatches('@ops.contoso.com', 'a@xops.contoso.com'), false);
  assert.equal(senderMatches('@contoso.com', 'a@ops.contoso.com'), false);
  assert.equal(senderMatches('ceo@contoso.com', 'CEO@Contoso.com'), true);
  assert.equal(senderMatches('ceo@contoso.com', 'ceo@contoso.com.evil'), false);
  assert.equal(senderMatches('@contoso.com', ''), false);
  assert.equal(senderMatches('@contoso.com', '@contoso.com'), false);
});

test('listener: the route is stored with the queued message; a reload of routes applies to new mail only', async (t) => {
  const accounts = { scans: { tenantId: 't', clientId: 'c2', clientSecret: 's', mailbox: 'scans@contoso.com' } };
  const { port, spool, logs, listener, dir } = await startListener(t, {
    users: [{ username: 'scanner', password: 'pw' }],
    accounts,
    routes: [
      { user: 'scanner', account: 'scans' },
      { sender: '@ops.contoso.com', account: 'scans' },
    ],
  });
  const send = (options: Parameters<typeof sendMessage>[1]) => sendMessage(port, { raw: sampleMessage({ from: options?.from }), ...options });
  const idOf = (info: { response: string }) => /queued as (\S+)/.exec(info.response)?.[1] ?? '';
  const byUser = idOf(await send({ auth: { user: 'scanner', pass: 'pw' } }));
  const bySender = idOf(await send({ from: 'cron@ops.contoso.com' }));
  const none = idOf(await send({ from: 'cron@contoso.com' }));
  const route = async (id: string) => (await spool.readMeta('queue', id)).route;
  assert.deepEqual(await route(byUser), { account: 'scans', rule: 'user scanner' });
  assert.deepEqual(await route(bySender), { account: 'scans', rule: 'sender @ops.contoso.com' });
  assert.deepEqual(await route(none), { account: 'default', rule: 'default' });
  const received = await waitFor('the received line', () => logs.find((l) => l.event === 'received' && l.msgId === byUser));
  assert.equal(received.account, 'scans');
  assert.equal(received.route, 'user scanner');

  // Reload: the sender route goes away. Queued mail keeps its route; new mail is routed anew.
  const text = stringify({
    listen: [{ port: 0, host: '127.0.0.1' }],
    allowNetworks: ['127.0.0.1/32'],
    spool: { dir: spool.dir, minFreeSpace: 0 },
    microsoft365: { tenantId: 't', clientId: 'c', clientSecret: 's', mailbox: 'relay@contoso.com' },
    users: [{ username: 'scanner', password: 'pw' }],
    accounts,
    routes: [{ user: 'scanner', account: 'scans' }],
  });
  listener.update(parseConfig(text, join(dir, 'relay.yaml'), {}));
  const after = idOf(await send({ from: 'cron@ops.contoso.com' }));
  assert.deepEqual(await route(after), { account: 'default', rule: 'default' });
  assert.deepEqual(await route(bySender), { account: 'scans', rule: 'sender @ops.contoso.com' });
});

test('router: recipientDomain routes split a message by recipient; first match wins per recipient', () => {
  const split = new Router(toRoutes([
    { user: 'payroll', account: 'payroll' },
    { recipientDomain: ['contoso.com', 'xn--bcher-kva.de'], account: 'hve' },
    { sender: '@ops.contoso.com', account: 'alerts' },
  ]));
  const input = { address: '192.168.1.5', sender: 'app@contoso.com' };
  // Internal recipients (any case, IDN as sent) through HVE, the rest through the default mailbox, in recipient order.
  assert.deepEqual(split.plan(input, ['a@contoso.com', 'x@fabrikam.example', 'B@CONTOSO.COM', 'c@bücher.de', 'd@sub.contoso.com']), [
    { account: 'hve', rule: 'recipientDomain contoso.com,xn--bcher-kva.de', recipients: ['a@contoso.com', 'B@CONTOSO.COM', 'c@bücher.de'] },
    { account: 'default', rule: 'default', recipients: ['x@fabrikam.example', 'd@sub.contoso.com'] },
  ]);
  // A message-wide route before the recipient route takes every recipient: no split.
  assert.deepEqual(split.plan({ ...input, user: 'payroll' }, ['a@contoso.com', 'x@fabrikam.example']), [{ account: 'payroll', rule: 'user payroll', recipients: ['a@contoso.com', 'x@fabrikam.example'] }]);
  // After it, the external recipients fall through to the sender route.
  assert.deepEqual(split.plan({ ...input, sender: 'n@ops.contoso.com' }, ['x@fabrikam.example', 'a@contoso.com']), [
    { account: 'alerts', rule: 'sender @ops.contoso.com', recipients: ['x@fabrikam.example'] },
    { account: 'hve', rule: 'recipientDomain contoso.com,xn--bcher-kva.de', recipients: ['a@contoso.com'] },
  ]);
  // All internal: one part, as an unsplit message.
  assert.equal(split.plan(input, ['a@contoso.com', 'b@contoso.com']).length, 1);
  // resolve() (the message as a whole) never matches a recipient route.
  assert.deepEqual(split.resolve(input), { account: 'default', rule: 'default' });
});

function toRoutes(raw: Array<Record<string, unknown>>) {
  const accounts = Object.fromEntries([...new Set(raw.map((r) => String(r.account)))].map((name) => [name, { tenantId: 't', clientId: 'c', clientSecret: 's', mailbox: `${name}@contoso.com` }]));
  const text = stringify({ listen: [{ port: 2525 }], spool: { dir: '/tmp/unused' }, microsoft365: { tenantId: 't', clientId: 'c', clientSecret: 's', mailbox: 'relay@contoso.com' }, accounts, routes: raw });
  return parseConfig(text, join('/tmp', 'routes.yaml'), {}).routes;
}
