// The console's decisions, as pure functions (tested by tables in test/console.test.ts).
import { NetworkList } from '../access/networks.js';
import type { QueueListItem } from '../cli/queueList.js';
import { filterOf, LogArgumentError, type LogSearchOptions } from '../cli/mailLog.js';
import type { AdminActionName } from '../spool/index.js';
import { DEFAULT_SEARCH_LIMIT, type MailLogFilter } from '../maillog/index.js';

const LOOPBACK = new NetworkList(['127.0.0.0/8', '::1/128']);

export function isLoopback(address: string | undefined): boolean {
  return LOOPBACK.contains(address);
}

/**
 * Why a login must be refused on this connection, or null: over plain HTTP, a password and the
 * session cookie would cross the network in clear, so only loopback clients may log in that way,
 * unless the administrator opted out (console.allowPlainHttp).
 */
export function plainHttpRefusal(connection: { tls: boolean; allowPlainHttp: boolean; clientAddress: string | undefined }): string | null {
  if (connection.tls || connection.allowPlainHttp || isLoopback(connection.clientAddress)) return null;
  return 'This console is served over plain HTTP, so logins are accepted only from this machine (loopback). Give the http listener a certificate (http.tls: { cert, key }), or set console.allowPlainHttp: true to accept passwords in clear on your network.';
}

/** What an administrator may do with a message in this state (the queue commands' rules). */
export function actionsFor(state: QueueListItem['state']): AdminActionName[] {
  switch (state) {
    case 'queued':
    case 'deferred':
      return ['retry', 'hold', 'delete'];
    case 'hold':
      return ['release', 'retry', 'delete'];
    case 'failed':
      return ['retry', 'delete'];
    case 'corrupt':
      return ['restore'];
  }
}

export const ACTION_NAMES: readonly AdminActionName[] = ['retry', 'hold', 'release', 'delete', 'restore'];

export function isActionName(value: unknown): value is AdminActionName {
  return typeof value === 'string' && (ACTION_NAMES as readonly string[]).includes(value);
}

/** What the confirmation asks, per action. */
export const ACTION_QUESTIONS: Record<AdminActionName, string> = {
  retry: 'Put this message back in the queue, due now?',
  hold: 'Hold this message? It is not delivered until it is released.',
  release: 'Release this held message? It is queued for delivery now.',
  delete: 'Delete this message for good? It will never be delivered, and this cannot be undone.',
  restore: 'Restore this message from corrupt/ to the queue, due now?',
};

export interface QueueFilter {
  state?: string;
  account?: string;
  from?: string;
  to?: string;
}

/** The queue page's filters: state and account exactly, sender and recipient as parts of addresses (case-insensitive). */
export function filterQueue(items: readonly QueueListItem[], filter: QueueFilter): QueueListItem[] {
  const from = filter.from?.trim().toLowerCase();
  const to = filter.to?.trim().toLowerCase();
  return items.filter(
    (i) =>
      (!filter.state || i.state === filter.state) &&
      (!filter.account || i.account === filter.account) &&
      (!from || i.from.toLowerCase().includes(from)) &&
      (!to || i.recipients.some((r) => r.toLowerCase().includes(to))),
  );
}

/** The mail log page's query string, named as the `log` command's options (message-id, since, ...). */
export const LOG_PARAMS = ['to', 'from', 'id', 'message-id', 'subject', 'state', 'since', 'until', 'limit'] as const;
/** The most rows one search shows. */
export const MAX_LOG_LIMIT = 1000;

/** The mail log page's search, read as the `log` command reads its options (empty fields ignored); a sentence when it cannot. */
export function parseLogQuery(params: URLSearchParams, now: number): { filter: MailLogFilter; problem: string | null } {
  const options: LogSearchOptions = {};
  for (const name of LOG_PARAMS) {
    const value = params.get(name)?.trim();
    if (value) options[name] = value;
  }
  try {
    const filter = filterOf(options, now);
    const account = params.get('account')?.trim();
    if (account) filter.account = account;
    filter.limit = Math.min(filter.limit ?? DEFAULT_SEARCH_LIMIT, MAX_LOG_LIMIT);
    return { filter, problem: null };
  } catch (err) {
    if (!(err instanceof LogArgumentError)) throw err;
    // The command's wording names options (--since); here they are fields.
    return { filter: {}, problem: err.message.replace(/--([a-z-]+)/g, '$1') };
  }
}

/** Where to go back after an action: a path of this console only (never another site). */
export function safeBack(value: unknown, fallback = '/queue'): string {
  return typeof value === 'string' && /^\/(?![/\\])[^\s]*$/.test(value) ? value : fallback;
}
