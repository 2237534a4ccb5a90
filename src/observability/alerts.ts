import type { Logger } from './logger.js';

/**
 * Error-level lines that an administrator must act on, repeated at most once per interval for the
 * same problem (not once per message): a queue of 1,000 messages and a wrong secret give one line
 * every few minutes, not 1,000.
 */
export class AlertLog {
  private readonly lastAt = new Map<string, number>();

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs = 5 * 60_000,
  ) {}

  raise(key: string, fields: Record<string, unknown>, message: string): void {
    const now = Date.now();
    const last = this.lastAt.get(key);
    if (last !== undefined && now - last < this.intervalMs) return;
    this.lastAt.set(key, now);
    this.logger.error({ event: 'alert', alert: key, ...fields }, message);
  }

  /** The problem went away: the next occurrence is logged at once. */
  clear(key: string): void {
    this.lastAt.delete(key);
  }
}
