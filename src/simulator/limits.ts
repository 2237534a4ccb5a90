// Exchange Online's per-mailbox limits: concurrent authenticated sessions and a submission rate.

export class ConcurrencyLimiter {
  private readonly active = new Map<string, number>();
  private peak = 0;

  /** @param max 0 = unlimited */
  constructor(private readonly max: number) {}

  /** Takes a slot for `mailbox`; false when it already has `max` sessions. */
  acquire(mailbox: string): boolean {
    const current = this.active.get(mailbox) ?? 0;
    if (this.max > 0 && current >= this.max) return false;
    this.active.set(mailbox, current + 1);
    this.peak = Math.max(this.peak, current + 1);
    return true;
  }

  release(mailbox: string): void {
    const current = this.active.get(mailbox) ?? 0;
    if (current <= 1) this.active.delete(mailbox);
    else this.active.set(mailbox, current - 1);
  }

  /** The most sessions one mailbox has had at once. */
  get maxSeen(): number {
    return this.peak;
  }
}

/** A sliding window: at most `messages` submissions per `perSeconds` per mailbox. */
export class RateLimiter {
  private readonly history = new Map<string, number[]>();

  constructor(private readonly limit: { messages: number; perSeconds: number } | null) {}

  /** Records a submission and returns true, or returns false when the window is full. */
  take(mailbox: string, now = Date.now()): boolean {
    if (!this.limit) return true;
    const since = now - this.limit.perSeconds * 1000;
    const times = (this.history.get(mailbox) ?? []).filter((t) => t > since);
    if (times.length >= this.limit.messages) {
      this.history.set(mailbox, times);
      return false;
    }
    times.push(now);
    this.history.set(mailbox, times);
    return true;
  }

  clear(): void {
    this.history.clear();
  }
}
