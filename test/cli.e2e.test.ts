// The compiled daemon and CLI as an administrator runs them: real child processes
// (node dist/cli.js ...), real SMTP on loopback, the built-in Microsoft 365 simulator upstream.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { stringify } from 'yaml';
import { cli, ROOT, rawConfigFor, sendMessage, spawnRelay, simulatorSuite } from './helpers/harness.js';

describe('daemon and CLI', () => {
  const suite = simulatorSuite();
  const dir = () => suite.dir();

  test('the spool survives a restart: deferred by Exchange, kept with their recorded next attempt', async (t) => {
    suite.sim.reset();
    const work = dir();
    const raw = rawConfigFor(suite.sim, join(work, 'spool'), { retry: { schedule: ['1h'] } });
    // A message-level deferral (451 at the end of DATA) charges an attempt and records the next one.
    suite.sim.faults.failNext(3, '451 4.7.500 Server busy. Please try again later.');
    const first = await spawnRelay(raw, work);
    t.after(() => first.kill());
    const ids: string[] = [];
    for (const to of ['a@contoso.com', 'b@contoso.com', 'c@contoso.com']) {
      const info = await sendMessage(first.port, { to: [to] });
      ids.push(/queued as (\S+)/.exec(info.response)?.[1] ?? '');
    }
    for (const id of ids) await first.waitForLog(`deferred ${id}`, (l) => l.event === 'deferred' && l.msgId === id);
    assert.equal(await first.stop(), 0, 'SIGTERM exits 0');

    const listed = cli(['queue', 'list', '--config', join(work, 'relay.yaml'), '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    const items = JSON.parse(listed.stdout) as Array<Record<string, unknown>>;
    assert.deepEqual(items.map((i) => i.id).sort(), [...ids].sort());
    for (const item of items) {
      assert.deepEqual(Object.keys(item).sort(), ['account', 'attempts', 'from', 'id', 'lastError', 'nextAttemptAt', 'parent', 'part', 'recipients', 'route', 'state']);
      assert.equal(item.account, 'default');
      assert.equal(item.route, 'default');
      assert.equal(item.state, 'deferred');
      assert.equal(item.from, 'scanner@printer.local');
      assert.equal(item.attempts, 1);
      assert.ok(item.lastError);
    }
    const table = cli(['queue', 'list', '--config', join(work, 'relay.yaml')]);
    assert.match(table.stdout, /3 message\(s\): 3 deferred/);

    // A new daemon on the same spool picks all three up again (due at their recorded time, an hour away).
    const second = await spawnRelay(raw, work);
    t.after(() => second.kill());
    const recovered = await second.waitForLog('spool recovery', (l) => l.event === 'spool-recovered');
    assert.equal(recovered.queued, 3);
    assert.equal(await second.stop(), 0);
    const after = JSON.parse(cli(['queue', 'list', '--config', join(work, 'relay.yaml'), '--json']).stdout) as Array<{ nextAttemptAt: string }>;
    assert.deepEqual(after.map((i) => i.nextAttemptAt).sort(), items.map((i) => i.nextAttemptAt).sort(), 'the recorded next attempts are kept');
  });

  test('a restarted daemon delivers what the previous one queued', async (t) => {
    suite.sim.reset();
    const work = dir();
    const raw = rawConfigFor(suite.sim, join(work, 'spool'));
    suite.sim.faults.refuseConnections = true;
    const first = await spawnRelay(raw, work);
    t.after(() => first.kill());
    const info = await sendMessage(first.port, { to: ['restart@contoso.com'] });
    const id = /queued as (\S+)/.exec(info.response)?.[1];
    await first.waitForLog('deferral', (l) => l.event === 'deferred' && l.msgId === id);
    assert.equal(await first.stop(), 0);
    suite.sim.faults.refuseConnections = false;
    const second = await spawnRelay(raw, work);
    t.after(() => second.kill());
    const [got] = await suite.sim.waitForMessages(1, 15_000);
    assert.deepEqual(got?.envelope.to, ['restart@contoso.com']);
    await second.waitForLog('delivery', (l) => l.event === 'delivered' && l.msgId === id);
    assert.equal(await second.stop(), 0);
  });

  test('queue show/retry/hold/release/delete act on a running daemon', async (t) => {
    suite.sim.reset();
    const work = dir();
    const raw = rawConfigFor(suite.sim, join(work, 'spool'), { retry: { schedule: ['1h'] } });
    const file = join(work, 'relay.yaml');
    const relay = await spawnRelay(raw, work);
    t.after(() => relay.kill());
    const queueCmd = (...args: string[]) => cli(['queue', ...args, '--config', file]);
    const state = (id: string) => (JSON.parse(queueCmd('list', '--json').stdout) as Array<{ id: string; state: string }>).find((i) => i.id === id)?.state;

    // A permanent failure, retried by the administrator once the cause is fixed.
    suite.sim.faults.rejectData = '554 5.6.0 Corrupt message content';
    const failedId = /queued as (\S+)/.exec((await sendMessage(relay.port, { to: ['failed@contoso.com'] })).response)?.[1] ?? '';
    await relay.waitForLog('the failure', (l) => l.event === 'failed' && l.msgId === failedId);
    assert.equal(state(failedId), 'failed');
    const shown = queueCmd('show', failedId);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /state: +failed/);
    assert.match(shown.stdout, /last error: +554 5\.6\.0 Corrupt message content/);
    assert.match(shown.stdout, /failed +failed@contoso\.com/);
    assert.match(shown.stdout, /Subject: Scan from MFP 3rd floor/);
    suite.sim.faults.rejectData = null;
    assert.equal(queueCmd('retry', failedId).code, 0);
    await relay.waitForLog('the retried delivery', (l) => l.event === 'delivered' && l.msgId === failedId);

    // Deferred for an hour (a transient reply); held, then released: delivered at once on release.
    suite.sim.faults.failNext(1);
    const heldId = /queued as (\S+)/.exec((await sendMessage(relay.port, { to: ['held@contoso.com'] })).response)?.[1] ?? '';
    await relay.waitForLog('the deferral', (l) => l.event === 'deferred' && l.msgId === heldId);
    assert.equal(queueCmd('hold', heldId).code, 0);
    assert.equal(state(heldId), 'hold');
    const notQueued = queueCmd('hold', heldId);
    assert.equal(notQueued.code, 1);
    assert.match(notQueued.stderr, /is held; this command applies to queued or deferred messages/);
    assert.equal(queueCmd('release', heldId).code, 0);
    await relay.waitForLog('the released delivery', (l) => l.event === 'delivered' && l.msgId === heldId, 20_000);

    // Deleted while deferred: gone for good, never delivered.
    suite.sim.faults.failNext(1);
    const deletedId = /queued as (\S+)/.exec((await sendMessage(relay.port, { to: ['deleted@contoso.com'] })).response)?.[1] ?? '';
    await relay.waitForLog('the deferral', (l) => l.event === 'deferred' && l.msgId === deletedId);
    assert.equal(queueCmd('delete', deletedId).code, 0);
    assert.equal(state(deletedId), undefined);
    const missing = queueCmd('show', deletedId);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no message .* in the spool/);
    // Each command is in the daemon's log with the message id and who ran it.
    const actor = userInfo().username;
    for (const [action, id] of [['hold', heldId], ['release', heldId], ['delete', deletedId]] as const) {
      const line = await relay.waitForLog(`the ${action} record`, (l) => l.event === 'admin-action' && l.action === action && l.msgId === id);
      assert.match(String(line.user), new RegExp(`^${actor}`));
    }
    assert.equal(await relay.stop(), 0);
    assert.ok(!suite.sim.received.some((m) => m.envelope.to.includes('deleted@contoso.com')));
  });

  test('hash-password output works as passwordHash; outside allowNetworks AUTH is required', async (t) => {
    suite.sim.reset();
    const hashed = cli(['hash-password'], 'correct horse battery staple\n');
    assert.equal(hashed.code, 0, hashed.stderr);
    const passwordHash = hashed.stdout.trim();
    assert.match(passwordHash, /^scrypt\$/);
    assert.ok(!passwordHash.includes('correct horse'));
    const work = dir();
    const raw = rawConfigFor(suite.sim, join(work, 'spool'), { allowNetworks: ['192.168.10.0/24'], users: [{ username: 'scanner', passwordHash }] });
    const relay = await spawnRelay(raw, work);
    t.after(() => relay.kill());
    await assert.rejects(sendMessage(relay.port), (err: { responseCode?: number; response?: string }) => err.responseCode === 530 && /5\.7\.0/.test(err.response ?? ''));
    await assert.rejects(
      sendMessage(relay.port, { auth: { user: 'scanner', pass: 'wrong' } }),
      (err: { responseCode?: number; response?: string }) => err.responseCode === 535 && /5\.7\.8/.test(err.response ?? ''),
    );
    const listed = JSON.parse(cli(['queue', 'list', '--config', join(work, 'relay.yaml'), '--json']).stdout) as unknown[];
    assert.equal(listed.length, 0, 'nothing was queued for the refused clients');
    await sendMessage(relay.port, { auth: { user: 'scanner', pass: 'correct horse battery staple' } });
    await suite.sim.waitForMessages(1);
    assert.equal(await relay.stop(), 0);
  });

  test('check-config: exit 0 for a good file, 1 with the key named for each kind of mistake', () => {
    const work = dir();
    const good = rawConfigFor(suite.sim, join(work, 'spool'));
    const write = (name: string, value: unknown) => {
      const file = join(work, name);
      writeFileSync(file, typeof value === 'string' ? value : stringify(value));
      return file;
    };
    const ok = cli(['check-config', '--config', write('good.yaml', good)]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /OK/);

    const m365 = good.microsoft365 as Record<string, unknown>;
    const cases: Array<[string, unknown, RegExp]> = [
      ['missing.yaml', { ...good, microsoft365: { ...m365, tenantId: undefined } }, /microsoft365\.tenantId: is missing/],
      ['cidr.yaml', { ...good, allowNetworks: ['192.168.10.0/40'] }, /allowNetworks\[0\]: "192\.168\.10\.0\/40" has an invalid prefix length/],
      ['env.yaml', { ...good, microsoft365: { ...m365, clientSecret: '${M365_RELAY_TEST_UNSET_SECRET}' } }, /environment variable M365_RELAY_TEST_UNSET_SECRET is not set/],
      ['both.yaml', { ...good, microsoft365: { ...m365, clientCertificate: { privateKeyFile: 'k', certificateFile: 'c' } } }, /give either clientSecret or clientCertificate, not both/],
      ['unknown.yaml', { ...good, spoool: {} }, /unknown key "spoool" \(did you mean "spool"\?\)/],
    ];
    for (const [name, value, expected] of cases) {
      const result = cli(['check-config', '--config', write(name, value)]);
      assert.equal(result.code, 1, `${name} should fail`);
      assert.match(result.stderr, expected);
    }
    const missingFile = cli(['check-config', '--config', join(work, 'nope.yaml')]);
    assert.equal(missingFile.code, 1);
    assert.match(missingFile.stderr, /cannot read the file \(ENOENT\)/);
  });

  test('run with an invalid config exits non-zero at once, naming the key', () => {
    const work = dir();
    const file = join(work, 'bad.yaml');
    writeFileSync(file, stringify({ ...rawConfigFor(suite.sim, join(work, 'spool')), maxMessageSize: 'big' }));
    const result = cli(['run', '--config', file]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /maxMessageSize: must be of type number/);
  });

  test('the shipped example configuration is valid', () => {
    const result = cli(['check-config', '--config', join(ROOT, 'config', 'relay.example.yaml')], undefined, { ...process.env, M365_CLIENT_SECRET: 'x' });
    assert.equal(result.code, 0, result.stderr);
  });

  test('usage errors exit 2 with one line and the hint to --help, not the whole usage', () => {
    const result = cli(['frobnicate']);
    assert.equal(result.code, 2);
    assert.equal(result.stderr, 'm365-relay: unknown command "frobnicate"\nTry \'m365-relay --help\'.\n');
    const missing = cli(['queue', 'show']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^m365-relay: --config FILE is required.*\nTry 'm365-relay queue --help'\.\n$/);
    const unknownOption = cli(['check-config', '--config', 'x.yaml', '--frob']);
    assert.equal(unknownOption.code, 2);
    assert.equal(unknownOption.stderr.split('\n').length, 3, unknownOption.stderr);
    assert.match(unknownOption.stderr, /Try 'm365-relay check-config --help'/);
  });

  test('COMMAND --help prints that command\'s help and exits 0; --help alone prints the usage', () => {
    for (const command of ['run', 'check-config', 'send-test', 'login', 'queue', 'hash-password']) {
      const result = cli([command, '--help']);
      assert.equal(result.code, 0, `${command} --help: ${result.stderr}`);
      assert.match(result.stdout, new RegExp(`^Usage: .*m365-relay ${command}\\b`), command);
      assert.equal(result.stderr, '');
    }
    assert.equal(cli(['queue', 'list', '-h']).code, 0);
    const usage = cli(['--help']);
    assert.equal(usage.code, 0);
    assert.match(usage.stdout, /m365-relay COMMAND --help/);
  });
});
