import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AccountConfig } from '../config/index.js';
import type { Logger } from '../observability/logger.js';
import { loginCommandLine } from './publicClient.js';
import type { RegistrationLookup } from './registration.js';

/**
 * Expiring credentials are among the most common reasons a relay stops: a client secret (its
 * expiry from the app's own registration in Graph where the app may read it, else from
 * `clientSecretExpires`, as Entra shows it), a client certificate (its notAfter, read from the
 * file), and a delegated sign-in (the refresh token's estimated end). One mechanism for all: the
 * relay warns 30, 7 and 1 days ahead, once a day, as error-level `alert` lines, and exposes each
 * expiry as a metric, in /readyz and in check-config.
 */
export type CredentialKind = 'client-secret' | 'client-certificate' | 'delegated-signin';

export interface Credential {
  account: string;
  kind: CredentialKind;
  /** ISO time. */
  expiresAt: string;
  /** Where the date comes from: the configuration, the certificate file, Graph, or the sign-in. */
  source: 'config' | 'certificate' | 'graph' | 'signin';
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
  if (account.clientSecret && account.clientSecretExpires) out.push({ account: account.name, kind: 'client-secret', expiresAt: account.clientSecretExpires, source: 'config' });
  if (account.clientCertificate) {
    try {
      const pem = readFileSync(account.clientCertificate.certificateFile, 'utf8');
      const first = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem)?.[0];
      if (first) out.push({ account: account.name, kind: 'client-certificate', expiresAt: new Date(new X509Certificate(first).validTo).toISOString(), source: 'certificate' });
    } catch {
      // unreadable: the token provider reports it with its fix
    }
  }
  return out;
}

const KIND_NAMES: Record<CredentialKind, string> = { 'client-secret': 'client secret', 'client-certificate': 'client certificate', 'delegated-signin': 'sign-in' };

/** One line for check-config and the alert. */
export function describeExpiry(credential: Credential, now: number): string {
  const { band, daysLeft } = expiryState(credential.expiresAt, now);
  const what = `the ${KIND_NAMES[credential.kind]} of account ${credential.account}`;
  const from = credential.source === 'graph' ? ' (from its app registration)' : '';
  if (band === 'expired') return `${what} expired on ${credential.expiresAt}${from}`;
  return `${what} ${credential.kind === 'delegated-signin' ? 'lapses' : 'expires'} ${credential.expiresAt}${from} (in ${daysLeft} day${daysLeft === 1 ? '' : 's'})`;
}

function adviceFor(credential: Credential, configFile?: string): string {
  switch (credential.kind) {
    case 'client-secret':
      return 'create a new client secret in Entra ID (App registrations > Certificates & secrets), put it where clientSecret reads it, update clientSecretExpires, and reload';
    case 'client-certificate':
      return 'upload a new certificate to the app registration (Certificates & secrets), replace certificateFile and privateKeyFile, and reload';
    case 'delegated-signin':
      return `renewals of the sign-in are failing (the relay renews it daily): fix the cause in the token-refresh-failed lines, or sign in again with \`${loginCommandLine({ configFile, accountName: credential.account })}\``;
  }
}

/** A delegated account's sign-in as the token provider knows it; null end: not read yet, or lost (the signin-lost alert tells that). */
export interface SigninState {
  account: string;
  expiresAt: string | null;
}

export interface CredentialWatchOptions {
  /** Wall clock: an expiry is a calendar date. */
  now?: () => number;
  /** Delegated sign-ins, read at each check (they move with every renewal). */
  signins?: () => SigninState[];
  /** Reads an app-only account's secret expiry from its registration in Graph; absent: not looked up. */
  lookup?: (account: AccountConfig) => Promise<RegistrationLookup>;
  /**
   * The first lookup waits this long after watch() (default 2 minutes), so that it never competes
   * with the start's own token requests and deliveries; then daily.
   */
  lookupDelayMs?: number;
  /** Named in the sign-in advice (m365-relay login --config FILE ...). */
  configFile?: string;
}

const HOUR_MS = 3_600_000;

/**
 * Checks every known credential at start and then every hour; each credential alerts at most once
 * a day (so a sign-in that comes near its end, or an expiry learnt from Graph, is told the same
 * day). Secrets are looked up in Graph at start and then daily. Timers are unref'd.
 */
export class CredentialWatch {
  private timer: NodeJS.Timeout | null = null;
  private lookupTimer: NodeJS.Timeout | null = null;
  private fixed: Credential[] = [];
  /** Secret expiries learnt from Graph, by account; they replace clientSecretExpires. */
  private learnt = new Map<string, string>();
  private readonly lastAlert = new Map<string, number>();
  private lastLookup = 0;
  private accounts: AccountConfig[] = [];
  /** Bumped by every watch(): a lookup of an older configuration is dropped. */
  private generation = 0;
  private readonly now: () => number;

  constructor(
    private readonly logger: Logger,
    private readonly options: CredentialWatchOptions = {},
  ) {
    this.now = options.now ?? (() => Date.now());
  }

  /** (Re)starts watching these accounts' credentials: after start and after a reload. */
  watch(accounts: Iterable<AccountConfig>): void {
    this.accounts = [...accounts];
    this.fixed = this.accounts.flatMap(credentialsOf);
    this.learnt = new Map();
    this.generation++;
    this.lastLookup = 0;
    this.clearTimers();
    this.check();
    this.timer = setInterval(() => this.tick(), HOUR_MS);
    this.timer.unref();
    if (this.options.lookup) {
      this.lookupTimer = setTimeout(() => this.startLookups(), this.options.lookupDelayMs ?? 2 * 60_000);
      this.lookupTimer.unref();
    }
  }

  stop(): void {
    this.clearTimers();
    this.generation++;
  }

  private clearTimers(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.lookupTimer) clearTimeout(this.lookupTimer);
    this.timer = null;
    this.lookupTimer = null;
  }

  /** For the metric, /readyz and check-config. */
  list(): Credential[] {
    const out = this.fixed.filter((c) => !(c.kind === 'client-secret' && this.learnt.has(c.account)));
    for (const [account, expiresAt] of this.learnt) out.push({ account, kind: 'client-secret', expiresAt, source: 'graph' });
    for (const s of this.options.signins?.() ?? []) {
      if (s.expiresAt) out.push({ account: s.account, kind: 'delegated-signin', expiresAt: s.expiresAt, source: 'signin' });
    }
    return out;
  }

  /** Resolves once the lookups last started have ended (for tests). */
  lookups: Promise<void> = Promise.resolve();

  private tick(): void {
    if (this.lastLookup > 0 && this.now() - this.lastLookup >= DAY_MS) this.startLookups();
    this.check();
  }

  private startLookups(): void {
    this.lastLookup = this.now();
    this.lookups = this.lookupSecrets(this.generation);
  }

  private async lookupSecrets(generation: number): Promise<void> {
    const lookup = this.options.lookup;
    if (!lookup) return;
    const secretAccounts = this.accounts.filter((a) => a.flow === 'client-credentials' && a.clientSecret);
    await Promise.all(
      secretAccounts.map(async (account) => {
        const result = await lookup(account);
        if (generation !== this.generation) return;
        if (result.status === 'found' && result.expiresAt) {
          this.learnt.set(account.name, result.expiresAt);
          if (account.clientSecretExpires && Date.parse(account.clientSecretExpires) !== Date.parse(result.expiresAt)) {
            this.logger.warn(
              { event: 'credential-registration', account: account.name, configured: account.clientSecretExpires, registered: result.expiresAt },
              `clientSecretExpires of account ${account.name} (${account.clientSecretExpires}) differs from the app registration (${result.expiresAt}); the registration's date is used`,
            );
          }
        } else if (result.status === 'found') {
          this.logger.warn({ event: 'credential-registration', account: account.name }, `none of the app's secrets in its registration matches the configured clientSecret of account ${account.name}; clientSecretExpires is used`);
        } else {
          // Not allowed (no Application.Read.All) is the common case and not a fault: the configuration's date stands.
          this.logger.info({ event: 'credential-registration', account: account.name, status: result.status, reason: result.message }, `the secret's expiry of account ${account.name} is not read from Graph (${result.message}); clientSecretExpires is used`);
        }
      }),
    );
    if (generation === this.generation) this.check();
  }

  private check(): void {
    const now = this.now();
    for (const credential of this.list()) {
      const { band, daysLeft } = expiryState(credential.expiresAt, now);
      const key = `${credential.account}\0${credential.kind}`;
      if (band === null) {
        this.lastAlert.delete(key);
        continue;
      }
      const last = this.lastAlert.get(key);
      if (last !== undefined && now - last < DAY_MS) continue;
      this.lastAlert.set(key, now);
      const advice = adviceFor(credential, this.options.configFile);
      this.logger.error(
        { event: 'alert', alert: 'credential-expiring', account: credential.account, kind: credential.kind, source: credential.source, expiresAt: credential.expiresAt, expiresInDays: daysLeft, advice },
        `${describeExpiry(credential, now)}: ${advice}`,
      );
    }
  }
}
