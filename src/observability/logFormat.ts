import { fstatSync } from 'node:fs';

/**
 * How a log line is written: pino serialises every event to JSON once; this module turns that
 * line into what the administrator reads (`log.format: text`) and adds the syslog priority that
 * journald understands. It runs in the logging thread, on the serialised line: no worker thread
 * (pino transports use one), one JSON.parse per line for text, nothing but a prefix for JSON.
 */

/** syslog priorities (sd-daemon(3)) for pino's levels: `journalctl -p err` shows error and fatal. */
const PRIORITY: Record<string, number> = { fatal: 2, error: 3, warn: 4, info: 6, debug: 7, trace: 7 };

export function priorityOf(level: string): number {
  return PRIORITY[level] ?? 6;
}

/**
 * True when file descriptor `fd` is the stream systemd connected to the journal: systemd sets
 * JOURNAL_STREAM=DEVICE:INODE of that stream, and a redirection (`run ... > file`) no longer matches.
 */
export function isJournalStream(fd: number, journalStream: string | undefined = process.env.JOURNAL_STREAM): boolean {
  if (!journalStream) return false;
  const [dev, ino] = journalStream.split(':');
  try {
    const st = fstatSync(fd, { bigint: true });
    return String(st.dev) === dev && String(st.ino) === ino;
  } catch {
    return false;
  }
}

/** Fields every line has, or that the text format writes in fixed places. */
const FIXED = new Set(['level', 'time', 'service', 'event', 'msgId', 'msg', 'pid', 'hostname']);

/** One readable line for a pino JSON line: `TIME LEVEL event msgId message key=value ...`. */
export function textLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.trimEnd();
  }
  const level = String(o.level ?? 'info');
  const parts = [String(o.time ?? ''), level.toUpperCase().padEnd(5)];
  if (o.event !== undefined) parts.push(String(o.event));
  if (o.msgId !== undefined) parts.push(String(o.msgId));
  if (o.msg !== undefined && o.msg !== '') parts.push(`${String(o.msg)}:`);
  for (const [key, value] of Object.entries(o)) {
    if (FIXED.has(key) || value === undefined) continue;
    parts.push(`${key}=${textValue(value)}`);
  }
  const line = parts.join(' ');
  return line.endsWith(':') ? line.slice(0, -1) : line;
}

function textValue(value: unknown): string {
  if (Array.isArray(value) && value.every((v) => typeof v === 'string' || typeof v === 'number')) return quote(value.join(','));
  if (value !== null && typeof value === 'object') return JSON.stringify(value);
  return quote(String(value));
}

/** Values with spaces, quotes or '=' are quoted, so `key=value` pairs stay unambiguous. */
function quote(text: string): string {
  return text === '' || /[\s"=]/.test(text) ? JSON.stringify(text) : text;
}

/** The level of a pino JSON line without parsing it (the logger writes "level" first). */
export function levelOf(json: string): string {
  const found = /^\{"level":"([a-z]+)"/.exec(json);
  return found?.[1] ?? 'info';
}

export interface LineFormat {
  format: 'json' | 'text';
  /** Prefix each line with `<priority>` for journald. */
  journal: boolean;
}

/** Rewrites one serialised pino line (with its newline) as the configured format asks. */
export function formatLine(line: string, how: LineFormat): string {
  if (how.format === 'json' && !how.journal) return line;
  const body = how.format === 'text' ? `${textLine(line)}\n` : line;
  return how.journal ? `<${priorityOf(levelOf(line))}>${body}` : body;
}
