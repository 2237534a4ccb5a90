import type { SMTPServerSession } from 'smtp-server';
import { normalizeAddress } from '../access/index.js';
import { addressKey } from '../mail/addresses.js';
import type { ClientInfo, Envelope } from '../spool/types.js';

/** The client's address as policy and logs use it (IPv4-mapped IPv6 as plain IPv4, no zone). */
export function clientAddress(session: SMTPServerSession): string {
  return normalizeAddress(session.remoteAddress ?? '');
}

/**
 * The SMTP envelope as the client gave it: '' for the null sender <>, addresses in their own case,
 * each mailbox once (user@bücher.de and user@XN--BCHER-KVA.DE are one: the first spelling stays).
 */
export function envelopeOf(session: SMTPServerSession): Envelope {
  const { mailFrom, rcptTo } = session.envelope;
  const to: string[] = [];
  const seen = new Set<string>();
  for (const r of rcptTo) {
    const key = addressKey(r.address);
    if (seen.has(key)) continue;
    seen.add(key);
    to.push(r.address);
  }
  return { from: mailFrom ? mailFrom.address : '', to };
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
