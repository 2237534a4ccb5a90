import type { Readable } from 'node:stream';
import type { AccountConfig } from '../config/index.js';
import { DelegatedTokenProvider, TokenCacheError, TokenProvider, type DelegatedAccountSettings, type TokenSource } from '../oauth/index.js';
import type { Logger } from '../observability/logger.js';
import { GraphTransport } from './graphTransport.js';
import { prepareStagingDir } from './staging.js';
import { SubmissionTransport, type SendResult } from './transport.js';

/**
 * The one place that turns an account's configuration into its token source and its transport.
 * Each account (lane) gets its own of both: a throttled or broken account never shares a
 * connection pool or a token cache with another.
 */

/** A token source the worker can run per account: health for /readyz, background renewal. */
export interface AccountTokenSource extends TokenSource {
  /** Delegated sign-ins also say when the sign-in lapses and whether only `login` can bring it back. */
  health(): { ok: boolean; expiresOn: string | null; lastError: string | null; advice?: string | null; signinExpiresAt?: string | null; needsLogin?: boolean };
  startBackgroundRefresh(): void;
  stopBackgroundRefresh(): void;
}

/** What a transport may need to know about the delivery besides envelope and bytes. */
export interface SendContext {
  /**
   * The spool's queue id: stable across retries and restarts. The Graph transport marks its drafts
   * with it, so that a draft a crash left behind is found and deleted before the next attempt.
   */
  messageId: string;
  /** Aborted when the relay stops (or the account is retired): waits end at once. */
  signal?: AbortSignal;
}

/**
 * How a message leaves for Microsoft 365. Failures are thrown as UpstreamError (with what
 * classify() needs) or TokenError; anything else is treated as a network failure.
 */
export interface MessageTransport {
  send(envelope: { from: string; to: string[] }, raw: Readable, context: SendContext): Promise<SendResult>;
  /** Closes pooled connections; called once the deliveries using the transport have finished. */
  close(): void;
}

/** An account's configuration asks for something this build cannot do. Refused at start and on reload. */
export class AccountSetupError extends Error {
  override readonly name = 'AccountSetupError';
  readonly code = 'EACCOUNT';
  constructor(
    readonly account: string,
    message: string,
  ) {
    super(message);
  }
}

export interface AccountFactory {
  createTokenSource(account: AccountConfig, logger: Logger): AccountTokenSource;
  createTransport(account: AccountConfig, tokens: AccountTokenSource, logger: Logger): MessageTransport;
}

/** Where an account's settings live in the file, for messages. */
export function accountKey(account: AccountConfig): string {
  return account.name === 'default' ? 'microsoft365' : `accounts.${account.name}`;
}

export interface FactoryContext {
  /** The configuration file, named in advice such as "run m365-relay login --config FILE --account NAME". */
  configFile?: string;
  /**
   * Where transports stage large messages: `<spool.dir>/staging` (mode 0700, files 0600), so that
   * a large message costs disk in the spool's file system, not RAM in a tmpfs /tmp. Emptied when
   * the factory is made (at start): what a crash left there is removed.
   */
  stagingDir?: string;
}

/** The scope the account's tokens are for: Exchange (SMTP) or Graph, per its transport. */
export function tokenScope(account: AccountConfig): string {
  return account.transport === 'graph' ? account.graphScope : account.scope;
}

/**
 * Creates the account's token source; nothing is requested from Entra ID until it is used (a
 * device-code account reads its token cache then). The child logger puts `account` on every token line.
 */
export function createTokenSource(account: AccountConfig, logger: Logger, context: FactoryContext = {}): AccountTokenSource {
  const log = logger.child({ account: account.name });
  if (account.flow === 'device-code') {
    try {
      return delegated(account, log, context);
    } catch (err) {
      // An unusable tokenCacheKey is found when the provider is built: refuse the account at start.
      if (err instanceof TokenCacheError) throw new AccountSetupError(account.name, `${accountKey(account)}.tokenCacheKey: ${err.message}; ${err.advice}`);
      throw err;
    }
  }
  return new TokenProvider({ ...account, scope: tokenScope(account) }, log);
}

/** What the sign-in needs of a device-code account: shared by the relay and `m365-relay login`. */
export function delegatedSettings(account: AccountConfig): DelegatedAccountSettings {
  return {
    tenantId: account.tenantId,
    clientId: account.clientId,
    authorityHost: account.authorityHost,
    mailbox: account.mailbox,
    scopes: [tokenScope(account)],
    cacheFile: account.tokenCacheFile,
    ...(account.tokenCacheKey !== undefined && { cacheKey: account.tokenCacheKey }),
    ...(account.proxy !== undefined && { proxy: account.proxy }),
  };
}

function delegated(account: AccountConfig, log: Logger, context: FactoryContext): DelegatedTokenProvider {
  return new DelegatedTokenProvider({ ...delegatedSettings(account), tokenTimeout: account.tokenTimeout, configFile: context.configFile, accountName: account.name }, log);
}

/** Creates the account's transport; connections open when the first message is sent. */
export function createTransport(account: AccountConfig, tokens: AccountTokenSource, logger: Logger, context: FactoryContext = {}): MessageTransport {
  if (account.transport !== 'graph') return new SubmissionTransport(account, tokens);
  const log = logger.child({ account: account.name });
  // largeMessages: smtp sends what Graph cannot take intact over SMTP AUTH, with its own token for
  // Exchange's SMTP scope (a Graph token is refused there). The schema allows it for app-only accounts only.
  const fallback = account.largeMessages === 'smtp' ? new SubmissionTransport(account, new TokenProvider({ ...account, scope: account.scope }, log)) : undefined;
  return new GraphTransport(
    {
      graphHost: account.graphHost,
      mailbox: account.mailbox,
      ...(account.proxy !== undefined && { proxy: account.proxy }),
      timeoutMs: account.smtpTimeout,
      retryAfterMaxMs: account.retryAfterMax,
      ...(context.stagingDir !== undefined && { stagingDir: context.stagingDir }),
      ...(fallback && { fallback }),
    },
    tokens,
    log,
  );
}

/** With a stagingDir, the directory is created (0700) and emptied now: call once per process start. */
export function makeAccountFactory(context: FactoryContext = {}): AccountFactory {
  if (context.stagingDir !== undefined) prepareStagingDir(context.stagingDir);
  return {
    createTokenSource: (account, logger) => createTokenSource(account, logger, context),
    createTransport: (account, tokens, logger) => createTransport(account, tokens, logger, context),
  };
}

export const defaultAccountFactory: AccountFactory = makeAccountFactory();
