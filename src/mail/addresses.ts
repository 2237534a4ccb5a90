import { domainToASCII } from 'node:url';

/**
 * Which mailbox an address names, for matching. nodemailer sends an IDN domain in its ASCII form
 * (user@bücher.de goes out as user@xn--bcher-kva.de) and reports it that way; domains are
 * case-insensitive, and smtp-server and Exchange Online fold the local part's case too. Outcomes
 * are matched to recipients by this key, never by the exact string a library returns.
 */
export function addressKey(address: string): string {
  const at = address.lastIndexOf('@');
  if (at === -1) return address.normalize('NFC').toLowerCase();
  const local = address.slice(0, at).normalize('NFC').toLowerCase();
  return `${local}@${asciiDomain(address.slice(at + 1)) ?? address.slice(at + 1).toLowerCase()}`;
}

/** The domain in lower-case ASCII (IDN as A-labels), or null when it is not a valid domain name. */
export function asciiDomain(domain: string): string | null {
  // Address literals ([192.0.2.1]) are not domain names; keep them as they are.
  if (domain.startsWith('[')) return domain.toLowerCase();
  const ascii = domainToASCII(domain);
  return ascii === '' ? null : ascii.toLowerCase();
}

/**
 * The form the spool keeps: the domain as lower-case ASCII, so every later step (sending,
 * matching, logging, per-domain routing) sees one spelling. Null when the address cannot be sent
 * without SMTPUTF8 (a non-ASCII local part) or its domain is not a valid name.
 */
export function canonicalAddress(address: string): { address: string } | { problem: 'non-ascii-local-part' | 'bad-domain' } {
  const at = address.lastIndexOf('@');
  if (at === -1) return { address };
  const local = address.slice(0, at);
  // eslint-disable-next-line no-control-regex
  if (/[^\x00-\x7f]/.test(local)) return { problem: 'non-ascii-local-part' };
  const domain = asciiDomain(address.slice(at + 1));
  return domain === null ? { problem: 'bad-domain' } : { address: `${local}@${domain}` };
}
