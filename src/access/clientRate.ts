/**
 * `limits.messagesPerMinutePerClient`: at most that many messages in any 60 s from one client (a
 * user, or an address that sends without AUTH); more are answered 451 4.7.1, so the device keeps
 * the message and tries again later. Times are monotonic milliseconds passed in.
 */
export const CLIENT_RATE_WINDOW_MS = 60_000;

export class ClientRateLimit {
  private readonly sent = new Map<string, number[]>();

  /** Counts one message for `client` if it is under `perMinute` (read per call: a reload changes it); false when over. */
  admit(client: string, now: number, perMinute: number | undefined): boolean {
    if (perMinute === undefined) return true;
    const times = (this.sent.get(client) ?? []).filter((t) => t > now - CLIENT_RATE_WINDOW_MS);
    if (times.length >= perMinute) {
      this.sent.set(client, times);
      return false;
    }
    times.push(now);
    this.sent.set(client, times);
    if (this.sent.size > 10_000) this.prune(now);
    return true;
  }

  /** Forgets clients with nothing in the window (bounded memory with many clients). */
  private prune(now: number): void {
    for (const [client, times] of this.sent) if (!times.some((t) => t > now - CLIENT_RATE_WINDOW_MS)) this.sent.delete(client);
  }
}
