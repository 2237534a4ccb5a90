// Access tokens issued by the simulated Entra ID and checked by the simulated Exchange Online.
import { randomBytes } from 'node:crypto';

export interface IssuedToken {
  clientId: string;
  tenant: string;
  /** Epoch milliseconds. */
  expiresAt: number;
  revoked: boolean;
  /** Absent for app-only tokens; for a delegated token, the signed-in user and the granted scope. */
  delegated?: { user: string; scope: string };
  /** The API the token is for (its `aud`): Exchange Online or Microsoft Graph. */
  audience: TokenAudience;
}

export type TokenAudience = 'exchange' | 'graph';

/** The API a scope is for, from its host. */
export function audienceOf(scope: string): TokenAudience {
  return /^https:\/\/graph\.microsoft\.com\//i.test(scope) ? 'graph' : 'exchange';
}

export type TokenCheck = { ok: true; token: IssuedToken } | { ok: false; reason: 'unknown' | 'expired' | 'revoked' };

export class TokenStore {
  private readonly tokens = new Map<string, IssuedToken>();

  /** An app-only token, or with `delegated` a token for that user (lowercased address) and scope. */
  issue(clientId: string, tenant: string, lifetimeSeconds: number, audience: TokenAudience, delegated?: { user: string; scope: string }): string {
    this.prune();
    // Opaque and unguessable; real ones are JWTs, but nothing may rely on their content.
    const accessToken = `sim.${randomBytes(32).toString('base64url')}`;
    const token: IssuedToken = { clientId, tenant, expiresAt: Date.now() + lifetimeSeconds * 1000, revoked: false, audience };
    if (delegated) token.delegated = delegated;
    this.tokens.set(accessToken, token);
    return accessToken;
  }

  check(accessToken: string): TokenCheck {
    const token = this.tokens.get(accessToken);
    if (!token) return { ok: false, reason: 'unknown' };
    if (token.revoked) return { ok: false, reason: 'revoked' };
    if (token.expiresAt <= Date.now()) return { ok: false, reason: 'expired' };
    return { ok: true, token };
  }

  revokeAll(): void {
    for (const token of this.tokens.values()) token.revoked = true;
  }

  /** Forget tokens that expired more than an hour ago (they would be 'unknown' instead of 'expired'). */
  private prune(): void {
    const horizon = Date.now() - 3_600_000;
    for (const [key, token] of this.tokens) if (token.expiresAt < horizon) this.tokens.delete(key);
  }
}
