// The simulated Microsoft Graph mail API, on its own HTTPS server (loopback, the simulator's
// certificate), with what the relay's Graph transport uses, behaving as the real service does:
//   POST   /v1.0/users/{mailbox}/sendMail                  base64 MIME, 202; sent to its To/Cc/Bcc headers
//   POST   /v1.0/users/{mailbox}/messages                  base64 MIME -> a draft (201 {id}); its recipient
//                                                          fields come from the headers, X- headers become
//                                                          PS_INTERNET_HEADERS named properties
//   PATCH  /v1.0/users/{mailbox}/messages/{id}             toRecipients/ccRecipients/bccRecipients,
//                                                          singleValueExtendedProperties (drafts only)
//   DELETE /v1.0/users/{mailbox}/messages/{id}             204
//   GET    /v1.0/users/{mailbox}/mailFolders/drafts/messages?$filter=singleValueExtendedProperties/any(...)
//   POST   /v1.0/users/{mailbox}/messages/{id}/attachments fileAttachment (contentBytes, isInline, contentId), < 3 MB
//   POST   /v1.0/users/{mailbox}/messages/{id}/attachments/createUploadSession   2 MiB..150 MB, 201 {uploadUrl}
//   PUT    {uploadUrl}                                     Content-Range chunks, 200 / 201 at the end
//   POST   /v1.0/users/{mailbox}/messages/{id}/send        202: sent to the draft's recipient fields
// Bearer tokens are checked for real (issued here, for Graph, app with access to the mailbox), at
// most 4 requests run at once per mailbox (429 + Retry-After beyond), and faults can force answers.
// Drafts created, deleted and sent are counted in the stats and listed by drafts().
import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { PemPair } from './certs.js';
import type { Directory, MailboxEntry } from './directory.js';
import { assemble, draftFromMime, headerRecipients, parsePropertyFilter, type Draft } from './graphMessages.js';
import { ConcurrencyLimiter } from './limits.js';
import { listenHttps, trackSockets } from './httpsServer.js';
import type { TokenStore } from './tokens.js';
import type { GraphDraftView, ReceivedMessage, SimulatorStats } from './types.js';

export { headerRecipients } from './graphMessages.js';

/** Graph's limit on a request body (sendMail, create message, attachment upload chunk). */
export const GRAPH_REQUEST_LIMIT = 4 * 1024 * 1024;
/** Upload sessions refuse smaller attachments (ErrorAttachmentSizeShouldNotBeLessThanMinimumSize), per public reports. */
export const UPLOAD_SESSION_MIN = 2 * 1024 * 1024;
/** A fileAttachment POSTed with contentBytes may be at most this large. */
const POST_ATTACHMENT_MAX = 3 * 1024 * 1024;
const MAX_CONCURRENT_PER_MAILBOX = 4;
const GRAPH_SEND_SCOPES = new Set(['https://graph.microsoft.com/Mail.Send']);

export interface GraphFault {
  status: number;
  /** The Retry-After header as sent: delay-seconds or an HTTP-date. */
  retryAfter?: string;
}

export interface GraphOptions {
  host: string;
  port: number;
  tls: PemPair;
  tenantId: string;
  directory: Directory;
  tokens: TokenStore;
  stats: SimulatorStats;
  /** Forced answers, taken one per API request (graphFailNext). */
  faults: GraphFault[];
  /** Forced answers, taken one per upload PUT (graphFailNext(..., 'upload')). */
  uploadFaults: GraphFault[];
  onMessage(message: ReceivedMessage): void;
}

export interface GraphEndpoint {
  readonly origin: string;
  /** Drafts in the Drafts folders (every mailbox's, or one's). */
  drafts(mailbox?: string): GraphDraftView[];
  /** Empties the Drafts folders and forgets upload sessions. */
  clear(): void;
  close(): Promise<void>;
}

interface UploadSession {
  draftId: string;
  name: string;
  contentType: string;
  isInline: boolean;
  contentId?: string;
  size: number;
  chunks: Buffer[];
  received: number;
}

class GraphError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export async function startGraph(options: GraphOptions): Promise<GraphEndpoint> {
  const { directory, tokens, stats } = options;
  const drafts = new Map<string, Draft>();
  const sessions = new Map<string, UploadSession>();
  const concurrency = new ConcurrencyLimiter(MAX_CONCURRENT_PER_MAILBOX);
  let origin = '';

  const server: Server = createServer({ key: options.tls.keyPem, cert: options.tls.certPem }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      const e = err instanceof GraphError ? err : new GraphError(500, 'generalException', (err as Error).message);
      if (e.status === 429 || e.status === 503) stats.graphThrottled++;
      send(res, e.status, { error: { code: e.code, message: e.message, innerError: { 'request-id': randomUUID(), date: new Date().toISOString() } } }, e.headers);
      // The body may not have been read: do not leave the client writing into a full socket.
      if (!req.complete) req.resume();
    });
  });
  const sockets = trackSockets(server);

  const forced = (fault: GraphFault): GraphError =>
    new GraphError(fault.status, fault.status === 429 ? 'ApplicationThrottled' : fault.status >= 500 ? 'ServiceUnavailable' : 'ErrorInvalidRequest', `forced ${fault.status}`, fault.retryAfter !== undefined ? { 'retry-after': fault.retryAfter } : {});

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    stats.graphRequests++;
    const url = new URL(req.url ?? '/', 'https://graph.invalid');
    const upload = /^\/upload\/([A-Za-z0-9_-]+)$/.exec(url.pathname);
    if (upload && req.method === 'PUT') {
      const fault = options.uploadFaults.shift();
      if (fault) throw forced(fault);
      return uploadChunk(req, res, upload[1]!);
    }

    const registration = /^\/v1\.0\/applications(?:\(appId='([^']+)'\))?$/.exec(decodeURIComponent(url.pathname));
    if (registration && req.method === 'GET') return readRegistration(req, res, registration[1] ?? appIdFilter(url), registration[1] === undefined);

    const m = /^\/v1\.0\/users\/([^/]+)\/(sendMail|messages|mailFolders\/drafts\/messages)(?:\/([A-Za-z0-9_=-]+)(\/send|\/attachments\/createUploadSession|\/attachments)?)?$/.exec(url.pathname);
    if (!m) throw new GraphError(404, 'UnknownError', `no such resource: ${req.method} ${url.pathname}`);
    const fault = options.faults.shift();
    if (fault) throw forced(fault);
    const { mailbox, clientId } = authorize(req, decodeURIComponent(m[1]!));
    if (!concurrency.acquire(mailbox.key)) {
      throw new GraphError(429, 'ApplicationThrottled', 'Application is over its MailboxConcurrency limit.', { 'retry-after': '1' });
    }
    try {
      const [, , collection, id, action] = m;
      const route = `${req.method} ${collection}${id ? '/{id}' : ''}${action ?? ''}`;
      switch (route) {
        case 'POST sendMail': {
          const mime = decodeMime(await readBody(req, GRAPH_REQUEST_LIMIT));
          deliver(mailbox, clientId, mime, headerRecipients(mime));
          return send(res, 202);
        }
        case 'POST messages': {
          const mime = decodeMime(await readBody(req, GRAPH_REQUEST_LIMIT));
          const draft = draftFromMime(randomBytes(24).toString('base64url'), mailbox, clientId, mime);
          drafts.set(draft.id, draft);
          stats.graphDraftsCreated++;
          return send(res, 201, { id: draft.id, isDraft: true });
        }
        case 'GET mailFolders/drafts/messages':
          return send(res, 200, { value: findDrafts(mailbox, url.searchParams.get('$filter') ?? '').map((d) => ({ id: d.id })) });
        case 'DELETE messages/{id}':
          draftOf(mailbox, id!);
          drafts.delete(id!);
          stats.graphDraftsDeleted++;
          return send(res, 204);
        case 'PATCH messages/{id}':
          patch(draftOf(mailbox, id!), await readJson(req));
          return send(res, 200, { id });
        case 'POST messages/{id}/send': {
          const draft = draftOf(mailbox, id!);
          await readBody(req, GRAPH_REQUEST_LIMIT);
          drafts.delete(id!);
          stats.graphDraftsSent++;
          deliver(mailbox, clientId, assemble(draft), [...new Set([...draft.to, ...draft.cc, ...draft.bcc])]);
          return send(res, 202);
        }
        case 'POST messages/{id}/attachments':
          addAttachment(draftOf(mailbox, id!), await readJson(req));
          return send(res, 201, { id: randomUUID() });
        case 'POST messages/{id}/attachments/createUploadSession': {
          draftOf(mailbox, id!);
          const sessionId = openSession(id!, await readJson(req));
          return send(res, 201, { uploadUrl: `${origin}/upload/${sessionId}`, expirationDateTime: new Date(Date.now() + 6 * 3_600_000).toISOString(), nextExpectedRanges: ['0-'] });
        }
        default:
          throw new GraphError(405, 'ErrorInvalidRequest', `${req.method} is not supported on ${url.pathname}`);
      }
    } finally {
      concurrency.release(mailbox.key);
    }
  }

  function draftOf(mailbox: MailboxEntry, id: string): Draft {
    const draft = drafts.get(id);
    if (!draft || draft.mailbox !== mailbox) throw new GraphError(404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
    return draft;
  }

  function findDrafts(mailbox: MailboxEntry, filter: string): Draft[] {
    const wanted = parsePropertyFilter(filter);
    if (!wanted) throw new GraphError(400, 'ErrorInvalidUrlQueryFilter', 'The query filter contains one or more invalid nodes.');
    // Filtering on the property's name is case-sensitive, on its value case-insensitive (Graph's documentation).
    return [...drafts.values()].filter((d) => d.mailbox === mailbox && d.properties.get(wanted.id)?.toLowerCase() === wanted.value.toLowerCase());
  }

  function patch(draft: Draft, body: Record<string, unknown>): void {
    const addresses = (key: string): string[] | undefined => {
      const list = body[key];
      if (list === undefined) return undefined;
      if (!Array.isArray(list)) throw new GraphError(400, 'ErrorInvalidRequest', `${key} must be an array of recipients`);
      return list.map((r: { emailAddress?: { address?: unknown } }) => {
        const address = r?.emailAddress?.address;
        if (typeof address !== 'string' || !address.includes('@')) throw new GraphError(400, 'ErrorInvalidRecipients', `invalid recipient in ${key}`);
        return address.toLowerCase();
      });
    };
    draft.to = addresses('toRecipients') ?? draft.to;
    draft.cc = addresses('ccRecipients') ?? draft.cc;
    draft.bcc = addresses('bccRecipients') ?? draft.bcc;
    for (const p of (body.singleValueExtendedProperties as Array<{ id?: unknown; value?: unknown }> | undefined) ?? []) {
      if (typeof p.id !== 'string' || typeof p.value !== 'string') throw new GraphError(400, 'ErrorInvalidExtendedPropertyValue', 'an extended property needs id and value');
      draft.properties.set(p.id, p.value);
    }
  }

  function addAttachment(draft: Draft, body: Record<string, unknown>): void {
    if (typeof body.contentBytes !== 'string' || typeof body.name !== 'string') throw new GraphError(400, 'ErrorInvalidRequest', 'a fileAttachment needs name and contentBytes');
    const data = Buffer.from(body.contentBytes, 'base64');
    if (data.length > POST_ATTACHMENT_MAX) throw new GraphError(413, 'ErrorRequestEntityTooLarge', 'attachments over 3 MB need an upload session');
    draft.attachments.push({
      name: body.name,
      contentType: String(body.contentType ?? 'application/octet-stream'),
      isInline: body.isInline === true,
      ...(typeof body.contentId === 'string' && { contentId: body.contentId }),
      data,
    });
  }

  function openSession(draftId: string, body: Record<string, unknown>): string {
    const item = (body.AttachmentItem ?? {}) as Record<string, unknown>;
    const size = Number(item.size);
    if (item.attachmentType !== 'file' || typeof item.name !== 'string' || !Number.isInteger(size) || size < 0) {
      throw new GraphError(400, 'ErrorInvalidRequest', 'AttachmentItem needs attachmentType file, name and size');
    }
    if (size < UPLOAD_SESSION_MIN) throw new GraphError(400, 'ErrorAttachmentSizeShouldNotBeLessThanMinimumSize', 'Attachment size should not be less than the minimum size.');
    const sessionId = randomBytes(24).toString('base64url');
    sessions.set(sessionId, {
      draftId,
      name: item.name,
      contentType: typeof item.contentType === 'string' ? item.contentType : 'application/octet-stream',
      isInline: item.isInline === true,
      ...(typeof item.contentId === 'string' && { contentId: item.contentId }),
      size,
      chunks: [],
      received: 0,
    });
    return sessionId;
  }

  /**
   * GET /v1.0/applications(appId='X') (or ?$filter=appId eq 'X'): an app registration with its
   * passwordCredentials (hint = the secret's first three characters, endDateTime) and keyCredentials,
   * for an app-only token of an app that holds Application.Read.All; else 403 as Graph answers.
   */
  function readRegistration(req: IncomingMessage, res: ServerResponse, appId: string | undefined, asList: boolean): void {
    const bearer = /^Bearer (\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const check = bearer ? tokens.check(bearer) : null;
    if (!check?.ok || check.token.audience !== 'graph' || check.token.tenant.toLowerCase() !== options.tenantId.toLowerCase()) {
      throw new GraphError(401, 'InvalidAuthenticationToken', 'Access token is empty or invalid.');
    }
    const caller = directory.app(check.token.clientId);
    if (check.token.delegated || !caller?.applicationReadAll) throw new GraphError(403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');
    const app = appId ? directory.app(appId) : undefined;
    if (!app && asList) return send(res, 200, { value: [] });
    if (!app) throw new GraphError(404, 'Request_ResourceNotFound', `Resource '${appId ?? ''}' does not exist or one of its queried reference-property objects are not present.`);
    const registration = {
      id: randomUUID(),
      appId: app.clientId,
      displayName: `app ${app.clientId}`,
      passwordCredentials: app.clientSecret
        ? [{ keyId: randomUUID(), displayName: 'relay', hint: app.clientSecret.slice(0, 3), startDateTime: new Date(Date.now() - 86_400_000).toISOString(), endDateTime: app.secretExpired ? new Date(Date.now() - 3_600_000).toISOString() : app.secretExpiresAt, customKeyIdentifier: null, secretText: null }]
        : [],
      keyCredentials: app.certificate
        ? [{ keyId: randomUUID(), type: 'AsymmetricX509Cert', usage: 'Verify', customKeyIdentifier: app.certificate.sha1.toString('hex').toUpperCase(), endDateTime: new Date(app.certificate.cert.validTo).toISOString() }]
        : [],
    };
    send(res, 200, asList ? { value: [registration] } : registration);
  }

  function appIdFilter(url: URL): string | undefined {
    return /^appId eq '([^']+)'$/.exec(url.searchParams.get('$filter') ?? '')?.[1];
  }

  /** The bearer token: issued here, for Graph, by an app that may use the mailbox (or its own user). */
  function authorize(req: IncomingMessage, address: string): { mailbox: MailboxEntry; clientId: string } {
    const bearer = /^Bearer (\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const check = bearer ? tokens.check(bearer) : null;
    if (!check?.ok || check.token.tenant.toLowerCase() !== options.tenantId.toLowerCase()) {
      throw new GraphError(401, 'InvalidAuthenticationToken', check && !check.ok ? `Lifetime validation failed, the token is ${check.reason}.` : 'Access token is empty or invalid.');
    }
    if (check.token.audience !== 'graph') throw new GraphError(401, 'InvalidAuthenticationToken', 'Invalid audience.');
    const mailbox = directory.mailbox(address);
    if (!mailbox) throw new GraphError(404, 'ErrorInvalidUser', `The requested user '${address}' is invalid.`);
    const delegated = check.token.delegated;
    const allowed = delegated ? delegated.user === mailbox.key && GRAPH_SEND_SCOPES.has(delegated.scope) : mailbox.apps.has(check.token.clientId.toLowerCase());
    if (!allowed) throw new GraphError(403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.');
    return { mailbox, clientId: check.token.clientId };
  }

  async function uploadChunk(req: IncomingMessage, res: ServerResponse, sessionId: string): Promise<void> {
    const session = sessions.get(sessionId);
    if (!session) throw new GraphError(404, 'itemNotFound', 'The upload session does not exist or has expired.');
    const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(req.headers['content-range'] ?? '');
    if (!range) throw new GraphError(400, 'invalidRequest', 'Content-Range is required: bytes start-end/total');
    const [start, end, total] = [Number(range[1]), Number(range[2]), Number(range[3])];
    if (start !== session.received || total !== session.size || end < start || end >= total) {
      throw new GraphError(416, 'invalidRange', `expected the range starting at ${session.received} of ${session.size}`);
    }
    const chunk = await readBody(req, GRAPH_REQUEST_LIMIT);
    if (chunk.length !== end - start + 1) throw new GraphError(400, 'invalidRequest', 'the body length does not match Content-Range');
    session.chunks.push(chunk);
    session.received += chunk.length;
    if (session.received < session.size) return send(res, 200, { expirationDateTime: new Date(Date.now() + 6 * 3_600_000).toISOString(), nextExpectedRanges: [`${session.received}-`] });
    sessions.delete(sessionId);
    const draft = drafts.get(session.draftId);
    if (!draft) throw new GraphError(404, 'ErrorItemNotFound', 'The message of this upload session no longer exists.');
    draft.attachments.push({ name: session.name, contentType: session.contentType, isInline: session.isInline, ...(session.contentId !== undefined && { contentId: session.contentId }), data: Buffer.concat(session.chunks) });
    return send(res, 201, {});
  }

  function deliver(mailbox: MailboxEntry, clientId: string, raw: Buffer, to: string[]): void {
    options.onMessage({
      mailbox: mailbox.address,
      clientId,
      envelope: { from: mailbox.address, to },
      raw,
      queueId: `${randomBytes(12).toString('hex').toUpperCase()}@graph`,
      at: new Date(),
      via: 'graph',
    });
  }

  origin = await listenHttps(server, options.host, options.port);
  return {
    origin,
    drafts: (address) =>
      [...drafts.values()]
        .filter((d) => address === undefined || d.mailbox.key === address.trim().toLowerCase())
        .map((d) => ({ id: d.id, mailbox: d.mailbox.address, to: [...d.to], cc: [...d.cc], bcc: [...d.bcc], attachments: d.attachments.length, properties: Object.fromEntries(d.properties) })),
    clear() {
      drafts.clear();
      sessions.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  try {
    return JSON.parse((await readBody(req, GRAPH_REQUEST_LIMIT)).toString('utf8') || '{}') as Record<string, unknown>;
  } catch (err) {
    if (err instanceof GraphError) throw err;
    throw new GraphError(400, 'BadRequest', 'Unable to read JSON request payload.');
  }
}

function send(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), 'request-id': randomUUID(), ...headers });
  res.end(text);
}

/** The request body, refused with 413 beyond `limit` (read no further: the connection is closed). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      req.resume();
      return reject(new GraphError(413, 'ErrorRequestEntityTooLarge', `The request is larger than the limit of ${limit} bytes.`, { connection: 'close' }));
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
    });
    req.on('end', () => (size > limit ? reject(new GraphError(413, 'ErrorRequestEntityTooLarge', `The request is larger than the limit of ${limit} bytes.`)) : resolve(Buffer.concat(chunks))));
    req.on('error', reject);
  });
}

function decodeMime(body: Buffer): Buffer {
  const text = body.toString('latin1').replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length === 0) throw new GraphError(400, 'ErrorMimeContentInvalidBase64String', 'Invalid base64 string for MIME content.');
  return Buffer.from(text, 'base64');
}
