// Public types of the Microsoft 365 simulator (re-exported by index.ts).

export interface SimulatorApp {
  clientId: string;
  clientSecret?: string;
  /** PEM certificate registered for certificate credentials (client assertions signed by its key). */
  certificatePem?: string;
  /** The app's secret exists but has expired: using it gets AADSTS7000222. */
  secretExpired?: boolean;
  /** The secret's endDateTime in the app registration (Graph passwordCredentials); default one year after the start. */
  secretExpiresAt?: string;
  /**
   * The app holds Application.Read.All (Graph, application): it may read app registrations,
   * GET /v1.0/applications(appId='...'); without it that answers 403 Authorization_RequestDenied.
   */
  applicationReadAll?: boolean;
  /**
   * "Allow public client flows" (device code, refresh without a credential). Default: true for an
   * app without a secret or certificate, false otherwise.
   */
  publicClient?: boolean;
}

export interface SimulatorMailbox {
  address: string;
  /** clientIds of apps with FullAccess to this mailbox. */
  apps: string[];
  /** Extra addresses, or "@domain" suffixes, the mailbox may send as. */
  sendAs?: string[];
  /** Default true; false gets 535 5.7.139 ... SmtpClientAuthentication is disabled for the Mailbox. */
  smtpAuthEnabled?: boolean;
}

/** A High Volume Email account (a mail user sending through smtp.hve.mx.microsoft). */
export interface SimulatorHveAccount {
  address: string;
  /** clientIds of the apps allowed on it (Add-HVEAppAccess); others get 550 5.7.240. */
  apps: string[];
  /** Further addresses or "@domain" suffixes it may send as; default only its own address. */
  sendAs?: string[];
}

/** The simulated High Volume Email endpoint (standing in for smtp.hve.mx.microsoft:587). */
export interface SimulatorHveOptions {
  accounts: SimulatorHveAccount[];
  /** The tenant's accepted domains: recipients elsewhere get 550 5.5.105. Default: the domains of every mailbox and HVE account. */
  acceptedDomains?: string[];
  /** Recipients per message; the next RCPT gets 452 4.5.3. Default 50. */
  maxRecipients?: number;
  /** Message size in bytes (advertised as SIZE; more gets 552 5.3.4). Default 10 MB. */
  maxMessageSize?: number;
  /** A token with less life than this at AUTH gets 501 5.5.127 ... Token will expire soon. Default 600 (10 minutes). */
  minTokenLifetimeSeconds?: number;
  port?: number;
}

export interface SimulatorOptions {
  /** Default '127.0.0.1'. */
  host?: string;
  /** Default 'contoso.onmicrosoft.com'; token requests for any other tenant get AADSTS90002. */
  tenantId?: string;
  /** Default one app: clientId '11111111-2222-3333-4444-555555555555', clientSecret 'sim-secret'. */
  apps?: SimulatorApp[];
  /** Default one: 'relay@contoso.com', apps [the default app], sendAs ['@contoso.com']. */
  mailboxes?: SimulatorMailbox[];
  /** Default 3600. */
  tokenLifetimeSeconds?: number;
  /** Default 3 (0 = unlimited). */
  maxConnectionsPerMailbox?: number;
  /** Per mailbox, default { messages: 30, perSeconds: 60 }; null = off. */
  rateLimit?: { messages: number; perSeconds: number } | null;
  /** CA that signs the servers' certificate; generated when absent. */
  ca?: { certPem: string; keyPem: string };
  httpsPort?: number;
  smtpPort?: number;
  graphPort?: number;
  /** Device codes: lifetime (default 900 s) and polling interval (default 5 s; fractions allowed). */
  deviceCodeLifetimeSeconds?: number;
  deviceCodeIntervalSeconds?: number;
  /** A refresh token unused this long expires (AADSTS700082); each use returns a new one. Default 90 days. */
  refreshTokenLifetimeSeconds?: number;
  /** Conditional Access sign-in frequency: refresh refused (AADSTS70043) once the sign-in is this old. Default none. */
  signInFrequencySeconds?: number | null;
  /** A High Volume Email endpoint beside the mailbox one (hveHost/hvePort); none when absent. */
  hve?: SimulatorHveOptions;
}

export interface ReceivedMessage {
  /** The XOAUTH2 user (mailbox address, as configured). */
  mailbox: string;
  /** The app whose token authenticated the session. */
  clientId: string;
  /** With a delegated token: the signed-in user (lowercased address); absent for app-only tokens. */
  user?: string;
  envelope: { from: string; to: string[] };
  /** The message bytes exactly as received (dot-unstuffed). */
  raw: Buffer;
  queueId: string;
  at: Date;
  /** How it arrived: SMTP submission (default), the Graph sendMail API, or the High Volume Email endpoint. */
  via?: 'smtp' | 'graph' | 'hve';
}

/** A message in a mailbox's Drafts folder of the simulated Graph. */
export interface GraphDraftView {
  id: string;
  mailbox: string;
  /** The recipient fields Graph would send to. */
  to: string[];
  cc: string[];
  bcc: string[];
  attachments: number;
  /** singleValueExtendedProperties by id, X- headers of its MIME included (PS_INTERNET_HEADERS). */
  properties: Record<string, string>;
}

export interface SimulatorStats {
  tokenRequests: number;
  tokensIssued: number;
  authSuccesses: number;
  authFailures: number;
  connections: number;
  maxConcurrentPerMailbox: number;
  throttled: number;
  /** High Volume Email: sessions refused because the token would expire soon (501 5.5.127). */
  hveTokenExpiringSoon: number;
  /** Requests to the Graph endpoint, and those answered 429/503. */
  graphRequests: number;
  graphThrottled: number;
  /** Graph drafts created (POST /messages), deleted (DELETE) and sent (/send). */
  graphDraftsCreated: number;
  graphDraftsDeleted: number;
  graphDraftsSent: number;
  deviceCodesIssued: number;
  /** Refresh tokens redeemed (each rotated to a new one). */
  refreshTokensRedeemed: number;
}

export interface SimulatorFaults {
  /** SMTP: accept TCP then close at once (like a dead upstream / reset). */
  refuseConnections: boolean;
  /** Answer every new connection with this greeting (e.g. '421 4.3.2 Service not available') and close it. */
  greetingReply: string | null;
  /** The next `count` end-of-DATA replies are `reply` (default 451 4.7.500 Server busy...); the message is not recorded. */
  failNext(count: number, reply?: string): void;
  /** Lowercased address -> reply at RCPT, e.g. '550 5.1.10 RESOLVER.ADR.RecipientNotFound; ...'. */
  rejectRecipients: Map<string, string>;
  /** A permanent end-of-DATA reply for every message. */
  rejectData: string | null;
  /** Next N messages: read all DATA, record them, then destroy the socket without a reply. */
  dropBeforeFinalReply: number;
  /** Token POST answers 503 temporarily_unavailable. */
  tokenEndpointDown: boolean;
  /** The next `count` app-only tokens live `seconds` instead of tokenLifetimeSeconds (a token lifetime policy, or a short-lived token from a cache). */
  shortLivedTokens(count: number, seconds: number): void;
  /** Delay before answering token requests. */
  tokenEndpointDelayMs: number;
  /**
   * The next `count` Graph API requests (or, with target 'upload', upload-session PUTs) get `status`
   * (e.g. 429, 503, 500, 400), with Retry-After when given: seconds, or a Date sent as an HTTP-date.
   */
  graphFailNext(count: number, status: number, retryAfter?: number | Date, target?: 'api' | 'upload'): void;
}

export interface Simulator {
  /** CA certificate (PEM) that signed the servers' certificate. */
  readonly caPem: string;
  /** e.g. 'https://127.0.0.1:40123' */
  readonly authorityHost: string;
  readonly tenantId: string;
  readonly smtpHost: string;
  readonly smtpPort: number;
  /** The simulated Microsoft Graph, e.g. 'https://127.0.0.1:40125' (use as graphHost). */
  readonly graphHost: string;
  /** The simulated High Volume Email endpoint (options.hve): use as an HVE account's smtpHost and smtpPort. */
  readonly hveHost: string | null;
  readonly hvePort: number | null;
  readonly received: ReceivedMessage[];
  readonly faults: SimulatorFaults;
  readonly stats: SimulatorStats;
  /** Resolves with the received messages once there are `count`; rejects after `timeoutMs` (default 10 s). */
  waitForMessages(count: number, timeoutMs?: number): Promise<ReceivedMessage[]>;
  /** Drafts in the simulated Graph's Drafts folders (one mailbox's when given). */
  graphDrafts(mailbox?: string): GraphDraftView[];
  /** Tokens already issued now get 535 5.7.3 (msal still caches them). */
  revokeAllTokens(): void;
  /**
   * The user signs in at the verification page and enters `userCode` (from the device code
   * message): the client's next poll gets tokens for `user`, which must be a mailbox of the tenant.
   * Throws for an unknown, expired or already used code.
   */
  approveDeviceCode(userCode: string, user: string): void;
  /** The user declines the sign-in: the client's next poll gets authorization_declined. */
  denyDeviceCode(userCode: string): void;
  /** User codes of device codes still waiting for a sign-in. */
  pendingUserCodes(): string[];
  /** Revokes the refresh tokens of `user` (every user's when absent): invalid_grant AADSTS50173. Returns how many. */
  revokeRefreshTokens(user?: string): number;
  /** Clears faults, received messages, Graph drafts and the rate-limit history. */
  reset(): void;
  close(): Promise<void>;
}
