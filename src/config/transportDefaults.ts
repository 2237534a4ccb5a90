/**
 * Each transport's limits where the account does not set them. Where the figures come from:
 *
 *   [limits]    learn.microsoft.com/office365/servicedescriptions/exchange-online-service-description/
 *               exchange-online-limits (mailbox: 30 messages a minute, 10,000 recipients a day,
 *               500 recipients per message by default; 35 MB default send size)
 *   [hve]       learn.microsoft.com/exchange/mail-flow-best-practices/high-volume-mails-m365
 *               ("Manage High Volume Email for Microsoft 365": smtp.hve.mx.microsoft, port 587,
 *               TLS required; internal recipients only; up to 50 recipients per message and a
 *               10 MB message size; no per-minute message rate or daily mailbox recipient limit,
 *               volume is billed per recipient instead)
 *   [hve-oauth] learn.microsoft.com/exchange/mail-flow-best-practices/oauth-high-volume-mails-m365
 *               (an app allowed per HVE account with Add-HVEAppAccess, up to 10 apps; XOAUTH2 with
 *               user = the HVE account's address)
 *
 * The HVE figures were read from Microsoft's page as quoted by third-party summaries (the page
 * itself could not be fetched here); an administrator whose tenant differs sets the keys.
 */

/** High Volume Email's SMTP endpoint [hve] (smtp-hve.office365.com is its older, deprecated name). */
export const HVE_SMTP_HOST = 'smtp.hve.mx.microsoft';

export interface TransportDefaults {
  rateLimit: { messages: number; perSeconds: number };
  maxConnections: number;
  maxRecipientsPerMessage: number;
  /** null: no limit of the account's own (the listener's maxMessageSize applies). */
  maxMessageSize: number | null;
  tokenRenewBefore: number;
}

const MB = 1024 * 1024;

/** msal-node renews a cached token 5 minutes before it expires; the relay's default is the same. */
export const DEFAULT_TOKEN_RENEW_BEFORE_MS = 5 * 60_000;

/**
 * HVE refuses a token that expires soon (501 5.5.127 ... Token will expire soon); Microsoft asks for
 * renewal at least 10 minutes ahead. 15 minutes keeps a pooled session that authenticated just
 * before the renewal well clear of the refusal, and costs one token request an hour (tokens live
 * 60 to 90 minutes).
 */
export const HVE_TOKEN_RENEW_BEFORE_MS = 15 * 60_000;

const MAILBOX: TransportDefaults = {
  rateLimit: { messages: 30, perSeconds: 60 }, // [limits] message rate limit
  maxConnections: 3, // Exchange Online's concurrent SMTP AUTH sessions per mailbox
  maxRecipientsPerMessage: 500, // [limits] default recipient limit
  // The mailbox's send limit (35 MB by default [limits]) is its administrator's setting; the
  // listener's maxMessageSize is where the relay bounds it.
  maxMessageSize: null,
  tokenRenewBefore: DEFAULT_TOKEN_RENEW_BEFORE_MS,
};

export const TRANSPORT_DEFAULTS: Readonly<Record<'smtp' | 'graph' | 'hve', Readonly<TransportDefaults>>> = {
  smtp: MAILBOX,
  graph: MAILBOX,
  hve: {
    // [hve] documents no message rate; the relay still paces bursts (10 a second) so that a backlog
    // after an outage is not handed over all at once. Raise it if HVE takes more.
    rateLimit: { messages: 600, perSeconds: 60 },
    // Not documented for HVE; the mailbox's 3 concurrent sessions is the safe assumption.
    maxConnections: 3,
    maxRecipientsPerMessage: 50, // [hve]
    maxMessageSize: 10 * MB, // [hve]
    tokenRenewBefore: HVE_TOKEN_RENEW_BEFORE_MS,
  },
};
