import type {
  SMTPServerAddress,
  SMTPServerAuthentication,
  SMTPServerAuthenticationResponse,
  SMTPServerDataStream,
  SMTPServerOptions,
  SMTPServerSession,
} from 'smtp-server';
import { ClientRateLimit, type AccessPolicy, type AuthThrottle } from '../access/index.js';
import type { RelayConfig } from '../config/index.js';
import { addressKey, addressProblem } from '../mail/addresses.js';
import type { MailLogRecorder } from '../maillog/types.js';
import type { Logger } from '../observability/logger.js';
import type { Router } from '../routing/index.js';
import type { MessageSink, SpaceGuard } from '../spool/index.js';
import type { ConnectionCounter } from './connectionLimits.js';
import { gateAuthUntilTls } from './authGate.js';
import { disabledCommands } from './options.js';
import { drain, receive } from './data.js';
import { clientAddress, userOf } from './envelope.js';
import { isReply, queuedReply, reply } from './replies.js';

/** The configuration-derived state the handlers read; replaced whole on reload. */
export interface Rules {
  readonly config: RelayConfig;
  readonly access: AccessPolicy;
  /** Chooses the Microsoft 365 account of each message as it is queued. */
  readonly router: Router;
}

/** What the handlers of every listener share. */
export interface HandlerContext {
  rules(): Rules;
  throttle(): AuthThrottle;
  readonly connections: ConnectionCounter;
  readonly sink: MessageSink;
  readonly logger: Logger;
  readonly space?: SpaceGuard;
  readonly onQueued?: (id: string) => void;
  /** Told about each message queued; never waits. */
  readonly mailLog?: MailLogRecorder;
  /** True once close() began: new sessions are refused. */
  closing(): boolean;
  /** Registers a DATA transaction under way, so close() can wait for its spool write. */
  track(work: Promise<unknown>): void;
}

type Handlers = Required<Pick<SMTPServerOptions, 'onConnect' | 'onSecure' | 'onAuth' | 'onMailFrom' | 'onRcptTo' | 'onData' | 'onClose'>>;

type Done = (err?: Error | null) => void;

/** How a listener treats AUTH before STARTTLS. */
export interface ListenerAuth {
  /** The listener has a certificate (STARTTLS is offered). */
  tls: boolean;
  /** AUTH waits for STARTTLS (listen[].authRequiresTls). */
  authRequiresTls: boolean;
  /** The AUTH gate is installed (authGate.ts): refuse with 538 and log; else disable AUTH before STARTTLS. */
  gate: boolean;
}

/**
 * The smtp-server handlers of one listener. With `authRequiresTls`, AUTH is withheld until the
 * session is encrypted: not advertised, and refused with 538 5.7.11 (logged) when tried.
 */
export function createHandlers(ctx: HandlerContext, listener: ListenerAuth): Handlers {
  const { logger } = ctx;
  /** Sessions holding a slot in ctx.connections. */
  const counted = new WeakSet<SMTPServerSession>();
  /** The transaction number for which a too-many-recipients reject was logged (one line each). */
  const loggedRcptLimit = new WeakMap<SMTPServerSession, number>();

  /** A handler must never throw into smtp-server (onConnect is not guarded there) nor crash us. */
  function guarded<A extends unknown[]>(what: string, fn: (...args: [...A, Done]) => void, fallback: () => Error) {
    return (...args: [...A, Done]) => {
      const done = args[args.length - 1] as Done;
      try {
        fn(...args);
      } catch (err) {
        logger.error({ event: 'handler-error', handler: what, err: (err as Error).message }, 'SMTP handler failed');
        done(fallback());
      }
    };
  }

  const onConnect = guarded<[SMTPServerSession]>('onConnect', (session, done) => {
    const client = clientAddress(session);
    if (ctx.closing()) return done(reply('shuttingDown'));
    const { limits } = ctx.rules().config;
    const slot = ctx.connections.tryOpen(client, { perClient: limits.maxConnectionsPerClient, total: limits.maxConnections });
    if (slot !== 'ok') {
      logger.warn({ event: 'connection-refused', client, reason: slot === 'total' ? 'maxConnections' : 'maxConnectionsPerClient' }, 'connection refused: too many connections');
      return done(reply(slot === 'total' ? 'serverBusy' : 'tooManyConnections'));
    }
    counted.add(session);
    // authRequiresTls: AUTH is neither advertised nor accepted before STARTTLS.
    if (listener.authRequiresTls && !session.secure) {
      if (listener.gate) {
        gateAuthUntilTls(session, (method) => {
          logger.warn(
            { event: 'auth-refused', client, method, reason: 'AUTH before STARTTLS on a listener with authRequiresTls' },
            'authentication refused (538 5.7.11): the client must use STARTTLS first; for a device that cannot, see authRequiresTls in the README',
          );
        });
      } else {
        session.disabledCommands = [...disabledCommands(listener.tls), 'AUTH'];
      }
    }
    logger.debug({ event: 'connect', client, session: session.id }, 'client connected');
    done();
  }, () => reply('serverBusy'));

  const onSecure = guarded<[unknown, SMTPServerSession]>('onSecure', (_socket, session, done) => {
    // Back to the listener's own list: AUTH is available now that the session is encrypted.
    delete session.disabledCommands;
    logger.debug({ event: 'starttls', client: clientAddress(session), session: session.id }, 'session upgraded to TLS');
    done();
  }, () => reply('serverBusy'));

  function onClose(session: SMTPServerSession): void {
    if (!counted.has(session)) return;
    counted.delete(session);
    ctx.connections.close(clientAddress(session));
  }

  function onAuth(
    auth: SMTPServerAuthentication,
    session: SMTPServerSession,
    callback: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void,
  ): void {
    try {
      const client = clientAddress(session);
      const username = auth.username ?? '';
      if (auth.method !== 'PLAIN' && auth.method !== 'LOGIN') return callback(reply('authMechanism'));
      // Backstop: AUTH is disabled before STARTTLS on a TLS listener, and smtp-server refuses it too.
      if (listener.authRequiresTls && !session.secure) return callback(reply('encryptionRequired'));
      const throttle = ctx.throttle();
      if (throttle.isBlocked(client)) {
        logger.warn({ event: 'auth-blocked', client, username }, 'authentication refused: too many failures from this address');
        return callback(reply('authBlocked'));
      }
      // PLAIN may name a different identity to act as (authzid); we do not offer proxy logins.
      const proxyLogin = auth.method === 'PLAIN' && Boolean(auth.authzid) && Boolean(auth.authcid) && auth.authzid !== auth.authcid;
      const rules = ctx.rules();
      // The password is checked even for a refused authzid: the same work, the same time.
      rules.access.authenticate(username, auth.password ?? '').then(
        (valid) => {
          if (valid && !proxyLogin) {
            throttle.recordSuccess(client);
            logger.info({ event: 'auth', client, username, method: auth.method, secure: Boolean(session.secure) }, 'client authenticated');
            return callback(null, { user: username });
          }
          const { delayMs, blocked } = throttle.recordFailure(client);
          logger.warn(
            { event: 'auth-failed', client, username, method: auth.method, blocked, ...(proxyLogin ? { reason: 'authzid differs from the login name' } : {}) },
            blocked ? 'authentication failed; address blocked for a while' : 'authentication failed',
          );
          // Failures answer more slowly (see AuthThrottle); the timer must not keep the process up.
          setTimeout(() => callback(reply('authFailed')), delayMs).unref();
        },
        (err: unknown) => {
          logger.error({ event: 'auth-error', client, username, err: (err as Error).message }, 'authentication check failed');
          callback(reply('authTemporary'));
        },
      );
    } catch (err) {
      logger.error({ event: 'handler-error', handler: 'onAuth', err: (err as Error).message }, 'SMTP handler failed');
      callback(reply('authTemporary'));
    }
  }

  /** Whether MAIL FROM carried SMTPUTF8 (RFC 6531): only then may addresses have non-ASCII local parts. */
  function declaredSmtpUtf8(mailFrom: SMTPServerAddress): boolean {
    const args = mailFrom.args as Record<string, unknown> | false | undefined;
    return Boolean(args && 'SMTPUTF8' in args);
  }

  const clientRate = new ClientRateLimit();

  const onMailFrom = guarded<[SMTPServerAddress, SMTPServerSession]>('onMailFrom', (address, session, done) => {
    const client = clientAddress(session);
    if (!ctx.rules().access.mayRelay(session)) {
      logger.info({ event: 'rejected', client, from: address.address, reason: 'not in allowNetworks and not authenticated' }, 'relay refused: authentication required');
      return done(reply('authRequired'));
    }
    const senderProblem = address.address ? addressProblem(address.address, declaredSmtpUtf8(address)) : null;
    if (senderProblem) {
      logger.info({ event: 'rejected', client, from: address.address, reason: senderProblem }, 'sender refused: address cannot be relayed');
      return done(reply(senderProblem === 'non-ascii-local-part' ? 'nonAsciiLocalPart' : 'badSenderDomain'));
    }
    const { access, config } = ctx.rules();
    const who = { user: userOf(session), address: client };
    if (!access.senders.allows(who, address.address)) {
      logger.info({ event: 'rejected', client, user: who.user, from: address.address || '<>', reason: 'sender not allowed' }, 'sender refused: this client may not send as that address (allowedSenders)');
      return done(reply('senderNotAllowed'));
    }
    // Counted at MAIL FROM: a transaction the client starts is a message it tries to send.
    if (!clientRate.admit(who.user ?? client, performance.now(), config.limits.messagesPerMinutePerClient)) {
      logger.info({ event: 'rejected', client, user: who.user, from: address.address || '<>', reason: 'client rate limit', messagesPerMinute: config.limits.messagesPerMinutePerClient }, 'sender slowed down: limits.messagesPerMinutePerClient reached');
      return done(reply('clientRateLimited'));
    }
    if (!ctx.space) return done();
    const declared = (address.args && Number(address.args.SIZE)) || 0;
    ctx.space.hasRoom(declared).then(
      (room) => {
        if (room) return done();
        logger.error({ event: 'disk-full', client }, 'refusing mail: the spool is short of disk space (spool.minFreeSpace)');
        done(reply('diskFull'));
      },
      () => done(),
    );
  }, () => reply('internalError'));

  const onRcptTo = guarded<[SMTPServerAddress, SMTPServerSession]>('onRcptTo', (address, session, done) => {
    const { config, access } = ctx.rules();
    if (!access.mayRelay(session)) return done(reply('authRequired'));
    const problem = addressProblem(address.address, session.envelope.mailFrom ? declaredSmtpUtf8(session.envelope.mailFrom) : false);
    if (problem) {
      logger.info({ event: 'rejected', client: clientAddress(session), to: address.address, reason: problem }, 'recipient refused: address cannot be relayed');
      return done(reply(problem === 'non-ascii-local-part' ? 'nonAsciiLocalPart' : 'badDomain'));
    }
    const recipients = session.envelope.rcptTo;
    // A repeated recipient (smtp-server folds exact repeats; user@bücher.de and
    // user@xn--bcher-kva.de are one too) is not a new one.
    const key = addressKey(address.address);
    const repeated = recipients.some((r) => addressKey(r.address) === key);
    if (!repeated && recipients.length >= config.maxRecipients) {
      if (loggedRcptLimit.get(session) !== session.transaction) {
        loggedRcptLimit.set(session, session.transaction);
        logger.info({ event: 'rejected', client: clientAddress(session), reason: 'too many recipients', maxRecipients: config.maxRecipients }, 'recipient refused: maxRecipients reached');
      }
      return done(reply('tooManyRecipients'));
    }
    done();
  }, () => reply('internalError'));

  function onData(stream: SMTPServerDataStream, session: SMTPServerSession, callback: (err?: Error | null, message?: string) => void): void {
    // smtp-server destroys the stream with an error if the client goes away mid-message; the
    // spool sees that through its pipeline, this listener only keeps it from being unhandled.
    stream.on('error', () => undefined);
    const work = receive(ctx, stream, session).then(
      ({ id }) => {
        callback(null, queuedReply(id));
        try {
          ctx.onQueued?.(id);
        } catch (err) {
          logger.error({ event: 'handler-error', handler: 'onQueued', msgId: id, err: (err as Error).message }, 'onQueued failed');
        }
      },
      (err: unknown) => {
        // Only our own replies go back as they are; anything unexpected is a temporary failure,
        // never a 5xx the device would bounce on.
        if (!isReply(err)) logger.error({ event: 'handler-error', handler: 'onData', err: (err as Error)?.message }, 'unexpected error while receiving a message: answered 451');
        return drain(stream).then(() => callback(isReply(err) ? err : reply('spoolWrite')));
      },
    );
    ctx.track(work);
  }

  return { onConnect, onSecure, onAuth, onMailFrom, onRcptTo, onData, onClose };
}
