import { randomBytes, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * scrypt cost for new hashes: N=2^14, r=8, p=1 uses 16 MiB and takes roughly 50 ms, cheap for one
 * device login, dear for a guesser (and the listener throttles failed AUTH on top). The parameters
 * are stored in each hash, so they can be raised later without invalidating existing hashes.
 */
export const SCRYPT_DEFAULTS = Object.freeze({ N: 16_384, r: 8, p: 1 });
const SALT_BYTES = 16;
const KEY_BYTES = 32;

/** Bounds on hashes we accept, so a hash in the config cannot make one login cost gigabytes. */
const MAX_MEMORY = 256 * 1024 * 1024;
const MAX_P = 16;

/** A stored password hash that cannot be used; the message says what is wrong (never the hash itself). */
export class PasswordHashError extends Error {
  override readonly name = 'PasswordHashError';
  readonly code = 'EPASSWORDHASH';
}

export interface ParsedHash {
  readonly N: number;
  readonly r: number;
  readonly p: number;
  readonly salt: Buffer;
  readonly hash: Buffer;
}

const FORMAT = 'scrypt$N=<n>,r=<r>,p=<p>$<salt base64>$<hash base64> (made by `m365-relay hash-password`)';

function scrypt(password: string, salt: Buffer, keylen: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scryptCallback(password, salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** scrypt needs about 128 * N * r bytes; leave headroom over node's default 32 MiB cap. */
function maxmem(N: number, r: number): number {
  return 128 * N * r * 2 + 16 * 1024 * 1024;
}

function decodeBase64(text: string, what: string): Buffer {
  const bytes = Buffer.from(text, 'base64');
  // Buffer.from silently skips characters that are not base64: insist on a canonical encoding.
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text) || bytes.toString('base64').replace(/=+$/, '') !== text.replace(/=+$/, '')) {
    throw new PasswordHashError(`password hash has a ${what} that is not valid base64; expected ${FORMAT}`);
  }
  return bytes;
}

/**
 * Hashes a password for the config file: "scrypt$N=16384,r=8,p=1$<salt base64>$<hash base64>",
 * with a fresh random 16-byte salt. Self-describing, so the cost can rise later.
 */
export async function hashPassword(password: string): Promise<string> {
  if (typeof password !== 'string' || password.length === 0) throw new TypeError('the password must be a non-empty string');
  const { N, r, p } = SCRYPT_DEFAULTS;
  const salt = randomBytes(SALT_BYTES);
  const hash = await scrypt(password, salt, KEY_BYTES, { N, r, p, maxmem: maxmem(N, r) });
  return `scrypt$N=${N},r=${r},p=${p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/**
 * Parses a stored hash; throws PasswordHashError saying what is wrong. The config check calls this
 * at load time, so a malformed hash stops the relay at start instead of failing every login.
 */
export function parsePasswordHash(encoded: string): ParsedHash {
  if (typeof encoded !== 'string') throw new PasswordHashError(`password hash must be a string: ${FORMAT}`);
  const parts = encoded.trim().split('$');
  if (parts.length !== 4 || parts[0] !== 'scrypt') {
    throw new PasswordHashError(`not a password hash from \`m365-relay hash-password\`; expected ${FORMAT}`);
  }
  const params = /^N=(\d{1,8}),r=(\d{1,3}),p=(\d{1,3})$/.exec(parts[1] ?? '');
  if (!params) throw new PasswordHashError(`password hash has malformed scrypt parameters "${parts[1] ?? ''}"; expected N=<n>,r=<r>,p=<p>`);
  const N = Number(params[1]);
  const r = Number(params[2]);
  const p = Number(params[3]);
  if (N < 2 || (N & (N - 1)) !== 0) throw new PasswordHashError(`password hash has invalid scrypt N=${N} (a power of 2 above 1)`);
  if (r < 1 || p < 1 || p > MAX_P) throw new PasswordHashError(`password hash has invalid scrypt r=${r} or p=${p}`);
  if (128 * N * r > MAX_MEMORY) throw new PasswordHashError(`password hash asks scrypt for more than ${MAX_MEMORY / 1024 / 1024} MiB (N=${N}, r=${r})`);
  const salt = decodeBase64(parts[2] ?? '', 'salt');
  const hash = decodeBase64(parts[3] ?? '', 'hash');
  if (salt.length < 8) throw new PasswordHashError('password hash has a salt shorter than 8 bytes');
  if (hash.length < 16 || hash.length > 64) throw new PasswordHashError('password hash has a derived key that is not 16 to 64 bytes long');
  return { N, r, p, salt, hash };
}

/**
 * Checks a password against a stored hash (the encoded string or its parsed form), comparing in
 * constant time. A malformed encoded hash rejects with PasswordHashError.
 */
export async function verifyPassword(password: string, stored: string | ParsedHash): Promise<boolean> {
  const parsed = typeof stored === 'string' ? parsePasswordHash(stored) : stored;
  const candidate = await scrypt(password, parsed.salt, parsed.hash.length, { N: parsed.N, r: parsed.r, p: parsed.p, maxmem: maxmem(parsed.N, parsed.r) });
  return timingSafeEqual(candidate, parsed.hash);
}
