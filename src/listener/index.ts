import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { SMTPServer, type SMTPServerAddress, type SMTPServerAuthentication, type SMTPServerAuthenticationResponse, type SMTPServerDataStream, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { AccessPolicy, createAuthThrottle, normalizeAddress, type AuthThrottle } from '../access/index.js';
import type { ListenConfig, RelayConfig } from '../config/index.js';
import type { Logger } from '../observability/logger.js';
import type { MessageSink, SpaceGuard } from '../spool/index.js';
import { ConnectionCounter } from './connectionLimits.js';
import { greetWithoutDelay } from './greeting.js';
import { queuedReply, reply } from './replies.js';

export interface ListenerOptions {
  config: RelayConfig;
  sink: MessageSink;
  logger: Logger;
  /** Refuses new mail while the spool's disk is short of space. */
  space?: SpaceGuard;
}

export interface Listener {
  /** Binds every configured listener; resolves with the bound addresses (port 0 becomes the real port). */
  start(): Promise<Array<{ host: string; port: number }>>;
  /** Stops accepting; transactions under way get up to `graceMs` to finish, then sockets are closed. */
  close(graceMs?: number): Promise<void>;
  /** Applies a new configuration's access rules and limits to new sessions (SIGHUP reload). */
  update(config: RelayConfig): void;
}

/** Per-listener state shared by the handlers; swapped whole on reload. */
interface Rules {
  config: RelayConfig;
  access: AccessPolicy;
}

export function createListener(options: ListenerOptions): Listener {
  const { sink, logger, space } = options;
  let rules: Rules = { config: options.config, access: new AccessPolicy(options.config) };
  const throttle: AuthThrottle = createAuthThrottle(options.config.limits);
  const counter = new ConnectionCounter(options.config.limits.maxConnectionsPerClient);
  const counted = new Set<string>();
  const name = hostname();

  const handlers: Partial<SMTPServerOptions> = {
    onConnect(session, callback) {
      const address = normalizeAddress(session.remoteAddress);
      if (!counter.tryOpen(address)) {
        logger.warn({ event: 'connection-refused', client: address, reason: 'per-client connection limit' }, 'too many connections from one client');
        return callback(reply('tooManyConnections'));
      }
      counted.add(session.id);
      callback();
    },

    onClose(session) {
      if (counted.delete(session.id)) counter.close(normalizeAddress(session.remoteAddress));
    },

    onAuth(auth: SMTPServerAuthentication, session: SMTPServerSession, callback: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void) {
      const address = normalizeAddress(session.remoteAddress);
      if (auth.method !== 'PLAIN' && auth.method !== 'LOGIN') return callback(reply('authMechanism'));
      if (throttle.isBlocked(address)) {
        logger.warn({ event: 'auth-blocked', client: address, username: auth.username }, 'authentication refused: too many failures from this address');
        return callback(reply('authBlocked'));
      }
      const username = auth.username ?? '';
      rules.access.users.authenticate(username, auth.password ?? '').then(
        (ok) => {
          if (ok) {
            throttle.recordSuccess(address);
            logger.info({ event: 'auth', client: address, username }, 'client authenticated');
            return callback(null, { user: username });
          }
          const { delayMs, blocked } = throttle.recordFailure(address);
          logger.warn({ event: 'auth-failed', client: address, username, blocked }, blocked ? 'authentication failed; address blocked for a while' : 'authentication failed');
          setTimeout(() => callback(reply('authFailed')), delayMs).unref();
        },
        (err: unknown) => {
          logger.error({ event: 'auth-error', client: address, err: String(err) }, 'authentication check failed');
          callback(reply('authFailed'));
        },
      );
    },

    onMailFrom(address: SMTPServerAddress, session: SMTPServerSession, callback: (err?: Error | null) => void) {
      if (!rules.access.mayRelay(session)) {
        logger.info({ event: 'rejected', client: normalizeAddress(session.remoteAddress), from: address.address, reason: 'not in allowNetworks and not authenticated' }, 'relay refused');
        return callback(reply('authRequired'));
      }
      if (!space) return callback();
      const args = address.args as Record<string, string> | false | undefined;
      const declared = (args && Number(args.SIZE)) || 0;
      space.hasRoom(declared).then(
        (room) => {
          if (room) return callback();
          logger.error({ event: 'disk-full', client: normalizeAddress(session.remoteAddress) }, 'refusing mail: the spool is short of disk space (spool.minFreeSpace)');
          callback(reply('diskFull'));
        },
        () => callback(),
      );
    },

    onRcptTo(_address: SMTPServerAddress, session: SMTPServerSession, callback: (err?: Error | null) => void) {
      if (!rules.access.mayRelay(session)) return callback(reply('authRequired'));
      if (session.envelope.rcptTo.length >= rules.config.maxRecipients) return callback(reply('tooManyRecipients'));
      callback();
    },

    onData(stream: SMTPServerDataStream, session: SMTPServerSession, callback: (err?: Error | null, message?: string) => void) {
      void receive(stream, session).then(
        (message) => callback(null, message),
        (err: Error) => callback(err),
      );
    },
  };

  async function receive(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<string> {
    const client = normalizeAddress(session.remoteAddress);
    if (!rules.access.mayRelay(session)) {
      stream.resume();
      await new Promise((resolve) => stream.once('end', resolve));
      throw reply('authRequired');
    }
    const message = sink.incoming();
    let size: number;
    try {
      size = await message.write(stream);
    } catch (err) {
      await message.abort();
      logger.error({ event: 'spool-error', msgId: message.id, client, err: (err as Error).message }, 'could not write the message to the spool: answered 451');
      throw reply('spoolWrite');
    }
    if (stream.sizeExceeded) {
      await message.abort();
      logger.info({ event: 'rejected', client, reason: 'message too large', size }, 'message over maxMessageSize refused');
      throw reply('tooLarge');
    }
    const envelope = {
      from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
      to: session.envelope.rcptTo.map((r) => r.address),
    };
    const user = typeof session.user === 'string' ? session.user : undefined;
    try {
      await message.commit({ envelope, client: { address: client, user, helo: session.hostNameAppearsAs, secure: session.secure } });
    } catch (err) {
      await message.abort();
      logger.error({ event: 'spool-error', msgId: message.id, client, err: (err as Error).message }, 'could not queue the message: answered 451');
      throw reply('spoolWrite');
    }
    logger.info({ event: 'received', msgId: message.id, client, user, size, from: envelope.from, recipients: envelope.to.length, tls: Boolean(session.secure) }, 'message queued');
    return queuedReply(message.id);
  }

  if (!greetWithoutDelay()) logger.debug({ event: 'greeting-delay' }, 'smtp-server greets after its built-in 100 ms early-talker delay');
  const servers = options.config.listen.map((listen) => new SMTPServer(serverOptions(listen, options.config, name, handlers)));
  for (const server of servers) {
    // A socket error on one client must never take the daemon down.
    server.on('error', (err: Error) => logger.warn({ event: 'smtp-error', err: err.message }, 'SMTP connection error'));
  }

  return {
    async start() {
      const bound: Array<{ host: string; port: number }> = [];
      for (const [i, server] of servers.entries()) {
        const listen = options.config.listen[i]!;
        await new Promise<void>((resolve, reject) => {
          const onError = (err: Error) => reject(err);
          server.server.once('error', onError);
          server.listen(listen.port, listen.host, () => {
            server.server.off('error', onError);
            resolve();
          });
        });
        const address = server.server.address();
        bound.push({ host: listen.host, port: typeof address === 'object' && address ? address.port : listen.port });
      }
      return bound;
    },
    async close(graceMs = 10_000) {
      await Promise.all(
        servers.map(
          (server) =>
            new Promise<void>((resolve) => {
              (server.options as { closeTimeout?: number }).closeTimeout = graceMs;
              server.close(() => resolve());
            }),
        ),
      );
    },
    update(config) {
      rules = { config, access: new AccessPolicy(config) };
    },
  };
}

function serverOptions(listen: ListenConfig, config: RelayConfig, name: string, handlers: Partial<SMTPServerOptions>): SMTPServerOptions {
  const tls = listen.tls ? { key: readFileSync(listen.tls.key), cert: readFileSync(listen.tls.cert) } : undefined;
  return {
    name,
    banner: 'm365-relay',
    size: config.maxMessageSize,
    // Devices that can log in do so with PLAIN or LOGIN; nothing else is offered.
    authMethods: ['PLAIN', 'LOGIN'],
    // AUTH is optional: clients in allowNetworks relay without it; onMailFrom enforces the rule.
    authOptional: true,
    // With a certificate, passwords only travel after STARTTLS. Without one (old devices on the
    // LAN that cannot do TLS) AUTH over plain text is allowed, as the administrator chose.
    allowInsecureAuth: !tls,
    hideSTARTTLS: !tls,
    ...(tls ? { key: tls.key, cert: tls.cert } : {}),
    secure: false,
    disableReverseLookup: true,
    hideENHANCEDSTATUSCODES: true,
    hideDSN: true,
    hideREQUIRETLS: true,
    maxClients: config.limits.maxConnections,
    socketTimeout: config.limits.socketTimeout,
    closeTimeout: 10_000,
    // These commands leak information or are not for devices.
    disabledCommands: tls ? [] : ['STARTTLS'],
    logger: false,
    ...handlers,
  };
}
