// Verification of RFC 7523 client assertions (certificate credentials), as Entra ID does it.
// msal-node 7 (ClientAssertion.createJwt, via jsonwebtoken) signs with PS256 and an `x5t#S256`
// header when given `thumbprintSha256`, with RS256 and `x5t` for the deprecated SHA-1 `thumbprint`;
// the payload carries aud (the token endpoint), iss = sub = client_id, exp = iat + 600, nbf, jti.
import { constants, verify } from 'node:crypto';
import type { AppEntry } from './directory.js';

export type AssertionCheck = { ok: true } | { ok: false; reason: string };

/** Clock skew tolerated on nbf (5 minutes); exp must be in the future. */
const SKEW_SECONDS = 300;

interface JwtHeader {
  alg?: unknown;
  typ?: unknown;
  x5t?: unknown;
  'x5t#S256'?: unknown;
}

interface JwtPayload {
  aud?: unknown;
  iss?: unknown;
  sub?: unknown;
  exp?: unknown;
  nbf?: unknown;
}

function decodeJson<T>(part: string): T | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as T) : undefined;
  } catch {
    return undefined;
  }
}

const b64urlToHex = (value: string): string => Buffer.from(value, 'base64url').toString('hex').toUpperCase();

/**
 * @param audiences acceptable `aud` values (the token endpoint URL), compared case-insensitively
 */
export function verifyClientAssertion(jwt: string, app: AppEntry, audiences: string[], nowSeconds = Date.now() / 1000): AssertionCheck {
  const parts = jwt.split('.');
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p))) {
    return { ok: false, reason: 'Client assertion failed signature validation. [Reason - The client assertion is not a well-formed JWT.]' };
  }
  const [h, p, s] = parts as [string, string, string];
  const header = decodeJson<JwtHeader>(h);
  const payload = decodeJson<JwtPayload>(p);
  if (!header || !payload) {
    return { ok: false, reason: 'Client assertion failed signature validation. [Reason - The client assertion header or payload is not valid JSON.]' };
  }

  // Which registered key signed it: x5t#S256 (SHA-256) or x5t (SHA-1) thumbprint, base64url.
  const x5tS256 = typeof header['x5t#S256'] === 'string' ? header['x5t#S256'] : undefined;
  const x5t = typeof header.x5t === 'string' ? header.x5t : undefined;
  const presented = x5tS256 !== undefined ? b64urlToHex(x5tS256) : x5t !== undefined ? b64urlToHex(x5t) : '';
  const cert = app.certificate;
  const matches =
    cert !== undefined &&
    ((x5tS256 !== undefined && Buffer.from(x5tS256, 'base64url').equals(cert.sha256)) ||
      (x5tS256 === undefined && x5t !== undefined && Buffer.from(x5t, 'base64url').equals(cert.sha1)));
  if (!cert || !matches) {
    return {
      ok: false,
      reason: `The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '${presented || '(none: no x5t#S256 or x5t header)'}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '${app.clientId}'.]`,
    };
  }

  const signingInput = Buffer.from(`${h}.${p}`, 'ascii');
  const signature = Buffer.from(s, 'base64url');
  let valid: boolean;
  try {
    if (header.alg === 'PS256') {
      valid = verify('sha256', signingInput, { key: cert.cert.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }, signature);
    } else if (header.alg === 'RS256') {
      valid = verify('sha256', signingInput, { key: cert.cert.publicKey, padding: constants.RSA_PKCS1_PADDING }, signature);
    } else {
      return { ok: false, reason: `Client assertion failed signature validation. [Reason - The signing algorithm '${String(header.alg)}' is not supported; use PS256 or RS256.]` };
    }
  } catch {
    valid = false;
  }
  if (!valid) return { ok: false, reason: 'Client assertion failed signature validation.' };

  const aud = typeof payload.aud === 'string' ? payload.aud : Array.isArray(payload.aud) && typeof payload.aud[0] === 'string' ? payload.aud[0] : '';
  if (!audiences.some((a) => a.toLowerCase() === aud.toLowerCase())) {
    return { ok: false, reason: `Client assertion failed validation. [Reason - The audience claim '${aud}' does not match the token endpoint '${audiences[0] ?? ''}'.]` };
  }
  const clientId = app.clientId.toLowerCase();
  if (typeof payload.iss !== 'string' || typeof payload.sub !== 'string' || payload.iss.toLowerCase() !== clientId || payload.sub.toLowerCase() !== clientId) {
    return { ok: false, reason: `Client assertion failed validation. [Reason - The iss and sub claims must both be the client id '${app.clientId}'.]` };
  }
  if (typeof payload.exp !== 'number') return { ok: false, reason: 'Client assertion failed validation. [Reason - The exp claim is missing.]' };
  if (payload.exp <= nowSeconds) {
    return { ok: false, reason: `Client assertion is not within its valid time range. [Reason - The assertion expired at ${new Date(payload.exp * 1000).toISOString()}.]` };
  }
  if (typeof payload.nbf === 'number' && payload.nbf - SKEW_SECONDS > nowSeconds) {
    return { ok: false, reason: `Client assertion is not within its valid time range. [Reason - The assertion is not valid before ${new Date(payload.nbf * 1000).toISOString()}.]` };
  }
  return { ok: true };
}
