/**
 * After a connection failure (upstream unreachable, TLS broken, token endpoint down), hold every
 * delivery for a while instead of opening a connection per queued message. The hold doubles with
 * each consecutive failure up to `maxMs` and resets at the first success.
 */
export class CircuitBreaker {
  private failures = 0;

  constructor(
    private readonly baseMs = 2_000,
    private readonly maxMs = 60_000,
  ) {}

  /** Records a failure; returns the time (ms epoch) until which deliveries should wait. */
  trip(now = Date.now()): number {
    this.failures += 1;
    const hold = Math.min(this.maxMs, this.baseMs * 2 ** (this.failures - 1));
    return now + hold;
  }

  reset(): void {
    this.failures = 0;
  }

  get consecutiveFailures(): number {
    return this.failures;
  }
}
