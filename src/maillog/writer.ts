import { chmodSync, closeSync, fchmodSync, mkdirSync, openSync, renameSync } from 'node:fs';
import { dirname } from 'node:path';
import { openSqlite, sqliteCode, type SqlDatabase } from './sqlite.js';
import { formatDuration } from '../config/duration.js';
import type { Logger } from '../observability/logger.js';
import { addressSearchKey, messageKey } from './keys.js';
import { migrate, stateAfter } from './schema.js';
import type { MailLogEntry, MailLogRecorder } from './types.js';

export interface MailLogWriterOptions {
  path: string;
  /** Messages whose last event is older than this are pruned (mailLog.retention). */
  retentionMs: number;
  /** mailLog.recordSubjects: false keeps subjects out of the file. */
  recordSubjects: boolean;
  logger: Logger;
  /** Wall clock (ms since epoch) for pruning and retries; injectable for tests. */
  now?: () => number;
  /** Entries are written together, at most this long after the first of them. */
  flushMs?: number;
  /** Entries kept in memory while the file cannot be written; beyond, the oldest are dropped. */
  maxPending?: number;
  /** How often retention is enforced. */
  pruneEveryMs?: number;
}

const DEFAULTS = { flushMs: 100, maxPending: 20_000, pruneEveryMs: 60 * 60_000 };
/** Entries written per transaction: one tick never holds the event loop long; the rest follow at the next. */
const WRITE_BATCH = 200;
/** Messages removed per pruning transaction; a full batch schedules the next one soon. */
const PRUNE_BATCH = 2_000;
/** After a failed write or open, the next try waits this long (doubling). */
const RETRY_MS = { first: 5_000, max: 60_000 };
/** A failing mail log is reported at most this often. */
const ERROR_REPORT_EVERY_MS = 5 * 60_000;
/** Errors meaning the file is not a usable database: it is moved aside and a new one started. */
const BROKEN_FILE = new Set(['SQLITE_CORRUPT', 'SQLITE_NOTADB']);

type Statements = ReturnType<typeof prepare>;

/**
 * The daemon's side of the mail log: the only writer. Entries are queued in memory by record()
 * (never blocking, never throwing) and written in one transaction per tick. Any SQLite or file
 * error (read-only, full, corrupt, missing directory) is logged, rate-limited, and retried later
 * with the entries kept in memory (bounded): the mail log is a record, never on the mail's path.
 */
export class MailLogWriter implements MailLogRecorder {
  private db: SqlDatabase | null = null;
  private statements: Statements | null = null;
  private pending: MailLogEntry[] = [];
  private dropped = 0;
  private flushTimer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private pruneTimer: NodeJS.Timeout | null = null;
  private retryAt = 0;
  private retryDelay = RETRY_MS.first;
  private failing = false;
  private lastReportAt = -Infinity;
  private unreported = 0;
  private closed = false;
  private readonly now: () => number;
  private readonly settings: typeof DEFAULTS;

  constructor(private options: MailLogWriterOptions) {
    this.now = options.now ?? Date.now;
    this.settings = { ...DEFAULTS, ...definedOnly(options) };
  }

  get path(): string {
    return this.options.path;
  }

  /** Opens (or creates) the file and starts pruning; a failure is logged and retried, never thrown. */
  start(): void {
    this.open();
    this.pruneTimer = setInterval(() => this.prune(), this.settings.pruneEveryMs);
    this.pruneTimer.unref();
  }

  /** A reload: retention and recordSubjects apply from now on (the file's place needs a restart). */
  reconfigure(next: { retentionMs: number; recordSubjects: boolean }): void {
    this.options = { ...this.options, ...next };
  }

  record(entry: MailLogEntry): void {
    if (this.closed) return;
    const kept = !this.options.recordSubjects && entry.facts?.subject ? { ...entry, facts: { ...entry.facts, subject: null } } : entry;
    if (this.pending.length >= this.settings.maxPending) {
      this.pending.shift();
      this.dropped++;
    }
    this.pending.push(kept);
    this.scheduleFlush(this.settings.flushMs);
  }

  /**
   * Writes what is pending: everything (at close, or before the console reads), or one batch per
   * tick (the timer), so that a backlog never holds the event loop for long.
   */
  flush(all = true): void {
    while (this.pending.length > 0) {
      if (!this.db && !this.reopen()) return;
      const db = this.db;
      const statements = this.statements;
      if (!db || !statements) return;
      const batch = this.pending.slice(0, WRITE_BATCH);
      try {
        db.transaction(() => {
          for (const entry of batch) writeEntry(statements, entry);
        })();
      } catch (err) {
        this.fail('write', err);
        return;
      }
      this.pending.splice(0, batch.length);
      this.recovered();
      if (!all) {
        // The rest after whatever else is waiting on the event loop (accepting, delivering).
        if (this.pending.length > 0 && !this.immediate) {
          this.immediate = setImmediate(() => {
            this.immediate = null;
            this.flush(false);
          });
        }
        return;
      }
    }
  }

  /** Removes messages (and their events) whose last event is older than the retention. Returns how many. */
  prune(): number {
    if (this.closed || (!this.db && !this.reopen())) return 0;
    const statements = this.statements;
    const db = this.db;
    if (!db || !statements) return 0;
    const cutoff = this.now() - this.options.retentionMs;
    try {
      const removed = db.transaction(() => {
        const ids = (statements.expired.all(cutoff, PRUNE_BATCH) as Array<{ id: string }>).map((row) => row.id);
        for (const id of ids) {
          statements.deleteEvents.run(id);
          statements.deleteRecipients.run(id);
          statements.deleteMessage.run(id);
        }
        statements.deleteOrphanEvents.run(cutoff, PRUNE_BATCH);
        return ids.length;
      })();
      // More than one batch expired (a first start with retention shortened): go on soon, in steps.
      if (removed === PRUNE_BATCH) setTimeout(() => this.prune(), 1_000).unref();
      return removed;
    } catch (err) {
      this.fail('prune', err);
      return 0;
    }
  }

  /** Writes what is pending (once, without retrying) and closes the file. */
  close(): void {
    if (this.closed) return;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    if (this.immediate) clearImmediate(this.immediate);
    this.immediate = null;
    this.flushTimer = this.pruneTimer = null;
    this.retryAt = 0;
    this.flush();
    if (this.pending.length > 0) {
      this.options.logger.warn({ event: 'maillog-error', path: this.path, lost: this.pending.length }, `stopping with ${this.pending.length} mail log record(s) that could not be written`);
    }
    this.closed = true;
    this.pending = [];
    this.closeDb();
  }

  private scheduleFlush(delayMs: number): void {
    if (this.flushTimer || this.closed) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      this.flush(false);
    }, delayMs);
    this.flushTimer.unref();
  }

  /** Opens the file unless a recent failure says to wait; schedules the next try when it cannot. */
  private reopen(): boolean {
    const wait = this.retryAt - this.now();
    if (wait > 0) {
      this.scheduleFlush(wait);
      return false;
    }
    return this.open();
  }

  private open(): boolean {
    const { path } = this.options;
    let db: SqlDatabase | null = null;
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      // Created 0600 before SQLite opens it: SQLite gives the -wal and -shm files the database's mode.
      const fd = openSync(path, 'a', 0o600);
      try {
        fchmodSync(fd, 0o600);
      } finally {
        closeSync(fd);
      }
      for (const suffix of ['-wal', '-shm']) tightenMode(`${path}${suffix}`);
      // No busy wait: the only other writer would be a person's sqlite3 shell; then retry later, never stall the relay.
      db = openSqlite(path, { busyTimeoutMs: 0 });
      db.pragma('journal_mode = WAL');
      // A log: losing the last records at a power cut is acceptable, an fsync per batch is not needed.
      db.pragma('synchronous = NORMAL');
      db.pragma('journal_size_limit = 16777216');
      migrate(db);
      this.statements = prepare(db);
      this.db = db;
      return true;
    } catch (err) {
      db?.close();
      this.fail('open', err);
      return false;
    }
  }

  private closeDb(): void {
    try {
      this.db?.close();
    } catch {
      // closing a broken connection: nothing more to do
    }
    this.db = null;
    this.statements = null;
  }

  private fail(step: 'open' | 'write' | 'prune', err: unknown): void {
    this.closeDb();
    const code = sqliteCode(err);
    if (BROKEN_FILE.has(code)) {
      const aside = `${this.path}.broken-${new Date(this.now()).toISOString().replace(/[:.]/g, '-')}`;
      for (const suffix of ['', '-wal', '-shm']) moveAside(`${this.path}${suffix}`, `${aside}${suffix}`);
      this.options.logger.error({ event: 'maillog-error', step, path: this.path, movedTo: aside, err }, `the mail log is not a usable database; moved it to ${aside} and started a new one`);
      this.retryAt = 0;
      this.scheduleFlush(this.settings.flushMs);
      return;
    }
    this.failing = true;
    this.retryAt = this.now() + this.retryDelay;
    const retryIn = this.retryDelay;
    this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MS.max);
    if (this.pending.length > 0) this.scheduleFlush(retryIn);
    if (this.now() - this.lastReportAt < ERROR_REPORT_EVERY_MS) {
      this.unreported++;
      return;
    }
    this.lastReportAt = this.now();
    this.options.logger.error(
      { event: 'maillog-error', step, path: this.path, code, err, pending: this.pending.length, dropped: this.dropped, unreported: this.unreported, retryIn: formatDuration(retryIn) },
      `the mail log cannot be written (${(err as Error)?.message ?? String(err)}): mail is still accepted and delivered; records wait in memory and are written once it works again (check the disk and the file's permissions)`,
    );
    this.unreported = 0;
  }

  /** A write went through after failures: say so once. */
  private recovered(): void {
    this.retryDelay = RETRY_MS.first;
    if (!this.failing) return;
    this.failing = false;
    this.options.logger.info({ event: 'maillog-recovered', path: this.path, dropped: this.dropped }, this.dropped > 0 ? `the mail log is written again; ${this.dropped} record(s) were lost meanwhile` : 'the mail log is written again; nothing was lost');
    this.dropped = 0;
  }
}

function prepare(db: SqlDatabase) {
  return {
    insertMessage: db.prepare(`INSERT OR IGNORE INTO messages
      (id, received_at, state, updated_at, sender, sender_key, recipients, size, message_id, message_key, subject, client_address, client_name, user, listener, tls, account, last_reply, parent)
      VALUES (@id, @receivedAt, 'queued', @receivedAt, @sender, @senderKey, @recipients, @size, @messageId, @messageKey, @subject, @clientAddress, @clientName, @user, @listener, @tls, @account, NULL, @parent)`),
    insertRecipient: db.prepare('INSERT OR IGNORE INTO recipients (message, address_key) VALUES (?, ?)'),
    insertEvent: db.prepare('INSERT INTO events (message, at, kind, detail) VALUES (?, ?, ?, ?)'),
    update: db.prepare(`UPDATE messages SET state = coalesce(@state, state), updated_at = max(updated_at, @at),
      last_reply = coalesce(@lastReply, last_reply), account = coalesce(@account, account) WHERE id = @id`),
    expired: db.prepare('SELECT id FROM messages WHERE updated_at < ? LIMIT ?'),
    deleteEvents: db.prepare('DELETE FROM events WHERE message = ?'),
    deleteRecipients: db.prepare('DELETE FROM recipients WHERE message = ?'),
    deleteMessage: db.prepare('DELETE FROM messages WHERE id = ?'),
    // Events of messages that never had a row (an action on a message queued before the mail log existed).
    deleteOrphanEvents: db.prepare(
      'DELETE FROM events WHERE rowid IN (SELECT e.rowid FROM events e LEFT JOIN messages m ON m.id = e.message WHERE m.id IS NULL AND e.at < ? LIMIT ?)',
    ),
  };
}

function writeEntry(s: Statements, entry: MailLogEntry): void {
  const { facts } = entry;
  if (facts) {
    const inserted = s.insertMessage.run({
      id: entry.id,
      receivedAt: facts.receivedAt,
      sender: facts.sender,
      senderKey: facts.sender === '' ? '' : addressSearchKey(facts.sender),
      recipients: JSON.stringify(facts.recipients),
      size: facts.size,
      messageId: facts.messageId,
      messageKey: facts.messageId === null ? null : messageKey(facts.messageId),
      subject: facts.subject,
      clientAddress: facts.clientAddress,
      clientName: facts.clientName,
      user: facts.user,
      listener: facts.listener,
      tls: facts.tls ? 1 : 0,
      account: facts.account,
      parent: facts.parent,
    });
    if (inserted.changes > 0) for (const r of facts.recipients) s.insertRecipient.run(entry.id, addressSearchKey(r));
  }
  s.insertEvent.run(entry.id, entry.at, entry.kind, JSON.stringify(entry.detail));
  s.update.run({ id: entry.id, state: stateAfter(entry.kind), at: entry.at, lastReply: entry.lastReply ?? null, account: entry.account ?? null });
}

function tightenMode(path: string): void {
  try {
    chmodSync(path, 0o600);
  } catch {
    // absent until SQLite makes it (then with the database's mode)
  }
}

function moveAside(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch {
    // -wal and -shm may not exist
  }
}

function definedOnly(options: MailLogWriterOptions): Partial<typeof DEFAULTS> {
  const out: Partial<typeof DEFAULTS> = {};
  if (options.flushMs !== undefined) out.flushMs = options.flushMs;
  if (options.maxPending !== undefined) out.maxPending = options.maxPending;
  if (options.pruneEveryMs !== undefined) out.pruneEveryMs = options.pruneEveryMs;
  return out;
}
