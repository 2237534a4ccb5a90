import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import { normalizeAddress } from '../access/index.js';
import type { IncomingMessage } from '../spool/index.js';
import { clientAddress, clientOf, envelopeOf, userOf } from './envelope.js';
import type { HandlerContext } from './handlers.js';
import { reply } from './replies.js';
import { hostname } from 'node:os';
import { ReceivedStamp, receivedHeader } from './received.js';
import { capAt } from './sizeCap.js';

const RELAY_HOST = hostname();

/** Discards a message's files; IncomingMessage.abort never throws, but a faulty sink must not matter. */
async function discard(message: IncomingMessage): Promise<void> {
  try {
    await message.abort();
  } catch {
    // nothing more to do: the spool removes leftovers at start
  }
}

/** Reads whatever is left of the message so that smtp-server can send the reply. */
export function drain(stream: SMTPServerDataStream): Promise<void> {
  if (stream.readableEnded || stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      stream.off('end', done);
      stream.off('close', done);
      resolve();
    };
    stream.once('end', done);
    stream.once('close', done);
    stream.resume();
  });
}

/**
 * One DATA transaction: stream the message into the spool, then 250 only once it is durable.
 * Resolves with the queue id; rejects with an SMTP reply error (530, 552, 451).
 */
export async function receive(ctx: HandlerContext, stream: SMTPServerDataStream, session: SMTPServerSession): Promise<{ id: string }> {
  const { logger } = ctx;
  const client = clientAddress(session);
  if (!ctx.rules().access.mayRelay(session)) {
    // Only reachable when a reload withdrew the client's right mid-transaction.
    await drain(stream);
    throw reply('authRequired');
  }
  const message = ctx.sink.incoming();
  const capped = capAt(stream, ctx.rules().config.maxMessageSize);
  const envelope = envelopeOf(session);
  const who = clientOf(session);
  // Like every MTA, the relay records the hop in a Received: field at the top of what it stores.
  const cipher = session.secure ? (session as { tlsOptions?: { name?: string; version?: string } | false }).tlsOptions || undefined : undefined;
  const stamp = new ReceivedStamp((eol) =>
    receivedHeader(
      {
        address: who.address,
        helo: who.helo,
        user: who.user,
        tls: session.secure ? { protocol: cipher?.version, cipher: cipher?.name } : undefined,
        protocol: (session as { transmissionType?: string }).transmissionType || 'ESMTP',
        by: RELAY_HOST,
        id: message.id,
        recipients: envelope.to,
        date: new Date(),
      },
      eol,
    ),
  );
  capped.stream.on('error', (err) => stamp.destroy(err));
  let size = 0;
  let writeError: unknown = null;
  try {
    size = await message.write(capped.stream.pipe(stamp));
  } catch (err) {
    writeError = err;
  }
  // The spool consumes its input even on error; whatever is left of the client's DATA is read
  // here all the same: smtp-server sends the reply only after the final dot.
  capped.release();
  await drain(stream);
  if (stream.sizeExceeded) {
    await discard(message);
    logger.info({ event: 'rejected', msgId: message.id, client, reason: 'message too large', size: stream.byteLength, maxMessageSize: ctx.rules().config.maxMessageSize }, 'message over maxMessageSize refused');
    throw reply('tooLarge');
  }
  if (writeError) {
    await discard(message);
    if (!stream.readableEnded) {
      // The client went away in the middle of the message: nobody to answer, nothing lost.
      logger.info({ event: 'aborted', msgId: message.id, client, reason: 'client disconnected during DATA' }, 'message incomplete: client disconnected');
    } else {
      logger.error({ event: 'spool-error', msgId: message.id, client, err: (writeError as Error)?.message }, 'could not write the message to the spool: answered 451');
    }
    throw reply('spoolWrite');
  }
  // Chosen now and stored with the message, so a later reload of routes does not reroute it.
  const route = ctx.rules().router.resolve({ user: who.user, address: who.address, sender: envelope.from });
  try {
    await message.commit({ envelope, client: who, route });
  } catch (err) {
    await discard(message);
    logger.error({ event: 'spool-error', msgId: message.id, client, err: (err as Error)?.message }, 'could not queue the message: answered 451');
    throw reply('spoolWrite');
  }
  logger.info(
    {
      event: 'received',
      msgId: message.id,
      client,
      helo: who.helo,
      user: userOf(session),
      size: size - stamp.added,
      // The addresses and the Message-ID header, so that `grep bob@contoso.com` finds the message's whole life.
      from: envelope.from,
      recipients: envelope.to,
      messageId: stamp.messageId,
      secure: Boolean(session.secure),
      account: route.account,
      route: route.rule,
    },
    'message queued',
  );
  // In memory only: the mail log writes in the background, after this 250.
  const at = Date.now();
  const listener = listenerOf(session);
  const received = { clientAddress: client, clientName: who.helo ?? null, user: who.user ?? null, listener, tls: Boolean(session.secure), size: size - stamp.added, account: route.account };
  ctx.mailLog?.record({
    id: message.id,
    at,
    kind: 'received',
    detail: { ...received, route: route.rule },
    facts: { ...received, receivedAt: at, sender: envelope.from, recipients: envelope.to, messageId: stamp.messageId ?? null, subject: stamp.subject ?? null },
  });
  return { id: message.id };
}

/** The listener the client connected to, "address:port" ("[::1]:25" for IPv6). */
function listenerOf(session: SMTPServerSession): string {
  const address = normalizeAddress(session.localAddress ?? '');
  return address.includes(':') ? `[${address}]:${session.localPort}` : `${address}:${session.localPort}`;
}
