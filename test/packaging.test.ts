// Packaging: the systemd unit, the Dockerfile, the example configuration and the README's install
// sections must describe one layout (paths, ports, user, secrets) and stay runnable.
// - The unit is checked with systemd-analyze (verify, and security --offline) on a copy whose
//   node and dist/cli.js paths are this machine's. .ci/run installs systemd where it is missing;
//   without it these tests fail, unless M365_RELAY_SKIP_SYSTEMD=1 skips them.
// - The Dockerfile is parsed, not built: there is no docker daemon on the test machines. Its
//   HEALTHCHECK script is run here, with this node, against a real relay's /healthz on loopback.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join, posix } from 'node:path';
import { describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { CLI, ROOT, rawConfigFor, sendMessage, simulatorSuite, spawnRelay, tempDir } from './helpers/harness.js';
import { startNotifySocket } from './helpers/notifySocket.js';
import { waitFor } from './helpers/wait.js';

const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');

// ---------------------------------------------------------------- systemd unit

type Unit = Map<string, Array<{ key: string; value: string }>>;

/** [Section] and Key=Value lines; '#' and ';' comments; a trailing backslash continues the line. */
function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section = '';
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!pending && (line === '' || line.startsWith('#') || line.startsWith(';'))) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = pending + line;
    pending = '';
    const header = /^\[(.+)\]$/.exec(full);
    if (header) {
      section = header[1] ?? '';
      if (!unit.has(section)) unit.set(section, []);
      continue;
    }
    const eq = full.indexOf('=');
    assert.ok(eq > 0 && section, `not a unit file line: ${full}`);
    unit.get(section)?.push({ key: full.slice(0, eq).trim(), value: full.slice(eq + 1).trim() });
  }
  return unit;
}

const all = (unit: Unit, section: string, key: string) => (unit.get(section) ?? []).filter((e) => e.key === key).map((e) => e.value);
/** The value in force: the last assignment, as systemd reads most settings. */
function one(unit: Unit, section: string, key: string): string {
  const values = all(unit, section, key);
  assert.ok(values.length > 0, `[${section}] ${key}= is missing from systemd/m365-relay.service`);
  return values[values.length - 1] ?? '';
}

/** A systemd time span ("45s", "1min 30s", "45"), in ms. */
function timeSpanMs(span: string): number {
  const units: Record<string, number> = { ms: 1, s: 1000, sec: 1000, m: 60_000, min: 60_000, h: 3_600_000 };
  let total = 0;
  for (const [, n, u] of span.matchAll(/(\d+)\s*([a-z]*)/g)) {
    const factor = units[u || 's'];
    assert.ok(factor, `unknown time unit in "${span}"`);
    total += Number(n) * factor;
  }
  return total;
}

/** The daemon's stop grace (listener + deliveries), read from src/daemon.ts so the unit cannot drift from it. */
function daemonStopGraceMs(): number {
  const source = read('src/daemon.ts');
  const grace = (name: string) => {
    const found = new RegExp(`${name} \\?\\? ([\\d_]+)`).exec(source);
    assert.ok(found?.[1], `src/daemon.ts no longer has a default for ${name}: update this test`);
    return Number(found[1].replace(/_/g, ''));
  };
  return grace('listenerGraceMs') + grace('deliveryGraceMs');
}

const UNIT_TEXT = read('systemd/m365-relay.service');
const UNIT = parseUnit(UNIT_TEXT);
const S = 'Service';
const INSTALLED_CLI = '/opt/m365-relay/dist/cli.js';
const INSTALLED_NODE = '/usr/bin/node';

/** The unit's layout, with systemd's directory settings expanded. */
function unitLayout() {
  const configDir = `/etc/${one(UNIT, S, 'ConfigurationDirectory')}`;
  const stateDir = `/var/lib/${one(UNIT, S, 'StateDirectory')}`;
  const exec = one(UNIT, S, 'ExecStart').replaceAll('${CONFIGURATION_DIRECTORY}', configDir).split(/\s+/);
  const config = exec[exec.indexOf('--config') + 1] ?? '';
  const envFile = one(UNIT, S, 'EnvironmentFile').replace(/^-/, '');
  return { configDir, stateDir, exec, config, envFile, user: one(UNIT, S, 'User') };
}

describe('systemd unit: the directives the issue asks for', () => {
  test('a dedicated non-root user; spool in StateDirectory, config in ConfigurationDirectory', () => {
    const { configDir, stateDir, exec, config, user } = unitLayout();
    assert.doesNotMatch(user, /^(root|0)$/);
    assert.doesNotMatch(one(UNIT, S, 'Group'), /^(root|0)$/);
    assert.equal(one(UNIT, S, 'StateDirectory'), 'm365-relay');
    assert.equal(one(UNIT, S, 'StateDirectoryMode'), '0700');
    assert.equal(configDir, '/etc/m365-relay');
    assert.equal(stateDir, '/var/lib/m365-relay');
    assert.equal(one(UNIT, S, 'WorkingDirectory'), stateDir);
    assert.deepEqual(exec.filter((w) => !w.startsWith('--max-')).slice(0, 3), [INSTALLED_NODE, INSTALLED_CLI, 'run']);
    assert.equal(config, '/etc/m365-relay/relay.yaml');
    assert.match(one(UNIT, S, 'ExecStartPre'), /dist\/cli\.js check-config --config \$\{CONFIGURATION_DIRECTORY\}\/relay\.yaml$/);
    // The example configuration's spool is inside the state directory (ProtectSystem=strict makes the rest read-only).
    const spoolDir = exampleConfig().spool.dir;
    assert.ok(spoolDir.startsWith(`${stateDir}/`), `config/relay.example.yaml spool.dir ${spoolDir} is outside ${stateDir}`);
  });

  test('hardening: no new privileges, read-only system, no home, private /tmp, port 25 only, few address families', () => {
    const expected: Record<string, string> = {
      NoNewPrivileges: 'yes',
      ProtectSystem: 'strict',
      ProtectHome: 'yes',
      PrivateTmp: 'yes',
      PrivateDevices: 'yes',
      CapabilityBoundingSet: 'CAP_NET_BIND_SERVICE',
      AmbientCapabilities: 'CAP_NET_BIND_SERVICE',
      RestrictNamespaces: 'yes',
      RestrictSUIDSGID: 'yes',
      LockPersonality: 'yes',
      SystemCallArchitectures: 'native',
      UMask: '0077',
    };
    for (const [key, value] of Object.entries(expected)) assert.equal(one(UNIT, S, key), value, `${key}=`);
    const families = one(UNIT, S, 'RestrictAddressFamilies').split(/\s+/);
    assert.ok(!families[0]?.startsWith('~'), 'RestrictAddressFamilies must be an allow list');
    assert.deepEqual(families.filter((f) => !['AF_INET', 'AF_INET6', 'AF_UNIX'].includes(f)), []);
    assert.deepEqual(all(UNIT, S, 'SystemCallFilter'), ['@system-service', '~@privileged @resources']);
    assert.equal(one(UNIT, S, 'SystemCallErrorNumber'), 'EPERM', 'a filtered call must fail, not kill node');
    // V8 compiles code at run time: MemoryDenyWriteExecute=yes would kill the relay.
    assert.deepEqual(all(UNIT, S, 'MemoryDenyWriteExecute').filter((v) => v !== 'no'), []);
  });

  test('restart on failure, graceful stop within TimeoutStopSec, reload on SIGHUP', () => {
    assert.equal(one(UNIT, S, 'Restart'), 'on-failure');
    assert.equal(one(UNIT, S, 'KillSignal'), 'SIGTERM');
    const grace = daemonStopGraceMs();
    const timeout = timeSpanMs(one(UNIT, S, 'TimeoutStopSec'));
    assert.ok(timeout >= grace + 10_000, `TimeoutStopSec (${timeout} ms) must exceed the relay's stop grace (${grace} ms) with margin`);
    assert.ok(timeout <= 120_000, `TimeoutStopSec (${timeout} ms) keeps a stop waiting too long`);
    // Reload validates first: a bad file fails `systemctl reload` and is never signalled.
    assert.deepEqual(all(UNIT, S, 'ExecReload'), [`${INSTALLED_NODE} ${INSTALLED_CLI} check-config --config \${CONFIGURATION_DIRECTORY}/relay.yaml`, '/bin/kill -HUP $MAINPID']);
  });

  test('Type=notify: started means accepting mail; the notification comes from a helper process', () => {
    assert.equal(one(UNIT, S, 'Type'), 'notify');
    assert.equal(one(UNIT, S, 'NotifyAccess'), 'all', 'systemd-notify, a child of the relay, sends READY=1');
    const start = timeSpanMs(one(UNIT, S, 'TimeoutStartSec'));
    assert.ok(start >= 30_000 && start <= 300_000, `TimeoutStartSec ${start} ms`);
  });

  test('secrets come from a root-only EnvironmentFile or systemd credentials, never from the unit', () => {
    assert.equal(unitLayout().envFile, '/etc/m365-relay/m365-relay.env');
    for (const value of all(UNIT, S, 'Environment')) assert.doesNotMatch(value, /SECRET|PASSWORD|KEY/i);
    assert.match(UNIT_TEXT, /^#LoadCredential=client-secret:\/etc\/m365-relay\/client-secret$/m);
    assert.match(UNIT_TEXT, /\$\{credential:client-secret\}/);
  });
});

const SKIP_SYSTEMD = process.env.M365_RELAY_SKIP_SYSTEMD === '1' ? 'M365_RELAY_SKIP_SYSTEMD=1: systemd-analyze checks skipped' : undefined;

describe('systemd unit: systemd-analyze', { skip: SKIP_SYSTEMD }, () => {
  function analyze(args: string[], cwd: string): { status: number | null; output: string } {
    const result = spawnSync('systemd-analyze', args, { cwd, encoding: 'utf8', timeout: 60_000, env: { ...process.env, SYSTEMD_COLORS: '0', SYSTEMD_PAGER: '' } });
    if ((result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
      assert.fail(
        'systemd-analyze is not installed, so the unit cannot be checked. Install it (Debian: apt-get install -y --no-install-recommends systemd procps; ' +
          '.ci/run does this) or set M365_RELAY_SKIP_SYSTEMD=1 to skip these checks.',
      );
    }
    assert.ifError(result.error);
    return { status: result.status, output: `${result.stdout}${result.stderr}` };
  }

  /** The unit with this machine's node and the built dist/cli.js, since verify checks that the programs exist. */
  function localCopy(text = UNIT_TEXT): { dir: string; file: string; remove: () => void } {
    assert.ok(existsSync(CLI), `${CLI} is missing: build first (npm test does)`);
    const tmp = tempDir('m365-relay-unit-');
    const file = join(tmp.dir, 'm365-relay.service');
    writeFileSync(file, text.replaceAll(INSTALLED_NODE, process.execPath).replaceAll(INSTALLED_CLI, CLI));
    return { dir: tmp.dir, file, remove: tmp.remove };
  }

  const ours = (output: string) => output.split('\n').filter((l) => l.includes('m365-relay.service'));

  test('systemd-analyze verify: no warnings for the unit', (t) => {
    const copy = localCopy();
    t.after(copy.remove);
    const { status, output } = analyze(['verify', copy.file], copy.dir);
    const hint = /is not executable/.test(output) ? ' (ExecReload needs /bin/kill: apt-get install procps)' : '';
    assert.deepEqual(ours(output), [], `${output}${hint}`);
    assert.equal(status, 0, output + hint);
  });

  test('systemd-analyze verify does report a mistake (the check above is not vacuous)', (t) => {
    const copy = localCopy(UNIT_TEXT.replace('ProtectSystem=strict', 'ProtectSytem=strict'));
    t.after(copy.remove);
    const { output } = analyze(['verify', copy.file], copy.dir);
    assert.match(ours(output).join('\n'), /Unknown key.*ProtectSytem/);
  });

  test('systemd-analyze security --offline: exposure at most 2.5 ("OK")', (t) => {
    const copy = localCopy();
    t.after(copy.remove);
    const { output } = analyze(['security', '--offline=true', copy.file], copy.dir);
    const found = /Overall exposure level for m365-relay\.service: (\d+(?:\.\d+)?)/.exec(output);
    assert.ok(found?.[1], `no exposure level in the output:\n${output}`);
    const exposure = Number(found[1]);
    assert.ok(exposure <= 2.5, `exposure ${exposure} is above 2.5:\n${output}`);
  });
});

describe('systemd unit: reload and readiness against a real relay', () => {
  const suite = simulatorSuite();

  /** The unit's ExecReload= lines with this machine's paths, run one after the other as systemd does: the first failure fails the reload. */
  function execReload(configFile: string, mainPid: number): { status: number; output: string } {
    let output = '';
    for (const line of all(UNIT, S, 'ExecReload')) {
      const argv = line
        .replaceAll('${CONFIGURATION_DIRECTORY}/relay.yaml', configFile)
        .replaceAll('$MAINPID', String(mainPid))
        .split(/\s+/)
        .map((word) => (word === INSTALLED_NODE ? process.execPath : word === INSTALLED_CLI ? CLI : word));
      const result = spawnSync(argv[0] ?? '', argv.slice(1), { encoding: 'utf8', timeout: 30_000 });
      assert.ifError(result.error);
      output += `${result.stdout}${result.stderr}`;
      if (result.status !== 0) return { status: result.status ?? 1, output };
    }
    return { status: 0, output };
  }

  test('systemctl reload through the unit\'s ExecReload: a bad file fails the reload and never reaches the relay; a good one is applied', async (t) => {
    suite.sim.reset();
    const work = suite.dir();
    const raw = rawConfigFor(suite.sim, join(work, 'spool'));
    const relay = await spawnRelay(raw, work);
    t.after(() => relay.kill());
    const file = join(work, 'relay.yaml');
    const pid = relay.proc.pid ?? 0;

    writeFileSync(file, stringify({ ...raw, maxMessageSize: 'big' }));
    const bad = execReload(file, pid);
    assert.notEqual(bad.status, 0, 'the reload fails');
    assert.match(bad.output, /maxMessageSize: must be of type number/);
    // Nothing was signalled: a good reload afterwards is the first reload the relay sees.
    writeFileSync(file, stringify({ ...raw, maxMessageSize: 1_000_000 }));
    const good = execReload(file, pid);
    assert.equal(good.status, 0, good.output);
    assert.match(good.output, /the spool is in use by the running relay \(pid \d+/, 'check-config says the spool is the running relay\'s');
    await relay.waitForLog('the reload', (l) => l.event === 'reloaded');
    assert.deepEqual(relay.logs.filter((l) => l.event === 'reload-failed'), [], 'the bad file never reached the relay');
    assert.equal(await relay.stop(), 0);
  });

  test('Type=notify: READY=1 once the listener accepts, STOPPING=1 at SIGTERM (a notify socket of the test\'s own; systemd-notify is real)', async (t) => {
    suite.sim.reset();
    const work = suite.dir();
    for (const address of [join(work, 'notify.sock'), `@m365-relay-test-${process.pid}-${Date.now()}`]) {
      const socket = await startNotifySocket(address);
      t.after(() => socket.close());
      const relay = await spawnRelay(rawConfigFor(suite.sim, join(work, `spool-${socket.messages.length}-${address.length}`)), work, { env: { NOTIFY_SOCKET: address } });
      t.after(() => relay.kill());
      const ready = await waitFor('READY=1', () => socket.messages.find((m) => m.fields.READY === '1'), 15_000);
      // At READY=1 the listener takes connections: the address systemd is told is live.
      const port = Number(/127\.0\.0\.1:(\d+)/.exec(ready.fields.STATUS ?? '')?.[1]);
      assert.equal(port, relay.port, ready.fields.STATUS);
      await sendMessage(port, { to: ['ready@contoso.com'] });
      assert.deepEqual(relay.logs.filter((l) => l.event === 'notify-failed'), []);
      assert.equal(await relay.stop(), 0);
      assert.ok(socket.messages.some((m) => m.fields.STOPPING === '1'), `STOPPING=1 at shutdown: ${JSON.stringify(socket.messages)}`);
      await socket.close();
    }
  });

  test('without NOTIFY_SOCKET nothing is sent and nothing is logged about it', async (t) => {
    suite.sim.reset();
    const work = suite.dir();
    const relay = await spawnRelay(rawConfigFor(suite.sim, join(work, 'spool')), work, { env: { NOTIFY_SOCKET: '' } });
    t.after(() => relay.kill());
    assert.equal(await relay.stop(), 0);
    assert.deepEqual(relay.logs.filter((l) => /^notif/.test(String(l.event))), []);
  });
});

// ---------------------------------------------------------------- Dockerfile

interface Instruction {
  keyword: string;
  args: string;
}
interface Stage {
  base: string;
  name: string;
  instructions: Instruction[];
}

/** Instructions with continuation lines joined and comments dropped, grouped into FROM stages. */
function parseDockerfile(text: string): Stage[] {
  const instructions: Instruction[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#') || (line === '' && !pending)) continue; // comments (and parser directives)
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1).trim()} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    if (!full) continue;
    const keyword = full.split(/\s+/, 1)[0] ?? '';
    instructions.push({ keyword: keyword.toUpperCase(), args: full.slice(keyword.length).trim() });
  }
  assert.equal(pending, '', 'the Dockerfile ends in a continuation line');
  const stages: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const from = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args);
      assert.ok(from?.[1], `FROM ${instruction.args}`);
      stages.push({ base: from[1], name: from[2] ?? String(stages.length), instructions: [] });
    } else {
      assert.ok(stages.length > 0 || instruction.keyword === 'ARG', `${instruction.keyword} before the first FROM`);
      stages[stages.length - 1]?.instructions.push(instruction);
    }
  }
  return stages;
}

/** The JSON (exec) form of CMD, ENTRYPOINT, VOLUME...; null for the shell form. */
function execForm(args: string): string[] | null {
  if (!args.startsWith('[')) return null;
  const parsed: unknown = JSON.parse(args);
  assert.ok(Array.isArray(parsed) && parsed.every((a) => typeof a === 'string'), `not a JSON string array: ${args}`);
  return parsed as string[];
}

/** COPY/ADD: its --flags, sources and destination. */
function copyParts(args: string): { flags: Record<string, string>; sources: string[]; dest: string } {
  const words = args.split(/\s+/);
  const flags: Record<string, string> = {};
  while (words[0]?.startsWith('--')) {
    const [name = '', value = ''] = (words.shift() ?? '').slice(2).split('=');
    flags[name] = value;
  }
  const paths = execForm(words.join(' ')) ?? words;
  return { flags, sources: paths.slice(0, -1), dest: paths[paths.length - 1] ?? '' };
}

/** ENV K=V K2="V 2" ... */
function envPairs(args: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [, key, quoted, plain] of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=(?:"([^"]*)"|(\S*))/g)) env[key ?? ''] = quoted ?? plain ?? '';
  return env;
}

const DOCKERFILE = read('Dockerfile');
const STAGES = parseDockerfile(DOCKERFILE);
const FINAL = STAGES[STAGES.length - 1];
const finalOf = (keyword: string) => (FINAL?.instructions ?? []).filter((i) => i.keyword === keyword);
const lastOf = (keyword: string) => {
  const found = finalOf(keyword);
  assert.ok(found.length > 0, `the final stage has no ${keyword}`);
  return found[found.length - 1] as Instruction;
};

/** The HEALTHCHECK's options and its `node -e` script. */
function healthCheck(): { options: Record<string, string>; script: string } {
  const found = /^((?:--\S+\s+)*)CMD\s+(.+)$/s.exec(lastOf('HEALTHCHECK').args);
  assert.ok(found, 'HEALTHCHECK must be HEALTHCHECK [options] CMD [...]');
  const options = Object.fromEntries((found[1] ?? '').trim().split(/\s+/).filter(Boolean).map((o) => o.slice(2).split('=') as [string, string]));
  const command = execForm(found[2] ?? '');
  assert.ok(command, 'the HEALTHCHECK command must use the exec (JSON) form');
  assert.equal(command[0], 'node', 'the image has node, not curl or wget');
  assert.equal(command[1], '-e');
  assert.equal(command.length, 3);
  return { options, script: command[2] ?? '' };
}

function imageEnv(): Record<string, string> {
  return Object.assign({}, ...finalOf('ENV').map((i) => envPairs(i.args))) as Record<string, string>;
}

interface ExampleConfig {
  listen: Array<{ port: number; host?: string }>;
  spool: { dir: string };
  http?: { host: string; port: number };
  microsoft365: Record<string, unknown>;
  [key: string]: unknown;
}
const exampleConfig = () => parse(read('config/relay.example.yaml')) as ExampleConfig;

/**
 * The relay's runtime tuning (environment and Node.js flags), from dist/cli.js's
 * `#!/usr/bin/env -S VAR=value node --flag` line: the source the bench also measures with.
 */
const SHIPPED_RUNTIME = (() => {
  const words = /^#!\/usr\/bin\/env -S (.+)$/.exec(read('src/cli.ts').split('\n', 1)[0] ?? '')?.[1]?.split(/\s+/) ?? [];
  const nodeAt = words.indexOf('node');
  assert.ok(nodeAt >= 0, "src/cli.ts's first line runs node through env -S");
  return { env: Object.fromEntries(words.slice(0, nodeAt).map((w) => w.split('=') as [string, string])), nodeFlags: words.slice(nodeAt + 1) };
})();

describe('runtime tuning: the executable, the unit and the image run the relay alike', () => {
  test("the systemd unit and the Docker image use the environment and Node.js flags of the executable's first line", () => {
    assert.ok(SHIPPED_RUNTIME.nodeFlags.length > 0 && Object.keys(SHIPPED_RUNTIME.env).length > 0);
    const { exec } = unitLayout();
    assert.deepEqual(exec.slice(1, 1 + SHIPPED_RUNTIME.nodeFlags.length), SHIPPED_RUNTIME.nodeFlags, 'ExecStart passes the same flags to node');
    const unitEnv = Object.assign({}, ...all(UNIT, S, 'Environment').map((e) => envPairs(e))) as Record<string, string>;
    const image = imageEnv();
    for (const [key, value] of Object.entries(SHIPPED_RUNTIME.env)) {
      assert.equal(unitEnv[key], value, `the unit sets ${key}=${value}`);
      assert.equal(image[key], value, `the image sets ${key}=${value}`);
    }
    // Accepted by this node: a typo in a flag would stop every start.
    const run = spawnSync(process.execPath, [...SHIPPED_RUNTIME.nodeFlags, '-e', '0'], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
  });
});

describe('Dockerfile', () => {
  test('multi-stage: named stages; the final one has production dependencies only and no sources', () => {
    assert.ok(STAGES.length >= 2, 'at least a build and a runtime stage');
    assert.ok(FINAL);
    assert.deepEqual(STAGES.map((s) => s.name), ['build', 'prod-deps', 'runtime']);
    // The current LTS in the image; package.json engines still admits Node 20 (distributions ship it).
    for (const stage of STAGES) assert.match(stage.base, /^node:24(\.|-|$)/, 'the image runs Node 24 (LTS)');
    assert.equal((JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node, '>=20');
    const runs = (stage: Stage) => stage.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
    const build = STAGES.find((s) => s.name === 'build');
    assert.ok(build && runs(build).some((r) => /\bnpm run build\b/.test(r)));

    // node_modules comes from a stage that installed with --omit=dev (and nothing else installs there).
    const copies = finalOf('COPY').map((i) => copyParts(i.args));
    const modules = copies.find((c) => c.sources.some((s) => /(^|\/)node_modules\/?$/.test(s)));
    assert.ok(modules?.flags.from, 'the final stage copies node_modules from another stage');
    const depsStage = STAGES.find((s) => s.name === modules.flags.from);
    assert.ok(depsStage, `no stage named ${modules.flags.from}`);
    const installs = runs(depsStage).filter((r) => /\bnpm (ci|install|i)\b/.test(r));
    assert.ok(installs.length > 0 && installs.every((r) => /--omit=dev\b/.test(r)), `stage ${depsStage.name} must install with --omit=dev: ${installs.join('; ')}`);
    assert.deepEqual(runs(FINAL).filter((r) => /\bnpm\b/.test(r)), [], 'the final stage runs no npm');

    // From the build context the final stage takes only package.json and the example config.
    const fromContext = copies.filter((c) => !c.flags.from).flatMap((c) => c.sources);
    assert.deepEqual(fromContext.filter((s) => /^(\.\/)?(src|test|bench|scripts|node_modules)(\/|$)|^\.\/?$/.test(s)), []);
    assert.ok(fromContext.includes('package.json'), 'dist/ is ESM: it needs package.json ("type": "module")');
    assert.ok(fromContext.includes('config/relay.example.yaml'));
    assert.deepEqual(finalOf('ADD'), []);
    const dist = copies.find((c) => c.flags.from === 'build');
    assert.deepEqual(dist && { sources: dist.sources, dest: posix.resolve(lastOf('WORKDIR').args, dist.dest) }, { sources: ['/app/dist'], dest: '/app/dist' });
  });

  test('runs as a dedicated non-root user, set before ENTRYPOINT and CMD', () => {
    const instructions = FINAL?.instructions ?? [];
    const userAt = instructions.map((i) => i.keyword).lastIndexOf('USER');
    assert.ok(userAt >= 0, 'USER is missing from the final stage');
    for (const keyword of ['ENTRYPOINT', 'CMD']) {
      const at = instructions.findIndex((i) => i.keyword === keyword);
      assert.ok(at > userAt, `USER must come before ${keyword}`);
    }
    const user = instructions[userAt]?.args ?? '';
    assert.doesNotMatch(user, /^(root|0)(:|$)/);
    const created = finalOf('RUN').some((r) => new RegExp(`useradd\\b.*--uid (?!0\\b)\\d+.*\\s${user}(\\s|$)`).test(r.args));
    assert.ok(created, `the final stage creates user ${user} with a fixed non-zero uid`);
  });

  test('spool on a volume, port 2525, config path: the same as config/relay.example.yaml', () => {
    const example = exampleConfig();
    const volumes = finalOf('VOLUME').flatMap((v) => execForm(v.args) ?? v.args.split(/\s+/));
    assert.ok(
      volumes.some((v) => example.spool.dir === v || example.spool.dir.startsWith(`${v}/`)),
      `no VOLUME (${volumes.join(', ')}) holds the example's spool.dir ${example.spool.dir}`,
    );
    assert.deepEqual(finalOf('EXPOSE').map((e) => e.args), ['2525']);
    assert.deepEqual(example.listen.map((l) => l.port), [2525]);
    assert.deepEqual(execForm(lastOf('ENTRYPOINT').args), ['node', ...SHIPPED_RUNTIME.nodeFlags, 'dist/cli.js']);
    assert.equal(lastOf('WORKDIR').args, '/app');
    assert.deepEqual(execForm(lastOf('CMD').args), ['run', '--config', unitLayout().config]);
    assert.equal(lastOf('STOPSIGNAL').args, 'SIGTERM');
  });

  test("HEALTHCHECK asks the relay's /healthz on the example's http port, and gives up before docker does", () => {
    const { options, script } = healthCheck();
    const example = exampleConfig();
    assert.ok(example.http, 'config/relay.example.yaml must enable the http section the HEALTHCHECK needs');
    assert.equal(example.http.host, '127.0.0.1');
    const url = imageEnv().M365_RELAY_HEALTH_URL;
    assert.equal(url, `http://127.0.0.1:${example.http.port}/healthz`);
    assert.ok(script.includes(`'${url}'`), 'the script falls back to the same URL as the image ENV');
    const inner = /timeout:(\d+)/.exec(script);
    assert.ok(inner?.[1] && options.timeout, 'both the script and HEALTHCHECK have a timeout');
    assert.ok(Number(inner[1]) < timeSpanMs(options.timeout), 'the script times out (exit 1) before docker kills it');
  });

  test('.dockerignore keeps node_modules, .git, build output, tests and secrets out, and nothing the build needs', () => {
    const patterns = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    const toRegex = (p: string) =>
      new RegExp(`^${p.replace(/^\//, '').replace(/[.+^${}()|[\]]/g, '\\$&').replace(/\*\*\//g, '\u0000').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]').replace(/\u0000/g, '(.*/)?')}(/.*)?$`);
    const ignored = (path: string) => {
      let out = false;
      for (const p of patterns) if (toRegex(p.replace(/^!/, '')).test(path)) out = !p.startsWith('!');
      return out;
    };
    for (const path of ['node_modules', 'node_modules/yaml/package.json', '.git', 'dist/cli.js', 'test/packaging.test.ts', 'relay.log', '.tmp/x', 'm365-relay.env', 'config/app.key']) {
      assert.ok(ignored(path), `.dockerignore should exclude ${path}`);
    }
    const needed = STAGES.flatMap((s) => s.instructions).filter((i) => i.keyword === 'COPY').map((i) => copyParts(i.args)).filter((c) => !c.flags.from).flatMap((c) => c.sources);
    for (const path of [...needed, 'src/cli.ts']) assert.ok(!ignored(path), `.dockerignore excludes ${path}, which the build copies`);
  });
});

// ---------------------------------------------------------------- the HEALTHCHECK against a real relay

/** Runs the Dockerfile's HEALTHCHECK script with this node; its exit code (bounded). */
function runHealthCheck(url: string): Promise<number | null> {
  const child = spawn(process.execPath, ['-e', healthCheck().script], { stdio: 'ignore', env: { ...process.env, M365_RELAY_HEALTH_URL: url } });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('the health check script did not exit within 15 s'));
    }, 15_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

describe('HEALTHCHECK and credentials against a running relay', () => {
  const suite = simulatorSuite();

  test('the example configuration, secret from a systemd credential: healthy, delivers, stops cleanly, then unhealthy', async (t) => {
    const sim = suite.sim;
    sim.reset();
    const work = suite.dir();
    // What LoadCredential=client-secret:... gives the service: $CREDENTIALS_DIRECTORY/client-secret.
    const credentials = join(work, 'credentials');
    mkdirSync(credentials, { mode: 0o700 });
    writeFileSync(join(credentials, 'client-secret'), 'sim-secret\n', { mode: 0o600 });

    const example = exampleConfig();
    const raw = {
      ...example,
      listen: [{ port: 0, host: '127.0.0.1' }],
      spool: { ...example.spool, dir: join(work, 'spool') },
      http: { ...example.http, port: 0 },
      microsoft365: {
        ...example.microsoft365,
        clientSecret: '${credential:client-secret}',
        tenantId: sim.tenantId,
        authorityHost: sim.authorityHost,
        smtpHost: sim.smtpHost,
        smtpPort: sim.smtpPort,
        smtpTimeout: '5s',
        tokenTimeout: '5s',
      },
    };
    const relay = await spawnRelay(raw, work, { env: { CREDENTIALS_DIRECTORY: credentials } });
    t.after(() => relay.kill());
    const httpPort = Number((await relay.waitForLog('the http endpoint', (l) => l.event === 'http-listening')).port);

    assert.equal(await runHealthCheck(`http://127.0.0.1:${httpPort}/healthz`), 0, 'healthy relay: exit 0');
    assert.equal(await runHealthCheck(`http://127.0.0.1:${httpPort}/no-such-path`), 1, 'a non-200 answer: exit 1');

    await sendMessage(relay.port, { from: 'scanner@printer.local' });
    const [message] = await sim.waitForMessages(1);
    assert.equal(message?.mailbox, 'relay@contoso.com', 'the token came from the credential file');
    assert.doesNotMatch(`${JSON.stringify(relay.logs)}${relay.stderr()}`, /sim-secret/, 'the secret never reaches the log');

    assert.equal(await relay.stop(), 0, 'SIGTERM: a graceful stop exits 0');
    assert.equal(await runHealthCheck(`http://127.0.0.1:${httpPort}/healthz`), 1, 'nothing listening: exit 1');
  });

  test('an endpoint that accepts but never answers: the script exits 1 on its own timeout', async (t) => {
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    t.after(() => {
      for (const socket of sockets) socket.destroy();
      silent.close();
    });
    const address = silent.address();
    assert.ok(address && typeof address === 'object');
    assert.equal(await runHealthCheck(`http://127.0.0.1:${address.port}/healthz`), 1);
  });
});

// ---------------------------------------------------------------- README and npm package

/** A README section: from its heading to the next heading of the same or a higher level (code blocks skipped). */
function readmeSection(title: string): string {
  const lines = read('README.md').split('\n');
  const start = lines.findIndex((l) => l.trim() === title);
  assert.ok(start >= 0, `README has no "${title}" heading`);
  const level = title.indexOf(' ');
  let fenced = false;
  let end = lines.length;
  for (let i = start + 1; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (line.startsWith('```')) fenced = !fenced;
    const heading = !fenced && /^(#+) /.exec(line);
    if (heading && (heading[1]?.length ?? 0) <= level) {
      end = i;
      break;
    }
  }
  return lines.slice(start + 1, end).join('\n');
}

describe('README install sections match the unit and the Dockerfile', () => {
  test('Install with Docker: port mapping, volume, config, env file, uid, stop timeout', () => {
    const docker = readmeSection('### Install with Docker');
    const volume = finalOf('VOLUME').flatMap((v) => execForm(v.args) ?? [])[0] ?? '';
    const { envFile, configDir, config } = unitLayout();
    assert.match(docker, /-p 25:2525\b/);
    assert.ok(docker.includes(`:${volume}`), `the volume ${volume} is mounted`);
    assert.ok(docker.includes(`-v ${configDir}:${configDir}:ro`));
    assert.ok(docker.includes(`--env-file ${envFile}`));
    assert.ok(docker.includes(config));
    assert.ok(docker.includes(exampleConfig().spool.dir));
    assert.ok(docker.includes('docker build -t m365-relay .'));
    assert.match(docker, /check-config/);
    assert.match(docker, /\$\{file:\/run\/secrets\//);
    const uid = /--uid (\d+)/.exec(finalOf('RUN').map((r) => r.args).join(' '))?.[1];
    assert.ok(uid && docker.includes(uid), `the image's uid ${uid} is given for bind mounts`);
    const stop = /--stop-timeout (\d+)/.exec(docker)?.[1];
    assert.ok(stop && Number(stop) * 1000 >= daemonStopGraceMs() + 10_000, 'docker run gives the relay time to stop gracefully');
    assert.ok(DOCKERFILE.includes(`--stop-timeout ${stop}`), 'the Dockerfile comment agrees');
    assert.ok(docker.includes(`M365_RELAY_HEALTH_URL`), 'how to point the HEALTHCHECK elsewhere');
  });

  test('Install with systemd: user, paths, secrets, enable, check-config, journalctl', () => {
    const systemd = readmeSection('### Install with systemd');
    const { envFile, config, user, stateDir } = unitLayout();
    assert.match(systemd, new RegExp(`useradd --system [^\\n]*\\b${user}\\n`));
    assert.ok(systemd.includes(`install -m 0600 /dev/null ${envFile}`), 'the env file is created root-only');
    assert.ok(systemd.includes(`-g ${one(UNIT, S, 'Group')} config/relay.example.yaml ${config}`), 'the config is given to the service group');
    assert.ok(systemd.includes(INSTALLED_CLI.replace('/dist/cli.js', '')));
    assert.ok(systemd.includes(`${INSTALLED_NODE} ${INSTALLED_CLI}`) || systemd.includes(`node ${INSTALLED_CLI}`));
    assert.ok(systemd.includes('systemd/m365-relay.service /etc/systemd/system/'));
    assert.match(systemd, /systemctl enable --now m365-relay/);
    assert.match(systemd, /check-config --config \/etc\/m365-relay\/relay\.yaml/);
    assert.match(systemd, /journalctl -u m365-relay/);
    assert.match(systemd, /LoadCredential=client-secret:\/etc\/m365-relay\/client-secret/);
    assert.match(systemd, /\$\{credential:client-secret\}/);
    assert.ok(systemd.includes(`${stateDir}/spool`));
    assert.ok(systemd.includes(`TimeoutStopSec=${one(UNIT, S, 'TimeoutStopSec')}`));
    assert.match(systemd, /systemctl reload m365-relay/);
  });

  test('Install with npm: the package has dist/ and no sources or tests', () => {
    const npm = readmeSection('### Install with npm');
    assert.match(npm, /npm pack/);
    assert.match(npm, /npm install -g \.\/m365-relay-[\d.]+\.tgz/);
    assert.match(npm, /m365-relay check-config --config/);
    const packed = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    assert.equal(packed.status, 0, packed.stderr);
    const files = (JSON.parse(packed.stdout) as Array<{ files: Array<{ path: string }> }>)[0]?.files.map((f) => f.path) ?? [];
    for (const needed of ['dist/cli.js', 'package.json', 'config/relay.example.yaml', 'systemd/m365-relay.service', 'README.md']) {
      assert.ok(files.includes(needed), `the npm package lacks ${needed}`);
    }
    assert.deepEqual(files.filter((f) => /^(src|test|bench|scripts|node_modules)\//.test(f)), []);
  });
});
