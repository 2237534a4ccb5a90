/**
 * Why a token could not be had. `configuration` means an administrator must act (the mail stays
 * queued meanwhile); `transient` means Entra ID or the network failed and a retry will do.
 */
export type TokenFailureKind = 'configuration' | 'transient';

export class TokenError extends Error {
  override readonly name = 'TokenError';
  readonly code = 'ETOKEN';
  constructor(
    message: string,
    readonly kind: TokenFailureKind,
    /** AADSTS error number when Entra ID gave one, e.g. 7000215. */
    readonly aadsts: number | null,
    /** What the administrator should do, in plain words. */
    readonly advice: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

interface EntraAdvice {
  code: number;
  advice: string;
}

/** Entra ID errors that no retry will fix, with the fix. Checked by AADSTS number. */
const CONFIGURATION_ERRORS: EntraAdvice[] = [
  { code: 7000215, advice: 'the client secret is wrong: put the secret VALUE (not its ID) from the app registration in microsoft365.clientSecret' },
  { code: 7000222, advice: 'the client secret has expired: create a new secret in the app registration (Certificates & secrets) and update microsoft365.clientSecret' },
  { code: 700016, advice: 'the application (clientId) is not known in this tenant: check microsoft365.clientId and microsoft365.tenantId, and that the app is registered in that tenant' },
  { code: 90002, advice: 'the tenant was not found: check microsoft365.tenantId (the tenant GUID or a verified domain such as contoso.onmicrosoft.com)' },
  { code: 70011, advice: 'the scope is invalid: microsoft365.scope should be https://outlook.office365.com/.default for app-only SMTP' },
  { code: 700027, advice: 'the client certificate was not accepted: upload the certificate (public part) to the app registration and check the private key matches' },
  { code: 7000112, advice: 'the application is disabled in the tenant: enable it in Entra ID (Enterprise applications)' },
  { code: 50034, advice: 'the user or mailbox account does not exist in this tenant' },
  { code: 53003, advice: 'a Conditional Access policy blocked the token request: exclude the relay app or allow its location' },
  { code: 7000218, advice: 'the request needs a client secret or certificate: set microsoft365.clientSecret or clientCertificate' },
];

/** OAuth error names (RFC 6749) that mean the request itself is wrong, whatever the AADSTS code. */
const CONFIGURATION_OAUTH_ERRORS = new Set(['invalid_client', 'unauthorized_client', 'invalid_scope', 'invalid_request', 'invalid_grant']);

/** Maps whatever msal-node threw (ServerError, ClientAuthError, network error) to a TokenError. */
export function toTokenError(err: unknown): TokenError {
  if (err instanceof TokenError) return err;
  const e = err as { errorCode?: string; errorMessage?: string; message?: string; subError?: string };
  const text = `${e?.errorCode ?? ''} ${e?.errorMessage ?? ''} ${e?.message ?? String(err)}`;
  const aadsts = /AADSTS(\d+)/.exec(text);
  const code = aadsts ? Number(aadsts[1]) : null;
  const summary = firstLine(e?.errorMessage || e?.message || String(err));
  const known = code !== null ? CONFIGURATION_ERRORS.find((c) => c.code === code) : undefined;
  if (known) return new TokenError(`Entra ID refused the token request: ${summary}`, 'configuration', code, known.advice, { cause: err });
  if (e?.errorCode && CONFIGURATION_OAUTH_ERRORS.has(e.errorCode)) {
    return new TokenError(
      `Entra ID refused the token request: ${summary}`,
      'configuration',
      code,
      'check microsoft365.tenantId, clientId, the credential and the scope against the app registration',
      { cause: err },
    );
  }
  return new TokenError(`could not get a token from Entra ID: ${summary}`, 'transient', code, 'Entra ID or the network is unavailable; retrying', { cause: err });
}

function firstLine(text: string): string {
  // Entra descriptions carry trace ids and timestamps on later lines; the first line is the point.
  return text.split(/\r?\n|Trace ID:/)[0]?.trim() ?? text;
}
