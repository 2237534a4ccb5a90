import { addressKey, asciiDomain } from '../mail/addresses.js';

/** A Message-ID as searched: without angle brackets or surrounding space, any case. */
export function messageKey(messageId: string): string {
  return messageId.trim().replace(/^<\s*/, '').replace(/\s*>$/, '').toLowerCase();
}

/** An address as stored for search: the mailbox key (lower case, IDN domain as A-labels). */
export const addressSearchKey = addressKey;

/**
 * How a search text matches addresses: a full address ("bob@contoso.com", any case, IDN in either
 * form) names that mailbox exactly; anything else ("@contoso.com", "bob", "bücher.de") matches
 * part of an address. Returns the forms to look for.
 */
export function addressNeedle(text: string): { exact: string } | { part: string[] } {
  const trimmed = text.trim();
  const at = trimmed.lastIndexOf('@');
  if (at > 0 && at < trimmed.length - 1) return { exact: addressKey(trimmed) };
  const lower = trimmed.normalize('NFC').toLowerCase();
  const forms = new Set([lower]);
  // A Unicode domain (or part of one) is stored in its A-label form.
  const domain = at === -1 ? lower : lower.slice(at + 1);
  // eslint-disable-next-line no-control-regex
  if (/[^\x00-\x7f]/.test(domain)) {
    const ascii = asciiDomain(domain);
    if (ascii) forms.add(at === -1 ? ascii : `@${ascii}`);
  }
  return { part: [...forms] };
}
