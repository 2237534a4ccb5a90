// What an access token says about the app registration, read from its claims. Entra ID's tokens for
// Exchange Online are JWTs; the relay never validates them (Exchange does), it only reads them here
// to explain a refusal before it happens. An opaque token (the built-in simulator) has nothing to read.
import type { Microsoft365Config } from '../config/index.js';
import type { Finding } from './upstreamCheck.js';

/** Exchange Online's application id: some tokens name it as the audience instead of its URL. */
const EXCHANGE_APP_ID = '00000002-0000-0ff1-ce00-000000000000';
const SEND_ROLE = 'SMTP.SendAsApp';

export function decodeJwtPayload(token: string): Record<string, unknown> | null {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[1]) return null;
  try {
    const payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as unknown;
    return payload && typeof payload === 'object' ? (payload as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** The resource a `.default` scope asks for: https://outlook.office365.com/.default -> https://outlook.office365.com */
function resourceOf(scope: string): string {
  return scope.replace(/\/\.default$/, '').replace(/\/$/, '');
}

export function inspectTokenClaims(accessToken: string, account: Pick<Microsoft365Config, 'scope' | 'clientId'>): Finding[] {
  const claims = decodeJwtPayload(accessToken);
  if (!claims) return [];
  const findings: Finding[] = [];
  const aud = typeof claims.aud === 'string' ? claims.aud.replace(/\/$/, '') : '';
  const expected = resourceOf(account.scope);
  if (aud && aud.toLowerCase() !== expected.toLowerCase() && aud !== EXCHANGE_APP_ID) {
    findings.push({
      step: 'token audience',
      ok: false,
      warning: true,
      detail: `the token is for ${aud}`,
      problem: 'the token is not for Exchange Online, which will refuse it (535 5.7.3)',
      fix: 'set microsoft365.scope to https://outlook.office365.com/.default (app-only SMTP)',
    });
  }
  const roles = Array.isArray(claims.roles) ? claims.roles.filter((r): r is string => typeof r === 'string') : [];
  if (!roles.includes(SEND_ROLE)) {
    findings.push({
      step: 'token permissions',
      ok: false,
      warning: true,
      detail: roles.length ? `the token carries the roles ${roles.join(', ')}` : 'the token carries no application roles',
      problem: `the app has no ${SEND_ROLE} permission with admin consent (fine only if access is granted through Exchange's RBAC for Applications)`,
      fix: `in Entra ID, App registrations > ${account.clientId} > API permissions: add Office 365 Exchange Online > Application permissions > ${SEND_ROLE}, then Grant admin consent`,
    });
  } else {
    findings.push({ step: 'token permissions', ok: true, detail: `${SEND_ROLE} granted${typeof claims.tid === 'string' ? ` in tenant ${claims.tid}` : ''}` });
  }
  return findings;
}
