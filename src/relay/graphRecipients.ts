// Who receives a message sent through Graph. Graph has no envelope: sendMail with MIME sends to the
// To, Cc and Bcc headers, and a draft to its toRecipients/ccRecipients/bccRecipients (filled from
// those headers when the draft is created from MIME). The spooled envelope is the truth, so the
// recipient headers are rewritten to it:
//   To / Cc  keep the header's addresses that are in the envelope (with their display names),
//   Bcc      gets every envelope recipient no To/Cc names (Exchange removes Bcc from what recipients see),
//   dropped  header addresses that are not in this envelope (another transaction of the same message
//            delivers to them, or the device never meant them to receive it) are removed, so they
//            get no copy from this transaction.
// What a reader then sees: To and Cc list only those visible recipients this transaction delivers
// to. A message Postfix split into {a, b} and {c} shows "To: a, b" to a and b, and "To: c" to c.
import addressparser from 'nodemailer/lib/addressparser';
import { encodeWord } from 'nodemailer/lib/mime-funcs';
import { addressKey, asciiDomain } from '../mail/addresses.js';
import type { HeaderBlock, HeaderField } from './headers.js';
import { fieldValue } from './headers.js';

export interface Mailbox {
  /** Display name as text (may be empty). */
  name: string;
  address: string;
}

export interface RecipientPlan {
  to: Mailbox[];
  cc: Mailbox[];
  bcc: Mailbox[];
  /** False when the headers already name exactly the envelope: they are then kept byte for byte. */
  changed: boolean;
}

const RECIPIENT_FIELDS = new Set(['to', 'cc', 'bcc']);

/** The mailboxes of a To/Cc/Bcc header value (groups flattened). Raw UTF-8 header bytes (RFC 6532) are read as UTF-8. */
export function headerMailboxes(field: HeaderField): Mailbox[] {
  const value = Buffer.from(fieldValue(field), 'latin1').toString('utf8');
  return addressparser(value, { flatten: true })
    .filter((m) => m.address.includes('@'))
    .map((m) => ({ name: decodeWords(m.name), address: m.address }));
}

/** Decides the recipient headers: exactly the envelope, visible where the device made them visible. */
export function planRecipients(header: HeaderBlock, envelope: readonly string[]): RecipientPlan {
  const wanted = new Map<string, string>();
  for (const address of envelope) if (!wanted.has(addressKey(address))) wanted.set(addressKey(address), address);
  const named: Record<'to' | 'cc' | 'bcc', Mailbox[]> = { to: [], cc: [], bcc: [] };
  for (const field of header.fields) if (RECIPIENT_FIELDS.has(field.name)) named[field.name as 'to' | 'cc' | 'bcc'].push(...headerMailboxes(field));

  const placed = new Set<string>();
  const keep = (list: Mailbox[]): Mailbox[] => {
    const out: Mailbox[] = [];
    for (const m of list) {
      const key = addressKey(m.address);
      if (!wanted.has(key) || placed.has(key)) continue;
      placed.add(key);
      out.push(m);
    }
    return out;
  };
  const to = keep(named.to);
  const cc = keep(named.cc);
  const bccNamed = new Map(named.bcc.map((m) => [addressKey(m.address), m] as const));
  const bcc: Mailbox[] = [];
  for (const [key, address] of wanted) {
    if (placed.has(key)) continue;
    placed.add(key);
    bcc.push(bccNamed.get(key) ?? { name: '', address });
  }
  const sameKeys = (a: Mailbox[], b: Mailbox[]) => a.length === b.length && a.every((m, i) => addressKey(m.address) === addressKey(b[i]!.address));
  const changed = !sameKeys(to, named.to) || !sameKeys(cc, named.cc) || !sameKeys(bcc, named.bcc);
  return { to, cc, bcc, changed };
}

/**
 * The header block with its To/Cc/Bcc fields replaced by the plan's (where the first of them was,
 * else at the top), other fields untouched. Unchanged plans return the block as it is.
 */
export function applyRecipientPlan(header: HeaderBlock, plan: RecipientPlan): HeaderBlock {
  if (!plan.changed) return header;
  const eol = header.eol;
  const hadTo = header.fields.some((f) => f.name === 'to');
  const lines: HeaderField[] = [];
  // A To that loses every address becomes an empty group rather than vanishing: readers see that
  // the visible recipients were not for them. (RFC 5322 3.6.3 allows a message without To.)
  if (plan.to.length > 0) lines.push(recipientField('To', plan.to, eol));
  else if (hadTo) lines.push({ name: 'to', raw: `To: undisclosed-recipients:;${eol}` });
  if (plan.cc.length > 0) lines.push(recipientField('Cc', plan.cc, eol));
  if (plan.bcc.length > 0) lines.push(recipientField('Bcc', plan.bcc, eol));
  const first = header.fields.findIndex((f) => RECIPIENT_FIELDS.has(f.name));
  const rest = header.fields.filter((f) => !RECIPIENT_FIELDS.has(f.name));
  const at = first === -1 ? 0 : header.fields.slice(0, first).filter((f) => !RECIPIENT_FIELDS.has(f.name)).length;
  return { ...header, fields: [...rest.slice(0, at), ...lines, ...rest.slice(at)] };
}

/** A header field with one address per line; the raw string holds UTF-8 bytes as latin1 chars, like every HeaderField. */
function recipientField(name: string, list: Mailbox[], eol: string): HeaderField {
  const text = `${name}: ${list.map(formatMailbox).join(`,${eol} `)}${eol}`;
  return { name: name.toLowerCase(), raw: Buffer.from(text, 'utf8').toString('latin1') };
}

/**
 * One mailbox for a header. The display name: as is when plain ASCII (quoted if it has specials),
 * RFC 2047 encoded-words when not. The domain: IDNA A-labels (xn--), which every MTA accepts. A
 * non-ASCII local part has no ASCII form: it is written as UTF-8 (RFC 6532, SMTPUTF8), the only
 * correct spelling (the listener refuses such envelope recipients today; a header may still name one).
 */
export function formatMailbox(m: Mailbox): string {
  const at = m.address.lastIndexOf('@');
  const domain = m.address.slice(at + 1);
  const address = at > 0 ? `${m.address.slice(0, at)}@${asciiDomain(domain) ?? domain}` : m.address;
  if (!m.name) return address;
  return `${formatName(m.name)} <${address}>`;
}

function formatName(name: string): string {
  if (/[^\x20-\x7e]/.test(name)) return encodeWord(name, 'Q', 52);
  if (/^=\?.+\?=$/.test(name)) return name;
  if (/[()<>[\]:;@\\,."]/.test(name)) return `"${name.replace(/(["\\])/g, '\\$1')}"`;
  return name;
}

/** Decodes RFC 2047 encoded-words (=?charset?B|Q?text?=) in a header text; unknown charsets are left as they are. */
export function decodeWords(text: string): string {
  return text.replace(/=\?([^?*]+)(?:\*[^?]*)?\?([BbQq])\?([^?]*)\?=(\s+(?==\?))?/g, (whole, charset: string, kind: string, data: string) => {
    try {
      const bytes = kind.toUpperCase() === 'B' ? Buffer.from(data, 'base64') : Buffer.from(data.replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1');
      return new TextDecoder(charset.trim().toLowerCase()).decode(bytes);
    } catch {
      return whole;
    }
  });
}
