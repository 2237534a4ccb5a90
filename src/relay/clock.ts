import { performance } from 'node:perf_hooks';

/**
 * Time for the delivery loop. Waits (pacing windows, holds, probes, due times of queued messages)
 * are measured on the monotonic clock, so a wall-clock step (NTP, a VM resumed, an administrator's
 * `date -s`) changes no delivery timing. Wall time is only for what is recorded: receivedAt,
 * nextAttemptAt in the spool, and a message's age against retry.maxAge.
 */
export interface Clock {
  /** Monotonic milliseconds (arbitrary origin). */
  now(): number;
  /** Wall-clock milliseconds since the epoch. */
  wall(): number;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  wall: () => Date.now(),
};

/** A wall time recorded in the spool (ISO) as a due time on the monotonic clock; null means now. */
export function dueFromWall(clock: Clock, iso: string | null | undefined): number {
  const now = clock.now();
  if (!iso) return now;
  const wallAt = Date.parse(iso);
  return Number.isFinite(wallAt) ? now + Math.max(0, wallAt - clock.wall()) : now;
}
