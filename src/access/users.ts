import { createHash, timingSafeEqual } from 'node:crypto';
import type { UserConfig } from '../config/index.js';
import { parsePasswordHash, verifyPassword, type ParsedHash } from './passwords.js';

type Credential = { kind: 'hash'; hash: ParsedHash } | { kind: 'plain'; digest: Buffer };

/** A fixed hash for unknown usernames, so a wrong name costs as much time as a wrong password. */
const DUMMY: ParsedHash = parsePasswordHash('scrypt$N=16384,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=');

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/**
 * The local SMTP AUTH accounts. Usernames are matched exactly (case-sensitive), as devices store
 * them verbatim and a looser match would only widen what a guesser can hit.
 */
export class UserDirectory {
  private readonly users = new Map<string, Credential>();

  constructor(users: readonly UserConfig[]) {
    for (const u of users) {
      this.users.set(u.username, u.passwordHash ? { kind: 'hash', hash: parsePasswordHash(u.passwordHash) } : { kind: 'plain', digest: sha256(u.password ?? '') });
    }
  }

  get size(): number {
    return this.users.size;
  }

  async authenticate(username: string, password: string): Promise<boolean> {
    const credential = this.users.get(username);
    if (!credential) {
      await verifyPassword(password, DUMMY);
      return false;
    }
    if (credential.kind === 'plain') return timingSafeEqual(sha256(password), credential.digest);
    return verifyPassword(password, credential.hash);
  }
}
