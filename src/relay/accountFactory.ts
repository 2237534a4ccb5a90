import type { Readable } from 'node:stream';
import type { AccountConfig } from '../config/index.js';
import { TokenProvider, type TokenSource } from '../oauth/index.js';
import type { Logger } from '../observability/logger.js';
import { SubmissionTransport, type SendResult } from './transport.js';

/**
 * The one place that turns an account's configuration into its token source and its transport.
 * Each account (lane) gets its own of both: a throttled or broken account never shares a
 * connection pool or a token cache with another.
 */

/** A token source the worker can run per account: health for /readyz, background renewal. */
export interface AccountTokenSource extends TokenSource {
  health(): { ok: boolean; expiresOn: string | null; lastError: string | null };
  startBackgroundRefresh(): void;
  stopBackgroundRefresh(): void;
}

/**
 * How a message leaves for Microsoft 365. Failures are thrown as UpstreamError (with what
 * classify() needs) or TokenError; anything else is treated as a network failure.
 */
export interface MessageTransport {
  send(envelope: { from: string; to: string[] }, raw: Readable): Promise<SendResult>;
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

/** Creates the account's token source; nothing is requested from Entra ID until it is used. */
export function createTokenSource(account: AccountConfig, logger: Logger): AccountTokenSource {
  if (account.flow === 'device-code') {
    throw new AccountSetupError(
      account.name,
      `${accountKey(account)}: flow device-code (delegated sign-in) is not available in this build; use flow: client-credentials with clientSecret or clientCertificate`,
    );
  }
  // The child logger puts `account` on every token line (token, token-failed, msal).
  return new TokenProvider(account, logger.child({ account: account.name }));
}

/** Creates the account's transport; connections open when the first message is sent. */
export function createTransport(account: AccountConfig, tokens: AccountTokenSource, _logger: Logger): MessageTransport {
  if (account.transport === 'graph') {
    throw new AccountSetupError(account.name, `${accountKey(account)}: transport graph is not available in this build; use transport: smtp`);
  }
  return new SubmissionTransport(account, tokens);
}

export const defaultAccountFactory: AccountFactory = { createTokenSource, createTransport };
