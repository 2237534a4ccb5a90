/**
 * Whether an account may start deliveries: open, or holding after a failure that is the account's
 * (Exchange or Entra unreachable, a refusal before MAIL, a setting an administrator must fix).
 * While holding, one delivery at a time probes, after a backoff from 1 s doubling to 10 s;
 * the first answer from upstream opens the account again and everything queued flows.
 * Postfix does the same for a dead destination (qmgr_queue_throttle / unthrottle).
 *
 * A failure shared by deliveries that were under way together counts once: each delivery carries
 * the epoch it started in, and only a failure from the current epoch (or the probe) moves the state.
 * Times are monotonic milliseconds passed in by the caller; nothing here reads a clock.
 */
export const HOLD_BASE_MS = 1_000;
/**
 * The probe interval's cap. An outage can end just after a probe failed, so this bounds how late
 * recovery is noticed: at most 10 s, which keeps "everything queued at Exchange within 15 s of
 * the end of an outage of any length" (a 30 s cap could not) while still one attempt per 10 s.
 */
export const HOLD_MAX_MS = 10_000;

export interface Ticket {
  readonly epoch: number;
  readonly probe: boolean;
}

export type Admission = { kind: 'go'; ticket: Ticket } | { kind: 'wait'; until: number | null };

export class AccountHold {
  private holding = false;
  private epoch = 0;
  private delayMs = 0;
  private nextProbeAt = 0;
  private probing = false;
  private since = 0;

  constructor(
    private readonly baseMs = HOLD_BASE_MS,
    private readonly maxMs = HOLD_MAX_MS,
  ) {}

  /** May a delivery start now? While holding: one probe once its time has come. */
  admit(now: number): Admission {
    if (!this.holding) return { kind: 'go', ticket: { epoch: this.epoch, probe: false } };
    if (this.probing) return { kind: 'wait', until: null };
    if (now < this.nextProbeAt) return { kind: 'wait', until: this.nextProbeAt };
    this.probing = true;
    return { kind: 'go', ticket: { epoch: this.epoch, probe: true } };
  }

  /** The account's failure. Returns true when it changed the state (start of a hold, or a failed probe). */
  fault(ticket: Ticket, now: number): boolean {
    if (ticket.probe) {
      this.probing = false;
      this.delayMs = this.delayMs === 0 ? this.baseMs : Math.min(this.maxMs, this.delayMs * 2);
    } else if (!this.holding && ticket.epoch === this.epoch) {
      this.holding = true;
      this.since = now;
      this.delayMs = this.baseMs;
    } else {
      return false; // the same outage, already counted
    }
    this.nextProbeAt = now + this.delayMs;
    this.epoch++;
    return true;
  }

  /** Upstream answered. Returns true when this ended a hold. */
  reachable(ticket: Ticket): boolean {
    if (ticket.probe) this.probing = false;
    if (!this.holding) return false;
    this.holding = false;
    this.delayMs = 0;
    this.epoch++;
    return true;
  }

  /** A delivery ended without reaching upstream (lost a race, a local problem, stopping): a probe may go again. */
  settle(ticket: Ticket): void {
    if (ticket.probe) this.probing = false;
  }

  /** Something was fixed (reload, login, `queue retry`): probe at once, backoff from the start. */
  probeNow(now: number): void {
    if (!this.holding) return;
    this.delayMs = 0;
    this.nextProbeAt = now;
  }

  /** Lifts a hold without a probe (new settings replaced the ones that failed). */
  reset(): void {
    this.holding = false;
    this.probing = false;
    this.delayMs = 0;
    this.epoch++;
  }

  get isHolding(): boolean {
    return this.holding;
  }

  /** For health: when the hold began and when the next probe may go (monotonic ms), or null when open. */
  get state(): { since: number; nextProbeAt: number; probing: boolean } | null {
    return this.holding ? { since: this.since, nextProbeAt: this.nextProbeAt, probing: this.probing } : null;
  }
}
