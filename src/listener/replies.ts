/**
 * Every reply the listener makes itself, with its enhanced status code (RFC 3463) written into the
 * text. smtp-server's automatic enhanced codes are off (hideENHANCEDSTATUSCODES): they would map
 * 452 to 4.2.2, 552 to 5.2.2 and a queued message to 2.6.0, and prefix our own codes a second
 * time. So each text here is exactly what the client reads after the reply code.
 */
export const REPLIES = {
  authRequired: [530, '5.7.0 Authentication required'],
  authFailed: [535, '5.7.8 Error: authentication failed'],
  authBlocked: [454, '4.7.0 Too many failed authentication attempts; try again later'],
  authTemporary: [454, '4.7.0 Temporary authentication failure, try again later'],
  authMechanism: [504, '5.5.4 Unrecognized authentication type'],
  encryptionRequired: [538, '5.7.11 Encryption required for requested authentication mechanism'],
  tooManyRecipients: [452, '4.5.3 Too many recipients'],
  senderNotAllowed: [550, '5.7.1 Sender address not allowed for this client'],
  clientRateLimited: [451, '4.7.1 Too many messages from this client, try again later'],
  // RFC 6531 3.7.4.1: a non-ASCII local part from a client that did not declare SMTPUTF8.
  nonAsciiLocalPart: [553, '5.6.7 Non-ASCII address requires SMTPUTF8 (MAIL FROM:<...> SMTPUTF8)'],
  badDomain: [553, '5.1.3 Bad destination mailbox address syntax'],
  badSenderDomain: [553, '5.1.7 Bad sender mailbox address syntax'],
  tooLarge: [552, '5.3.4 Message size exceeds fixed maximum message size'],
  // Refused here rather than bounced later: the account the recipients are routed to (HVE: 10 MB) would refuse it.
  tooLargeForAccount: [552, '5.3.4 Message size exceeds the limit of the Microsoft 365 account it is routed to'],
  spoolWrite: [451, '4.3.0 Error: queue file write error, try again later'],
  internalError: [451, '4.3.0 Error: internal error, try again later'],
  diskFull: [452, '4.3.1 Insufficient system storage, try again later'],
  tooManyConnections: [421, '4.7.0 Too many connections from your address, try again later'],
  serverBusy: [421, '4.3.2 Too many connections, try again later'],
  shuttingDown: [421, '4.3.2 Service shutting down, try again later'],
} as const satisfies Record<string, readonly [number, string]>;

export type ReplyName = keyof typeof REPLIES;

/** An Error carrying an SMTP reply, as smtp-server's handler callbacks expect (responseCode + message). */
export interface SmtpReplyError extends Error {
  responseCode: number;
  replyName: ReplyName;
}

export function reply(name: ReplyName): SmtpReplyError {
  const [code, text] = REPLIES[name];
  return Object.assign(new Error(text), { responseCode: code, replyName: name });
}

export function isReply(err: unknown): err is SmtpReplyError {
  return err instanceof Error && typeof (err as Partial<SmtpReplyError>).replyName === 'string';
}

/**
 * The text of the final DATA reply. smtp-server sends it as `250 <text>` (the enhanced code would
 * only be added by smtp-server itself, and that is off), so the client reads exactly
 * `250 2.0.0 Ok: queued as <id>`, as Postfix writes it.
 */
export function queuedReply(id: string): string {
  return `2.0.0 Ok: queued as ${id}`;
}
