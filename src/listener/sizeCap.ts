import { PassThrough, type Readable } from 'node:stream';

export interface CappedStream {
  /** What the spool reads: the message's bytes while they are within the limit. */
  readonly stream: PassThrough;
  /** Stop feeding `stream` and read the rest of the client's DATA into the void (idempotent). */
  release(): void;
}

/**
 * smtp-server keeps passing DATA on after the SIZE limit (it only sets stream.sizeExceeded), so a
 * client could make the spool write gigabytes before the 552. This stage forwards the bytes up to
 * `limit` and then only reads and drops the rest, so that the reply can still be sent after the
 * final dot (as Postfix does) while the disk sees at most about `limit` bytes. Backpressure from the
 * spool is kept, and a client that goes away mid-message ends `stream` with an error.
 */
export function capAt(source: Readable, limit: number): CappedStream {
  const stream = new PassThrough();
  let bytes = 0;
  let released = false;

  const release = () => {
    if (released) return;
    released = true;
    source.resume();
  };

  source.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    if (released || bytes > limit) return; // over the limit or nobody reading: drop
    if (!stream.write(chunk)) source.pause();
  });
  stream.on('drain', () => {
    if (!released) source.resume();
  });
  // The reader destroyed its side (a write error): keep reading the client's DATA regardless.
  stream.on('close', release);
  source.once('end', () => stream.end());
  source.once('close', () => {
    if (!source.readableEnded && !stream.destroyed) stream.destroy(new Error('the client closed the connection during DATA'));
  });
  source.on('error', (err: Error) => {
    if (!stream.destroyed) stream.destroy(err);
  });
  return { stream, release };
}
