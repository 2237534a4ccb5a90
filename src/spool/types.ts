/** The SMTP envelope as the device gave it. `from` is '' for the null sender (<>). */
export interface Envelope {
  from: string;
  to: string[];
}

/** Who handed us the message: kept in the metadata for logs and routing. */
export interface ClientInfo {
  address: string;
  user?: string;
  helo?: string;
  /** Whether the client used TLS (STARTTLS) on the listener. */
  secure?: boolean;
}

/**
 * Which Microsoft 365 account delivers the message, chosen once when it was queued: a reload of
 * `routes` does not reroute mail already queued.
 */
export interface MessageRoute {
  /** `default` or a name from `accounts`. */
  account: string;
  /** The rule that chose it, e.g. "user scanner", or "default" when none matched. */
  rule: string;
}

export type RecipientStatus = 'pending' | 'delivered' | 'failed';

export interface RecipientState {
  address: string;
  status: RecipientStatus;
  lastError?: string;
}

/** Where a message is: the directory its metadata file lives in. */
export type SpoolState = 'queued' | 'deferred' | 'active' | 'failed' | 'hold';

/**
 * Everything the relay knows about a message besides its bytes. Stored as one small JSON file
 * whose directory is the message's state; the raw MIME lives in data/<id>.eml and never changes.
 */
export interface MessageMeta {
  version: 1;
  id: string;
  envelope: Envelope;
  recipients: RecipientState[];
  client: ClientInfo;
  size: number;
  receivedAt: string;
  attempts: number;
  /** ISO time of the next delivery attempt; null means "as soon as possible". */
  nextAttemptAt: string | null;
  lastError: string | null;
  /** Absent in messages queued before routing existed: they go to the default account. */
  route?: MessageRoute;
  /** Set once the message is failed for good. */
  failedAt?: string;
  /** Set when an administrator put a failed message back: its lifetime (retry.maxAge) restarts here. */
  requeuedAt?: string;
  /** Set on a failure notice the relay generated: the id of the message that failed. Never noticed itself. */
  notice?: { for: string };
  /**
   * Set on one part of a message whose recipients were routed to different accounts: `parent` is
   * the id the client was given (250 ... queued as <parent>), `part` counts from 1 of `of`. Each
   * part is a queue entry of its own, with its own recipients (envelope.to) and its own outcome.
   */
  split?: { parent: string; part: number; of: number };
}

/** What the listener (or the relay itself, for a notice) knows when a message is committed. */
export interface CommitInput {
  envelope: Envelope;
  client: ClientInfo;
  /** The account chosen by `routes` (absent: default). */
  route?: MessageRoute;
  notice?: { for: string };
  /**
   * The recipients by account, when they take different routes: one queue entry per part, all
   * made durable together (see Spool.commitSplit). One part, or none, is the usual single entry.
   */
  parts?: Array<{ route: MessageRoute; to: string[] }>;
}
