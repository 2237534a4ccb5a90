import type { MessageMeta } from '../spool/types.js';
import type { MessageFacts } from './types.js';

/**
 * A message's row from its spool metadata alone, for records of messages the listener did not
 * report (failure notices, or mail queued while the mail log was unavailable): no subject, and
 * the Message-ID only when the caller read it.
 */
export function factsOfMeta(meta: MessageMeta, messageId: string | null = null): MessageFacts {
  const local = meta.client.address === 'local';
  return {
    receivedAt: Date.parse(meta.receivedAt),
    sender: meta.envelope.from,
    recipients: meta.envelope.to,
    size: meta.size,
    messageId,
    subject: null,
    clientAddress: meta.client.address,
    clientName: meta.client.helo ?? null,
    user: meta.client.user ?? null,
    listener: local ? 'local' : 'unknown',
    tls: Boolean(meta.client.secure),
    account: meta.route?.account ?? 'default',
  };
}
