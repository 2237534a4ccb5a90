import { join } from 'node:path';
import type { RelayConfig } from '../config/index.js';

export { MailLogReader, MailLogUnavailableError, DEFAULT_SEARCH_LIMIT, searchQuery } from './reader.js';
export { MailLogWriter, type MailLogWriterOptions } from './writer.js';
export { factsOfMeta } from './facts.js';
export {
  MAIL_LOG_STATES,
  SEARCHABLE_STATES,
  noMailLog,
  type MailLogEntry,
  type MailLogEvent,
  type MailLogEventKind,
  type MailLogFilter,
  type MailLogMessage,
  type MailLogRecorder,
  type MailLogState,
  type MessageFacts,
  type SearchableState,
} from './types.js';

/** The mail log's file name in the spool directory when mailLog.path is not set. */
export const MAIL_LOG_FILE = 'maillog.sqlite';

/** Where the mail log is; null when it is switched off (mailLog.enabled: false). */
export function mailLogPathOf(config: RelayConfig): string | null {
  if (!config.mailLog.enabled) return null;
  return config.mailLog.path ?? join(config.spool.dir, MAIL_LOG_FILE);
}
