// `send-test` against a running daemon (a real child process) and the Microsoft 365 simulator: the
// test message goes through the listener, the spool and the worker, and the command reports what
// became of it. Also: every log line about the message carries its id (one grep shows its life).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { stringify } from 'yaml';
import { CLI, rawConfigFor, simulatorSuite, spawnRelay } from './helpers/harness.js';

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 30_000, env }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('send-test', () => {
  const suite = simulatorSuite();

  test('queues a test message through the running relay and reports its delivery; its log lines share its id', async (t) => {
    suite.sim.reset();
    const work = suite.dir();
    const relay = await spawnRelay(rawConfigFor(suite.sim, join(work, 'spool'), { listen: [{ port: 0, host: '0.0.0.0' }] }), work);
    t.after(() => relay.stop());
    const file = boundConfig(work, rawConfigFor(suite.sim, join(work, 'spool'), { listen: [{ port: relay.port, host: '0.0.0.0' }] }));

    const result = await cli(['send-test', '--to', 'admin@contoso.com', '--config', file, '--timeout', '20']);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const id = /queued as (\S+)/.exec(result.stdout)?.[1];
    assert.ok(id, result.stdout);
    assert.match(result.stdout, new RegExp(`${id}: delivered to Exchange Online`));

    const [message] = await suite.sim.waitForMessages(1);
    assert.deepEqual(message?.envelope, { from: 'relay@contoso.com', to: ['admin@contoso.com'] });
    assert.match(message?.raw.toString('utf8') ?? '', /^Subject: m365-relay test message from /m);

    const life = relay.logs.filter((l) => l.msgId === id).map((l) => l.event);
    assert.ok(life.includes('received') && life.includes('delivered'), `one grep of the id shows the message's life: ${life.join(', ')}`);
  });

  test('reports a permanent failure with the reason, exit 1', async (t) => {
    suite.sim.reset();
    suite.sim.faults.rejectData = '550 5.7.1 Message rejected as spam by Content Filtering.';
    t.after(() => suite.sim.reset());
    const work = suite.dir();
    const relay = await spawnRelay(rawConfigFor(suite.sim, join(work, 'spool'), { listen: [{ port: 0, host: '127.0.0.1' }] }), work);
    t.after(() => relay.stop());
    const file = boundConfig(work, rawConfigFor(suite.sim, join(work, 'spool'), { listen: [{ port: relay.port, host: '127.0.0.1' }] }));
    const result = await cli(['send-test', '--to', 'admin@contoso.com', '--config', file, '--timeout', '20']);
    assert.equal(result.code, 1, result.stdout);
    assert.match(result.stdout, /FAILED: 550 5\.7\.1 Message rejected as spam/);
  });

  test('a host outside allowNetworks is told how to get in; --user with M365_RELAY_PASSWORD logs in', async (t) => {
    suite.sim.reset();
    const work = suite.dir();
    const raw = rawConfigFor(suite.sim, join(work, 'spool'), { allowNetworks: [], users: [{ username: 'ops', password: 'test-pass-1' }] });
    const relay = await spawnRelay(raw, work);
    t.after(() => relay.stop());
    const file = boundConfig(work, { ...raw, listen: [{ port: relay.port, host: '127.0.0.1' }] });

    const refused = await cli(['send-test', '--to', 'admin@contoso.com', '--config', file, '--timeout', '0']);
    assert.equal(refused.code, 1);
    assert.match(refused.stdout, /add 127\.0\.0\.1\/32 to allowNetworks, or pass --user NAME/);

    const noPassword = await cli(['send-test', '--to', 'admin@contoso.com', '--config', file, '--user', 'ops'], { ...process.env, M365_RELAY_PASSWORD: '' });
    assert.equal(noPassword.code, 2, 'usage error without the password');

    const loggedIn = await cli(['send-test', '--to', 'admin@contoso.com', '--config', file, '--user', 'ops', '--timeout', '20'], { ...process.env, M365_RELAY_PASSWORD: 'test-pass-1' });
    assert.equal(loggedIn.code, 0, loggedIn.stdout + loggedIn.stderr);
    await suite.sim.waitForMessages(1);
  });
});

/** The daemon's config names port 0; send-test needs the port it actually bound. */
function boundConfig(dir: string, raw: Record<string, unknown>): string {
  const file = join(dir, 'bound.yaml');
  writeFileSync(file, stringify(raw));
  return file;
}
