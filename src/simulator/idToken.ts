// The id_token and client_info of a delegated token response. msal-node reads the claims to build
// the account in its cache (oid, tid, preferred_username) and does not check the signature, so an
// unsigned-looking JWT does; nothing else may rely on it.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { userObjectId } from './ids.js';

const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

export interface IdTokenInput {
  /** 'https://127.0.0.1:40123' */
  origin: string;
  /** The tenant's GUID (tid). */
  tenant: string;
  clientId: string;
  /** The user's address as configured (preferred_username). */
  address: string;
  lifetimeSeconds: number;
}

export function idToken(input: IdTokenInput): string {
  const now = Math.floor(Date.now() / 1000);
  const oid = userObjectId(input.address);
  const claims = {
    aud: input.clientId,
    iss: `${input.origin}/${input.tenant}/v2.0`,
    iat: now,
    nbf: now,
    exp: now + input.lifetimeSeconds,
    name: input.address.split('@')[0] ?? input.address,
    oid,
    preferred_username: input.address,
    // Entra's sub is pairwise: per user and app.
    sub: createHash('sha256').update(`${oid}|${input.clientId}`).digest('base64url').slice(0, 43),
    tid: input.tenant,
    uti: randomUUID(),
    ver: '2.0',
  };
  return `${b64url({ typ: 'JWT', alg: 'RS256', kid: 'simulator' })}.${b64url(claims)}.${randomBytes(32).toString('base64url')}`;
}

/** base64url({uid, utid}): msal's home account id is `${uid}.${utid}`. */
export function clientInfo(tenant: string, address: string): string {
  return b64url({ uid: userObjectId(address), utid: tenant });
}
