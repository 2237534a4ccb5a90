// `m365-relay login`: the mailbox user signs in once with the device-code flow; the resulting
// token cache (with the refresh token) is written to the account's cache file.
import type { DeviceCodeRequest } from '@azure/msal-node';
import { createPublicClient, msalNetworkClient, type DelegatedAccountSettings } from './publicClient.js';
import { TokenCacheError, TokenCacheFile } from './tokenCache.js';

/** Device codes live 15 minutes at Entra ID. */
const DEFAULT_TIMEOUT_MS = 15 * 60_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

export interface DeviceCodeLoginOptions extends DelegatedAccountSettings {
  /** How long to wait for the user to sign in, ms (default 15 min, the device code's life). */
  timeout?: number;
  /** Bound on each HTTP request to Entra ID, ms (default 30 s). */
  requestTimeout?: number;
}

export interface LoginResult {
  /** As Entra ID spells it. */
  username: string;
  cacheFile: string;
  encrypted: boolean;
  /** The first access token's expiry. */
  expiresOn: Date | null;
}

export type LoginFailure = 'wrong-user' | 'declined' | 'expired' | 'public-client-disabled' | 'refused' | 'cache' | 'network';

/** The sign-in did not happen; `advice` tells the administrator what to do. */
export class LoginError extends Error {
  override readonly name = 'LoginError';
  readonly code = 'ELOGIN';
  constructor(
    message: string,
    readonly reason: LoginFailure,
    readonly advice: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Runs the device-code flow for the configured mailbox: `onPrompt` receives Microsoft's message
 * (verification URL and code) to show the administrator; resolves once the user signed in and
 * the cache is written, or rejects with a LoginError. Nothing is written unless the user who
 * signed in is the configured mailbox.
 */
export async function runDeviceCodeLogin(options: DeviceCodeLoginOptions, callbacks: { onPrompt(message: string): void }): Promise<LoginResult> {
  let cache: TokenCacheFile;
  try {
    cache = new TokenCacheFile(options.cacheFile, options.cacheKey);
  } catch (err) {
    throw cacheFailure(err);
  }
  const network = msalNetworkClient(options, options.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT_MS);
  // No cache plugin: the tokens stay in memory until the signed-in user is checked.
  const app = createPublicClient(options, { networkClient: network });
  const timeoutMs = options.timeout ?? DEFAULT_TIMEOUT_MS;
  let noDeviceCode = false;
  const request: DeviceCodeRequest = {
    // msal adds openid, profile and offline_access (the refresh token) itself; naming the last
    // keeps the refresh token should that ever change.
    scopes: [...options.scopes, 'offline_access'],
    timeout: Math.ceil(timeoutMs / 1000),
    deviceCodeCallback: (response) => {
      // msal-node hands an error answer on as an empty response: stop rather than poll with it.
      if (!response.userCode || !response.deviceCode) {
        noDeviceCode = true;
        request.cancel = true;
        return;
      }
      callbacks.onPrompt(response.message || `To sign in, open ${response.verificationUri} and enter the code ${response.userCode}.`);
    },
  };

  let timer: NodeJS.Timeout | undefined;
  // msal checks its own timeout between polls; this bounds a poll that hangs as well.
  const overall = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      request.cancel = true;
      reject(new LoginError(`no sign-in within ${Math.round(timeoutMs / 1000)} s`, 'expired', 'run the login again and complete the sign-in in the browser before the code expires'));
    }, timeoutMs + (options.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT_MS));
    timer.unref();
  });
  let result;
  try {
    result = await Promise.race([app.acquireTokenByDeviceCode(request), overall]);
  } catch (err) {
    if (err instanceof LoginError) throw err;
    throw deviceCodeFailure(err, noDeviceCode ? (network.lastError ?? {}) : null, options);
  } finally {
    clearTimeout(timer);
    request.cancel = true;
  }
  if (!result?.account) throw new LoginError('Entra ID answered without an account', 'refused', 'run the login again; if it repeats, check the app registration');

  const username = result.account.username;
  if (username.toLowerCase() !== options.mailbox.trim().toLowerCase()) {
    throw new LoginError(
      `signed in as ${username}, but the account's mailbox is ${options.mailbox}`,
      'wrong-user',
      `run the login again and sign in as ${options.mailbox} (use a private browser window if the browser picks another user), or change the account's mailbox`,
    );
  }
  try {
    await cache.write(app.getTokenCache().serialize());
  } catch (err) {
    throw cacheFailure(err);
  }
  return { username, cacheFile: options.cacheFile, encrypted: cache.encrypted, expiresOn: result.expiresOn ?? null };
}

function cacheFailure(err: unknown): LoginError {
  if (err instanceof TokenCacheError) return new LoginError(err.message, 'cache', err.advice, { cause: err });
  return new LoginError(`cannot write the token cache: ${(err as Error).message}`, 'cache', 'check the cache file path and its directory permissions', { cause: err });
}

/** What went wrong in msal's device-code flow, in an administrator's words. */
function deviceCodeFailure(err: unknown, deviceCodeAnswer: Record<string, unknown> | null, options: DeviceCodeLoginOptions): LoginError {
  const e = err as { errorCode?: string; errorMessage?: string; message?: string };
  if (deviceCodeAnswer) {
    const description = String(deviceCodeAnswer.error_description ?? deviceCodeAnswer.error ?? 'no device code');
    return new LoginError(
      `Entra ID did not issue a device code: ${description.split(/\r?\n/)[0]}`,
      'refused',
      `check tenantId (${options.tenantId}), clientId (${options.clientId}) and scopes (${options.scopes.join(' ')}) against the app registration`,
      { cause: err },
    );
  }
  const code = e?.errorCode ?? '';
  // Errors of a device-code poll arrive as post_request_failed with the OAuth error name.
  const oauth = code === 'post_request_failed' ? (e.errorMessage ?? '') : code;
  switch (oauth) {
    case 'authorization_declined':
    case 'access_denied':
      return new LoginError('the user declined the sign-in', 'declined', 'run the login again and accept the sign-in request', { cause: err });
    case 'expired_token':
    case 'device_code_expired':
    case 'user_timeout_reached':
    case 'device_code_polling_cancelled':
      return new LoginError('the device code expired before the sign-in completed', 'expired', 'run the login again and complete the sign-in in the browser before the code expires', { cause: err });
    case 'invalid_client':
    case 'unauthorized_client':
      return new LoginError(
        `Entra ID refused the app ${options.clientId} for the device-code flow (${oauth})`,
        'public-client-disabled',
        'in Entra ID, App registrations > the app > Authentication, set "Allow public client flows" to Yes, then run the login again',
        { cause: err },
      );
    case 'network_error':
      return new LoginError(`cannot reach Entra ID at ${options.authorityHost}: ${e.errorMessage ?? e.message ?? ''}`, 'network', 'check the network path to the authority host and run the login again', { cause: err });
    default:
      return new LoginError(`the sign-in failed: ${(e?.errorMessage || e?.message || String(err)).split(/\r?\n/)[0]}`, 'refused', 'run the login again; if it repeats, check the app registration and the mailbox user', { cause: err });
  }
}

