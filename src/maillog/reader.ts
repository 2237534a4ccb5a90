import { existsSync } from 'node:fs';
import { openSqlite, type SqlDatabase, type SqlValue } from './sqlite.js';
import { addressNeedle, messageKey } from './keys.js';
import { SCHEMA_VERSION } from './schema.js';
import { MAIL_LOG_STATES, type MailLogEvent, type MailLogEventKind, type MailLogFilter, type MailLogMessage, type MailLogState } from './types.js';

export const DEFAULT_SEARCH_LIMIT = 50;
const HOUR_MS = 3_600_000;

/** The mail log cannot be read (missing, not a database, from a newer relay): the message says what to do. */
export class MailLogUnavailableError extends Error {
  override readonly name = 'MailLogUnavailableError';
}

interface MessageRow {
  id: string;
  received_at: number;
  state: MailLogState;
  updated_at: number;
  sender: string;
  recipients: string;
  size: number;
  message_id: string | null;
  subject: string | null;
  client_address: string;
  client_name: string | null;
  user: string | null;
  listener: string;
  tls: number;
  account: string | null;
  last_reply: string | null;
  parent: string | null;
}

/** A search as SQL: the WHERE clause and its parameters (pure, so that it is tested by tables). */
export function searchQuery(filter: MailLogFilter): { sql: string; params: SqlValue[] } {
  const where: string[] = [];
  const params: SqlValue[] = [];
  const add = (clause: string, ...values: SqlValue[]) => {
    where.push(clause);
    params.push(...values);
  };
  const address = (text: string, exact: string, part: string) => {
    const needle = addressNeedle(text);
    if ('exact' in needle) add(exact, needle.exact);
    else add(`(${needle.part.map(() => part).join(' OR ')})`, ...needle.part);
  };
  if (filter.to !== undefined) {
    address(filter.to, 'id IN (SELECT message FROM recipients WHERE address_key = ?)', 'id IN (SELECT message FROM recipients WHERE instr(address_key, ?) > 0)');
  }
  if (filter.from !== undefined) address(filter.from, 'sender_key = ?', 'instr(sender_key, ?) > 0');
  // A split message's id (the one its client was given) finds each of its parts too.
  if (filter.id !== undefined) add('(id = ? OR parent = ?)', filter.id.trim(), filter.id.trim());
  if (filter.messageId !== undefined) add('message_key = ?', messageKey(filter.messageId));
  if (filter.subject !== undefined) add('instr(fold(subject), ?) > 0', fold(filter.subject));
  if (filter.state !== undefined) add('state = ?', filter.state);
  if (filter.account !== undefined) add('account = ?', filter.account);
  if (filter.since !== undefined) add('received_at >= ?', filter.since);
  if (filter.until !== undefined) add('received_at <= ?', filter.until);
  params.push(Math.max(0, Math.floor(filter.limit ?? DEFAULT_SEARCH_LIMIT)));
  return {
    sql: `SELECT * FROM messages${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY received_at DESC, id DESC LIMIT ?`,
    params,
  };
}

/** Case folding for subject search (SQLite's own lower() knows only ASCII). */
function fold(text: string): string {
  return text.normalize('NFC').toLowerCase();
}

/**
 * Reads the mail log, read-only: safe while the daemon writes (WAL readers never block the writer,
 * nor it them). Used by `m365-relay log` and by the console inside the daemon.
 */
export class MailLogReader {
  private constructor(private readonly db: SqlDatabase) {}

  /**
   * Throws MailLogUnavailableError when the file is missing or not a mail log. `busyTimeoutMs`: how
   * long a query may wait for a lock (rare in WAL mode); keep it short inside the daemon.
   */
  static open(path: string, options: { busyTimeoutMs?: number } = {}): MailLogReader {
    if (!existsSync(path)) {
      throw new MailLogUnavailableError(`there is no mail log at ${path} yet (the relay creates it when it starts with mailLog enabled; check mailLog.path)`);
    }
    let db: SqlDatabase;
    try {
      db = openSqlite(path, { readOnly: true, busyTimeoutMs: options.busyTimeoutMs ?? 2_000 });
    } catch (err) {
      throw new MailLogUnavailableError(`cannot open the mail log ${path}: ${(err as Error).message} (run this as the relay's user, or one that may read the file)`, { cause: err });
    }
    try {
      const version = Number(db.pragma('user_version'));
      if (version === 0) throw new MailLogUnavailableError(`${path} holds no mail log yet (the relay has not written it)`);
      if (version > SCHEMA_VERSION) throw new MailLogUnavailableError(`the mail log ${path} was written by a newer m365-relay (schema ${version}); use that version to read it`);
      db.defineFunction('fold', (text) => (typeof text === 'string' ? fold(text) : null));
    } catch (err) {
      db.close();
      if (err instanceof MailLogUnavailableError) throw err;
      throw new MailLogUnavailableError(`${path} is not a readable mail log: ${(err as Error).message}`, { cause: err });
    }
    return new MailLogReader(db);
  }

  /** Matching messages, newest first (by the time they were received). */
  search(filter: MailLogFilter): MailLogMessage[] {
    const { sql, params } = searchQuery(filter);
    return (this.db.prepare(sql).all(...params) as MessageRow[]).map(toMessage);
  }

  /** One message and its whole history, oldest event first; null when the mail log does not know it. */
  show(id: string): { message: MailLogMessage; events: MailLogEvent[] } | null {
    const row = this.db.prepare('SELECT * FROM messages WHERE id = ?').get(id.trim()) as MessageRow | undefined;
    if (!row) return null;
    const events = (this.db.prepare('SELECT at, kind, detail FROM events WHERE message = ? ORDER BY at, rowid').all(row.id) as Array<{ at: number; kind: string; detail: string }>).map(
      (e): MailLogEvent => ({ at: e.at, kind: e.kind as MailLogEventKind, detail: parseDetail(e.detail) }),
    );
    return { message: toMessage(row), events };
  }

  /** Messages delivered and failed per hour (hours start on the hour, UTC), every hour of the range present. */
  perHour(sinceMs: number, untilMs: number): Array<{ hourStart: number; delivered: number; failed: number }> {
    const first = Math.floor(sinceMs / HOUR_MS) * HOUR_MS;
    const rows = this.db
      .prepare(
        `SELECT (at / ${HOUR_MS}) * ${HOUR_MS} AS hour, kind, count(DISTINCT message) AS n FROM events
         WHERE kind IN ('delivered', 'failed') AND at >= ? AND at < ? GROUP BY hour, kind`,
      )
      .all(first, untilMs) as Array<{ hour: number; kind: 'delivered' | 'failed'; n: number }>;
    const hours = new Map<number, { hourStart: number; delivered: number; failed: number }>();
    for (let h = first; h < untilMs; h += HOUR_MS) hours.set(h, { hourStart: h, delivered: 0, failed: 0 });
    for (const row of rows) {
      const slot = hours.get(row.hour);
      if (slot) slot[row.kind] = row.n;
    }
    return [...hours.values()];
  }

  /** Messages per state, as the mail log last saw them; every state present. */
  stateCounts(): Record<MailLogState, number> {
    const counts = Object.fromEntries(MAIL_LOG_STATES.map((s) => [s, 0])) as Record<MailLogState, number>;
    for (const row of this.db.prepare('SELECT state, count(*) AS n FROM messages GROUP BY state').all() as Array<{ state: MailLogState; n: number }>) {
      if (row.state in counts) counts[row.state] = row.n;
    }
    return counts;
  }

  close(): void {
    this.db.close();
  }
}

function toMessage(row: MessageRow): MailLogMessage {
  return {
    id: row.id,
    receivedAt: row.received_at,
    state: row.state,
    updatedAt: row.updated_at,
    sender: row.sender,
    recipients: parseList(row.recipients),
    size: row.size,
    messageId: row.message_id,
    subject: row.subject,
    clientAddress: row.client_address,
    clientName: row.client_name,
    user: row.user,
    listener: row.listener,
    tls: row.tls === 1,
    account: row.account,
    lastReply: row.last_reply,
    parent: row.parent,
  };
}

function parseList(text: string): string[] {
  try {
    const value = JSON.parse(text) as unknown;
    return Array.isArray(value) ? value.map(String) : [];
  } catch {
    return [];
  }
}

function parseDetail(text: string): Record<string, unknown> {
  try {
    const value = JSON.parse(text) as unknown;
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
