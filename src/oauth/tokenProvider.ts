import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfidentialClientApplication, LogLevel, type Configuration } from '@azure/msal-node';
import type { Microsoft365Config } from '../config/index.js';
import type { Logger } from '../observability/logger.js';
import { TokenError, toTokenError } from './errors.js';
import { msalNetworkClient } from './publicClient.js';
import { MSAL_RENEWAL_OFFSET_MS, singleFlightToken, type FlightKey } from './singleFlight.js';

const MIN_REFRESH_DELAY_MS = 5_000;
const REFRESH_RETRY_MS = 30_000;
/**
 * A fresh token that is already inside the renewal margin (the token endpoint issues short-lived
 * tokens) is served for this long before another is asked for, so that every delivery does not
 * cost a token request.
 */
const SHORT_LIVED_REUSE_MS = 30_000;

export interface AccessToken {
  accessToken: string;
  expiresOn: Date;
}

export interface TokenSource {
  /** A valid token; `forceRefresh` skips every cache (after Exchange rejected the cached one). */
  getToken(options?: { forceRefresh?: boolean }): Promise<AccessToken>;
}

/**
 * App-only tokens for one app registration, over msal-node's ConfidentialClientApplication.
 * msal keeps the token cached until 5 minutes before expiry. Concurrent callers share one request
 * (single flight), separately for cached and forced requests: a forced renewal must never be
 * answered with the cached token it is meant to replace.
 */
export class TokenProvider implements TokenSource {
  private readonly app: ConfidentialClientApplication;
  private readonly inflight = new Map<FlightKey, Promise<AccessToken>>();
  private refreshTimer: NodeJS.Timeout | null = null;
  private refreshing = false;
  /** The newest token, served without asking msal while msal itself would still serve it. */
  private current: AccessToken | null = null;
  private lastFailure: { at: number; message: string; kind: string; advice: string } | null = null;
  /** A token is renewed once less than this is left of its life (tokenRenewBefore; never less than msal's 5 minutes). */
  private readonly renewBeforeMs: number;
  /** Set when the newest token was fresh from Entra ID yet already inside the margin: served until then. */
  private shortLivedReuseUntil = 0;
  private warnedShortLived = false;

  constructor(
    private readonly config: Microsoft365Config,
    private readonly logger: Logger,
  ) {
    this.app = new ConfidentialClientApplication(msalConfiguration(config, logger));
    this.renewBeforeMs = Math.max(MSAL_RENEWAL_OFFSET_MS, config.tokenRenewBefore ?? MSAL_RENEWAL_OFFSET_MS);
  }

  getToken(options: { forceRefresh?: boolean } = {}): Promise<AccessToken> {
    const current = this.current;
    if (!options.forceRefresh && current && Date.now() < this.shortLivedReuseUntil && current.expiresOn.getTime() > Date.now()) return Promise.resolve(current);
    return singleFlightToken(current, this.inflight, options.forceRefresh, (forced) => this.fetch(forced), this.renewBeforeMs);
  }

  /** For /readyz: a token is held and valid, and the last request did not fail. */
  health(): { ok: boolean; expiresOn: string | null; lastError: string | null; advice: string | null } {
    const valid = this.current !== null && this.current.expiresOn.getTime() > Date.now();
    return { ok: valid && this.lastFailure === null, expiresOn: this.current?.expiresOn.toISOString() ?? null, lastError: this.lastFailure?.message ?? null, advice: this.lastFailure?.advice ?? null };
  }

  /**
   * Keeps a fresh token in msal's cache so that sending never waits on Entra ID: each new token
   * schedules a forced renewal at 80% of the time msal would serve it (msal stops 5 minutes before
   * expiry). A failed renewal is retried every 30 s while the current token lasts.
   */
  startBackgroundRefresh(): void {
    this.refreshing = true;
  }

  stopBackgroundRefresh(): void {
    this.refreshing = false;
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
  }

  private scheduleRefresh(token: AccessToken): void {
    if (!this.refreshing) return;
    const now = Date.now();
    const usableUntil = token.expiresOn.getTime() - this.renewBeforeMs;
    // A token born inside the margin: asking again at once would only bring another such token.
    if (usableUntil <= now) return this.armRefresh(REFRESH_RETRY_MS);
    this.armRefresh(Math.max(MIN_REFRESH_DELAY_MS, (usableUntil - now) * 0.8));
  }

  private armRefresh(delayMs: number): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = null;
      this.getToken({ forceRefresh: true }).catch((err: unknown) => {
        this.logger.warn({ event: 'token-refresh-failed', err: (err as Error).message }, 'background token renewal failed; retrying in 30 s');
        if (this.refreshing) this.armRefresh(REFRESH_RETRY_MS);
      });
    }, delayMs);
    this.refreshTimer.unref();
  }

  /**
   * A fresh token with less life than the renewal margin cannot be renewed early enough: served a
   * little while (no request storm) and reported once, because HVE refuses such tokens.
   */
  private noteLifetime(token: AccessToken): void {
    const left = token.expiresOn.getTime() - Date.now();
    if (left >= this.renewBeforeMs) {
      this.shortLivedReuseUntil = 0;
      this.warnedShortLived = false;
      return;
    }
    this.shortLivedReuseUntil = Date.now() + SHORT_LIVED_REUSE_MS;
    if (this.warnedShortLived) return;
    this.warnedShortLived = true;
    const minutes = (ms: number) => Math.round(ms / 6_000) / 10;
    this.logger.error(
      { event: 'alert', alert: 'token-short-lived', lifetimeMinutes: minutes(left), renewBeforeMinutes: minutes(this.renewBeforeMs) },
      `Entra ID issues access tokens that live only ${minutes(left)} min, less than the ${minutes(this.renewBeforeMs)} min this account renews ahead (tokenRenewBefore): ` +
        'High Volume Email refuses tokens that expire soon. Check the token lifetime policy assigned to the app (or its service principal) in Entra ID',
    );
  }

  private async fetch(forced: boolean): Promise<AccessToken> {
    const timeoutMs = this.config.tokenTimeout;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new TokenError(`token request to ${this.config.authorityHost} timed out after ${timeoutMs} ms`, 'transient', null, 'Entra ID did not answer in time; retrying')),
        timeoutMs,
      );
    });
    try {
      const acquire = (skipCache: boolean) => Promise.race([this.app.acquireTokenByClientCredential({ scopes: [this.config.scope], skipCache }), timeout]);
      let result = await acquire(forced);
      // msal serves its cached token until 5 minutes before expiry; a larger margin renews earlier.
      if (result?.fromCache && result.expiresOn && result.expiresOn.getTime() - Date.now() < this.renewBeforeMs) result = await acquire(true);
      if (!result?.accessToken || !result.expiresOn) {
        throw new TokenError('Entra ID answered without an access token', 'transient', null, 'retrying');
      }
      const token = { accessToken: result.accessToken, expiresOn: result.expiresOn };
      this.current = token;
      this.lastFailure = null;
      if (!result.fromCache) {
        this.logger.info({ event: 'token', expiresOn: result.expiresOn.toISOString(), forced }, 'access token obtained');
        this.noteLifetime(token);
        this.scheduleRefresh(token);
      }
      return token;
    } catch (err) {
      const error = toTokenError(err);
      this.lastFailure = { at: Date.now(), message: error.message, kind: error.kind, advice: error.advice };
      this.logger.warn({ event: 'token-failed', kind: error.kind, aadsts: error.aadsts, err: error.message, forced }, 'access token request failed');
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }
}

function msalConfiguration(config: Microsoft365Config, logger: Logger): Configuration {
  const auth: Configuration['auth'] = {
    clientId: config.clientId,
    authority: `${config.authorityHost}/${config.tenantId}`,
    // Naming the authority host as known skips instance discovery against the public cloud,
    // which is what lets sovereign clouds and the built-in simulator work.
    knownAuthorities: [new URL(config.authorityHost).host],
  };
  if (config.clientSecret) auth.clientSecret = config.clientSecret;
  if (config.clientCertificate) auth.clientCertificate = loadClientCertificate(config.clientCertificate);
  return {
    auth,
    system: {
      networkClient: msalNetworkClient(config, config.tokenTimeout),
      loggerOptions: {
        piiLoggingEnabled: false,
        logLevel: LogLevel.Warning,
        // msal's own lines are diagnostics; the provider logs what matters to an administrator.
        loggerCallback: (level, message) => {
          if (level <= LogLevel.Error) logger.warn({ event: 'msal' }, message);
          else logger.debug({ event: 'msal' }, message);
        },
      },
    },
  };
}

/** Reads the certificate credential: SHA-256 thumbprint, PEM private key, and the x5c chain. */
export function loadClientCertificate(files: { privateKeyFile: string; certificateFile: string }): {
  thumbprintSha256: string;
  privateKey: string;
  x5c: string;
} {
  const certificatePem = readFileSync(files.certificateFile, 'utf8');
  const privateKey = readFileSync(files.privateKeyFile, 'utf8');
  const certs = certificatePem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
  if (!certs?.[0]) {
    throw new TokenError(`${files.certificateFile} holds no PEM certificate`, 'configuration', null, 'point microsoft365.clientCertificate.certificateFile at the PEM certificate uploaded to the app registration');
  }
  const leaf = new X509Certificate(certs[0]);
  const thumbprintSha256 = createHash('sha256').update(leaf.raw).digest('hex').toUpperCase();
  return { thumbprintSha256, privateKey, x5c: certs.join('\n') };
}
