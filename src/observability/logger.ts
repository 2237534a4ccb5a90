import pino, { type Logger } from 'pino';
import { formatLine, isJournalStream, type LineFormat } from './logFormat.js';

export type { Logger };

/**
 * Paths that may carry secrets anywhere in a log object. pino replaces them before serialising, so
 * a secret never reaches stdout even when a whole config or error object is logged.
 */
const REDACT_PATHS = [
  'password',
  'passwordHash',
  'clientSecret',
  'accessToken',
  'access_token',
  'token',
  'privateKey',
  'authorization',
  '*.password',
  '*.passwordHash',
  '*.clientSecret',
  '*.accessToken',
  '*.access_token',
  '*.token',
  '*.privateKey',
  '*.authorization',
  '*.*.clientSecret',
  '*.*.password',
  '*.*.accessToken',
];

export interface LoggerOptions {
  level?: string;
  /** Where the lines go; stdout by default. */
  destination?: pino.DestinationStream;
  /** `json` (default) or `text` (one readable line per event). */
  format?: 'json' | 'text';
  /** Prefix lines with their syslog priority; by default when stdout is systemd's journal stream. */
  journal?: boolean;
  /** Sees every structured event ({event: ...}) logged at info or above, whatever `level` is. */
  onEvent?: (event: Record<string, unknown>) => void;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'info';
  const how: LineFormat = { format: options.format ?? 'json', journal: options.journal ?? (options.destination === undefined && isJournalStream(1)) };
  const base = options.destination ?? pino.destination({ dest: 1, sync: false });
  // JSON to a plain stdout is pino's own fast path, unchanged; otherwise each serialised line is
  // rewritten on the way out (see logFormat.ts for why not a pino transport).
  const destination: pino.DestinationStream = how.format === 'json' && !how.journal ? base : formatting(base, how);
  const onEvent = options.onEvent;
  // pino calls hooks only for enabled levels: so that metrics do not depend on log.level, the
  // logger itself runs at info at least, and a level-filtered destination drops the rest.
  const quieter = pino.levels.values[level] !== undefined && (pino.levels.values[level] ?? 0) > (pino.levels.values.info ?? 30);
  return pino(
    {
      level: onEvent && quieter ? 'info' : level,
      base: { service: 'm365-relay' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
      ...(onEvent && {
        hooks: {
          logMethod(args, method) {
            const first = args[0] as unknown;
            if (first && typeof first === 'object' && 'event' in first) onEvent(first as Record<string, unknown>);
            return method.apply(this, args);
          },
        },
      }),
    },
    onEvent && quieter ? pino.multistream([{ level: level as pino.Level, stream: destination }]) : destination,
  );
}

/** A destination that rewrites each line; flushSync reaches the underlying stream (fatal exits). */
function formatting(base: pino.DestinationStream, how: LineFormat): pino.DestinationStream {
  const inner = base as pino.DestinationStream & { flushSync?: () => void; flush?: (cb?: (err?: Error) => void) => void };
  return {
    write: (line: string) => inner.write(formatLine(line, how)),
    ...(inner.flushSync && { flushSync: () => inner.flushSync?.() }),
    ...(inner.flush && { flush: (cb?: (err?: Error) => void) => inner.flush?.(cb) }),
  } as pino.DestinationStream;
}

/** A logger that discards everything, for library use and tests that do not read logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
