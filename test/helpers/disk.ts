import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './tmp.js';

/**
 * A small tmpfs of its own: the mount point and an unmount function (idempotent, also run at exit),
 * or the reason it cannot be mounted here.
 */
export function smallDisk(size: string): { mountPoint: string; unmount: () => void } | { refused: string } {
  const tmp = tempDir();
  const mountPoint = join(tmp.dir, 'disk');
  mkdirSync(mountPoint);
  const result = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', mountPoint], { encoding: 'utf8' });
  if (result.status !== 0) {
    tmp.remove();
    return { refused: (result.stderr || result.error?.message || 'mount failed').trim() };
  }
  let unmounted = false;
  const unmount = () => {
    if (unmounted) return;
    unmounted = true;
    spawnSync('umount', ['-l', mountPoint]);
    tmp.remove();
  };
  process.once('exit', unmount);
  return { mountPoint, unmount };
}

/** Makes a mounted tmpfs read-only or writable again (a real EROFS for whatever lives there). */
export function remount(mountPoint: string, mode: 'ro' | 'rw'): void {
  const result = spawnSync('mount', ['-o', `remount,${mode}`, mountPoint], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`mount -o remount,${mode} ${mountPoint} failed: ${result.stderr}`);
}

/** Fills the file system at `path`'s directory to the last byte with the file `path` (remove it to free the space). */
export function fillDisk(path: string): void {
  const fd = openSync(path, 'w');
  try {
    for (const size of [64 * 1024, 4096, 512, 1]) {
      try {
        for (;;) writeSync(fd, Buffer.alloc(size));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      }
    }
  } finally {
    closeSync(fd);
  }
}
