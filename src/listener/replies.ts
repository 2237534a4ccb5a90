/**
 * Every reply the listener makes itself, with its enhanced status code (RFC 3463). smtp-server's own
 * automatic codes are off, so each text here says exactly what the client gets.
 */
export const REPLIES = {
  authRequired: [530, '5.7.0 Authentication required'],
  authFailed: [535, '5.7.8 Error: authentication failed'],
  authBlocked: [454, '4.7.0 Too many failed authentication attempts; try again later'],
  authMechanism: [504, '5.5.4 Unrecognized authentication type'],
  tooManyRecipients: [452, '4.5.3 Too many recipients'],
  tooLarge: [552, '5.3.4 Message size exceeds fixed maximum message size'],
  spoolWrite: [451, '4.3.0 Error: queue file write error, try again later'],
  diskFull: [452, '4.3.1 Insufficient system storage, try again later'],
  tooManyConnections: [421, '4.7.0 Too many connections from your address, try again later'],
} as const satisfies Record<string, readonly [number, string]>;

export type ReplyName = keyof typeof REPLIES;

/** An Error carrying an SMTP reply, as smtp-server's handler callbacks expect. */
export function reply(name: ReplyName): Error & { responseCode: number } {
  const [code, text] = REPLIES[name];
  return Object.assign(new Error(text), { responseCode: code });
}

export function queuedReply(id: string): string {
  return `2.0.0 Ok: queued as ${id}`;
}
