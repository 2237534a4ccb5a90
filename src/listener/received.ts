import { Transform, type TransformCallback } from 'node:stream';
import { decodeWords } from '../relay/graphRecipients.js';
import { fieldValue, findField, parseHeaderBlock } from '../relay/headers.js';

/** What the Received: header says about how a message came in (RFC 5321 4.4, RFC 3848 protocol names). */
export interface ReceivedInfo {
  /** The client's address as policy sees it. */
  address: string;
  /** The name the client gave in HELO/EHLO. */
  helo?: string;
  /** The local user it logged in as. */
  user?: string;
  /** TLS protocol and cipher when the session was encrypted. */
  tls?: { protocol?: string; cipher?: string };
  /** SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA (smtp-server's transmission type). */
  protocol: string;
  /** This relay's host name. */
  by: string;
  /** The queue id, as in "250 ... queued as ID" and every log line. */
  id: string;
  /** Named only for a single recipient (as Postfix does): a list would disclose Bcc recipients. */
  recipients: string[];
  date: Date;
}

/** RFC 5322 date-time in UTC: "Tue, 05 May 2026 10:11:12 +0000". */
export function rfc5322Date(date: Date): string {
  return date.toUTCString().replace(/GMT$/, '+0000');
}

/** The Received: field, folded, ending with `eol`. No reverse lookups (off on a LAN relay): the client's name is what it said in HELO. */
export function receivedHeader(info: ReceivedInfo, eol = '\r\n'): string {
  const clean = (text: string) => text.replace(/[^\x21-\x7e]/g, '?').slice(0, 200);
  const lines = [`Received: from ${clean(info.helo ?? 'unknown')} ([${info.address}])`];
  if (info.tls) lines.push(`\t(using ${clean(info.tls.protocol ?? 'TLS')} with cipher ${clean(info.tls.cipher ?? 'unknown')})`);
  if (info.user) lines.push(`\t(Authenticated sender: ${clean(info.user)})`);
  const by = `\tby ${clean(info.by)} (m365-relay) with ${info.protocol} id ${info.id}`;
  const single = info.recipients.length === 1 ? info.recipients[0] : undefined;
  if (single) lines.push(by, `\tfor <${clean(single)}>; ${rfc5322Date(info.date)}`);
  else lines.push(`${by}; ${rfc5322Date(info.date)}`);
  return lines.join(eol) + eol;
}

/** Bound on the header bytes kept to find Message-ID: and Subject: (the rest of the message is never held). */
const MAX_HEADER_BYTES = 64 * 1024;

/**
 * The stream the spool writes: the relay's Received: field first (in the message's own line
 * ending), then the client's bytes unchanged. It also reads the client's header block (up to
 * 64 KB) to report its Message-ID (for the log line) and its Subject (for the mail log).
 */
export class ReceivedStamp extends Transform {
  private head: Buffer[] = [];
  private headBytes = 0;
  private started = false;
  private scanning = true;
  messageId: string | undefined;
  /** The Subject field, RFC 2047 words decoded, unfolded, at most 500 characters. */
  subject: string | undefined;
  /** Bytes of the Received: field added in front of the client's message. */
  added = 0;

  constructor(private readonly header: (eol: string) => string) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (this.scanning) {
      this.head.push(chunk);
      this.headBytes += chunk.length;
      const joined = Buffer.concat(this.head);
      if (!this.started) {
        const nl = joined.indexOf(0x0a);
        if (nl === -1 && joined.length < 998) return done(); // wait for the first line ending
        this.started = true;
        this.pushHeader(nl > 0 && joined[nl - 1] === 0x0d ? '\r\n' : nl === -1 ? '\r\n' : '\n');
        this.push(joined);
      } else {
        this.push(chunk);
      }
      if (/\r?\n\r?\n/.test(joined.toString('latin1')) || this.headBytes >= MAX_HEADER_BYTES) this.finishScan(joined);
      return done();
    }
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    const joined = Buffer.concat(this.head);
    if (!this.started) {
      this.started = true;
      this.pushHeader(joined.includes('\n') && !joined.includes('\r\n') ? '\n' : '\r\n');
      this.push(joined);
    }
    if (this.scanning) this.finishScan(joined);
    done();
  }

  private pushHeader(eol: string): void {
    const header = Buffer.from(this.header(eol), 'latin1');
    this.added = header.length;
    this.push(header);
  }

  private finishScan(joined: Buffer): void {
    this.scanning = false;
    this.head = [];
    const block = parseHeaderBlock(joined);
    const field = findField(block, 'message-id');
    if (field) this.messageId = fieldValue(field).slice(0, 250);
    const subject = findField(block, 'subject');
    if (subject) this.subject = decodeWords(asUtf8(fieldValue(subject))).slice(0, 500);
  }
}

/** Header text is read byte for byte (latin1); 8-bit text that is valid UTF-8 (SMTPUTF8 clients) is shown as such. */
function asUtf8(text: string): string {
  // eslint-disable-next-line no-control-regex
  if (!/[^\x00-\x7f]/.test(text)) return text;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(text, 'latin1'));
  } catch {
    return text;
  }
}
