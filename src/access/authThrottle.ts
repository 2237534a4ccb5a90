/**
 * Failed AUTH attempts per client address: each failure answers more slowly, and too many within
 * the window block the address for a while. Guessing passwords over SMTP becomes useless.
 */
export class AuthThrottle {
  private readonly failures = new Map<string, number[]>();
  private readonly blockedUntil = new Map<string, number>();

  constructor(
    private readonly options: { maxFailures: number; windowMs: number; blockMs: number },
  ) {}

  isBlocked(address: string, now = Date.now()): boolean {
    const until = this.blockedUntil.get(address);
    if (until === undefined) return false;
    if (until > now) return true;
    this.blockedUntil.delete(address);
    return false;
  }

  /** Records a failure; returns how long to delay the reply and whether the address is now blocked. */
  recordFailure(address: string, now = Date.now()): { delayMs: number; blocked: boolean } {
    const recent = (this.failures.get(address) ?? []).filter((t) => t > now - this.options.windowMs);
    recent.push(now);
    this.failures.set(address, recent);
    this.prune(now);
    if (recent.length >= this.options.maxFailures) {
      this.blockedUntil.set(address, now + this.options.blockMs);
      this.failures.delete(address);
      return { delayMs: 1000, blocked: true };
    }
    return { delayMs: Math.min(3000, 250 * 2 ** (recent.length - 1)), blocked: false };
  }

  recordSuccess(address: string): void {
    this.failures.delete(address);
  }

  /** Bounded memory under a flood from many addresses. */
  private prune(now: number): void {
    if (this.failures.size < 10_000) return;
    for (const [address, times] of this.failures) {
      if ((times[times.length - 1] ?? 0) <= now - this.options.windowMs) this.failures.delete(address);
    }
  }
}
