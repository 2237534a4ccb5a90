/**
 * Paces one mailbox under Exchange Online's limits: at most `messages` submissions per sliding
 * window of `perSeconds`, and an optional pause (throttling reply, daily quota, dead upstream).
 * Waiters are served in order; every wait can be cancelled with an AbortSignal.
 */
export class Pacer {
  private readonly sent: number[] = [];
  private pausedUntil = 0;
  private chain: Promise<void> = Promise.resolve();

  constructor(private limit: { messages: number; perSeconds: number } | null) {}

  setLimit(limit: { messages: number; perSeconds: number } | null): void {
    this.limit = limit;
  }

  /** Holds every submission until `until` (ms epoch); a later pause extends, an earlier one is ignored. */
  pause(until: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, until);
  }

  get pausedUntilMs(): number {
    return this.pausedUntil;
  }

  /** Resolves when one submission may start, and counts it. Rejects with the signal's reason when aborted. */
  acquire(signal?: AbortSignal): Promise<void> {
    const turn = this.chain.then(() => this.waitForSlot(signal));
    // The next waiter queues behind this one whether it succeeds or is aborted.
    this.chain = turn.catch(() => undefined);
    return turn;
  }

  private async waitForSlot(signal?: AbortSignal): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      const now = Date.now();
      let waitUntil = this.pausedUntil;
      if (this.limit) {
        const windowMs = this.limit.perSeconds * 1000;
        while (this.sent.length > 0 && (this.sent[0] ?? 0) <= now - windowMs) this.sent.shift();
        if (this.sent.length >= this.limit.messages) waitUntil = Math.max(waitUntil, (this.sent[0] ?? now) + windowMs);
      }
      if (waitUntil <= now) {
        if (this.limit) this.sent.push(now);
        return;
      }
      await sleep(waitUntil - now, signal);
    }
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
