/**
 * Counts open SMTP connections per client address and in total over all listeners, so that one
 * address (a looping script, a scanner gone wild) cannot hog the relay.
 */
export class ConnectionCounter {
  private readonly open = new Map<string, number>();
  private count = 0;

  /** Takes a slot for `address`, or says which limit is reached. Limits are read per call (reloads). */
  tryOpen(address: string, limits: { perClient: number; total: number }): 'ok' | 'per-client' | 'total' {
    if (this.count >= limits.total) return 'total';
    const current = this.open.get(address) ?? 0;
    if (current >= limits.perClient) return 'per-client';
    this.open.set(address, current + 1);
    this.count++;
    return 'ok';
  }

  close(address: string): void {
    const current = this.open.get(address);
    if (current === undefined) return;
    if (current <= 1) this.open.delete(address);
    else this.open.set(address, current - 1);
    this.count--;
  }

  get total(): number {
    return this.count;
  }
}
