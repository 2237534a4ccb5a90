import { hostname } from 'node:os';
import { SMTPServer } from 'smtp-server';
import { AccessPolicy, createAuthThrottle, type AuthThrottle } from '../access/index.js';
import type { ListenConfig, RelayConfig } from '../config/index.js';
import type { Logger } from '../observability/logger.js';
import { Router } from '../routing/index.js';
import type { MessageSink, SpaceGuard } from '../spool/index.js';
import { ConnectionCounter } from './connectionLimits.js';
import { installAuthGate } from './authGate.js';
import { greetWithoutDelay } from './greeting.js';
import { createHandlers, type HandlerContext, type Rules } from './handlers.js';
import { readTls, serverOptions, type TlsMaterial } from './options.js';
import { REPLIES } from './replies.js';
import { bindProblem } from '../startError.js';

import type { MailLogRecorder } from '../maillog/types.js';
export { ListenerTlsError } from './options.js';
export { REPLIES, queuedReply } from './replies.js';

export interface ListenerOptions {
  config: RelayConfig;
  /** Where accepted messages go (the Spool). */
  sink: MessageSink;
  logger: Logger;
  /** Called with the queue id after a message was made durable and answered 250. */
  onQueued?: (id: string) => void;
  /** Refuses new mail (452 4.3.1) while the spool's disk is short of space. */
  space?: SpaceGuard;
  /** Told about each message queued (after the spool has it, before the 250); never waits. */
  mailLog?: MailLogRecorder;
}

export interface BoundAddress {
  host: string;
  port: number;
}

export interface Listener {
  /** Binds every configured listener; resolves with the bound addresses (port 0 becomes the real port). */
  start(): Promise<BoundAddress[]>;
  /**
   * Stops accepting connections, closes idle sessions at once (421), lets transactions under way
   * finish for up to `graceMs` (default 10 s), then closes the remaining sockets. Resolves once
   * the spool writes of those transactions have settled. Safe to call more than once.
   */
  close(graceMs?: number): Promise<void>;
  /**
   * Applies a reloaded configuration to new commands: allowNetworks, users, routes, maxRecipients,
   * maxMessageSize, connection and auth limits, socket timeout, and re-reads TLS certificates.
   * Changes to `listen` (ports, hosts, adding or removing tls) need a restart. Throws, changing
   * nothing, when the new configuration cannot be applied (bad hash, unreadable certificate).
   */
  update(config: RelayConfig): void;
  /** Open SMTP connections per listener, keyed "host:port" (for metrics). */
  connections(): Record<string, number>;
}

const sameThrottleLimits = (a: RelayConfig['limits'], b: RelayConfig['limits']) =>
  a.maxAuthFailures === b.maxAuthFailures && a.authFailureWindow === b.authFailureWindow && a.authBlockDuration === b.authBlockDuration;

const listenKey = (listen: readonly ListenConfig[]) => JSON.stringify(listen.map((l) => [l.host, l.port, Boolean(l.tls), l.authRequiresTls]));

/** One smtp-server per `listen` entry, sharing the access policy, limits and the spool. */
export function createListener(options: ListenerOptions): Listener {
  const { sink, logger, space, onQueued, mailLog } = options;
  const listens = options.config.listen;
  let rules: Rules = { config: options.config, access: new AccessPolicy(options.config), router: new Router(options.config.routes) };
  let throttle: AuthThrottle = createAuthThrottle(options.config.limits);
  let closing = false;
  let closed: Promise<void> | null = null;
  const inFlight = new Set<Promise<unknown>>();

  const context: HandlerContext = {
    rules: () => rules,
    throttle: () => throttle,
    connections: new ConnectionCounter(),
    sink,
    logger,
    space,
    onQueued,
    mailLog,
    closing: () => closing,
    track(work) {
      const settled = work.then(
        () => undefined,
        () => undefined,
      );
      inFlight.add(settled);
      void settled.then(() => inFlight.delete(settled));
    },
  };

  if (!greetWithoutDelay()) logger.debug({ event: 'greeting-delay' }, 'smtp-server greets after its built-in 100 ms early-talker delay');
  const name = hostname();
  const certificates = listens.map(readTls);
  const gate = installAuthGate();
  if (!gate) logger.debug({ event: 'auth-gate' }, 'smtp-server internals differ: AUTH before STARTTLS is disabled instead of refused with 538');
  const servers = listens.map((listen, i) => {
    const tls = certificates[i];
    const auth = { tls: Boolean(tls), authRequiresTls: listen.authRequiresTls, gate };
    const server = new SMTPServer(serverOptions(listen, options.config, name, tls, createHandlers(context, auth), auth));
    // A client's socket error (reset, TLS handshake garbage) is emitted here; without a listener
    // it would crash the process. It never ends the listener.
    server.on('error', (err: Error & { code?: string; remoteAddress?: string }) => {
      const fields = { event: 'smtp-error', listener: `${listen.host}:${listen.port}`, client: err.remoteAddress, code: err.code, err: err.message };
      // A client's broken connection is routine; an error of the listening socket itself is not.
      if (err.remoteAddress) logger.debug(fields, 'SMTP connection error');
      else logger.warn(fields, 'SMTP listener error');
    });
    return server;
  });

  async function listenOne(server: SMTPServer, listen: ListenConfig, index: number): Promise<BoundAddress> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(bindProblem(`listen[${index}].port`, listen.host, listen.port, err));
      };
      server.server.once('error', onError);
      server.listen(listen.port, listen.host, () => {
        server.server.off('error', onError);
        resolve();
      });
    });
    const address = server.server.address();
    const bound = typeof address === 'object' && address ? { host: address.address, port: address.port } : { host: listen.host, port: listen.port };
    logger.debug({ event: 'listener-bound', ...bound, tls: Boolean(listen.tls) }, 'SMTP listener bound');
    return bound;
  }

  function closeServer(server: SMTPServer, graceMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      // Sessions outside a transaction have nothing to finish: tell them at once (421) instead of
      // waiting out the grace period, and the others as soon as their transaction is answered.
      // smtp-server alone would only answer 421 to their next command, and keep a silent client
      // until closeTimeout.
      const [code, text] = REPLIES.shuttingDown;
      const told = new WeakSet<object>();
      const sweep = () => {
        for (const connection of server.connections) {
          if (told.has(connection) || connection.session?.envelope?.mailFrom) continue;
          told.add(connection);
          connection.send(code, text); // a 421 also closes the connection
        }
      };
      const sweeper = setInterval(sweep, 25);
      // smtp-server reads closeTimeout when close() is called: sessions still open when it runs
      // out get "421 Server shutting down" and are closed.
      server.options.closeTimeout = Math.max(1, graceMs);
      server.close(() => {
        clearInterval(sweeper);
        resolve();
      });
      sweep();
    });
  }

  let bound: BoundAddress[] = [];
  return {
    async start() {
      bound = [];
      try {
        for (const [i, server] of servers.entries()) bound.push(await listenOne(server, listens[i]!, i));
      } catch (err) {
        // Do not leave half the listeners bound.
        await Promise.all(servers.map((server) => closeServer(server, 1)));
        throw err;
      }
      return bound;
    },

    close(graceMs = 10_000) {
      closed ??= (async () => {
        closing = true;
        const deadline = Date.now() + graceMs;
        await Promise.all(servers.map((server) => closeServer(server, graceMs)));
        // Sockets are gone; a spool write still finishing (fsync, rename) is awaited, bounded.
        if (inFlight.size) {
          let timer: NodeJS.Timeout | undefined;
          const wait = new Promise<void>((resolve) => {
            timer = setTimeout(resolve, Math.max(0, deadline - Date.now()) + 1000);
          });
          await Promise.race([Promise.all(inFlight), wait]);
          clearTimeout(timer);
        }
      })();
      return closed;
    },

    connections() {
      const open: Record<string, number> = {};
      servers.forEach((server, i) => {
        const address = bound[i];
        if (address) open[`${address.host}:${address.port}`] = (server as unknown as { connections: Set<unknown> }).connections.size;
      });
      return open;
    },

    update(config) {
      // Build everything first: a configuration that cannot be applied changes nothing.
      const access = new AccessPolicy(config);
      const router = new Router(config.routes);
      const certificates: Array<TlsMaterial | undefined> = listens.map((listen, i) => {
        const next = config.listen[i];
        return listen.tls && next?.tls && next.host === listen.host && next.port === listen.port ? readTls(next) : undefined;
      });
      if (listenKey(config.listen) !== listenKey(listens)) {
        logger.warn({ event: 'reload', reason: 'listen changed' }, 'changes to listen (ports, hosts, tls on or off) take effect after a restart');
      }
      if (!sameThrottleLimits(rules.config.limits, config.limits)) throttle = createAuthThrottle(config.limits);
      rules = { config, access, router };
      for (const [i, server] of servers.entries()) {
        // smtp-server reads these options per command or per connection.
        server.options.size = config.maxMessageSize;
        server.options.socketTimeout = config.limits.socketTimeout;
        server.options.maxClients = config.limits.maxConnections;
        const tls = certificates[i];
        if (tls) server.updateSecureContext({ key: tls.key, cert: tls.cert });
      }
      logger.info({ event: 'reload', allowNetworks: config.allowNetworks.length, users: access.users.size, routes: config.routes.length }, 'listener access rules, routes and limits updated');
    },
  };
}
