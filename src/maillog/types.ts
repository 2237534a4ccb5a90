/** Where a message is, as the mail log last saw it (the spool stays the truth about the queue). */
export type MailLogState = 'queued' | 'deferred' | 'delivered' | 'failed' | 'held' | 'deleted';

export const MAIL_LOG_STATES: readonly MailLogState[] = ['queued', 'deferred', 'delivered', 'failed', 'held', 'deleted'];

/** The states `log --state` and the console search by. */
export type SearchableState = 'delivered' | 'deferred' | 'failed' | 'held';
export const SEARCHABLE_STATES: readonly SearchableState[] = ['delivered', 'deferred', 'failed', 'held'];

export interface MailLogFilter {
  /** A recipient: a full address matches that mailbox (any case, IDN in either form); other text matches part of an address. */
  to?: string;
  /** The envelope sender, matched like `to`. */
  from?: string;
  /** The queue id (exact). */
  id?: string;
  /** The Message-ID header, with or without angle brackets. */
  messageId?: string;
  /** Part of the subject, any case. */
  subject?: string;
  state?: SearchableState;
  /** Received at or after (ms since epoch). */
  since?: number;
  /** Received at or before (ms since epoch). */
  until?: number;
  /** At most this many, newest first; default 50. */
  limit?: number;
  /** The Microsoft 365 account the message was routed to. */
  account?: string;
}

/** One row per queue id. */
export interface MailLogMessage {
  id: string;
  receivedAt: number;
  state: MailLogState;
  updatedAt: number;
  sender: string;
  recipients: string[];
  size: number;
  messageId: string | null;
  subject: string | null;
  clientAddress: string;
  clientName: string | null;
  user: string | null;
  listener: string;
  tls: boolean;
  account: string | null;
  lastReply: string | null;
}

export type MailLogEventKind = 'received' | 'attempt' | 'deferred' | 'delivered' | 'failed' | 'held' | 'released' | 'deleted' | 'retry' | 'restored' | 'admin';

export interface MailLogEvent {
  /** ms since epoch */
  at: number;
  kind: MailLogEventKind;
  /**
   * received: {clientAddress, clientName, user, listener, tls, size, account, route} (a failure
   * notice: {noticeFor, clientAddress: 'local', listener: 'local', size});
   * attempt: {account, transport, reply, durationMs, upstreamId, to, rejected?: [{address, reason}]};
   * deferred: {reason, class, to, attempts, nextAttemptAt, accountHold?}; delivered: {to, reply, upstreamId};
   * failed: {reason, class, expired, to, noticeSent, noticeId?}; admin: {user, action};
   * held/released/deleted/retry/restored: {user}.
   */
  detail: Record<string, unknown>;
}

/**
 * What is known about a message when it is queued: enough to make its row. Worker events carry
 * it too, so that a message queued while the mail log was unavailable (or a failure notice, which
 * never passes the listener) still gets a row.
 */
export type MessageFacts = Omit<MailLogMessage, 'id' | 'state' | 'updatedAt' | 'lastReply'>;

/** One thing that happened to a message, as the relay's parts report it to the mail log. */
export interface MailLogEntry {
  id: string;
  at: number;
  kind: MailLogEventKind;
  detail: Record<string, unknown>;
  /** Makes the message's row when it has none yet. */
  facts?: MessageFacts;
  /** The last upstream reply, kept on the row for search results. */
  lastReply?: string;
  /** The account that last tried the message. */
  account?: string;
}

/**
 * How the relay's parts report to the mail log. Never throws and never waits: the entry is queued
 * in memory and written in the background (see MailLogWriter).
 */
export interface MailLogRecorder {
  record(entry: MailLogEntry): void;
}

/** For a relay without a mail log (mailLog.enabled: false) and for parts used on their own. */
export const noMailLog: MailLogRecorder = { record: () => undefined };
