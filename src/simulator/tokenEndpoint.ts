// The simulated Entra ID: an HTTPS server that unmodified msal-node 7 talks to.
//   GET  /{tenant}/v2.0/.well-known/openid-configuration   (what msal fetches with knownAuthorities)
//   GET  /{tenant}/.well-known/openid-configuration        (v1 / OIDC-protocol-mode spelling)
//   GET  /common/discovery/instance                        (instance discovery, when not skipped)
//   GET  /{tenant}/discovery/v2.0/keys                     (empty JWKS, for completeness)
//   POST /{tenant}/oauth2/v2.0/token                       (client_credentials with secret or assertion)
import { createHash, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { verifyClientAssertion } from './clientAssertion.js';
import type { PemPair } from './certs.js';
import type { Directory } from './directory.js';
import { EntraErrors, type EntraError } from './entraErrors.js';
import type { Faults } from './faults.js';
import type { TokenStore } from './tokens.js';
import type { SimulatorStats } from './types.js';

export const ACCEPTED_SCOPES = ['https://outlook.office365.com/.default', 'https://outlook.office.com/.default'];
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const MAX_BODY_BYTES = 1_048_576;

export interface TokenEndpointOptions {
  host: string;
  port: number;
  tls: PemPair;
  tenantId: string;
  tokenLifetimeSeconds: number;
  directory: Directory;
  tokens: TokenStore;
  faults: Faults;
  stats: SimulatorStats;
}

export interface TokenEndpoint {
  /** 'https://127.0.0.1:40123' */
  readonly origin: string;
  close(): Promise<void>;
}

/** 'https://host:port' with IPv6 literals bracketed. */
export function originFor(host: string, port: number): string {
  return `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** A stable GUID for a tenant name, used where Entra shows the tenant's object id (the issuer). */
function tenantGuid(tenantId: string): string {
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(tenantId)) return tenantId.toLowerCase();
  const h = createHash('sha256').update(tenantId.toLowerCase()).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export async function startTokenEndpoint(options: TokenEndpointOptions): Promise<TokenEndpoint> {
  const { tenantId, directory, tokens, faults, stats } = options;
  let origin = '';
  const timers = new Set<NodeJS.Timeout>();
  let closing = false;

  const isOurTenant = (tenant: string): boolean => tenant.toLowerCase() === tenantId.toLowerCase() || tenant.toLowerCase() === tenantGuid(tenantId);

  function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    if (res.headersSent || res.destroyed) return;
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': String(Buffer.byteLength(text)),
      'cache-control': 'no-store, no-cache',
      'x-ms-request-id': randomUUID(),
      ...headers,
    });
    res.end(text);
  }

  const sendError = (res: ServerResponse, err: EntraError, headers?: Record<string, string>): void => sendJson(res, err.status, err.body, headers);

  function openIdConfiguration(tenant: string): Record<string, unknown> {
    // Served for any tenant, as msal-node skips this call for the real login.microsoftonline.com
    // (hard-coded metadata) and meets an unknown tenant only at the token endpoint (AADSTS90002).
    const base = `${origin}/${tenant}`;
    return {
      token_endpoint: `${base}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      jwks_uri: `${base}/discovery/v2.0/keys`,
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      issuer: `${origin}/${tenantGuid(isOurTenant(tenant) ? tenantId : tenant)}/v2.0`,
      request_uri_parameter_supported: false,
      userinfo_endpoint: `${origin}/oidc/userinfo`,
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'auth_time', 'acr', 'nonce', 'tid', 'ver', 'oid'],
      tenant_region_scope: 'EU',
      cloud_instance_name: 'microsoftonline.com',
      cloud_graph_host_name: 'graph.windows.net',
      msgraph_host: 'graph.microsoft.com',
    };
  }

  function instanceDiscovery(): Record<string, unknown> {
    const host = new URL(origin).host;
    return {
      tenant_discovery_endpoint: `${origin}/${tenantId}/v2.0/.well-known/openid-configuration`,
      'api-version': '1.1',
      metadata: [{ preferred_network: host, preferred_cache: host, aliases: [host] }],
    };
  }

  function readBody(req: IncomingMessage): Promise<string | null> {
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) {
          resolve(null);
          req.destroy();
          return;
        }
        chunks.push(chunk);
      });
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      req.on('error', () => resolve(null));
      req.on('close', () => resolve(null)); // no-op once resolved
    });
  }

  function delay(ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, ms);
      timers.add(timer);
    });
  }

  async function tokenRequest(req: IncomingMessage, res: ServerResponse, tenant: string, url: URL): Promise<void> {
    stats.tokenRequests++;
    const body = await readBody(req);
    await delay(faults.tokenEndpointDelayMs);
    if (closing) return;
    const params = new URLSearchParams(body ?? '');
    const cid = params.get('client-request-id') ?? url.searchParams.get('client-request-id') ?? headerValue(req, 'client-request-id') ?? randomUUID();

    if (faults.tokenEndpointDown) {
      // msal-node caches a throttle entry after a 5xx/429: Retry-After: 1 keeps it to a second
      // (without the header msal refuses the same request client-side for 60 s).
      return sendError(res, EntraErrors.temporarilyUnavailable(cid, origin), { 'retry-after': '1' });
    }
    if (!isOurTenant(tenant)) return sendError(res, EntraErrors.tenantNotFound(tenant, cid, origin));
    if (body === null) return sendError(res, EntraErrors.malformedRequest(cid, origin));

    const grantType = params.get('grant_type');
    if (!grantType) return sendError(res, EntraErrors.missingParameter('grant_type', cid, origin));
    if (grantType !== 'client_credentials') return sendError(res, EntraErrors.unsupportedGrantType(grantType, cid, origin));

    const clientId = params.get('client_id');
    if (!clientId) return sendError(res, EntraErrors.missingParameter('client_id', cid, origin));
    const app = directory.app(clientId);
    if (!app) return sendError(res, EntraErrors.appNotFound(clientId, tenant, cid, origin));

    const scope = (params.get('scope') ?? '').trim();
    if (!scope) return sendError(res, EntraErrors.missingParameter('scope', cid, origin));
    if (!ACCEPTED_SCOPES.includes(scope)) return sendError(res, EntraErrors.invalidScope(scope, cid, origin));

    const secret = params.get('client_secret');
    const assertion = params.get('client_assertion');
    if (secret !== null && assertion !== null) return sendError(res, EntraErrors.malformedRequest(cid, origin));
    if (assertion !== null) {
      if (params.get('client_assertion_type') !== JWT_BEARER) return sendError(res, EntraErrors.missingParameter('client_assertion_type', cid, origin));
      const audience = `${origin}/${tenant}/oauth2/v2.0/token`;
      const check = verifyClientAssertion(assertion, app, [audience]);
      if (!check.ok) return sendError(res, EntraErrors.invalidAssertion(check.reason, cid, origin));
    } else if (secret !== null) {
      if (app.clientSecret === undefined || secret !== app.clientSecret) return sendError(res, EntraErrors.invalidSecret(app.clientId, cid, origin));
      if (app.secretExpired) return sendError(res, EntraErrors.expiredSecret(app.clientId, cid, origin));
    } else {
      return sendError(res, EntraErrors.missingCredential(cid, origin));
    }

    const lifetime = options.tokenLifetimeSeconds;
    const accessToken = tokens.issue(app.clientId, tenantId, lifetime);
    stats.tokensIssued++;
    sendJson(res, 200, { token_type: 'Bearer', expires_in: lifetime, ext_expires_in: lifetime, access_token: accessToken });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', origin);
    const segments = url.pathname.split('/').filter(Boolean).map((s) => decodeURIComponent(s));
    const [tenant, ...rest] = segments;
    const path = rest.join('/');
    const method = req.method ?? 'GET';

    if (method === 'GET' && tenant === 'common' && path === 'discovery/instance') return sendJson(res, 200, instanceDiscovery());
    if (tenant && method === 'GET' && (path === 'v2.0/.well-known/openid-configuration' || path === '.well-known/openid-configuration')) {
      return sendJson(res, 200, openIdConfiguration(tenant));
    }
    if (tenant && method === 'GET' && path === 'discovery/v2.0/keys') return sendJson(res, 200, { keys: [] });
    if (tenant && path === 'oauth2/v2.0/token') {
      if (method !== 'POST') return sendJson(res, 405, { error: 'invalid_request', error_description: 'The token endpoint accepts POST only.' }, { allow: 'POST' });
      return tokenRequest(req, res, tenant, url);
    }
    sendJson(res, 404, { error: 'not_found', error_description: `The simulator does not serve ${method} ${url.pathname}.` });
  }

  const server: Server = createServer({ key: options.tls.keyPem, cert: options.tls.certPem }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      sendJson(res, 500, { error: 'server_error', error_description: `simulator error: ${err instanceof Error ? err.message : String(err)}` });
    });
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  // Every TCP connection, including ones still in the TLS handshake (closeAllConnections() only
  // knows those that reached HTTP), so that close() never waits on a client.
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.keepAliveTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  origin = originFor(options.host, (server.address() as AddressInfo).port);

  return {
    origin,
    close: () =>
      new Promise<void>((resolve) => {
        closing = true;
        for (const timer of timers) clearTimeout(timer);
        timers.clear();
        server.close(() => resolve());
        server.closeAllConnections();
        for (const socket of sockets) socket.destroy();
      }),
  };
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
