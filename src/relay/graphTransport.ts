// Microsoft Graph as the way out, for tenants where SMTP AUTH is off. What it guarantees:
// - exactly the envelope's recipients receive the message (graphRecipients.ts: the recipient
//   headers, and for a draft its recipient fields, are set to the envelope);
// - a message up to 4 MB goes to POST /users/{mailbox}/sendMail (base64 MIME); a larger one through
//   a draft with its attachments uploaded separately (graphDraft.ts), bodies kept as bodies; one
//   that cannot go intact fails saying why, or goes over SMTP with largeMessages: smtp;
// - no draft is left behind, a crash's included; large messages are staged inside the spool.
// Requests, Retry-After and the possible-duplicate flag are in graphClient.ts.
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import type { Logger } from '../observability/logger.js';
import type { TokenSource } from '../oauth/index.js';
import type { MessageTransport, SendContext } from './accountFactory.js';
import { GraphClient } from './graphClient.js';
import { DRAFT_MARKER_HEADER, draftPieces, GraphDrafts, planDraft } from './graphDraft.js';
import { applyRecipientPlan, planRecipients } from './graphRecipients.js';
import { graphFailure } from './graphClient.js';
import { parseHeaderBlock, serializeHeaderBlock, type HeaderBlock } from './headers.js';
import { parseMimeTree } from './mimeParts.js';
import { spill, readRange, type Spilled } from './staging.js';
import { UpstreamError, type SendResult } from './transport.js';

/** Graph's request limit is 4 MB; base64 grows the MIME by 4/3, so this much raw MIME fits in one request. */
export const SINGLE_REQUEST_RAW = 2_900_000;
/** The header block is read from at most this much of the message. */
const HEADER_READ = 1024 * 1024;

export interface GraphTransportOptions {
  /** e.g. https://graph.microsoft.com */
  graphHost: string;
  mailbox: string;
  /** The account's `proxy` setting; absent: the environment's. */
  proxy?: string;
  /** Bound on each request. */
  timeoutMs: number;
  /** The longest Retry-After honoured (default 10 minutes). */
  retryAfterMaxMs?: number;
  /** Graph allows 4 concurrent requests per app and mailbox. */
  maxConcurrent?: number;
  /** Where large messages are staged (inside the spool); without it, messages over 2.9 MB fail. */
  stagingDir?: string;
  /** largeMessages: smtp: where a message Graph cannot take intact goes instead. */
  fallback?: MessageTransport;
  now?: () => number;
}

export class GraphTransport implements MessageTransport {
  private readonly client: GraphClient;
  private readonly drafts: GraphDrafts;
  private readonly base: string;

  constructor(
    private readonly options: GraphTransportOptions,
    tokens: TokenSource,
    private readonly log: Logger,
  ) {
    this.client = new GraphClient({ timeoutMs: options.timeoutMs, retryAfterMaxMs: options.retryAfterMaxMs ?? 600_000, maxConcurrent: options.maxConcurrent ?? 4, ...(options.now && { now: options.now }), ...(options.proxy !== undefined && { proxy: options.proxy }) }, tokens);
    this.base = `${options.graphHost.replace(/\/$/, '')}/v1.0/users/${encodeURIComponent(options.mailbox)}`;
    this.drafts = new GraphDrafts(this.client, this.base, log);
  }

  async send(envelope: { from: string; to: string[] }, raw: Readable, context: SendContext): Promise<SendResult> {
    const spilled = await spill(raw, SINGLE_REQUEST_RAW, this.options.stagingDir, context.messageId);
    try {
      const header = parseHeaderBlock(await spilled.read(0, Math.min(spilled.size, HEADER_READ)));
      const plan = planRecipients(header, envelope.to);
      const recipientHeader = applyRecipientPlan(header, plan);
      const accepted = { accepted: [...envelope.to], rejected: [] };
      const headerBytes = serializeHeaderBlock(recipientHeader);
      if (headerBytes.length + spilled.size - header.bodyOffset <= SINGLE_REQUEST_RAW) {
        const mime = Buffer.concat([headerBytes, await spilled.read(header.bodyOffset, spilled.size - header.bodyOffset)]);
        await this.sending(context, 'sendMail', () => this.client.call({ method: 'POST', url: `${this.base}/sendMail`, contentType: 'text/plain', body: Buffer.from(mime.toString('base64'), 'latin1'), sends: true }, context.signal));
        return { ...accepted, response: `202 Accepted by Microsoft Graph sendMail for ${this.options.mailbox}` };
      }
      const result = await this.sendLarge(spilled, recipientHeader, plan, envelope, context);
      return { ...accepted, ...result };
    } finally {
      await spilled.dispose();
    }
  }

  close(): void {
    this.client.close();
    this.options.fallback?.close();
  }

  /** Draft + attachments + send; or SMTP / a clear failure when Graph cannot take the message intact. */
  private async sendLarge(spilled: Spilled, header: HeaderBlock, plan: ReturnType<typeof planRecipients>, envelope: { from: string; to: string[] }, context: SendContext): Promise<Omit<SendResult, 'accepted' | 'rejected'>> {
    const file = await spilled.toFile();
    const root = await parseMimeTree(file);
    const marker = { name: DRAFT_MARKER_HEADER.toLowerCase(), raw: `${DRAFT_MARKER_HEADER}: ${context.messageId}${header.eol}` };
    const draftHeader = serializeHeaderBlock({ ...header, fields: [...header.fields, marker] });
    const decision = root ? planDraft(root, draftHeader.length, SINGLE_REQUEST_RAW) : ({ ok: false, reason: "the message's MIME structure cannot be read (a multipart without its closing delimiter?), so its attachments cannot be uploaded separately and it is over Graph's 4 MB request limit" } as const);
    if (!decision.ok || !root) {
      const reason = decision.ok ? 'unreadable MIME structure' : decision.reason;
      if (this.options.fallback) {
        this.log.info({ msgId: context.messageId, event: 'graph-smtp-fallback', reason }, 'sending over SMTP AUTH instead (largeMessages: smtp)');
        const result = await this.options.fallback.send(envelope, createReadStream(file), context);
        return { response: result.response };
      }
      throw graphFailure(413, 'ErrorRequestEntityTooLarge', reason);
    }
    const moved = new Set(decision.moved);
    const parts = [draftHeader];
    for (const piece of draftPieces(root, moved)) parts.push(Buffer.isBuffer(piece) ? piece : await readRange(file, piece.from, piece.to - piece.from));
    const { signal, messageId } = context;

    await this.drafts.removeLeftovers(messageId, signal);
    const id = await this.drafts.create(Buffer.concat(parts), messageId, signal);
    let sent = false;
    try {
      await this.drafts.prepare(id, plan, messageId, signal);
      for (const leaf of decision.moved) await this.drafts.attach(id, file, leaf, this.options.stagingDir!, messageId, signal);
      await this.sending(context, 'send', () => this.drafts.send(id, signal));
      sent = true;
    } finally {
      if (!sent) await this.discard(id, messageId);
    }
    return { response: `202 Accepted by Microsoft Graph for ${this.options.mailbox} (draft with ${decision.moved.length} attachment(s) uploaded separately)` };
  }

  /**
   * The draft of an attempt that did not end in a send is deleted. Without a signal: a stop must not
   * leave it behind (the request is bounded by the timeout). If even this fails, the next attempt's
   * removeLeftovers finds it by its marker.
   */
  private async discard(id: string, messageId: string): Promise<void> {
    try {
      await this.drafts.remove(id);
      this.log.info({ msgId: messageId, event: 'draft-removed', reason: 'attempt failed' }, 'deleted the draft of a failed attempt');
    } catch (err) {
      this.log.warn({ msgId: messageId, event: 'draft-remove-failed', err: err instanceof Error ? err.message : String(err) }, 'could not delete the draft of a failed attempt; the next attempt deletes it');
    }
  }

  /** The request that sends: an unclear ending is logged as a possible duplicate (the retry may deliver twice). */
  private async sending<T>(context: SendContext, request: 'sendMail' | 'send', run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      if (err instanceof UpstreamError && err.failure.possibleDuplicate) {
        this.log.warn(
          { msgId: context.messageId, event: 'possible-duplicate', request, reason: err.failure.response ?? err.failure.message },
          'Graph may have sent this message although the request failed; the retry may deliver a second copy',
        );
      }
      throw err;
    }
  }
}
