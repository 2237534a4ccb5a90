/**
 * Upstream reply or error -> what the relay does about it. The rules are a table, first match wins,
 * after ../shared/EXCHANGE_ONLINE.md. Kept free of I/O so it is tested on its own.
 */

/** What went wrong, as nodemailer or the token provider reported it. */
export interface UpstreamFailure {
  /** nodemailer error code (ECONNECTION, ETIMEDOUT, ETLS, EAUTH, EENVELOPE, EMESSAGE, ESOCKET, EPROTOCOL...) or ETOKEN. */
  code?: string;
  responseCode?: number;
  /** The server's reply text, e.g. "535 5.7.3 Authentication unsuccessful". */
  response?: string;
  message?: string;
  /** For token failures: 'configuration' or 'transient'. */
  tokenKind?: 'configuration' | 'transient';
  /** Microsoft Graph: the HTTP status and Graph's error code (ErrorAccessDenied, ApplicationThrottled...). */
  httpStatus?: number;
  graphCode?: string;
  /** Graph's Retry-After, when it gave one: how long the mailbox should rest. */
  retryAfterMs?: number;
  /**
   * The request that sends (Graph sendMail or /send) timed out or failed after it was sent: Exchange
   * may have sent the message anyway, so the retry that follows may deliver a second copy.
   */
  possibleDuplicate?: boolean;
  /**
   * How far the transaction got, as the transport saw it: `session` before MAIL FROM (connecting,
   * greeting, EHLO, STARTTLS, AUTH, the token), `envelope` at MAIL, RCPT or the DATA command,
   * `data` once the message content was being handed over. Absent counts as `session`.
   */
  stage?: FailureStage;
}

export type FailureStage = 'session' | 'envelope' | 'data';

/**
 * Whose failure it is. The account's (Exchange or Entra unreachable, a refusal before MAIL, a
 * setting an administrator must fix, throttling): the account holds or pauses, and no message is
 * charged an attempt. The message's (a reply to this transaction, a connection lost while it was
 * handed over): that message is deferred or failed.
 */
export type FailureScope = 'account' | 'message';

export type FailureClass =
  /** Try again later with backoff. */
  | 'transient'
  /** This message (or recipient) can never be delivered: failed, reason kept. */
  | 'permanent'
  /** Exchange refused the token: renew it (skip the cache) and retry once at once. */
  | 'token-rejected'
  /** An administrator must fix something; keep the mail queued and alert. */
  | 'configuration'
  /** Too many connections or messages: retry soon and slow down. */
  | 'throttled'
  /** Daily recipient quota used up: pause the mailbox for a long while. */
  | 'quota';

export interface Classification {
  class: FailureClass;
  /** Short stable label for logs and metrics. */
  reason: string;
  /** For configuration problems: what the administrator must do. */
  advice?: string;
  scope: FailureScope;
}

/** A rule's scope column: fixed, or `stage` when it depends on how far the transaction got. */
type RuleScope = FailureScope | 'stage';

interface Rule {
  when: (f: UpstreamFailure, text: string) => boolean;
  then: Omit<Classification, 'scope'> & { scope: RuleScope };
}

const enhanced = (code: string) => (_f: UpstreamFailure, text: string) => new RegExp(`\\b${code.replace(/\./g, '\\.')}\\b`).test(text);

const graph = (test: (status: number, code: string) => boolean) => (f: UpstreamFailure) => f.httpStatus !== undefined && test(f.httpStatus, f.graphCode ?? '');

/** Graph's answers (HTTP status and error code), checked before the SMTP rules. */
const GRAPH_RULES: readonly Rule[] = [
  // 503 with Retry-After is Graph asking the mailbox to rest, like 429 (both honour Retry-After).
  { when: (f) => f.httpStatus === 429 || (f.httpStatus === 503 && f.retryAfterMs !== undefined), then: { class: 'throttled', reason: 'graph-throttled', scope: 'account' } },
  { when: graph((s) => s === 401), then: { class: 'token-rejected', reason: 'token-rejected', scope: 'account' } },
  {
    when: graph((s) => s === 403),
    then: {
      class: 'configuration',
      reason: 'graph-access-denied',
      scope: 'account',
      advice:
        'Graph refused to send as the mailbox: grant the app the Microsoft Graph application permission Mail.Send with admin consent (and Mail.ReadWrite for messages over 4 MB, which go through a draft), and if an application access policy or RBAC for Applications limits it, include this mailbox',
    },
  },
  {
    when: graph((s, code) => s === 404 && /InvalidUser|ResourceNotFound|MailboxNotEnabled|UserNotFound/i.test(code)),
    then: { class: 'configuration', reason: 'mailbox-not-found', scope: 'account', advice: 'the mailbox does not exist in this tenant (or has no Exchange Online licence): check the account\'s mailbox' },
  },
  { when: graph((s) => s === 413), then: { class: 'permanent', reason: 'message-too-large', scope: 'message' } },
  // Graph as a whole unavailable (no Retry-After): the account's, like an SMTP outage.
  { when: graph((s) => s === 502 || s === 503 || s === 504), then: { class: 'transient', reason: 'graph-unavailable', scope: 'account' } },
  { when: graph((s) => s >= 500 || s === 408 || s === 409 || s === 423), then: { class: 'transient', reason: 'temporary-failure', scope: 'message' } },
  { when: graph((s) => s >= 400 && s < 500), then: { class: 'permanent', reason: 'graph-rejected', scope: 'message' } },
];

/**
 * High Volume Email's own replies (smtp.hve.mx.microsoft), after Microsoft's "Troubleshoot issues
 * with High Volume Email" and "OAuth authentication for High Volume Email" pages. Checked before
 * the mailbox rules: 5.5.105 and 5.7.240 would otherwise read as a generic refusal.
 */
export const HVE_RULES: readonly Rule[] = [
  {
    // HVE refuses a token close to expiry: renew it and go again at once; never the message's fault.
    when: (_f, t) => /\b5\.5\.127\b|\b5\.7\.142\b|token will expire soon/i.test(t),
    then: {
      class: 'token-rejected',
      reason: 'token-expiring-soon',
      scope: 'account',
      advice:
        'High Volume Email refuses tokens that expire soon, and the token Entra ID issued still had too little life after a renewal: Entra ID issues short-lived tokens for this app. Check the token lifetime policy assigned to the app or its service principal, or raise tokenRenewBefore',
    },
  },
  { when: (_f, t) => /\b5\.7\.143\b/.test(t), then: { class: 'token-rejected', reason: 'token-rejected', scope: 'account' } },
  {
    when: (_f, t) => /\b5\.5\.105\b/.test(t),
    then: {
      class: 'permanent',
      reason: 'hve-external-recipient',
      scope: 'message',
      advice: 'High Volume Email delivers to recipients inside the tenant only: route external recipients through a mailbox account (a recipientDomain route for the internal domains to the HVE account, everything else to a mailbox)',
    },
  },
  {
    when: (_f, t) => /\b5\.7\.240\b/.test(t),
    then: {
      class: 'configuration',
      reason: 'hve-app-not-allowed',
      scope: 'account',
      advice: "the app is not on the HVE account's allowed apps: Add-HVEAppAccess -Identity <HVE account> -AppIds <app (client) id> (changes take up to 5 minutes)",
    },
  },
  {
    when: (_f, t) => /\b5\.7\.144\b/.test(t),
    then: {
      class: 'configuration',
      reason: 'hve-api-permission',
      scope: 'account',
      advice: 'the token lacks the permission HVE needs: grant the app the Office 365 Exchange Online application permission SMTP.SendAsApp with admin consent',
    },
  },
  {
    when: (f, t) => f.responseCode === 501 && /\b5\.5\.12[1-6]\b/.test(t),
    then: { class: 'configuration', reason: 'xoauth2-invalid', scope: 'account', advice: "the server could not read the XOAUTH2 login: check that mailbox is the HVE account's address" },
  },
];

export const RULES: readonly Rule[] = [
  ...GRAPH_RULES,
  ...HVE_RULES,
  {
    when: enhanced('5.7.139'),
    then: {
      class: 'configuration',
      reason: 'smtp-auth-disabled',
      scope: 'account',
      advice: 'SMTP AUTH is disabled for the tenant or the mailbox: enable it (Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false, and check Set-TransportConfig -SmtpClientAuthenticationDisabled)',
    },
  },
  {
    when: enhanced('5.7.30'),
    then: { class: 'configuration', reason: 'basic-auth-disabled', scope: 'account', advice: 'Exchange refused basic authentication: the relay must use XOAUTH2 (check microsoft365 settings)' },
  },
  { when: (f, t) => f.responseCode === 535 && /\b5\.7\.3\b/.test(t), then: { class: 'token-rejected', reason: 'token-rejected', scope: 'account' } },
  { when: (f) => f.code === 'ETOKEN' && f.tokenKind === 'configuration', then: { class: 'configuration', reason: 'token-configuration', scope: 'account' } },
  { when: (f) => f.code === 'ETOKEN', then: { class: 'transient', reason: 'token-unavailable', scope: 'account' } },
  { when: (_f, t) => /SubmissionQuotaExceeded/i.test(t), then: { class: 'quota', reason: 'recipient-quota-exceeded', scope: 'account' } },
  { when: (f, t) => f.responseCode === 432 || /concurrent connections limit|sender thread limit/i.test(t), then: { class: 'throttled', reason: 'concurrent-connections', scope: 'account' } },
  { when: (_f, t) => /submission rate|\b4\.4\.2\b|throttl/i.test(t), then: { class: 'throttled', reason: 'rate-limited', scope: 'account' } },
  {
    when: (_f, t) => /SendAsDenied|\b5\.2\.252\b/i.test(t),
    then: {
      class: 'permanent',
      reason: 'send-as-denied',
      scope: 'message',
      advice:
        'the mailbox may not send as this sender. Either give it Send As (Add-RecipientPermission -Identity <sender> -Trustee <mailbox> -AccessRights SendAs), or, if it may not send as that address, remove the address from sendAs so that the relay rewrites it to the mailbox',
    },
  },
  {
    when: (_f, t) => /\b5\.2\.2\b/.test(t) && /quota|full/i.test(t),
    then: { class: 'configuration', reason: 'mailbox-full', scope: 'account', advice: 'the sending mailbox is full: free space in it (Sent Items) or raise its quota' },
  },
  { when: (f, t) => f.responseCode === 552 || /\b5\.3\.4\b/.test(t), then: { class: 'permanent', reason: 'message-too-large', scope: 'message' } },
  // nodemailer refused the envelope or message itself before sending it (e.g. an address it cannot encode).
  { when: (f) => (f.code === 'EENVELOPE' || f.code === 'EMESSAGE') && f.responseCode === undefined, then: { class: 'permanent', reason: 'invalid-envelope', scope: 'message' } },
  { when: (_f, t) => /\b5\.1\.\d+\b/.test(t), then: { class: 'permanent', reason: 'bad-recipient', scope: 'message' } },
  { when: (f) => f.responseCode !== undefined && f.responseCode >= 400 && f.responseCode < 500, then: { class: 'transient', reason: 'temporary-failure', scope: 'stage' } },
  { when: (f) => f.responseCode !== undefined && f.responseCode >= 500 && f.responseCode < 600, then: { class: 'permanent', reason: 'permanent-failure', scope: 'stage' } },
  // No reply at all: connection refused or dropped, TLS failure, timeout. Mail may or may not have
  // arrived; retrying is the at-least-once choice.
  { when: () => true, then: { class: 'transient', reason: 'network', scope: 'stage' } },
];

export function classify(failure: UpstreamFailure): Classification {
  const text = `${failure.response ?? ''} ${failure.message ?? ''}`;
  const rule = RULES.find((r) => r.when(failure, text));
  if (!rule) return { class: 'transient', reason: 'unknown', scope: 'message' };
  return { ...rule.then, scope: rule.then.scope === 'stage' ? scopeOfStage(failure) : rule.then.scope };
}

/**
 * For replies and errors that do not say whose they are. Before MAIL FROM nothing of the message
 * was involved: the account's. A reply to MAIL, RCPT or DATA is about this transaction: the
 * message's. Without a reply, only a connection lost while the content was handed over is the
 * message's (it may even have arrived); a reset before that says the upstream is in trouble.
 */
function scopeOfStage(failure: UpstreamFailure): FailureScope {
  const stage = failure.stage ?? 'session';
  if (stage === 'session') return 'account';
  if (failure.responseCode !== undefined) return 'message';
  return stage === 'data' ? 'message' : 'account';
}

/** One line for lastError and logs: the server's reply when there was one, else the error. */
export function describeFailure(failure: UpstreamFailure): string {
  const text = (failure.response || failure.message || failure.code || 'unknown error').replace(/\s+/g, ' ').trim();
  return text.length > 500 ? `${text.slice(0, 500)}...` : text;
}
