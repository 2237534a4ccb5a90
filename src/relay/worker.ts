import { Readable } from 'node:stream';
import { DEFAULT_ACCOUNT, formatDuration, type AccountConfig, type RelayConfig } from '../config/index.js';
import { TokenError } from '../oauth/index.js';
import type { Logger } from '../observability/logger.js';
import { nextAttempt } from '../retry/policy.js';
import { crashPoint } from '../spool/crashPoints.js';
import type { MessageMeta, Spool } from '../spool/index.js';
import { defaultAccountFactory, type AccountFactory } from './accountFactory.js';
import { classify, describeFailure, type Classification, type UpstreamFailure } from './classify.js';
import { readHeaderBlock, serializeHeaderBlock } from './headers.js';
import type { AccountLane, LaneHealth, UpstreamHealth } from './lane.js';
import { LaneSet, type ReconfigurePlan } from './laneSet.js';
import { applySenderPolicy } from './senderPolicy.js';
import { UpstreamError, type SendResult } from './transport.js';

export interface WorkerOptions {
  config: RelayConfig;
  spool: Spool;
  logger: Logger;
  /** Builds each account's token source and transport; the real ones by default. */
  factory?: AccountFactory;
  /** Called once a message is recorded as failed for good (for failure notices); must not throw. */
  onFailed?: (meta: MessageMeta, expired: boolean) => Promise<void>;
}

/** The account a message was routed to when it was queued (`default` for older messages). */
export function accountOf(meta: Pick<MessageMeta, 'route'>): string {
  return meta.route?.account ?? DEFAULT_ACCOUNT;
}

/**
 * Delivers queued messages to Microsoft 365, one lane per account (see AccountLane): each lane at
 * most its maxConnections at once, paced to its rateLimit, with its own token source and transport.
 * Each outcome is recorded in the spool before the next step (delivered: removed; transient:
 * deferred with its next attempt; permanent: failed with the reason).
 */
export class RelayWorker {
  private readonly lanes: LaneSet;
  /** The lane whose scheduler holds each scheduled id (an id is scheduled in one lane at a time). */
  private readonly placement = new Map<string, AccountLane>();
  /** Ids taken from a scheduler and not finished yet (waiting for pacing, or being delivered). */
  private readonly busy = new Set<string>();
  /** Replaced whole on reload (SIGHUP). */
  private config: RelayConfig;
  private running = false;

  /** Throws AccountSetupError (or TokenError for an unreadable certificate) when an account cannot be set up. */
  constructor(private readonly options: WorkerOptions) {
    this.config = options.config;
    this.lanes = new LaneSet(options.config, options.factory ?? defaultAccountFactory, options.logger);
  }

  private get log(): Logger {
    return this.options.logger;
  }

  /**
   * Starts delivering what recovery found in the queue. Metadata is read in the background, a
   * batch at a time, and each batch can be delivered while the next is read: a restart with a
   * large queue starts sending at once.
   */
  start(queuedIds: readonly string[]): Promise<void> {
    this.running = true;
    for (const lane of this.lanes.active()) lane.activate();
    this.pumpAll();
    return this.load(queuedIds);
  }

  private async load(ids: readonly string[]): Promise<void> {
    try {
      for await (const batch of this.options.spool.loadQueued(ids)) {
        if (!this.running) return;
        for (const meta of batch) {
          if (!this.busy.has(meta.id)) this.place(meta.id, dueAt(meta), accountOf(meta));
        }
        this.pumpAll();
      }
    } catch (err) {
      this.log.error({ err: errorText(err) }, 'reading the queue failed; the periodic rescan will pick messages up');
    }
  }

  /** A message is queued (just received, or put back by an administrator) for `account`. */
  enqueue(id: string, at = 0, account: string = DEFAULT_ACCOUNT): void {
    this.schedule(id, at, account);
  }

  /**
   * Puts an id in the lane of its account; an account that no longer exists (removed by a reload)
   * is delivered by the default account. An id already scheduled in another lane moves.
   */
  private schedule(id: string, at: number, account: string): void {
    const lane = this.place(id, at, account);
    if (lane) this.pump(lane);
  }

  /** schedule() without starting deliveries, for batches (followed by pumpAll). */
  private place(id: string, at: number, account: string): AccountLane | undefined {
    const lane = this.lanes.get(account) ?? this.lanes.get(DEFAULT_ACCOUNT);
    if (!lane) return undefined;
    const previous = this.placement.get(id);
    if (previous && previous !== lane) previous.scheduler.remove(id);
    this.placement.set(id, lane);
    lane.scheduler.schedule(id, at);
    return lane;
  }

  private pumpAll(): void {
    for (const lane of this.lanes.active()) this.pump(lane);
  }

  /**
   * Re-reads queue/ and schedules every message at its recorded time in its account's lane: after
   * a `queue` command changed something, after a reload added or removed accounts, and
   * periodically as a safety net.
   */
  async rescan(): Promise<void> {
    for (const id of await this.options.spool.ids('queue')) {
      if (this.busy.has(id)) continue;
      try {
        const meta = await this.options.spool.readMeta('queue', id);
        this.place(id, dueAt(meta), accountOf(meta));
      } catch {
        // claimed or changed meanwhile: the next rescan sees it
      }
    }
    this.pumpAll();
  }

  /**
   * Prepares a reloaded configuration (see LaneSet.prepare): throws, changing nothing, when an
   * account cannot be set up. On apply, the retry policy and every account's settings take effect;
   * a removed account's waiting mail goes to the default account, and mail routed to an account
   * that came or went is rescheduled by its recorded route.
   */
  prepareReconfigure(config: RelayConfig): ReconfigurePlan {
    const plan = this.lanes.prepare(config, { activate: this.running, onRetire: (lane) => this.retired(lane) });
    return {
      discard: plan.discard,
      apply: () => {
        const before = names(this.lanes.active());
        plan.apply();
        this.config = config;
        this.pumpAll();
        if (before !== names(this.lanes.active())) {
          this.rescan().catch((err: unknown) => this.log.error({ err: errorText(err) }, 'queue rescan after reload failed'));
        }
      },
    };
  }

  /** prepareReconfigure(config).apply(). */
  reconfigure(config: RelayConfig): void {
    this.prepareReconfigure(config).apply();
  }

  /** A removed account's waiting mail moves to the default account's lane. */
  private retired(lane: AccountLane): void {
    const waiting = lane.scheduler.drain();
    for (const { id, at } of waiting) this.place(id, at, lane.name);
    this.log.warn(
      { event: 'account-removed', account: lane.name, moved: waiting.length, inFlight: lane.inFlight.size },
      `account ${lane.name} was removed: deliveries under way finish, its waiting mail goes to the default account`,
    );
  }

  get queueSize(): number {
    let size = 0;
    for (const lane of this.lanes.all()) size += lane.scheduler.size + lane.inFlight.size;
    return size;
  }

  /**
   * Stops taking messages; lets deliveries under way finish for up to `graceMs`, then closes the
   * upstream connections (those messages are deferred and retried after the restart).
   */
  async stop(graceMs = 10_000): Promise<void> {
    this.running = false;
    const lanes = this.lanes.all();
    for (const lane of lanes) {
      if (lane.timer) clearTimeout(lane.timer);
      lane.abortWaits('relay is stopping');
    }
    const all = Promise.allSettled(lanes.flatMap((lane) => [...lane.inFlight]));
    let graceTimer: NodeJS.Timeout | undefined;
    const grace = new Promise<'timeout'>((resolve) => {
      graceTimer = setTimeout(() => resolve('timeout'), graceMs);
    });
    const outcome = await Promise.race([all.then(() => 'done' as const), grace]);
    clearTimeout(graceTimer);
    for (const lane of lanes) lane.close();
    if (outcome === 'timeout') await all;
  }

  /** Starts deliveries of this lane while it has free connections and due messages. */
  private pump(lane: AccountLane): void {
    if (!this.running || lane.retired) return;
    while (lane.inFlight.size < lane.account.maxConnections) {
      const id = lane.scheduler.takeDue(Date.now());
      if (!id) break;
      this.placement.delete(id);
      this.busy.add(id);
      const delivery = this.deliver(lane, id).catch((err: unknown) => {
        this.log.error({ msgId: id, account: lane.name, err: errorText(err) }, 'delivery crashed; the message stays in the spool');
      });
      lane.inFlight.add(delivery);
      void delivery.finally(() => {
        lane.inFlight.delete(delivery);
        this.busy.delete(id);
        this.pump(lane);
      });
    }
    this.armTimer(lane);
  }

  /** Wakes the lane when its earliest deferred message becomes due. */
  private armTimer(lane: AccountLane): void {
    if (lane.timer) clearTimeout(lane.timer);
    lane.timer = null;
    const next = lane.scheduler.nextDueAt();
    if (next === null || !this.running) return;
    const delay = Math.max(0, Math.min(next - Date.now(), 2_147_000_000));
    lane.timer = setTimeout(() => this.pump(lane), delay);
    lane.timer.unref();
  }

  private async deliver(lane: AccountLane, id: string): Promise<void> {
    let done: () => void;
    try {
      done = await lane.pacer.acquire(lane.signal);
    } catch {
      // Stopping (the message stays queued, untouched) or the account was removed: it goes to
      // the default account's lane.
      if (this.running) this.schedule(id, 0, lane.name);
      return;
    }
    try {
      await this.claimAndDeliver(lane, id);
    } finally {
      done();
    }
  }

  private async claimAndDeliver(lane: AccountLane, id: string): Promise<void> {
    const meta = await this.options.spool.claim(id);
    if (!meta) return; // deleted, held or claimed meanwhile
    const routed = accountOf(meta);
    if (routed !== lane.name) {
      this.log.warn(
        { msgId: id, event: 'route-fallback', account: lane.name, routedTo: routed },
        `account ${routed} no longer exists: delivering with the ${lane.name} account`,
      );
    }

    let outcome: { result?: SendResult; error?: UpstreamError | TokenError };
    try {
      outcome = await this.attempt(lane, meta);
      if (outcome.error && classifyError(outcome.error).class === 'token-rejected') {
        // Exchange refused a token msal still holds (revoked, or the mailbox permission changed):
        // fetch a fresh one and try once more at once.
        this.log.warn({ msgId: id, account: lane.name, event: 'token-rejected' }, 'Exchange rejected the access token; renewing it and retrying');
        outcome = await lane.tokens.getToken({ forceRefresh: true }).then(
          () => this.attempt(lane, meta),
          (err: TokenError) => ({ error: err }),
        );
      }
    } catch (err) {
      outcome = { error: new UpstreamError({ message: errorText(err) }, [], { cause: err }) };
    }
    await this.record(lane, meta, outcome);
  }

  private async attempt(lane: AccountLane, meta: MessageMeta): Promise<{ result?: SendResult; error?: UpstreamError | TokenError }> {
    // One attempt uses one set of parts, even if a reload replaces them meanwhile.
    const { tokens, transport, account: m365 } = lane;
    try {
      // Asking first means a token problem is known as such, without opening a connection.
      await tokens.getToken();
      const block = await readHeaderBlock(this.options.spool.dataPath(meta.id));
      const decision = applySenderPolicy(
        { mailbox: m365.mailbox, sendAs: m365.sendAs },
        { envelopeFrom: meta.envelope.from, header: block, messageId: meta.id, receivedAt: new Date(meta.receivedAt) },
      );
      if (decision.changes.length > 0 && meta.attempts === 0) {
        this.log.info({ msgId: meta.id, account: lane.name, event: 'rewritten', changes: decision.changes }, 'sender policy applied');
      }
      const to = meta.recipients.filter((r) => r.status === 'pending').map((r) => r.address);
      const body = this.options.spool.openData(meta.id, block.bodyOffset);
      const raw = Readable.from(concatStreams(serializeHeaderBlock(decision.header), body));
      const result = await transport.send({ from: decision.envelopeFrom, to }, raw, { messageId: meta.id, signal: lane.signal });
      crashPoint('after-upstream-accept');
      return { result };
    } catch (err) {
      if (err instanceof UpstreamError || err instanceof TokenError) return { error: err };
      throw err;
    }
  }

  /** Writes the outcome of an attempt to the spool and schedules what remains. */
  private async record(lane: AccountLane, meta: MessageMeta, outcome: { result?: SendResult; error?: UpstreamError | TokenError }): Promise<void> {
    const account = lane.name;
    const now = Date.now();
    const attempts = meta.attempts + 1;
    const recipients = meta.recipients.map((r) => ({ ...r }));
    const pending = () => recipients.filter((r) => r.status === 'pending');
    const byAddress = (address: string) => recipients.find((r) => r.status === 'pending' && r.address.toLowerCase() === address.toLowerCase());
    let messageClass: Classification | null = null;
    let lastError: string | null = null;
    /** Stable label for the failed log line and metric. */
    let failClass = 'permanent-failure';
    noteUpstream(lane, outcome);

    const rejections = outcome.result?.rejected ?? (outcome.error instanceof UpstreamError ? outcome.error.rejected : []);
    for (const rejection of rejections) {
      const r = byAddress(rejection.address);
      if (!r) continue;
      const cls = classify({ responseCode: rejection.responseCode, response: rejection.response });
      r.lastError = describeFailure({ response: rejection.response });
      if (cls.class === 'permanent') {
        r.status = 'failed';
        failClass = cls.reason;
        this.log.warn({ msgId: meta.id, account, event: 'recipient-failed', recipient: r.address, reason: r.lastError }, 'recipient rejected permanently');
      }
      lastError = r.lastError;
    }

    if (outcome.result) {
      for (const address of outcome.result.accepted) {
        const r = byAddress(address);
        if (r) r.status = 'delivered';
      }
      const delivered = outcome.result.accepted.length;
      if (delivered > 0) {
        const latencySeconds = (now - Date.parse(meta.receivedAt)) / 1000;
        this.log.info(
          { msgId: meta.id, account, event: 'delivered', recipients: delivered, upstreamReply: outcome.result.response, upstreamQueueId: upstreamQueueId(outcome.result.response), attempts, latencySeconds },
          'delivered to Microsoft 365',
        );
        lane.alerts.clear('configuration');
        lane.breaker.reset();
      }
    } else if (outcome.error) {
      const failure = failureOf(outcome.error);
      messageClass = classify(failure);
      // An envelope error lists per-recipient rejections, handled above; the message-level text
      // ("all recipients were rejected") only matters when none was attributed.
      if (!(outcome.error instanceof UpstreamError && outcome.error.rejected.length > 0)) {
        lastError = describeFailure(failure);
        if (messageClass.class === 'permanent') {
          failClass = messageClass.reason;
          for (const r of pending()) {
            r.status = 'failed';
            r.lastError = lastError;
          }
        }
        this.react(lane, meta.id, messageClass, outcome.error, lastError);
      } else {
        messageClass = null;
      }
    }

    const next: MessageMeta = { ...meta, recipients, attempts, lastError: lastError ?? meta.lastError };
    if (pending().length === 0) {
      if (recipients.every((r) => r.status === 'delivered')) {
        await this.options.spool.complete(meta.id);
        return;
      }
      const reason = lastError ?? recipients.find((r) => r.status === 'failed')?.lastError ?? 'failed';
      const failed = { ...next, lastError: reason, nextAttemptAt: null };
      await this.options.spool.fail(failed);
      this.log.warn({ msgId: meta.id, account, event: 'failed', reason, class: failClass, attempts }, 'message failed permanently');
      await this.options.onFailed?.(failed, false);
      return;
    }

    const minDelayMs = messageClass ? minDelayFor(lane.account, messageClass, outcome.error) : undefined;
    const lifetimeStart = Date.parse(meta.requeuedAt ?? meta.receivedAt);
    const decision = nextAttempt(this.config.retry, { attempts, receivedAt: lifetimeStart, now, minDelayMs });
    if (decision.action === 'expire') {
      const reason = `expired after ${formatDuration(now - lifetimeStart)} in the queue; last error: ${next.lastError ?? 'none'}`;
      for (const r of pending()) {
        r.status = 'failed';
        r.lastError = r.lastError ?? next.lastError ?? 'expired';
      }
      const failed = { ...next, recipients, lastError: reason };
      await this.options.spool.fail(failed);
      this.log.warn({ msgId: meta.id, account, event: 'failed', reason, class: 'expired', attempts }, 'message expired');
      await this.options.onFailed?.(failed, true);
      return;
    }
    const nextAttemptAt = new Date(decision.at).toISOString();
    await this.options.spool.defer({ ...next, nextAttemptAt });
    this.log.info(
      { msgId: meta.id, account, event: 'deferred', reason: next.lastError, class: messageClass?.reason ?? 'recipient-deferred', attempts, nextAttemptAt, retryIn: formatDuration(decision.delayMs) },
      'delivery deferred',
    );
    this.schedule(meta.id, decision.at, accountOf(meta));
  }

  /** For /readyz and diagnostics: each account's token, upstream and pause state. */
  health(): Record<string, LaneHealth> {
    return Object.fromEntries(this.lanes.active().map((lane) => [lane.name, lane.health()]));
  }

  /** For /readyz: is Exchange answering every account, as far as the last attempts tell? */
  upstreamHealth(): UpstreamHealth & { accounts: Record<string, UpstreamHealth> } {
    const accounts = Object.fromEntries(this.lanes.active().map((lane) => [lane.name, lane.health().upstream]));
    const all = Object.values(accounts);
    const latest = (key: 'lastReplyAt' | 'lastUnreachableAt') => all.map((h) => h[key]).filter((v): v is string => v !== null).sort().pop() ?? null;
    return { ok: all.every((h) => h.ok), lastReplyAt: latest('lastReplyAt'), lastUnreachableAt: latest('lastUnreachableAt'), accounts };
  }

  /** Side effects of a failure on the whole account (mailbox): pauses and alerts. */
  private react(lane: AccountLane, id: string, cls: Classification, error: UpstreamError | TokenError, lastError: string | null): void {
    const now = Date.now();
    const account = lane.name;
    // Failures that concern the mailbox, not the message: hold this account's deliveries for a
    // while rather than asking Entra or Exchange again for each queued message.
    if (cls.reason === 'network' || cls.reason === 'token-unavailable' || cls.class === 'configuration') {
      const until = lane.breaker.trip(now);
      lane.pacer.pause(until);
      this.log.warn(
        { msgId: id, account, event: 'upstream-unavailable', reason: lastError, consecutiveFailures: lane.breaker.consecutiveFailures, holdFor: formatDuration(until - now) },
        'upstream unavailable: holding deliveries',
      );
    }
    const { quotaPause, mailbox } = lane.account;
    if (cls.class === 'throttled') {
      // Graph says how long to wait (Retry-After); SMTP replies do not, so the configured pause applies.
      const pause = restFor(lane.account, error);
      lane.pacer.pause(now + pause);
      this.log.warn({ msgId: id, account, event: 'throttled', reason: lastError, pauseFor: formatDuration(pause) }, 'Microsoft 365 throttled the mailbox: slowing down');
    }
    if (cls.class === 'quota') {
      lane.pacer.pause(now + quotaPause);
      lane.alerts.raise('quota', { account, reason: lastError }, `Exchange Online daily recipient quota reached for ${mailbox}; delivery paused for ${formatDuration(quotaPause)}`);
    }
    if (cls.class === 'configuration') {
      const advice = error instanceof TokenError ? error.advice : cls.advice;
      lane.alerts.raise(
        'configuration',
        { msgId: id, account, reason: lastError, advice },
        `delivery through account ${account} blocked by a configuration problem: ${advice ?? lastError}. Mail stays queued until it is fixed.`,
      );
    }
  }
}

function noteUpstream(lane: AccountLane, outcome: { result?: SendResult; error?: UpstreamError | TokenError }): void {
  if (outcome.result || (outcome.error instanceof UpstreamError && outcome.error.failure.responseCode !== undefined)) lane.noteReply();
  else if (outcome.error instanceof UpstreamError) lane.noteUnreachable();
}

function minDelayFor(account: AccountConfig, cls: Classification, error?: UpstreamError | TokenError): number | undefined {
  if (cls.class === 'quota') return account.quotaPause;
  if (cls.class === 'throttled') return restFor(account, error);
  return undefined;
}

/** How long a throttled mailbox rests: Graph's Retry-After when it gave one, else throttlePause. */
function restFor(account: AccountConfig, error?: UpstreamError | TokenError): number {
  const retryAfter = error instanceof UpstreamError ? error.failure.retryAfterMs : undefined;
  return retryAfter !== undefined ? retryAfter : account.throttlePause;
}

function names(lanes: AccountLane[]): string {
  return lanes.map((lane) => lane.name).sort().join(',');
}

function dueAt(meta: MessageMeta): number {
  return meta.nextAttemptAt ? Date.parse(meta.nextAttemptAt) : 0;
}

function classifyError(error: UpstreamError | TokenError): Classification {
  return classify(failureOf(error));
}

function failureOf(error: UpstreamError | TokenError): UpstreamFailure {
  if (error instanceof TokenError) return { code: 'ETOKEN', message: error.message, tokenKind: error.kind };
  return error.failure;
}

/** Exchange's reply "250 2.0.0 OK <queue id> [Hostname=...]" names its queue id in angle brackets. */
function upstreamQueueId(response: string): string | undefined {
  return /<([^>]+)>/.exec(response)?.[1];
}

async function* concatStreams(head: Buffer, body: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  yield head;
  yield* body;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
