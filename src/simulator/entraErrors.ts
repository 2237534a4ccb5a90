// Entra ID (AADSTS) error responses, shaped like login.microsoftonline.com's.
import { randomUUID } from 'node:crypto';

export interface EntraErrorBody {
  error: string;
  error_description: string;
  error_codes: number[];
  timestamp: string;
  trace_id: string;
  correlation_id: string;
  error_uri: string;
}

export interface EntraError {
  status: number;
  body: EntraErrorBody;
}

/** '2024-05-01 12:34:56Z', Entra's timestamp format. */
export function entraTimestamp(date = new Date()): string {
  return date.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function entraError(status: number, error: string, code: number, text: string, correlationId: string, origin: string): EntraError {
  const timestamp = entraTimestamp();
  const traceId = randomUUID();
  return {
    status,
    body: {
      error,
      // Entra puts the ids on further lines (CRLF); clients show the first line.
      error_description: `AADSTS${code}: ${text}\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${correlationId}\r\nTimestamp: ${timestamp}`,
      error_codes: [code],
      timestamp,
      trace_id: traceId,
      correlation_id: correlationId,
      error_uri: `${origin}/error?code=${code}`,
    },
  };
}

/** The Entra errors the simulator produces, by cause. */
export const EntraErrors = {
  tenantNotFound: (tenant: string, cid: string, origin: string) =>
    entraError(
      400,
      'invalid_request',
      90002,
      `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`,
      cid,
      origin,
    ),
  unsupportedGrantType: (grantType: string, cid: string, origin: string) =>
    entraError(400, 'unsupported_grant_type', 70003, `The app requested an unsupported grant type '${grantType}'.`, cid, origin),
  missingParameter: (name: string, cid: string, origin: string) =>
    entraError(400, 'invalid_request', 900144, `The request body must contain the following parameter: '${name}'.`, cid, origin),
  malformedRequest: (cid: string, origin: string) =>
    entraError(400, 'invalid_request', 900023, 'Specified request is malformed or invalid.', cid, origin),
  appNotFound: (clientId: string, tenant: string, cid: string, origin: string) =>
    entraError(
      400,
      'unauthorized_client',
      700016,
      `Application with identifier '${clientId}' was not found in the directory '${tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
      cid,
      origin,
    ),
  invalidScope: (scope: string, cid: string, origin: string) =>
    entraError(400, 'invalid_scope', 70011, `The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope ${scope} is not valid.`, cid, origin),
  invalidSecret: (clientId: string, cid: string, origin: string) =>
    entraError(
      401,
      'invalid_client',
      7000215,
      `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.`,
      cid,
      origin,
    ),
  expiredSecret: (clientId: string, cid: string, origin: string) =>
    entraError(
      401,
      'invalid_client',
      7000222,
      `The provided client secret keys for app '${clientId}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.`,
      cid,
      origin,
    ),
  missingCredential: (cid: string, origin: string) =>
    entraError(401, 'invalid_client', 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.", cid, origin),
  invalidAssertion: (text: string, cid: string, origin: string) => entraError(401, 'invalid_client', 700027, text, cid, origin),
  multipleResources: (scope: string, cid: string, origin: string) =>
    entraError(400, 'invalid_scope', 28000, `Provided value for the input parameter scope is not valid because it contains more than one resource. Scope ${scope} is not valid.`, cid, origin),
  // Device code flow (RFC 8628 error names, as Entra ID answers the client's polls).
  authorizationPending: (cid: string, origin: string) =>
    entraError(400, 'authorization_pending', 70016, 'OAuth 2.0 device flow error. Authorization is pending. Continue polling.', cid, origin),
  authorizationDeclined: (cid: string, origin: string) =>
    entraError(400, 'authorization_declined', 70000, 'The user declined the sign-in request (device flow).', cid, origin),
  expiredDeviceCode: (cid: string, origin: string) => entraError(400, 'expired_token', 70019, 'Verification code expired.', cid, origin),
  badVerificationCode: (cid: string, origin: string) =>
    entraError(400, 'bad_verification_code', 70000, "The provided value for the input parameter 'device_code' is not valid.", cid, origin),
  // Refresh tokens.
  invalidGrant: (cid: string, origin: string) => entraError(400, 'invalid_grant', 70000, 'Provided grant is invalid or malformed.', cid, origin),
  refreshTokenRevoked: (issuedAt: number, cid: string, origin: string) =>
    entraError(
      400,
      'invalid_grant',
      50173,
      `The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '${new Date(issuedAt).toISOString()}'.`,
      cid,
      origin,
    ),
  refreshTokenInactive: (issuedAt: number, cid: string, origin: string) =>
    entraError(
      400,
      'invalid_grant',
      700082,
      `The refresh token has expired due to inactivity. The token was issued on ${new Date(issuedAt).toISOString()} and was inactive for ${inactiveFor(issuedAt)}.`,
      cid,
      origin,
    ),
  signInFrequency: (signedInAt: number, maxSeconds: number, cid: string, origin: string) =>
    entraError(
      400,
      'invalid_grant',
      70043,
      `The refresh token has expired or is invalid due to sign-in frequency checks by conditional access. The token was issued on ${new Date(signedInAt).toISOString()} and the maximum allowed lifetime for this request is ${maxSeconds}.`,
      cid,
      origin,
    ),
  temporarilyUnavailable: (cid: string, origin: string) =>
    entraError(503, 'temporarily_unavailable', 90033, 'A transient error has occurred. Please try again.', cid, origin),
} as const;

/** Entra's 'd.hh:mm:ss' duration since `since`. */
function inactiveFor(since: number): string {
  const total = Math.max(0, Math.floor((Date.now() - since) / 1000));
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${Math.floor(total / 86_400)}.${pad(Math.floor(total / 3600) % 24)}:${pad(Math.floor(total / 60) % 60)}:${pad(total % 60)}`;
}
