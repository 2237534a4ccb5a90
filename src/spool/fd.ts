import { close, fsync, open, write } from 'node:fs';
import { promisify } from 'node:util';

/**
 * The spool's hot path on plain file descriptors. The fs/promises FileHandle API costs noticeably
 * more CPU per call (a FileHandle object per open, close tracking): it was the largest share of
 * the relay's profile under load (bench/README.md).
 */
export const openFd = promisify(open);
export const fsyncFd = promisify(fsync);
export const closeFd = promisify(close);
function writeFd(fd: number, buffer: Buffer, offset: number): Promise<number> {
  return new Promise((resolve, reject) => {
    write(fd, buffer, offset, buffer.length - offset, null, (err, written) => (err ? reject(err) : resolve(written)));
  });
}

/** Writes the whole buffer (write(2) may write less than asked). */
export async function writeAll(fd: number, buffer: Buffer): Promise<void> {
  let offset = 0;
  while (offset < buffer.length) offset += await writeFd(fd, buffer, offset);
}

/** Creates `path` exclusively (mode 0600), writes `data`, fsyncs and closes it. */
export async function writeFileDurably(path: string, data: Buffer): Promise<void> {
  const fd = await openFd(path, 'wx', 0o600);
  try {
    await writeAll(fd, data);
    await fsyncFd(fd);
  } finally {
    await closeFd(fd);
  }
}

/** fsyncs a file or directory by path. */
export async function fsyncPath(path: string): Promise<void> {
  const fd = await openFd(path, 'r');
  try {
    await fsyncFd(fd);
  } finally {
    await closeFd(fd);
  }
}
