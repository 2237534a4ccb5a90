// The delivery promise under the faults that broke it before: a second instance on the same spool,
// outages of Exchange and Entra ID (the account's fault: no message charged, one probe at a time,
// everything flows when it is back), a kill -9 during an outage, message-level 451s, IDN
// recipients, more recipients than one transaction takes. Real daemon, real simulator, loopback.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { stringify } from 'yaml';
import { CLI, rawConfigFor, sampleMessage, sendMessage, simulatorSuite, spawnRelay, startInProcessRelay } from './helpers/harness.js';
import { addressKey } from '../src/mail/addresses.js';
import { RawSmtp } from './helpers/rawSmtp.js';
import { waitFor } from './helpers/wait.js';

/** Every file under the spool with its size and mtime: "nothing changed" is this, equal. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      const st = statSync(path);
      if (st.isDirectory()) walk(path);
      else if (name !== 'lock') out[path.slice(dir.length)] = `${st.size}:${st.mtimeMs}`;
    }
  };
  walk(dir);
  return out;
}

describe('delivery you can trust', () => {
  const suite = simulatorSuite();

  test('a second run on a locked spool exits at once, touches nothing, and the in-flight message is delivered', async (t) => {
    suite.sim.reset();
    const work = suite.dir();
    const spoolDir = join(work, 'spool');
    const first = await spawnRelay(rawConfigFor(suite.sim, spoolDir), work);
    t.after(() => first.kill());

    // A device in the middle of DATA.
    const device = await RawSmtp.connect(first.port);
    t.after(() => device.close());
    await device.command('EHLO scanner');
    assert.match(await device.command('MAIL FROM:<scanner@printer.local>'), /^250/);
    assert.match(await device.command('RCPT TO:<alice@contoso.com>'), /^250/);
    assert.match(await device.command('DATA'), /^354/);
    device.write(sampleMessage({ subject: 'in flight while a second relay starts' }).replace(/\r\n$/, ''));
    const dataDir = join(spoolDir, 'data');
    const sizeNow = () => readdirSync(dataDir).map((n) => statSync(join(dataDir, n)).size).join();
    await waitFor('the message in flight on disk', () => readdirSync(dataDir).length === 1 && statSync(join(dataDir, readdirSync(dataDir)[0]!)).size > 150, 5_000);
    let last = '';
    await waitFor('its data file to stop growing', async () => {
      const size = sizeNow();
      const stable = size === last;
      last = size;
      await new Promise((resolve) => setTimeout(resolve, 100));
      return stable;
    }, 5_000);
    const before = snapshot(spoolDir);

    // The same spool, other ports: refused before anything in the spool is read or changed.
    const raw = rawConfigFor(suite.sim, spoolDir);
    const file = join(work, 'second.yaml');
    writeFileSync(file, stringify(raw));
    const second = spawnSync(process.execPath, [CLI, 'run', '--config', file], { encoding: 'utf8', timeout: 15_000 });
    assert.notEqual(second.status, 0);
    assert.match(second.stderr, new RegExp(`spool ${spoolDir.replace(/[/\\]/g, '.')} is in use by pid ${first.proc.pid}`));
    assert.deepEqual(snapshot(spoolDir), before, 'the second instance changed nothing in the spool');
    assert.equal(second.stdout.includes('spool-recovered'), false, 'no recovery ran');

    device.write('\r\n.\r\n');
    assert.match(await device.reply(), /^250 2\.0\.0 Ok: queued as/);
    await waitFor('the message upstream', () => suite.sim.received.some((m) => m.raw.toString().includes('in flight while a second relay starts')), 15_000);
    assert.equal(first.logs.filter((l) => l.event === 'upstream-unavailable').length, 0, 'the account was never tripped');
    assert.equal(await first.stop(), 0);
    assert.equal(readdirSync(spoolDir).includes('lock'), false, 'a clean stop releases the lock');
  });

  test('a lock left by a killed daemon is taken over at once', async (t) => {
    suite.sim.reset();
    const work = suite.dir();
    const raw = rawConfigFor(suite.sim, join(work, 'spool'));
    const first = await spawnRelay(raw, work);
    await first.kill();
    const lock = JSON.parse(readFileSync(join(work, 'spool', 'lock'), 'utf8')) as { pid: number };
    assert.equal(lock.pid, first.proc.pid);
    const second = await spawnRelay(raw, work, { name: 'again.yaml' });
    t.after(() => second.kill());
    await sendMessage(second.port, { to: ['after-takeover@contoso.com'] });
    await suite.sim.waitForMessages(1, 15_000);
    assert.equal(await second.stop(), 0);
  });

  for (const fault of ['connections refused', '421 at the greeting'] as const) {
    test(`Exchange down (${fault}) while devices send: no message is charged, one connection per probe, everything flows when it is back`, async (t) => {
      suite.sim.reset();
      const work = suite.dir();
      const issued = suite.sim.stats.tokensIssued;
      const r = await startInProcessRelay(rawConfigFor(suite.sim, join(work, 'spool'), { microsoft365: { rateLimit: { messages: 1000, perSeconds: 60 } } }));
      t.after(() => r.stop());
      await waitFor('the relay\'s token', () => suite.sim.stats.tokensIssued > issued, 10_000);
      if (fault === 'connections refused') suite.sim.faults.refuseConnections = true;
      else suite.sim.faults.greetingReply = '421 4.3.2 Service not available, closing transmission channel';
      const startedAt = Date.now();
      const connectionsBefore = suite.sim.stats.connections;
      const tokensBefore = suite.sim.stats.tokenRequests;
      for (let i = 0; i < 30; i++) await sendMessage(r.port, { from: 'alerts@contoso.com', raw: sampleMessage({ from: 'alerts@contoso.com', subject: `outage ${i}` }) });
      await waitFor('the account holding', () => r.logs.find((l) => l.event === 'upstream-unavailable'), 10_000);
      await waitFor('a few probes', () => r.logs.filter((l) => l.event === 'upstream-unavailable').length >= 3, 15_000);
      const outageMs = Date.now() - startedAt;
      const attempts = suite.sim.stats.connections - connectionsBefore;
      // Probes go 1 s, 2 s, 4 s, ... apart: at most one per interval, plus the deliveries that were
      // already under way together when the outage began (maxConnections).
      const intervals = Math.ceil(Math.log2(outageMs / 1000 + 1)) + 1;
      assert.ok(attempts <= intervals + 3, `${attempts} connection attempts in ${outageMs} ms`);
      assert.equal(suite.sim.stats.tokenRequests - tokensBefore, 0, 'a valid token is not asked for again');
      // (list() skips an entry caught between two directories, so look until all 30 are seen)
      const queued = await waitFor('all 30 in the spool', async () => {
        const entries = await r.relay.spool.list();
        return entries.length === 30 ? entries : null;
      }, 5_000);
      assert.ok(queued.every((e) => e.meta.attempts === 0), 'no message was charged an attempt');

      suite.sim.faults.refuseConnections = false;
      suite.sim.faults.greetingReply = null;
      // The next probe goes within the 10 s cap; then the 30 flow at once.
      await suite.sim.waitForMessages(30, 20_000);
      await waitFor('the spool empty', async () => (await r.relay.spool.list()).length === 0, 5_000);
      assert.ok(r.logs.some((l) => l.event === 'upstream-available'));
      const subjects = suite.sim.received.map((m) => /Subject: (.*)\r\n/.exec(m.raw.toString())?.[1]);
      assert.equal(new Set(subjects).size, 30, 'each message once');
    });
  }

  test('Entra ID down with no token held: one token request per probe, no message charged', async (t) => {
    suite.sim.reset();
    suite.sim.faults.tokenEndpointDown = true;
    const work = suite.dir();
    const { tokenRequests, connections } = suite.sim.stats;
    const r = await startInProcessRelay(rawConfigFor(suite.sim, join(work, 'spool')));
    t.after(() => r.stop());
    const startedAt = Date.now();
    for (let i = 0; i < 10; i++) await sendMessage(r.port, { to: [`entra${i}@contoso.com`] });
    await waitFor('a few probes', () => r.logs.filter((l) => l.event === 'upstream-unavailable').length >= 3, 15_000);
    const elapsed = Date.now() - startedAt;
    const intervals = Math.ceil(Math.log2(elapsed / 1000 + 1)) + 1;
    // msal itself may retry a failed request once; the start-up request is one more.
    const requests = suite.sim.stats.tokenRequests - tokenRequests;
    assert.ok(requests <= 2 * (intervals + 2), `${requests} token requests in ${elapsed} ms`);
    assert.equal(suite.sim.stats.connections - connections, 0, 'no connection without a token');
    assert.ok((await r.relay.spool.list()).every((e) => e.meta.attempts === 0));
    suite.sim.faults.tokenEndpointDown = false;
    await suite.sim.waitForMessages(10, 20_000);
  });

  test('kill -9 during an outage, restart with Exchange up: everything is delivered at once', async (t) => {
    suite.sim.reset();
    const work = suite.dir();
    const raw = rawConfigFor(suite.sim, join(work, 'spool'));
    suite.sim.faults.refuseConnections = true;
    const first = await spawnRelay(raw, work);
    t.after(() => first.kill());
    for (let i = 0; i < 5; i++) await sendMessage(first.port, { to: [`killed${i}@contoso.com`] });
    await first.waitForLog('the account holding', (l) => l.event === 'upstream-unavailable');
    await first.kill();
    suite.sim.faults.refuseConnections = false;
    const second = await spawnRelay(raw, work, { name: 'restart.yaml' });
    t.after(() => second.kill());
    await suite.sim.waitForMessages(5, 15_000);
    assert.equal(await second.stop(), 0);
  });

  test("five 451s are the messages' own: each is deferred once and retried on schedule, the account never holds", async (t) => {
    suite.sim.reset();
    const work = suite.dir();
    const r = await startInProcessRelay(rawConfigFor(suite.sim, join(work, 'spool'), { retry: { schedule: ['1s', '1m'] } }));
    t.after(() => r.stop());
    suite.sim.faults.failNext(5, '451 4.7.500 Server busy. Please try again later.');
    for (let i = 0; i < 5; i++) await sendMessage(r.port, { to: [`busy${i}@contoso.com`] });
    await suite.sim.waitForMessages(5, 15_000);
    const deferred = r.logs.filter((l) => l.event === 'deferred');
    assert.equal(deferred.length, 5);
    assert.ok(deferred.every((l) => l.class === 'temporary-failure' && l.attempts === 1 && !l.accountHold));
    assert.equal(r.logs.filter((l) => l.event === 'upstream-unavailable').length, 0);
  });

  test('an IDN recipient is delivered once; a non-ASCII local part is refused at RCPT', async (t) => {
    suite.sim.reset();
    const work = suite.dir();
    const r = await startInProcessRelay(rawConfigFor(suite.sim, join(work, 'spool'), { retry: { schedule: ['200ms'] } }));
    t.after(() => r.stop());
    const s = await RawSmtp.connect(r.port);
    t.after(() => s.close());
    await s.command('EHLO scanner');
    assert.match(await s.command('MAIL FROM:<scanner@printer.local>'), /^250/);
    assert.match(await s.command('RCPT TO:<jörg@contoso.com>'), /^553 5\.6\.7/);
    assert.match(await s.command('RCPT TO:<alice@contoso.com>'), /^250/);
    assert.match(await s.command('RCPT TO:<user@bücher.de>'), /^250/);
    assert.match(await s.command('RCPT TO:<User@XN--BCHER-KVA.DE>'), /^250/); // the same mailbox again
    assert.match(await s.command('DATA'), /^354/);
    s.write(`${sampleMessage({ to: ['alice@contoso.com', 'user@bücher.de'], subject: 'idn' })}.\r\n`);
    assert.match(await s.reply(), /^250 2\.0\.0/);
    const [message] = await suite.sim.waitForMessages(1, 10_000);
    // (smtp-server, here the simulator's, shows domains in Unicode: compare mailboxes, not spellings)
    assert.deepEqual((message?.envelope.to ?? []).map(addressKey).sort(), ['alice@contoso.com', 'user@xn--bcher-kva.de'], 'the IDN mailbox once, not once per spelling');
    await waitFor('the spool empty', async () => (await r.relay.spool.list()).length === 0, 5_000);
    // Retries would come every 200 ms: wait a few rounds and count.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    assert.equal(suite.sim.received.length, 1, 'no re-sends');
    assert.equal(r.logs.filter((l) => l.event === 'delivered').length, 1);
  });

  test('600 recipients go as two transactions; after a partial success no recipient is sent twice', async (t) => {
    suite.sim.reset();
    const work = suite.dir();
    const r = await startInProcessRelay(rawConfigFor(suite.sim, join(work, 'spool'), { maxRecipients: 1000, retry: { schedule: ['300ms'] } }));
    t.after(() => r.stop());
    const to = Array.from({ length: 600 }, (_, i) => `r${i}@contoso.com`);
    // One recipient of the second transaction is deferred at RCPT the first time.
    suite.sim.faults.rejectRecipients.set('r550@contoso.com', '451 4.4.0 try this one later');
    await sendMessage(r.port, { to, raw: sampleMessage({ to: ['list@contoso.com'], subject: 'six hundred' }) });
    const first = await suite.sim.waitForMessages(2, 15_000);
    assert.deepEqual(first.map((m) => m.envelope.to.length), [500, 99]);
    suite.sim.faults.rejectRecipients.clear();
    const all = await suite.sim.waitForMessages(3, 15_000);
    assert.deepEqual(all[2]?.envelope.to, ['r550@contoso.com']);
    const counts = new Map<string, number>();
    for (const m of all) for (const rcpt of m.envelope.to) counts.set(rcpt, (counts.get(rcpt) ?? 0) + 1);
    assert.equal(counts.size, 600);
    assert.ok([...counts.values()].every((n) => n === 1), 'each recipient exactly once');
    await waitFor('the spool empty', async () => (await r.relay.spool.list()).length === 0, 5_000);
  });
});

describe('a sender the mailbox may not send as', () => {
  const suite = simulatorSuite();

  test('554 5.2.252 SendAsDenied fails the message with an alert naming the sender and both fixes; the account is not held', async (t) => {
    suite.sim.reset();
    const work = suite.dir();
    // The relay is told the mailbox may send as @fabrikam.com; Exchange (the simulator) disagrees.
    const r = await startInProcessRelay(rawConfigFor(suite.sim, join(work, 'spool'), { microsoft365: { sendAs: ['@contoso.com', '@fabrikam.com'] } }));
    t.after(() => r.stop());
    await sendMessage(r.port, { from: 'alerts@fabrikam.com', to: ['ops@contoso.com'] });
    const failed = await waitFor('the failed line', () => r.logs.find((l) => l.event === 'failed'), 15_000);
    assert.equal(failed.class, 'send-as-denied');
    assert.match(String(failed.advice), /Add-RecipientPermission -Identity alerts@fabrikam\.com -Trustee relay@contoso\.com -AccessRights SendAs/);
    assert.match(String(failed.advice), /remove alerts@fabrikam\.com \(or its domain\) from sendAs/);
    const alert = r.logs.find((l) => l.event === 'alert' && String(l.alert).startsWith('send-as:'));
    assert.equal(alert?.level, 'error');
    assert.equal(r.logs.filter((l) => l.event === 'upstream-unavailable').length, 0);
    assert.equal((await r.relay.spool.list())[0]?.state, 'failed');
  });
});

describe('local problems are local', () => {
  const suite = simulatorSuite();

  test('a message whose data file vanished goes to corrupt/ with an alert; the account is not tripped; restore brings it back', async (t) => {
    suite.sim.reset();
    const work = suite.dir();
    const spoolDir = join(work, 'spool');
    const r = await startInProcessRelay(rawConfigFor(suite.sim, spoolDir, { retry: { schedule: ['1s'] } }));
    t.after(() => r.stop());
    suite.sim.faults.failNext(1, '451 4.7.500 Server busy. Please try again later.');
    const id = /queued as (\S+)/.exec((await sendMessage(r.port, { to: ['gone@contoso.com'] })).response)?.[1] ?? '';
    await waitFor('the deferral', () => r.logs.find((l) => l.event === 'deferred' && l.msgId === id), 10_000);
    const data = join(spoolDir, 'data', `${id}.eml`);
    const bytes = readFileSync(data);
    rmSync(data);
    const alert = await waitFor('the corrupt alert', () => r.logs.find((l) => l.event === 'alert' && l.alert === 'spool-corrupt' && l.msgId === id), 10_000);
    assert.equal(alert.level, 'error');
    assert.equal(r.logs.filter((l) => l.event === 'upstream-unavailable').length, 0, 'not the account\'s problem');
    // Other mail keeps flowing.
    await sendMessage(r.port, { to: ['other@contoso.com'] });
    await waitFor('the other message', () => suite.sim.received.some((m) => m.envelope.to.includes('other@contoso.com')), 10_000);
    const listed = spawnSync(process.execPath, [CLI, 'queue', 'list', '--config', writeConfig(work, rawConfigFor(suite.sim, spoolDir)), '--json'], { encoding: 'utf8', timeout: 15_000 });
    assert.equal(listed.status, 0, listed.stderr);
    assert.deepEqual((JSON.parse(listed.stdout) as Array<{ id: string; state: string }>).map((i) => [i.id, i.state]), [[id, 'corrupt']]);
    writeFileSync(join(spoolDir, 'corrupt', `${id}.eml`), bytes);
    const restored = spawnSync(process.execPath, [CLI, 'queue', 'restore', id, '--config', join(work, 'cli.yaml')], { encoding: 'utf8', timeout: 15_000 });
    assert.equal(restored.status, 0, restored.stderr);
    await waitFor('the restored message upstream', () => suite.sim.received.some((m) => m.envelope.to.includes('gone@contoso.com')), 15_000);
    await waitFor('the restore in the daemon log', () => r.logs.find((l) => l.event === 'admin-action' && l.action === 'restore' && l.msgId === id), 5_000);
  });
});

function writeConfig(dir: string, raw: Record<string, unknown>): string {
  const file = join(dir, 'cli.yaml');
  writeFileSync(file, stringify(raw));
  return file;
}
