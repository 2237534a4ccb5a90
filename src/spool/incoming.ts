import { rm } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { crashPoint } from './crashPoints.js';
import { SpoolWriteError } from './errors.js';
import { closeFd, fsyncFd, openFd, writeAll } from './fd.js';
import type { CommitInput, MessageMeta } from './types.js';

export interface IncomingMessage {
  readonly id: string;
  /**
   * Streams the message to its data file (never buffering it whole) and fsyncs it. Always consumes
   * `data` to its end, also after a write error, so the SMTP session can answer properly.
   * Resolves with the byte count; rejects with SpoolWriteError.
   */
  write(data: NodeJS.ReadableStream): Promise<number>;
  /**
   * Makes the message durable and queued: one queue entry, or one per part when `input.parts` has
   * several (all or none of them). Resolves with the entries queued. Rejects with SpoolWriteError.
   */
  commit(input: CommitInput): Promise<MessageMeta[]>;
  /** Discards whatever was written; never throws. */
  abort(): Promise<void>;
}

export interface MessageSink {
  incoming(): IncomingMessage;
}

/**
 * A Writable over a file handle that remembers the first write error and swallows the rest of the
 * input instead of failing the pipeline: the client's DATA must still be read to its end so that it
 * gets a 451 instead of a dropped connection.
 */
class DrainingFileWriter extends Writable {
  bytes = 0;
  error: NodeJS.ErrnoException | null = null;

  constructor(private readonly fd: number) {
    super({ highWaterMark: 256 * 1024 });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.bytes += chunk.length;
    if (this.error) return done();
    writeAll(this.fd, chunk).then(
      () => done(),
      (err: NodeJS.ErrnoException) => {
        this.error = err;
        done();
      },
    );
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, done: (err?: Error | null) => void): void {
    const buffer = Buffer.concat(chunks.map((c) => c.chunk));
    this._write(buffer, 'binary', done);
  }
}

/** Opens the data file exclusively and streams into it; `onCommit` finishes the spool's part. */
export class SpoolIncoming implements IncomingMessage {
  private size = -1;

  constructor(
    readonly id: string,
    private readonly dataPath: string,
    private readonly onCommit: (id: string, size: number, input: CommitInput) => Promise<MessageMeta[]>,
  ) {}

  async write(data: NodeJS.ReadableStream): Promise<number> {
    let fd: number;
    try {
      fd = await openFd(this.dataPath, 'wx', 0o600);
    } catch (err) {
      await drain(data);
      throw new SpoolWriteError(`cannot create ${this.dataPath}: ${(err as Error).message}`, { cause: err });
    }
    const writer = new DrainingFileWriter(fd);
    try {
      await pipeline(data, writer);
      if (writer.error) throw writer.error;
      await fsyncFd(fd);
      crashPoint('after-data-fsync');
    } catch (err) {
      throw new SpoolWriteError(`cannot write message ${this.id}: ${(err as Error).message}`, { cause: err });
    } finally {
      await closeFd(fd).catch(() => undefined);
    }
    this.size = writer.bytes;
    return writer.bytes;
  }

  async commit(input: CommitInput): Promise<MessageMeta[]> {
    if (this.size < 0) throw new SpoolWriteError(`message ${this.id} was committed before its data was written`);
    return this.onCommit(this.id, this.size, input);
  }

  async abort(): Promise<void> {
    await rm(this.dataPath, { force: true }).catch(() => undefined);
  }
}

function drain(data: NodeJS.ReadableStream): Promise<void> {
  return new Promise((resolve) => {
    data.on('end', resolve);
    data.on('error', () => resolve());
    data.resume();
  });
}
