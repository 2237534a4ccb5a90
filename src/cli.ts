#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { hashPassword } from './access/passwords.js';
import { connectCheck, describeConfig } from './cli/checkConfig.js';
import { formatQueueTable, formatShow, toCorruptItem, toListItem } from './cli/queueList.js';
import { loginCommand } from './cli/login.js';
import { sendTest } from './cli/sendTest.js';
import { accountsOf, ConfigError, loadConfigFile, type RelayConfig } from './config/index.js';
import { startRelay } from './daemon.js';
import { createLogger, silentLogger } from './observability/logger.js';
import { RelayMetrics } from './observability/metrics.js';
import { TokenError } from './oauth/index.js';
import { AccountSetupError, createTokenSource, createTransport, delegatedSettings } from './relay/index.js';
import { checkSpoolOwner, QueueAdmin, QueueCommandError, Spool, SpoolLockedError, SpoolOwnerError, wakeDaemon } from './spool/index.js';

const USAGE = `m365-relay: SMTP relay for LAN devices to Microsoft 365 (Exchange Online) over OAuth 2.0

Usage:
  m365-relay run --config FILE                 run the relay in the foreground (JSON logs on stdout)
  m365-relay check-config --config FILE [--connect]
                                               validate the configuration; with --connect also get a
                                               token and log in to Exchange Online (nothing is sent)
  m365-relay send-test --to ADDRESS --config FILE [--from ADDRESS] [--user NAME] [--timeout SECONDS]
                                               send a test message through the running relay and
                                               follow it until delivered (password: M365_RELAY_PASSWORD)
  m365-relay login --config FILE [--account NAME] [--timeout SECONDS]
                                               sign a flow: device-code account's mailbox in (device code);
                                               the token cache is written for the relay to use
  m365-relay queue list --config FILE [--json] list every message in the spool
  m365-relay queue show ID --config FILE [--json]
                                               one message: envelope, recipients, history, headers
  m365-relay queue retry ID|--all --config FILE put failed/deferred/held message(s) back, due now
  m365-relay queue hold ID --config FILE       keep a queued message from being delivered
  m365-relay queue release ID --config FILE    deliver a held message again
  m365-relay queue delete ID --config FILE     remove a message for good
  m365-relay queue restore ID --config FILE    put a corrupt message back once its files are whole
  m365-relay hash-password                     read a password on stdin, print a passwordHash value
`;

/** Exit codes: 0 ok, 1 failure (bad config, command failed), 2 usage error. */
class UsageError extends Error {}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'run':
      return run(rest);
    case 'check-config':
      return checkConfig(rest);
    case 'send-test':
      return sendTestCommand(rest);
    case 'login':
      return loginCommandFor(rest);
    case 'queue':
      return queue(rest);
    case 'hash-password':
      return hashPasswordCommand();
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

function configOption(args: string[], extra: Record<string, { type: 'boolean' | 'string' }> = {}) {
  const { values, positionals } = parseArgs({ args, options: { config: { type: 'string', short: 'c' }, ...extra }, allowPositionals: true, strict: true });
  if (!values.config) throw new UsageError('--config FILE is required');
  return { file: values.config as string, values: values as Record<string, unknown>, positionals };
}

function load(file: string): RelayConfig {
  return loadConfigFile(file);
}

async function run(args: string[]): Promise<number> {
  const { file } = configOption(args);
  const config = load(file);
  const metrics = new RelayMetrics();
  const logger = createLogger({ level: config.log.level, onEvent: (event) => metrics.observe(event) });
  const relay = await startRelay(config, logger, { metrics, factoryContext: { configFile: file } });
  process.on('SIGHUP', () => {
    // Reload: an invalid new file is refused and the running configuration stays.
    try {
      relay.reload(loadConfigFile(file));
    } catch (err) {
      const problems = err instanceof ConfigError ? err.problems : [{ path: '', message: (err as Error).message }];
      logger.error({ event: 'reload-failed', file, problems }, 'configuration NOT reloaded; the previous one stays in force');
    }
  });
  return new Promise<number>((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals += 1;
      if (signals > 1) {
        logger.warn({ event: 'forced-exit', signal }, 'second signal: exiting now; deliveries under way are retried at the next start');
        logger.flush();
        process.exit(1);
      }
      logger.info({ event: 'signal', signal }, 'shutting down');
      relay.stop().then(
        () => {
          logger.flush();
          resolve(0);
        },
        (err: unknown) => {
          logger.error({ err: String(err) }, 'error while stopping');
          logger.flush();
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

async function checkConfig(args: string[]): Promise<number> {
  const { file, values } = configOption(args, { connect: { type: 'boolean' } });
  const config = load(file);
  // What the daemon builds at start (no network): an account this build cannot serve fails here too.
  for (const account of accountsOf(config).values()) {
    const tokens = createTokenSource(account, silentLogger(), { configFile: file });
    createTransport(account, tokens, silentLogger()).close();
  }
  process.stdout.write(describeConfig(file, config));
  return values.connect ? connectCheck(config, process.stdout, file) : 0;
}

async function sendTestCommand(args: string[]): Promise<number> {
  const { file, values } = configOption(args, { to: { type: 'string' }, from: { type: 'string' }, user: { type: 'string' }, timeout: { type: 'string' } });
  if (typeof values.to !== 'string' || !values.to.includes('@')) throw new UsageError('send-test needs --to ADDRESS');
  const timeout = values.timeout === undefined ? 60 : Number(values.timeout);
  if (!Number.isFinite(timeout) || timeout < 0) throw new UsageError('--timeout takes a number of seconds (0: do not wait for delivery)');
  let user: { username: string; password: string } | undefined;
  if (typeof values.user === 'string') {
    const password = process.env.M365_RELAY_PASSWORD;
    if (!password) throw new UsageError('--user needs the password in the environment variable M365_RELAY_PASSWORD');
    user = { username: values.user, password };
  }
  return sendTest(load(file), { to: values.to, from: values.from as string | undefined, user, timeoutMs: timeout * 1000, out: process.stdout });
}

/** `login --config FILE [--account NAME]`: device-code sign-in for a delegated account. */
async function loginCommandFor(args: string[]): Promise<number> {
  const { file, values } = configOption(args, { account: { type: 'string' }, timeout: { type: 'string' } });
  const config = load(file);
  const accounts = accountsOf(config);
  const delegated = [...accounts.values()].filter((a) => a.flow === 'device-code');
  const name = typeof values.account === 'string' ? values.account : delegated.length === 1 ? delegated[0]!.name : undefined;
  if (name === undefined) {
    throw new UsageError(
      delegated.length === 0
        ? 'no account in this configuration uses flow: device-code; login is only for delegated sign-in'
        : `several accounts use flow: device-code (${delegated.map((a) => a.name).join(', ')}): choose one with --account NAME`,
    );
  }
  const account = accounts.get(name);
  if (!account) throw new UsageError(`there is no account "${name}" (known: ${[...accounts.keys()].join(', ')})`);
  if (account.flow !== 'device-code') throw new UsageError(`account ${name} uses flow: ${account.flow}; login is only for flow: device-code`);
  const timeout = values.timeout === undefined ? undefined : Number(values.timeout) * 1000;
  if (timeout !== undefined && !(timeout > 0)) throw new UsageError('--timeout takes a number of seconds');
  const code = await loginCommand({
    account: {
      name,
      configFile: file,
      ...delegatedSettings(account),
      requestTimeout: account.tokenTimeout,
      ...(timeout !== undefined && { timeout }),
    },
    out: process.stdout,
  });
  // A running relay holding this account for the lost sign-in probes at once.
  if (code === 0) await wakeDaemon(config.spool.dir);
  return code;
}

const QUEUE_COMMANDS = ['list', 'show', 'retry', 'hold', 'release', 'delete', 'restore'] as const;

async function queue(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (!QUEUE_COMMANDS.includes(sub as (typeof QUEUE_COMMANDS)[number])) {
    throw new UsageError(`unknown queue command "${sub ?? ''}" (expected one of: ${QUEUE_COMMANDS.join(', ')})`);
  }
  const { file, values, positionals } = configOption(rest, { json: { type: 'boolean' }, all: { type: 'boolean' } });
  // Only spool.dir matters here: the service's secrets need not be in the administrator's environment.
  const config = loadConfigFile(file, process.env, { keepUnresolved: true });
  // A command run as another user (root beside the service) would leave files the daemon cannot read.
  await checkSpoolOwner(config.spool.dir);
  const spool = await Spool.open(config.spool.dir, silentLogger());
  if (sub === 'list') {
    const items = [...(await spool.list()).map(toListItem), ...(await spool.listCorrupt()).map(toCorruptItem)];
    process.stdout.write(values.json ? `${JSON.stringify(items, null, 2)}\n` : `${formatQueueTable(items)}\n`);
    return 0;
  }
  const admin = new QueueAdmin(spool);
  if (sub === 'retry' && values.all) {
    const count = await admin.retryAll();
    await wakeDaemon(spool.dir);
    process.stdout.write(`${count} message(s) queued for delivery now\n`);
    return 0;
  }
  const id = positionals[0];
  if (!id) throw new UsageError(`queue ${sub} needs a message id${sub === 'retry' ? ' or --all' : ''}`);
  try {
    switch (sub) {
      case 'show': {
        const { entry, headers } = await admin.show(id);
        process.stdout.write(values.json ? `${JSON.stringify({ ...toListItem(entry), meta: entry.meta, headers }, null, 2)}\n` : `${formatShow(entry, headers)}\n`);
        return 0;
      }
      case 'retry':
        await admin.retry(id);
        break;
      case 'hold':
        await admin.hold(id);
        break;
      case 'release':
        await admin.release(id);
        break;
      case 'delete':
        await admin.delete(id);
        break;
      case 'restore':
        await admin.restore(id);
        break;
    }
  } catch (err) {
    if (err instanceof QueueCommandError) {
      process.stderr.write(`m365-relay: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  await wakeDaemon(spool.dir);
  process.stdout.write(`${id}: ${PAST[sub as keyof typeof PAST]}\n`);
  return 0;
}

const PAST = { retry: 'queued for delivery now', hold: 'held', release: 'released, queued for delivery now', delete: 'deleted', restore: 'restored, queued for delivery now' } as const;

async function hashPasswordCommand(): Promise<number> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  if (!password) throw new UsageError('no password on stdin (try: printf %s "secret" | m365-relay hash-password)');
  process.stdout.write(`${await hashPassword(password)}\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exitCode = 1;
    } else if (err instanceof SpoolLockedError || err instanceof SpoolOwnerError) {
      process.stderr.write(`m365-relay: ${err.message}\n`);
      process.exitCode = 1;
    } else if (err instanceof AccountSetupError || err instanceof TokenError) {
      process.stderr.write(`m365-relay: cannot start: ${err.message}${err instanceof TokenError ? ` (${err.advice})` : ''}\n`);
      process.exitCode = 1;
    } else if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`m365-relay: ${(err as Error).message}\n\n${USAGE}`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`m365-relay: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
