// check-config as the service's user checks what run will need (spool, lock, ports, TLS), and
// run's start errors are one line naming the key. Real CLI processes, on loopback.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { stringify } from 'yaml';
import { cli, CLI, rawConfigFor, spawnRelay, simulatorSuite } from './helpers/harness.js';

describe('check-config checks what run needs; run fails in one line', () => {
  const suite = simulatorSuite();
  const asRoot = process.geteuid?.() === 0;
  /** Runs the CLI as an unprivileged user when we are root (root may write anywhere). */
  const asUser = (args: string[]) => {
    // The test CA is for the simulator, which these checks never reach (and that user may not read it).
    const { NODE_EXTRA_CA_CERTS: _ca, ...env } = process.env;
    const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000, env, ...(asRoot ? { uid: 65534, gid: 65534 } : {}) });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr, error: result.error };
  };

  test('a spool the relay\'s user cannot create: check-config names spool.dir; run fails in one line with no stack trace', (t) => {
    if (asRoot && spawnSync(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(CLI)})`], { uid: 65534, gid: 65534 }).status !== 0) {
      return t.skip(`running as root and ${CLI} is not readable by uid 65534: cannot test as an unprivileged user here`);
    }
    const work = suite.dir();
    chmodSync(work, 0o755);
    // A parent the user may not write in (owned by root, or read-only for us).
    const parent = join(work, 'state');
    mkdirSync(parent, { mode: 0o555 });
    const file = join(work, 'relay.yaml');
    writeFileSync(file, stringify(rawConfigFor(suite.sim, join(parent, 'spool'))), { mode: 0o644 });
    const check = asUser(['check-config', '--config', file]);
    assert.ifError(check.error);
    assert.equal(check.code, 1, check.stdout + check.stderr);
    assert.match(check.stderr, /spool\.dir: .*spool does not exist and cannot be created: .*state is not writable \(EACCES\)/);

    const run = asUser(['run', '--config', file]);
    assert.equal(run.code, 1);
    assert.equal(run.stderr.trim().split('\n').length, 1, `one line: ${run.stderr}`);
    assert.match(run.stderr, /^m365-relay: cannot start: spool\.dir: .* may not write in .*; give it the directory/);
    assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(run.stdout, '', 'nothing is logged');

    // The spool exists but is not writable for its owner: the probe (create, fsync, remove) fails.
    chmodSync(parent, 0o755);
    mkdirSync(join(parent, 'spool'), { mode: 0o500 });
    if (asRoot) chownSync(join(parent, 'spool'), 65534, 65534);
    const probe = asUser(['check-config', '--config', file]);
    assert.equal(probe.code, 1, probe.stdout + probe.stderr);
    assert.match(probe.stderr, /spool\.dir: .* may not write in .*spool/);
  });

  test('busy listen and http ports: check-config names each key; run fails in one line naming http.port and logs nothing after it', async (t) => {
    const work = suite.dir();
    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    t.after(() => busy.close());
    const port = (busy.address() as net.AddressInfo).port;
    const file = join(work, 'relay.yaml');
    writeFileSync(file, stringify(rawConfigFor(suite.sim, join(work, 'spool'), { listen: [{ host: '127.0.0.1', port }], http: { host: '127.0.0.1', port } })));
    const check = cli(['check-config', '--config', file]);
    assert.equal(check.code, 1);
    assert.match(check.stderr, new RegExp(`listen\\[0\\]\\.port: 127\\.0\\.0\\.1:${port} is already in use by another program`));
    assert.match(check.stderr, new RegExp(`http\\.port: 127\\.0\\.0\\.1:${port} is already in use by another program`));

    // run: the SMTP port free, the http port busy (the EADDRINUSE with a stack trace).
    writeFileSync(file, stringify(rawConfigFor(suite.sim, join(work, 'spool'), { http: { host: '127.0.0.1', port } })));
    const started = Date.now();
    const run = cli(['run', '--config', file]);
    assert.equal(run.code, 1, run.stderr);
    assert.ok(Date.now() - started < 15_000, 'exits at once');
    assert.equal(run.stderr, `m365-relay: cannot start: http.port: 127.0.0.1:${port} is already in use by another program; stop that program (see: ss -ltnp 'sport = :${port}') or choose another http.port\n`);
    const lines = run.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event?: string });
    assert.ok(!lines.some((l) => /^token/.test(String(l.event))), `no token lines: ${run.stdout}`);

    // With log.level debug the stack follows, for a developer.
    writeFileSync(file, stringify({ ...rawConfigFor(suite.sim, join(work, 'spool'), { http: { host: '127.0.0.1', port } }), log: { level: 'debug' } }));
    assert.match(cli(['run', '--config', file]).stderr, /^m365-relay: cannot start: http\.port: .*\nStartError: http\.port: [^\n]*\n\s+at /);
  });

  test('a spool in use by the running relay: check-config says so (not an error) and treats its ports as held by it', async (t) => {
    suite.sim.reset();
    const work = suite.dir();
    const free = async () => {
      const s = net.createServer();
      await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
      const p = (s.address() as net.AddressInfo).port;
      await new Promise((resolve) => s.close(resolve));
      return p;
    };
    const [smtpPort, httpPort] = [await free(), await free()];
    const raw = rawConfigFor(suite.sim, join(work, 'spool'), { listen: [{ host: '127.0.0.1', port: smtpPort }], http: { host: '127.0.0.1', port: httpPort } });
    const relay = await spawnRelay(raw, work);
    t.after(() => relay.kill());
    const check = cli(['check-config', '--config', join(work, 'relay.yaml')]);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, new RegExp(`the spool is in use by the running relay \\(pid ${relay.proc.pid}`));
    assert.match(check.stdout, new RegExp(`listen\\[0\\]\\.port: 127\\.0\\.0\\.1:${smtpPort} is held by the running relay \\(pid ${relay.proc.pid}\\)`));
    assert.match(check.stdout, new RegExp(`http\\.port: 127\\.0\\.0\\.1:${httpPort} is held by the running relay`));
    assert.equal(await relay.stop(), 0);
  });
});
