// Staging for messages too large to hold in memory while they are sent through Graph: files in a
// directory inside the spool (0700, files 0600), named after the queue id, removed after each
// attempt and all of them at start (prepareStagingDir) so a crash leaves nothing behind for long.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';

/** Creates the directory (0700) and removes everything in it. Synchronous: called once at start. */
export function prepareStagingDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  for (const name of readdirSync(dir)) rmSync(join(dir, name), { recursive: true, force: true });
}

/** A new file name in the staging directory for this message (the random part keeps concurrent attempts apart). */
export function stagedPath(dir: string, messageId: string, suffix: string): string {
  const safe = messageId.replace(/[^A-Za-z0-9._-]/g, '_');
  return join(dir, `${safe}-${randomBytes(6).toString('hex')}.${suffix}`);
}

export interface Spilled {
  size: number;
  /** The file holding the message; undefined while it is small enough to stay in memory. */
  path: string | undefined;
  read(position: number, length: number): Promise<Buffer>;
  /** The message in a staged file (written now if it was held in memory). */
  toFile(): Promise<string>;
  dispose(): Promise<void>;
}

/**
 * Keeps a message of at most `threshold` bytes in memory; a larger one is streamed to a staged file
 * (0600) as it arrives. Memory stays bounded whatever the size.
 */
export async function spill(raw: Readable, threshold: number, dir: string | undefined, messageId: string): Promise<Spilled> {
  const chunks: Buffer[] = [];
  let size = 0;
  // Leaving this loop early must not destroy the stream: the rest is read below.
  for await (const chunk of raw.iterator({ destroyOnReturn: false })) {
    chunks.push(chunk as Buffer);
    size += (chunk as Buffer).length;
    if (size > threshold) break;
  }
  const files: string[] = [];
  const newFile = () => {
    if (dir === undefined) throw new Error('no staging directory was configured for large messages (FactoryContext.stagingDir)');
    const path = stagedPath(dir, messageId, 'eml');
    files.push(path);
    return path;
  };
  const dispose = async () => {
    await Promise.all(files.map((f) => rm(f, { force: true })));
  };
  if (size <= threshold) {
    const data = Buffer.concat(chunks);
    let path: string | undefined;
    return {
      size,
      get path() {
        return path;
      },
      read: async (p, l) => data.subarray(p, p + l),
      async toFile() {
        if (path) return path;
        const target = newFile();
        const handle = await open(target, 'wx', 0o600);
        try {
          await handle.write(data);
        } finally {
          await handle.close();
        }
        path = target;
        return path;
      },
      dispose,
    };
  }
  let path: string;
  try {
    path = newFile();
  } catch (err) {
    raw.destroy();
    throw err;
  }
  const handle = await open(path, 'wx', 0o600);
  try {
    for (const chunk of chunks) await handle.write(chunk);
    chunks.length = 0;
    for await (const chunk of raw) {
      await handle.write(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
  } catch (err) {
    await handle.close();
    await dispose();
    throw err;
  }
  await handle.close();
  return {
    size,
    path,
    read: (position, length) => readRange(path, position, length),
    toFile: async () => path,
    dispose,
  };
}

export async function readRange(path: string, position: number, length: number): Promise<Buffer> {
  const h = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await h.read(buffer, 0, length, position);
    return buffer.subarray(0, bytesRead);
  } finally {
    await h.close();
  }
}
