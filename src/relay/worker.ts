import { Readable } from 'node:stream';
import type { RelayConfig } from '../config/index.js';
import { formatDuration } from '../config/index.js';
import { TokenError, type TokenSource } from '../oauth/index.js';
import { AlertLog } from '../observability/alerts.js';
import type { Logger } from '../observability/logger.js';
import { nextAttempt } from '../retry/policy.js';
import { crashPoint } from '../spool/crashPoints.js';
import type { MessageMeta, Spool } from '../spool/index.js';
import { classify, describeFailure, type Classification, type UpstreamFailure } from './classify.js';
import { readHeaderBlock, serializeHeaderBlock } from './headers.js';
import { CircuitBreaker } from './breaker.js';
import { Pacer } from './pacing.js';
import { Scheduler } from './scheduler.js';
import { applySenderPolicy } from './senderPolicy.js';
import { SubmissionTransport, UpstreamError, type SendResult } from './transport.js';

export interface WorkerOptions {
  config: RelayConfig;
  spool: Spool;
  tokens: TokenSource;
  logger: Logger;
  /** Injected for tests that need a different transport; the real one by default. */
  transport?: SubmissionTransport;
  /** Called once a message is recorded as failed for good (for failure notices); must not throw. */
  onFailed?: (meta: MessageMeta, expired: boolean) => Promise<void>;
}

/**
 * Delivers queued messages to Exchange Online: at most maxConnections at once, paced to rateLimit,
 * each outcome recorded in the spool before the next step (delivered: removed; transient: deferred
 * with its next attempt; permanent: failed with the reason).
 */
export class RelayWorker {
  private readonly scheduler = new Scheduler();
  private readonly pacer: Pacer;
  private transport: SubmissionTransport;
  /** Replaced whole on reload (SIGHUP). */
  private config: RelayConfig;
  private tokens: TokenSource;
  private readonly alerts: AlertLog;
  private readonly breaker = new CircuitBreaker();
  private readonly inFlight = new Set<Promise<void>>();
  /** Ids taken from the scheduler and not finished yet (waiting for pacing, or being delivered). */
  private readonly busy = new Set<string>();
  private readonly stopping = new AbortController();
  private timer: NodeJS.Timeout | null = null;
  private running = false;

  constructor(private readonly options: WorkerOptions) {
    this.config = options.config;
    this.tokens = options.tokens;
    const m365 = options.config.microsoft365;
    this.pacer = new Pacer(m365.rateLimit);
    this.transport = options.transport ?? new SubmissionTransport(m365, options.tokens);
    this.alerts = new AlertLog(options.logger);
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
    this.pump();
    return this.load(queuedIds);
  }

  private async load(ids: readonly string[]): Promise<void> {
    try {
      for await (const batch of this.options.spool.loadQueued(ids)) {
        if (!this.running) return;
        for (const meta of batch) {
          if (!this.busy.has(meta.id)) this.scheduler.schedule(meta.id, meta.nextAttemptAt ? Date.parse(meta.nextAttemptAt) : 0);
        }
        this.pump();
      }
    } catch (err) {
      this.log.error({ err: errorText(err) }, 'reading the queue failed; the periodic rescan will pick messages up');
    }
  }

  /** A message is queued (just received, or put back by an administrator). */
  enqueue(id: string, at = 0): void {
    this.scheduler.schedule(id, at);
    if (this.running) this.pump();
  }

  /**
   * Re-reads queue/ and schedules every message at its recorded time: after a `queue` command
   * changed something, and periodically as a safety net.
   */
  async rescan(): Promise<void> {
    for (const id of await this.options.spool.ids('queue')) {
      if (this.busy.has(id)) continue;
      try {
        const meta = await this.options.spool.readMeta('queue', id);
        this.scheduler.schedule(id, meta.nextAttemptAt ? Date.parse(meta.nextAttemptAt) : 0);
      } catch {
        // claimed or changed meanwhile: the next rescan sees it
      }
    }
    this.pump();
  }

  /**
   * Applies a reloaded configuration: pacing, retry policy and limits at once; new Microsoft 365
   * settings (a new token source) get a new transport, and the old one closes once the
   * deliveries already using it have finished.
   */
  reconfigure(config: RelayConfig, tokens: TokenSource): void {
    const previous = this.config.microsoft365;
    this.config = config;
    this.pacer.setLimit(config.microsoft365.rateLimit);
    if (tokens !== this.tokens || JSON.stringify(previous) !== JSON.stringify(config.microsoft365)) {
      const old = this.transport;
      this.tokens = tokens;
      this.transport = new SubmissionTransport(config.microsoft365, tokens);
      void Promise.allSettled([...this.inFlight]).then(() => old.close());
      this.breaker.reset();
      this.pacer.resume();
    }
    this.pump();
  }

  get queueSize(): number {
    return this.scheduler.size + this.inFlight.size;
  }

  /**
   * Stops taking messages; lets deliveries under way finish for up to `graceMs`, then closes the
   * upstream connections (those messages are deferred and retried after the restart).
   */
  async stop(graceMs = 10_000): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.stopping.abort(new Error('relay is stopping'));
    const all = Promise.allSettled([...this.inFlight]);
    let graceTimer: NodeJS.Timeout | undefined;
    const grace = new Promise<'timeout'>((resolve) => {
      graceTimer = setTimeout(() => resolve('timeout'), graceMs);
    });
    const outcome = await Promise.race([all.then(() => 'done' as const), grace]);
    clearTimeout(graceTimer);
    this.transport.close();
    if (outcome === 'timeout') await all;
  }

  private pump(): void {
    if (!this.running) return;
    const limit = this.config.microsoft365.maxConnections;
    while (this.inFlight.size < limit) {
      const id = this.scheduler.takeDue(Date.now());
      if (!id) break;
      this.busy.add(id);
      const delivery = this.deliver(id).catch((err: unknown) => {
        this.log.error({ msgId: id, err: errorText(err) }, 'delivery crashed; the message stays in the spool');
      });
      this.inFlight.add(delivery);
      void delivery.finally(() => {
        this.inFlight.delete(delivery);
        this.busy.delete(id);
        this.pump();
      });
    }
    this.armTimer();
  }

  /** Wakes the pump when the earliest deferred message becomes due. */
  private armTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const next = this.scheduler.nextDueAt();
    if (next === null || !this.running) return;
    const delay = Math.max(0, Math.min(next - Date.now(), 2_147_000_000));
    this.timer = setTimeout(() => this.pump(), delay);
    this.timer.unref();
  }

  private async deliver(id: string): Promise<void> {
    let done: () => void;
    try {
      done = await this.pacer.acquire(this.stopping.signal);
    } catch {
      this.scheduler.schedule(id, 0);
      return; // stopping: the message stays queued, untouched
    }
    try {
      await this.claimAndDeliver(id);
    } finally {
      done();
    }
  }

  private async claimAndDeliver(id: string): Promise<void> {
    const meta = await this.options.spool.claim(id);
    if (!meta) return; // deleted, held or claimed meanwhile

    let outcome: { result?: SendResult; error?: UpstreamError | TokenError };
    try {
      outcome = await this.attempt(meta);
      if (outcome.error && classifyError(outcome.error).class === 'token-rejected') {
        // Exchange refused a token msal still holds (revoked, or the mailbox permission changed):
        // fetch a fresh one and try once more at once.
        this.log.warn({ msgId: id, event: 'token-rejected' }, 'Exchange rejected the access token; renewing it and retrying');
        outcome = await this.tokens.getToken({ forceRefresh: true }).then(
          () => this.attempt(meta),
          (err: TokenError) => ({ error: err }),
        );
      }
    } catch (err) {
      outcome = { error: new UpstreamError({ message: errorText(err) }, [], { cause: err }) };
    }
    await this.record(meta, outcome);
  }

  private async attempt(meta: MessageMeta): Promise<{ result?: SendResult; error?: UpstreamError | TokenError }> {
    try {
      // Asking first means a token problem is known as such, without opening a connection.
      await this.tokens.getToken();
      const m365 = this.config.microsoft365;
      const block = await readHeaderBlock(this.options.spool.dataPath(meta.id));
      const decision = applySenderPolicy(
        { mailbox: m365.mailbox, sendAs: m365.sendAs },
        { envelopeFrom: meta.envelope.from, header: block, messageId: meta.id, receivedAt: new Date(meta.receivedAt) },
      );
      if (decision.changes.length > 0 && meta.attempts === 0) {
        this.log.info({ msgId: meta.id, event: 'rewritten', changes: decision.changes }, 'sender policy applied');
      }
      const to = meta.recipients.filter((r) => r.status === 'pending').map((r) => r.address);
      const body = this.options.spool.openData(meta.id, block.bodyOffset);
      const raw = Readable.from(concatStreams(serializeHeaderBlock(decision.header), body));
      const result = await this.transport.send({ from: decision.envelopeFrom, to }, raw);
      crashPoint('after-upstream-accept');
      return { result };
    } catch (err) {
      if (err instanceof UpstreamError || err instanceof TokenError) return { error: err };
      throw err;
    }
  }

  /** Writes the outcome of an attempt to the spool and schedules what remains. */
  private async record(meta: MessageMeta, outcome: { result?: SendResult; error?: UpstreamError | TokenError }): Promise<void> {
    const now = Date.now();
    const attempts = meta.attempts + 1;
    const recipients = meta.recipients.map((r) => ({ ...r }));
    const pending = () => recipients.filter((r) => r.status === 'pending');
    const byAddress = (address: string) => recipients.find((r) => r.status === 'pending' && r.address.toLowerCase() === address.toLowerCase());
    let messageClass: Classification | null = null;
    let lastError: string | null = null;
    /** Stable label for the failed log line and metric. */
    let failClass = 'permanent-failure';
    this.noteUpstream(outcome);

    const rejections = outcome.result?.rejected ?? (outcome.error instanceof UpstreamError ? outcome.error.rejected : []);
    for (const rejection of rejections) {
      const r = byAddress(rejection.address);
      if (!r) continue;
      const cls = classify({ responseCode: rejection.responseCode, response: rejection.response });
      r.lastError = describeFailure({ response: rejection.response });
      if (cls.class === 'permanent') {
        r.status = 'failed';
        failClass = cls.reason;
        this.log.warn({ msgId: meta.id, event: 'recipient-failed', recipient: r.address, reason: r.lastError }, 'recipient rejected permanently');
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
          { msgId: meta.id, event: 'delivered', recipients: delivered, upstreamReply: outcome.result.response, upstreamQueueId: upstreamQueueId(outcome.result.response), attempts, latencySeconds },
          'delivered to Exchange Online',
        );
        this.alerts.clear('configuration');
        this.breaker.reset();
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
        this.react(meta.id, messageClass, outcome.error, lastError);
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
      this.log.warn({ msgId: meta.id, event: 'failed', reason, class: failClass, attempts }, 'message failed permanently');
      await this.options.onFailed?.(failed, false);
      return;
    }

    const minDelayMs = messageClass ? this.minDelayFor(messageClass) : undefined;
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
      this.log.warn({ msgId: meta.id, event: 'failed', reason, class: 'expired', attempts }, 'message expired');
      await this.options.onFailed?.(failed, true);
      return;
    }
    const nextAttemptAt = new Date(decision.at).toISOString();
    await this.options.spool.defer({ ...next, nextAttemptAt });
    this.log.info(
      { msgId: meta.id, event: 'deferred', reason: next.lastError, class: messageClass?.reason ?? 'recipient-deferred', attempts, nextAttemptAt, retryIn: formatDuration(decision.delayMs) },
      'delivery deferred',
    );
    this.enqueue(meta.id, decision.at);
  }

  /** When Exchange last answered (any SMTP reply) and when it last could not be reached. */
  private upstream = { lastReplyAt: 0, lastUnreachableAt: 0 };

  private noteUpstream(outcome: { result?: SendResult; error?: UpstreamError | TokenError }): void {
    if (outcome.result || (outcome.error instanceof UpstreamError && outcome.error.failure.responseCode !== undefined)) {
      this.upstream.lastReplyAt = Date.now();
    } else if (outcome.error instanceof UpstreamError) {
      this.upstream.lastUnreachableAt = Date.now();
    }
  }

  /** For /readyz: is Exchange answering, as far as the last attempts tell? */
  upstreamHealth(): { ok: boolean; lastReplyAt: string | null; lastUnreachableAt: string | null } {
    const { lastReplyAt, lastUnreachableAt } = this.upstream;
    return {
      ok: lastUnreachableAt <= lastReplyAt,
      lastReplyAt: lastReplyAt ? new Date(lastReplyAt).toISOString() : null,
      lastUnreachableAt: lastUnreachableAt ? new Date(lastUnreachableAt).toISOString() : null,
    };
  }

  /** Side effects of a failure on the whole mailbox: pauses and alerts. */
  private react(id: string, cls: Classification, error: UpstreamError | TokenError, lastError: string | null): void {
    const now = Date.now();
    // Failures that concern the mailbox, not the message: hold every delivery for a while rather
    // than asking Entra or Exchange again for each queued message.
    if (cls.reason === 'network' || cls.reason === 'token-unavailable' || cls.class === 'configuration') {
      const until = this.breaker.trip(now);
      this.pacer.pause(until);
      this.log.warn(
        { msgId: id, event: 'upstream-unavailable', reason: lastError, consecutiveFailures: this.breaker.consecutiveFailures, holdFor: formatDuration(until - now) },
        'upstream unavailable: holding deliveries',
      );
    }
    const { throttlePause, quotaPause, mailbox } = this.config.microsoft365;
    if (cls.class === 'throttled') {
      this.pacer.pause(now + throttlePause);
      this.log.warn({ msgId: id, event: 'throttled', reason: lastError, pauseFor: formatDuration(throttlePause) }, 'Exchange Online throttled the mailbox: slowing down');
    }
    if (cls.class === 'quota') {
      this.pacer.pause(now + quotaPause);
      this.alerts.raise('quota', { reason: lastError }, `Exchange Online daily recipient quota reached for ${mailbox}; delivery paused for ${formatDuration(quotaPause)}`);
    }
    if (cls.class === 'configuration') {
      const advice = error instanceof TokenError ? error.advice : cls.advice;
      this.alerts.raise('configuration', { msgId: id, reason: lastError, advice }, `delivery blocked by a configuration problem: ${advice ?? lastError}. Mail stays queued until it is fixed.`);
    }
  }

  private minDelayFor(cls: Classification): number | undefined {
    if (cls.class === 'quota') return this.config.microsoft365.quotaPause;
    if (cls.class === 'throttled') return this.config.microsoft365.throttlePause;
    return undefined;
  }
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
