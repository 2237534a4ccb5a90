import { randomBytes, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/** scrypt cost: 2^14 x 8 x 1 costs about 16 MiB and tens of ms: cheap for a login, dear for guessing. */
const DEFAULTS = { N: 16_384, r: 8, p: 1 };
const KEY_LENGTH = 32;

export class PasswordHashError extends Error {
  override readonly name = 'PasswordHashError';
}

export interface ParsedHash {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

function scrypt(password: string, salt: Buffer, keylen: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scryptCallback(password, salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** "scrypt$N=16384,r=8,p=1$<salt base64>$<hash base64>": self-describing, so costs can rise later. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scrypt(password, salt, KEY_LENGTH, { ...DEFAULTS, maxmem: 64 * 1024 * 1024 });
  return `scrypt$N=${DEFAULTS.N},r=${DEFAULTS.r},p=${DEFAULTS.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** Parses a stored hash; throws PasswordHashError saying what is wrong (for config validation). */
export function parsePasswordHash(encoded: string): ParsedHash {
  const parts = encoded.split('$');
  const params = /^N=(\d+),r=(\d+),p=(\d+)$/.exec(parts[1] ?? '');
  if (parts.length !== 4 || parts[0] !== 'scrypt' || !params) {
    throw new PasswordHashError('is not a password hash from `m365-relay hash-password` (expected scrypt$N=...,r=...,p=...$salt$hash)');
  }
  const [N, r, p] = [Number(params[1]), Number(params[2]), Number(params[3])];
  if (N < 2 || (N & (N - 1)) !== 0 || r < 1 || p < 1 || N > 2 ** 20) throw new PasswordHashError('has invalid scrypt parameters');
  const salt = Buffer.from(parts[2] ?? '', 'base64');
  const hash = Buffer.from(parts[3] ?? '', 'base64');
  if (salt.length < 8 || hash.length < 16) throw new PasswordHashError('has a salt or hash that is too short');
  return { N, r, p, salt, hash };
}

/** Constant-time check of a password against a parsed hash. */
export async function verifyPassword(password: string, stored: ParsedHash): Promise<boolean> {
  const candidate = await scrypt(password, stored.salt, stored.hash.length, { N: stored.N, r: stored.r, p: stored.p, maxmem: 256 * stored.N * stored.r + 16 * 1024 * 1024 });
  return timingSafeEqual(candidate, stored.hash);
}
