import type { SqlDatabase } from './sqlite.js';
import type { MailLogEventKind, MailLogState } from './types.js';

/**
 * The mail log's tables. Version 1; a later version migrates in migrate() (PRAGMA user_version).
 * Keys (sender_key, recipients.address_key, message_key) are the searchable forms: lower case,
 * IDN domains as A-labels, Message-ID without angle brackets.
 */
const SCHEMA_V1 = `
CREATE TABLE IF NOT EXISTS messages (
  id TEXT PRIMARY KEY,
  received_at INTEGER NOT NULL,
  state TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  sender TEXT NOT NULL,
  sender_key TEXT NOT NULL,
  recipients TEXT NOT NULL,
  size INTEGER NOT NULL,
  message_id TEXT,
  message_key TEXT,
  subject TEXT,
  client_address TEXT NOT NULL,
  client_name TEXT,
  user TEXT,
  listener TEXT NOT NULL,
  tls INTEGER NOT NULL,
  account TEXT,
  last_reply TEXT,
  parent TEXT
);
CREATE INDEX IF NOT EXISTS messages_received ON messages(received_at);
CREATE INDEX IF NOT EXISTS messages_updated ON messages(updated_at);
CREATE INDEX IF NOT EXISTS messages_state ON messages(state, received_at);
CREATE INDEX IF NOT EXISTS messages_sender ON messages(sender_key);
CREATE INDEX IF NOT EXISTS messages_message_key ON messages(message_key);
CREATE INDEX IF NOT EXISTS messages_parent ON messages(parent);
CREATE TABLE IF NOT EXISTS recipients (
  message TEXT NOT NULL,
  address_key TEXT NOT NULL,
  PRIMARY KEY (message, address_key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS recipients_address ON recipients(address_key);
CREATE TABLE IF NOT EXISTS events (
  message TEXT NOT NULL,
  at INTEGER NOT NULL,
  kind TEXT NOT NULL,
  detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_message ON events(message, at);
CREATE INDEX IF NOT EXISTS events_outcomes ON events(kind, at);
`;

export const SCHEMA_VERSION = 1;

/** Creates or upgrades the tables; throws when the file is from a newer relay. */
export function migrate(db: SqlDatabase): void {
  const version = Number(db.pragma('user_version'));
  if (version > SCHEMA_VERSION) {
    throw new Error(`the mail log was written by a newer m365-relay (schema ${version}, this one knows ${SCHEMA_VERSION}); move it aside or upgrade`);
  }
  if (version === SCHEMA_VERSION) return;
  db.transaction(() => {
    db.exec(SCHEMA_V1);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  })();
}

/** The message's state after an event; null when the event does not change it. Events arrive in the order they happened. */
export function stateAfter(kind: MailLogEventKind): MailLogState | null {
  switch (kind) {
    case 'received':
    case 'released':
    case 'retry':
    case 'restored':
      return 'queued';
    case 'deferred':
      return 'deferred';
    case 'delivered':
      return 'delivered';
    case 'failed':
      return 'failed';
    case 'held':
      return 'held';
    case 'deleted':
      return 'deleted';
    case 'attempt':
    case 'admin':
      return null;
  }
}
