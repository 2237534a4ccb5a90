#!/usr/bin/env node
// npm run bench: measures the built relay against the built-in Microsoft 365 simulator on loopback.
// Prints a table and writes bench/results/latest.json. Not a test: no assertion fails on speed.
//   node scripts/bench.mjs            full run (each figure the median of --runs, default 3)
//   node scripts/bench.mjs --quick    tiny sizes, one run (the smoke run inside npm test)
//   node scripts/bench.mjs --only accept --profile DIR   also write the relay's CPU profiles (node --cpu-prof) to DIR
//   node scripts/bench.mjs --only versus-postfix   the relay against a private Postfix, both fed by smtp-source
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { ensurePostfix, freePort, smtpSource, startPrivatePostfix } from './benchPostfix.mjs';
import { makeAttachmentMessage, makeMessage, SmtpSession } from './smtpClient.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values: args } = parseArgs({
  options: { quick: { type: 'boolean' }, runs: { type: 'string' }, out: { type: 'string' }, only: { type: 'string' }, profile: { type: 'string' } },
});
const quick = Boolean(args.quick);
const runs = Number(args.runs ?? (quick ? 1 : 3));
const outFile = args.out ?? join(root, 'bench', 'results', quick ? 'quick.json' : 'latest.json');
const only = args.only ? new Set(args.only.split(',')) : null;

const SIZES = quick
  ? { messages: 40, clients: 4, perConnection: 5, messageSize: 2048, idleConnections: 20, bigMessages: 2, bigSize: 1 << 20, spooled: 50 }
  : { messages: 2000, clients: 8, perConnection: 50, messageSize: 2048, idleConnections: 500, bigMessages: 4, bigSize: 30 * 1024 * 1024, spooled: 10_000 };
/** Issue 10's outage: 30 messages sent while Exchange refuses connections for this long. */
const OUTAGE = quick ? { messages: 5, seconds: 3 } : { messages: 30, seconds: 30 };

ensureBuilt();
const { startSimulator } = await import(join(root, 'dist/simulator/index.js'));
const shipped = shippedRuntime();

const work = mkdtempSync(join(tmpdir(), 'm365-relay-bench-'));
const sim = await startSimulator({ rateLimit: null, maxConnectionsPerMailbox: 0 });
const caFile = join(work, 'ca.pem');
writeFileSync(caFile, sim.caPem);

const results = {};
try {
  for (const [name, fn] of [
    ['versus-postfix', benchVersusPostfix],
    ['accept', benchAccept],
    ['memory', benchMemory],
    ['restart', benchRestart],
    ['recovery', benchRecovery],
  ]) {
    if (only && !only.has(name)) continue;
    const samples = [];
    // versus-postfix alternates its own rounds (the ratio must come from one run); the rest repeat.
    for (let i = 0; i < (name === 'versus-postfix' ? 1 : runs); i++) samples.push(await fn(i));
    if (samples[0] === null) continue; // skipped (said why)
    for (const key of Object.keys(samples[0])) {
      const values = samples[0][key].runs ?? samples.map((s) => s[key].value);
      results[key] = { value: samples[0][key].runs ? samples[0][key].value : median(values), unit: samples[0][key].unit, runs: values, target: samples[0][key].target ?? null };
    }
  }
} finally {
  await sim.close();
  rmSync(work, { recursive: true, force: true });
}

const report = {
  date: new Date().toISOString(),
  quick,
  runs,
  machine: { cores: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version, platform: `${process.platform} ${process.arch}` },
  relayRuntime: shipped,
  sizes: SIZES,
  results,
};
mkdirSync(join(root, 'bench', 'results'), { recursive: true });
writeFileSync(outFile, `${JSON.stringify(report, null, 2)}\n`);
printTable(report);
process.exit(0);

// ---------------------------------------------------------------------------------------------

function ensureBuilt() {
  const cli = join(root, 'dist', 'cli.js');
  const newest = (dir) => readdirSync(dir, { withFileTypes: true }).reduce((m, e) => Math.max(m, e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs), 0);
  if (existsSync(cli) && statSync(cli).mtimeMs >= newest(join(root, 'src'))) return;
  const built = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' });
  if (built.status !== 0) process.exit(1);
}

function relayConfig(spoolDir, { smtpPort = sim.smtpPort, transport = 'smtp' } = {}) {
  return `listen:
  - port: 0
    host: 127.0.0.1
allowNetworks: [127.0.0.1/32]
maxMessageSize: ${Math.max(36_700_160, SIZES.bigSize + 1_000_000)}
limits:
  maxConnections: 2000
  maxConnectionsPerClient: 2000
spool:
  dir: ${spoolDir}
  minFreeSpace: 0
microsoft365:
  tenantId: ${sim.tenantId}
  clientId: 11111111-2222-3333-4444-555555555555
  clientSecret: sim-secret
  authorityHost: ${sim.authorityHost}
  smtpHost: ${sim.smtpHost}
  smtpPort: ${smtpPort}
  graphHost: ${sim.graphHost}
  transport: ${transport}
  mailbox: relay@contoso.com
  sendAs: ["@contoso.com"]
  rateLimit: { messages: 1000000, perSeconds: 1 }
  maxConnections: 8
log:
  level: info
${process.env.BENCH_RELAY_CONFIG ?? ''}`;
}

/**
 * The relay is measured as it ships: with the environment and Node.js flags of dist/cli.js's
 * `#!/usr/bin/env -S VAR=value node --flag` line (the systemd unit and the Docker image use the same,
 * test/packaging.test.ts keeps them equal). BENCH_PLAIN_NODE=1 measures a plain `node dist/cli.js`.
 */
function shippedRuntime() {
  const line = readFileSync(join(root, 'dist', 'cli.js'), 'utf8').split('\n', 1)[0];
  const words = /^#!\S*env -S (.*)$/.exec(line)?.[1].trim().split(/\s+/) ?? [];
  const nodeAt = words.indexOf('node');
  if (process.env.BENCH_PLAIN_NODE || nodeAt < 0) return { env: {}, nodeFlags: [] };
  return { env: Object.fromEntries(words.slice(0, nodeAt).map((w) => w.split('='))), nodeFlags: words.slice(nodeAt + 1) };
}

/** Starts `node dist/cli.js run` (as shipped: see shippedRuntime) and resolves once it listens. */
async function startRelay(spoolDir, configOptions = {}) {
  const file = join(work, `relay-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, relayConfig(spoolDir, configOptions));
  const t0 = performance.now();
  const profiling = args.profile ? ['--cpu-prof', '--cpu-prof-dir', args.profile] : [];
  const proc = spawn(process.execPath, [...shipped.nodeFlags, ...profiling, join(root, 'dist/cli.js'), 'run', '--config', file], {
    env: { ...process.env, ...shipped.env, NODE_EXTRA_CA_CERTS: caFile },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const relay = { proc, t0, port: 0, firstDeliveredAt: null, delivered: 0, listeningAt: null, tokenAt: null };
  createInterface({ input: proc.stdout }).on('line', (line) => {
    if (line.includes('"event":"delivered"')) {
      relay.delivered++;
      relay.firstDeliveredAt ??= performance.now();
    } else if (line.includes('"event":"token"')) {
      relay.tokenAt ??= performance.now();
    } else if (line.includes('"event":"listening"')) {
      relay.port = JSON.parse(line).addresses[0].port;
      relay.listeningAt = performance.now();
    }
  });
  await until('the relay to listen', () => relay.port, 30_000, proc);
  return relay;
}

async function stopRelay(relay) {
  if (relay.proc.exitCode !== null) return;
  relay.proc.kill('SIGTERM');
  const timer = setTimeout(() => relay.proc.kill('SIGKILL'), 30_000);
  await new Promise((r) => relay.proc.once('exit', r));
  clearTimeout(timer);
}

/** The process and its descendants (the relay's listener workers, if any), from /proc. */
function processTree(pid) {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    let tasks = [];
    try {
      tasks = readdirSync(`/proc/${out[i]}/task`);
    } catch {
      continue; // exited
    }
    for (const tid of tasks) {
      try {
        out.push(...readFileSync(`/proc/${out[i]}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
      } catch {
        /* exited */
      }
    }
  }
  return out;
}

function sumOverTree(pid, read) {
  let total = 0;
  for (const p of processTree(pid)) {
    try {
      total += read(p);
    } catch {
      /* exited */
    }
  }
  return total;
}

/** CPU time (user + system) the relay's processes have used so far, in ms: robust to other load on the machine. */
function cpuMs(pid) {
  return sumOverTree(pid, (p) => {
    const fields = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, in USER_HZ (100)
  });
}

/** RSS of the relay's processes together. */
function rssBytes(pid) {
  return sumOverTree(pid, (p) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0) * 1024);
}

/** Samples the process's RSS while `fn` runs; returns the peak. */
async function peakRss(pid, fn) {
  let peak = rssBytes(pid);
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rssBytes(pid));
    } catch {
      /* exited */
    }
  }, 10);
  try {
    await fn();
  } finally {
    clearInterval(timer);
  }
  return Math.max(peak, rssBytes(pid));
}

/**
 * The relay against a private Postfix on the same machine in the same run, both fed by Postfix's
 * smtp-source (one message per connection). Exchange is unavailable to the relay (its SMTP port is
 * closed) and Postfix's queue is held (defer_transports = smtp): both measure SMTP in -> durable
 * queue. After a warm-up of each, rounds alternate; the ratio is of the medians. The latency (end of
 * DATA to 250) comes from one more round per side with the bench's own client at the same load.
 */
async function benchVersusPostfix() {
  // The smoke run inside npm test stays the same on every machine: with or without a Postfix.
  if (quick && !only?.has('versus-postfix')) {
    console.log('versus-postfix skipped in --quick runs (run: npm run bench -- --only versus-postfix)');
    return null;
  }
  const skip = ensurePostfix({ install: !quick });
  if (skip) {
    console.log(`versus-postfix skipped: ${skip}`);
    return null;
  }
  const total = quick ? 40 : SIZES.messages;
  const load = { messages: total, sessions: SIZES.clients, size: SIZES.messageSize };
  const rounds = quick ? 1 : Math.max(2, runs);
  const closedPort = await freePort(); // "Exchange unavailable": nothing listens there
  const postfix = await startPrivatePostfix();
  const rates = { postfix: [], relay: [] };
  const cpu = [];
  const latency = {};
  let n = 0;
  const relayRound = async (measure) => {
    const relay = await startRelay(join(work, `spool-versus-${n++}`), { smtpPort: closedPort });
    try {
      const cpuBefore = cpuMs(relay.proc.pid);
      const result = await measure(relay.port);
      cpu.push((cpuMs(relay.proc.pid) - cpuBefore) / total);
      return result;
    } finally {
      await stopRelay(relay);
    }
  };
  const postfixRound = async (measure) => {
    try {
      return await measure(postfix.port);
    } finally {
      postfix.clearQueue();
    }
  };
  try {
    const warmUp = { ...load, messages: Math.min(200, total) };
    await postfixRound((port) => smtpSource(port, warmUp));
    await relayRound((port) => smtpSource(port, warmUp));
    cpu.length = 0;
    for (let i = 0; i < rounds; i++) {
      rates.postfix.push(round(total / (await postfixRound((port) => smtpSource(port, load)))));
      rates.relay.push(round(total / (await relayRound((port) => smtpSource(port, load)))));
      console.log(`versus-postfix round ${i + 1}/${rounds}: postfix ${rates.postfix.at(-1)} msg/s, relay ${rates.relay.at(-1)} msg/s`);
    }
    latency.postfix = await postfixRound((port) => ownClientLatencies(port, total));
    latency.relay = await relayRound((port) => ownClientLatencies(port, total));
  } finally {
    postfix.stop();
  }
  const postfixRate = median(rates.postfix);
  const relayRate = median(rates.relay);
  const single = (value, unit, target) => ({ value, unit, target, runs: [value] });
  return {
    versusPostfix_postfixRate: { value: postfixRate, unit: 'msg/s', runs: rates.postfix },
    versusPostfix_relayRate: { value: relayRate, unit: 'msg/s', runs: rates.relay },
    versusPostfix_ratio: single(round(relayRate / postfixRate), 'x', '>= 1.25'),
    versusPostfix_relayP99: single(round(pct(latency.relay, 0.99)), 'ms', '< 20'),
    versusPostfix_postfixP99: single(round(pct(latency.postfix, 0.99)), 'ms'),
    versusPostfix_relayCpuPerMessage: { value: round(median(cpu)), unit: 'ms', runs: cpu.map(round) },
  };
}

/** `total` messages over SIZES.clients sessions, one per connection, with the bench's client; sorted latencies. */
async function ownClientLatencies(port, total) {
  const latencies = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: SIZES.clients }, async () => {
      while (next < total) {
        const i = next++;
        const session = await SmtpSession.connect(port);
        await session.command('EHLO bench.local', 250);
        const { latencyMs } = await session.send('bench@contoso.com', ['sink@contoso.com'], makeMessage(SIZES.messageSize, 'bench@contoso.com', 'sink@contoso.com', `v${i}`));
        latencies.push(latencyMs);
        await session.quit();
      }
    }),
  );
  return latencies.sort((a, b) => a - b);
}

async function benchAccept(run) {
  const out = {};
  for (const perConnection of [1, SIZES.perConnection]) {
    sim.reset();
    const spoolDir = join(work, `spool-accept-${run}-${perConnection}`);
    const relay = await startRelay(spoolDir);
    await until('the first access token', () => relay.tokenAt, 30_000, relay.proc);
    const latencies = [];
    const total = SIZES.messages;
    const cpuBefore = cpuMs(relay.proc.pid);
    let next = 0;
    const t0 = performance.now();
    let lastAck = 0;
    await Promise.all(
      Array.from({ length: SIZES.clients }, async () => {
        while (next < total) {
          const batch = Math.min(perConnection, total - next);
          const start = next;
          next += batch;
          const session = await SmtpSession.connect(relay.port);
          await session.command('EHLO bench.local', 250);
          for (let i = 0; i < batch; i++) {
            const { latencyMs } = await session.send('bench@contoso.com', ['sink@contoso.com'], makeMessage(SIZES.messageSize, 'bench@contoso.com', 'sink@contoso.com', `m${start + i}`));
            latencies.push(latencyMs);
          }
          lastAck = performance.now();
          await session.quit();
        }
      }),
    );
    const acceptSeconds = (lastAck - t0) / 1000;
    await sim.waitForMessages(total, 120_000);
    const lastDelivered = performance.now();
    const cpuPerMessage = (cpuMs(relay.proc.pid) - cpuBefore) / total;
    await stopRelay(relay);
    latencies.sort((a, b) => a - b);
    const suffix = perConnection === 1 ? '1PerConnection' : `${perConnection}PerConnection`;
    out[`acceptThroughput_${suffix}`] = { value: round(total / acceptSeconds), unit: 'msg/s' };
    out[`acceptLatencyP50_${suffix}`] = { value: round(pct(latencies, 0.5)), unit: 'ms' };
    out[`acceptLatencyP99_${suffix}`] = { value: round(pct(latencies, 0.99)), unit: 'ms' };
    out[`acceptLatencyMax_${suffix}`] = { value: round(latencies[latencies.length - 1]), unit: 'ms' };
    out[`relayCpuPerMessage_${suffix}`] = { value: round(cpuPerMessage), unit: 'ms', target: perConnection === 1 ? '<= 2' : null };
    if (perConnection === 1) {
      out.endToEndDrainAfterLastAck = { value: round((lastDelivered - lastAck) / 1000), unit: 's', target: '< 2' };
      out.endToEndDeliveredRate = { value: round(total / ((lastDelivered - t0) / 1000)), unit: 'msg/s' };
    }
  }
  return out;
}

async function benchMemory(run) {
  sim.reset();
  const relay = await startRelay(join(work, `spool-memory-${run}`));
  const pid = relay.proc.pid;
  await sleep(quick ? 300 : 2000);
  const idle = rssBytes(pid);

  const sockets = [];
  const idlePeak = await peakRss(pid, async () => {
    for (let i = 0; i < SIZES.idleConnections; i += 50) {
      const batch = await Promise.all(Array.from({ length: Math.min(50, SIZES.idleConnections - i) }, () => SmtpSession.connect(relay.port)));
      sockets.push(...batch);
    }
    await sleep(quick ? 200 : 1000);
  });
  for (const s of sockets) s.socket.destroy();

  const bigPeak = await peakRss(pid, async () => {
    const big = makeMessage(SIZES.bigSize, 'bench@contoso.com', 'sink@contoso.com', 'big');
    await Promise.all(
      Array.from({ length: SIZES.bigMessages }, async () => {
        const session = await SmtpSession.connect(relay.port);
        await session.command('EHLO bench.local', 250);
        await session.send('bench@contoso.com', ['sink@contoso.com'], big);
        await session.quit();
      }),
    );
    await sim.waitForMessages(SIZES.bigMessages, 120_000);
  });
  sim.reset();
  await stopRelay(relay);
  const oneSmtp = await peakForOneBigMessage(run, 'smtp');
  const oneGraph = await peakForOneBigMessage(run, 'graph');
  const mb = (b) => round(b / 1024 / 1024);
  return {
    rssIdle: { value: mb(idle), unit: 'MiB', target: '<= 60' },
    rssPeak_idleConnections: { value: mb(idlePeak), unit: 'MiB', target: '<= 100' },
    rssPeak_oneBigMessageSmtp: { value: mb(oneSmtp), unit: 'MiB', target: '<= 120' },
    rssPeak_oneBigMessageGraph: { value: mb(oneGraph), unit: 'MiB', target: '<= 120' },
    rssPeak_bigMessagesInFlight: { value: mb(bigPeak), unit: 'MiB' },
  };
}

/**
 * A fresh relay receives one message of SIZES.bigSize (a base64 attachment, as a scanner sends) and
 * relays it over `transport`; returns its peak RSS over its whole life (VmHWM, summed over its
 * processes), so no short peak is missed between samples.
 */
async function peakForOneBigMessage(run, transport) {
  sim.reset();
  const relay = await startRelay(join(work, `spool-one-${transport}-${run}`), { transport });
  await sleep(quick ? 300 : 1000);
  const session = await SmtpSession.connect(relay.port);
  await session.command('EHLO bench.local', 250);
  await session.send('bench@contoso.com', ['sink@contoso.com'], makeAttachmentMessage(SIZES.bigSize, 'bench@contoso.com', 'sink@contoso.com', `one-${transport}`));
  await session.quit();
  await sim.waitForMessages(1, 120_000);
  const peak = sumOverTree(relay.proc.pid, (p) => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0) * 1024);
  await stopRelay(relay);
  sim.reset();
  return peak;
}

async function benchRestart(run) {
  sim.reset();
  const spoolDir = join(work, `spool-restart-${run}`);
  // Fill the spool directly on disk in the relay's format (setup, not measured).
  for (const sub of ['data', 'queue', 'tmp', 'active', 'failed', 'hold', 'admin', 'corrupt', 'control']) mkdirSync(join(spoolDir, sub), { recursive: true });
  const body = makeMessage(SIZES.messageSize, 'bench@contoso.com', 'sink@contoso.com', 'spooled');
  const now = Date.now();
  for (let i = 0; i < SIZES.spooled; i++) {
    const id = (now + i).toString(36).toUpperCase().padStart(9, '0') + i.toString(16).toUpperCase().padStart(10, '0');
    writeFileSync(join(spoolDir, 'data', `${id}.eml`), body);
    const meta = { version: 1, id, envelope: { from: 'bench@contoso.com', to: ['sink@contoso.com'] }, recipients: [{ address: 'sink@contoso.com', status: 'pending' }], client: { address: '127.0.0.1' }, size: body.length, receivedAt: new Date(now).toISOString(), attempts: 0, nextAttemptAt: null, lastError: null };
    writeFileSync(join(spoolDir, 'queue', `${id}.json`), JSON.stringify(meta));
  }
  const relay = await startRelay(spoolDir);
  await until('the first delivery', () => relay.firstDeliveredAt, 120_000, relay.proc);
  const toFirst = (relay.firstDeliveredAt - relay.t0) / 1000;
  const toListen = (relay.listeningAt - relay.t0) / 1000;
  await stopRelay(relay);
  sim.reset();
  return {
    restartToFirstDelivery: { value: round(toFirst), unit: 's', target: '<= 1.5' },
    restartToListening: { value: round(toListen), unit: 's', target: '<= 1' },
  };
}

/**
 * Exchange down (connections refused) while devices send, then back: how long after the end of
 * the outage until every queued message has arrived, and how many connection attempts and token
 * requests the relay made during it. Then the same with a kill -9 during the outage and a restart
 * once Exchange is back (time from the restart).
 */
async function benchRecovery(run) {
  const out = {};
  for (const variant of ['outage', 'killDuringOutage']) {
    sim.reset();
    const spoolDir = join(work, `spool-recovery-${run}-${variant}`);
    let relay = await startRelay(spoolDir);
    await until('the first access token', () => relay.tokenAt, 30_000, relay.proc);
    const before = { connections: sim.stats.connections, tokens: sim.stats.tokenRequests };
    sim.faults.refuseConnections = true;
    const outageStart = performance.now();
    for (let i = 0; i < OUTAGE.messages; i++) {
      const session = await SmtpSession.connect(relay.port);
      await session.command('EHLO bench.local', 250);
      await session.send('bench@contoso.com', ['sink@contoso.com'], makeMessage(SIZES.messageSize, 'bench@contoso.com', 'sink@contoso.com', `outage${i}`));
      await session.quit();
    }
    await new Promise((r) => setTimeout(r, Math.max(0, OUTAGE.seconds * 1000 - (performance.now() - outageStart))));
    const attempts = sim.stats.connections - before.connections;
    const tokenRequests = sim.stats.tokenRequests - before.tokens;
    let from;
    if (variant === 'killDuringOutage') {
      relay.proc.kill('SIGKILL');
      await new Promise((r) => relay.proc.once('exit', r));
      sim.faults.refuseConnections = false;
      from = performance.now();
      relay = await startRelay(spoolDir);
    } else {
      sim.faults.refuseConnections = false;
      from = performance.now();
    }
    await sim.waitForMessages(OUTAGE.messages, 120_000);
    const seconds = (performance.now() - from) / 1000;
    await stopRelay(relay);
    if (variant === 'outage') {
      out.outageRecovery = { value: round(seconds), unit: 's', target: '<= 15' };
      out.outageConnectionAttempts = { value: attempts, unit: `in ${OUTAGE.seconds} s` };
      out.outageTokenRequests = { value: tokenRequests, unit: `in ${OUTAGE.seconds} s` };
    } else {
      out.killDuringOutageRecovery = { value: round(seconds), unit: 's from restart', target: '<= 15' };
    }
  }
  sim.reset();
  return out;
}

function printTable(report) {
  const rows = Object.entries(report.results).map(([k, r]) => [k, `${r.value} ${r.unit}`, r.target ?? '', r.runs.join(' / ')]);
  const head = ['figure', 'median', 'target', 'runs'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => cells.map((c, i) => String(c).padEnd(widths[i])).join('  ');
  console.log(`\nm365-relay benchmark${report.quick ? ' (quick smoke run)' : ''}: ${report.machine.cores} cores (${report.machine.cpu}), Node ${report.machine.node}, ${report.runs} run(s)`);
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
  console.log(`\nwritten to ${outFile}`);
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : round((s[mid - 1] + s[mid]) / 2);
}
function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
}
function round(n) {
  return Math.round(n * 100) / 100;
}
function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}
async function until(what, check, timeoutMs, proc) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (proc && proc.exitCode !== null) throw new Error(`the relay exited while waiting for ${what}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}
