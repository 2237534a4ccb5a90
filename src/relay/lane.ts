import type { AccountConfig } from '../config/index.js';
import { TokenError } from '../oauth/index.js';
import { AlertLog } from '../observability/alerts.js';
import type { Logger } from '../observability/logger.js';
import type { AccountTokenSource, MessageTransport } from './accountFactory.js';
import { CircuitBreaker } from './breaker.js';
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
  /** ISO time until which deliveries rest (throttling, quota, unreachable upstream); null when not paused. */
  pausedUntil: string | null;
  waiting: number;
  inFlight: number;
}

/**
 * Everything one Microsoft 365 account delivers with: its own due-time index, in-flight count,
 * pacing, circuit breaker, alerts, token source and transport. Nothing here is shared between
 * accounts, so a paused, throttled or misconfigured account holds only its own delivery slots.
 */
export class AccountLane {
  readonly scheduler = new Scheduler();
  readonly pacer: Pacer;
  readonly breaker = new CircuitBreaker();
  readonly inFlight = new Set<Promise<void>>();
  readonly alerts: AlertLog;
  /** Set when the account was removed by a reload: it takes no new messages. */
  retired = false;
  timer: NodeJS.Timeout | null = null;
  private readonly waits = new AbortController();
  /** When Exchange last answered (any reply) and when it last could not be reached. */
  private readonly upstream = { lastReplyAt: 0, lastUnreachableAt: 0 };

  constructor(
    public account: AccountConfig,
    public tokens: AccountTokenSource,
    public transport: MessageTransport,
    private readonly logger: Logger,
  ) {
    this.pacer = new Pacer(account.rateLimit);
    this.alerts = new AlertLog(logger);
  }

  get name(): string {
    return this.account.name;
  }

  /** Aborted when the lane is retired or the worker stops: deliveries waiting for a pacing slot give up. */
  get signal(): AbortSignal {
    return this.waits.signal;
  }

  /** Starts background token renewal and asks for a token now, so a credential problem shows at start. */
  activate(): void {
    const { tokens, name } = this;
    tokens.startBackgroundRefresh();
    tokens.getToken().catch((err: unknown) => {
      if (err instanceof TokenError) {
        this.logger.error({ event: 'alert', alert: 'token', account: name, advice: err.advice, kind: err.kind }, `cannot get an access token for account ${name}: ${err.message}`);
      }
    });
  }

  /**
   * New settings for the same account (reload): new token source and transport at once; the old
   * transport closes once the deliveries already under way have finished. A pause or breaker
   * caused by the old settings is lifted.
   */
  replace(account: AccountConfig, tokens: AccountTokenSource, transport: MessageTransport, activate: boolean): void {
    const old = { tokens: this.tokens, transport: this.transport };
    this.account = account;
    this.tokens = tokens;
    this.transport = transport;
    this.pacer.setLimit(account.rateLimit);
    old.tokens.stopBackgroundRefresh();
    void Promise.allSettled([...this.inFlight]).then(() => old.transport.close());
    this.breaker.reset();
    this.pacer.resume();
    this.alerts.clear('configuration');
    if (activate) this.activate();
  }

  /** Same settings, new (frozen) configuration object after a reload. */
  update(account: AccountConfig): void {
    this.account = account;
    this.pacer.setLimit(account.rateLimit);
  }

  abortWaits(reason: string): void {
    this.waits.abort(new Error(reason));
  }

  /** Stops renewal and closes the transport (after in-flight deliveries have settled or were abandoned). */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.tokens.stopBackgroundRefresh();
    this.transport.close();
  }

  noteReply(): void {
    this.upstream.lastReplyAt = Date.now();
  }

  noteUnreachable(): void {
    this.upstream.lastUnreachableAt = Date.now();
  }

  health(): LaneHealth {
    const { lastReplyAt, lastUnreachableAt } = this.upstream;
    const paused = this.pacer.pausedUntilMs;
    return {
      token: this.tokens.health(),
      upstream: {
        ok: lastUnreachableAt <= lastReplyAt,
        lastReplyAt: lastReplyAt ? new Date(lastReplyAt).toISOString() : null,
        lastUnreachableAt: lastUnreachableAt ? new Date(lastUnreachableAt).toISOString() : null,
      },
      pausedUntil: paused > Date.now() ? new Date(paused).toISOString() : null,
      waiting: this.scheduler.size,
      inFlight: this.inFlight.size,
    };
  }
}
