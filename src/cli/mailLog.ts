import { parseDuration } from '../config/duration.js';
import { SEARCHABLE_STATES, type MailLogEvent, type MailLogFilter, type MailLogMessage, type SearchableState } from '../maillog/index.js';

/** A `log` option the user got wrong: the message names the option and what it takes. */
export class LogArgumentError extends Error {
  override readonly name = 'LogArgumentError';
}

export interface LogSearchOptions {
  to?: string;
  from?: string;
  id?: string;
  'message-id'?: string;
  subject?: string;
  state?: string;
  since?: string;
  until?: string;
  limit?: string;
}

/**
 * `log`'s options as a search. --since and --until take a duration back from now ("2h", "3d") or
 * a time ("2026-05-04", "2026-05-04T10:00:00Z"; without a zone: this host's local time).
 */
export function filterOf(options: LogSearchOptions, now: number): MailLogFilter {
  const filter: MailLogFilter = {};
  const text = (name: keyof LogSearchOptions): string | undefined => {
    const value = options[name];
    if (value === undefined) return undefined;
    if (value.trim() === '') throw new LogArgumentError(`--${name} needs a value`);
    return value.trim();
  };
  const to = text('to');
  if (to !== undefined) filter.to = to;
  const from = text('from');
  if (from !== undefined) filter.from = from;
  const id = text('id');
  if (id !== undefined) filter.id = id;
  const messageId = text('message-id');
  if (messageId !== undefined) filter.messageId = messageId;
  const subject = text('subject');
  if (subject !== undefined) filter.subject = subject;
  const state = text('state');
  if (state !== undefined) {
    if (!SEARCHABLE_STATES.includes(state as SearchableState)) throw new LogArgumentError(`--state takes one of ${SEARCHABLE_STATES.join(', ')} (got "${state}")`);
    filter.state = state as SearchableState;
  }
  const since = text('since');
  if (since !== undefined) filter.since = timeOf('since', since, now);
  const until = text('until');
  if (until !== undefined) filter.until = timeOf('until', until, now);
  if (filter.since !== undefined && filter.until !== undefined && filter.since > filter.until) throw new LogArgumentError('--since is later than --until: nothing can match');
  const limit = text('limit');
  if (limit !== undefined) {
    if (!/^\d+$/.test(limit) || Number(limit) < 1) throw new LogArgumentError(`--limit takes a positive whole number (got "${limit}")`);
    filter.limit = Number(limit);
  }
  return filter;
}

function timeOf(option: 'since' | 'until', value: string, now: number): number {
  // A duration needs its unit: a bare number would be ambiguous with a year.
  const ago = /^\s*\d+(?:\.\d+)?\s*(?:ms|s|m|h|d)\s*$/.test(value) ? parseDuration(value) : null;
  if (ago !== null) return now - ago;
  const at = Date.parse(value);
  if (Number.isFinite(at)) return at;
  throw new LogArgumentError(`--${option} takes a duration back from now ("2h", "3d") or a time ("2026-05-04T10:00:00Z"), got "${value}"`);
}

/** "2026-05-04 10:11:12Z": sortable, one column wide, UTC as in `queue show`. */
function when(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** The JSON shape of one message in `log --json` (stable: outside tools rely on it): times as ISO strings. */
export function messageJson(m: MailLogMessage): Record<string, unknown> {
  return { ...m, receivedAt: new Date(m.receivedAt).toISOString(), updatedAt: new Date(m.updatedAt).toISOString() };
}

export function eventJson(e: MailLogEvent): Record<string, unknown> {
  return { at: new Date(e.at).toISOString(), kind: e.kind, detail: e.detail };
}

export function formatLogTable(messages: MailLogMessage[], limit: number): string {
  if (messages.length === 0) return 'No message in the mail log matches.';
  const rows = messages.map((m) => [when(m.receivedAt), m.id, m.state, m.sender || '<>', m.recipients.join(','), m.subject ?? '', m.lastReply ?? ''].map(printable));
  const head = ['RECEIVED', 'ID', 'STATE', 'FROM', 'TO', 'SUBJECT', 'LAST REPLY'];
  const widths = head.map((h, c) => Math.min(c === 5 ? 30 : 40, Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length))));
  const line = (cells: string[]) => cells.map((cell, c) => (c === cells.length - 1 ? cell : fit(cell, widths[c] ?? 0))).join('  ');
  const more = messages.length === limit ? ` (the newest ${limit}; --limit N shows more)` : '';
  return [line(head), ...rows.map(line), '', `${messages.length} message(s)${more}`].join('\n');
}

/** Cut to `width` with an ellipsis, padded. */
function fit(text: string, width: number): string {
  const chars = [...text];
  return (chars.length > width ? `${chars.slice(0, width - 1).join('')}…` : text).padEnd(width + text.length - chars.length);
}

/** `log show`: the message, then its history, for a person. */
export function formatLogShow(found: { message: MailLogMessage; events: MailLogEvent[] }): string {
  const m = found.message;
  const lines = [
    `id:          ${m.id}`,
    `state:       ${m.state} (as of ${when(m.updatedAt)})`,
    `received:    ${when(m.receivedAt)} from ${m.clientAddress}${m.clientName ? ` (${m.clientName})` : ''}${m.user ? `, user ${m.user}` : ''}, on ${m.listener}${m.tls ? ' with TLS' : ''}`,
    `sender:      ${m.sender || '<>'}`,
    `recipients:  ${m.recipients.join(', ')}`,
    `size:        ${m.size} bytes`,
    `message-id:  ${m.messageId ?? '-'}`,
    `subject:     ${m.subject ?? '-'}`,
    `account:     ${m.account ?? '-'}`,
    `last reply:  ${m.lastReply ?? '-'}`,
    'history:',
    ...found.events.map((e) => `  ${when(e.at)}  ${e.kind.padEnd(9)} ${describeEvent(e)}`),
  ];
  return lines.map(printable).join('\n');
}

/**
 * What a device or a remote server wrote (subjects, replies, HELO names) reaches the terminal: its
 * control characters (escape sequences, line breaks) are shown as "?".
 */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, '?');
}

/** One line per event: what an administrator asks first. */
export function describeEvent(e: MailLogEvent): string {
  const d = e.detail;
  const s = (key: string) => (d[key] === undefined || d[key] === null ? undefined : String(d[key]));
  const list = (key: string) => (Array.isArray(d[key]) ? (d[key] as unknown[]).map(String).join(', ') : undefined);
  switch (e.kind) {
    case 'received':
      return `from ${s('clientAddress')}${s('clientName') ? ` (${s('clientName')})` : ''}${s('user') ? ` user ${s('user')}` : ''} on ${s('listener')}${d.tls ? ' TLS' : ''}, ${s('size')} bytes, account ${s('account')}`;
    case 'attempt':
      return `account ${s('account')} (${s('transport')}), ${s('durationMs')} ms${s('upstreamId') ? `, upstream id ${s('upstreamId')}` : ''}: ${s('reply') ?? '-'}`;
    case 'deferred':
      return `${d.accountHold ? 'account holding; ' : ''}next attempt ${s('nextAttemptAt') ?? 'when the account recovers'}: ${s('reason')}`;
    case 'delivered':
      return `to ${list('to')}${s('upstreamId') ? ` (upstream id ${s('upstreamId')})` : ''}`;
    case 'failed':
      return `${s('reason')}; ${d.noticeSent ? `failure notice sent (${s('noticeId')})` : 'no failure notice'}`;
    case 'admin':
      return `${s('action')} by ${s('user')}`;
    default:
      return s('user') ? `by ${s('user')}` : '';
  }
}
