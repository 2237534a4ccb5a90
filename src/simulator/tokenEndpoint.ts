// The simulated Entra ID: an HTTPS server that unmodified msal-node 7 talks to.
//   GET  /{tenant}/v2.0/.well-known/openid-configuration   (what msal fetches with knownAuthorities)
//   GET  /{tenant}/.well-known/openid-configuration        (v1 / OIDC-protocol-mode spelling)
//   GET  /common/discovery/instance                        (instance discovery, when not skipped)
//   GET  /{tenant}/discovery/v2.0/keys                     (empty JWKS, for completeness)
//   POST /{tenant}/oauth2/v2.0/token                       (client_credentials with secret or assertion;
//                                                           device_code and refresh_token for delegated sign-in)
//   POST /{tenant}/oauth2/v2.0/devicecode                  (device authorization, RFC 8628)
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { listenHttps, trackSockets } from './httpsServer.js';
import { verifyClientAssertion } from './clientAssertion.js';
import type { PemPair } from './certs.js';
import { clientInfo, idToken } from './idToken.js';
import { parseDelegatedScope, type DelegatedGrants, type RequestedScope } from './delegated.js';
import type { AppEntry, Directory } from './directory.js';
import { tenantGuid } from './ids.js';
import { EntraErrors, type EntraError } from './entraErrors.js';
import type { Faults } from './faults.js';
import { audienceOf, type TokenStore } from './tokens.js';
import type { SimulatorStats } from './types.js';

export const ACCEPTED_SCOPES = ['https://outlook.office365.com/.default', 'https://outlook.office.com/.default', 'https://graph.microsoft.com/.default'];
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
// RFC 8628's name, and the short one msal-node sends (Entra ID accepts both).
const DEVICE_CODE_GRANTS = new Set(['urn:ietf:params:oauth:grant-type:device_code', 'device_code']);
const TOKEN_GRANTS = new Set(['client_credentials', 'refresh_token', ...DEVICE_CODE_GRANTS]);
const MAX_BODY_BYTES = 1_048_576;

export interface TokenEndpointOptions {
  host: string;
  port: number;
  tls: PemPair;
  tenantId: string;
  tokenLifetimeSeconds: number;
  directory: Directory;
  tokens: TokenStore;
  grants: DelegatedGrants;
  faults: Faults;
  stats: SimulatorStats;
}

export interface TokenEndpoint {
  /** 'https://127.0.0.1:40123' */
  readonly origin: string;
  close(): Promise<void>;
}


export async function startTokenEndpoint(options: TokenEndpointOptions): Promise<TokenEndpoint> {
  const { tenantId, directory, tokens, grants, faults, stats } = options;
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

  /** The app's credential in a token request; a public client may send none when `allowPublic`. */
  function clientAuthError(app: AppEntry, params: URLSearchParams, tenant: string, cid: string, allowPublic: boolean): EntraError | null {
    const secret = params.get('client_secret');
    const assertion = params.get('client_assertion');
    if (secret !== null && assertion !== null) return EntraErrors.malformedRequest(cid, origin);
    if (assertion !== null) {
      if (params.get('client_assertion_type') !== JWT_BEARER) return EntraErrors.missingParameter('client_assertion_type', cid, origin);
      const audience = `${origin}/${tenant}/oauth2/v2.0/token`;
      const check = verifyClientAssertion(assertion, app, [audience]);
      if (!check.ok) return EntraErrors.invalidAssertion(check.reason, cid, origin);
    } else if (secret !== null) {
      if (app.clientSecret === undefined || secret !== app.clientSecret) return EntraErrors.invalidSecret(app.clientId, cid, origin);
      if (app.secretExpired) return EntraErrors.expiredSecret(app.clientId, cid, origin);
    } else if (!(allowPublic && app.publicClient)) {
      // What Entra answers a device-code or refresh grant when "Allow public client flows" is off.
      return EntraErrors.missingCredential(cid, origin);
    }
    return null;
  }

  /**
   * The common start of token and device code requests, in Entra's order: faults, tenant, body,
   * grant_type (token endpoint only), app.
   */
  async function openRequest(
    req: IncomingMessage,
    res: ServerResponse,
    tenant: string,
    url: URL,
    endpoint: 'token' | 'devicecode',
  ): Promise<{ params: URLSearchParams; cid: string; app: AppEntry; grantType: string } | null> {
    const body = await readBody(req);
    await delay(faults.tokenEndpointDelayMs);
    if (closing) return null;
    const params = new URLSearchParams(body ?? '');
    const cid = params.get('client-request-id') ?? url.searchParams.get('client-request-id') ?? headerValue(req, 'client-request-id') ?? randomUUID();
    const fail = (err: EntraError, headers?: Record<string, string>): null => {
      sendError(res, err, headers);
      return null;
    };
    if (faults.tokenEndpointDown) {
      // msal-node caches a throttle entry after a 5xx/429: Retry-After: 1 keeps it to a second
      // (without the header msal refuses the same request client-side for 60 s).
      return fail(EntraErrors.temporarilyUnavailable(cid, origin), { 'retry-after': '1' });
    }
    if (!isOurTenant(tenant)) return fail(EntraErrors.tenantNotFound(tenant, cid, origin));
    if (body === null) return fail(EntraErrors.malformedRequest(cid, origin));
    const grantType = params.get('grant_type') ?? '';
    if (endpoint === 'token') {
      if (!grantType) return fail(EntraErrors.missingParameter('grant_type', cid, origin));
      if (!TOKEN_GRANTS.has(grantType)) return fail(EntraErrors.unsupportedGrantType(grantType, cid, origin));
    }
    const clientId = params.get('client_id');
    if (!clientId) return fail(EntraErrors.missingParameter('client_id', cid, origin));
    const app = directory.app(clientId);
    if (!app) return fail(EntraErrors.appNotFound(clientId, tenant, cid, origin));
    return { params, cid, app, grantType };
  }

  async function tokenRequest(req: IncomingMessage, res: ServerResponse, tenant: string, url: URL): Promise<void> {
    stats.tokenRequests++;
    const opened = await openRequest(req, res, tenant, url, 'token');
    if (!opened) return;
    const { params, cid, app, grantType } = opened;
    if (DEVICE_CODE_GRANTS.has(grantType)) return deviceCodeGrant(res, params, cid, app, tenant);
    if (grantType === 'refresh_token') return refreshTokenGrant(res, params, cid, app, tenant);

    const scope = (params.get('scope') ?? '').trim();
    if (!scope) return sendError(res, EntraErrors.missingParameter('scope', cid, origin));
    if (!ACCEPTED_SCOPES.includes(scope)) return sendError(res, EntraErrors.invalidScope(scope, cid, origin));
    const authError = clientAuthError(app, params, tenant, cid, false);
    if (authError) return sendError(res, authError);

    const lifetime = faults.takeTokenLifetime(options.tokenLifetimeSeconds);
    const accessToken = tokens.issue(app.clientId, tenantId, lifetime, audienceOf(scope));
    stats.tokensIssued++;
    sendJson(res, 200, { token_type: 'Bearer', expires_in: lifetime, ext_expires_in: lifetime, access_token: accessToken });
  }

  /** A delegated `scope` parameter, or the error Entra gives for it. */
  function delegatedScope(params: URLSearchParams, cid: string): RequestedScope | EntraError {
    const scope = (params.get('scope') ?? '').trim();
    if (!scope) return EntraErrors.missingParameter('scope', cid, origin);
    const parsed = parseDelegatedScope(scope);
    if (!parsed.ok) return parsed.reason === 'multiple-resources' ? EntraErrors.multipleResources(scope, cid, origin) : EntraErrors.invalidScope(scope, cid, origin);
    return parsed.value;
  }

  /** POST /{tenant}/oauth2/v2.0/devicecode: a device code and the message to show the user. */
  async function deviceCodeRequest(req: IncomingMessage, res: ServerResponse, tenant: string, url: URL): Promise<void> {
    const opened = await openRequest(req, res, tenant, url, 'devicecode');
    if (!opened) return;
    const { params, cid, app } = opened;
    const scope = delegatedScope(params, cid);
    if ('status' in scope) return sendError(res, scope);
    // Like Entra, the code is issued whatever the app's public-client setting: a confidential-only
    // app learns at its first poll (AADSTS7000218).
    const code = grants.issueDeviceCode(app.clientId, scope);
    stats.deviceCodesIssued++;
    const verificationUri = `${origin}/devicelogin`;
    sendJson(res, 200, {
      user_code: code.userCode,
      device_code: code.deviceCode,
      verification_uri: verificationUri,
      expires_in: code.expiresIn,
      interval: code.interval,
      message: `To sign in, use a web browser to open the page ${verificationUri} and enter the code ${code.userCode} to authenticate.`,
    });
  }

  function deviceCodeGrant(res: ServerResponse, params: URLSearchParams, cid: string, app: AppEntry, tenant: string): void {
    const authError = clientAuthError(app, params, tenant, cid, true);
    if (authError) return sendError(res, authError);
    const deviceCode = params.get('device_code');
    if (!deviceCode) return sendError(res, EntraErrors.missingParameter('device_code', cid, origin));
    const outcome = grants.redeemDeviceCode(deviceCode, app.clientId);
    if (!outcome.ok) {
      const errors = {
        authorization_pending: EntraErrors.authorizationPending,
        authorization_declined: EntraErrors.authorizationDeclined,
        expired_token: EntraErrors.expiredDeviceCode,
        bad_verification_code: EntraErrors.badVerificationCode,
      } as const;
      return sendError(res, errors[outcome.error](cid, origin));
    }
    sendDelegatedTokens(res, params, app, outcome.user, outcome.scope, outcome.signedInAt);
  }

  function refreshTokenGrant(res: ServerResponse, params: URLSearchParams, cid: string, app: AppEntry, tenant: string): void {
    const scope = delegatedScope(params, cid);
    if ('status' in scope) return sendError(res, scope);
    const authError = clientAuthError(app, params, tenant, cid, true);
    if (authError) return sendError(res, authError);
    const refreshToken = params.get('refresh_token');
    if (!refreshToken) return sendError(res, EntraErrors.missingParameter('refresh_token', cid, origin));
    const outcome = grants.redeemRefreshToken(refreshToken, app.clientId);
    if (!outcome.ok) {
      const issuedAt = outcome.issuedAt ?? Date.now();
      switch (outcome.reason) {
        case 'revoked':
          return sendError(res, EntraErrors.refreshTokenRevoked(issuedAt, cid, origin));
        case 'inactive':
          return sendError(res, EntraErrors.refreshTokenInactive(issuedAt, cid, origin));
        case 'signin-frequency':
          return sendError(res, EntraErrors.signInFrequency(outcome.signedInAt ?? issuedAt, grants.options.signInFrequencySeconds ?? 0, cid, origin));
        default:
          return sendError(res, EntraErrors.invalidGrant(cid, origin));
      }
    }
    stats.refreshTokensRedeemed++;
    sendDelegatedTokens(res, params, app, outcome.user, scope, outcome.signedInAt);
  }

  /** Access token for the user, a new refresh token (offline_access), id_token (openid), client_info. */
  function sendDelegatedTokens(res: ServerResponse, params: URLSearchParams, app: AppEntry, user: string, scope: RequestedScope, signedInAt: number): void {
    const lifetime = options.tokenLifetimeSeconds;
    const address = directory.mailbox(user)?.address ?? user;
    const tid = tenantGuid(tenantId);
    const body: Record<string, unknown> = {
      token_type: 'Bearer',
      scope: scope.resource,
      expires_in: lifetime,
      ext_expires_in: lifetime,
      access_token: tokens.issue(app.clientId, tenantId, lifetime, audienceOf(scope.resource), { user, scope: scope.resource }),
    };
    if (scope.offlineAccess) body.refresh_token = grants.issueRefreshToken(app.clientId, user, signedInAt);
    if (scope.openid) body.id_token = idToken({ origin, tenant: tid, clientId: app.clientId, address, lifetimeSeconds: 3600 });
    if (params.get('client_info') === '1') body.client_info = clientInfo(tid, address);
    stats.tokensIssued++;
    sendJson(res, 200, body);
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
    if (tenant && path === 'oauth2/v2.0/devicecode') {
      if (method !== 'POST') return sendJson(res, 405, { error: 'invalid_request', error_description: 'The device code endpoint accepts POST only.' }, { allow: 'POST' });
      return deviceCodeRequest(req, res, tenant, url);
    }
    if (method === 'GET' && tenant === 'devicelogin' && !path) {
      // Where the device code message sends the user; the simulator's sign-in is a method call.
      const text = 'Simulated device login: sign in with simulator.approveDeviceCode(userCode, mailbox).\n';
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': String(Buffer.byteLength(text)) });
      return void res.end(text);
    }
    sendJson(res, 404, { error: 'not_found', error_description: `The simulator does not serve ${method} ${url.pathname}.` });
  }

  const server: Server = createServer({ key: options.tls.keyPem, cert: options.tls.certPem }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      sendJson(res, 500, { error: 'server_error', error_description: `simulator error: ${err instanceof Error ? err.message : String(err)}` });
    });
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  const sockets = trackSockets(server);
  server.keepAliveTimeout = 5_000;
  origin = await listenHttps(server, options.host, options.port);

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
