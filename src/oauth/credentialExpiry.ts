import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AccountConfig } from '../config/index.js';
import type { Logger } from '../observability/logger.js';

/**
 * Expiring credentials are among the most common reasons a relay stops: a client secret (its
 * expiry from `clientSecretExpires`, as Entra shows it) or a client certificate (its notAfter,
 * read from the file). The relay warns 30, 7 and 1 days ahead, once a day, as error-level `alert`
 * lines, and exposes each expiry as a metric, in /readyz and in check-config.
 */
export type CredentialKind = 'client-secret' | 'client-certificate';

export interface Credential {
  account: string;
  kind: CredentialKind;
  /** ISO time. */
  expiresAt: string;
}

const DAY_MS = 86_400_000;
/** Warn when a credential is this close to its end (days), the nearest threshold named in the line. */
export const WARN_DAYS = [30, 7, 1] as const;

/** What to tell about one credential at `now` (wall ms): nothing, a warning band, or that it has expired. */
export function expiryState(expiresAt: string, now: number): { band: 'expired' | (typeof WARN_DAYS)[number] | null; daysLeft: number } {
  const left = Date.parse(expiresAt) - now;
  const daysLeft = Math.floor(left / DAY_MS);
  if (left <= 0) return { band: 'expired', daysLeft };
  const band = [...WARN_DAYS].reverse().find((days) => left <= days * DAY_MS) ?? null;
  return { band, daysLeft };
}

/** The credentials of an account whose expiry the relay knows (a certificate file that cannot be read is left to the token provider's error). */
export function credentialsOf(account: AccountConfig): Credential[] {
  const out: Credential[] = [];
  if (account.clientSecret && account.clientSecretExpires) out.push({ account: account.name, kind: 'client-secret', expiresAt: account.clientSecretExpires });
  if (account.clientCertificate) {
    try {
      const pem = readFileSync(account.clientCertificate.certificateFile, 'utf8');
      const first = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem)?.[0];
      if (first) out.push({ account: account.name, kind: 'client-certificate', expiresAt: new Date(new X509Certificate(first).validTo).toISOString() });
    } catch {
      // unreadable: the token provider reports it with its fix
    }
  }
  return out;
}

/** One line for check-config and the alert. */
export function describeExpiry(credential: Credential, now: number): string {
  const { band, daysLeft } = expiryState(credential.expiresAt, now);
  const what = `the ${credential.kind === 'client-secret' ? 'client secret' : 'client certificate'} of account ${credential.account}`;
  if (band === 'expired') return `${what} expired on ${credential.expiresAt}`;
  return `${what} expires ${credential.expiresAt} (in ${daysLeft} day${daysLeft === 1 ? '' : 's'})`;
}

function adviceFor(kind: CredentialKind): string {
  return kind === 'client-secret'
    ? 'create a new client secret in Entra ID (App registrations > Certificates & secrets), put it where clientSecret reads it, update clientSecretExpires, and reload'
    : 'upload a new certificate to the app registration (Certificates & secrets), replace certificateFile and privateKeyFile, and reload';
}

/**
 * Checks every known credential at start and then once a day (the timer is unref'd). `now` is
 * the wall clock: an expiry is a calendar date.
 */
export class CredentialWatch {
  private timer: NodeJS.Timeout | null = null;
  private credentials: Credential[] = [];

  constructor(
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** (Re)starts watching these accounts' credentials: after start and after a reload. */
  watch(accounts: Iterable<AccountConfig>): void {
    this.credentials = [...accounts].flatMap(credentialsOf);
    if (this.timer) clearInterval(this.timer);
    this.check();
    this.timer = setInterval(() => this.check(), DAY_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** For the metric and /readyz. */
  list(): Credential[] {
    return this.credentials;
  }

  private check(): void {
    const now = this.now();
    for (const credential of this.credentials) {
      const { band, daysLeft } = expiryState(credential.expiresAt, now);
      if (band === null) continue;
      this.logger.error(
        { event: 'alert', alert: 'credential-expiring', account: credential.account, kind: credential.kind, expiresAt: credential.expiresAt, expiresInDays: daysLeft, advice: adviceFor(credential.kind) },
        `${describeExpiry(credential, now)}: ${adviceFor(credential.kind)}`,
      );
    }
  }
}
