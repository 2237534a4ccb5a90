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
 * Whether an address can be relayed as given: a non-ASCII local part needs SMTPUTF8 end to end
 * (RFC 6531), so only a client that declared it may use one; a domain must be a valid name (IDN
 * domains are fine: they go out in their ASCII form).
 */
export function addressProblem(address: string, smtputf8: boolean): 'non-ascii-local-part' | 'bad-domain' | null {
  const at = address.lastIndexOf('@');
  if (at === -1) return null;
  // eslint-disable-next-line no-control-regex
  if (!smtputf8 && /[^\x00-\x7f]/.test(address.slice(0, at))) return 'non-ascii-local-part';
  return asciiDomain(address.slice(at + 1)) === null ? 'bad-domain' : null;
}

/**
 * Whether an address is one of `entries`: an address (case-insensitive) or "@domain" for that
 * domain exactly (not its subdomains). Entries are lower case, as the configuration stores them.
 */
export function matchesAddressList(entries: readonly string[], address: string): boolean {
  const a = address.trim().toLowerCase();
  if (!a) return false;
  return entries.some((entry) => (entry.startsWith('@') ? a.endsWith(entry) : a === entry));
}
