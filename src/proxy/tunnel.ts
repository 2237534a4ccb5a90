// A TCP tunnel through an HTTP proxy (HTTP CONNECT, RFC 9110 9.3.6), with the proxy's refusals
// told apart for check-config. Node's own HTTP client sends the CONNECT and parses the answer; TLS
// to Microsoft 365 then runs inside the tunnel, end to end, verified against the real host name.
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type Socket } from 'node:net';
import { redactProxyUrl } from './settings.js';

/**
 * unreachable: no TCP (or TLS) connection to the proxy itself; auth: 407; forbidden: the proxy
 * answered CONNECT with another refusal (403, 405, 502, ...); timeout: no answer in time.
 */
export type ProxyFailureKind = 'unreachable' | 'auth' | 'forbidden' | 'timeout';

export class ProxyError extends Error {
  override readonly name = 'ProxyError';
  readonly code = 'EPROXY';
  constructor(
    message: string,
    readonly kind: ProxyFailureKind,
    /** The proxy as it may be shown (credentials redacted). */
    readonly proxy: string,
    /** The destination asked for, host:port. */
    readonly target: string,
    /** The proxy's HTTP status, when it answered. */
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Opens a tunnel to host:port through `proxy`; resolves with the raw socket once the proxy
 * answered 2xx. `timeoutMs` bounds connecting to the proxy and its answer together.
 */
export function openTunnel(proxy: URL, host: string, port: number, timeoutMs: number): Promise<Socket> {
  const shown = redactProxyUrl(proxy);
  const target = `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
  const headers: Record<string, string> = { host: target };
  if (proxy.username || proxy.password) {
    const credentials = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
    headers['proxy-authorization'] = `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`;
  }
  const options = {
    host: proxy.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: Number(proxy.port) || (proxy.protocol === 'https:' ? 443 : 80),
    method: 'CONNECT',
    path: target,
    headers,
    agent: false as const,
    // An https:// proxy: TLS to the proxy too, verified against its name like any server.
    ...(proxy.protocol === 'https:' && !isIP(proxy.hostname) ? { servername: proxy.hostname } : {}),
  };
  return new Promise<Socket>((resolve, reject) => {
    let settled = false;
    const fail = (err: ProxyError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      reject(err);
    };
    const req: ClientRequest = (proxy.protocol === 'https:' ? httpsRequest : httpRequest)(options);
    const timer = setTimeout(() => fail(new ProxyError(`the proxy ${shown} did not open a tunnel to ${target} within ${timeoutMs} ms`, 'timeout', shown, target)), timeoutMs);
    req.on('connect', (res: IncomingMessage, socket: Socket, head: Buffer) => {
      const status = res.statusCode ?? 0;
      if (status < 200 || status >= 300) {
        socket.destroy();
        fail(refusal(status, res.statusMessage ?? '', shown, target, Boolean(headers['proxy-authorization'])));
        return;
      }
      if (settled) {
        socket.destroy();
        return;
      }
      settled = true;
      clearTimeout(timer);
      // Bytes the server sent right behind the proxy's answer belong to the tunnel.
      if (head.length > 0) socket.unshift(head);
      resolve(socket);
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      fail(new ProxyError(`cannot connect to the proxy ${shown}: ${err.code ?? ''} ${err.message}`.replace(/\s+/g, ' '), 'unreachable', shown, target, undefined, { cause: err }));
    });
    req.end();
  });
}

function refusal(status: number, text: string, shown: string, target: string, sentCredentials: boolean): ProxyError {
  const answer = `${status}${text ? ` ${text}` : ''}`;
  if (status === 407) {
    return new ProxyError(
      `the proxy ${shown} answered ${answer} to CONNECT ${target}: ${sentCredentials ? 'it refused the credentials in the proxy URL' : 'it needs authentication'}`,
      'auth',
      shown,
      target,
      status,
    );
  }
  return new ProxyError(`the proxy ${shown} refused CONNECT ${target} (${answer})`, 'forbidden', shown, target, status);
}
