import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
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
}

export interface HttpEndpoint {
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

/**
 * The optional health and metrics endpoint:
 *   GET /healthz  200 while the process serves requests (liveness)
 *   GET /readyz   200 or 503 with a JSON body of checks (spool writable, token, upstream)
 *   GET /metrics  Prometheus text format
 */
export async function startHttpEndpoint(options: HttpEndpointOptions): Promise<HttpEndpoint> {
  const server: Server = createServer((req, res) => {
    handle(req, res, options).catch((err: unknown) => {
      options.logger.error({ event: 'http-error', err: String(err) }, 'health endpoint error');
      if (!res.headersSent) send(res, 500, 'text/plain', 'internal error\n');
    });
  });
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
  options.logger.info({ event: 'http-listening', ...address }, 'health and metrics endpoint is listening');
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, options: HttpEndpointOptions): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return send(res, 405, 'text/plain', 'method not allowed\n');
  }
  const path = (req.url ?? '/').split('?')[0];
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
