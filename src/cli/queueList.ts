import { accountOf } from '../relay/worker.js';
import type { AdminActionName, MessageMeta, SpoolEntry } from '../spool/index.js';

/** What was done, as the `queue` commands and the console say it. */
export const PAST_TENSE: Record<AdminActionName, string> = {
  retry: 'queued for delivery now',
  hold: 'held',
  release: 'released, queued for delivery now',
  delete: 'deleted',
  restore: 'restored, queued for delivery now',
};

/** The stable JSON shape of `queue list --json`: outside tools depend on these names. */
export interface QueueListItem {
  id: string;
  /** corrupt: in corrupt/, its files unreadable or incomplete (`queue restore ID` once they are whole). */
  state: 'queued' | 'deferred' | 'failed' | 'hold' | 'corrupt';
  from: string;
  recipients: string[];
  attempts: number;
  lastError: string | null;
  nextAttemptAt: string | null;
  /** The Microsoft 365 account the message was routed to (`default` when none was recorded). */
  account: string;
  /** The rule that chose it ("user scanner", "network 10.1.0.0/16", "sender @ops.contoso.com", "recipientDomain contoso.com", "default"); null for messages queued before routing. */
  route: string | null;
  /**
   * For a part of a message whose recipients were routed to different accounts: the id the client
   * was given (its parent), and which part this is. null for an unsplit message.
   */
  parent: string | null;
  part: { index: number; of: number } | null;
}

export function toListItem(entry: SpoolEntry): QueueListItem {
  const { meta } = entry;
  // A message being delivered right now is still "queued" (or "deferred") to the outside.
  const state = entry.state === 'active' ? (meta.attempts > 0 ? 'deferred' : 'queued') : entry.state;
  return {
    id: meta.id,
    state,
    from: meta.envelope.from,
    recipients: meta.recipients.map((r) => r.address),
    attempts: meta.attempts,
    lastError: meta.lastError,
    // A held or failed message has no next attempt, whatever its metadata last recorded.
    nextAttemptAt: state === 'hold' || state === 'failed' ? null : meta.nextAttemptAt,
    account: accountOf(meta),
    route: meta.route?.rule ?? null,
    ...splitOf(meta),
  };
}

function splitOf(meta: MessageMeta | null): Pick<QueueListItem, 'parent' | 'part'> {
  const split = meta?.split;
  return split ? { parent: split.parent, part: { index: split.part, of: split.of } } : { parent: null, part: null };
}

/** Oldest first, the parts of a split message together under their parent's place, in part order. */
export function groupParts(items: QueueListItem[]): QueueListItem[] {
  const key = (i: QueueListItem) => `${i.parent ?? i.id}/${String(i.part?.index ?? 0).padStart(4, '0')}`;
  return [...items].sort((a, b) => key(a).localeCompare(key(b)));
}

/** An entry of corrupt/: what its metadata still says, or only its id and the problem. */
export function toCorruptItem(entry: { id: string; meta: MessageMeta | null; problem: string | null }): QueueListItem {
  const { meta } = entry;
  return {
    id: entry.id,
    state: 'corrupt',
    from: meta?.envelope.from ?? '',
    recipients: meta?.recipients.map((r) => r.address) ?? [],
    attempts: meta?.attempts ?? 0,
    lastError: entry.problem ?? meta?.lastError ?? null,
    nextAttemptAt: null,
    account: meta ? accountOf(meta) : '-',
    route: meta?.route?.rule ?? null,
    ...splitOf(meta),
  };
}

export function formatQueueTable(items: QueueListItem[]): string {
  if (items.length === 0) return 'The queue is empty.';
  // A split message's parts are listed together, each with its parent id and part number.
  const rows = items.map((i) => [i.id, i.state, String(i.attempts), i.account, i.from || '<>', i.recipients.join(','), i.parent && i.part ? `${i.parent} ${i.part.index}/${i.part.of}` : '-', i.nextAttemptAt ?? '-', i.lastError ?? '']);
  const head = ['ID', 'STATE', 'TRIES', 'ACCOUNT', 'FROM', 'RECIPIENTS', 'PART OF', 'NEXT ATTEMPT', 'LAST ERROR'];
  const widths = head.map((h, c) => Math.min(40, Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length))));
  const line = (cells: string[]) =>
    cells.map((cell, c) => (c === cells.length - 1 ? cell : cell.slice(0, widths[c]).padEnd(widths[c] ?? 0))).join('  ');
  const counts = ['queued', 'deferred', 'failed', 'hold', 'corrupt']
    .map((s) => [s, items.filter((i) => i.state === s).length] as const)
    .filter(([, n]) => n > 0)
    .map(([s, n]) => `${n} ${s}`)
    .join(', ');
  return [line(head), ...rows.map(line), '', `${items.length} message(s): ${counts}`].join('\n');
}

/** What `queue show` says about the next attempt: none while held or failed. */
export function nextAttemptText(item: Pick<QueueListItem, 'state' | 'nextAttemptAt'>): string {
  if (item.state === 'hold') return '- (held: queue release ID sends it)';
  if (item.state === 'failed') return '-';
  return item.nextAttemptAt ?? 'now';
}

/** `queue show`: everything about one message, for a person. */
export function formatShow(entry: SpoolEntry, headers: string): string {
  const m = entry.meta;
  const item = toListItem(entry);
  const lines = [
    `id:            ${m.id}`,
    `state:         ${item.state}`,
    `received:      ${m.receivedAt} from ${m.client.address}${m.client.user ? ` (user ${m.client.user})` : ''}${m.client.helo ? ` helo ${m.client.helo}` : ''}`,
    `size:          ${m.size} bytes`,
    `sender:        ${m.envelope.from || '<>'}`,
    `account:       ${item.account}${item.route ? ` (route: ${item.route})` : ''}`,
    ...(m.split ? [`part:          ${m.split.part} of ${m.split.of} of message ${m.split.parent} (its recipients were routed to ${m.split.of} accounts; each part is delivered, held, retried and deleted on its own)`] : []),
    `attempts:      ${m.attempts}`,
    `next attempt:  ${nextAttemptText(item)}`,
    `last error:    ${m.lastError ?? '-'}`,
    ...(m.failedAt ? [`failed at:     ${m.failedAt}`] : []),
    'recipients:',
    ...m.recipients.map((r) => `  ${r.status.padEnd(9)} ${r.address}${r.lastError ? `  (${r.lastError})` : ''}`),
    'headers:',
    ...headers.split(/\r?\n/).map((h) => `  ${h}`),
  ];
  return lines.join('\n');
}
