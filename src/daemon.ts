import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { accountsOf, type RelayConfig } from './config/index.js';
import { connectHost } from './cli/sendTest.js';
import { createConsole } from './console/server.js';
import { createListener } from './listener/index.js';
import { readTlsFiles } from './listener/options.js';
import { MailLogReader, mailLogPathOf, MailLogWriter, noMailLog, type MailLogEventKind, type MailLogRecorder } from './maillog/index.js';
import { startHttpEndpoint, type HttpEndpoint } from './observability/http.js';
import type { Logger } from './observability/logger.js';
import type { RelayMetrics } from './observability/metrics.js';
import { CredentialWatch, type CredentialWatchOptions } from './oauth/credentialExpiry.js';
import { lookupSecretExpiry, registrationTokenSource } from './oauth/registration.js';
import { FailureNotifier } from './relay/failureNotice.js';
import { accountOf, makeAccountFactory, RelayWorker, type AccountFactory, type FactoryContext } from './relay/index.js';
import { acquireSpoolLock, checkSpoolOwner, receivedAtOf, SpaceGuard, Spool, takeAdminActions, watchWakeups, type AdminAction, type SpoolLock } from './spool/index.js';
import { bindProblem, isErrno, spoolProblem } from './startError.js';

/** How often the worker re-reads the queue from disk even without a wake-up. */
const RESCAN_INTERVAL_MS = 5 * 60_000;
/** /readyz probes the spool at most this often. */
const SPOOL_PROBE_CACHE_MS = 5_000;

export interface RunningRelay {
  readonly addresses: Array<{ host: string; port: number }>;
  readonly spool: Spool;
  /** The health and metrics endpoint, when `http` is configured. */
  readonly http: HttpEndpoint | null;
  /**
   * The mail log, read-only (the daemon writes it in the background); null when mailLog.enabled is
   * false or the file cannot be opened right now (tried again at the next read).
   */
  readonly mailLog: MailLogReader | null;
  /** Applies a new configuration without dropping connections or mail (SIGHUP). Throws, changing nothing, when it cannot be applied. */
  reload(config: RelayConfig): void;
  /** Graceful stop: no new connections, current transactions and deliveries finish (bounded). */
  stop(): Promise<void>;
}

export interface RelayOptions {
  /** How long SMTP clients mid-transaction may take to finish at stop. */
  listenerGraceMs?: number;
  /** How long upstream deliveries under way may take at stop before their connections are closed. */
  deliveryGraceMs?: number;
  /** Metrics fed by the logger's events (see createLogger's onEvent); needed for /metrics. */
  metrics?: RelayMetrics;
  /** Builds each account's token source and transport; the real ones by default. */
  accountFactory?: AccountFactory;
  /**
   * For the default factory (e.g. the configuration file named in advice). Its staging directory is
   * always <spool.dir>/staging, made and emptied only once this process owns the spool (lock held).
   */
  factoryContext?: Omit<FactoryContext, 'stagingDir'>;
  /** Reads each app-only secret's expiry from its app registration in Graph (default: lookupSecretExpiry). */
  registrationLookup?: CredentialWatchOptions['lookup'] | null;
  /** When the first registration lookup runs after start (default 2 minutes). */
  registrationLookupDelayMs?: number;
}

/**
 * Starts the relay: recovers the spool, starts the worker on what is queued, then opens the
 * listeners. The order matters: nothing is accepted before the spool is consistent.
 */
export async function startRelay(initial: RelayConfig, logger: Logger, options: RelayOptions = {}): Promise<RunningRelay> {
  // One owner per spool, before anything in it is read or changed (recovery included).
  const dir = initial.spool.dir;
  // A file-system error here (permissions, read-only, full) is the administrator's to fix: say which key.
  const lock = await checkSpoolOwner(dir)
    .then(() => acquireSpoolLock(dir))
    .catch((err: unknown) => {
      throw isErrno(err) ? spoolProblem(dir, err) : err;
    });
  try {
    return await startOwned(initial, logger, options, lock);
  } catch (err) {
    await lock.release();
    throw err;
  }
}

async function startOwned(initial: RelayConfig, logger: Logger, options: RelayOptions, lock: SpoolLock): Promise<RunningRelay> {
  let config = initial;
  const { spool, report, queuedIds } = await (async () => {
    const opened = await Spool.open(config.spool.dir, logger);
    return { spool: opened, ...(await opened.recover()) };
  })().catch((err: unknown) => {
    throw isErrno(err) ? spoolProblem(config.spool.dir, err) : err;
  });
  logger.info({ event: 'spool-recovered', dir: config.spool.dir, ...report }, 'spool ready');

  // Before anything is accepted or delivered, so that every message's life is in it.
  const mailLogPath = mailLogPathOf(config);
  const mailLogWriter = mailLogPath ? new MailLogWriter({ path: mailLogPath, retentionMs: config.mailLog.retention, recordSubjects: config.mailLog.recordSubjects, logger }) : null;
  mailLogWriter?.start();
  const mailLog = mailLogWriter ?? noMailLog;
  const mailLogReader = mailLogPath ? lazyReader(mailLogPath, () => mailLogWriter?.flush()) : null;

  const notifier = new FailureNotifier(spool, () => config, logger, mailLog);
  // Builds every account's token source and transport: an account this build cannot serve stops the start here.
  const worker = new RelayWorker({
    config,
    spool,
    logger,
    // Large Graph messages are staged inside the spool directory (see FactoryContext.stagingDir).
    factory: options.accountFactory ?? makeAccountFactory({ ...options.factoryContext, stagingDir: stagingDirOf(config.spool.dir) }),
    onFailed: (meta, expired) =>
      notifier.notify(meta, expired).catch((err: unknown) => {
        logger.error({ msgId: meta.id, event: 'notice-failed', err: String(err) }, 'failure notice error');
        return null;
      }),
    mailLog,
  });
  spool.on('queued', (meta) => worker.enqueue(meta.id, null, accountOf(meta)));
  void worker.start(queuedIds);
  const rescan = () => {
    worker.rescan().catch((err: unknown) => logger.error({ err }, 'queue rescan failed'));
  };
  /** A queue command or login poked the daemon (or the periodic safety net, without inotify): log their records, re-read the queue. */
  const onWake = () => {
    takeAdminActions(spool).then(
      (actions) => {
        for (const a of actions) {
          logger.info({ event: 'admin-action', action: a.action, msgId: a.msgId, user: a.user, pid: a.pid, at: a.at }, `queue ${a.action} ${a.msgId} by ${a.user}`);
          recordAdminAction(mailLog, a);
        }
      },
      (err: unknown) => logger.error({ err }, 'reading the queue commands\' records failed'),
    ).finally(
      // After the actions are recorded: a retried message's delivery comes after its retry in the mail log.
      rescan,
    );
  };
  const stopWatching = watchWakeups(spool, onWake);
  onWake(); // actions recorded while the daemon was not running
  const rescanTimer = setInterval(onWake, RESCAN_INTERVAL_MS);
  rescanTimer.unref();

  const credentials = new CredentialWatch(logger, {
    signins: () => Object.entries(signins(worker)).map(([account, expiresAt]) => ({ account, expiresAt })),
    lookup: options.registrationLookup === null ? undefined : (options.registrationLookup ?? ((account) => lookupSecretExpiry(account, registrationTokenSource(account, logger.child({ account: account.name, purpose: 'registration' }))))),
    ...(options.registrationLookupDelayMs !== undefined && { lookupDelayMs: options.registrationLookupDelayMs }),
    ...(options.factoryContext?.configFile !== undefined && { configFile: options.factoryContext.configFile }),
  });
  const space = new SpaceGuard(config.spool.dir, config.spool.minFreeSpace);
  const listener = createListener({ config, sink: spool, logger, space, mailLog });
  let addresses: Array<{ host: string; port: number }>;
  let http: HttpEndpoint | null = null;
  try {
    addresses = await listener.start();
    if (config.http) {
      const metrics = options.metrics;
      if (!metrics) throw new Error('http is configured but no metrics were given to startRelay');
      metrics.setSources({ queue: () => queueFigures(spool), connections: () => listener.connections(), signins: () => signins(worker), credentials: () => credentials.list() });
      const { host, port, tls: tlsFiles } = config.http;
      const tls = tlsFiles && readTlsFiles(tlsFiles, 'http.tls');
      const listenerAddress = addresses[0];
      const webConsole = config.console
        ? createConsole({
            tls: Boolean(tls),
            logger,
            sources: {
              config: () => config,
              spool,
              health: () => worker.health(),
              credentials: () => credentials.list(),
              queueFigures: () => queueFigures(spool),
              mailLog: () => mailLogReader?.get() ?? null,
              listener: () => ({ host: connectHost(listenerAddress?.host ?? '127.0.0.1'), port: listenerAddress?.port ?? 0, tls: Boolean(config.listen[0]?.tls) }),
              wake: onWake,
            },
          })
        : undefined;
      http = await startHttpEndpoint({ host, port, metrics, logger, readiness: readiness(spool, worker, credentials), tls, console: webConsole }).catch((err: unknown) => {
        throw isErrno(err) ? bindProblem('http.port', host, port, err) : err;
      });
    }
  } catch (err) {
    stopWatching();
    clearInterval(rescanTimer);
    await listener.close(0);
    await worker.stop(0);
    mailLogReader?.close();
    mailLogWriter?.close();
    throw err;
  }
  // After the start line: an expiring credential is said once the relay is known to run.
  queueMicrotask(() => credentials.watch(accountsOf(config).values()));
  logger.info(
    { event: 'listening', addresses, mailbox: config.microsoft365.mailbox, smtpHost: config.microsoft365.smtpHost, accounts: Object.keys(config.accounts).length + 1, routes: config.routes.length },
    'm365-relay is running',
  );

  let stopped: Promise<void> | null = null;
  return {
    addresses,
    spool,
    http,
    get mailLog() {
      return mailLogReader?.get() ?? null;
    },
    reload(next) {
      if (next.spool.dir !== config.spool.dir) logger.warn({ event: 'reload', reason: 'spool.dir changed' }, 'a new spool.dir takes effect after a restart');
      if (JSON.stringify(next.http) !== JSON.stringify(config.http)) logger.warn({ event: 'reload', reason: 'http changed' }, 'changes to http take effect after a restart');
      if (mailLogPathOf(next) !== mailLogPath) logger.warn({ event: 'reload', reason: 'mailLog changed' }, 'switching the mail log on or off, or moving it (mailLog.enabled, mailLog.path), takes effect after a restart');
      // console.users and allowPlainHttp apply at once; turning the console on or off needs a restart.
      if (Boolean(next.console) !== Boolean(config.console)) logger.warn({ event: 'reload', reason: 'console added or removed' }, 'adding or removing the console takes effect after a restart');
      // Both validate first and throw, changing nothing, when they cannot apply.
      const plan = worker.prepareReconfigure(next);
      try {
        listener.update(next);
      } catch (err) {
        plan.discard();
        throw err;
      }
      plan.apply();
      credentials.watch(accountsOf(next).values());
      mailLogWriter?.reconfigure({ retentionMs: next.mailLog.retention, recordSubjects: next.mailLog.recordSubjects });
      const m365Changed = JSON.stringify(next.microsoft365) !== JSON.stringify(config.microsoft365);
      const accountsChanged = JSON.stringify(next.accounts) !== JSON.stringify(config.accounts);
      config = next;
      logger.info({ event: 'reloaded', microsoft365Changed: m365Changed, accountsChanged }, 'configuration reloaded');
    },
    stop() {
      stopped ??= (async () => {
        logger.info({ event: 'stopping' }, 'stopping: no new connections; finishing what is under way');
        stopWatching();
        clearInterval(rescanTimer);
        credentials.stop();
        await listener.close(options.listenerGraceMs ?? 10_000);
        await worker.stop(options.deliveryGraceMs ?? 20_000);
        await http?.close();
        // After the worker: the outcomes of the last deliveries are written too.
        mailLogReader?.close();
        mailLogWriter?.close();
        await lock.release();
        logger.info({ event: 'stopped' }, 'stopped');
      })();
      return stopped;
    },
  };
}

/** The message states the `queue` commands lead to, as the mail log names them. */
const ADMIN_ACTION_KINDS: Record<AdminAction['action'], MailLogEventKind> = { retry: 'retry', hold: 'held', release: 'released', delete: 'deleted', restore: 'restored' };

/** A queue command (or the console, through the same records): who did what, and the state it led to. */
function recordAdminAction(mailLog: MailLogRecorder, a: AdminAction): void {
  const at = Number.isFinite(Date.parse(a.at)) ? Date.parse(a.at) : Date.now();
  mailLog.record({ id: a.msgId, at, kind: 'admin', detail: { user: a.user, action: a.action } });
  mailLog.record({ id: a.msgId, at, kind: ADMIN_ACTION_KINDS[a.action], detail: { user: a.user } });
}

/**
 * The daemon's read-only view of the mail log, opened at first use and again after a failure (the
 * file may not exist yet, or come back after a disk problem). `beforeRead` writes what is pending,
 * so the console sees what just happened.
 */
function lazyReader(path: string, beforeRead: () => void): { get(): MailLogReader | null; close(): void } {
  let reader: MailLogReader | null = null;
  let closed = false;
  return {
    get() {
      if (closed) return null;
      beforeRead();
      try {
        // The daemon's event loop must not wait on a lock: a short busy timeout.
        reader ??= MailLogReader.open(path, { busyTimeoutMs: 20 });
      } catch {
        return null;
      }
      return reader;
    },
    close() {
      closed = true;
      reader?.close();
      reader = null;
    },
  };
}

/** Counts per state from directory listings; the oldest waiting message from its id (ids start with the arrival time). */
async function queueFigures(spool: Spool): Promise<{ counts: Record<string, number>; oldestReceivedAt: number | null }> {
  const counts: Record<string, number> = {};
  let oldest: string | null = null;
  for (const state of ['queue', 'active', 'hold', 'failed'] as const) {
    const ids = await spool.ids(state);
    counts[state === 'queue' ? 'waiting' : state] = ids.length;
    if (state === 'queue' || state === 'active') for (const id of ids) if (oldest === null || id < oldest) oldest = id;
  }
  counts.corrupt = (await readdir(join(spool.dir, 'corrupt')).catch(() => [])).filter((n) => n.endsWith('.json')).length;
  return { counts, oldestReceivedAt: oldest ? receivedAtOf(oldest) : null };
}

/**
 * /readyz checks: the spool is writable; every account holds a valid token (`token`, with the
 * default account's fields at the top as before and each account under `accounts`); Exchange
 * answered every account's last attempts (`upstream`, likewise).
 */
/** Delegated accounts' sign-in ends, for the metric; null when the sign-in is lost. */
function signins(worker: RelayWorker): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const [account, lane] of Object.entries(worker.health())) {
    const token = lane.token;
    if (token.signinExpiresAt === undefined) continue; // app-only: no sign-in to lapse
    out[account] = token.needsLogin ? null : token.signinExpiresAt;
  }
  return out;
}

function readiness(spool: Spool, worker: RelayWorker, credentials: CredentialWatch) {
  let probe: { at: number; result: { ok: boolean; error: string | null } } | null = null;
  return async () => {
    if (!probe || Date.now() - probe.at > SPOOL_PROBE_CACHE_MS) probe = { at: Date.now(), result: await spool.probeWritable() };
    const lanes = worker.health();
    const tokens = Object.fromEntries(Object.entries(lanes).map(([name, h]) => [name, { ...h.token, pausedUntil: h.pausedUntil, waiting: h.waiting, inFlight: h.inFlight }]));
    const token = { ...lanes.default?.token, ok: Object.values(lanes).every((h) => h.token.ok), accounts: tokens };
    const known = credentials.list().map((c) => ({ ...c, expiresInSeconds: Math.round((Date.parse(c.expiresAt) - Date.now()) / 1000) }));
    return { spool: probe.result, token, upstream: { ...worker.upstreamHealth() }, credentials: { ok: known.every((c) => c.expiresInSeconds > 0), known } };
  };
}

/** Where transports stage large messages: inside the spool, on its disk, never in /tmp. */
export function stagingDirOf(spoolDir: string): string {
  return join(spoolDir, 'staging');
}
