// Delegated sign-in at the simulated Entra ID: device codes (RFC 8628) that a test approves or
// declines on the user's behalf, and rolling refresh tokens (each use returns a new one and retires
// the old; one unused for too long expires, like Entra's 90-day inactivity limit).
import { randomBytes, randomInt } from 'node:crypto';

/** Delegated permissions the simulator grants, by their canonical spelling. */
export const DELEGATED_SCOPES = ['https://outlook.office.com/SMTP.Send', 'https://outlook.office365.com/SMTP.Send', 'https://graph.microsoft.com/Mail.Send'];
/** Of those, the ones that let a token authenticate SMTP (XOAUTH2). */
export const SMTP_SCOPES = new Set(DELEGATED_SCOPES.filter((s) => s.endsWith('/SMTP.Send')));
const OIDC_SCOPES = new Set(['openid', 'profile', 'offline_access', 'email']);
/** Entra's user codes avoid letters and digits that read alike. */
const USER_CODE_ALPHABET = 'BCDFGHJKLMNPQRSTVWXZ23456789';

export interface RequestedScope {
  /** The one resource permission, canonical spelling. */
  resource: string;
  openid: boolean;
  offlineAccess: boolean;
}

/** A delegated `scope` parameter: exactly one known resource permission plus OIDC scopes. */
export function parseDelegatedScope(scope: string): { ok: true; value: RequestedScope } | { ok: false; reason: 'invalid' | 'multiple-resources' } {
  const parts = scope.split(/\s+/).filter(Boolean);
  const lower = new Set(parts.map((p) => p.toLowerCase()));
  const resources = parts.filter((p) => !OIDC_SCOPES.has(p.toLowerCase()));
  if (resources.length > 1) return { ok: false, reason: 'multiple-resources' };
  // Scopes are case-insensitive at Entra ID.
  const resource = DELEGATED_SCOPES.find((s) => s.toLowerCase() === resources[0]?.toLowerCase());
  if (!resource) return { ok: false, reason: 'invalid' };
  return { ok: true, value: { resource, openid: lower.has('openid'), offlineAccess: lower.has('offline_access') } };
}

interface DeviceCodeEntry {
  deviceCode: string;
  userCode: string;
  clientId: string;
  scope: RequestedScope;
  expiresAt: number;
  state: 'pending' | 'approved' | 'declined';
  /** Lowercased address of the user who approved. */
  user?: string;
}

export type DeviceCodeOutcome =
  | { ok: true; user: string; scope: RequestedScope; signedInAt: number }
  | { ok: false; error: 'authorization_pending' | 'authorization_declined' | 'expired_token' | 'bad_verification_code' };

interface RefreshTokenEntry {
  clientId: string;
  user: string;
  /** When the user signed in (device code approved); kept through every rotation. */
  signedInAt: number;
  issuedAt: number;
  state: 'valid' | 'used' | 'revoked';
}

export type RefreshOutcome =
  | { ok: true; user: string; signedInAt: number }
  | { ok: false; reason: 'invalid' | 'revoked' | 'inactive' | 'signin-frequency'; issuedAt?: number; signedInAt?: number };

export interface DelegatedGrantsOptions {
  deviceCodeLifetimeSeconds: number;
  deviceCodeIntervalSeconds: number;
  /** How long a refresh token may go unused before it expires (Entra: 90 days). */
  refreshTokenLifetimeSeconds: number;
  /** Conditional Access sign-in frequency: refresh refused once the sign-in is this old; null = none. */
  signInFrequencySeconds: number | null;
}

export class DelegatedGrants {
  private readonly deviceCodes = new Map<string, DeviceCodeEntry>();
  private readonly refreshTokens = new Map<string, RefreshTokenEntry>();

  constructor(readonly options: DelegatedGrantsOptions) {}

  issueDeviceCode(clientId: string, scope: RequestedScope): { deviceCode: string; userCode: string; expiresIn: number; interval: number } {
    this.prune();
    let userCode = '';
    do {
      userCode = Array.from({ length: 9 }, () => USER_CODE_ALPHABET[randomInt(USER_CODE_ALPHABET.length)]).join('');
    } while (this.findByUserCode(userCode));
    const deviceCode = `simdc.${randomBytes(32).toString('base64url')}`;
    const expiresIn = this.options.deviceCodeLifetimeSeconds;
    this.deviceCodes.set(deviceCode, { deviceCode, userCode, clientId, scope, expiresAt: Date.now() + expiresIn * 1000, state: 'pending' });
    return { deviceCode, userCode, expiresIn, interval: this.options.deviceCodeIntervalSeconds };
  }

  /** User codes waiting for a sign-in, newest last. */
  pendingUserCodes(): string[] {
    const now = Date.now();
    return [...this.deviceCodes.values()].filter((e) => e.state === 'pending' && e.expiresAt > now).map((e) => e.userCode);
  }

  /** The user (lowercased address) signs in at the verification page and enters the code. */
  approve(userCode: string, user: string): void {
    const entry = this.pendingEntry(userCode);
    entry.state = 'approved';
    entry.user = user;
  }

  decline(userCode: string): void {
    this.pendingEntry(userCode).state = 'declined';
  }

  /** The client's poll at the token endpoint; an approved code is redeemed once. */
  redeemDeviceCode(deviceCode: string, clientId: string): DeviceCodeOutcome {
    const entry = this.deviceCodes.get(deviceCode);
    if (!entry || entry.clientId.toLowerCase() !== clientId.toLowerCase()) return { ok: false, error: 'bad_verification_code' };
    if (entry.expiresAt <= Date.now()) return { ok: false, error: 'expired_token' };
    if (entry.state === 'pending') return { ok: false, error: 'authorization_pending' };
    if (entry.state === 'declined') return { ok: false, error: 'authorization_declined' };
    this.deviceCodes.delete(deviceCode);
    return { ok: true, user: entry.user ?? '', scope: entry.scope, signedInAt: Date.now() };
  }

  issueRefreshToken(clientId: string, user: string, signedInAt: number): string {
    this.prune();
    const token = `simrt.${randomBytes(48).toString('base64url')}`;
    this.refreshTokens.set(token, { clientId, user, signedInAt, issuedAt: Date.now(), state: 'valid' });
    return token;
  }

  /** Checks and retires a refresh token (the caller issues its successor). */
  redeemRefreshToken(token: string, clientId: string): RefreshOutcome {
    const entry = this.refreshTokens.get(token);
    if (!entry || entry.clientId.toLowerCase() !== clientId.toLowerCase() || entry.state === 'used') return { ok: false, reason: 'invalid' };
    const { issuedAt, signedInAt } = entry;
    if (entry.state === 'revoked') return { ok: false, reason: 'revoked', issuedAt, signedInAt };
    const now = Date.now();
    if (issuedAt + this.options.refreshTokenLifetimeSeconds * 1000 <= now) return { ok: false, reason: 'inactive', issuedAt, signedInAt };
    const frequency = this.options.signInFrequencySeconds;
    if (frequency !== null && signedInAt + frequency * 1000 <= now) return { ok: false, reason: 'signin-frequency', issuedAt, signedInAt };
    entry.state = 'used';
    return { ok: true, user: entry.user, signedInAt };
  }

  /** Revokes the user's (lowercased address) refresh tokens, or everyone's; returns how many. */
  revoke(user?: string): number {
    let count = 0;
    for (const entry of this.refreshTokens.values()) {
      if (entry.state === 'valid' && (user === undefined || entry.user === user)) {
        entry.state = 'revoked';
        count++;
      }
    }
    return count;
  }

  private findByUserCode(userCode: string): DeviceCodeEntry | undefined {
    const code = userCode.trim().toUpperCase();
    for (const entry of this.deviceCodes.values()) if (entry.userCode === code) return entry;
    return undefined;
  }

  private pendingEntry(userCode: string): DeviceCodeEntry {
    const entry = this.findByUserCode(userCode);
    if (!entry) throw new Error(`no device code with user code ${JSON.stringify(userCode)} at the simulator`);
    if (entry.expiresAt <= Date.now()) throw new Error(`the device code ${entry.userCode} has expired`);
    if (entry.state !== 'pending') throw new Error(`the device code ${entry.userCode} was already ${entry.state}`);
    return entry;
  }

  /** Forgets device codes an hour past expiry and retired refresh tokens past their lifetime. */
  private prune(): void {
    const now = Date.now();
    for (const [key, entry] of this.deviceCodes) if (entry.expiresAt < now - 3_600_000) this.deviceCodes.delete(key);
    const horizon = now - this.options.refreshTokenLifetimeSeconds * 1000 - 3_600_000;
    for (const [key, entry] of this.refreshTokens) if (entry.state !== 'valid' && entry.issuedAt < horizon) this.refreshTokens.delete(key);
  }
}
