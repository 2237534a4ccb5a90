import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfidentialClientApplication, LogLevel, type Configuration } from '@azure/msal-node';
import type { Microsoft365Config } from '../config/index.js';
import type { Logger } from '../observability/logger.js';
import { TokenError, toTokenError } from './errors.js';
import { MSAL_RENEWAL_OFFSET_MS, singleFlightToken, type FlightKey } from './singleFlight.js';

const MIN_REFRESH_DELAY_MS = 5_000;
const REFRESH_RETRY_MS = 30_000;

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

  constructor(
    private readonly config: Microsoft365Config,
    private readonly logger: Logger,
  ) {
    this.app = new ConfidentialClientApplication(msalConfiguration(config, logger));
  }

  getToken(options: { forceRefresh?: boolean } = {}): Promise<AccessToken> {
    return singleFlightToken(this.current, this.inflight, options.forceRefresh, (forced) => this.fetch(forced));
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
    const usableUntil = token.expiresOn.getTime() - MSAL_RENEWAL_OFFSET_MS;
    const at = now + Math.max(MIN_REFRESH_DELAY_MS, (usableUntil - now) * 0.8);
    this.armRefresh(at - now);
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
      const result = await Promise.race([
        this.app.acquireTokenByClientCredential({ scopes: [this.config.scope], skipCache: forced }),
        timeout,
      ]);
      if (!result?.accessToken || !result.expiresOn) {
        throw new TokenError('Entra ID answered without an access token', 'transient', null, 'retrying');
      }
      const token = { accessToken: result.accessToken, expiresOn: result.expiresOn };
      this.current = token;
      this.lastFailure = null;
      if (!result.fromCache) {
        this.logger.info({ event: 'token', expiresOn: result.expiresOn.toISOString(), forced }, 'access token obtained');
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
