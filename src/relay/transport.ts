import { isIP, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { Readable } from 'node:stream';
import nodemailer, { type Transporter, type TransportOptions } from 'nodemailer';
import type { Microsoft365Config } from '../config/index.js';
import type { TokenSource } from '../oauth/index.js';
import { openTunnel, proxyFor } from '../proxy/index.js';
import type { SendContext } from './accountFactory.js';
import type { FailureStage, UpstreamFailure } from './classify.js';

export interface RecipientRejection {
  address: string;
  responseCode?: number;
  response: string;
}

export interface SendResult {
  accepted: string[];
  rejected: RecipientRejection[];
  /** The final reply, e.g. "250 2.0.0 OK <queue id> [Hostname=...]". */
  response: string;
}

/** A failed submission, carrying what classify() needs and any per-recipient rejections. */
export class UpstreamError extends Error {
  override readonly name = 'UpstreamError';
  constructor(
    readonly failure: UpstreamFailure,
    readonly rejected: RecipientRejection[] = [],
    options?: { cause?: unknown },
  ) {
    super(failure.response || failure.message || failure.code || 'upstream error', options);
  }
}

interface NodemailerError extends Error {
  code?: string;
  /** The SMTP command the error answers (MAIL FROM, RCPT TO, DATA, AUTH ..., CONN, API). */
  command?: string;
  responseCode?: number;
  response?: string;
  rejectedErrors?: NodemailerError[];
  recipient?: string;
}

/**
 * One pooled SMTP submission transport to Exchange Online for one mailbox: STARTTLS required
 * (never plain text upstream), SASL XOAUTH2 with tokens from the TokenSource, at most
 * maxConnections sessions. Sends the spooled bytes as they are (`raw`) with the spooled envelope.
 */
export class SubmissionTransport {
  private readonly transporter: Transporter;

  constructor(config: Microsoft365Config, tokens: TokenSource) {
    this.transporter = nodemailer.createTransport({
      ...submissionOptions(config),
      pool: true,
      maxConnections: config.maxConnections,
      maxMessages: 100,
      // The spool does the retrying: a pool re-sending a half-consumed stream would corrupt it.
      maxRequeues: 0,
    } as TransportOptions);
    // Each pooled connection asks for a token when it authenticates; msal serves it from its cache.
    provideTokens(this.transporter, tokens);
  }

  /** SMTP has an envelope and nothing to clean up: the context is not needed. */
  async send(envelope: { from: string; to: string[] }, raw: Readable, _context?: SendContext): Promise<SendResult> {
    // Whether the content was being handed over tells whose a lost connection is (classify.ts).
    let contentStarted = false;
    const content = Readable.from(
      (async function* () {
        contentStarted = true;
        yield* raw;
      })(),
      { objectMode: false },
    );
    try {
      const info = (await this.transporter.sendMail({ envelope, raw: content })) as {
        accepted: Array<string | { address: string }>;
        rejected: Array<string | { address: string }>;
        rejectedErrors?: NodemailerError[];
        response: string;
      };
      return {
        accepted: info.accepted.map((a) => (typeof a === 'string' ? a : a.address)),
        rejected: (info.rejectedErrors ?? []).map(toRejection),
        response: info.response,
      };
    } catch (err) {
      content.destroy();
      raw.destroy();
      const e = err as NodemailerError;
      const failure: UpstreamFailure = { code: e.code, responseCode: e.responseCode, response: e.response, message: e.message, stage: stageOf(e, contentStarted) };
      throw new UpstreamError(failure, (e.rejectedErrors ?? []).map(toRejection), { cause: err });
    }
  }

  close(): void {
    this.transporter.close();
  }
}

/**
 * How every upstream session is opened: STARTTLS required (never plain text upstream), TLS 1.2+,
 * XOAUTH2 as the mailbox. Shared by the delivery pool and `check-config --connect`, so the check
 * tests exactly what delivery does.
 */
export function submissionOptions(config: Microsoft365Config, env: NodeJS.ProcessEnv = process.env): Record<string, unknown> {
  const proxy = proxyFor(config.proxy, config.smtpHost, env);
  return {
    // Through a proxy: the session runs in an HTTP CONNECT tunnel; STARTTLS inside it is end to end.
    ...(proxy && {
      getSocket: (options: { host: string; port: number }, callback: (err: Error | null, socket?: { connection: Socket }) => void) => {
        openTunnel(proxy.url, options.host, options.port, config.smtpTimeout).then(
          (connection) => callback(null, { connection }),
          (err: Error) => callback(err),
        );
      },
    }),
    host: config.smtpHost,
    port: config.smtpPort,
    secure: false,
    requireTLS: true,
    name: hostname(),
    // SNI takes a host name only (RFC 6066); an IP address is verified against the certificate's IP SANs.
    tls: { minVersion: 'TLSv1.2', ...(isIP(config.smtpHost) ? {} : { servername: config.smtpHost }) },
    auth: { type: 'OAuth2', user: config.mailbox },
    connectionTimeout: config.smtpTimeout,
    greetingTimeout: config.smtpTimeout,
    socketTimeout: config.smtpTimeout,
    logger: false,
    debug: false,
  };
}

/** Lets nodemailer ask the token source for a token whenever a session authenticates. */
export function provideTokens(transporter: Transporter, tokens: TokenSource): void {
  transporter.set('oauth2_provision_cb', (_user: string, renew: boolean, callback: (err: Error | null, token?: string, expires?: number) => void) => {
    tokens.getToken({ forceRefresh: renew }).then(
      (t) => callback(null, t.accessToken, t.expiresOn.getTime()),
      (err: Error) => callback(err),
    );
  });
}

/** How far the transaction got when nodemailer failed (see UpstreamFailure.stage). */
function stageOf(err: NodemailerError, contentStarted: boolean): FailureStage {
  if (contentStarted) return 'data';
  if (err.command === 'MAIL FROM' || err.command === 'RCPT TO' || err.command === 'DATA') return 'envelope';
  // nodemailer's own refusal of an address or message, before anything was sent for it.
  if (err.command === 'API' && (err.code === 'EENVELOPE' || err.code === 'EMESSAGE')) return 'envelope';
  return 'session';
}

function toRejection(err: NodemailerError): RecipientRejection {
  return { address: err.recipient ?? '', responseCode: err.responseCode, response: err.response ?? err.message };
}
