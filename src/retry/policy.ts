/**
 * When to try a message again, as a pure function of its history. Postfix's rule: keep trying
 * until the message is older than maxAge, then give up with the last reply.
 */
export interface RetryPolicyConfig {
  /** Delays in ms before retry 1, 2, ...; the last one repeats. */
  schedule: readonly number[];
  /** Give up once a message is this old (ms since it was received). */
  maxAge: number;
  /** Share of random spread added to each delay (0.1 = up to +10%). */
  jitter: number;
}

export interface RetryInput {
  /** Attempts made so far, including the one that just failed (>= 1). */
  attempts: number;
  receivedAt: number;
  now: number;
  /** A lower bound from the upstream (Retry-After, throttling, quota pause). */
  minDelayMs?: number;
  /** 0 <= random < 1; injectable for tests. */
  random?: number;
}

export type RetryDecision = { action: 'retry'; at: number; delayMs: number } | { action: 'expire' };

export function nextAttempt(policy: RetryPolicyConfig, input: RetryInput): RetryDecision {
  const expiresAt = input.receivedAt + policy.maxAge;
  if (input.now >= expiresAt) return { action: 'expire' };
  const index = Math.min(Math.max(input.attempts, 1) - 1, policy.schedule.length - 1);
  const base = Math.max(policy.schedule[index] ?? 60_000, input.minDelayMs ?? 0);
  const delay = Math.round(base * (1 + policy.jitter * (input.random ?? Math.random())));
  // The last try happens at the end of the lifetime rather than never.
  const at = Math.min(input.now + delay, expiresAt);
  return { action: 'retry', at, delayMs: at - input.now };
}
