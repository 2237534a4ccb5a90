/** Counts open SMTP connections per client address, to refuse one address hogging the listener. */
export class ConnectionCounter {
  private readonly open = new Map<string, number>();

  constructor(private readonly perClient: number) {}

  /** Takes a slot for `address`; false when it already has the maximum. */
  tryOpen(address: string): boolean {
    const current = this.open.get(address) ?? 0;
    if (current >= this.perClient) return false;
    this.open.set(address, current + 1);
    return true;
  }

  close(address: string): void {
    const current = this.open.get(address) ?? 0;
    if (current <= 1) this.open.delete(address);
    else this.open.set(address, current - 1);
  }

  get total(): number {
    let sum = 0;
    for (const n of this.open.values()) sum += n;
    return sum;
  }
}
