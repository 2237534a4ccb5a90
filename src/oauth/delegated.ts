// Delegated tokens for a mailbox whose user signed in once (`m365-relay login`, device-code flow):
// msal-node's PublicClientApplication redeems the refresh token kept in the token cache file.
import { InteractionRequiredAuthError, type AccountInfo, type PublicClientApplication } from '@azure/msal-node';
import type { Logger } from '../observability/logger.js';
import { TokenError, toTokenError } from './errors.js';
import { createPublicClient, loginCommandLine, type DelegatedAccountSettings, type LoginCommandTarget } from './publicClient.js';
import { TokenCacheError, TokenCacheFile, type SigninRecord } from './tokenCache.js';
import type { AccessToken, TokenSource } from './tokenProvider.js';
import { MSAL_RENEWAL_OFFSET_MS, singleFlightToken, type FlightKey } from './singleFlight.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const MIN_REFRESH_DELAY_MS = 5_000;
const REFRESH_RETRY_MS = 30_000;
/** While the sign-in is lost, look again this often (an administrator may have run login). */
const LOST_RETRY_MS = 5 * 60_000;

/**
 * Entra errors that mean the user must sign in again: revoked (50173), expired through inactivity
 * (700082, 70008), Conditional Access sign-in frequency (70043), session invalid (50133), MFA or
 * consent now required (50076, 50079, 65001), password expired (50055).
 */
const SIGNIN_LOST_AADSTS = new Set([50173, 700082, 70008, 70043, 50133, 50076, 50079, 65001, 50055]);

export interface DelegatedTokenOptions extends DelegatedAccountSettings, LoginCommandTarget {
  /** Bound on one token request, ms. */
  tokenTimeout: number;
  /** Redeem the refresh token at least this often even when idle, so that it keeps rolling. Default 24 h. */
  keepAliveInterval?: number;
  /** How long a refresh token lives after its last use (Entra: 90 days). Default 90 d. */
  refreshTokenLifetime?: number;
}

export interface DelegatedHealth {
  ok: boolean;
  expiresOn: string | null;
  lastError: string | null;
  /** What the administrator should do about lastError. */
  advice: string | null;
  /** Estimated end of the sign-in (last refresh-token renewal + its lifetime); null if unknown. */
  signinExpiresAt: string | null;
  /** True when only `m365-relay login` can bring the account back. */
  needsLogin: boolean;
}

/**
 * Delegated tokens for one mailbox, with the same contract as the app-only TokenProvider: single
 * flight per cached/forced request, a fast path while the held token is fresh, TokenErrors that say
 * what to do. Background refresh renews the access token before it expires and redeems the refresh
 * token at least every `keepAliveInterval`, so an idle relay never lets the sign-in lapse.
 */
export class DelegatedTokenProvider implements TokenSource {
  private readonly cache: TokenCacheFile;
  private readonly app: PublicClientApplication;
  private readonly inflight = new Map<FlightKey, Promise<AccessToken>>();
  private readonly keepAliveMs: number;
  private readonly lifetimeMs: number;
  private current: AccessToken | null = null;
  private signin: SigninRecord | null = null;
  private lastFailure: { at: number; message: string; kind: string; advice: string } | null = null;
  private lost = false;
  /** Errors that only a new sign-in (or a cache fix) can clear. */
  private readonly lossErrors = new WeakSet<TokenError>();
  private refreshing = false;
  private refreshTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly options: DelegatedTokenOptions,
    private readonly logger: Logger,
  ) {
    this.keepAliveMs = options.keepAliveInterval ?? DAY;
    this.lifetimeMs = options.refreshTokenLifetime ?? 90 * DAY;
    if (!(this.keepAliveMs > 0 && this.lifetimeMs > 0)) throw new RangeError('keepAliveInterval and refreshTokenLifetime must be positive');
    // A bad key is a configuration error the caller sees at once.
    this.cache = new TokenCacheFile(options.cacheFile, options.cacheKey, { loginCommand: loginCommandLine(options) });
    this.app = createPublicClient(options, { logger, cachePlugin: this.cache.plugin, requestTimeout: options.tokenTimeout });
  }

  getToken(options: { forceRefresh?: boolean } = {}): Promise<AccessToken> {
    return singleFlightToken(this.current, this.inflight, options.forceRefresh, (forced) => this.fetch(forced));
  }

  /** For /readyz. */
  health(): DelegatedHealth {
    const valid = this.current !== null && this.current.expiresOn.getTime() > Date.now();
    const expiresAt = this.signinExpiresAt();
    return {
      ok: valid && this.lastFailure === null,
      expiresOn: this.current?.expiresOn.toISOString() ?? null,
      lastError: this.lastFailure?.message ?? null,
      advice: this.lastFailure?.advice ?? null,
      signinExpiresAt: expiresAt?.toISOString() ?? null,
      needsLogin: this.lost,
    };
  }

  /**
   * Seconds until the sign-in lapses, for a metric: estimated from the last refresh-token renewal
   * (Entra does not tell a refresh token's lifetime); 0 once lost; null before the cache was read.
   */
  signinExpiresInSeconds(): number | null {
    if (this.lost) return 0;
    const at = this.signinExpiresAt();
    return at === null ? null : Math.max(0, Math.round((at.getTime() - Date.now()) / 1000));
  }

  /** The command that signs this account in again. */
  loginCommand(): string {
    return loginCommandLine(this.options);
  }

  startBackgroundRefresh(): void {
    if (this.refreshing) return;
    this.refreshing = true;
    // At once: the refresh token may be close to its end after the relay was down for a while.
    this.armRefresh(0, false);
  }

  stopBackgroundRefresh(): void {
    this.refreshing = false;
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
  }

  private armRefresh(delayMs: number, force: boolean): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = null;
      void this.backgroundRefresh(force);
    }, delayMs);
    this.refreshTimer.unref();
  }

  private async backgroundRefresh(force: boolean): Promise<void> {
    let next: number;
    try {
      await this.getToken({ forceRefresh: force });
      next = this.nextRefreshDelay();
    } catch (err) {
      const error = err as TokenError;
      next = error.kind === 'configuration' ? LOST_RETRY_MS : REFRESH_RETRY_MS;
      this.logger.warn({ event: 'token-refresh-failed', mailbox: this.options.mailbox, kind: error.kind, err: error.message }, `background token renewal failed; retrying in ${next / 1000} s`);
    }
    if (this.refreshing) this.armRefresh(next, true);
  }

  /** The earlier of: the access token's renewal (80% of its usable life), the refresh token's keep-alive. */
  private nextRefreshDelay(): number {
    const now = Date.now();
    const tokenDue = this.current ? now + Math.max(0, (this.current.expiresOn.getTime() - MSAL_RENEWAL_OFFSET_MS - now) * 0.8) : now;
    const keepAliveDue = (this.signin?.refreshTokenIssuedAt?.getTime() ?? now) + this.keepAliveMs;
    return Math.max(Math.min(MIN_REFRESH_DELAY_MS, this.keepAliveMs), Math.min(tokenDue, keepAliveDue) - now);
  }

  private signinExpiresAt(): Date | null {
    const issued = this.signin?.refreshTokenIssuedAt;
    if (!issued) return null;
    const estimate = issued.getTime() + this.lifetimeMs;
    const told = this.signin?.refreshTokenExpiresOn?.getTime() ?? Infinity;
    return new Date(Math.min(estimate, told));
  }

  private async fetch(forced: boolean): Promise<AccessToken> {
    const timeoutMs = this.options.tokenTimeout;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new TokenError(`token request to ${this.options.authorityHost} timed out after ${timeoutMs} ms`, 'transient', null, 'Entra ID did not answer in time; retrying')),
        timeoutMs,
      );
    });
    try {
      const token = await Promise.race([this.acquire(forced), timeout]);
      this.current = token;
      this.lastFailure = null;
      if (this.lost) {
        this.lost = false;
        this.logger.info({ event: 'signin-restored', mailbox: this.options.mailbox }, `the sign-in of ${this.options.mailbox} works again`);
      }
      return token;
    } catch (err) {
      const error = this.toError(err);
      this.lastFailure = { at: Date.now(), message: error.message, kind: error.kind, advice: error.advice };
      this.logger.warn({ event: 'token-failed', mailbox: this.options.mailbox, kind: error.kind, aadsts: error.aadsts, err: error.message, forced }, 'access token request failed');
      if (this.isLoss(error) && !this.lost) {
        this.lost = true;
        this.logger.error(
          { event: 'signin-lost', mailbox: this.options.mailbox, aadsts: error.aadsts, err: error.message, advice: error.advice },
          `the sign-in of ${this.options.mailbox} is lost; mail stays queued until someone runs: ${this.loginCommand()}`,
        );
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  private async acquire(forced: boolean): Promise<AccessToken> {
    const account = await this.account();
    const result = await this.app.acquireTokenSilent({ account, scopes: this.options.scopes, forceRefresh: forced });
    this.signin = this.cache.signin(this.options.mailbox);
    if (!result?.accessToken || !result.expiresOn) throw new TokenError('Entra ID answered without an access token', 'transient', null, 'retrying');
    if (!result.fromCache) {
      this.logger.info(
        { event: 'token', mailbox: this.options.mailbox, delegated: true, expiresOn: result.expiresOn.toISOString(), forced, signinExpiresAt: this.signinExpiresAt()?.toISOString() ?? null },
        'access token obtained (refresh token renewed)',
      );
    }
    return { accessToken: result.accessToken, expiresOn: result.expiresOn };
  }

  /** The cached account signed in as the mailbox (reads the cache file, so a new login is seen). */
  private async account(): Promise<AccountInfo> {
    const accounts = await this.app.getAllAccounts();
    this.signin = this.cache.signin(this.options.mailbox);
    const wanted = this.options.mailbox.trim().toLowerCase();
    const account = accounts.find((a) => a.username.toLowerCase() === wanted);
    if (!account) {
      throw this.loss(`no sign-in for ${this.options.mailbox} in the token cache ${this.options.cacheFile}`, null, `sign the mailbox in: run \`${this.loginCommand()}\``);
    }
    return account;
  }

  private loss(message: string, aadsts: number | null, advice: string, cause?: unknown): TokenError {
    const error = new TokenError(message, 'configuration', aadsts, advice, { cause });
    this.lossErrors.add(error);
    return error;
  }

  private isLoss(error: TokenError): boolean {
    return this.lossErrors.has(error);
  }

  private toError(err: unknown): TokenError {
    if (err instanceof TokenError) return err;
    const login = this.loginCommand();
    if (err instanceof TokenCacheError) return this.loss(err.message, null, err.advice, err);
    const general = toTokenError(err);
    const e = err as { errorCode?: string };
    if (general.aadsts === 7000218) {
      return new TokenError(
        general.message,
        'configuration',
        7000218,
        'the app registration does not allow public client flows: in Entra ID, App registrations > the app > Authentication, set "Allow public client flows" to Yes',
        { cause: err },
      );
    }
    if (err instanceof InteractionRequiredAuthError || e?.errorCode === 'invalid_grant' || (general.aadsts !== null && SIGNIN_LOST_AADSTS.has(general.aadsts))) {
      return this.loss(
        `Entra ID no longer accepts the sign-in of ${this.options.mailbox}: ${aadstsText(err) ?? general.message.replace(/^Entra ID refused the token request: /, '')}`,
        general.aadsts,
        `the mailbox user must sign in again: run \`${login}\``,
        err,
      );
    }
    return general;
  }
}

/** 'AADSTS50173: The provided grant has expired ...' out of msal's 'Error(s): 50173 - Timestamp: ... - Description: ...'. */
function aadstsText(err: unknown): string | null {
  const e = err as { errorMessage?: string; message?: string };
  const match = /AADSTS\d+:[^\r\n]*/.exec(e?.errorMessage ?? e?.message ?? '');
  return match ? match[0].replace(/\s*Trace ID:.*$/, '').trim() : null;
}
