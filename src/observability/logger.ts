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
}

export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: 'm365-relay' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

/** A logger that discards everything, for library use and tests that do not read logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
