import pino, { type Logger } from 'pino';

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
  /** Where the JSON lines go; stdout by default. */
  destination?: pino.DestinationStream;
  /** Sees every structured event ({event: ...}) logged at info or above, whatever `level` is. */
  onEvent?: (event: Record<string, unknown>) => void;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'info';
  const destination = options.destination ?? pino.destination({ dest: 1, sync: false });
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

/** A logger that discards everything, for library use and tests that do not read logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
