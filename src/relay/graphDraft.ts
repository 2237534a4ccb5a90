// The large-message path of the Graph transport: Graph takes at most 4 MB in one request, so a
// larger message is created as a draft without its biggest attachments (POST /messages, MIME),
// each of those attached on its own (POST /attachments under 2 MiB, an upload session above),
// and the draft is sent (POST /messages/{id}/send).
//
// Decisions are pure functions (leafKind, planDraft, draftPieces) with table tests; GraphDrafts does
// the requests. Only attachment leaves are taken out: bodies (text, HTML, the parts of
// multipart/alternative and multipart/related) stay in the draft's MIME where they were, so Exchange
// makes them the body. Inline images keep their Content-ID (isInline + contentId on the attachment).
//
// Nothing is left behind: a draft whose attempt does not end in a send is deleted, and every draft
// carries the queue id (header X-M365-Relay-Queue-Id in its MIME from the first request, and an
// extended property set right after), so one left by a crash is found and deleted before the next
// attempt for that message.
import { createReadStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { detectExtension } from 'nodemailer/lib/mime-funcs';
import type { Logger } from '../observability/logger.js';
import { crashPoint } from '../spool/crashPoints.js';
import { graphFailure, type GraphClient } from './graphClient.js';
import type { Mailbox, RecipientPlan } from './graphRecipients.js';
import { formatMailbox } from './graphRecipients.js';
import { leaves, type MimeNode } from './mimeParts.js';
import { readRange, stagedPath } from './staging.js';
import { UpstreamError } from './transport.js';

export const DRAFT_MARKER_HEADER = 'X-M365-Relay-Queue-Id';
/**
 * Our own named extended property (a GUID of this project's): documented to be settable on a
 * message and filterable with singleValueExtendedProperties/any(ep: ep/id eq ... and ep/value eq ...).
 */
export const MARKER_PROPERTY = 'String {5c8d7a3e-2f41-4b6a-9e0d-8a1b3c5d7e9f} Name m365RelayQueueId';
/**
 * The same marker as Exchange keeps the X- header: a named property in the PS_INTERNET_HEADERS set,
 * lower-cased name. Exchange's documentation does not promise that a header of MIME created through
 * Graph is kept this way, so it is a second chance for the moment between the draft's creation and
 * the PATCH that sets MARKER_PROPERTY, not the only mark.
 */
export const MARKER_HEADER_PROPERTY = `String {00020386-0000-0000-C000-000000000046} Name ${DRAFT_MARKER_HEADER.toLowerCase()}`;

/** Below this size Graph refuses upload sessions (ErrorAttachmentSizeShouldNotBeLessThanMinimumSize): POST the attachment. */
export const UPLOAD_SESSION_MIN = 2 * 1024 * 1024;
/** Upload-session chunks must be multiples of 320 KiB; 10 of them stay under the 4 MB request limit. */
const UPLOAD_CHUNK = 10 * 320 * 1024;

export type LeafKind = 'body' | 'attachment' | 'inline';

/**
 * What a leaf part is. An attachment has a file name or Content-Disposition: attachment; one with a
 * Content-ID (and not disposition attachment) is inline (an image the HTML shows by cid:). A
 * non-text part with a Content-ID and no name is an inline resource too. Everything else is body.
 */
export function leafKind(node: Pick<MimeNode, 'contentType' | 'disposition' | 'filename' | 'contentId'>): LeafKind {
  if (node.disposition === 'attachment') return 'attachment';
  if (node.filename === undefined && (node.contentId === undefined || node.contentType.startsWith('text/'))) return 'body';
  return node.contentId !== undefined ? 'inline' : 'attachment';
}

export type DraftPlan = { ok: true; moved: MimeNode[] } | { ok: false; reason: string };

/**
 * Which attachments leave the draft's MIME so that the draft fits in `limit` bytes: the largest
 * first, no more than needed. When no choice fits, says which part keeps the message too large.
 */
export function planDraft(root: MimeNode, headerBytes: number, limit: number): DraftPlan {
  let size = headerBytes + (root.end - root.bodyStart);
  if (size <= limit) return { ok: true, moved: [] };
  const all = leaves(root).filter((leaf) => leaf !== root);
  const movable = all.filter((leaf) => leafKind(leaf) !== 'body').sort((a, b) => b.end - b.start - (a.end - a.start));
  const moved: MimeNode[] = [];
  for (const leaf of movable) {
    if (size <= limit) break;
    moved.push(leaf);
    size -= leaf.end - leaf.start;
  }
  if (size <= limit) return { ok: true, moved };
  const kept = (root.children ? all.filter((leaf) => !moved.includes(leaf)) : [root]).sort((a, b) => b.bodyEnd - b.bodyStart - (a.bodyEnd - a.bodyStart));
  const biggest = kept[0] ?? root;
  const what = root.children ? `its ${biggest.contentType} body part is ${mb(biggest.bodyEnd - biggest.bodyStart)}` : `it is a single ${root.contentType} part of ${mb(root.end)}`;
  return {
    ok: false,
    reason: `the message cannot go through Microsoft Graph intact: ${what}, and Graph takes at most 4 MB in one request; only attachments can be uploaded separately. Set largeMessages: smtp on the account to send such messages over SMTP AUTH (needs SMTP.SendAsApp), or have the device send the content as an attachment`,
  };
}

function mb(bytes: number): string {
  return `${(bytes / 1_000_000).toFixed(1)} MB`;
}

/**
 * The draft's body as pieces of the file (byte ranges) and inserted bytes: the message body without
 * the moved leaves. A multipart left with no part gets an empty text/plain one (MIME needs one).
 */
export function draftPieces(root: MimeNode, moved: ReadonlySet<MimeNode>): Array<{ from: number; to: number } | Buffer> {
  const cuts: Array<{ start: number; end: number; insert?: Buffer }> = [];
  const visit = (node: MimeNode): void => {
    const children = node.children ?? [];
    const gone = children.filter((c) => moved.has(c));
    gone.forEach((c, i) => cuts.push({ start: c.start, end: c.end, ...(i === 0 && gone.length === children.length && { insert: Buffer.from(`--${node.boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n\r\n`, 'latin1') }) }));
    for (const child of children) if (child.children) visit(child);
  };
  visit(root);
  cuts.sort((a, b) => a.start - b.start);
  const pieces: Array<{ from: number; to: number } | Buffer> = [];
  let at = root.bodyStart;
  for (const cut of cuts) {
    if (cut.start > at) pieces.push({ from: at, to: cut.start });
    if (cut.insert) pieces.push(cut.insert);
    at = cut.end;
  }
  if (root.end > at) pieces.push({ from: at, to: root.end });
  return pieces;
}

/** A Graph recipient object; the address is written as in the MIME header (IDNA domain). */
function recipient(m: Mailbox): { emailAddress: { address: string; name?: string } } {
  const formatted = formatMailbox({ name: '', address: m.address });
  return { emailAddress: { address: formatted, ...(m.name && { name: m.name }) } };
}

/** The requests of the draft path, for one mailbox. */
export class GraphDrafts {
  constructor(
    private readonly client: GraphClient,
    /** https://graph.../v1.0/users/{mailbox} */
    private readonly base: string,
    private readonly log: Logger,
  ) {}

  /**
   * Deletes drafts an earlier attempt for this message left in the Drafts folder (a crash between
   * creating and sending). Looks them up by each marker; a filter Graph refuses (400) finds nothing.
   */
  async removeLeftovers(messageId: string, signal?: AbortSignal): Promise<number> {
    const ids = new Set<string>();
    for (const property of [MARKER_PROPERTY, MARKER_HEADER_PROPERTY]) {
      const filter = `singleValueExtendedProperties/any(ep: ep/id eq '${odataString(property)}' and ep/value eq '${odataString(messageId)}')`;
      const url = `${this.base}/mailFolders/drafts/messages?$select=id&$top=20&$filter=${encodeURIComponent(filter)}`;
      try {
        const found = await this.client.call({ method: 'GET', url }, signal);
        for (const m of (found.value as Array<{ id?: string }> | undefined) ?? []) if (m.id) ids.add(m.id);
      } catch (err) {
        if (err instanceof UpstreamError && err.failure.httpStatus === 400) {
          this.log.warn({ msgId: messageId, event: 'draft-lookup-refused', response: err.failure.response }, 'Graph refused the filter that finds leftover drafts; skipping that marker');
          continue;
        }
        throw err;
      }
    }
    for (const id of ids) {
      await this.remove(id, signal);
      this.log.warn({ msgId: messageId, event: 'draft-removed', reason: 'left by an earlier attempt' }, 'deleted a draft an interrupted attempt left in the Drafts folder');
    }
    return ids.size;
  }

  /** Creates the draft from MIME; returns its id. */
  async create(mime: Buffer, messageId: string, signal?: AbortSignal): Promise<string> {
    const draft = await this.client.call({ method: 'POST', url: `${this.base}/messages`, contentType: 'text/plain', body: Buffer.from(mime.toString('base64'), 'latin1') }, signal);
    if (typeof draft.id !== 'string') throw graphFailure(502, 'InvalidResponse', 'Graph created a draft without an id');
    crashPoint('graph-after-draft');
    this.log.debug({ msgId: messageId, event: 'draft-created' }, 'Graph draft created');
    return draft.id;
  }

  /**
   * The draft's recipient fields are what Graph sends to: set them to the envelope's plan
   * explicitly (whatever Exchange made of the headers), with the marker property.
   */
  async prepare(id: string, plan: RecipientPlan, messageId: string, signal?: AbortSignal): Promise<void> {
    const body = {
      toRecipients: plan.to.map(recipient),
      ccRecipients: plan.cc.map(recipient),
      bccRecipients: plan.bcc.map(recipient),
      singleValueExtendedProperties: [{ id: MARKER_PROPERTY, value: messageId }],
    };
    await this.client.call({ method: 'PATCH', url: this.messageUrl(id), contentType: 'application/json', body: Buffer.from(JSON.stringify(body), 'utf8') }, signal);
  }

  /** Decodes the leaf into a staged file and attaches it: POST under 2 MiB, an upload session above. */
  async attach(id: string, file: string, leaf: MimeNode, stagingDir: string, messageId: string, signal?: AbortSignal): Promise<void> {
    const decoded = stagedPath(stagingDir, messageId, 'part');
    try {
      const size = await decodePart(file, leaf, decoded);
      const inline = leafKind(leaf) === 'inline';
      const name = leaf.filename ?? `${inline ? 'inline' : 'attachment'}.${detectExtension(leaf.contentType) || 'bin'}`;
      // Graph's fileAttachment and AttachmentItem both have isInline and contentId.
      const common = { name, contentType: leaf.contentType, isInline: inline, ...(inline && leaf.contentId !== undefined && { contentId: leaf.contentId }) };
      if (size < UPLOAD_SESSION_MIN) {
        const contentBytes = (await readRange(decoded, 0, size)).toString('base64');
        const body = { '@odata.type': '#microsoft.graph.fileAttachment', ...common, contentBytes };
        await this.client.call({ method: 'POST', url: `${this.messageUrl(id)}/attachments`, contentType: 'application/json', body: Buffer.from(JSON.stringify(body), 'utf8') }, signal);
        return;
      }
      const session = await this.client.call(
        { method: 'POST', url: `${this.messageUrl(id)}/attachments/createUploadSession`, contentType: 'application/json', body: Buffer.from(JSON.stringify({ AttachmentItem: { attachmentType: 'file', size, ...common } }), 'utf8') },
        signal,
      );
      if (typeof session.uploadUrl !== 'string') throw graphFailure(502, 'InvalidResponse', 'Graph created an upload session without an uploadUrl');
      for (let offset = 0; offset < size; offset += UPLOAD_CHUNK) {
        const chunk = await readRange(decoded, offset, Math.min(UPLOAD_CHUNK, size - offset));
        await this.client.call(
          { method: 'PUT', url: session.uploadUrl, contentType: 'application/octet-stream', body: chunk, headers: { 'content-range': `bytes ${offset}-${offset + chunk.length - 1}/${size}` }, anonymous: true },
          signal,
        );
      }
    } finally {
      await rm(decoded, { force: true });
    }
  }

  /** The signal only ends a Retry-After wait: a send request under way is never cut off. */
  async send(id: string, signal?: AbortSignal): Promise<void> {
    await this.client.call({ method: 'POST', url: `${this.messageUrl(id)}/send`, sends: true }, signal);
  }

  /** DELETE the draft; one already gone (404) counts as deleted. */
  async remove(id: string, signal?: AbortSignal): Promise<void> {
    try {
      await this.client.call({ method: 'DELETE', url: this.messageUrl(id) }, signal);
    } catch (err) {
      if (err instanceof UpstreamError && err.failure.httpStatus === 404) return;
      throw err;
    }
  }

  private messageUrl(id: string): string {
    return `${this.base}/messages/${encodeURIComponent(id)}`;
  }
}

/** OData string literal content: a single quote is doubled. */
function odataString(value: string): string {
  return value.replace(/'/g, "''");
}

/** Writes the leaf's decoded bytes to `target` (0600); returns their number. */
export async function decodePart(file: string, leaf: MimeNode, target: string): Promise<number> {
  const out = await open(target, 'wx', 0o600);
  let size = 0;
  const write = async (data: Buffer) => {
    if (data.length === 0) return;
    await out.write(data);
    size += data.length;
  };
  try {
    const decoder = partDecoder(leaf.encoding);
    if (leaf.bodyEnd > leaf.bodyStart) {
      for await (const chunk of createReadStream(file, { start: leaf.bodyStart, end: leaf.bodyEnd - 1, highWaterMark: 256 * 1024 })) await write(decoder.push(chunk as Buffer));
    }
    await write(decoder.end());
  } finally {
    await out.close();
  }
  return size;
}

interface Decoder {
  push(chunk: Buffer): Buffer;
  end(): Buffer;
}

/** Streaming Content-Transfer-Encoding decoders: base64, quoted-printable, or the bytes as they are. */
export function partDecoder(encoding: string): Decoder {
  if (encoding === 'base64') {
    let carry = '';
    return {
      push(chunk) {
        const text = carry + chunk.toString('latin1').replace(/[^A-Za-z0-9+/]/g, '');
        const whole = text.length - (text.length % 4);
        carry = text.slice(whole);
        return Buffer.from(text.slice(0, whole), 'base64');
      },
      end: () => Buffer.from(carry, 'base64'),
    };
  }
  if (encoding === 'quoted-printable') {
    let carry = '';
    const line = (text: string, last: boolean): string => {
      const trimmed = text.replace(/[ \t\r]+$/, '');
      const soft = trimmed.endsWith('=');
      const decoded = (soft ? trimmed.slice(0, -1) : trimmed).replace(/=([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
      return decoded + (soft || last ? '' : '\r\n');
    };
    return {
      push(chunk) {
        const lines = (carry + chunk.toString('latin1')).split('\n');
        carry = lines.pop() ?? '';
        return Buffer.from(lines.map((l) => line(l, false)).join(''), 'latin1');
      },
      end: () => Buffer.from(carry ? line(carry, true) : '', 'latin1'),
    };
  }
  return { push: (chunk) => chunk, end: () => Buffer.alloc(0) };
}
