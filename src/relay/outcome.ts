/**
 * What an attempt's result means, decided once, as data (Postfix records each recipient's outcome
 * as it happens and decides the message's fate in a separate step). Pure: the worker applies the
 * verdict with the spool's verbs and hands the account effect to the lane.
 */
import { addressKey } from '../mail/addresses.js';
import { nextAttempt, type RetryPolicyConfig } from '../retry/policy.js';
import type { MessageMeta, RecipientState } from '../spool/types.js';
import { classify, describeFailure, type Classification, type UpstreamFailure } from './classify.js';
import type { RecipientRejection } from './transport.js';

/** One upstream transaction for some of the message's recipients. */
export type TransactionResult =
  /** The final reply accepted the message: every recipient sent and not rejected one by one has it. */
  | { kind: 'accepted'; rejected: RecipientRejection[]; response: string }
  | { kind: 'failed'; failure: UpstreamFailure; rejected: RecipientRejection[] };

/**
 * Records one transaction's outcome per recipient. Rejections are matched by address identity
 * (IDN, case of the domain), never by the string a library returns; a recipient that was sent,
 * is not rejected and got the final 250 is delivered, whatever `accepted` list a library reports.
 * Returns the recipients and the message-level failure, if the transaction failed as a whole.
 */
export function applyTransaction(
  recipients: readonly RecipientState[],
  sent: readonly string[],
  result: TransactionResult,
): { recipients: RecipientState[]; failure: { classification: Classification; text: string; failure: UpstreamFailure } | null } {
  const sentKeys = new Set(sent.map(addressKey));
  const rejectionOf = new Map(result.rejected.map((r) => [addressKey(r.address), r]));
  // A failed transaction concerns the recipients it did not reject one by one ("all recipients
  // were rejected" concerns none: each carries its own reply).
  const concerned = [...sentKeys].some((key) => !rejectionOf.has(key));
  const failure = result.kind === 'failed' && concerned ? { classification: classify(result.failure), text: describeFailure(result.failure), failure: result.failure } : null;
  const failsForGood = failure?.classification.scope === 'message' && failure.classification.class === 'permanent';
  const next = recipients.map((r): RecipientState => {
    const key = addressKey(r.address);
    if (r.status !== 'pending' || !sentKeys.has(key)) return { ...r };
    const rejection = rejectionOf.get(key);
    if (rejection) {
      const cls = classify({ responseCode: rejection.responseCode, response: rejection.response, stage: 'envelope' });
      // The reply, and what to do about it where the table knows (HVE's external-recipient refusal).
      const lastError = describeFailure({ response: rejection.response }) + (cls.advice ? ` (${cls.advice})` : '');
      return { address: r.address, status: cls.class === 'permanent' ? 'failed' : 'pending', lastError };
    }
    if (result.kind === 'accepted') return { address: r.address, status: 'delivered' };
    return { address: r.address, status: failsForGood ? 'failed' : 'pending', lastError: failure?.text ?? r.lastError };
  });
  return { recipients: next, failure };
}

/** What happens to the account (mailbox) because of an attempt. */
export type AccountEffect =
  /** Exchange (or Graph) answered: the account is reachable. */
  | { kind: 'reachable' }
  /** Unreachable, or refused before the message: hold and probe. `upstream`: what Exchange (or Graph) did, for /readyz. */
  | { kind: 'hold'; upstream: 'replied' | 'unreachable' | 'not-asked' }
  /** Throttled or out of quota: rest this long. */
  | { kind: 'pause'; ms: number };

export interface AccountAlert {
  key: 'configuration' | 'quota';
  advice?: string;
}

export type MessageVerdict =
  | { action: 'complete' }
  | { action: 'fail'; reason: string; class: string; expired: boolean }
  /** The message's own transient failure: charged an attempt, retried at `at` (wall ms). */
  | { action: 'defer'; at: number; delayMs: number; reason: string; class: string }
  /** The account's failure: not charged, keeps its place (its recorded due time). */
  | { action: 'requeue'; reason: string; class: string };

export interface Decision {
  verdict: MessageVerdict;
  /** The metadata to record (recipients, attempts, lastError, nextAttemptAt, failedAt). */
  meta: MessageMeta;
  account: AccountEffect;
  alert: AccountAlert | null;
}

export interface DecideInput {
  meta: MessageMeta;
  /** Recipients after every transaction of this attempt (applyTransaction). */
  recipients: RecipientState[];
  /** The failure that ended the attempt, if one did. */
  failure: { classification: Classification; text: string; failure: UpstreamFailure } | null;
  policy: RetryPolicyConfig;
  pauses: { throttlePause: number; quotaPause: number };
  /** Wall-clock ms. */
  now: number;
  random?: number;
}

export function decideOutcome(input: DecideInput): Decision {
  const { meta, recipients, failure, now } = input;
  const pending = recipients.filter((r) => r.status === 'pending');
  const cls = failure?.classification;
  const lastError = failure?.text ?? lastRecipientError(recipients) ?? meta.lastError;

  if (cls && cls.scope === 'account' && pending.length > 0) {
    return {
      verdict: { action: 'requeue', reason: failure.text, class: cls.reason },
      meta: { ...meta, recipients, lastError },
      ...accountEffectOf(cls, failure.failure, input.pauses),
    };
  }

  const account: AccountEffect = { kind: 'reachable' };
  const attempts = meta.attempts + 1;
  if (pending.length === 0) {
    if (recipients.every((r) => r.status === 'delivered')) return { verdict: { action: 'complete' }, meta: { ...meta, recipients, attempts }, account, alert: null };
    const reason = (cls?.class === 'permanent' ? failure?.text : undefined) ?? lastRecipientError(recipients, 'failed') ?? lastError ?? 'failed';
    return {
      verdict: { action: 'fail', reason, class: cls?.class === 'permanent' ? cls.reason : 'bad-recipient', expired: false },
      meta: { ...meta, recipients, attempts, lastError: reason, nextAttemptAt: null, failedAt: new Date(now).toISOString() },
      account,
      alert: null,
    };
  }

  const lifetimeStart = Date.parse(meta.requeuedAt ?? meta.receivedAt);
  const retry = nextAttempt(input.policy, { attempts, receivedAt: lifetimeStart, now, random: input.random });
  if (retry.action === 'expire') {
    const reason = `expired after ${Math.round((now - lifetimeStart) / 60_000)} min in the queue; last error: ${lastError ?? 'none'}`;
    const failedRecipients = recipients.map((r): RecipientState => (r.status === 'pending' ? { address: r.address, status: 'failed', lastError: r.lastError ?? lastError ?? 'expired' } : r));
    return {
      verdict: { action: 'fail', reason, class: 'expired', expired: true },
      meta: { ...meta, recipients: failedRecipients, attempts, lastError: reason, nextAttemptAt: null, failedAt: new Date(now).toISOString() },
      account,
      alert: null,
    };
  }
  return {
    verdict: { action: 'defer', at: retry.at, delayMs: retry.delayMs, reason: lastError ?? 'deferred', class: cls?.reason ?? 'recipient-deferred' },
    meta: { ...meta, recipients, attempts, lastError, nextAttemptAt: new Date(retry.at).toISOString() },
    account,
    alert: null,
  };
}

/** The account side of an account-scope failure: hold and probe, or rest; and what to tell the administrator. */
function accountEffectOf(cls: Classification, failure: UpstreamFailure, pauses: DecideInput['pauses']): { account: AccountEffect; alert: AccountAlert | null } {
  const upstream = failure.code === 'ETOKEN' ? 'not-asked' : failure.responseCode !== undefined || failure.httpStatus !== undefined ? 'replied' : 'unreachable';
  switch (cls.class) {
    case 'throttled':
      // Graph says how long to wait (Retry-After); SMTP replies do not, so the configured pause applies.
      return { account: { kind: 'pause', ms: failure.retryAfterMs ?? pauses.throttlePause }, alert: null };
    case 'quota':
      return { account: { kind: 'pause', ms: pauses.quotaPause }, alert: { key: 'quota' } };
    case 'transient':
      return { account: { kind: 'hold', upstream }, alert: null };
    default:
      // configuration, a token Exchange keeps rejecting, a permanent refusal of the session:
      // nothing a retry of this message fixes; the mail waits for the administrator.
      return { account: { kind: 'hold', upstream }, alert: { key: 'configuration', ...(cls.advice !== undefined && { advice: cls.advice }) } };
  }
}

function lastRecipientError(recipients: readonly RecipientState[], status?: RecipientState['status']): string | null {
  for (let i = recipients.length - 1; i >= 0; i--) {
    const r = recipients[i]!;
    if ((status === undefined || r.status === status) && r.lastError) return r.lastError;
  }
  return null;
}
