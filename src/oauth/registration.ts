// The app reads its own registration from Microsoft Graph to learn when its client secret ends:
// GET /v1.0/applications(appId='{clientId}') with an app-only Graph token. Allowed with the
// application permission Application.Read.All (or Application.ReadWrite.OwnedBy when the app owns
// itself); a 403 only means "not allowed": clientSecretExpires from the configuration then stands.
import { request as httpsRequest } from 'node:https';
import type { AccountConfig } from '../config/index.js';
import type { Logger } from '../observability/logger.js';
import { httpsAgentFor } from '../proxy/index.js';
import { TokenProvider, type TokenSource } from './tokenProvider.js';

export type RegistrationLookup =
  /** The secret's end as Entra records it; null when no secret of the app matches the configured one. */
  | { status: 'found'; expiresAt: string | null }
  /** 401/403: the app may not read its registration. */
  | { status: 'denied'; message: string }
  | { status: 'failed'; message: string };

interface PasswordCredential {
  hint?: string | null;
  endDateTime?: string | null;
}

/**
 * Which of the app's secrets is the configured one: Entra keeps the first three characters of each
 * (`hint`). Several may share them: the earliest end is taken, so that a warning is never late.
 */
export function matchSecret(secret: string, credentials: PasswordCredential[]): string | null {
  const ends = credentials
    .filter((c) => typeof c.hint === 'string' && c.hint.length > 0 && secret.startsWith(c.hint) && c.endDateTime && !Number.isNaN(Date.parse(c.endDateTime)))
    .map((c) => Date.parse(c.endDateTime ?? ''))
    .sort((a, b) => a - b);
  return ends.length > 0 ? new Date(ends[0] ?? 0).toISOString() : null;
}

/** The app-only Graph token for the lookup: the account's own credential, Graph's .default scope. */
export function registrationTokenSource(account: AccountConfig, logger: Logger): TokenSource {
  return new TokenProvider({ ...account, scope: account.graphScope }, logger);
}

/** Reads the app's registration and matches the configured secret. Never throws. */
export async function lookupSecretExpiry(account: AccountConfig, tokens: TokenSource): Promise<RegistrationLookup> {
  if (!account.clientSecret) return { status: 'found', expiresAt: null };
  let token: string;
  try {
    token = (await tokens.getToken()).accessToken;
  } catch (err) {
    return { status: 'failed', message: `no Graph token: ${(err as Error).message}` };
  }
  const url = `${account.graphHost}/v1.0/applications(appId='${encodeURIComponent(account.clientId)}')?$select=appId,passwordCredentials`;
  const host = new URL(account.graphHost).hostname;
  const agent = httpsAgentFor(account.proxy, host, account.tokenTimeout);
  try {
    const { status, body } = await getJson(url, token, account.tokenTimeout, agent);
    if (status === 401 || status === 403) {
      return { status: 'denied', message: `Graph answered ${status}: the app may not read its own registration (it needs Application.Read.All)` };
    }
    if (status !== 200) return { status: 'failed', message: `Graph answered ${status}` };
    const credentials = Array.isArray((body as { passwordCredentials?: unknown }).passwordCredentials) ? (body as { passwordCredentials: PasswordCredential[] }).passwordCredentials : [];
    return { status: 'found', expiresAt: matchSecret(account.clientSecret, credentials) };
  } catch (err) {
    return { status: 'failed', message: (err as Error).message };
  } finally {
    agent.destroy();
  }
}

function getJson(url: string, token: string, timeoutMs: number, agent: import('node:https').Agent): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: 'GET', headers: { authorization: `Bearer ${token}`, accept: 'application/json' }, timeout: timeoutMs, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        let body: unknown = {};
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          // not JSON: the status says enough
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`Graph did not answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}
