import type { SMTPServerSession } from 'smtp-server';
import { normalizeAddress } from '../access/index.js';
import { addressKey, canonicalAddress } from '../mail/addresses.js';
import type { ClientInfo, Envelope } from '../spool/types.js';

/** The client's address as policy and logs use it (IPv4-mapped IPv6 as plain IPv4, no zone). */
export function clientAddress(session: SMTPServerSession): string {
  return normalizeAddress(session.remoteAddress ?? '');
}

/**
 * The SMTP envelope as the spool keeps it: '' for the null sender <>, local parts in their own
 * case, domains as lower-case ASCII (IDN as A-labels), each recipient once. onMailFrom and
 * onRcptTo refused every address that has no such form.
 */
export function envelopeOf(session: SMTPServerSession): Envelope {
  const { mailFrom, rcptTo } = session.envelope;
  const to: string[] = [];
  const seen = new Set<string>();
  for (const r of rcptTo) {
    const address = canonicalOrSelf(r.address);
    const key = addressKey(address);
    if (seen.has(key)) continue;
    seen.add(key);
    to.push(address);
  }
  return { from: mailFrom ? canonicalOrSelf(mailFrom.address) : '', to };
}

function canonicalOrSelf(address: string): string {
  const canonical = canonicalAddress(address);
  return 'address' in canonical ? canonical.address : address;
}

/** The authenticated username, if the session has one (smtp-server sets session.user after onAuth). */
export function userOf(session: SMTPServerSession): string | undefined {
  return typeof session.user === 'string' && session.user.length > 0 ? session.user : undefined;
}

/** Who handed us the message, as stored with it: normalized address, user, HELO name, TLS. */
export function clientOf(session: SMTPServerSession): ClientInfo {
  const client: ClientInfo = { address: clientAddress(session), secure: Boolean(session.secure) };
  const user = userOf(session);
  if (user) client.user = user;
  if (session.hostNameAppearsAs) client.helo = session.hostNameAppearsAs;
  return client;
}
