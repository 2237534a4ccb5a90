// What an administrator reads: the received line names the message's addresses and Message-ID,
// log.format text is one readable line per event, journald gets syslog priorities, and the relay's
// Received: field arrives upstream. Real daemon (node dist/cli.js run), real SMTP, the simulator.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { stringify } from 'yaml';
import { CLI, rawConfigFor, sampleMessage, sendMessage, simulatorSuite, spawnRelay } from './helpers/harness.js';
import { waitFor } from './helpers/wait.js';

const withMessageId = (to: string[], messageId: string) =>
  sampleMessage({ to }).replace('MIME-Version:', `Message-ID: ${messageId}\r\nMIME-Version:`);

/** The daemon with stdout into a file (so that its device and inode can be the journal's), stopped by the test. */
async function relayWritingTo(raw: Record<string, unknown>, dir: string, env: (out: string) => NodeJS.ProcessEnv) {
  const file = join(dir, 'relay.yaml');
  writeFileSync(file, stringify(raw));
  const out = join(dir, 'stdout.log');
  const fd = openSync(out, 'w');
  const proc = spawn(process.execPath, [CLI, 'run', '--config', file], { stdio: ['ignore', fd, 'pipe'], env: { ...process.env, ...env(out) } });
  closeSync(fd);
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  const text = () => readFileSync(out, 'utf8');
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
  };
  return { proc, text, stop };
}

describe('logs for people and machines', () => {
  const suite = simulatorSuite();

  test('grep an address finds the message: the received line has the recipients, the sender and the Message-ID; the Received: field arrives upstream', async (t) => {
    suite.sim.reset();
    const work = suite.dir();
    const relay = await spawnRelay(rawConfigFor(suite.sim, join(work, 'spool')), work);
    t.after(() => relay.kill());
    const info = await sendMessage(relay.port, { to: ['bob@contoso.com', 'carol@contoso.com'], raw: withMessageId(['bob@contoso.com', 'carol@contoso.com'], '<scan-4711@mfp3.printer.local>') });
    const id = /queued as (\S+)/.exec(info.response)?.[1] ?? '';
    await relay.waitForLog('the delivery', (l) => l.event === 'delivered' && l.msgId === id);
    const aboutBob = relay.logs.filter((l) => JSON.stringify(l).includes('bob@contoso.com'));
    const received = aboutBob.find((l) => l.event === 'received');
    assert.ok(received, 'grep bob@contoso.com finds the received line');
    assert.equal(received.msgId, id);
    assert.deepEqual(received.recipients, ['bob@contoso.com', 'carol@contoso.com']);
    assert.equal(received.from, 'scanner@printer.local');
    assert.equal(received.messageId, '<scan-4711@mfp3.printer.local>');
    assert.ok(relay.logs.some((l) => l.event === 'received' && JSON.stringify(l).includes('scan-4711@mfp3.printer.local')), 'grep the Message-ID finds it too');
    // ... and its delivery: the same addresses, sender and Message-ID on the delivered line.
    const delivered = aboutBob.find((l) => l.event === 'delivered');
    assert.ok(delivered, 'grep bob@contoso.com finds the delivered line');
    assert.deepEqual(delivered.to, ['bob@contoso.com', 'carol@contoso.com']);
    assert.equal(delivered.from, 'scanner@printer.local');
    assert.equal(delivered.messageId, '<scan-4711@mfp3.printer.local>');

    // The relay's hop, first in the header, kept by the sender policy (the sender was rewritten).
    const [got] = await suite.sim.waitForMessages(1);
    const head = got!.raw.toString('latin1').split(/\r?\n\r?\n/)[0] ?? '';
    const stamp = /^Received: from [^\r\n]*(\r\n\t[^\r\n]*)*/.exec(head)?.[0] ?? '';
    assert.match(stamp, /^Received: from localhost \(\[127\.0\.0\.1\]\)|^Received: from \S+ \(\[127\.0\.0\.1\]\)/);
    assert.match(stamp, new RegExp(`\\tby \\S+ \\(m365-relay\\) with ESMTP id ${id}; \\w{3}, \\d{2} \\w{3} \\d{4} \\d{2}:\\d{2}:\\d{2} \\+0000$`));
    assert.match(head, /^From: .*relay@contoso\.com/m, 'the sender policy ran');
    assert.equal(await relay.stop(), 0);
  });

  test('log.format: text writes one readable line per event: time, level, event, msgId, message, details', async (t) => {
    suite.sim.reset();
    const work = suite.dir();
    const relay = await relayWritingTo({ ...rawConfigFor(suite.sim, join(work, 'spool')), log: { level: 'info', format: 'text' } }, work, () => ({ JOURNAL_STREAM: '' }));
    t.after(relay.stop);
    const listening = await waitFor('the listening line', () => /^\S+Z INFO {2}listening m365-relay is running: addresses=(\S+)/m.exec(relay.text()), 15_000);
    const port = Number(/"port":(\d+)/.exec(listening[1] ?? '')?.[1]);
    const info = await sendMessage(port, { to: ['bob@contoso.com'], raw: withMessageId(['bob@contoso.com'], '<t-1@mfp>') });
    const id = /queued as (\S+)/.exec(info.response)?.[1] ?? '';
    await suite.sim.waitForMessages(1);
    const line = await waitFor('the received line', () => relay.text().split('\n').find((l) => l.includes(` received ${id} `)), 10_000);
    assert.match(line, new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\S+Z INFO  received ${id} message queued: client=127\\.0\\.0\\.1 `));
    assert.match(line, / from=scanner@printer\.local /);
    assert.match(line, / recipients=bob@contoso\.com /);
    assert.match(line, / messageId=<t-1@mfp> /);
    await relay.stop();
    for (const l of relay.text().split('\n').filter(Boolean)) assert.doesNotMatch(l, /^\{/, `not JSON: ${l}`);
  });

  test('under journald (JOURNAL_STREAM names stdout) each line carries its syslog priority; a redirected stdout does not', async (t) => {
    suite.sim.reset();
    const work = suite.dir();
    // A wrong secret: the token request fails, which the relay logs at warn and alerts at error.
    const raw = rawConfigFor(suite.sim, join(work, 'spool'), { microsoft365: { clientSecret: 'wrong-secret' } });
    const relay = await relayWritingTo(raw, work, (out) => {
      const st = statSync(out, { bigint: true });
      return { JOURNAL_STREAM: `${st.dev}:${st.ino}` };
    });
    t.after(relay.stop);
    await waitFor('the listening line', () => relay.text().includes('"event":"listening"'), 15_000);
    const port = Number(/"port":(\d+)/.exec(relay.text())?.[1]);
    await sendMessage(port, { to: ['bob@contoso.com'] });
    await waitFor('an error line', () => /^<3>\{"level":"error"/m.test(relay.text()), 15_000);
    await relay.stop();
    const lines = relay.text().split('\n').filter(Boolean);
    const priority: Record<string, string> = { fatal: '2', error: '3', warn: '4', info: '6', debug: '7' };
    for (const line of lines) {
      const found = /^<(\d)>(\{.*\})$/.exec(line);
      assert.ok(found, `no priority prefix: ${line}`);
      assert.equal(found[1], priority[(JSON.parse(found[2] ?? '{}') as { level: string }).level], line);
    }
    assert.ok(lines.some((l) => l.startsWith('<6>')) && lines.some((l) => l.startsWith('<4>')), 'info and warn lines seen');

    // The same variable with another stream (stdout redirected to a file by hand): plain lines.
    const plainDir = suite.dir();
    const plain = await relayWritingTo(rawConfigFor(suite.sim, join(plainDir, 'spool')), plainDir, () => ({ JOURNAL_STREAM: '8:12345' }));
    t.after(plain.stop);
    await waitFor('the listening line', () => plain.text().includes('"event":"listening"'), 15_000);
    await plain.stop();
    assert.ok(plain.text().split('\n').filter(Boolean).every((l) => l.startsWith('{')));
  });
});
