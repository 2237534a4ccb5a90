import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { WebConsole } from '../console/server.js';
import type { TlsMaterial } from '../listener/options.js';
import type { Logger } from './logger.js';
import type { RelayMetrics } from './metrics.js';

export interface ReadinessCheck {
  ok: boolean;
  [detail: string]: unknown;
}

export interface HttpEndpointOptions {
  host: string;
  port: number;
  metrics: RelayMetrics;
  /** Each named check; /readyz is 200 only when all are ok. */
  readiness(): Promise<Record<string, ReadinessCheck>>;
  logger: Logger;
  /** http.tls: serve HTTPS with this certificate. */
  tls?: TlsMaterial;
  /** The web console, when `console` is configured: every other path is its. */
  console?: WebConsole;
}

export interface HttpEndpoint {
  readonly address: { host: string; port: number };
  /** http or https. */
  readonly protocol: 'http' | 'https';
  close(): Promise<void>;
}

/**
 * The optional health and metrics endpoint:
 *   GET /healthz  200 while the process serves requests (liveness)
 *   GET /readyz   200 or 503 with a JSON body of checks (spool writable, token, upstream)
 *   GET /metrics  Prometheus text format
 * and, when configured, the web console on every other path (see src/console).
 */
export async function startHttpEndpoint(options: HttpEndpointOptions): Promise<HttpEndpoint> {
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res, options).catch((err: unknown) => {
      options.logger.error({ event: 'http-error', err: String(err) }, 'health endpoint error');
      if (!res.headersSent) send(res, 500, 'text/plain', 'internal error\n');
      else res.destroy();
    });
  };
  const server: Server = options.tls ? createTlsServer({ cert: options.tls.cert, key: options.tls.key }, onRequest) : createServer(onRequest);
  server.keepAliveTimeout = 5000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address();
  const address = { host: options.host, port: typeof bound === 'object' && bound ? bound.port : options.port };
  const protocol = options.tls ? 'https' : 'http';
  options.logger.info({ event: 'http-listening', ...address, protocol, console: Boolean(options.console) }, options.console ? 'health, metrics and web console are listening' : 'health and metrics endpoint is listening');
  return {
    address,
    protocol,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const ENDPOINTS = new Set(['/healthz', '/readyz', '/metrics']);

async function handle(req: IncomingMessage, res: ServerResponse, options: HttpEndpointOptions): Promise<void> {
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  if (options.console && !ENDPOINTS.has(path)) return options.console.handle(req, res);
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return send(res, 405, 'text/plain', 'method not allowed\n');
  }
  switch (path) {
    case '/healthz':
      return send(res, 200, 'text/plain', 'ok\n');
    case '/readyz': {
      const checks = await options.readiness();
      const ready = Object.values(checks).every((c) => c.ok);
      return send(res, ready ? 200 : 503, 'application/json', `${JSON.stringify({ ready, checks }, null, 2)}\n`);
    }
    case '/metrics':
      return send(res, 200, options.metrics.contentType, await options.metrics.metrics());
    default:
      return send(res, 404, 'text/plain', 'not found: try /healthz, /readyz or /metrics\n');
  }
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
  res.end(body);
}
