import type { AccessToken } from './tokenProvider.js';

/** msal-node serves a cached access token until this long before it expires. */
export const MSAL_RENEWAL_OFFSET_MS = 300_000;

export type FlightKey = 'cached' | 'forced';

/**
 * The getToken contract every token source shares. The token held is served while msal would
 * serve it anyway (or, with a larger `renewBeforeMs`, while it has that much life left and a minute) (msal's cache lookup costs more than the rest of a delivery's bookkeeping).
 * Concurrent callers share one request, separately for cached and forced requests: a forced
 * renewal must never be answered with the cached token it is meant to replace.
 */
export function singleFlightToken(
  current: AccessToken | null,
  inflight: Map<FlightKey, Promise<AccessToken>>,
  forceRefresh: boolean | undefined,
  fetch: (forced: boolean) => Promise<AccessToken>,
  renewBeforeMs = MSAL_RENEWAL_OFFSET_MS,
): Promise<AccessToken> {
  if (!forceRefresh && current && current.expiresOn.getTime() - Date.now() > renewBeforeMs + 60_000) {
    return Promise.resolve(current);
  }
  const key: FlightKey = forceRefresh ? 'forced' : 'cached';
  const running = inflight.get(key);
  if (running) return running;
  const request = fetch(key === 'forced').finally(() => inflight.delete(key));
  inflight.set(key, request);
  return request;
}
