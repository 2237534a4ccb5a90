import { matchesAddressList } from '../mail/addresses.js';
import { findField, fieldValue, parseMailbox, type HeaderBlock, type HeaderField } from './headers.js';

export interface SenderPolicyConfig {
  mailbox: string;
  /** Lower-cased addresses and "@domain" entries the mailbox may send as. */
  sendAs: readonly string[];
}

export interface SenderDecision {
  /** The envelope sender to use upstream. */
  envelopeFrom: string;
  /** Header fields after the policy: From rewritten, Reply-To, Date and Message-ID added as needed. */
  header: HeaderBlock;
  /** What changed, for the log. */
  changes: string[];
}

/** Whether the mailbox may send as this address: itself, a listed address, or a listed @domain. */
export function maySendAs(policy: SenderPolicyConfig, address: string): boolean {
  return matchesAddressList([policy.mailbox.toLowerCase(), ...policy.sendAs], address);
}

/**
 * Exchange Online only accepts senders the mailbox may send as (else 554 5.2.252 SendAsDenied).
 * A device's own address (scanner@printer.local) is replaced with the mailbox, in the envelope and in
 * the From header (display name kept); the original goes into Reply-To so replies still reach it.
 */
export function applySenderPolicy(
  policy: SenderPolicyConfig,
  input: { envelopeFrom: string; header: HeaderBlock; messageId: string; receivedAt: Date },
): SenderDecision {
  const changes: string[] = [];
  const fields: HeaderField[] = [...input.header.fields];
  const eol = input.header.eol;
  const mailbox = policy.mailbox;

  let envelopeFrom = input.envelopeFrom;
  if (!maySendAs(policy, envelopeFrom)) {
    changes.push(`envelope sender ${envelopeFrom || '<>'} -> ${mailbox}`);
    envelopeFrom = mailbox;
  }

  const fromIndex = fields.findIndex((f) => f.name === 'from');
  const fromField = fields[fromIndex];
  const parsedFrom = fromField ? parseMailbox(fieldValue(fromField)) : null;
  if (!fromField) {
    fields.unshift({ name: 'from', raw: `From: ${mailbox}${eol}` });
    changes.push(`From header added: ${mailbox}`);
  } else if (!parsedFrom || !maySendAs(policy, parsedFrom.address)) {
    const original = parsedFrom?.address || input.envelopeFrom;
    const name = parsedFrom?.name ?? '';
    fields[fromIndex] = { name: 'from', raw: `From: ${name ? `${name} ` : ''}<${mailbox}>${eol}` };
    changes.push(`From header ${original || '(unparsable)'} -> ${mailbox}`);
    if (original && !findField(input.header, 'reply-to')) {
      fields.splice(fromIndex + 1, 0, { name: 'reply-to', raw: `Reply-To: ${original}${eol}` });
      changes.push(`Reply-To added: ${original}`);
    }
  }

  if (!fields.some((f) => f.name === 'date')) {
    fields.push({ name: 'date', raw: `Date: ${formatRfc5322Date(input.receivedAt)}${eol}` });
    changes.push('Date added');
  }
  if (!fields.some((f) => f.name === 'message-id')) {
    const domain = mailbox.slice(mailbox.indexOf('@') + 1) || 'm365-relay.local';
    fields.push({ name: 'message-id', raw: `Message-ID: <${input.messageId}@${domain}>${eol}` });
    changes.push('Message-ID added');
  }

  return { envelopeFrom, header: { ...input.header, fields }, changes };
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** "Mon, 23 Nov 2026 07:36:29 +0000" */
export function formatRfc5322Date(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${DAYS[date.getUTCDay()]}, ${date.getUTCDate()} ${MONTHS[date.getUTCMonth()]} ${date.getUTCFullYear()} ${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())} +0000`;
}
