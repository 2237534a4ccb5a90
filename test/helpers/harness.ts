import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import nodemailer from 'nodemailer';
import { stringify } from 'yaml';
import { parseConfig, type RelayConfig } from '../../src/config/index.js';
import { startRelay, type RunningRelay } from '../../src/daemon.js';
import { startSimulator, type Simulator, type SimulatorOptions } from '../../src/simulator/index.js';
import { captureLogger, type LogLine } from './logs.js';
import { loadTestCa } from './testCa.js';
import { tempDir } from './tmp.js';
import { waitFor } from './wait.js';

export { tempDir };

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = join(ROOT, 'dist', 'cli.js');

/**
 * For a describe() block: one simulator for the suite, and temp directories removed at its end.
 * Read `suite.sim` inside tests (it is set in before()).
 */
export function simulatorSuite(options: SimulatorOptions = { rateLimit: null }): { readonly sim: Simulator; dir(): string } {
  let sim: Simulator | undefined;
  const removals: Array<() => void> = [];
  before(async () => {
    sim = await startTestSimulator(options);
  });
  after(async () => {
    await sim?.close();
    for (const remove of removals) remove();
  });
  return {
    get sim() {
      if (!sim) throw new Error('the simulator starts in before(): use suite.sim inside a test');
      return sim;
    },
    dir() {
      const tmp = tempDir();
      removals.push(tmp.remove);
      return tmp.dir;
    },
  };
}

/** The built-in Microsoft 365 simulator on loopback, its certificate signed by the run's test CA. */
export function startTestSimulator(options: SimulatorOptions = {}): Promise<Simulator> {
  return startSimulator({ ca: loadTestCa(), ...options });
}

type Raw = Record<string, unknown>;

/** A raw (YAML-shaped) configuration pointing at the simulator; `overrides` merge one level deep. */
export function rawConfigFor(sim: Simulator, spoolDir: string, overrides: Raw = {}): Raw {
  const { microsoft365, retry, ...rest } = overrides as { microsoft365?: Raw; retry?: Raw };
  return {
    listen: [{ port: 0, host: '127.0.0.1' }],
    allowNetworks: ['127.0.0.1/32', '::1/128'],
    spool: { dir: spoolDir },
    ...rest,
    microsoft365: {
      tenantId: sim.tenantId,
      clientId: '11111111-2222-3333-4444-555555555555',
      clientSecret: 'sim-secret',
      authorityHost: sim.authorityHost,
      smtpHost: sim.smtpHost,
      smtpPort: sim.smtpPort,
      // Graph too on loopback: the relay reads the app's registration there (see CredentialWatch).
      graphHost: sim.graphHost,
      mailbox: 'relay@contoso.com',
      sendAs: ['@contoso.com'],
      rateLimit: { messages: 1000, perSeconds: 60 },
      tokenTimeout: '5s',
      smtpTimeout: '5s',
      ...microsoft365,
    },
    retry: { schedule: ['300ms'], maxAge: '1h', jitter: 0, ...retry },
  };
}

/** Validates a raw configuration exactly as the daemon would. */
export function toConfig(raw: Raw, source = join(ROOT, 'test', 'inline.yaml')): RelayConfig {
  return parseConfig(stringify(raw), source, {});
}

export interface InProcessRelay {
  relay: RunningRelay;
  port: number;
  logs: LogLine[];
  stop(): Promise<void>;
}

export async function startInProcessRelay(raw: Raw): Promise<InProcessRelay> {
  const { logger, lines } = captureLogger();
  const relay = await startRelay(toConfig(raw), logger, { listenerGraceMs: 2000, deliveryGraceMs: 5000 });
  const port = relay.addresses[0]?.port ?? 0;
  return { relay, port, logs: lines, stop: () => relay.stop() };
}

export interface ChildRelay {
  proc: ChildProcess;
  /** Resolves with the exit code, or the signal's name when killed. */
  exited: Promise<number | string | null>;
  port: number;
  logs: LogLine[];
  stderr: () => string;
  waitForLog(what: string, predicate: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** SIGTERM and wait for the exit code (bounded). */
  stop(timeoutMs?: number): Promise<number | null>;
  /** SIGKILL: the crash case. */
  kill(): Promise<void>;
}

/** Runs the compiled CLI (`node dist/cli.js ARGS`) to the end: exit code and output. */
export function cli(args: string[], input?: string, env: NodeJS.ProcessEnv = process.env): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [CLI, ...args], { input, encoding: 'utf8', timeout: 20_000, env });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/**
 * Like cli(), without blocking this process: for a CLI that talks to servers running in the test
 * process (the simulator, a proxy), which a synchronous child would leave unanswered. Bounded (60 s).
 */
export function cliAsync(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Starts the compiled daemon (`node dist/cli.js run`) as a real child process. */
export async function spawnRelay(raw: Raw, dir: string, options: { name?: string; env?: NodeJS.ProcessEnv; waitForListening?: boolean } = {}): Promise<ChildRelay> {
  const file = join(dir, options.name ?? 'relay.yaml');
  writeFileSync(file, stringify(raw));
  const proc = spawn(process.execPath, [CLI, 'run', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  const logs: LogLine[] = [];
  let err = '';
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    if (process.env.DEBUG_LOGS) process.stderr.write(`[child] ${line}\n`);
    try {
      logs.push(JSON.parse(line) as LogLine);
    } catch {
      // ignore non-JSON
    }
  });
  proc.stderr!.on('data', (chunk: Buffer) => {
    err += chunk.toString('utf8');
  });
  const exited = new Promise<number | string | null>((resolve) => proc.once('exit', (code, signal) => resolve(code ?? signal)));
  const waitForLog = (what: string, predicate: (line: LogLine) => boolean, timeoutMs = 15_000) =>
    waitFor(what, () => {
      if (proc.exitCode !== null) throw new Error(`relay exited (${proc.exitCode}) while waiting for ${what}: ${err}`);
      return logs.find(predicate);
    }, timeoutMs);
  const listening = await waitForLog('the relay to listen', (l) => l.event === 'listening');
  const port = (listening.addresses as Array<{ port: number }>)[0]?.port ?? 0;
  return {
    proc,
    exited,
    port,
    logs,
    stderr: () => err,
    waitForLog,
    async stop(timeoutMs = 20_000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return typeof code === 'number' ? code : null;
    },
    async kill() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGKILL');
      await exited;
    },
  };
}

export interface SendOptions {
  from?: string;
  to?: string[];
  raw?: string | Buffer;
  auth?: { user: string; pass: string };
  host?: string;
}

/** Sends one message the way a device would: plain SMTP, no TLS, optional AUTH. */
export async function sendMessage(port: number, options: SendOptions = {}) {
  const transport = nodemailer.createTransport({
    host: options.host ?? '127.0.0.1',
    port,
    secure: false,
    ignoreTLS: true,
    auth: options.auth,
    connectionTimeout: 5000,
    greetingTimeout: 5000,
    socketTimeout: 10_000,
  });
  const from = options.from ?? 'scanner@printer.local';
  const to = options.to ?? ['alice@contoso.com'];
  const raw = options.raw ?? sampleMessage({ from, to });
  try {
    return await transport.sendMail({ envelope: { from, to }, raw });
  } finally {
    transport.close();
  }
}

export function sampleMessage({ from = 'scanner@printer.local', to = ['alice@contoso.com'], subject = 'Scan from MFP 3rd floor', body = 'Scanned document attached.' } = {}): string {
  return [
    `From: "Scanner 3rd floor" <${from}>`,
    `To: ${to.join(', ')}`,
    `Subject: ${subject}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    body,
    '',
  ].join('\r\n');
}
