// msal-node's HTTP client, replaced through its supported extension point (system.networkClient):
// msal-node 5+ has no proxy option of its own, and its fetch-based client cannot use an https.Agent.
import type { Agent } from 'node:https';
import { request as httpsRequest } from 'node:https';
import { AuthError, type INetworkModule, type NetworkRequestOptions, type NetworkResponse } from '@azure/msal-node';

/**
 * GET and POST to Entra ID over node:https with the given agent (a TunnelingAgent when a proxy
 * applies), each bounded by `timeoutMs`. Keeps the body of the last error answer: msal does not
 * report errors of the device code endpoint, and their AADSTS text is the help (see login.ts).
 */
export class MsalNetworkClient implements INetworkModule {
  lastError: Record<string, unknown> | null = null;

  constructor(
    private readonly timeoutMs: number,
    private readonly agent?: Agent,
  ) {}

  sendGetRequestAsync<T>(url: string, options?: NetworkRequestOptions, timeout?: number): Promise<NetworkResponse<T>> {
    return this.send<T>(url, 'GET', options, timeout);
  }

  sendPostRequestAsync<T>(url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
    return this.send<T>(url, 'POST', options);
  }

  private send<T>(url: string, method: 'GET' | 'POST', options: NetworkRequestOptions = {}, timeout?: number): Promise<NetworkResponse<T>> {
    const timeoutMs = Math.min(timeout ?? this.timeoutMs, this.timeoutMs);
    const body = method === 'POST' ? Buffer.from(options.body ?? '', 'utf8') : undefined;
    const headers: Record<string, string> = { ...options.headers, ...(body && { 'content-length': String(body.length) }) };
    return new Promise<NetworkResponse<T>>((resolve, reject) => {
      const req = httpsRequest(url, { method, headers, timeout: timeoutMs, ...(this.agent && { agent: this.agent }) }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => reject(networkFailure(err)));
        res.on('end', () => {
          const out: Record<string, string> = {};
          for (const [key, value] of Object.entries(res.headers)) if (value !== undefined) out[key] = Array.isArray(value) ? value.join(', ') : value;
          let parsed: T & Record<string, unknown>;
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as T & Record<string, unknown>;
          } catch {
            reject(new AuthError('token_parsing_error', `${method} ${new URL(url).host}: the answer (HTTP ${res.statusCode ?? 0}) is not JSON; a proxy or firewall may have answered instead of Entra ID`));
            return;
          }
          if ((res.statusCode ?? 0) >= 400 && parsed && typeof parsed === 'object' && 'error' in parsed) this.lastError = parsed;
          resolve({ headers: out, body: parsed, status: res.statusCode ?? 0 });
        });
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
      req.on('error', (err) => reject(networkFailure(err)));
      req.end(body);
    });
  }
}

/** msal passes an AuthError on as it is; its message is what the relay logs and check-config explains. */
function networkFailure(err: Error & { code?: string }): AuthError {
  const failure = new AuthError('network_error', `Network request failed: ${err.code && !err.message.includes(err.code) ? `${err.code} ` : ''}${err.message}`);
  (failure as { cause?: unknown }).cause = err;
  return failure;
}
