// The console's decisions, as pure functions (tested by tables in test/console.test.ts).
import { NetworkList } from '../access/networks.js';
import type { QueueListItem } from '../cli/queueList.js';
import { parseDuration } from '../config/duration.js';
import type { AdminActionName } from '../spool/index.js';
import type { MailLogFilter } from './mailLog.js';

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

/**
 * A time filter as the `log` command takes it: a duration back from now ("2h", "30m", "7d") or a
 * date/time ("2026-05-01", "2026-05-01T08:00:00Z"). Null when it is neither.
 */
export function parseTimeFilter(text: string, now: number): number | null {
  const ago = /^\d/.test(text) && !/^\d{4}-/.test(text) ? parseDuration(text) : null;
  if (ago !== null) return now - ago;
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : at;
}

const LOG_STATES = ['delivered', 'deferred', 'failed', 'held'] as const;
export const MAX_LOG_LIMIT = 1000;

/** The mail log page's query string as a search, with a sentence per field it could not take. */
export function parseLogQuery(params: URLSearchParams, now: number): { filter: MailLogFilter; problems: string[] } {
  const filter: MailLogFilter = {};
  const problems: string[] = [];
  const text = (name: string) => params.get(name)?.trim() || undefined;
  for (const [param, key] of [['to', 'to'], ['from', 'from'], ['id', 'id'], ['messageId', 'messageId'], ['subject', 'subject'], ['account', 'account']] as const) {
    const value = text(param);
    if (value) filter[key] = value;
  }
  const state = text('state');
  if (state) {
    if ((LOG_STATES as readonly string[]).includes(state)) filter.state = state as (typeof LOG_STATES)[number];
    else problems.push(`state must be one of ${LOG_STATES.join(', ')}`);
  }
  for (const key of ['since', 'until'] as const) {
    const value = text(key);
    if (!value) continue;
    const at = parseTimeFilter(value, now);
    if (at === null) problems.push(`${key} takes a duration back from now (2h, 30m, 7d) or a date and time (2026-05-01T08:00:00Z)`);
    else filter[key] = at;
  }
  const limit = text('limit');
  if (limit) {
    const n = Number(limit);
    if (Number.isInteger(n) && n > 0) filter.limit = Math.min(n, MAX_LOG_LIMIT);
    else problems.push('limit must be a whole number above 0');
  }
  filter.limit ??= 50;
  return { filter, problems };
}

/** Where to go back after an action: a path of this console only (never another site). */
export function safeBack(value: unknown, fallback = '/queue'): string {
  return typeof value === 'string' && /^\/(?![/\\])[^\s]*$/.test(value) ? value : fallback;
}
