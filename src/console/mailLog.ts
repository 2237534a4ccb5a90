// The part of the mail log (src/maillog, see its MailLogReader) the console reads. Written against
// the agreed interface; replaced by the module's own types once it is merged.
export type MailLogState = 'queued' | 'deferred' | 'delivered' | 'failed' | 'held' | 'deleted';

export interface MailLogFilter {
  to?: string;
  from?: string;
  id?: string;
  messageId?: string;
  subject?: string;
  state?: 'delivered' | 'deferred' | 'failed' | 'held';
  since?: number;
  until?: number;
  limit?: number;
  account?: string;
}

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

export interface MailLogEvent {
  at: number;
  kind: 'received' | 'attempt' | 'deferred' | 'delivered' | 'failed' | 'held' | 'released' | 'deleted' | 'retry' | 'restored' | 'admin';
  detail: Record<string, unknown>;
}

export interface MailLogQueries {
  search(filter: MailLogFilter): MailLogMessage[];
  show(id: string): { message: MailLogMessage; events: MailLogEvent[] } | null;
  perHour(sinceMs: number, untilMs: number): Array<{ hourStart: number; delivered: number; failed: number }>;
  stateCounts(): Record<MailLogState, number>;
}
