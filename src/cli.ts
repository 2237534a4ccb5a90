#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=2
// The line above is the relay's runtime tuning (the systemd unit and the Docker image repeat it;
// test/packaging.test.ts keeps them equal): at most two malloc arenas and a 2 MiB young generation
// take about 15-20 MiB off the idle footprint at no measurable CPU cost (bench/README.md).
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { hashPassword } from './access/passwords.js';
import { connectCheck, describeConfig } from './cli/checkConfig.js';
import { formatQueueTable, formatShow, groupParts, PAST_TENSE, toCorruptItem, toListItem } from './cli/queueList.js';
import { loginCommand } from './cli/login.js';
import { eventJson, filterOf, formatLogShow, formatLogTable, LogArgumentError, messageJson, type LogSearchOptions } from './cli/mailLog.js';
import { sendTest } from './cli/sendTest.js';
import { setupAccountOf, setupSteps } from './cli/setup.js';
import { accountsOf, ConfigError, loadConfigFile, type RelayConfig } from './config/index.js';
import { preflight } from './cli/preflight.js';
import { startRelay, type RunningRelay } from './daemon.js';
import { ListenerTlsError } from './listener/index.js';
import { DEFAULT_SEARCH_LIMIT, MailLogReader, mailLogPathOf, MailLogUnavailableError, type MailLogFilter } from './maillog/index.js';
import { isJournalStream } from './observability/logFormat.js';
import { createLogger, silentLogger, type Logger } from './observability/logger.js';
import { systemdNotifier } from './observability/sdNotify.js';
import { StartError } from './startError.js';
import { RelayMetrics } from './observability/metrics.js';
import { TokenError } from './oauth/index.js';
import { AccountSetupError, accountOf, createTokenSource, createTransport, delegatedSettings } from './relay/index.js';
import { checkSpoolOwner, QueueAdmin, QueueCommandError, Spool, SpoolLockedError, SpoolOwnerError, wakeDaemon } from './spool/index.js';

const USAGE = `m365-relay: SMTP relay for LAN devices to Microsoft 365 (Exchange Online) over OAuth 2.0

Usage:
  m365-relay run --config FILE                 run the relay in the foreground (logs on stdout)
  m365-relay check-config --config FILE [--connect]
                                               validate the configuration and what run needs from this
                                               host; with --connect also get a token and log in to
                                               Exchange Online (nothing is sent)
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
  m365-relay log --config FILE [--to ADDR] [--from ADDR] [--id QUEUEID] [--message-id ID]
                 [--subject TEXT] [--state delivered|deferred|failed|held] [--since DURATION]
                 [--until TIME] [--limit N] [--json]
                                               search the mail log, newest first
  m365-relay log show ID --config FILE [--json] one message's whole history from the mail log
  m365-relay hash-password                     read a password on stdin, print a passwordHash value
  m365-relay setup --account NAME --config FILE
                                               print the Microsoft 365 setup of one account (Azure CLI
                                               and Exchange Online PowerShell commands, values filled in)

  m365-relay COMMAND --help                    help for one command
`;

/** Each command's own help (`m365-relay COMMAND --help`). */
const HELP: Record<string, string> = {
  run: `Usage: m365-relay run --config FILE

Runs the relay in the foreground: the SMTP listeners, the spool and the delivery to Microsoft 365.
Logs go to stdout (log.format: json or text). SIGHUP reloads the file, SIGTERM stops gracefully.
With an http section it serves /healthz, /readyz and /metrics there, and with a console section
the web console too (log in at http://HOST:PORT/ with a console.users account).
Under systemd (Type=notify) it reports ready once the listeners accept. A problem at start is one
line on stderr naming the configuration key, and the exit status is 1.
`,
  'check-config': `Usage: m365-relay check-config --config FILE [--connect]

Validates FILE as run reads it, then checks what run needs from this host, as this user: the spool
directory can be created or written (a probe file is created, fsynced and removed), whether a
running relay holds the spool, that the listen and http ports can be bound (or are held by the
running relay), and that TLS certificates and keys are readable and match.
  --connect   also get a token from Entra ID and log in to Exchange Online (nothing is sent)
Exit status: 0 ready to run, 1 a problem (each names its configuration key).
`,
  'send-test': `Usage: m365-relay send-test --to ADDRESS --config FILE [--from ADDRESS] [--user NAME] [--timeout SECONDS]

Sends a test message through the running relay's own listener and follows it in the spool until it
is delivered or fails. Needs no Microsoft 365 secret.
  --from ADDRESS     envelope and header sender (default: microsoft365.mailbox)
  --user NAME        log in as this local user; the password is read from M365_RELAY_PASSWORD
  --timeout SECONDS  how long to follow the message (default 60; 0: return once queued)
`,
  login: `Usage: m365-relay login --config FILE [--account NAME] [--timeout SECONDS]

Signs the mailbox of a flow: device-code account in with the device-code flow and writes the token
cache the relay reads. Only that account's settings and secrets are needed. Afterwards the running
relay is woken and sends the mail that waited for the sign-in.
  --account NAME     the account (needed when several use flow: device-code)
  --timeout SECONDS  how long to wait for the sign-in (default 15 minutes)
`,
  queue: `Usage: m365-relay queue list|show|retry|hold|release|delete ... --config FILE

  queue list [--json]          every message in the spool
  queue show ID [--json]       one message: envelope, recipients, history, headers
  queue retry ID | --all       put failed, deferred or held message(s) back, due now
  queue hold ID                keep a queued or deferred message from being delivered
  queue release ID             put a held message back, due now
  queue delete ID              remove a message for good
  queue restore ID             put a corrupt message back once its files are whole
Safe while the relay runs; run them as the spool's owner (the service's user).
`,
  setup: `Usage: m365-relay setup --account NAME --config FILE

Prints, for one account of FILE, the exact steps on the Microsoft 365 side with its values filled
in: the app registration, its credential (certificate or secret), the API permission and admin
consent as Azure CLI (az) commands; then Exchange Online PowerShell: the service principal
(New-ServicePrincipal), the mailbox permission or an RBAC for Applications role assignment with a
management scope, SMTP AUTH for the mailbox (Set-CASMailbox), Add-HVEAppAccess for High Volume
Email; and finally the check-config --connect to run. National clouds get their own endpoints.
It changes nothing and needs no secret; a secret is never printed.
  --account NAME   default (the top-level microsoft365) or a name under accounts:
`,
  log: `Usage: m365-relay log --config FILE [--to ADDR] [--from ADDR] [--id QUEUEID] [--message-id ID]
                          [--subject TEXT] [--state delivered|deferred|failed|held]
                          [--since DURATION] [--until TIME] [--limit N] [--json]
       m365-relay log show ID --config FILE [--json]

Searches the mail log (mailLog in the configuration): every message's life, from its arrival to
its delivery or failure, with each attempt and upstream reply, and the administrators' actions.
Newest first. Safe while the relay runs (the file is opened read-only). Options combine (AND).
  --to ADDR          a recipient: a full address finds that mailbox (any case, IDN domains in
                     either form); a part (@contoso.com, bob) finds every address containing it
  --from ADDR        the envelope sender, the same way
  --id QUEUEID       the relay's queue id (as in "250 ... queued as ID")
  --message-id ID    the Message-ID header, with or without <>
  --subject TEXT     part of the subject, any case (not with mailLog.recordSubjects: false)
  --state STATE      delivered, deferred, failed or held (the last state the log saw)
  --since DURATION   received at most this long ago (30m, 2h, 7d), or since a time (2026-05-04)
  --until TIME       received before this time (2026-05-04T12:00:00Z), or this long ago (1h)
  --limit N          at most N messages (default 50)
  --json             machine-readable: an array of messages (times as ISO strings)
  log show ID        the message and its history: received, attempts (account, transport,
                     reply, duration, upstream queue id), deferrals, delivery or failure, actions
Exit status: 0 (also when nothing matches), 1 the mail log cannot be read, 2 usage error.
`,
  'hash-password': `Usage: printf %s 'the password' | m365-relay hash-password

Reads a password on stdin and prints a scrypt passwordHash value for users[].passwordHash.
`,
};

/** Exit codes: 0 ok, 1 failure (bad config, command failed), 2 usage error. */
class UsageError extends Error {
  constructor(
    message: string,
    /** The command whose --help to point at. */
    readonly command?: string,
  ) {
    super(message);
  }
}

/** `COMMAND --help` or `-h` anywhere among its arguments. */
function wantsHelp(args: string[]): boolean {
  return args.includes('--help') || args.includes('-h');
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command !== undefined && HELP[command] && wantsHelp(rest)) {
    process.stdout.write(HELP[command]);
    return 0;
  }
  currentCommand = command;
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
    case 'setup':
      return setupCommand(rest);
    case 'log':
      return logCommand(rest);
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

/** The command a usage error is about, for the hint to its --help. */
let currentCommand: string | undefined;

function configOption(args: string[], extra: Record<string, { type: 'boolean' | 'string' }> = {}) {
  const { values, positionals } = parseArgs({ args, options: { config: { type: 'string', short: 'c' }, ...extra }, allowPositionals: true, strict: true });
  if (!values.config) throw new UsageError('--config FILE is required (the relay\'s YAML configuration, e.g. --config /etc/m365-relay/relay.yaml)');
  return { file: values.config as string, values: values as Record<string, unknown>, positionals };
}

function load(file: string): RelayConfig {
  return loadConfigFile(file);
}

async function run(args: string[]): Promise<number> {
  const { file } = configOption(args);
  const config = load(file);
  const metrics = new RelayMetrics();
  const logger = createLogger({ level: config.log.level, format: config.log.format, onEvent: (event) => metrics.observe(event) });
  let relay: RunningRelay;
  try {
    relay = await startRelay(config, logger, { metrics, factoryContext: { configFile: file } });
  } catch (err) {
    throw new FatalStartError(err, config.log.level === 'debug' || config.log.level === 'trace', logger);
  }
  const notify = systemdNotifier(logger);
  // Type=notify: systemd's start completes now that the listeners accept, not when node started.
  await notify.send('READY=1', `STATUS=accepting mail on ${relay.addresses.map((a) => `${a.host}:${a.port}`).join(', ')}`);
  process.on('SIGHUP', () => {
    // Reload: an invalid new file is refused and the running configuration stays. ${file:...} and
    // ${credential:...} secrets are read again here, so a rotated secret file takes effect.
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
      const told = notify.send('STOPPING=1', 'STATUS=stopping: finishing what is under way');
      Promise.all([relay.stop(), told]).then(
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

/** `run` could not start: reported as one line, and the process exits before anything else is logged. */
class FatalStartError extends Error {
  constructor(
    override readonly cause: unknown,
    readonly withStack: boolean,
    readonly logger: Logger,
  ) {
    super((cause as Error)?.message ?? String(cause));
  }
}

async function checkConfig(args: string[]): Promise<number> {
  const { file, values } = configOption(args, { connect: { type: 'boolean' } });
  const config = load(file);
  // What the daemon builds at start (no network): an account this build cannot serve fails here too.
  for (const account of accountsOf(config).values()) {
    const tokens = createTokenSource(account, silentLogger(), { configFile: file });
    createTransport(account, tokens, silentLogger()).close();
  }
  // What run needs from this host, as this user: spool, ports, certificates.
  const { problems, notes } = await preflight(config);
  if (problems.length > 0) {
    process.stderr.write(`${file}: the relay cannot run with this configuration on this host:\n${problems.map((p) => `  - ${p.key}: ${p.message}\n`).join('')}`);
    return 1;
  }
  process.stdout.write(describeConfig(file, config));
  for (const note of notes) process.stdout.write(`  note: ${note}\n`);
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
  // send-test talks to the relay's own listener and reads the spool: no Microsoft 365 secret is needed.
  return sendTest(loadConfigFile(file, process.env, { keepUnresolved: true }), { configFile: file, to: values.to, from: values.from as string | undefined, user, timeoutMs: timeout * 1000, out: process.stdout });
}

/** `setup --account NAME --config FILE`: the Microsoft 365 steps for one account, printed. */
function setupCommand(args: string[]): number {
  const { file, values } = configOption(args, { account: { type: 'string' } });
  if (typeof values.account !== 'string') throw new UsageError('setup needs --account NAME (default is the top-level microsoft365)', 'setup');
  // Setup needs no secret: references that cannot be resolved here stay as they are.
  const accounts = accountsOf(loadConfigFile(file, process.env, { keepUnresolved: true }));
  const account = accounts.get(values.account);
  if (!account) throw new UsageError(`there is no account "${values.account}" (known: ${[...accounts.keys()].join(', ')})`, 'setup');
  // The secret's reference as written (${VAR}, ${file:...}), to say where the new secret goes.
  const raw = parseYaml(readFileSync(file, 'utf8')) as { microsoft365?: { clientSecret?: unknown }; accounts?: Record<string, { clientSecret?: unknown }> } | null;
  const rawSecret = account.name === 'default' ? raw?.microsoft365?.clientSecret : raw?.accounts?.[account.name]?.clientSecret;
  process.stdout.write(setupSteps(setupAccountOf(account, rawSecret), file));
  return 0;
}

/** `login --config FILE [--account NAME]`: device-code sign-in for a delegated account. */
async function loginCommandFor(args: string[]): Promise<number> {
  const { file, values } = configOption(args, { account: { type: 'string' }, timeout: { type: 'string' } });
  // First only to find the accounts: another account's secret need not be in this environment.
  const accounts = accountsOf(loadConfigFile(file, process.env, { keepUnresolved: true }));
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
  // Then strictly for the chosen account: its own references (tokenCacheKey, ...) must resolve.
  const own = name === 'default' ? 'microsoft365' : `accounts.${name}`;
  const config = loadConfigFile(file, process.env, { keepUnresolved: (path) => path !== own && !path.startsWith(`${own}.`) });
  const timeout = values.timeout === undefined ? undefined : Number(values.timeout) * 1000;
  if (timeout !== undefined && !(timeout > 0)) throw new UsageError('--timeout takes a number of seconds');
  const resolved = accountsOf(config).get(name) ?? account;
  return loginCommand({
    afterLogin: () => sendWaitingMail(config.spool.dir, name),
    account: {
      name,
      configFile: file,
      ...delegatedSettings(resolved),
      requestTimeout: resolved.tokenTimeout,
      ...(timeout !== undefined && { timeout }),
    },
    out: process.stdout,
  });
}

/**
 * After a sign-in: the account's waiting mail is made due now and the running relay woken, so it
 * goes out at once instead of at its next scheduled attempt. Returns what to tell the user.
 */
async function sendWaitingMail(dir: string, account: string): Promise<string> {
  try {
    if (!existsSync(dir)) return 'No mail is waiting (the spool does not exist yet).';
    await checkSpoolOwner(dir);
    const spool = await Spool.open(dir, silentLogger());
    const admin = new QueueAdmin(spool);
    let count = 0;
    for (const entry of await spool.list(['queue'])) {
      if (accountOf(entry.meta) !== account) continue;
      try {
        await admin.retry(entry.meta.id);
        count++;
      } catch (err) {
        if (!(err instanceof QueueCommandError)) throw err; // being delivered right now: fine
      }
    }
    // Woken, the relay also lets the account (holding for the lost sign-in) probe at once.
    await wakeDaemon(dir);
    return count > 0 ? `${count} queued message(s) of account ${account} are being sent now.` : `No mail of account ${account} was waiting; the running relay uses the new sign-in from now on.`;
  } catch (err) {
    return `The running relay uses the new sign-in at its next attempt (queued mail could not be made due now: ${(err as Error).message}).`;
  }
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
    const items = [...groupParts((await spool.list()).map(toListItem)), ...(await spool.listCorrupt()).map(toCorruptItem)];
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
  process.stdout.write(`${id}: ${PAST_TENSE[sub as keyof typeof PAST_TENSE]}\n`);
  return 0;
}

/** `log [show ID] --config FILE ...`: reads the mail log, read-only, while the relay runs or not. */
async function logCommand(args: string[]): Promise<number> {
  const text = { type: 'string' } as const;
  const searchOptions = { to: text, from: text, id: text, 'message-id': text, subject: text, state: text, since: text, until: text, limit: text };
  const { file, values, positionals: words } = configOption(args, { json: { type: 'boolean' }, ...searchOptions });
  // `log show ID` (the word may come before or after the options).
  const showing = words[0] === 'show';
  const positionals = showing ? words.slice(1) : words;
  if (showing) {
    const extra = Object.keys(searchOptions).find((name) => values[name] !== undefined);
    if (extra) throw new UsageError(`log show takes only an id and --json (--${extra} is for searching: m365-relay log --${extra} ...)`);
  }
  // Only the mail log's place matters: the service's secrets need not be in the administrator's environment.
  const config = loadConfigFile(file, process.env, { keepUnresolved: true });
  const path = mailLogPathOf(config);
  if (!path) {
    process.stderr.write('m365-relay: the mail log is switched off in this configuration (mailLog.enabled: false)\n');
    return 1;
  }
  let filter: MailLogFilter = {};
  if (showing) {
    if (positionals.length !== 1) throw new UsageError('log show needs one message id (see: m365-relay log)');
  } else {
    if (positionals.length > 0) throw new UsageError(`unexpected "${positionals[0]}" (log takes options only; for one message: log show ID)`);
    try {
      filter = filterOf(values as LogSearchOptions, Date.now());
    } catch (err) {
      if (err instanceof LogArgumentError) throw new UsageError(err.message);
      throw err;
    }
  }
  let reader: MailLogReader;
  try {
    reader = MailLogReader.open(path);
  } catch (err) {
    if (!(err instanceof MailLogUnavailableError)) throw err;
    process.stderr.write(`m365-relay: ${err.message}\n`);
    return 1;
  }
  try {
    if (showing) {
      const id = positionals[0] ?? '';
      const found = reader.show(id);
      if (!found) {
        process.stderr.write(`m365-relay: no message ${id} in the mail log (see: m365-relay log; records older than mailLog.retention are removed)\n`);
        return 1;
      }
      process.stdout.write(values.json ? `${JSON.stringify({ message: messageJson(found.message), events: found.events.map(eventJson) }, null, 2)}\n` : `${formatLogShow(found)}\n`);
      return 0;
    }
    const messages = reader.search(filter);
    process.stdout.write(values.json ? `${JSON.stringify(messages.map(messageJson), null, 2)}\n` : `${formatLogTable(messages, filter.limit ?? DEFAULT_SEARCH_LIMIT)}\n`);
    return 0;
  } finally {
    reader.close();
  }
}

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
    if (err instanceof FatalStartError) return fatalExit(err);
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
      // One line and where to read more: the whole usage would bury the mistake.
      const command = err instanceof UsageError && err.command ? err.command : currentCommand && HELP[currentCommand] ? currentCommand : undefined;
      process.stderr.write(`m365-relay: ${(err as Error).message}\nTry 'm365-relay ${command ? `${command} ` : ''}--help'.\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`m365-relay: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exitCode = 1;
    }
  },
);

/**
 * `run` failed to start: one line naming the key and the fix (the stack only at log.level debug),
 * then exit at once, so that no timer of the half-started relay (a token refresh) logs after it.
 */
function fatalExit(err: FatalStartError): void {
  const cause = err.cause;
  const known = cause instanceof StartError || cause instanceof ListenerTlsError || cause instanceof SpoolLockedError || cause instanceof SpoolOwnerError || cause instanceof AccountSetupError || cause instanceof TokenError;
  let line = `m365-relay: cannot start: ${(cause as Error)?.message ?? String(cause)}`;
  if (cause instanceof TokenError) line += ` (${cause.advice})`;
  if (!known && !err.withStack) line += ' (set log.level: debug for the stack trace)';
  const prefix = isJournalStream(2) ? '<2>' : '';
  let text = `${prefix}${line.replace(/\n/g, ' ')}\n`;
  if (err.withStack && (cause as Error)?.stack) text += `${(cause as Error).stack}\n`;
  const exit = () => process.stderr.write(text, () => process.exit(1));
  // What was logged before the failure is written first; bounded, in case stdout is stuck.
  setTimeout(exit, 1000).unref();
  err.logger.flush(() => exit());
}
