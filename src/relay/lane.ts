import type { AccountConfig } from '../config/index.js';
import { TokenError } from '../oauth/index.js';
import { AlertLog } from '../observability/alerts.js';
import type { Logger } from '../observability/logger.js';
import { AccountHold, type Ticket } from './accountHold.js';
import type { AccountTokenSource, MessageTransport } from './accountFactory.js';
import type { Clock } from './clock.js';
import type { AccountEffect } from './outcome.js';
import { Pacer } from './pacing.js';
import { Scheduler } from './scheduler.js';

export interface UpstreamHealth {
  ok: boolean;
  lastReplyAt: string | null;
  lastUnreachableAt: string | null;
}

export interface LaneHealth {
  token: ReturnType<AccountTokenSource['health']>;
  upstream: UpstreamHealth;
  /** ISO time until which deliveries rest (throttling, quota); null when not paused. */
  pausedUntil: string | null;
  /** Set while the account holds after an unreachable upstream or a configuration problem: why, and what to do when known. */
  holding: { since: string; nextProbeAt: string; probing: boolean; reason: string | null; advice: string | null } | null;
  /** Why deliveries rest (the reply that paused them), while pausedUntil is set. */
  pauseReason: string | null;
  waiting: number;
  inFlight: number;
}

/** How a delivery ended, for the lane: where the message goes next. */
export type DeliveryEnd =
  /** Delivered, failed, quarantined, or no longer in the queue: the lane forgets it. */
  | { next: 'done' }
  /** Deferred by the message's own failure: due again at `at` (monotonic ms). */
  | { next: 'retry-at'; at: number }
  /** Not attempted, or the account's failure: back in the queue at the time it was due. */
  | { next: 'keep-place' };

/** What the lane needs from the worker to deliver one message. */
export type DeliverFn = (lane: AccountLane, id: string, ticket: Ticket) => Promise<DeliveryEnd>;

/**
 * Everything one Microsoft 365 account delivers with, and the one owner of where each of its
 * messages is: waiting (due-time index) or in flight. Its hold (account-level failures, probes),
 * pacing and alerts are its own, as are its token source and transport, so a paused, throttled or
 * misconfigured account holds only its own mail.
 */
export class AccountLane {
  private readonly waiting = new Scheduler();
  /** In-flight deliveries, with the due time each had (it keeps its place if not charged). */
  private readonly inFlight = new Map<string, { done: Promise<void>; dueAt: number }>();
  private readonly hold = new AccountHold();
  private readonly pacer: Pacer;
  readonly alerts: AlertLog;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private retired = false;
  private readonly waits = new AbortController();
  /** When Exchange last answered (any reply) and when it last could not be reached (wall ms). */
  private readonly upstream = { lastReplyAt: 0, lastUnreachableAt: 0 };
  /** What last held or paused the account, for health. */
  private cause: { reason: string | null; advice: string | null } = { reason: null, advice: null };

  constructor(
    private settings: AccountConfig,
    private tokenSource: AccountTokenSource,
    private messageTransport: MessageTransport,
    private readonly logger: Logger,
    private readonly clock: Clock,
    private readonly deliver: DeliverFn,
    private readonly rehome: (id: string, dueAt: number, from: AccountLane) => void,
  ) {
    this.pacer = new Pacer(settings.rateLimit, clock);
    this.alerts = new AlertLog(logger);
  }

  get name(): string {
    return this.settings.name;
  }

  /** The account's settings, token source and transport: replaced together on reload (replace()). */
  get account(): AccountConfig {
    return this.settings;
  }

  get tokens(): AccountTokenSource {
    return this.tokenSource;
  }

  get transport(): MessageTransport {
    return this.messageTransport;
  }

  /** Aborted when the lane is retired or the worker stops: waits give up. */
  get signal(): AbortSignal {
    return this.waits.signal;
  }

  /** Starts background token renewal, asks for a token now (a credential problem shows at start), and delivers. */
  activate(): void {
    const { tokens, name } = this;
    this.running = true;
    tokens.startBackgroundRefresh();
    tokens.getToken().catch((err: unknown) => {
      if (err instanceof TokenError) {
        this.logger.error({ event: 'alert', alert: 'token', account: name, advice: err.advice, kind: err.kind }, `cannot get an access token for account ${name}: ${err.message}`);
      }
    });
    this.pump();
  }

  // --- where messages are -------------------------------------------------------------------

  /**
   * A queued message is due at `dueAt` (monotonic ms): scheduled, or rescheduled if it was
   * waiting already. An id in flight is left alone: its delivery decides where it goes next.
   */
  enqueue(id: string, dueAt: number): void {
    if (this.inFlight.has(id)) return;
    this.waiting.schedule(id, dueAt);
    this.pump();
  }

  /** schedule without starting deliveries, for batches (followed by pump()). */
  place(id: string, dueAt: number): void {
    if (!this.inFlight.has(id)) this.waiting.schedule(id, dueAt);
  }

  /** Takes a waiting id out (it moves to another lane). */
  withdraw(id: string): void {
    this.waiting.remove(id);
  }

  where(id: string): 'waiting' | 'in-flight' | null {
    return this.inFlight.has(id) ? 'in-flight' : this.waiting.has(id) ? 'waiting' : null;
  }

  /** Every waiting id, earliest first, taken out (to hand them to another lane). */
  drainWaiting(): Array<{ id: string; at: number }> {
    return this.waiting.drain();
  }

  /** Messages waiting and in flight. */
  get size(): number {
    return this.waiting.size + this.inFlight.size;
  }

  // --- account state ------------------------------------------------------------------------

  /** Applies what an attempt said about the account (and why, for health). Returns 'held' or 'opened' when the state changed. */
  report(effect: AccountEffect, ticket: Ticket, cause?: { reason?: string; advice?: string }): 'held' | 'opened' | null {
    const now = this.clock.now();
    if (effect.kind !== 'reachable') this.cause = { reason: cause?.reason ?? null, advice: cause?.advice ?? null };
    switch (effect.kind) {
      case 'reachable':
        this.upstream.lastReplyAt = this.clock.wall();
        return this.hold.reachable(ticket) ? 'opened' : null;
      case 'hold':
        if (effect.upstream === 'unreachable') this.upstream.lastUnreachableAt = this.clock.wall();
        else if (effect.upstream === 'replied') this.upstream.lastReplyAt = this.clock.wall();
        return this.hold.fault(ticket, now) ? 'held' : null;
      case 'pause':
        this.upstream.lastReplyAt = this.clock.wall();
        this.hold.reachable(ticket);
        this.pacer.pause(now + effect.ms);
        return null;
    }
  }

  /** Something was fixed (reload, login, `queue retry`): a holding account probes at once. */
  probeNow(): void {
    this.hold.probeNow(this.clock.now());
    this.pump();
  }

  /** Next probe time, for logs: how long the account now waits. */
  get holdState(): { since: number; nextProbeAt: number } | null {
    return this.hold.state;
  }

  // --- lifecycle ----------------------------------------------------------------------------

  /**
   * New settings for the same account (reload): new token source and transport at once; the old
   * transport closes once the deliveries already under way have finished. A hold or pause caused
   * by the old settings is lifted.
   */
  replace(account: AccountConfig, tokens: AccountTokenSource, transport: MessageTransport): void {
    const old = { tokens: this.tokenSource, transport: this.messageTransport };
    this.settings = account;
    this.tokenSource = tokens;
    this.messageTransport = transport;
    this.pacer.setLimit(account.rateLimit);
    old.tokens.stopBackgroundRefresh();
    void this.settled().then(() => old.transport.close());
    this.hold.reset();
    this.pacer.resume();
    this.alerts.clear('configuration');
    if (this.running) this.activate();
  }

  /** Same settings, new (frozen) configuration object after a reload. */
  update(account: AccountConfig): void {
    this.settings = account;
    this.pacer.setLimit(account.rateLimit);
    this.pump();
  }

  /** Takes no new deliveries; waits in progress give up (the messages stay queued). */
  halt(reason: string): void {
    this.running = false;
    this.clearTimer();
    this.waits.abort(new Error(reason));
  }

  /** The account was removed by a reload: its waiting mail is handed back by the caller. */
  retire(): void {
    this.retired = true;
    this.halt(`account ${this.name} was removed`);
  }

  get isRetired(): boolean {
    return this.retired;
  }

  /** Resolves when the deliveries under way have ended. */
  settled(): Promise<void> {
    return Promise.allSettled([...this.inFlight.values()].map((f) => f.done)).then(() => undefined);
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** Waits for a pacing slot: resolves with the function to call when the submission has ended. */
  acquireSlot(): Promise<() => void> {
    return this.pacer.acquire(this.signal);
  }

  /** Whether the account holds now (a delivery that waited for pacing looks again before it claims). */
  get isHolding(): boolean {
    return this.hold.isHolding;
  }

  /** Stops renewal and closes the transport (after in-flight deliveries have settled or were abandoned). */
  close(): void {
    this.clearTimer();
    this.tokens.stopBackgroundRefresh();
    this.transport.close();
  }

  health(): LaneHealth {
    const { lastReplyAt, lastUnreachableAt } = this.upstream;
    const paused = this.pacer.pausedUntilMs;
    const now = this.clock.now();
    const wallOf = (mono: number) => new Date(this.clock.wall() + (mono - now)).toISOString();
    const hold = this.hold.state;
    return {
      token: this.tokens.health(),
      upstream: {
        ok: lastUnreachableAt <= lastReplyAt,
        lastReplyAt: lastReplyAt ? new Date(lastReplyAt).toISOString() : null,
        lastUnreachableAt: lastUnreachableAt ? new Date(lastUnreachableAt).toISOString() : null,
      },
      pausedUntil: paused > now ? wallOf(paused) : null,
      holding: hold && { since: wallOf(hold.since), nextProbeAt: wallOf(hold.nextProbeAt), probing: hold.probing, ...this.cause },
      pauseReason: paused > now ? this.cause.reason : null,
      waiting: this.waiting.size,
      inFlight: this.inFlight.size,
    };
  }

  // --- the loop -----------------------------------------------------------------------------

  /** Starts deliveries while connections are free, messages are due and the account admits them. */
  pump(): void {
    if (!this.running || this.retired) return;
    while (this.inFlight.size < this.account.maxConnections) {
      const now = this.clock.now();
      const due = this.waiting.nextDueAt();
      if (due === null || due > now) break;
      const admission = this.hold.admit(now);
      if (admission.kind === 'wait') break;
      const id = this.waiting.takeDue(now);
      if (id === null) {
        this.hold.settle(admission.ticket);
        break;
      }
      this.start(id, due, admission.ticket);
    }
    this.armTimer();
  }

  private start(id: string, dueAt: number, ticket: Ticket): void {
    const done = this.deliver(this, id, ticket)
      .catch((err: unknown): DeliveryEnd => {
        this.logger.error({ msgId: id, account: this.name, err }, 'delivery crashed; the message stays in the spool');
        return { next: 'keep-place' };
      })
      .then((end) => {
        this.inFlight.delete(id);
        this.hold.settle(ticket);
        const next = end.next === 'retry-at' ? end.at : end.next === 'keep-place' ? dueAt : null;
        if (next !== null && this.retired) this.rehome(id, next, this);
        else if (next !== null) this.waiting.schedule(id, next);
        this.pump();
      });
    this.inFlight.set(id, { done, dueAt });
  }

  /** Wakes the lane when its earliest waiting message becomes due, or its next probe may go. */
  private armTimer(): void {
    this.clearTimer();
    if (!this.running || this.retired) return;
    const due = this.waiting.nextDueAt();
    if (due === null) return;
    const hold = this.hold.state;
    const at = hold ? (hold.probing ? null : Math.max(due, hold.nextProbeAt)) : this.inFlight.size < this.account.maxConnections ? due : null;
    if (at === null) return; // a delivery ending will pump
    const delay = Math.max(0, Math.min(at - this.clock.now(), 2_147_000_000));
    this.timer = setTimeout(() => this.pump(), delay);
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
