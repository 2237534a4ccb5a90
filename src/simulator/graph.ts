// The simulated Microsoft Graph mail API, on its own HTTPS server (loopback, the simulator's
// certificate), with what the relay's Graph transport uses:
//   POST /v1.0/users/{mailbox}/sendMail                       base64 MIME, 202 (request limit 4 MB)
//   POST /v1.0/users/{mailbox}/messages                       base64 MIME -> a draft, 201 {id}
//   POST /v1.0/users/{mailbox}/messages/{id}/attachments/createUploadSession   201 {uploadUrl, ...}
//   PUT  {uploadUrl}                                          Content-Range chunks, 200 / 201 at the end
//   POST /v1.0/users/{mailbox}/messages/{id}/send             202: the draft with its attachments is sent
// Bearer tokens are checked for real (issued here, for Graph, app with access to the mailbox), at
// most 4 requests run at once per mailbox (429 + Retry-After beyond), and faults can force answers.
import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { PemPair } from './certs.js';
import type { Directory, MailboxEntry } from './directory.js';
import { ConcurrencyLimiter } from './limits.js';
import { listenHttps, trackSockets } from './httpsServer.js';
import type { TokenStore } from './tokens.js';
import type { ReceivedMessage, SimulatorStats } from './types.js';

/** Graph's limit on a request body (sendMail, create message, attachment upload chunk). */
export const GRAPH_REQUEST_LIMIT = 4 * 1024 * 1024;
const MAX_CONCURRENT_PER_MAILBOX = 4;
const GRAPH_SEND_SCOPES = new Set(['https://graph.microsoft.com/Mail.Send']);

export interface GraphFault {
  status: number;
  retryAfterSeconds?: number;
}

export interface GraphOptions {
  host: string;
  port: number;
  tls: PemPair;
  tenantId: string;
  directory: Directory;
  tokens: TokenStore;
  stats: SimulatorStats;
  /** Forced answers, taken one per request (graphFailNext). */
  faults: GraphFault[];
  onMessage(message: ReceivedMessage): void;
}

export interface GraphEndpoint {
  readonly origin: string;
  close(): Promise<void>;
}

interface Draft {
  mailbox: MailboxEntry;
  clientId: string;
  mime: Buffer;
  attachments: Array<{ name: string; contentType: string; isInline: boolean; contentId?: string; data: Buffer }>;
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

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    stats.graphRequests++;
    const url = new URL(req.url ?? '/', 'https://graph.invalid');
    const upload = /^\/upload\/([A-Za-z0-9_-]+)$/.exec(url.pathname);
    if (upload && req.method === 'PUT') return uploadChunk(req, res, upload[1]!);

    const m = /^\/v1\.0\/users\/([^/]+)\/(sendMail|messages)(?:\/([A-Za-z0-9_-]+)(\/send|\/attachments\/createUploadSession|\/attachments)?)?$/.exec(url.pathname);
    if (!m || req.method !== 'POST') throw new GraphError(404, 'UnknownError', `no such resource: ${req.method} ${url.pathname}`);
    const fault = options.faults.shift();
    if (fault) {
      throw new GraphError(fault.status, fault.status === 429 ? 'ApplicationThrottled' : fault.status >= 500 ? 'ServiceUnavailable' : 'ErrorInvalidRequest', `forced ${fault.status}`, fault.retryAfterSeconds !== undefined ? { 'retry-after': String(fault.retryAfterSeconds) } : {});
    }
    const { mailbox, clientId } = authorize(req, decodeURIComponent(m[1]!));
    if (!concurrency.acquire(mailbox.key)) {
      throw new GraphError(429, 'ApplicationThrottled', 'Application is over its MailboxConcurrency limit.', { 'retry-after': '1' });
    }
    try {
      const [, , collection, id, action] = m;
      if (collection === 'sendMail') {
        const mime = decodeMime(await readBody(req, GRAPH_REQUEST_LIMIT));
        deliver(mailbox, clientId, mime);
        return send(res, 202);
      }
      if (!id) {
        const mime = decodeMime(await readBody(req, GRAPH_REQUEST_LIMIT));
        const draftId = randomBytes(24).toString('base64url');
        drafts.set(draftId, { mailbox, clientId, mime, attachments: [] });
        return send(res, 201, { id: draftId, isDraft: true });
      }
      const draft = drafts.get(id);
      if (!draft || draft.mailbox !== mailbox) throw new GraphError(404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
      if (action === '/send') {
        await readBody(req, GRAPH_REQUEST_LIMIT);
        drafts.delete(id);
        deliver(mailbox, clientId, assemble(draft));
        return send(res, 202);
      }
      const body = JSON.parse((await readBody(req, GRAPH_REQUEST_LIMIT)).toString('utf8') || '{}') as Record<string, unknown>;
      if (action === '/attachments') {
        if (typeof body.contentBytes !== 'string' || typeof body.name !== 'string') throw new GraphError(400, 'ErrorInvalidRequest', 'a fileAttachment needs name and contentBytes');
        const data = Buffer.from(body.contentBytes, 'base64');
        if (data.length > 3 * 1024 * 1024) throw new GraphError(413, 'ErrorRequestEntityTooLarge', 'attachments over 3 MB need an upload session');
        draft.attachments.push({ name: body.name, contentType: String(body.contentType ?? 'application/octet-stream'), isInline: body.isInline === true, data });
        return send(res, 201, { id: randomUUID() });
      }
      const item = (body.AttachmentItem ?? {}) as Record<string, unknown>;
      const size = Number(item.size);
      if (item.attachmentType !== 'file' || typeof item.name !== 'string' || !Number.isInteger(size) || size < 0) {
        throw new GraphError(400, 'ErrorInvalidRequest', 'AttachmentItem needs attachmentType file, name and size');
      }
      const sessionId = randomBytes(24).toString('base64url');
      sessions.set(sessionId, {
        draftId: id,
        name: item.name,
        contentType: typeof item.contentType === 'string' ? item.contentType : 'application/octet-stream',
        isInline: item.isInline === true,
        ...(typeof item.contentId === 'string' && { contentId: item.contentId }),
        size,
        chunks: [],
        received: 0,
      });
      return send(res, 201, { uploadUrl: `${origin}/upload/${sessionId}`, expirationDateTime: new Date(Date.now() + 6 * 3_600_000).toISOString(), nextExpectedRanges: ['0-'] });
    } finally {
      concurrency.release(mailbox.key);
    }
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

  function deliver(mailbox: MailboxEntry, clientId: string, raw: Buffer): void {
    options.onMessage({
      mailbox: mailbox.address,
      clientId,
      envelope: { from: mailbox.address, to: headerRecipients(raw) },
      raw,
      queueId: `${randomBytes(12).toString('hex').toUpperCase()}@graph`,
      at: new Date(),
      via: 'graph',
    });
  }

  origin = await listenHttps(server, options.host, options.port);
  return {
    origin,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
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

/** To, Cc and Bcc addresses of a MIME message (Graph takes recipients from the headers). */
export function headerRecipients(raw: Buffer): string[] {
  const head = raw.subarray(0, Math.min(raw.length, 256 * 1024)).toString('latin1');
  const end = head.search(/\r?\n\r?\n/);
  const unfolded = (end === -1 ? head : head.slice(0, end)).replace(/\r?\n[ \t]+/g, ' ');
  const out: string[] = [];
  for (const line of unfolded.split(/\r?\n/)) {
    const m = /^(to|cc|bcc):(.*)$/i.exec(line);
    if (!m) continue;
    for (const address of m[2]!.match(/[^\s<>,;"]+@[^\s<>,;"]+/g) ?? []) out.push(address.toLowerCase());
  }
  return out;
}

/** The sent message: the draft's MIME with the uploaded attachments as base64 parts of a multipart/mixed. */
function assemble(draft: Draft): Buffer {
  if (draft.attachments.length === 0) return draft.mime;
  const boundary = `=_graph_${randomBytes(8).toString('hex')}`;
  const text = draft.mime.toString('latin1');
  const split = /\r?\n\r?\n/.exec(text);
  const headerEnd = split ? split.index : text.length;
  const headers = text
    .slice(0, headerEnd)
    .replace(/\r?\n[ \t]+/g, ' ')
    .split(/\r?\n/);
  const isContent = (l: string) => /^content-(type|transfer-encoding):/i.test(l);
  const bodyPart = [...headers.filter(isContent), '', split ? text.slice(headerEnd + split[0].length) : ''].join('\r\n');
  const parts = [
    ...headers.filter((l) => !isContent(l) && !/^mime-version:/i.test(l)),
    'MIME-Version: 1.0',
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    bodyPart,
  ];
  for (const a of draft.attachments) {
    parts.push(`--${boundary}`);
    parts.push(`Content-Type: ${a.contentType}; name="${a.name}"`);
    parts.push(`Content-Disposition: ${a.isInline ? 'inline' : 'attachment'}; filename="${a.name}"`);
    if (a.contentId) parts.push(`Content-ID: <${a.contentId}>`);
    parts.push('Content-Transfer-Encoding: base64', '');
    parts.push(a.data.toString('base64').replace(/.{76}/g, '$&\r\n'));
  }
  parts.push(`--${boundary}--`, '');
  return Buffer.from(parts.join('\r\n'), 'latin1');
}
