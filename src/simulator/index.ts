// The built-in Microsoft 365 stand-in: a simulated Entra ID token endpoint (HTTPS, for msal-node)
// and a simulated Exchange Online client submission endpoint (SMTP + STARTTLS + XOAUTH2), both on
// loopback, both with a certificate signed by a CA the caller trusts (NODE_EXTRA_CA_CERTS).
import { generateCa, generateClientCertificate, generateServerCertificate } from './certs.js';
import { DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_MAILBOX, Directory } from './directory.js';
import { DelegatedGrants } from './delegated.js';
import { Faults } from './faults.js';
import { startGraph, type GraphEndpoint } from './graph.js';
import { startSmtpSubmission, type SmtpSubmission } from './smtpSubmission.js';
import { startTokenEndpoint } from './tokenEndpoint.js';
import { TokenStore } from './tokens.js';
import type { ReceivedMessage, Simulator, SimulatorOptions, SimulatorStats } from './types.js';

export type { GraphDraftView, ReceivedMessage, Simulator, SimulatorApp, SimulatorFaults, SimulatorHveAccount, SimulatorHveOptions, SimulatorMailbox, SimulatorOptions, SimulatorStats } from './types.js';
export { generateCa, generateClientCertificate };

interface Waiter {
  count: number;
  resolve(messages: ReceivedMessage[]): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export async function startSimulator(options: SimulatorOptions = {}): Promise<Simulator> {
  const host = options.host ?? '127.0.0.1';
  const tenantId = options.tenantId ?? 'contoso.onmicrosoft.com';
  const apps = options.apps ?? [{ clientId: DEFAULT_CLIENT_ID, clientSecret: DEFAULT_CLIENT_SECRET }];
  const mailboxes = options.mailboxes ?? [{ address: DEFAULT_MAILBOX, apps: [DEFAULT_CLIENT_ID], sendAs: ['@contoso.com'] }];
  const tokenLifetimeSeconds = options.tokenLifetimeSeconds ?? 3600;
  const maxConnectionsPerMailbox = options.maxConnectionsPerMailbox ?? 3;
  const rateLimit = options.rateLimit === undefined ? { messages: 30, perSeconds: 60 } : options.rateLimit;
  if (!(tokenLifetimeSeconds > 0)) throw new RangeError('tokenLifetimeSeconds must be positive');
  if (!(maxConnectionsPerMailbox >= 0)) throw new RangeError('maxConnectionsPerMailbox must be 0 (unlimited) or more');
  const deviceCodeLifetimeSeconds = options.deviceCodeLifetimeSeconds ?? 900;
  const deviceCodeIntervalSeconds = options.deviceCodeIntervalSeconds ?? 5;
  const refreshTokenLifetimeSeconds = options.refreshTokenLifetimeSeconds ?? 90 * 86_400;
  const signInFrequencySeconds = options.signInFrequencySeconds ?? null;
  for (const [name, value] of Object.entries({ deviceCodeLifetimeSeconds, deviceCodeIntervalSeconds, refreshTokenLifetimeSeconds, signInFrequencySeconds: signInFrequencySeconds ?? 1 })) {
    if (!(value > 0)) throw new RangeError(`${name} must be positive`);
  }
  if (rateLimit && !(rateLimit.messages > 0 && rateLimit.perSeconds > 0)) throw new RangeError('rateLimit needs positive messages and perSeconds (or null for none)');

  const hveOptions = options.hve;
  const directory = new Directory(apps, mailboxes, hveOptions?.accounts ?? []);
  const ca = options.ca ?? (await generateCa());
  const tls = await generateServerCertificate(ca);
  const tokens = new TokenStore();
  const grants = new DelegatedGrants({ deviceCodeLifetimeSeconds, deviceCodeIntervalSeconds, refreshTokenLifetimeSeconds, signInFrequencySeconds });
  const faults = new Faults();
  const stats: SimulatorStats = { hveTokenExpiringSoon: 0, tokenRequests: 0, tokensIssued: 0, authSuccesses: 0, authFailures: 0, connections: 0, maxConcurrentPerMailbox: 0, throttled: 0, deviceCodesIssued: 0, refreshTokensRedeemed: 0, graphRequests: 0, graphThrottled: 0, graphDraftsCreated: 0, graphDraftsDeleted: 0, graphDraftsSent: 0 };
  const received: ReceivedMessage[] = [];
  const waiters = new Set<Waiter>();

  const settleWaiters = (): void => {
    for (const waiter of waiters) {
      if (received.length >= waiter.count) {
        clearTimeout(waiter.timer);
        waiters.delete(waiter);
        waiter.resolve(received.slice());
      }
    }
  };

  const tokenEndpoint = await startTokenEndpoint({ host, port: options.httpsPort ?? 0, tls, tenantId, tokenLifetimeSeconds, directory, tokens, grants, faults, stats });
  const record = (message: ReceivedMessage): void => {
    received.push(message);
    settleWaiters();
  };
  let smtp: SmtpSubmission;
  let graph: GraphEndpoint;
  try {
    graph = await startGraph({ host, port: options.graphPort ?? 0, tls, tenantId, directory, tokens, stats, faults: faults.graphFaults, uploadFaults: faults.graphUploadFaults, onMessage: record });
  } catch (err) {
    await tokenEndpoint.close();
    throw err;
  }
  try {
    smtp = await startSmtpSubmission({
      host,
      port: options.smtpPort ?? 0,
      tls,
      tenantId,
      maxConnectionsPerMailbox,
      rateLimit,
      directory,
      tokens,
      faults,
      stats,
      onMessage: record,
    });
  } catch (err) {
    await Promise.all([tokenEndpoint.close(), graph.close()]);
    throw err;
  }

  let hveSmtp: SmtpSubmission | null = null;
  if (hveOptions) {
    try {
      hveSmtp = await startSmtpSubmission({
        host,
        port: hveOptions.port ?? 0,
        tls,
        tenantId,
        maxConnectionsPerMailbox: 0,
        rateLimit: null,
        directory,
        tokens,
        faults,
        stats,
        onMessage: record,
        hve: {
          acceptedDomains: new Set((hveOptions.acceptedDomains ?? [...directory.domains()]).map((d) => d.trim().toLowerCase().replace(/^@/, ''))),
          maxRecipients: hveOptions.maxRecipients ?? 50,
          maxMessageSize: hveOptions.maxMessageSize ?? 10 * 1024 * 1024,
          minTokenLifetimeMs: (hveOptions.minTokenLifetimeSeconds ?? 600) * 1000,
        },
      });
    } catch (err) {
      await Promise.all([tokenEndpoint.close(), graph.close(), smtp.close()]);
      throw err;
    }
  }

  let closed: Promise<void> | null = null;

  return {
    caPem: ca.certPem,
    authorityHost: tokenEndpoint.origin,
    tenantId,
    smtpHost: host,
    smtpPort: smtp.port,
    graphHost: graph.origin,
    hveHost: hveSmtp ? host : null,
    hvePort: hveSmtp?.port ?? null,
    received,
    faults,
    stats,
    waitForMessages(count, timeoutMs = 10_000) {
      if (received.length >= count) return Promise.resolve(received.slice());
      if (closed) return Promise.reject(new Error('the Microsoft 365 simulator is closed'));
      return new Promise<ReceivedMessage[]>((resolve, reject) => {
        const waiter: Waiter = {
          count,
          resolve,
          reject,
          timer: setTimeout(() => {
            waiters.delete(waiter);
            reject(new Error(`timed out after ${timeoutMs} ms waiting for ${count} message(s) at the Microsoft 365 simulator; it has received ${received.length}`));
          }, timeoutMs),
        };
        waiters.add(waiter);
      });
    },
    graphDrafts(mailbox) {
      return graph.drafts(mailbox);
    },
    revokeAllTokens() {
      tokens.revokeAll();
    },
    approveDeviceCode(userCode, user) {
      const mailbox = directory.mailbox(user);
      if (!mailbox) throw new Error(`${user} is not a user (mailbox) of the simulated tenant`);
      grants.approve(userCode, mailbox.key);
    },
    denyDeviceCode(userCode) {
      grants.decline(userCode);
    },
    pendingUserCodes() {
      return grants.pendingUserCodes();
    },
    revokeRefreshTokens(user) {
      return grants.revoke(user?.trim().toLowerCase());
    },
    reset() {
      faults.clear();
      received.length = 0;
      graph.clear();
      smtp.clearRateHistory();
    },
    close() {
      if (!closed) {
        for (const waiter of waiters) {
          clearTimeout(waiter.timer);
          waiter.reject(new Error(`the Microsoft 365 simulator was closed while waiting for ${waiter.count} message(s); it had received ${received.length}`));
        }
        waiters.clear();
        closed = Promise.all([smtp.close(), tokenEndpoint.close(), graph.close(), hveSmtp?.close()]).then(() => undefined);
      }
      return closed;
    },
  };
}
