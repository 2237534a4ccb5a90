// How times and sizes read on the console's pages (UTC: the relay's logs and the CLI use UTC too).

/** "2026-11-26 15:40:12 UTC"; "-" for none. */
export function formatTime(at: number | string | null | undefined): string {
  if (at === null || at === undefined) return '-';
  const ms = typeof at === 'number' ? at : Date.parse(at);
  if (Number.isNaN(ms)) return String(at);
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** "in 3 h", "5 min ago", "now": how far `at` is from `now`. */
export function relativeTime(at: number | string | null | undefined, now: number): string {
  if (at === null || at === undefined) return '';
  const ms = typeof at === 'number' ? at : Date.parse(at);
  if (Number.isNaN(ms)) return '';
  const delta = ms - now;
  const abs = Math.abs(delta);
  const text =
    abs < 45_000 ? null : abs < 90 * 60_000 ? `${Math.round(abs / 60_000)} min` : abs < 48 * 3_600_000 ? `${Math.round(abs / 3_600_000)} h` : `${Math.round(abs / 86_400_000)} days`;
  if (text === null) return 'now';
  return delta > 0 ? `in ${text}` : `${text} ago`;
}

export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}
