import { systemClock, type Clock } from './clock.js';

/**
 * Paces one mailbox under Exchange Online's limits: at most `messages` submissions per sliding
 * window of `perSeconds`, and an optional pause (throttling reply, daily quota, dead upstream).
 *
 * A submission counts from the moment it is admitted and is stamped with the time it completes:
 * Exchange counts it at MAIL FROM, which lies between the two, so the relay's window always ends
 * later than Exchange's and a correctly limited upstream never has to throttle it.
 * Waiters are served in order; every wait can be cancelled with an AbortSignal.
 */
export class Pacer {
  /** Completion times of recent submissions; Infinity while one is still under way. */
  private readonly stamps: number[] = [];
  private pausedUntil = 0;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private limit: { messages: number; perSeconds: number } | null,
    private readonly clock: Clock = systemClock,
  ) {}

  setLimit(limit: { messages: number; perSeconds: number } | null): void {
    this.limit = limit;
  }

  /** Holds every submission until `until` (monotonic ms); a later pause extends, an earlier one is ignored. */
  pause(until: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, until);
  }

  /** Lifts any pause (after a reload fixed what caused it). */
  resume(): void {
    this.pausedUntil = 0;
  }

  get pausedUntilMs(): number {
    return this.pausedUntil;
  }

  /**
   * Resolves when one submission may start, with a function to call when it has finished
   * (successfully or not). Rejects with the signal's reason when aborted.
   */
  acquire(signal?: AbortSignal): Promise<() => void> {
    const turn = this.chain.then(() => this.waitForSlot(signal));
    // The next waiter queues behind this one whether it succeeds or is aborted.
    this.chain = turn.then(
      () => undefined,
      () => undefined,
    );
    return turn;
  }

  private async waitForSlot(signal?: AbortSignal): Promise<() => void> {
    for (;;) {
      signal?.throwIfAborted();
      const now = this.clock.now();
      let waitUntil = this.pausedUntil;
      if (this.limit) {
        const windowMs = this.limit.perSeconds * 1000;
        this.stamps.sort((a, b) => a - b);
        while (this.stamps.length > 0 && (this.stamps[0] ?? 0) <= now - windowMs) this.stamps.shift();
        if (this.stamps.length >= this.limit.messages) {
          const oldest = this.stamps[0] ?? now;
          // All slots are taken by submissions still under way: wait a little and look again.
          waitUntil = Math.max(waitUntil, Number.isFinite(oldest) ? oldest + windowMs : now + 50);
        }
      }
      if (waitUntil <= now) return this.admit();
      await sleep(waitUntil - now, signal);
    }
  }

  private admit(): () => void {
    if (!this.limit) return () => undefined;
    const slot = { done: false };
    this.stamps.push(Number.POSITIVE_INFINITY);
    return () => {
      if (slot.done) return;
      slot.done = true;
      const index = this.stamps.indexOf(Number.POSITIVE_INFINITY);
      if (index !== -1) this.stamps[index] = this.clock.now();
    };
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
