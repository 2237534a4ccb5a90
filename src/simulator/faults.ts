// Injected faults, and turning an SMTP reply line into the error smtp-server sends verbatim.
import type { SimulatorFaults } from './types.js';

export const DEFAULT_FAIL_REPLY = '451 4.7.500 Server busy. Please try again later.';

export class Faults implements SimulatorFaults {
  refuseConnections = false;
  greetingReply: string | null = null;
  rejectRecipients = new Map<string, string>();
  rejectData: string | null = null;
  dropBeforeFinalReply = 0;
  tokenEndpointDown = false;
  tokenEndpointDelayMs = 0;
  private readonly failures: string[] = [];
  private readonly shortLived: number[] = [];
  /** Forced Graph answers, one per API request / upload PUT; read by the Graph endpoint. */
  readonly graphFaults: Array<{ status: number; retryAfter?: string }> = [];
  readonly graphUploadFaults: Array<{ status: number; retryAfter?: string }> = [];

  graphFailNext(count: number, status: number, retryAfter?: number | Date, target: 'api' | 'upload' = 'api'): void {
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`graphFailNext: count must be a non-negative integer, got ${count}`);
    if (!(status >= 400 && status < 600)) throw new RangeError(`graphFailNext: status must be 4xx or 5xx, got ${status}`);
    const header = retryAfter === undefined ? undefined : retryAfter instanceof Date ? retryAfter.toUTCString() : String(retryAfter);
    const list = target === 'upload' ? this.graphUploadFaults : this.graphFaults;
    for (let i = 0; i < count; i++) list.push(header === undefined ? { status } : { status, retryAfter: header });
  }

  shortLivedTokens(count: number, seconds: number): void {
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`shortLivedTokens: count must be a non-negative integer, got ${count}`);
    if (!(seconds > 0)) throw new RangeError(`shortLivedTokens: seconds must be positive, got ${seconds}`);
    this.shortLived.length = 0;
    for (let i = 0; i < count; i++) this.shortLived.push(seconds);
  }

  /** The lifetime of the next app-only token: a pending shortLivedTokens() one (consumed), else `normal`. */
  takeTokenLifetime(normal: number): number {
    return this.shortLived.shift() ?? normal;
  }

  failNext(count: number, reply: string = DEFAULT_FAIL_REPLY): void {
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`failNext: count must be a non-negative integer, got ${count}`);
    parseReply(reply); // validate now, not at the end of some later DATA
    for (let i = 0; i < count; i++) this.failures.push(reply);
  }

  /** The reply for this end of DATA if a failNext() is pending (and consumes it). */
  takeFailure(): string | undefined {
    return this.failures.shift();
  }

  clear(): void {
    this.refuseConnections = false;
    this.greetingReply = null;
    this.rejectRecipients.clear();
    this.rejectData = null;
    this.dropBeforeFinalReply = 0;
    this.tokenEndpointDown = false;
    this.tokenEndpointDelayMs = 0;
    this.failures.length = 0;
    this.shortLived.length = 0;
    this.graphFaults.length = 0;
    this.graphUploadFaults.length = 0;
  }
}

export interface SmtpReplyError extends Error {
  responseCode: number;
}

/** '451 4.7.500 Server busy.' -> code 451, text '4.7.500 Server busy.' */
export function parseReply(reply: string): { code: number; text: string } {
  const m = /^([245]\d\d)(?:[ -](.*))?$/s.exec(reply.trim());
  if (!m) throw new TypeError(`not an SMTP reply line (want e.g. '451 4.7.500 Server busy'): ${JSON.stringify(reply)}`);
  return { code: Number(m[1]), text: (m[2] ?? '').replace(/[\r\n]+/g, ' ') };
}

/**
 * An error for an smtp-server handler callback. smtp-server answers `${responseCode} ${message}`
 * (enhanced status codes are off, so the text carries its own, as Exchange's replies do).
 */
export function replyError(code: number, text: string): SmtpReplyError {
  const err = new Error(text) as SmtpReplyError;
  err.responseCode = code;
  return err;
}

/** replyError from a whole reply line; a malformed line becomes a 554 with the line as its text. */
export function replyLineError(reply: string): SmtpReplyError {
  try {
    const { code, text } = parseReply(reply);
    return replyError(code, text);
  } catch {
    return replyError(554, `5.0.0 ${reply}`);
  }
}
