// The simulated Exchange Online client submission endpoint (smtp.office365.com:587): plain TCP,
// STARTTLS, then SASL XOAUTH2 with a token from the simulated Entra ID.
import { randomBytes } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import {
  SMTPServer,
  type SMTPServerAddress,
  type SMTPServerAuthentication,
  type SMTPServerAuthenticationResponse,
  type SMTPServerDataStream,
  type SMTPServerSession,
} from 'smtp-server';
import type { PemPair } from './certs.js';
import { maySendAs, type Directory, type MailboxEntry } from './directory.js';
import { replyError, replyLineError, type Faults } from './faults.js';
import { fromAddresses } from './fromHeader.js';
import { SMTP_SCOPES } from './delegated.js';
import { ConcurrencyLimiter, RateLimiter } from './limits.js';
import type { IssuedToken, TokenStore } from './tokens.js';
import type { ReceivedMessage, SimulatorStats } from './types.js';

export const SERVER_NAME = 'SIM.simulator.local';
/** What Exchange Online advertises (150 MiB). */
export const MAX_MESSAGE_SIZE = 157_286_400;

export const Replies = {
  authBeforeTls: () => replyError(504, '5.7.4 Unrecognized authentication type'),
  notAuthenticated: '5.7.57 Client not authenticated to send mail',
  badToken: () => replyError(535, '5.7.3 Authentication unsuccessful'),
  basicAuthDisabled: () => replyError(535, '5.7.139 Authentication unsuccessful, basic authentication is disabled.'),
  smtpAuthDisabled: () => replyError(535, '5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox.'),
  concurrency: () => replyError(432, '4.3.2 Concurrent connections limit exceeded. Visit https://aka.ms/concurrent_sending for more information.'),
  rate: () => replyError(450, '4.7.0 Message submission rate for this client has exceeded the configured limit'),
  tooBig: () => replyError(552, '5.3.4 Message size exceeds fixed maximum message size'),
  // High Volume Email's own refusals (Microsoft's HVE troubleshooting and OAuth pages).
  hveTokenExpiringSoon: () => replyError(501, '5.5.127 Authentication unsuccessful. Token will expire soon'),
  hveTokenExpired: () => replyError(535, '5.7.143 Expired token'),
  hveAppNotAllowed: () => replyError(550, '5.7.240 The application is not allowed for use with this High Volume Email account'),
  hveApiPermission: () => replyError(535, '5.7.144 XOAUTH2 authentication failed. Invalid API permission'),
  hveExternalRecipient: (address: string) => replyError(550, `5.5.105 ${address}: external recipients are not allowed for High Volume Email`),
  tooManyRecipients: () => replyError(452, '4.5.3 Too many recipients'),
  sendAsDenied: (mailbox: string, address: string) =>
    replyError(554, `5.2.252 SendAsDenied; ${mailbox} not allowed to send as ${address}; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied`),
} as const;

/** The rules that make an endpoint High Volume Email's instead of a mailbox's. */
export interface HveRules {
  /** Lower-case accepted domains of the tenant: recipients elsewhere are refused (550 5.5.105). */
  acceptedDomains: Set<string>;
  maxRecipients: number;
  maxMessageSize: number;
  /** A token with less life than this at AUTH is refused (501 5.5.127). */
  minTokenLifetimeMs: number;
}

export interface SmtpSubmissionOptions {
  /** Set for the High Volume Email endpoint: HVE accounts only, its limits and refusals. */
  hve?: HveRules;
  host: string;
  port: number;
  tls: PemPair;
  tenantId: string;
  maxConnectionsPerMailbox: number;
  rateLimit: { messages: number; perSeconds: number } | null;
  directory: Directory;
  tokens: TokenStore;
  faults: Faults;
  stats: SimulatorStats;
  onMessage(message: ReceivedMessage): void;
}

export interface SmtpSubmission {
  readonly port: number;
  /** Forget the rate-limit history (reset()). */
  clearRateHistory(): void;
  close(): Promise<void>;
}

/** What the simulator knows about one SMTP session, beyond smtp-server's session object. */
interface SessionState {
  /** The TLS socket once STARTTLS completed. */
  tlsSocket?: Socket;
  /** Set once XOAUTH2 succeeded (and a concurrency slot was taken). */
  mailbox?: MailboxEntry;
  clientId?: string;
  /** The signed-in user, when a delegated token authenticated the session. */
  user?: string;
}

const socketKey = (address: string | undefined, port: number | undefined): string => `${(address ?? '').replace(/^::ffff:/, '')}|${port ?? 0}`;

export async function startSmtpSubmission(options: SmtpSubmissionOptions): Promise<SmtpSubmission> {
  const { directory, tokens, faults, stats, hve } = options;
  const concurrency = new ConcurrencyLimiter(options.maxConnectionsPerMailbox);
  const rate = new RateLimiter(options.rateLimit);
  const sessions = new Map<string, SessionState>();
  /** Every accepted TCP socket, by remote address and port, until it closes. */
  const rawSockets = new Map<string, Socket>();

  const stateOf = (session: SMTPServerSession): SessionState => {
    let state = sessions.get(session.id);
    if (!state) {
      state = {};
      sessions.set(session.id, state);
    }
    return state;
  };

  const destroySession = (session: SMTPServerSession): void => {
    const state = sessions.get(session.id);
    state?.tlsSocket?.destroy();
    rawSockets.get(socketKey(session.remoteAddress, session.remotePort))?.destroy();
  };

  function onAuth(
    auth: SMTPServerAuthentication,
    session: SMTPServerSession,
    callback: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void,
  ): void {
    const fail = (err: Error): void => {
      stats.authFailures++;
      callback(err);
    };
    // allowInsecureAuth lets AUTH reach this handler before STARTTLS, so that it can be refused
    // the way Exchange does (smtp-server's own refusal is a 538).
    if (!session.secure) return fail(Replies.authBeforeTls());
    if (auth.method !== 'XOAUTH2') return fail(Replies.basicAuthDisabled());

    const check = tokens.check(auth.accessToken ?? '');
    if (hve && !check.ok && check.reason === 'expired') return fail(Replies.hveTokenExpired());
    // A token for another API (Graph) is refused like any bad token, as Exchange does.
    if (!check.ok || check.token.tenant.toLowerCase() !== options.tenantId.toLowerCase() || check.token.audience !== 'exchange') return fail(Replies.badToken());
    if (hve) return hveAuth(check.token, auth, session, callback, fail);
    const mailbox = directory.mailbox(auth.username ?? '');
    if (!mailbox) return fail(Replies.badToken());
    if (!mailbox.smtpAuthEnabled) return fail(Replies.smtpAuthDisabled());
    const delegated = check.token.delegated;
    if (delegated) {
      // A delegated token opens the signed-in user's own mailbox only, and only with SMTP.Send.
      if (delegated.user !== mailbox.key || !SMTP_SCOPES.has(delegated.scope)) return fail(Replies.badToken());
    } else if (!mailbox.apps.has(check.token.clientId.toLowerCase())) {
      return fail(Replies.badToken());
    }

    if (!concurrency.acquire(mailbox.key)) {
      stats.throttled++;
      return callback(Replies.concurrency());
    }
    stats.maxConcurrentPerMailbox = Math.max(stats.maxConcurrentPerMailbox, concurrency.maxSeen);
    const state = stateOf(session);
    state.mailbox = mailbox;
    state.clientId = check.token.clientId;
    if (delegated) state.user = delegated.user;
    stats.authSuccesses++;
    callback(null, { user: mailbox.address });
  }

  /**
   * High Volume Email: an HVE account (not a mailbox), an app-only token of an app allowed on it
   * (Add-HVEAppAccess), and a token that does not expire soon. No per-account session limit.
   */
  function hveAuth(
    token: IssuedToken,
    auth: SMTPServerAuthentication,
    session: SMTPServerSession,
    callback: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void,
    fail: (err: Error) => void,
  ): void {
    const account = directory.hveAccount(auth.username ?? '');
    if (!account) return fail(Replies.badToken());
    if (token.delegated) return fail(Replies.hveApiPermission());
    if (!account.apps.has(token.clientId.toLowerCase())) return fail(Replies.hveAppNotAllowed());
    if (token.expiresAt - Date.now() < (hve?.minTokenLifetimeMs ?? 0)) {
      stats.hveTokenExpiringSoon++;
      return fail(Replies.hveTokenExpiringSoon());
    }
    const state = stateOf(session);
    state.mailbox = account;
    state.clientId = token.clientId;
    stats.authSuccesses++;
    callback(null, { user: account.address });
  }

  function onMailFrom(_address: SMTPServerAddress, session: SMTPServerSession, callback: (err?: Error | null) => void): void {
    const mailbox = sessions.get(session.id)?.mailbox;
    // smtp-server already answers 530 without AUTH; this guards against it changing.
    if (!mailbox) return callback(replyError(530, Replies.notAuthenticated));
    if (hve) return callback(); // HVE has no per-minute message rate
    if (!rate.take(mailbox.key)) {
      stats.throttled++;
      return callback(Replies.rate());
    }
    callback();
  }

  function onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, callback: (err?: Error | null) => void): void {
    const reply = faults.rejectRecipients.get(address.address.toLowerCase());
    if (reply !== undefined) return callback(replyLineError(reply));
    if (hve) {
      if (session.envelope.rcptTo.length >= hve.maxRecipients) return callback(Replies.tooManyRecipients());
      const domain = address.address.slice(address.address.lastIndexOf('@') + 1).toLowerCase();
      if (!hve.acceptedDomains.has(domain)) return callback(Replies.hveExternalRecipient(address.address));
    }
    callback();
  }

  function onData(
    stream: SMTPServerDataStream,
    session: SMTPServerSession,
    callback: (err?: Error | null, message?: string) => void,
  ): void {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', () => {
      /* the client went away mid-message: smtp-server cleans up */
    });
    stream.on('end', () => {
      const state = sessions.get(session.id);
      const mailbox = state?.mailbox;
      if (!mailbox || !state.clientId) return callback(replyError(530, Replies.notAuthenticated));
      if (stream.sizeExceeded) return callback(Replies.tooBig());

      const failure = faults.takeFailure();
      if (failure !== undefined) return callback(replyLineError(failure));
      if (faults.rejectData !== null) return callback(replyLineError(faults.rejectData));

      const raw = Buffer.concat(chunks);
      const envelopeFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
      if (!maySendAs(mailbox, envelopeFrom)) return callback(Replies.sendAsDenied(mailbox.address, envelopeFrom || '<>'));
      for (const address of fromAddresses(raw)) {
        if (!maySendAs(mailbox, address)) return callback(Replies.sendAsDenied(mailbox.address, address));
      }

      const queueId = `${randomBytes(12).toString('hex').toUpperCase()}@${SERVER_NAME}`;
      options.onMessage({
        mailbox: mailbox.address,
        clientId: state.clientId,
        ...(state.user !== undefined && { user: state.user }),
        envelope: { from: envelopeFrom, to: session.envelope.rcptTo.map((r) => r.address) },
        raw,
        queueId,
        at: new Date(),
        ...(hve && { via: 'hve' as const }),
      });

      if (faults.dropBeforeFinalReply > 0) {
        faults.dropBeforeFinalReply--;
        // Recorded, but the client never learns: the callback is not called, the socket dies.
        destroySession(session);
        return;
      }
      callback(null, `2.0.0 OK <${queueId}> [Hostname=${SERVER_NAME}]`);
    });
  }

  const server = new SMTPServer({
    name: SERVER_NAME,
    banner: hve ? 'Microsoft ESMTP MAIL Service ready (m365-relay simulator, High Volume Email)' : 'Microsoft ESMTP MAIL Service ready (m365-relay simulator)',
    heloResponse: '%s Hello %s',
    key: options.tls.keyPem,
    cert: options.tls.certPem,
    size: hve?.maxMessageSize ?? MAX_MESSAGE_SIZE,
    authMethods: ['LOGIN', 'PLAIN', 'XOAUTH2'],
    allowInsecureAuth: true,
    authRequiredMessage: Replies.notAuthenticated,
    hideENHANCEDSTATUSCODES: true, // the reply texts carry Exchange's own enhanced codes
    disableReverseLookup: true,
    logger: false,
    closeTimeout: 1_000,
    onConnect(session, callback) {
      sessions.set(session.id, {});
      callback();
    },
    onSecure(socket, session, callback) {
      stateOf(session).tlsSocket = socket;
      callback();
    },
    onAuth,
    onMailFrom,
    onRcptTo,
    onData,
    onClose(session) {
      const state = sessions.get(session.id);
      if (state?.mailbox) concurrency.release(state.mailbox.key);
      sessions.delete(session.id);
    },
  });
  server.on('error', () => {
    /* client socket errors (resets) are normal here */
  });

  // Wrap smtp-server's connection listener: count and track every socket, and refuse at once
  // (without smtp-server ever seeing the socket) while faults.refuseConnections is set.
  const [smtpListener] = server.server.listeners('connection') as ((socket: Socket) => void)[];
  if (!smtpListener) throw new Error('smtp-server internals changed: no connection listener');
  server.server.removeAllListeners('connection');
  server.server.on('connection', (socket: Socket) => {
    stats.connections++;
    if (faults.refuseConnections) {
      socket.on('error', () => undefined);
      socket.resetAndDestroy();
      return;
    }
    if (faults.greetingReply) {
      // Exchange's way of saying it is down: a 4xx greeting, then the connection is closed.
      socket.on('error', () => undefined);
      socket.end(`${faults.greetingReply}\r\n`);
      return;
    }
    const key = socketKey(socket.remoteAddress, socket.remotePort);
    rawSockets.set(key, socket);
    socket.once('close', () => {
      if (rawSockets.get(key) === socket) rawSockets.delete(key);
    });
    smtpListener.call(server.server, socket);
  });

  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.server.off('error', reject);
      resolve();
    });
  });
  const port = (server.server.address() as AddressInfo).port;

  return {
    port,
    clearRateHistory: () => rate.clear(),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // smtp-server would wait for its clients (closeTimeout); a simulator just hangs up.
        for (const state of sessions.values()) state.tlsSocket?.destroy();
        for (const socket of rawSockets.values()) socket.destroy();
      }),
  };
}
