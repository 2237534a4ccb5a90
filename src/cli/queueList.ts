import type { SpoolEntry } from '../spool/index.js';

/** The stable JSON shape of `queue list --json`: outside tools depend on these names. */
export interface QueueListItem {
  id: string;
  state: 'queued' | 'deferred' | 'failed' | 'hold';
  from: string;
  recipients: string[];
  attempts: number;
  lastError: string | null;
  nextAttemptAt: string | null;
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
    nextAttemptAt: meta.nextAttemptAt,
  };
}

export function formatQueueTable(items: QueueListItem[]): string {
  if (items.length === 0) return 'The queue is empty.';
  const rows = items.map((i) => [i.id, i.state, String(i.attempts), i.from || '<>', i.recipients.join(','), i.nextAttemptAt ?? '-', i.lastError ?? '']);
  const head = ['ID', 'STATE', 'TRIES', 'FROM', 'RECIPIENTS', 'NEXT ATTEMPT', 'LAST ERROR'];
  const widths = head.map((h, c) => Math.min(40, Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length))));
  const line = (cells: string[]) =>
    cells.map((cell, c) => (c === cells.length - 1 ? cell : cell.slice(0, widths[c]).padEnd(widths[c] ?? 0))).join('  ');
  const counts = ['queued', 'deferred', 'failed', 'hold']
    .map((s) => [s, items.filter((i) => i.state === s).length] as const)
    .filter(([, n]) => n > 0)
    .map(([s, n]) => `${n} ${s}`)
    .join(', ');
  return [line(head), ...rows.map(line), '', `${items.length} message(s): ${counts}`].join('\n');
}
