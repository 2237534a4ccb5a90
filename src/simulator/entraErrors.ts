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
  temporarilyUnavailable: (cid: string, origin: string) =>
    entraError(503, 'temporarily_unavailable', 90033, 'A transient error has occurred. Please try again.', cid, origin),
} as const;
