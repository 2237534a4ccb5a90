import { createHash, timingSafeEqual } from 'node:crypto';
import type { UserConfig } from '../config/index.js';
import { parsePasswordHash, SCRYPT_DEFAULTS, verifyPassword, type ParsedHash } from './passwords.js';

type Credential = { kind: 'hash'; hash: ParsedHash } | { kind: 'plain'; digest: Buffer };

/** A user listed twice: which entry wins would be a guess, so the configuration is refused. */
export class DuplicateUserError extends Error {
  override readonly name = 'DuplicateUserError';
  readonly code = 'EDUPUSER';
}

/**
 * A fixed hash with the default cost. Unknown usernames and plain-password users are checked
 * against it too, so every AUTH costs one scrypt run and the reply time does not tell a guesser
 * which usernames exist or how their password is stored.
 */
const DUMMY: ParsedHash = parsePasswordHash(
  `scrypt$N=${SCRYPT_DEFAULTS.N},r=${SCRYPT_DEFAULTS.r},p=${SCRYPT_DEFAULTS.p}$bTM2NS1yZWxheS1kdW1teQ==$${Buffer.alloc(32).toString('base64')}`,
);

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/**
 * The local SMTP AUTH accounts from the config (`users`).
 *
 * Usernames are matched exactly, case-sensitively. These are SASL login names, not mailbox local
 * parts: like Dovecot and Cyrus SASL by default, we compare them verbatim. Devices store the name
 * verbatim, and a looser match would only widen what a guesser can hit. Passwords are compared
 * byte for byte (UTF-8), no normalisation.
 */
export class UserDirectory {
  private readonly users = new Map<string, Credential>();

  /** Throws PasswordHashError for a malformed hash and DuplicateUserError for a name listed twice. */
  constructor(users: readonly UserConfig[]) {
    for (const u of users) {
      if (this.users.has(u.username)) throw new DuplicateUserError(`user "${u.username}" is listed more than once in users`);
      const credential: Credential = u.passwordHash
        ? { kind: 'hash', hash: parsePasswordHash(u.passwordHash) }
        : { kind: 'plain', digest: sha256(u.password ?? '') };
      this.users.set(u.username, credential);
    }
  }

  get size(): number {
    return this.users.size;
  }

  /** Whether a local user of this name exists (for re-checking an authenticated session after a reload). */
  has(username: string): boolean {
    return this.users.has(username);
  }

  /**
   * True when the username exists and the password is its password. Every call does the same
   * work: one scrypt (against the user's hash, or the dummy hash for unknown and plain-password
   * users) and one constant-time comparison. Never rejects for a wrong or odd input.
   */
  async authenticate(username: string, password: string): Promise<boolean> {
    const credential = typeof username === 'string' ? this.users.get(username) : undefined;
    const candidate = typeof password === 'string' ? password : '';
    if (credential?.kind === 'hash') return verifyPassword(candidate, credential.hash);
    // Unknown user or plain password: pay for the scrypt all the same; its result does not count.
    await verifyPassword(candidate, DUMMY);
    if (!credential) return false;
    // Digests have a fixed length, so timingSafeEqual never throws and the length leaks nothing.
    return timingSafeEqual(sha256(candidate), credential.digest);
  }
}
