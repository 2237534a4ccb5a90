import { Readable } from 'node:stream';
import { DEFAULT_ACCOUNT, formatDuration, type RelayConfig } from '../config/index.js';
import { factsOfMeta } from '../maillog/facts.js';
import type { MailLogEventKind, MailLogRecorder } from '../maillog/types.js';
import { TokenError } from '../oauth/index.js';
import type { Logger } from '../observability/logger.js';
import { crashPoint } from '../spool/crashPoints.js';
import type { MessageMeta, Spool } from '../spool/index.js';
import { defaultAccountFactory, type AccountFactory } from './accountFactory.js';
import type { Ticket } from './accountHold.js';
import { classify, type UpstreamFailure } from './classify.js';
import { dueFromWall, systemClock, type Clock } from './clock.js';
import { findField, fieldValue, readHeaderBlock, serializeHeaderBlock } from './headers.js';
import type { AccountLane, DeliveryEnd, LaneHealth, UpstreamHealth } from './lane.js';
import { LaneSet, type ReconfigurePlan } from './laneSet.js';
import { applyTransaction, decideOutcome, type Decision, type TransactionResult } from './outcome.js';
import { sleep } from './pacing.js';
import { applySenderPolicy } from './senderPolicy.js';
import { UpstreamError } from './transport.js';

export interface WorkerOptions {
  config: RelayConfig;
  spool: Spool;
  logger: Logger;
  /** Builds each account's token source and transport; the real ones by default. */
  factory?: AccountFactory;
  /**
   * Called once a message is recorded as failed for good (for failure notices); must not throw.
   * Resolves with the queue id of the notice queued, or null when none was.
   */
  onFailed?: (meta: MessageMeta, expired: boolean) => Promise<string | null>;
  /** Monotonic and wall time; injectable for tests. */
  clock?: Clock;
  /** Told about each attempt and outcome; never waits. */
  mailLog?: MailLogRecorder;
}

/** The account a message was routed to when it was queued (`default` for older messages). */
export function accountOf(meta: Pick<MessageMeta, 'route'>): string {
  return meta.route?.account ?? DEFAULT_ACCOUNT;
}

/** A spool file of the message cannot be read: the message's problem, never the account's. */
class LocalSpoolError extends Error {
  override readonly name = 'LocalSpoolError';
}

/** What the message looks like on its way out: computed once per attempt, used by every transaction. */
interface Prepared {
  header: Buffer;
  bodyOffset: number;
  envelopeFrom: string;
  messageIdHeader: string | undefined;
}

/** One attempt as the mail log records it. */
interface AttemptSummary {
  /** The last accepting transaction's reply. */
  response: string | undefined;
  /** The reply that decided the attempt: the failure's text, else the acceptance. */
  reply: string | null;
  durationMs: number;
  /** The recipients tried. */
  to: string[];
}

/** How long to wait before trying again to record an outcome the disk refused (ENOSPC, EIO). */
const PERSIST_RETRY_MS = { first: 1_000, max: 30_000 };

/**
 * Delivers queued messages to Microsoft 365, one lane per account (see AccountLane, which owns
 * where each message is). A delivery claims the message, sends it in transactions of at most
 * maxRecipientsPerMessage recipients, then decideOutcome() says what the result means and this
 * applies it: the spool's verbs for the message (retried until the disk takes them) and the
 * lane's for the account.
 */
export class RelayWorker {
  private readonly lanes: LaneSet;
  /** Replaced whole on reload (SIGHUP). */
  private config: RelayConfig;
  private running = false;
  /** Aborted by stop(): ends the retries of spool writes (recovery finishes them at the next start). */
  private readonly stopping = new AbortController();
  private readonly clock: Clock;

  /** Throws AccountSetupError (or TokenError for an unreadable certificate) when an account cannot be set up. */
  constructor(private readonly options: WorkerOptions) {
    this.config = options.config;
    this.clock = options.clock ?? systemClock;
    this.lanes = new LaneSet(options.config, options.factory ?? defaultAccountFactory, options.logger, {
      clock: this.clock,
      deliver: (lane, id, ticket) => this.deliver(lane, id, ticket),
      rehome: (id, dueAt, from) => this.rehome(id, dueAt, from),
    });
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
    return this.load(queuedIds);
  }

  private async load(ids: readonly string[]): Promise<void> {
    try {
      for await (const batch of this.options.spool.loadQueued(ids)) {
        if (!this.running) return;
        for (const meta of batch) this.laneFor(accountOf(meta))?.place(meta.id, dueFromWall(this.clock, meta.nextAttemptAt));
        for (const lane of this.lanes.active()) lane.pump();
      }
    } catch (err) {
      this.log.error({ err }, 'reading the queue failed; the periodic rescan will pick messages up');
    }
  }

  /** A message is queued (just received, or put back): due at its recorded time (null: now). */
  enqueue(id: string, nextAttemptAt: string | null, account: string = DEFAULT_ACCOUNT): void {
    const lane = this.laneFor(account);
    if (!lane) return;
    for (const other of this.lanes.all()) {
      const where = other.where(id);
      if (where === 'in-flight') return; // its delivery decides where it goes next
      if (where === 'waiting' && other !== lane) other.withdraw(id);
    }
    lane.enqueue(id, dueFromWall(this.clock, nextAttemptAt));
  }

  /** The lane of an account; one that no longer exists (removed by a reload) is delivered by the default account. */
  private laneFor(account: string): AccountLane | undefined {
    return this.lanes.get(account) ?? this.lanes.get(DEFAULT_ACCOUNT);
  }

  /** A retired lane's message goes to the lane of its account now. */
  private rehome(id: string, dueAt: number, from: AccountLane): void {
    if (!this.running) return;
    const lane = this.lanes.get(from.name) ?? this.lanes.get(DEFAULT_ACCOUNT);
    lane?.enqueue(id, dueAt);
  }

  /**
   * Re-reads queue/ and schedules every message at its recorded time in its account's lane: after
   * a `queue` command or `login` changed something (they wake the daemon), after a reload added or
   * removed accounts, and periodically as a safety net. Something was fixed, perhaps: holding
   * accounts probe at once.
   */
  async rescan(): Promise<void> {
    for (const lane of this.lanes.active()) lane.probeNow();
    const { spool } = this.options;
    // Parts of a split message that were committed but could not be moved into queue/ at once.
    await spool.unpackPendingSplits().catch((err: unknown) => this.log.error({ err }, 'moving committed parts of split messages into the queue failed; retrying at the next rescan'));
    for (const id of await spool.ids('queue')) {
      if (this.inFlight(id)) continue;
      let meta: MessageMeta;
      try {
        meta = await spool.readMeta('queue', id);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // claimed or changed meanwhile
        await this.quarantine('queue', id, err);
        continue;
      }
      this.enqueue(id, meta.nextAttemptAt, accountOf(meta));
    }
  }

  private inFlight(id: string): boolean {
    return this.lanes.all().some((lane) => lane.where(id) === 'in-flight');
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
        if (before !== names(this.lanes.active())) {
          this.rescan().catch((err: unknown) => this.log.error({ err }, 'queue rescan after reload failed'));
        }
      },
    };
  }

  /** A removed account's waiting mail moves to the default account's lane. */
  private retired(lane: AccountLane): void {
    const waiting = lane.drainWaiting();
    for (const { id, at } of waiting) this.rehome(id, at, lane);
    this.log.warn(
      { event: 'account-removed', account: lane.name, moved: waiting.length, inFlight: lane.inFlightCount },
      `account ${lane.name} was removed: deliveries under way finish, its waiting mail goes to the default account`,
    );
  }

  /**
   * Stops taking messages; lets deliveries under way finish for up to `graceMs`, then closes the
   * upstream connections (those messages are retried after the restart).
   */
  async stop(graceMs = 10_000): Promise<void> {
    this.running = false;
    this.stopping.abort(new Error('relay is stopping'));
    const lanes = this.lanes.all();
    for (const lane of lanes) lane.halt('relay is stopping');
    const all = Promise.all(lanes.map((lane) => lane.settled()));
    let graceTimer: NodeJS.Timeout | undefined;
    const grace = new Promise<'timeout'>((resolve) => {
      graceTimer = setTimeout(() => resolve('timeout'), graceMs);
    });
    const outcome = await Promise.race([all.then(() => 'done' as const), grace]);
    clearTimeout(graceTimer);
    for (const lane of lanes) lane.close();
    if (outcome === 'timeout') await all;
  }

  /** For /readyz and diagnostics: each account's token, upstream, hold and pause state. */
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

  // --- one delivery -------------------------------------------------------------------------

  private async deliver(lane: AccountLane, id: string, ticket: Ticket): Promise<DeliveryEnd> {
    let release: () => void;
    try {
      release = await lane.acquireSlot();
    } catch {
      return { next: 'keep-place' }; // stopping, or the account was removed: still queued, untouched
    }
    try {
      // The account may have started holding while this waited for pacing: only its probe goes.
      if (lane.isHolding && !ticket.probe) return { next: 'keep-place' };
      const meta = await this.options.spool.claim(id);
      if (!meta) return { next: 'done' };
      return await this.attempt(lane, meta, ticket);
    } finally {
      release();
    }
  }

  private async attempt(lane: AccountLane, meta: MessageMeta, ticket: Ticket): Promise<DeliveryEnd> {
    const routed = accountOf(meta);
    if (routed !== lane.name) {
      this.log.warn({ msgId: meta.id, event: 'route-fallback', account: lane.name, routedTo: routed }, `account ${routed} no longer exists: delivering with the ${lane.name} account`);
    }
    const startedAt = this.clock.now();
    let prepared: Prepared;
    try {
      prepared = await this.prepare(lane, meta);
    } catch (err) {
      await this.quarantine('active', meta.id, err);
      return { next: 'done' };
    }

    // At most maxRecipientsPerMessage per transaction; each successful one is recorded before the
    // next, so no recipient is sent twice after a partial success.
    const pending = meta.recipients.filter((r) => r.status === 'pending').map((r) => r.address);
    const batches = chunk(pending, lane.account.maxRecipientsPerMessage);
    let recipients = meta.recipients;
    let failure: ReturnType<typeof applyTransaction>['failure'] = null;
    let response: string | undefined;
    for (const [index, batch] of batches.entries()) {
      const local: { error?: unknown } = {};
      const result = await this.transact(lane, meta, prepared, batch, local);
      if (local.error) {
        await this.quarantine('active', meta.id, local.error);
        return { next: 'done' };
      }
      ({ recipients, failure } = applyTransaction(recipients, batch, result));
      if (result.kind === 'failed') break;
      response = result.response;
      crashPoint('after-upstream-accept');
      if (index < batches.length - 1) {
        const checkpoint = { ...meta, recipients };
        if (!(await this.persist(meta.id, 'the progress (recipients done)', () => this.options.spool.checkpoint(checkpoint)))) return { next: 'done' };
      }
    }
    const decision = decideOutcome({
      meta,
      recipients,
      failure,
      policy: this.config.retry,
      pauses: lane.account,
      now: this.clock.wall(),
    });
    const reply = failure?.text ?? response ?? null;
    return this.apply(lane, meta, prepared, decision, ticket, { response, reply, durationMs: Math.round(this.clock.now() - startedAt), to: pending });
  }

  /** Reads the header block and applies the sender policy (LocalSpoolError when the data cannot be read). */
  private async prepare(lane: AccountLane, meta: MessageMeta): Promise<Prepared> {
    const { mailbox, sendAs } = lane.account;
    const block = await readHeaderBlock(this.options.spool.dataPath(meta.id)).catch((err: unknown) => {
      throw new LocalSpoolError(`cannot read the message data of ${meta.id}: ${(err as Error).message}`, { cause: err });
    });
    // The parts of a split message are one message: one Message-ID (from the id the client was given) for all.
    const decision = applySenderPolicy({ mailbox, sendAs }, { envelopeFrom: meta.envelope.from, header: block, messageId: meta.split?.parent ?? meta.id, receivedAt: new Date(meta.receivedAt) });
    if (decision.changes.length > 0 && meta.attempts === 0) {
      this.log.info({ msgId: meta.id, account: lane.name, event: 'rewritten', changes: decision.changes }, 'sender policy applied');
    }
    const messageIdField = findField(decision.header, 'message-id');
    return {
      header: serializeHeaderBlock(decision.header),
      bodyOffset: block.bodyOffset,
      envelopeFrom: decision.envelopeFrom,
      messageIdHeader: messageIdField ? fieldValue(messageIdField).trim() : undefined,
    };
  }

  /**
   * One upstream transaction for `to`. A token Exchange rejects (revoked, or the mailbox permission
   * changed while msal still holds it) is renewed, skipping every cache, and the transaction tried
   * once more at once. A read error of the spooled data is reported in `local`, not as upstream's.
   */
  private async transact(lane: AccountLane, meta: MessageMeta, prepared: Prepared, to: string[], local: { error?: unknown }): Promise<TransactionResult> {
    // One attempt uses one set of parts, even if a reload replaces them meanwhile.
    const { tokens, transport } = lane;
    const once = async (forceRefresh: boolean): Promise<TransactionResult> => {
      try {
        // Asking first means a token problem is known as such, without opening a connection.
        await tokens.getToken(forceRefresh ? { forceRefresh } : undefined);
        const body = this.options.spool.openData(meta.id, prepared.bodyOffset);
        const raw = Readable.from(withHeader(prepared.header, body, local));
        const sent = await transport.send({ from: prepared.envelopeFrom, to }, raw, { messageId: meta.id, signal: lane.signal });
        return { kind: 'accepted', rejected: sent.rejected, response: sent.response };
      } catch (err) {
        return { kind: 'failed', failure: failureOf(err), rejected: err instanceof UpstreamError ? err.rejected : [] };
      }
    };
    const first = await once(false);
    if (first.kind === 'failed' && !local.error && classify(first.failure).class === 'token-rejected') {
      this.log.warn({ msgId: meta.id, account: lane.name, event: 'token-rejected' }, 'Exchange rejected the access token; renewing it and retrying');
      return once(true);
    }
    return first;
  }

  /** Records the decision in the spool (retried until it lands), tells the lane, logs, and says where the message goes. */
  private async apply(lane: AccountLane, meta: MessageMeta, prepared: Prepared, decision: Decision, ticket: Ticket, attempt: AttemptSummary): Promise<DeliveryEnd> {
    const { response } = attempt;
    const { spool } = this.options;
    const { verdict } = decision;
    const account = lane.name;
    const about = {
      msgId: meta.id,
      account,
      from: meta.envelope.from,
      messageId: prepared.messageIdHeader,
    };
    const newlyDelivered = decision.meta.recipients.filter((r, i) => r.status === 'delivered' && meta.recipients[i]?.status !== 'delivered').map((r) => r.address);
    const stillPending = decision.meta.recipients.filter((r) => r.status === 'pending').map((r) => r.address);
    const failedNow = decision.meta.recipients.filter((r, i) => r.status === 'failed' && meta.recipients[i]?.status !== 'failed');
    const upstreamId = (response && upstreamQueueId(response)) ?? null;
    const record = (kind: MailLogEventKind, detail: Record<string, unknown>) =>
      this.options.mailLog?.record({ id: meta.id, at: this.clock.wall(), kind, detail, facts: factsOfMeta(meta, prepared.messageIdHeader ?? null), account, ...(attempt.reply !== null && { lastReply: attempt.reply }) });
    record('attempt', {
      account,
      transport: lane.account.transport,
      reply: attempt.reply,
      durationMs: attempt.durationMs,
      upstreamId,
      to: attempt.to,
      ...(failedNow.length > 0 && { rejected: failedNow.map((r) => ({ address: r.address, reason: r.lastError ?? null })) }),
    });
    if (newlyDelivered.length > 0) record('delivered', { to: newlyDelivered, reply: response ?? null, upstreamId });

    this.reportAccount(lane, decision, ticket, meta.id);
    if (newlyDelivered.length > 0) {
      this.log.info(
        {
          ...about,
          event: 'delivered',
          to: newlyDelivered,
          recipients: newlyDelivered.length,
          upstreamReply: response,
          upstreamQueueId: response && upstreamQueueId(response),
          attempts: decision.meta.attempts,
          latencySeconds: (this.clock.wall() - Date.parse(meta.receivedAt)) / 1000,
        },
        'delivered to Microsoft 365',
      );
      lane.alerts.clear('configuration');
    }
    if (verdict.action !== 'fail') {
      for (const r of failedNow) this.log.warn({ ...about, event: 'recipient-failed', recipient: r.address, reason: r.lastError }, 'recipient rejected permanently');
    }

    switch (verdict.action) {
      case 'complete':
        await this.persist(meta.id, 'the delivery', () => spool.complete(meta.id));
        return { next: 'done' };
      case 'fail': {
        const recorded = await this.persist(meta.id, 'the failure', () => spool.fail(decision.meta));
        const advice = verdict.class === 'send-as-denied' ? sendAsAdvice(meta.envelope.from, lane.account.mailbox) : undefined;
        if (advice) lane.alerts.raise(`send-as:${meta.envelope.from}`, { msgId: meta.id, account, from: meta.envelope.from, advice }, `Exchange refused to send as ${meta.envelope.from}: ${advice}`);
        this.log.warn(
          { ...about, event: 'failed', to: failedNow.map((r) => r.address), reason: verdict.reason, class: verdict.class, attempts: decision.meta.attempts, ...(advice && { advice }) },
          verdict.expired ? 'message expired' : 'message failed permanently',
        );
        const noticeId = recorded ? ((await this.options.onFailed?.(decision.meta, verdict.expired)) ?? null) : null;
        record('failed', { reason: verdict.reason, class: verdict.class, expired: verdict.expired, to: failedNow.map((r) => r.address), noticeSent: noticeId !== null, ...(noticeId && { noticeId }) });
        return { next: 'done' };
      }
      case 'defer': {
        if (!(await this.persist(meta.id, 'the deferral', () => spool.defer(decision.meta)))) return { next: 'done' };
        this.log.info(
          { ...about, event: 'deferred', to: stillPending, reason: verdict.reason, class: verdict.class, attempts: decision.meta.attempts, nextAttemptAt: decision.meta.nextAttemptAt, retryIn: formatDuration(verdict.delayMs) },
          'delivery deferred',
        );
        record('deferred', { reason: verdict.reason, class: verdict.class, to: stillPending, attempts: decision.meta.attempts, nextAttemptAt: decision.meta.nextAttemptAt });
        return { next: 'retry-at', at: this.clock.now() + verdict.delayMs };
      }
      case 'requeue': {
        if (!(await this.persist(meta.id, 'the return to the queue', () => spool.defer(decision.meta)))) return { next: 'done' };
        this.log.info(
          { ...about, event: 'deferred', to: stillPending, reason: verdict.reason, class: verdict.class, attempts: decision.meta.attempts, accountHold: true },
          'not delivered: the account is holding; the message keeps its place',
        );
        record('deferred', { reason: verdict.reason, class: verdict.class, to: stillPending, attempts: decision.meta.attempts, nextAttemptAt: decision.meta.nextAttemptAt, accountHold: true });
        return { next: 'keep-place' };
      }
    }
  }

  /** The account side of a decision: hold, probe result, pause, alerts, and a line when its state changes. */
  private reportAccount(lane: AccountLane, decision: Decision, ticket: Ticket, id: string): void {
    const reason = decision.verdict.action === 'complete' ? undefined : decision.verdict.reason;
    const change = lane.report(decision.account, ticket, { reason, advice: decision.alert?.advice });
    if (change === 'held') {
      const hold = lane.holdState;
      const probeIn = hold ? formatDuration(Math.max(0, Math.round(hold.nextProbeAt - this.clock.now()))) : undefined;
      this.log.warn({ msgId: id, account: lane.name, event: 'upstream-unavailable', reason, probeIn }, `account ${lane.name} holds its deliveries: probing again in ${probeIn}`);
    } else if (change === 'opened') {
      this.log.info({ account: lane.name, event: 'upstream-available' }, `account ${lane.name} reaches Microsoft 365 again: delivering what is queued`);
    }
    if (decision.account.kind === 'pause') {
      this.log.warn({ msgId: id, account: lane.name, event: 'throttled', reason, pauseFor: formatDuration(decision.account.ms) }, 'Microsoft 365 throttled the mailbox: slowing down');
    }
    const alert = decision.alert;
    if (alert?.key === 'quota') {
      lane.alerts.raise('quota', { account: lane.name, reason }, `Exchange Online daily recipient quota reached for ${lane.account.mailbox}; delivery paused`);
    } else if (alert?.key === 'configuration') {
      lane.alerts.raise(
        'configuration',
        { msgId: id, account: lane.name, reason, advice: alert.advice },
        `delivery through account ${lane.name} blocked by a configuration problem: ${alert.advice ?? reason}. Mail stays queued until it is fixed.`,
      );
    }
  }

  /**
   * Runs a spool write until it lands: an outcome that the disk refused (ENOSPC, EIO) must not
   * leave the message in active/. Only the relay stopping ends the retries (not a reload that
   * retires the account: the message would stay in active/ until the next start); then false, and
   * recovery returns the message to the queue.
   */
  private async persist(id: string, what: string, write: () => Promise<void>): Promise<boolean> {
    for (let delay = PERSIST_RETRY_MS.first; ; delay = Math.min(delay * 2, PERSIST_RETRY_MS.max)) {
      try {
        await write();
        return true;
      } catch (err) {
        this.log.error({ event: 'alert', alert: 'spool-write', msgId: id, step: what, err, retryIn: formatDuration(delay) }, `cannot record ${what} of ${id} in the spool; retrying`);
      }
      try {
        await sleep(delay, this.stopping.signal);
      } catch {
        return false;
      }
    }
  }

  /** Moves an unreadable message aside (never the account's fault); the spool logs the alert that names it. */
  private async quarantine(state: 'queue' | 'active', id: string, err: unknown): Promise<void> {
    await this.persist(id, 'the move to corrupt/', () => this.options.spool.quarantine(state, id, err));
  }
}

function failureOf(err: unknown): UpstreamFailure {
  if (err instanceof TokenError) return { code: 'ETOKEN', message: err.message, tokenKind: err.kind, stage: 'session' };
  if (err instanceof UpstreamError) return err.failure;
  return { message: err instanceof Error ? err.message : String(err) };
}

function sendAsAdvice(sender: string, mailbox: string): string {
  return (
    `${mailbox} may not send as ${sender}. If it should: Add-RecipientPermission -Identity ${sender} -Trustee ${mailbox} -AccessRights SendAs. ` +
    `If it should not: remove ${sender} (or its domain) from sendAs, so that the relay rewrites the sender to ${mailbox}`
  );
}

function names(lanes: AccountLane[]): string {
  return lanes.map((lane) => lane.name).sort().join(',');
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Exchange's reply "250 2.0.0 OK <queue id> [Hostname=...]" names its queue id in angle brackets. */
function upstreamQueueId(response: string): string | undefined {
  return /<([^>]+)>/.exec(response)?.[1];
}

/** The rewritten header block, then the spooled body; a read error of the spool file is noted as local. */
async function* withHeader(head: Buffer, body: AsyncIterable<Buffer>, local: { error?: unknown }): AsyncGenerator<Buffer> {
  yield head;
  try {
    yield* body;
  } catch (err) {
    local.error = new LocalSpoolError(`cannot read the spooled message: ${(err as Error).message}`, { cause: err });
    throw err;
  }
}
