import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';

/**
 * The spool's files must keep one owner: a `queue` command run as root beside a daemon running as
 * its service user would leave root-owned 0600 metadata that the daemon cannot read. So every
 * process that writes into a spool runs as the user that owns the spool directory.
 */
export class SpoolOwnerError extends Error {
  override readonly name = 'SpoolOwnerError';
  readonly code = 'ESPOOLOWNER';
  constructor(
    readonly dir: string,
    readonly ownerName: string,
    ownerUid: number,
  ) {
    const sudoUser = ownerName.startsWith('uid ') ? `'#${ownerUid}'` : ownerName.slice('user '.length);
    super(`spool ${dir} belongs to ${ownerName}: run this command as that user (for example: sudo -u ${sudoUser} m365-relay ...)`);
  }
}

/** Throws SpoolOwnerError unless this process runs as the owner of `dir`. A missing directory is fine (it will be ours). */
export async function checkSpoolOwner(dir: string): Promise<void> {
  const uid = process.geteuid?.();
  if (uid === undefined) return; // not POSIX: no owners to mix up
  let ownerUid: number;
  try {
    ownerUid = (await stat(dir)).uid;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (ownerUid !== uid) throw new SpoolOwnerError(dir, userName(ownerUid), ownerUid);
}

/** "user NAME" for a uid from /etc/passwd, or "uid N" when it has none there. */
export function userName(uid: number): string {
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const [name, , id] = line.split(':');
      if (name && Number(id) === uid) return `user ${name}`;
    }
  } catch {
    // no passwd file (minimal container): fall through
  }
  return `uid ${uid}`;
}
