import { z } from 'zod';
import { parseCidr } from '../access/networks.js';
import { parsePasswordHash } from '../access/passwords.js';
import { asciiDomain } from '../mail/addresses.js';
import { CLOUD_NAMES, CLOUDS, type CloudName } from './clouds.js';
import { parseDuration, parseSize } from './duration.js';
import { HVE_SMTP_HOST, TRANSPORT_DEFAULTS, type TransportDefaults } from './transportDefaults.js';
import { DIRECT, parseProxyUrl } from '../proxy/settings.js';

/** Matches the mailbox's own address or a sendAs entry: a full address or "@domain". */
const addressOrDomain = z
  .string()
  .trim()
  .toLowerCase()
  .refine((v) => /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(v) || /^@[^@\s]+\.[^@\s]+$/.test(v), {
    message: 'must be an email address (alerts@contoso.com) or a domain written as "@contoso.com"',
  });

const email = z
  .string()
  .trim()
  .toLowerCase()
  .refine((v) => /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(v), { message: 'must be an email address such as relay@contoso.com' });

/** A domain name (contoso.com; "@contoso.com" is taken too), kept in lower-case ASCII (IDN as A-labels). */
const domainName = z
  .string()
  .trim()
  .transform((value, ctx) => {
    const domain = asciiDomain(value.replace(/^@/, ''));
    if (domain === null || domain.startsWith('[') || !/^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(domain)) {
      ctx.addIssue({ code: 'custom', message: 'must be a domain name such as contoso.com' });
      return z.NEVER;
    }
    return domain;
  });

const duration = (what: string) =>
  z.union([z.string(), z.number()]).transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === null) {
      ctx.addIssue({ code: 'custom', message: `${what} must be a duration such as "30s", "5m", "1h" or "5d"` });
      return z.NEVER;
    }
    return ms;
  });

const size = (what: string) =>
  z.union([z.string(), z.number()]).transform((value, ctx) => {
    const bytes = parseSize(value);
    if (bytes === null) {
      ctx.addIssue({ code: 'custom', message: `${what} must be a size such as "200MB", "1GB" or a number of bytes` });
      return z.NEVER;
    }
    return bytes;
  });

const httpsUrl = z
  .string()
  .trim()
  .refine((v) => /^https:\/\/[^/\s]+\/?$/.test(v), { message: 'must be an https:// URL with no path, such as https://login.microsoftonline.com' })
  .transform((v) => v.replace(/\/$/, ''));

/** mailLog.retention's default: 30 days. */
const MAIL_LOG_RETENTION_MS = 30 * 86_400_000;

const port = z.number().int().min(0).max(65535);

/** An http(s):// proxy URL, or `direct` (no proxy, whatever the environment says). Errors never show credentials. */
const proxySetting = z
  .string()
  .trim()
  .min(1)
  .superRefine((v, ctx) => {
    if (v === DIRECT) return;
    try {
      parseProxyUrl(v);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
    }
  });

const tlsFiles = z.strictObject({
  cert: z.string().min(1),
  key: z.string().min(1),
});

const listenSchema = z
  .strictObject({
    port,
    host: z.string().min(1).default('0.0.0.0'),
    tls: tlsFiles.optional(),
    /**
     * Refuse AUTH (538 5.7.11) until the session is encrypted with STARTTLS, so that passwords never
     * cross the network in clear. Default: true when the listener has `tls`. Needs `tls`.
     */
    authRequiresTls: z.boolean().optional(),
  })
  .superRefine((l, ctx) => {
    if (l.authRequiresTls && !l.tls) {
      ctx.addIssue({ code: 'custom', path: ['authRequiresTls'], message: 'authRequiresTls: true needs a certificate (tls: {cert, key}) on this listener, or AUTH could never succeed' });
    }
  })
  .transform((l) => ({ ...l, authRequiresTls: l.authRequiresTls ?? Boolean(l.tls) }));

const userSchema = z
  .strictObject({
    username: z.string().min(1),
    passwordHash: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    /** Envelope senders this user may use (addresses or "@domains"); absent: any. */
    allowedSenders: z.array(addressOrDomain).min(1).optional(),
  })
  .superRefine((u, ctx) => {
    if (!u.password === !u.passwordHash) {
      ctx.addIssue({ code: 'custom', message: 'give exactly one of passwordHash (from `m365-relay hash-password`) or password' });
    } else if (u.passwordHash) {
      try {
        parsePasswordHash(u.passwordHash);
      } catch (err) {
        ctx.addIssue({ code: 'custom', path: ['passwordHash'], message: (err as Error).message });
      }
    }
  });

const rateLimit = z.strictObject({
  messages: z.number().int().positive(),
  perSeconds: z.number().positive(),
});

/** The name of an entry of `accounts:`; `default` is the top-level microsoft365. */
export const DEFAULT_ACCOUNT = 'default';

/**
 * One Microsoft 365 account: an app registration or a signed-in user, the mailbox it sends through,
 * its limits and its transport. Used for the top-level microsoft365 (the account "default") and for
 * each entry of `accounts:`. Endpoint keys have no zod default: the cloud preset fills what was not
 * given after parsing (see withCloudPreset), so an explicit key always wins over the preset.
 */
const accountSchema = z
  .strictObject({
    tenantId: z.string().trim().min(1),
    clientId: z.string().trim().min(1),
    clientSecret: z.string().min(1).optional(),
    clientCertificate: z
      .strictObject({
        privateKeyFile: z.string().min(1),
        certificateFile: z.string().min(1),
      })
      .optional(),
    /** Which Microsoft 365 cloud: fills authorityHost, smtpHost, graphHost, scope and graphScope (see clouds.ts). */
    cloud: z.enum(CLOUD_NAMES, { message: `must be one of ${CLOUD_NAMES.join(', ')}` }).default('global'),
    /** client-credentials: app-only token (secret or certificate); device-code: a user signs in once (public client). */
    flow: z.enum(['client-credentials', 'device-code'], { message: 'must be client-credentials or device-code' }).default('client-credentials'),
    /**
     * smtp: SMTP AUTH client submission (XOAUTH2); graph: Microsoft Graph sendMail; hve: High Volume
     * Email (smtp.hve.mx.microsoft, internal recipients only, its own limits: see hveDefaults.ts).
     */
    transport: z.enum(['smtp', 'graph', 'hve'], { message: 'must be smtp, graph or hve' }).default('smtp'),
    authorityHost: httpsUrl.optional(),
    scope: z.string().trim().min(1).optional(),
    smtpHost: z.string().trim().min(1).optional(),
    smtpPort: port.default(587),
    graphHost: httpsUrl.optional(),
    graphScope: z.string().trim().min(1).optional(),
    /** device-code: where the signed-in user's tokens are kept (default <spool.dir>/signin/<account>.json). */
    tokenCacheFile: z.string().min(1).optional(),
    /** device-code: key that encrypts the token cache file, normally ${M365_RELAY_CACHE_KEY}. */
    tokenCacheKey: z.string().min(1).optional(),
    mailbox: email,
    sendAs: z.array(addressOrDomain).default([]),
    /** Defaults per transport (TRANSPORT_DEFAULTS): a mailbox 30 a minute, HVE far more. */
    rateLimit: rateLimit.optional(),
    maxConnections: z.number().int().min(1).max(16).optional(),
    /** Recipients per upstream transaction: more are sent as several transactions (a mailbox takes 500 by default, HVE 50). */
    maxRecipientsPerMessage: z.number().int().min(1).max(1000).optional(),
    /** The largest message the account may send; a larger one routed to it is refused at DATA (552). Default: none (maxMessageSize applies), HVE 10 MB. */
    maxMessageSize: size('maxMessageSize').optional(),
    /**
     * Renew a cached token when less than this is left of its life. Default 5 minutes (msal's own
     * margin); HVE 15 minutes, as it refuses tokens that will expire soon (501 5.5.127).
     */
    tokenRenewBefore: duration('tokenRenewBefore').optional(),
    /** Bound on each token request to Entra ID. */
    tokenTimeout: duration('tokenTimeout').default(30_000),
    /** Bound on connecting, greeting and each SMTP command upstream. */
    smtpTimeout: duration('smtpTimeout').default(60_000),
    /** How long the mailbox rests after a throttling reply (432 4.3.2, submission rate). */
    throttlePause: duration('throttlePause').default(30_000),
    /** How long the mailbox rests after the daily recipient quota (554 5.2.0 SubmissionQuotaExceeded). */
    quotaPause: duration('quotaPause').default(3_600_000),
    /** When the client secret expires, as Entra shows it (2027-05-01): the relay warns 30, 7 and 1 days before. */
    clientSecretExpires: z
      .union([z.string(), z.date()])
      .transform((v, ctx) => {
        const at = v instanceof Date ? v.getTime() : Date.parse(v);
        if (Number.isNaN(at)) {
          ctx.addIssue({ code: 'custom', message: 'must be a date such as 2027-05-01 (the expiry Entra shows for the secret)' });
          return z.NEVER;
        }
        return new Date(at).toISOString();
      })
      .optional(),
    /**
     * transport graph: what happens to a message Graph cannot take intact (a body part over its 4 MB
     * request limit). graph: it fails with that reason; smtp: it goes out over SMTP AUTH instead
     * (the app then needs SMTP.SendAsApp and SMTP AUTH must be on for the mailbox).
     */
    largeMessages: z.enum(['graph', 'smtp'], { message: 'must be graph or smtp' }).default('graph'),
    /** transport graph: the longest Retry-After honoured; a longer one (or a date further away) is cut to this. */
    retryAfterMax: duration('retryAfterMax').default(600_000),
    /** This account's proxy, over the global `proxy`: a URL, or `direct` for none. */
    proxy: proxySetting.optional(),
  })
  .superRefine((m, ctx) => {
    if (m.transport === 'hve' && m.flow === 'device-code') {
      ctx.addIssue({ code: 'custom', path: ['flow'], message: 'transport hve signs in with an app-only token (the app allowed on the HVE account with Add-HVEAppAccess): use flow client-credentials' });
    }
    if (m.transport === 'hve' && m.cloud !== 'global' && m.smtpHost === undefined) {
      ctx.addIssue({ code: 'custom', path: ['smtpHost'], message: `High Volume Email's endpoint is known for the global cloud only (${HVE_SMTP_HOST}); for cloud ${m.cloud} set smtpHost to your cloud's HVE endpoint` });
    }
    if (m.flow === 'device-code') {
      if (m.clientSecret || m.clientCertificate) {
        ctx.addIssue({ code: 'custom', message: 'flow device-code signs in as a user (public client): remove clientSecret and clientCertificate' });
      }
      if (m.largeMessages === 'smtp') {
        // The SMTP fallback needs a second token (Exchange scope); a device-code sign-in holds one user's cache for one scope.
        ctx.addIssue({ code: 'custom', message: 'largeMessages: smtp needs an app-only account (client-credentials with SMTP.SendAsApp); with flow device-code leave it at graph' });
      }
    } else if (m.clientSecret && m.clientCertificate) {
      ctx.addIssue({ code: 'custom', message: 'give either clientSecret or clientCertificate, not both' });
    } else if (!m.clientSecret && !m.clientCertificate) {
      ctx.addIssue({ code: 'custom', message: 'a credential is missing: set clientSecret or clientCertificate' });
    }
  })
  .transform((m) => withTransportDefaults(withCloudPreset(m)));

/** Fills the limits that were not given from the transport's defaults (TRANSPORT_DEFAULTS). */
function withTransportDefaults<T extends { transport: 'smtp' | 'graph' | 'hve'; smtpHost: string; cloud: CloudName; rateLimit?: { messages: number; perSeconds: number }; maxConnections?: number; maxRecipientsPerMessage?: number; maxMessageSize?: number; tokenRenewBefore?: number }>(
  account: T,
): T & TransportDefaults {
  const defaults = TRANSPORT_DEFAULTS[account.transport];
  return {
    ...account,
    rateLimit: account.rateLimit ?? defaults.rateLimit,
    maxConnections: account.maxConnections ?? defaults.maxConnections,
    maxRecipientsPerMessage: account.maxRecipientsPerMessage ?? defaults.maxRecipientsPerMessage,
    maxMessageSize: account.maxMessageSize ?? defaults.maxMessageSize,
    tokenRenewBefore: account.tokenRenewBefore ?? defaults.tokenRenewBefore,
  };
}

/** Fills the endpoint keys that were not given from the account's cloud preset and flow. */
function withCloudPreset<T extends { cloud: CloudName; flow: 'client-credentials' | 'device-code'; transport: 'smtp' | 'graph' | 'hve'; authorityHost?: string; scope?: string; smtpHost?: string; graphHost?: string; graphScope?: string }>(
  account: T,
): T & { authorityHost: string; scope: string; smtpHost: string; graphHost: string; graphScope: string } {
  const preset = CLOUDS[account.cloud];
  const delegated = account.flow === 'device-code';
  return {
    ...account,
    authorityHost: account.authorityHost ?? preset.authorityHost,
    scope: account.scope ?? (delegated ? preset.smtpDelegatedScope : preset.smtpAppScope),
    smtpHost: account.smtpHost ?? (account.transport === 'hve' ? HVE_SMTP_HOST : preset.smtpHost),
    graphHost: account.graphHost ?? preset.graphHost,
    graphScope: account.graphScope ?? (delegated ? preset.graphDelegatedScope : preset.graphAppScope),
  };
}

const routeSchema = z
  .strictObject({
    /** A local user (users[].username) the device authenticated as; matched exactly. */
    user: z.string().min(1).optional(),
    /** The client's network (CIDR); IPv4-mapped IPv6 clients match IPv4 networks. */
    network: z
      .string()
      .superRefine((v, ctx) => {
        try {
          parseCidr(v);
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: (err as Error).message });
        }
      })
      .optional(),
    /** The envelope sender: a full address, or "@domain" for that domain exactly (not its subdomains). */
    sender: addressOrDomain.optional(),
    /**
     * Recipient domains (exactly, not their subdomains): the recipients of a message in these
     * domains take this route, the others go on down the list. A message whose recipients take
     * different routes is split, one queue entry per account.
     */
    recipientDomain: z.array(domainName).min(1).optional(),
    /** `default` (the top-level microsoft365) or a name from `accounts`. */
    account: z.string().min(1),
  })
  .superRefine((r, ctx) => {
    const matchers = (['user', 'network', 'sender', 'recipientDomain'] as const).filter((k) => r[k] !== undefined);
    if (matchers.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        message: matchers.length === 0 ? 'a route needs one of user, network, sender or recipientDomain' : `a route has exactly one of user, network, sender or recipientDomain (this one has ${matchers.join(' and ')}); write one route per condition`,
      });
    }
  });

const DEFAULT_SCHEDULE = ['15s', '1m', '2m', '5m', '10m', '15m', '30m', '1h'];

const retrySchema = z.strictObject({
  /** Delay before each retry; the last entry repeats until maxAge. */
  schedule: z.array(duration('each retry.schedule entry')).min(1).default(DEFAULT_SCHEDULE.map((d) => parseDuration(d) ?? 0)),
  maxAge: duration('retry.maxAge').default(5 * 86_400_000),
  /** Share of random spread added to each delay, so a backlog does not retry in lockstep. */
  jitter: z.number().min(0).max(1).default(0.1),
});

const limitsSchema = z.strictObject({
  /** Concurrent SMTP connections in total, over all listeners. */
  maxConnections: z.number().int().min(1).default(200),
  /** Concurrent SMTP connections from one client address. */
  maxConnectionsPerClient: z.number().int().min(1).default(20),
  /** A client silent for this long is disconnected (421). */
  socketTimeout: duration('limits.socketTimeout').default(60_000),
  /** Failed AUTH attempts from one address within authFailureWindow before it is blocked. */
  maxAuthFailures: z.number().int().min(1).default(5),
  authFailureWindow: duration('limits.authFailureWindow').default(300_000),
  /** How long an address stays blocked after too many failed AUTH attempts. */
  authBlockDuration: duration('limits.authBlockDuration').default(900_000),
  /** Messages a minute one client (a user, or an address without AUTH) may send; more get 451 4.7.1. Absent: no limit. */
  messagesPerMinutePerClient: z.number().int().positive().optional(),
});

const cidr = z.string().superRefine((v, ctx) => {
  try {
    parseCidr(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

const LIMIT_DEFAULTS = { maxConnections: 200, maxConnectionsPerClient: 20, socketTimeout: 60_000, maxAuthFailures: 5, authFailureWindow: 300_000, authBlockDuration: 900_000 };

export const configSchema = z
  .strictObject({
  listen: z.array(listenSchema).min(1, { message: 'list at least one listener, e.g. - port: 2525' }),
  /** CIDR networks that may relay without AUTH; an entry may bind its devices to some senders. */
  allowNetworks: z.array(z.union([cidr, z.strictObject({ network: cidr, allowedSenders: z.array(addressOrDomain).min(1) })])).default([]),
  users: z.array(userSchema).default([]),
  maxMessageSize: z.number().int().positive().default(36_700_160),
  maxRecipients: z.number().int().positive().max(1000).default(500),
  limits: limitsSchema.default(LIMIT_DEFAULTS),
  spool: z.strictObject({
    dir: z.string().min(1),
    /** New mail is refused (452 4.3.1) while the spool's filesystem has less free space than this. */
    minFreeSpace: size('spool.minFreeSpace').default(100 * 1024 * 1024),
  }),
  microsoft365: accountSchema,
  /** Further Microsoft 365 accounts, chosen by `routes`. */
  accounts: z.record(z.string(), accountSchema).default({}),
  /** Which account sends a message: first match wins; no match means the top-level microsoft365. */
  routes: z.array(routeSchema).default([]),
  retry: retrySchema.default({ schedule: DEFAULT_SCHEDULE.map((d) => parseDuration(d) ?? 0), maxAge: 5 * 86_400_000, jitter: 0.1 }),
  /**
   * Optional failure notices (RFC 3464) for messages that fail for good: to the sender when it can
   * receive mail (an address in localDomains), else to adminAddress.
   */
  failureNotices: z
    .strictObject({
      notify: z.enum(['sender', 'admin']).default('sender'),
      adminAddress: email.optional(),
      /** Senders that can receive mail: addresses or "@domain". Default: the mailbox's domain and its sendAs entries. */
      localDomains: z.array(addressOrDomain).optional(),
    })
    .superRefine((n, ctx) => {
      if (n.notify === 'admin' && !n.adminAddress) ctx.addIssue({ code: 'custom', path: ['adminAddress'], message: 'notify: admin needs adminAddress (who receives the notices)' });
    })
    .optional(),
  /**
   * The HTTP proxy for every connection to Microsoft 365 (token endpoint, Graph, SMTP by CONNECT):
   * http(s)://[user:password@]host:port, or `direct`. Absent: https_proxy/HTTPS_PROXY and
   * no_proxy/NO_PROXY from the environment. An account's own `proxy` wins.
   */
  proxy: proxySetting.optional(),
  /**
   * The searchable record of every message's life (`m365-relay log`), an SQLite file beside the
   * spool unless `path` says otherwise. On by default; never on the mail's path.
   */
  mailLog: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Messages whose last event is older than this are removed. */
      retention: duration('mailLog.retention').default(MAIL_LOG_RETENTION_MS),
      /** false: subjects are not stored (only envelope, Message-ID and outcomes). */
      recordSubjects: z.boolean().default(true),
      /** The database file; default <spool.dir>/maillog.sqlite. Relative paths are relative to the configuration file. */
      path: z.string().min(1).optional(),
    })
    .refine((m) => m.retention >= 60_000, { path: ['retention'], message: 'mailLog.retention must be at least 1m (30d is the default)' })
    .default({ enabled: true, retention: MAIL_LOG_RETENTION_MS, recordSubjects: true }),
  /** Optional health and metrics endpoint (off when absent). Loopback by default: it is not for the LAN. */
  http: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port,
      /** Serve HTTPS instead of HTTP (the console's logins and cookies are then encrypted on the LAN). */
      tls: tlsFiles.optional(),
    })
    .optional(),
  /**
   * The web console on the http listener (off when absent): its own administrators. Logins over
   * plain HTTP are refused from any client but loopback unless http.tls is set or allowPlainHttp.
   */
  console: z
    .strictObject({
      users: z
        .array(
          z.strictObject({
            username: z.string().trim().min(1),
            passwordHash: z.string().min(1).superRefine((v, ctx) => {
              try {
                parsePasswordHash(v);
              } catch (err) {
                ctx.addIssue({ code: 'custom', message: (err as Error).message });
              }
            }),
          }),
        )
        .min(1, { message: 'list at least one administrator: - username: admin, passwordHash: (from `m365-relay hash-password`)' }),
      /** Accept logins over plain HTTP from other hosts (passwords and cookies then cross the LAN in clear). */
      allowPlainHttp: z.boolean().default(false),
    })
    .optional(),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
      /** json: one JSON object per line (for log shippers); text: one readable line per event. */
      format: z.enum(['json', 'text'], { message: 'must be json or text' }).default('json'),
    })
    .default({ level: 'info', format: 'json' }),
  })
  .superRefine((c, ctx) => {
    if (c.console && !c.http) {
      ctx.addIssue({ code: 'custom', path: ['console'], message: 'the console is served by the http listener: add http: { port: 8025 } (loopback by default)' });
    }
    const seen = new Set<string>();
    for (const [i, u] of (c.console?.users ?? []).entries()) {
      if (seen.has(u.username)) ctx.addIssue({ code: 'custom', path: ['console', 'users', i, 'username'], message: `${u.username} is listed twice` });
      seen.add(u.username);
    }
  });

type ParsedConfig = z.output<typeof configSchema>;
type ParsedAccount = ParsedConfig['microsoft365'];

/** One Microsoft 365 account after loading: cloud preset applied, paths resolved, named. */
export type AccountConfig = Omit<ParsedAccount, 'tokenCacheFile'> & {
  /** `default` for the top-level microsoft365, else its key in `accounts`. */
  readonly name: string;
  tokenCacheFile: string;
};

/** The configuration as loadConfigFile returns it (validated, resolved, frozen). */
export type RelayConfig = Omit<ParsedConfig, 'microsoft365' | 'accounts'> & {
  microsoft365: AccountConfig;
  accounts: Record<string, AccountConfig>;
};
/** The top-level microsoft365: the account named `default`. */
export type Microsoft365Config = AccountConfig;
export type RouteConfig = RelayConfig['routes'][number];
export type ListenConfig = RelayConfig['listen'][number];
export type UserConfig = RelayConfig['users'][number];
export type RetryConfig = RelayConfig['retry'];
export type LimitsConfig = RelayConfig['limits'];
export type ConsoleConfig = NonNullable<RelayConfig['console']>;
export type HttpConfig = NonNullable<RelayConfig['http']>;
export type MailLogConfig = RelayConfig['mailLog'];
