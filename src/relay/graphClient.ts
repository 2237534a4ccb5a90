// HTTP to Microsoft Graph for the transport: bearer tokens (a 401 renews the token and retries
// once), at most 4 requests at once per mailbox (Graph's limit), Retry-After in both forms and
// capped, short waits taken inline and cut short by a stop, and the "possible duplicate" flag for
// a request that sends mail and ended without a clear answer.
import { request as httpsRequest, type Agent } from 'node:https';
import type { TokenSource } from '../oauth/index.js';
import { httpsAgentFor } from '../proxy/index.js';
import type { UpstreamFailure } from './classify.js';
import { UpstreamError } from './transport.js';

/** A Retry-After this short is waited out within the attempt; a longer one defers the message and rests the mailbox. */
export const MAX_INLINE_WAIT_MS = 5_000;

export interface GraphClientOptions {
  timeoutMs: number;
  /** The longest Retry-After honoured (configuration retryAfterMax). */
  retryAfterMaxMs: number;
  /** Graph allows 4 concurrent requests per app and mailbox. */
  maxConcurrent?: number;
  /** Injectable clock for Retry-After dates. */
  now?: () => number;
  /** The account's `proxy` setting (a URL or `direct`); absent: the environment's. */
  proxy?: string;
}

export interface GraphRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: string;
  contentType?: string;
  body?: Buffer;
  headers?: Record<string, string>;
  /** Upload URLs carry their own authorization: no bearer token is sent to them. */
  anonymous?: boolean;
  /** sendMail or /send: an unclear ending may mean Exchange sent it, so it is never repeated inline. */
  sends?: boolean;
}

interface Outcome {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** Errors that mean the request never reached Graph: repeating it cannot duplicate anything. */
const NOT_SENT = new Set(['EPROXY', 'ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ERR_TLS_CERT_ALTNAME_INVALID', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_HAS_EXPIRED', 'SELF_SIGNED_CERT_IN_CHAIN']);

export class GraphClient {
  /** One agent per host: Graph, and the hosts of upload sessions (each may or may not go by the proxy). */
  private readonly agents = new Map<string, Agent>();
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly options: GraphClientOptions,
    private readonly tokens: TokenSource,
  ) {}

  /** The parsed JSON answer ({} when empty); a failure is thrown as UpstreamError. */
  async call(req: GraphRequest, signal?: AbortSignal): Promise<Record<string, unknown>> {
    let renewed = false;
    let waited = false;
    for (;;) {
      const outcome = await this.once(req, renewed);
      if (outcome.status < 300) return outcome.body.length ? (JSON.parse(outcome.body.toString('utf8')) as Record<string, unknown>) : {};
      const failure = toFailure(outcome, this.options.retryAfterMaxMs, (this.options.now ?? Date.now)());
      // 401: the token was refused (expired, revoked): nothing was done, one retry with a fresh one.
      if (outcome.status === 401 && !renewed && !req.anonymous) {
        renewed = true;
        continue;
      }
      if (req.sends && outcome.status >= 500) failure.possibleDuplicate = true;
      const throttled = outcome.status === 429 || (outcome.status === 503 && !req.sends);
      if (throttled && !waited && failure.retryAfterMs !== undefined && failure.retryAfterMs <= MAX_INLINE_WAIT_MS) {
        waited = true;
        try {
          await abortableDelay(failure.retryAfterMs, signal);
        } catch {
          // Stopping: end the attempt now with Graph's own answer (the message is deferred).
          throw new UpstreamError(failure);
        }
        continue;
      }
      throw new UpstreamError(failure);
    }
  }

  close(): void {
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
  }

  private agentFor(host: string): Agent {
    let agent = this.agents.get(host);
    if (!agent) {
      agent = httpsAgentFor(this.options.proxy, host, this.options.timeoutMs, { keepAlive: true, maxSockets: this.options.maxConcurrent ?? 4 });
      this.agents.set(host, agent);
    }
    return agent;
  }

  private async once(req: GraphRequest, forceRefresh: boolean): Promise<Outcome> {
    await this.slot();
    try {
      const body = req.body ?? Buffer.alloc(0);
      const headers: Record<string, string> = { 'content-length': String(body.length), ...req.headers };
      if (req.contentType) headers['content-type'] = req.contentType;
      if (!req.anonymous) headers.authorization = `Bearer ${(await this.tokens.getToken(forceRefresh ? { forceRefresh } : undefined)).accessToken}`;
      return await this.request(req, headers, body);
    } finally {
      this.release();
    }
  }

  private request(req: GraphRequest, headers: Record<string, string>, body: Buffer): Promise<Outcome> {
    const { timeoutMs } = this.options;
    return new Promise<Outcome>((resolve, reject) => {
      const r = httpsRequest(req.url, { method: req.method, headers, agent: this.agentFor(new URL(req.url).hostname), timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      r.on('timeout', () => r.destroy(Object.assign(new Error(`Graph did not answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
      r.on('error', (err: NodeJS.ErrnoException) => {
        const code = err.code ?? 'ECONNECTION';
        // A send that may have reached Graph is the message's failure (stage data); anything else
        // (Graph unreachable, a draft step) is the account's, as an SMTP session failure is.
        const maybeSent = req.sends === true && !NOT_SENT.has(code);
        const failure: UpstreamFailure = { code, stage: maybeSent ? 'data' : 'session', message: `${req.method} ${new URL(req.url).host}${new URL(req.url).pathname.replace(/\/messages\/[^/]+/, '/messages/{id}')}: ${err.message}` };
        if (maybeSent) failure.possibleDuplicate = true;
        reject(new UpstreamError(failure, [], { cause: err }));
      });
      r.end(body);
    });
  }

  private async slot(): Promise<void> {
    if (this.active < (this.options.maxConcurrent ?? 4)) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }
}

/**
 * Retry-After (RFC 9110 10.2.3) as milliseconds from `now`: delay-seconds or an HTTP-date; a date
 * in the past is 0; anything else is undefined (ignored). Capped at `maxMs`.
 */
export function parseRetryAfter(value: string | string[] | undefined, now: number, maxMs: number): number | undefined {
  const text = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!text) return undefined;
  let ms: number;
  if (/^\d+$/.test(text)) {
    ms = Number(text) * 1000;
  } else {
    // Date.parse reads IMF-fixdate and the obsolete RFC 850 / asctime forms; it must name a weekday or month to count.
    const at = /[A-Za-z]{3}/.test(text) ? Date.parse(text) : NaN;
    if (Number.isNaN(at)) return undefined;
    ms = Math.max(0, at - now);
  }
  return Math.min(ms, maxMs);
}

function toFailure(outcome: Outcome, retryAfterMaxMs: number, now: number): UpstreamFailure {
  let code = '';
  let message = outcome.body.toString('utf8').slice(0, 300);
  try {
    const parsed = JSON.parse(outcome.body.toString('utf8')) as { error?: { code?: string; message?: string } };
    code = parsed.error?.code ?? '';
    message = parsed.error?.message ?? message;
  } catch {
    // not JSON: keep the text
  }
  const retryAfterMs = parseRetryAfter(outcome.headers['retry-after'], now, retryAfterMaxMs);
  return {
    httpStatus: outcome.status,
    graphCode: code,
    response: `${outcome.status} ${code || 'error'}: ${message}`.trim(),
    ...(retryAfterMs !== undefined && { retryAfterMs }),
  };
}

/** Resolves after `ms`, rejects at once when `signal` aborts (already aborted: at once). */
export function abortableDelay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function graphFailure(status: number, code: string, message: string): UpstreamError {
  return new UpstreamError({ httpStatus: status, graphCode: code, response: `${status} ${code}: ${message}` });
}
