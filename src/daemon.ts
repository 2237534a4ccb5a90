import type { RelayConfig } from './config/index.js';
import { createListener } from './listener/index.js';
import { TokenProvider, TokenError } from './oauth/index.js';
import type { Logger } from './observability/logger.js';
import { RelayWorker } from './relay/index.js';
import { SpaceGuard, Spool, watchWakeups } from './spool/index.js';

/** How often the worker re-reads the queue from disk even without a wake-up. */
const RESCAN_INTERVAL_MS = 5 * 60_000;

export interface RunningRelay {
  readonly addresses: Array<{ host: string; port: number }>;
  readonly spool: Spool;
  /** Graceful stop: no new connections, current transactions and deliveries finish (bounded). */
  stop(): Promise<void>;
}

export interface StopTimeouts {
  /** How long SMTP clients mid-transaction may take to finish. */
  listenerGraceMs?: number;
  /** How long upstream deliveries under way may take before their connections are closed. */
  deliveryGraceMs?: number;
}

/**
 * Starts the relay: recovers the spool, starts the worker on what is queued, then opens the
 * listeners. The order matters: nothing is accepted before the spool is consistent.
 */
export async function startRelay(config: RelayConfig, logger: Logger, timeouts: StopTimeouts = {}): Promise<RunningRelay> {
  const spool = await Spool.open(config.spool.dir, logger);
  const { report, queuedIds } = await spool.recover();
  logger.info({ event: 'spool-recovered', dir: config.spool.dir, ...report }, 'spool ready');

  const tokens = new TokenProvider(config.microsoft365, logger);
  tokens.startBackgroundRefresh();
  const worker = new RelayWorker({ config, spool, tokens, logger });
  spool.on('queued', (meta) => worker.enqueue(meta.id));
  void worker.start(queuedIds);
  const rescan = () => {
    worker.rescan().catch((err: unknown) => logger.error({ err: String(err) }, 'queue rescan failed'));
  };
  const stopWatching = watchWakeups(spool, rescan);
  const rescanTimer = setInterval(rescan, RESCAN_INTERVAL_MS);
  rescanTimer.unref();

  // Ask for a token now, so that a credential problem shows in the log at start, not at the first message.
  tokens.getToken().catch((err: unknown) => {
    if (err instanceof TokenError) {
      logger.error({ event: 'alert', alert: 'token', advice: err.advice, kind: err.kind }, `cannot get an access token: ${err.message}`);
    }
  });

  const space = new SpaceGuard(config.spool.dir, config.spool.minFreeSpace);
  const listener = createListener({ config, sink: spool, logger, space });
  let addresses: Array<{ host: string; port: number }>;
  try {
    addresses = await listener.start();
  } catch (err) {
    stopWatching();
    clearInterval(rescanTimer);
    tokens.stopBackgroundRefresh();
    await worker.stop(0);
    throw err;
  }
  logger.info({ event: 'listening', addresses, mailbox: config.microsoft365.mailbox, smtpHost: config.microsoft365.smtpHost }, 'm365-relay is running');

  let stopped: Promise<void> | null = null;
  return {
    addresses,
    spool,
    stop() {
      stopped ??= (async () => {
        logger.info({ event: 'stopping' }, 'stopping: no new connections; finishing what is under way');
        stopWatching();
        clearInterval(rescanTimer);
        await listener.close(timeouts.listenerGraceMs ?? 10_000);
        await worker.stop(timeouts.deliveryGraceMs ?? 20_000);
        tokens.stopBackgroundRefresh();
        logger.info({ event: 'stopped' }, 'stopped');
      })();
      return stopped;
    },
  };
}
