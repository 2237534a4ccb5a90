// Microsoft Graph as the way out, for tenants where SMTP AUTH is off: the spooled MIME goes to
// POST /users/{mailbox}/sendMail (base64). Graph refuses requests over 4 MB, so a larger message is
// sent as a draft without its big attachments, each attachment uploaded through an upload session
// in chunks, then the draft is sent. Memory stays bounded: a large message is spilled to a temporary
// file (0600) and read back a chunk at a time.
import { createReadStream } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { request as httpsRequest, Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { TokenSource } from '../oauth/index.js';
import type { MessageTransport } from './accountFactory.js';
import type { UpstreamFailure } from './classify.js';
import { fieldValue, parseHeaderBlock, type HeaderBlock } from './headers.js';
import { findMimeParts, type MimePart } from './mimeParts.js';
import { UpstreamError, type SendResult } from './transport.js';

/** Graph's request limit is 4 MB; base64 grows the MIME by 4/3, so this much raw MIME fits in one request. */
const SINGLE_REQUEST_RAW = 2_900_000;
/** Upload-session chunks must be multiples of 320 KiB; 10 of them stay under the 4 MB request limit. */
const UPLOAD_CHUNK = 10 * 320 * 1024;
/** An attachment this large is uploaded through a session instead of staying in the draft. */
const LARGE_PART = 1024 * 1024;
/** A Retry-After this short is waited out within the send; a longer one defers the message. */
const MAX_INLINE_WAIT_MS = 5_000;

export interface GraphTransportOptions {
  /** e.g. https://graph.microsoft.com */
  graphHost: string;
  mailbox: string;
  /** Bound on each request. */
  timeoutMs: number;
  /** Graph allows 4 concurrent requests per app and mailbox. */
  maxConcurrent?: number;
}

export class GraphTransport implements MessageTransport {
  private readonly agent: Agent;
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly base: string;

  constructor(
    private readonly options: GraphTransportOptions,
    private readonly tokens: TokenSource,
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets: options.maxConcurrent ?? 4 });
    this.base = `${options.graphHost.replace(/\/$/, '')}/v1.0/users/${encodeURIComponent(options.mailbox)}`;
  }

  async send(envelope: { from: string; to: string[] }, raw: Readable): Promise<SendResult> {
    const spilled = await spill(raw, SINGLE_REQUEST_RAW);
    try {
      const header = parseHeaderBlock(await spilled.read(0, Math.min(spilled.size, 256 * 1024)));
      // Graph takes the recipients from the headers, not from an envelope: envelope-only
      // recipients (Bcc at the device) would be lost, so they are added as Bcc.
      const missing = missingRecipients(header, envelope.to);
      const bcc = missing.length ? Buffer.from(`Bcc: ${missing.join(', ')}\r\n`, 'latin1') : Buffer.alloc(0);
      if (spilled.size + bcc.length <= SINGLE_REQUEST_RAW) {
        const mime = Buffer.concat([bcc, await spilled.read(0, spilled.size)]);
        await this.call('POST', `${this.base}/sendMail`, { contentType: 'text/plain', body: Buffer.from(mime.toString('base64'), 'latin1') });
      } else {
        await this.sendLarge(spilled, bcc);
      }
      return { accepted: [...envelope.to], rejected: [], response: `202 Accepted by Microsoft Graph sendMail for ${this.options.mailbox}` };
    } finally {
      await spilled.dispose();
    }
  }

  close(): void {
    this.agent.destroy();
  }

  /** Draft without the large parts, each large part through an upload session, then send. */
  private async sendLarge(file: Spilled, bcc: Buffer): Promise<void> {
    const structure = await findMimeParts(file.path);
    const large = structure?.parts.filter((p) => p.bodyEnd - p.bodyStart > LARGE_PART && (p.encoding === 'base64' || p.encoding === 'binary' || p.encoding === '8bit' || p.encoding === '7bit')) ?? [];
    if (!structure || large.length === 0) {
      throw graphFailure(413, 'ErrorRequestEntityTooLarge', `the message (${file.size} bytes) is over Graph's 4 MB request limit and has no attachment that could be uploaded separately`);
    }
    const kept: Buffer[] = [bcc, await file.read(0, structure.firstPartStart)];
    for (const part of structure.parts) {
      if (large.includes(part)) continue;
      kept.push(await file.read(part.start, part.end - part.start));
    }
    kept.push(Buffer.from(`--${structure.boundary}--\r\n`, 'latin1'));
    const draftMime = Buffer.concat(kept);
    if (draftMime.length > SINGLE_REQUEST_RAW) {
      throw graphFailure(413, 'ErrorRequestEntityTooLarge', `even without its attachments the message is ${draftMime.length} bytes, over Graph's 4 MB request limit`);
    }
    const draft = (await this.call('POST', `${this.base}/messages`, { contentType: 'text/plain', body: Buffer.from(draftMime.toString('base64'), 'latin1') })) as { id?: string };
    if (!draft.id) throw graphFailure(502, 'InvalidResponse', 'Graph created a draft without an id');
    const messageUrl = `${this.base}/messages/${encodeURIComponent(draft.id)}`;
    for (const part of large) await this.upload(messageUrl, file, part);
    await this.call('POST', `${messageUrl}/send`, { contentType: 'application/json', body: Buffer.alloc(0) });
  }

  private async upload(messageUrl: string, file: Spilled, part: MimePart): Promise<void> {
    const size = part.encoding === 'base64' ? await decodedBase64Size(file.path, part) : part.bodyEnd - part.bodyStart;
    const item = {
      attachmentType: 'file',
      name: part.filename ?? 'attachment',
      size,
      contentType: part.contentType,
      ...(part.contentId && { contentId: part.contentId, isInline: part.inline }),
    };
    const session = (await this.call('POST', `${messageUrl}/attachments/createUploadSession`, { contentType: 'application/json', body: Buffer.from(JSON.stringify({ AttachmentItem: item })) })) as { uploadUrl?: string };
    if (!session.uploadUrl) throw graphFailure(502, 'InvalidResponse', 'Graph created an upload session without an uploadUrl');
    let offset = 0;
    for await (const chunk of decodedChunks(file.path, part, UPLOAD_CHUNK)) {
      // The upload URL carries its own authorization: no bearer token is sent to it.
      await this.call('PUT', session.uploadUrl, { contentType: 'application/octet-stream', body: chunk, headers: { 'content-range': `bytes ${offset}-${offset + chunk.length - 1}/${size}` }, anonymous: true });
      offset += chunk.length;
    }
    if (offset !== size) throw graphFailure(500, 'UploadIncomplete', `uploaded ${offset} of ${size} bytes of ${item.name}`);
  }

  /** One Graph request, at most maxConcurrent at once; a short Retry-After is waited out once. */
  private async call(method: string, url: string, req: { contentType: string; body: Buffer; headers?: Record<string, string>; anonymous?: boolean }, retried = false): Promise<unknown> {
    await this.slot();
    let outcome: { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer };
    try {
      const headers: Record<string, string> = { 'content-type': req.contentType, 'content-length': String(req.body.length), ...req.headers };
      if (!req.anonymous) headers.authorization = `Bearer ${(await this.tokens.getToken()).accessToken}`;
      outcome = await this.request(method, url, headers, req.body);
    } finally {
      this.release();
    }
    if (outcome.status < 300) return outcome.body.length ? JSON.parse(outcome.body.toString('utf8')) : {};
    const failure = toFailure(outcome);
    if (!retried && (outcome.status === 429 || outcome.status === 503) && failure.retryAfterMs !== undefined && failure.retryAfterMs <= MAX_INLINE_WAIT_MS) {
      await new Promise((resolve) => setTimeout(resolve, failure.retryAfterMs));
      return this.call(method, url, req, true);
    }
    throw new UpstreamError(failure);
  }

  private request(method: string, url: string, headers: Record<string, string>, body: Buffer) {
    return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>((resolve, reject) => {
      const req = httpsRequest(url, { method, headers, agent: this.agent, timeout: this.options.timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error(`Graph did not answer within ${this.options.timeoutMs} ms`), { code: 'ETIMEDOUT' })));
      req.on('error', (err: NodeJS.ErrnoException) => reject(new UpstreamError({ code: err.code ?? 'ECONNECTION', message: `${method} ${new URL(url).host}: ${err.message}` }, [], { cause: err })));
      req.end(body);
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

function toFailure(outcome: { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }): UpstreamFailure {
  let code = '';
  let message = outcome.body.toString('utf8').slice(0, 300);
  try {
    const parsed = JSON.parse(outcome.body.toString('utf8')) as { error?: { code?: string; message?: string } };
    code = parsed.error?.code ?? '';
    message = parsed.error?.message ?? message;
  } catch {
    // not JSON: keep the text
  }
  const retryAfter = Number(outcome.headers['retry-after']);
  return {
    httpStatus: outcome.status,
    graphCode: code,
    response: `${outcome.status} ${code || 'error'}: ${message}`.trim(),
    ...(Number.isFinite(retryAfter) && retryAfter >= 0 && { retryAfterMs: retryAfter * 1000 }),
  };
}

function graphFailure(status: number, code: string, message: string): UpstreamError {
  return new UpstreamError({ httpStatus: status, graphCode: code, response: `${status} ${code}: ${message}` });
}

interface Spilled {
  path: string;
  size: number;
  read(position: number, length: number): Promise<Buffer>;
  dispose(): Promise<void>;
}

/** Keeps a small message in memory; a larger one goes to a temporary file (0600) as it streams. */
async function spill(raw: Readable, threshold: number): Promise<Spilled> {
  const chunks: Buffer[] = [];
  let size = 0;
  // Leaving this loop early must not destroy the stream: the rest is read below.
  for await (const chunk of raw.iterator({ destroyOnReturn: false })) {
    chunks.push(chunk as Buffer);
    size += (chunk as Buffer).length;
    if (size > threshold) break;
  }
  if (size <= threshold) {
    const data = Buffer.concat(chunks);
    return { path: '', size, read: async (p, l) => data.subarray(p, p + l), dispose: async () => undefined };
  }
  const dir = await mkdtemp(join(tmpdir(), 'm365-relay-graph-'));
  const path = join(dir, 'message.eml');
  const handle = await open(path, 'wx', 0o600);
  try {
    for (const chunk of chunks) await handle.write(chunk);
    chunks.length = 0;
    await pipeline(raw, async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) {
        await handle.write(chunk);
        size += chunk.length;
      }
    });
  } finally {
    await handle.close();
  }
  return {
    path,
    size,
    async read(position, length) {
      const h = await open(path, 'r');
      try {
        const buffer = Buffer.alloc(length);
        const { bytesRead } = await h.read(buffer, 0, length, position);
        return buffer.subarray(0, bytesRead);
      } finally {
        await h.close();
      }
    },
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
}


/** Envelope recipients that no To, Cc or Bcc header names. */
export function missingRecipients(header: HeaderBlock, recipients: string[]): string[] {
  const named = new Set<string>();
  for (const field of header.fields) {
    if (field.name !== 'to' && field.name !== 'cc' && field.name !== 'bcc') continue;
    for (const a of fieldValue(field).match(/[^\s<>,;"]+@[^\s<>,;"]+/g) ?? []) named.add(a.toLowerCase());
  }
  return recipients.filter((r) => !named.has(r.toLowerCase()));
}

/** The decoded size of a base64 part, by counting its base64 characters (streamed). */
async function decodedBase64Size(path: string, part: MimePart): Promise<number> {
  let chars = 0;
  let padding = 0;
  for await (const chunk of createReadStream(path, { start: part.bodyStart, end: part.bodyEnd - 1 })) {
    for (const byte of chunk as Buffer) {
      if (byte === 0x3d) padding++;
      else if ((byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x30 && byte <= 0x39) || byte === 0x2b || byte === 0x2f) chars++;
    }
  }
  return Math.floor(((chars + padding) * 3) / 4) - padding;
}

/** The part's decoded bytes in chunks of `size` (the last one shorter), read from the file as needed. */
async function* decodedChunks(path: string, part: MimePart, size: number): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingLength = 0;
  let carry = '';
  const take = function* (data: Buffer): Generator<Buffer> {
    pending.push(data);
    pendingLength += data.length;
    while (pendingLength >= size) {
      const all = Buffer.concat(pending);
      yield all.subarray(0, size);
      pending = [all.subarray(size)];
      pendingLength = all.length - size;
    }
  };
  for await (const chunk of createReadStream(path, { start: part.bodyStart, end: part.bodyEnd - 1, highWaterMark: 256 * 1024 })) {
    if (part.encoding !== 'base64') {
      yield* take(chunk as Buffer);
      continue;
    }
    const text = carry + (chunk as Buffer).toString('latin1').replace(/[^A-Za-z0-9+/=]/g, '');
    const whole = text.length - (text.length % 4);
    carry = text.slice(whole);
    if (whole > 0) yield* take(Buffer.from(text.slice(0, whole), 'base64'));
  }
  if (carry) yield* take(Buffer.from(carry, 'base64'));
  if (pendingLength > 0) yield Buffer.concat(pending);
}
