// The simulated Graph's view of a message: what Exchange makes of MIME (recipient fields from the
// To/Cc/Bcc headers, X- headers kept as named properties in the PS_INTERNET_HEADERS set), drafts
// with their attachments, and the message a sent draft becomes.
import { randomBytes } from 'node:crypto';
import type { MailboxEntry } from './directory.js';

export const INTERNET_HEADERS_SET = '{00020386-0000-0000-C000-000000000046}';

export interface DraftAttachment {
  name: string;
  contentType: string;
  isInline: boolean;
  contentId?: string;
  data: Buffer;
}

export interface Draft {
  id: string;
  mailbox: MailboxEntry;
  clientId: string;
  mime: Buffer;
  /** The recipient fields Graph sends to: from the MIME headers at creation, replaced by PATCH. */
  to: string[];
  cc: string[];
  bcc: string[];
  /** singleValueExtendedProperties by id (e.g. 'String {guid} Name x'), the MIME's X- headers included. */
  properties: Map<string, string>;
  attachments: DraftAttachment[];
}

/** The header block of a MIME message, unfolded, as [name, value] pairs (latin1). */
export function headerFields(raw: Buffer): Array<[string, string]> {
  const head = raw.subarray(0, Math.min(raw.length, 256 * 1024)).toString('latin1');
  const end = head.search(/\r?\n\r?\n/);
  const unfolded = (end === -1 ? head : head.slice(0, end)).replace(/\r?\n[ \t]+/g, ' ');
  const out: Array<[string, string]> = [];
  for (const line of unfolded.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0) out.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
  }
  return out;
}

/** The addresses of one kind of recipient header (To, Cc or Bcc), lowercased. */
export function addressesOf(raw: Buffer, name: 'to' | 'cc' | 'bcc'): string[] {
  const out: string[] = [];
  for (const [field, value] of headerFields(raw)) {
    if (field.toLowerCase() !== name) continue;
    // Quoted display names may contain '@' or ',': drop them before picking addresses.
    const unquoted = value.replace(/"(?:[^"\\]|\\.)*"/g, '');
    for (const address of unquoted.match(/[^\s<>,;:"()]+@[^\s<>,;"()]+/g) ?? []) out.push(address.toLowerCase());
  }
  return out;
}

/** To, Cc and Bcc addresses of a MIME message, each once (Graph's sendMail sends to these). */
export function headerRecipients(raw: Buffer): string[] {
  return [...new Set([...addressesOf(raw, 'to'), ...addressesOf(raw, 'cc'), ...addressesOf(raw, 'bcc')])];
}

/** A draft as Exchange creates it from MIME. */
export function draftFromMime(id: string, mailbox: MailboxEntry, clientId: string, mime: Buffer): Draft {
  const properties = new Map<string, string>();
  for (const [name, value] of headerFields(mime)) {
    if (/^x-/i.test(name)) properties.set(`String ${INTERNET_HEADERS_SET} Name ${name.toLowerCase()}`, value);
  }
  return { id, mailbox, clientId, mime, to: addressesOf(mime, 'to'), cc: addressesOf(mime, 'cc'), bcc: addressesOf(mime, 'bcc'), properties, attachments: [] };
}

/**
 * The message a draft becomes when sent: To/Cc written from its recipient fields (Bcc never shown),
 * the draft's MIME as the body part, the attachments as base64 parts of a multipart/mixed.
 */
export function assemble(draft: Draft): Buffer {
  const text = draft.mime.toString('latin1');
  const split = /\r?\n\r?\n/.exec(text);
  const headerEnd = split ? split.index : text.length;
  const headers = text
    .slice(0, headerEnd)
    .replace(/\r?\n[ \t]+/g, ' ')
    .split(/\r?\n/)
    .filter((l) => !/^(to|cc|bcc):/i.test(l));
  const recipients = [...(draft.to.length ? [`To: ${draft.to.join(', ')}`] : []), ...(draft.cc.length ? [`Cc: ${draft.cc.join(', ')}`] : [])];
  const body = split ? text.slice(headerEnd + split[0].length) : '';
  if (draft.attachments.length === 0) return Buffer.from([...recipients, ...headers, '', body].join('\r\n'), 'latin1');
  const boundary = `=_graph_${randomBytes(8).toString('hex')}`;
  const isContent = (l: string) => /^content-(type|transfer-encoding):/i.test(l);
  const parts = [...recipients, ...headers.filter((l) => !isContent(l) && !/^mime-version:/i.test(l)), 'MIME-Version: 1.0', `Content-Type: multipart/mixed; boundary="${boundary}"`, '', `--${boundary}`, [...headers.filter(isContent), '', body].join('\r\n')];
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

/**
 * The one $filter form the relay uses to find its drafts (documented for extended properties):
 * singleValueExtendedProperties/any(ep: ep/id eq '<id>' and ep/value eq '<value>'). Anything else: null.
 */
export function parsePropertyFilter(filter: string): { id: string; value: string } | null {
  const m = /^singleValueExtendedProperties\/any\(\s*ep\s*:\s*ep\/id eq '((?:[^']|'')*)' and ep\/value eq '((?:[^']|'')*)'\s*\)$/i.exec(filter.trim());
  if (!m) return null;
  return { id: m[1]!.replace(/''/g, "'"), value: m[2]!.replace(/''/g, "'") };
}
