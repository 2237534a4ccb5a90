// Failure notices: when a message fails for good, a delivery status notification (RFC 3464
// multipart/report) goes to its sender, or to an administrator when the sender is a device address
// that cannot receive mail. The notice is queued in the spool like any message and goes out through
// the same upstream. It never answers a notice or a null sender (RFC 5321 4.5.5), so no loop.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Readable } from 'node:stream';
import { accountsOf, type RelayConfig } from '../config/index.js';
import type { Logger } from '../observability/logger.js';
import { senderMatches } from '../routing/index.js';
import type { MessageMeta, Spool } from '../spool/index.js';
import { noMailLog, type MailLogRecorder } from '../maillog/types.js';
import { fieldValue, findField, parseHeaderBlock, readHeaderBlock, serializeHeaderBlock } from './headers.js';
import { formatRfc5322Date } from './senderPolicy.js';
import { accountOf } from './worker.js';

export type FailureNoticeConfig = NonNullable<RelayConfig['failureNotices']>;

/** Who gets the notice for a failed message, or why nobody does. */
export function noticeRecipient(
  meta: Pick<MessageMeta, 'envelope' | 'notice'>,
  notices: FailureNoticeConfig,
  account: { mailbox: string; sendAs: string[] },
): { to: string; why: 'sender' | 'admin' } | { to: null; why: string } {
  if (meta.notice) return { to: null, why: 'the failed message is itself a failure notice' };
  const sender = meta.envelope.from.trim().toLowerCase();
  if (!sender) return { to: null, why: 'null sender (<>): never answered' };
  const admin = notices.adminAddress ?? null;
  if (notices.notify === 'admin') return admin ? { to: admin, why: 'admin' } : { to: null, why: 'notify is admin but adminAddress is not set' };
  if ((notices.localDomains ?? defaultLocalDomains(account)).some((entry) => senderMatches(entry, sender))) return { to: sender, why: 'sender' };
  return admin ? { to: admin, why: 'admin' } : { to: null, why: `the sender ${sender} is a device address and adminAddress is not set` };
}

/** Addresses of the organisation: the mailbox's domain and the domains and addresses it sends as. */
function defaultLocalDomains(account: { mailbox: string; sendAs: string[] }): string[] {
  const domains = new Set<string>([`@${account.mailbox.split('@')[1]?.toLowerCase() ?? ''}`]);
  for (const entry of account.sendAs) domains.add(entry.toLowerCase());
  return [...domains];
}

export interface NoticeInput {
  meta: MessageMeta;
  /** The failed message's header block, as received (for text/rfc822-headers; its line endings are normalised). */
  originalHeaders: Buffer;
  originalSubject: string | null;
  from: string;
  to: string;
  remoteMta: string;
  expired: boolean;
  now: Date;
}

/** The RFC 3464 report: a human part, the machine-readable delivery-status, the original headers. */
export function buildFailureNotice(input: NoticeInput): Buffer {
  const { meta, now } = input;
  const boundary = `=_m365-relay-${randomUUID()}`;
  const host = hostname();
  const failed = meta.recipients.filter((r) => r.status === 'failed');
  const delivered = meta.recipients.filter((r) => r.status === 'delivered');
  const subject = input.originalSubject && /^[\x20-\x7e]*$/.test(input.originalSubject) ? `Undeliverable: ${input.originalSubject}`.slice(0, 900) : 'Undeliverable message';
  const human = [
    `Your message could not be delivered through Microsoft 365 to ${failed.length === 1 ? 'this recipient' : 'these recipients'}:`,
    '',
    ...failed.map((r) => `  ${r.address}: ${r.lastError ?? meta.lastError ?? 'failed'}`),
    ...(delivered.length ? ['', 'It was delivered to:', ...delivered.map((r) => `  ${r.address}`)] : []),
    '',
    `Sender: ${meta.envelope.from || '<>'} (from ${meta.client.address}${meta.client.user ? `, user ${meta.client.user}` : ''})`,
    `Received by m365-relay on ${host} at ${meta.receivedAt}, queue id ${meta.id}.`,
    input.expired ? `The relay kept retrying until the message expired: ${meta.lastError ?? ''}` : `Reason: ${meta.lastError ?? 'permanent failure'}`,
    '',
    'This is an automatic notice; replies to it are not read.',
  ];
  const perRecipient = failed.map((r) =>
    [
      `Final-Recipient: rfc822; ${r.address}`,
      'Action: failed',
      `Status: ${statusOf(r.lastError ?? meta.lastError, input.expired)}`,
      `Remote-MTA: dns; ${input.remoteMta}`,
      ...(r.lastError ? [`Diagnostic-Code: smtp; ${oneLine(r.lastError)}`] : []),
      `Last-Attempt-Date: ${formatRfc5322Date(now)}`,
    ].join('\r\n'),
  );
  const parts = [
    `From: Mail Delivery System <${input.from}>`,
    `To: <${input.to}>`,
    `Subject: ${subject}`,
    `Date: ${formatRfc5322Date(now)}`,
    `Message-ID: <${randomUUID()}@${host}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    '',
    'This is a MIME-encapsulated delivery status notification.',
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    ...human,
    '',
    `--${boundary}`,
    'Content-Type: message/delivery-status',
    '',
    `Reporting-MTA: dns; ${host}`,
    `X-M365-Relay-Queue-ID: ${meta.id}`,
    `Arrival-Date: ${formatRfc5322Date(new Date(meta.receivedAt))}`,
    '',
    perRecipient.join('\r\n\r\n'),
    '',
    `--${boundary}`,
    'Content-Type: text/rfc822-headers',
    '',
  ].join('\r\n');
  return Buffer.concat([Buffer.from(`${parts}\r\n`, 'utf8'), normalizeEol(input.originalHeaders), Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1')]);
}

/** The enhanced status code in the reply (5.1.10), 4.4.7 for an expired message, else 5.0.0. */
function statusOf(reply: string | null | undefined, expired: boolean): string {
  if (expired) return '4.4.7';
  return /\b([45]\.\d{1,3}\.\d{1,3})\b/.exec(reply ?? '')?.[1] ?? '5.0.0';
}

function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').slice(0, 900);
}

function normalizeEol(headers: Buffer): Buffer {
  const text = headers.toString('latin1').replace(/\r?\n/g, '\r\n').replace(/(\r\n)+$/, '');
  return Buffer.from(`${text}\r\n`, 'latin1');
}

/**
 * Queues notices for failed messages. At most once: the failure is recorded first, then the notice
 * is queued; a crash between the two loses the notice, never the failure record.
 */
export class FailureNotifier {
  constructor(
    private readonly spool: Spool,
    private readonly config: () => RelayConfig,
    private readonly logger: Logger,
    private readonly mailLog: MailLogRecorder = noMailLog,
  ) {}

  /** Queues the notice for a failed message; resolves with its queue id, or null when none is sent. */
  async notify(meta: MessageMeta, expired: boolean): Promise<string | null> {
    const config = this.config();
    const notices = config.failureNotices;
    if (!notices) return null;
    // The notice goes out through the account the failed message was routed to (its sendAs decides who is local).
    const account = accountsOf(config).get(accountOf(meta)) ?? config.microsoft365;
    const target = noticeRecipient(meta, notices, account);
    if (!target.to) {
      this.logger.info({ msgId: meta.id, event: 'notice-skipped', reason: target.why }, 'no failure notice');
      return null;
    }
    const block = await readHeaderBlock(this.spool.dataPath(meta.id)).catch(() => null);
    const subjectField = block ? findField(block, 'subject') : undefined;
    const body = buildFailureNotice({
      meta,
      originalHeaders: block ? serializeHeaderBlock(block) : Buffer.alloc(0),
      originalSubject: subjectField ? fieldValue(subjectField).trim() : null,
      from: account.mailbox,
      to: target.to,
      remoteMta: account.transport === 'graph' ? new URL(account.graphHost).host : account.smtpHost,
      expired,
      now: new Date(),
    });
    const incoming = this.spool.incoming();
    try {
      await incoming.write(Readable.from([body]));
      // Null reverse-path: a notice is never answered by another notice (sender policy puts the mailbox upstream).
      await incoming.commit({ envelope: { from: '', to: [target.to] }, client: { address: 'local', helo: 'failure-notice' }, notice: { for: meta.id }, ...(meta.route && { route: meta.route }) });
    } catch (err) {
      await incoming.abort();
      this.logger.error({ msgId: meta.id, event: 'notice-failed', err: (err as Error).message }, 'could not queue the failure notice');
      return null;
    }
    this.logger.info({ msgId: meta.id, event: 'notice-queued', noticeId: incoming.id, to: target.to, recipient: target.why }, 'failure notice queued');
    const at = Date.now();
    const head = parseHeaderBlock(body);
    const header = (name: string) => {
      const field = findField(head, name);
      return field ? fieldValue(field) : null;
    };
    this.mailLog.record({
      id: incoming.id,
      at,
      kind: 'received',
      detail: { noticeFor: meta.id, clientAddress: 'local', listener: 'local', size: body.length },
      facts: {
        receivedAt: at,
        sender: '',
        recipients: [target.to],
        size: body.length,
        messageId: header('message-id'),
        subject: header('subject'),
        clientAddress: 'local',
        clientName: 'failure-notice',
        user: null,
        listener: 'local',
        tls: false,
        account: accountOf(meta),
      },
    });
    return incoming.id;
  }
}
