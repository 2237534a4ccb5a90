// What an access token says about the app registration, read from its claims. Entra ID's tokens for
// Exchange Online are JWTs; the relay never validates them (Exchange does), it only reads them here
// to explain a refusal before it happens. An opaque token (the built-in simulator) has nothing to read.
import type { AccountConfig } from '../config/index.js';
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

/** The resource a scope asks for: https://outlook.office365.com/.default -> https://outlook.office365.com, https://outlook.office.com/SMTP.Send -> https://outlook.office.com */
function resourceOf(scope: string): string {
  try {
    return new URL(scope).origin;
  } catch {
    return scope;
  }
}

/** Exchange Online answers to both of its host names as an audience. */
function sameResource(aud: string, expected: string): boolean {
  const exchange = /^https:\/\/outlook\.office(365)?\.com$/i;
  return aud.toLowerCase() === expected.toLowerCase() || (exchange.test(aud) && exchange.test(expected));
}

type ClaimsAccount = Pick<AccountConfig, 'scope' | 'graphScope' | 'clientId' | 'transport' | 'flow'>;

export function inspectTokenClaims(accessToken: string, account: ClaimsAccount): Finding[] {
  const claims = decodeJwtPayload(accessToken);
  if (!claims) return [];
  const findings: Finding[] = [];
  const graph = account.transport === 'graph';
  const delegated = account.flow === 'device-code';
  const scope = graph ? account.graphScope : account.scope;
  const aud = typeof claims.aud === 'string' ? claims.aud.replace(/\/$/, '') : '';
  const expected = resourceOf(scope);
  if (aud && !sameResource(aud, expected) && !(aud === EXCHANGE_APP_ID && !graph)) {
    findings.push({
      step: 'token audience',
      ok: false,
      warning: true,
      detail: `the token is for ${aud}`,
      problem: `the token is not for ${graph ? 'Microsoft Graph' : 'Exchange Online'}, which will refuse it`,
      fix: `set the account's ${graph ? 'graphScope' : 'scope'} to ${scope} (or remove it to use the default)`,
    });
  }
  // App-only tokens carry application roles; delegated ones carry scopes (scp, space separated).
  const granted = delegated
    ? (typeof claims.scp === 'string' ? claims.scp.split(' ') : [])
    : Array.isArray(claims.roles)
      ? claims.roles.filter((r): r is string => typeof r === 'string')
      : [];
  const needed = graph ? 'Mail.Send' : delegated ? 'SMTP.Send' : SEND_ROLE;
  const api = graph ? 'Microsoft Graph' : 'Office 365 Exchange Online';
  if (!granted.includes(needed)) {
    findings.push({
      step: 'token permissions',
      ok: false,
      warning: true,
      detail: granted.length ? `the token carries ${granted.join(', ')}` : `the token carries no ${delegated ? 'scopes' : 'application roles'}`,
      problem: `the app has no ${needed} ${delegated ? 'delegated' : 'application'} permission with consent${!delegated && !graph ? " (fine only if access is granted through Exchange's RBAC for Applications)" : ''}`,
      fix: `in Entra ID, App registrations > ${account.clientId} > API permissions: add ${api} > ${delegated ? 'Delegated' : 'Application'} permissions > ${needed}, then Grant admin consent`,
    });
  } else {
    findings.push({ step: 'token permissions', ok: true, detail: `${needed} granted${typeof claims.tid === 'string' ? ` in tenant ${claims.tid}` : ''}` });
  }
  return findings;
}
