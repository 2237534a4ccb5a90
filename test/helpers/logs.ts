import { Writable } from 'node:stream';
import pino from 'pino';
import type { Logger } from '../../src/observability/logger.js';

export interface LogLine {
  level: string;
  msg: string;
  event?: string;
  msgId?: string;
  [key: string]: unknown;
}

/** A pino logger whose JSON lines are kept for assertions (and printed with DEBUG_LOGS=1). */
export function captureLogger(level = 'debug'): { logger: Logger; lines: LogLine[]; text: () => string } {
  const lines: LogLine[] = [];
  const raw: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line.trim()) continue;
        raw.push(line);
        if (process.env.DEBUG_LOGS) process.stderr.write(`${line}\n`);
        try {
          lines.push(JSON.parse(line) as LogLine);
        } catch {
          // not JSON: ignore
        }
      }
      done();
    },
  });
  const logger = pino(
    { level, base: { service: 'm365-relay' }, redact: { paths: ['*.accessToken', 'accessToken', 'clientSecret', '*.clientSecret', 'password', '*.password'], censor: '[redacted]' }, formatters: { level: (label) => ({ level: label }) } },
    sink,
  );
  return { logger, lines, text: () => raw.join('\n') };
}
