// msal-node's token cache (the signed-in user's refresh token) in a file of its own: written
// atomically (temp file, fsync, rename, directory fsync) with mode 0600 in a 0700 directory, and
// optionally encrypted with AES-256-GCM under a key from the environment.
import { createCipheriv, createDecipheriv, createHash, randomBytes, scrypt, type ScryptOptions } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { ICachePlugin, TokenCacheContext } from '@azure/msal-node';

const FORMAT = 'm365-relay/token-cache';
const VERSION = 1;
const CIPHER = 'aes-256-gcm';
/** scrypt cost for passphrases: 32 MiB and about 0.1 s once per process (the key is memoised). */
const SCRYPT = { N: 2 ** 15, r: 8, p: 1 } as const;
const MIN_PASSPHRASE_LENGTH = 16;

export type TokenCacheProblem = 'key-required' | 'wrong-key' | 'weak-key' | 'corrupt' | 'unreadable' | 'unwritable';

/** The token cache file cannot be used; `advice` tells the administrator what to do. */
export class TokenCacheError extends Error {
  override readonly name = 'TokenCacheError';
  readonly code = 'ETOKENCACHE';
  constructor(
    message: string,
    readonly problem: TokenCacheProblem,
    readonly advice: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export type CacheKey = { kind: 'raw'; key: Buffer } | { kind: 'passphrase'; passphrase: string };

/**
 * The encryption key as given in the environment: 32 bytes as 64 hex digits or as base64, or else
 * a passphrase (at least 16 characters) from which scrypt derives the key with a per-file salt.
 */
export function parseCacheKey(text: string): CacheKey {
  const value = text.trim();
  if (/^[0-9a-f]{64}$/i.test(value)) return { kind: 'raw', key: Buffer.from(value, 'hex') };
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(value)) {
    const key = Buffer.from(value.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (key.length === 32) return { kind: 'raw', key };
  }
  if (value.length < MIN_PASSPHRASE_LENGTH) {
    throw new TokenCacheError(
      `the token cache key is too short to be a passphrase (${value.length} characters)`,
      'weak-key',
      `use 32 random bytes (for example \`openssl rand -base64 32\`) or a passphrase of at least ${MIN_PASSPHRASE_LENGTH} characters`,
    );
  }
  return { kind: 'passphrase', passphrase: value };
}

/** What the cache file says about one signed-in account. */
export interface SigninRecord {
  username: string;
  homeAccountId: string;
  /** When the account's current refresh token was issued (it rolls on each use); null if unknown. */
  refreshTokenIssuedAt: Date | null;
  /** Only when Entra ID told (refresh_token_expires_in); usually null. */
  refreshTokenExpiresOn: Date | null;
}

/** The file's content: msal's own serialized cache, and when each account's refresh token changed. */
interface Payload {
  msal: string;
  /** By home account id: a digest of the refresh token (to notice rotation) and when it appeared. */
  refreshTokens: Record<string, { sha256: string; issuedAt: number }>;
}

interface Envelope {
  format: typeof FORMAT;
  version: number;
  encryption: null | { cipher: typeof CIPHER; kdf: 'none' | 'scrypt'; salt?: string; N?: number; r?: number; p?: number; iv: string; tag: string };
  payload: Payload | string;
}

interface MsalCacheShape {
  Account?: Record<string, { home_account_id?: string; username?: string }>;
  RefreshToken?: Record<string, { home_account_id?: string; secret?: string; expires_on?: string }>;
}

export class TokenCacheFile {
  private readonly key: CacheKey | null;
  /** scrypt results by salt: derived once per process, not on every cache access. */
  private readonly derived = new Map<string, Buffer>();
  /** Salt for new writes: the file's own, or a fresh one. */
  private salt: Buffer = randomBytes(16);
  private payload: Payload | null = null;
  /** The file predates the key (written unencrypted): rewrite it encrypted at the next access. */
  private rewrite = false;

  /** The plugin msal-node calls around every cache access (PublicClientApplication `cache.cachePlugin`). */
  readonly plugin: ICachePlugin = {
    beforeCacheAccess: async (context: TokenCacheContext) => {
      // The file is the truth: no file means no sign-in, whatever msal still holds in memory.
      context.tokenCache.deserialize((await this.read()) ?? '{}');
    },
    afterCacheAccess: async (context: TokenCacheContext) => {
      if (context.cacheHasChanged || this.rewrite) await this.write(context.tokenCache.serialize());
    },
  };

  private readonly login: string;

  constructor(
    readonly path: string,
    /** The key or passphrase (from the environment); absent = stored unencrypted (still 0600). */
    key?: string,
    /** The sign-in command named in advice, e.g. 'm365-relay login --config FILE --account NAME'. */
    options: { loginCommand?: string } = {},
  ) {
    this.key = key ? parseCacheKey(key) : null;
    this.login = options.loginCommand ?? 'm365-relay login';
  }

  get encrypted(): boolean {
    return this.key !== null;
  }

  /** msal's serialized cache, or null when there is no file yet. */
  async read(): Promise<string | null> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        this.payload = null;
        return null;
      }
      throw new TokenCacheError(`cannot read the token cache ${this.path}: ${(err as Error).message}`, 'unreadable', 'the relay must run as the user that owns the token cache file (mode 0600)', { cause: err });
    }
    const envelope = this.parseEnvelope(text);
    let payload: Payload;
    if (envelope.encryption === null) {
      payload = this.checkPayload(envelope.payload);
      this.rewrite = this.key !== null;
    } else {
      payload = this.checkPayload(await this.decrypt(envelope));
      this.rewrite = false;
    }
    this.payload = payload;
    return payload.msal;
  }

  /** Stores msal's serialized cache, noting which refresh tokens are new. */
  async write(msal: string): Promise<void> {
    const previous = this.payload?.refreshTokens ?? {};
    const refreshTokens: Payload['refreshTokens'] = {};
    for (const rt of Object.values(parseMsal(msal).RefreshToken ?? {})) {
      if (!rt.home_account_id || !rt.secret) continue;
      const sha256 = createHash('sha256').update(rt.secret).digest('hex');
      const known = previous[rt.home_account_id];
      refreshTokens[rt.home_account_id] = { sha256, issuedAt: known?.sha256 === sha256 ? known.issuedAt : Date.now() };
    }
    const payload: Payload = { msal, refreshTokens };
    const envelope = this.key ? await this.encrypt(payload) : { format: FORMAT, version: VERSION, encryption: null, payload };
    await writeAtomically(this.path, `${JSON.stringify(envelope)}\n`);
    this.payload = payload;
    this.rewrite = false;
  }

  /** The account signed in as `username` (case-insensitive), from the last read or write. */
  signin(username: string): SigninRecord | null {
    if (!this.payload) return null;
    const state = parseMsal(this.payload.msal);
    const wanted = username.trim().toLowerCase();
    const account = Object.values(state.Account ?? {}).find((a) => a.username?.toLowerCase() === wanted && a.home_account_id);
    if (!account?.home_account_id || !account.username) return null;
    const home = account.home_account_id;
    const rt = Object.values(state.RefreshToken ?? {}).find((r) => r.home_account_id === home);
    const issuedAt = this.payload.refreshTokens[home]?.issuedAt;
    const expiresOn = rt?.expires_on ? Number(rt.expires_on) * 1000 : NaN;
    return {
      username: account.username,
      homeAccountId: home,
      refreshTokenIssuedAt: rt && issuedAt !== undefined ? new Date(issuedAt) : null,
      refreshTokenExpiresOn: Number.isFinite(expiresOn) ? new Date(expiresOn) : null,
    };
  }

  private corrupt(detail: string, cause?: unknown): TokenCacheError {
    return new TokenCacheError(
      `the token cache ${this.path} is damaged (${detail})`,
      'corrupt',
      `remove ${this.path} and sign in again: run \`${this.login}\``,
      { cause },
    );
  }

  private parseEnvelope(text: string): Envelope {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw this.corrupt('not JSON', err);
    }
    const envelope = value as Partial<Envelope> | null;
    if (!envelope || envelope.format !== FORMAT) throw this.corrupt('not an m365-relay token cache');
    if (envelope.version !== VERSION) throw this.corrupt(`format version ${String(envelope.version)}, this relay reads ${VERSION}`);
    return envelope as Envelope;
  }

  private checkPayload(value: unknown): Payload {
    const payload = value as Partial<Payload> | null;
    if (!payload || typeof payload.msal !== 'string' || typeof payload.refreshTokens !== 'object' || payload.refreshTokens === null) throw this.corrupt('unexpected content');
    try {
      JSON.parse(payload.msal);
    } catch (err) {
      throw this.corrupt('the msal cache inside is not JSON', err);
    }
    return payload as Payload;
  }

  private async keyFor(kdf: 'none' | 'scrypt', salt: Buffer | null): Promise<Buffer> {
    const key = this.key;
    if (!key) throw new Error('no key');
    if (kdf === 'none') {
      if (key.kind !== 'raw') throw this.wrongKey('it was encrypted with a 32-byte key, and a passphrase is configured');
      return key.key;
    }
    if (key.kind !== 'passphrase') throw this.wrongKey('it was encrypted with a passphrase, and a 32-byte key is configured');
    if (!salt || salt.length < 16) throw this.corrupt('missing salt');
    const id = salt.toString('hex');
    let derived = this.derived.get(id);
    if (!derived) {
      derived = await scryptAsync(key.passphrase, salt, 32, { ...SCRYPT, maxmem: 64 * 1024 * 1024 });
      this.derived.set(id, derived);
    }
    return derived;
  }

  private wrongKey(detail: string, cause?: unknown): TokenCacheError {
    return new TokenCacheError(
      `the token cache ${this.path} cannot be decrypted with the configured key: ${detail}`,
      'wrong-key',
      `configure the key that was set when the cache was written at sign-in, or sign in again to replace the cache with one under this key: run \`${this.login}\``,
      { cause },
    );
  }

  private async encrypt(payload: Payload): Promise<Envelope> {
    const kdf = this.key?.kind === 'passphrase' ? 'scrypt' : 'none';
    const header: NonNullable<Envelope['encryption']> = kdf === 'scrypt' ? { cipher: CIPHER, kdf, salt: this.salt.toString('base64'), ...SCRYPT, iv: '', tag: '' } : { cipher: CIPHER, kdf, iv: '', tag: '' };
    const key = await this.keyFor(kdf, kdf === 'scrypt' ? this.salt : null);
    const iv = randomBytes(12);
    const cipher = createCipheriv(CIPHER, key, iv);
    cipher.setAAD(associatedData(header));
    const data = Buffer.concat([cipher.update(JSON.stringify(payload), 'utf8'), cipher.final()]);
    return { format: FORMAT, version: VERSION, encryption: { ...header, iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64') }, payload: data.toString('base64') };
  }

  private async decrypt(envelope: Envelope): Promise<unknown> {
    const header = envelope.encryption;
    if (!header) throw new Error('not encrypted');
    if (!this.key) {
      throw new TokenCacheError(
        `the token cache ${this.path} is encrypted and no key is configured`,
        'key-required',
        `provide the key (or passphrase) that was set at sign-in, in the environment variable the configuration names, or sign in again without a key: run \`${this.login}\``,
      );
    }
    if (header.cipher !== CIPHER || (header.kdf !== 'none' && header.kdf !== 'scrypt') || typeof envelope.payload !== 'string') throw this.corrupt('unknown encryption');
    if (header.kdf === 'scrypt' && (header.N !== SCRYPT.N || header.r !== SCRYPT.r || header.p !== SCRYPT.p)) throw this.corrupt('unknown scrypt parameters');
    const salt = header.salt ? Buffer.from(header.salt, 'base64') : null;
    const key = await this.keyFor(header.kdf, salt);
    const decipher = createDecipheriv(CIPHER, key, Buffer.from(header.iv, 'base64'));
    decipher.setAAD(associatedData(header));
    decipher.setAuthTag(Buffer.from(header.tag, 'base64'));
    let plain: string;
    try {
      plain = Buffer.concat([decipher.update(Buffer.from(envelope.payload, 'base64')), decipher.final()]).toString('utf8');
    } catch (err) {
      // GCM cannot tell a wrong key from altered bytes; a wrong key is by far the likelier.
      throw this.wrongKey('the key does not match (or the file was altered)', err);
    }
    if (salt) this.salt = salt;
    try {
      return JSON.parse(plain);
    } catch (err) {
      throw this.corrupt('the decrypted content is not JSON', err);
    }
  }
}

/** The header fields that the tag authenticates too (so that none can be swapped). */
function associatedData(header: NonNullable<Envelope['encryption']>): Buffer {
  return Buffer.from(JSON.stringify([FORMAT, VERSION, header.cipher, header.kdf, header.salt ?? null, header.N ?? null, header.r ?? null, header.p ?? null]));
}

function parseMsal(msal: string): MsalCacheShape {
  try {
    return JSON.parse(msal) as MsalCacheShape;
  } catch {
    return {};
  }
}

function scryptAsync(passphrase: string, salt: Buffer, length: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(passphrase, salt, length, options, (err, key) => (err ? reject(err) : resolve(key))));
}

/** temp file (0600, exclusive) -> write -> fsync -> rename over -> fsync the directory (0700 when created). */
async function writeAtomically(path: string, text: string): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const handle = await open(tmp, 'wx', 0o600);
    try {
      await handle.chmod(0o600); // whatever the umask
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw new TokenCacheError(`cannot write the token cache ${path}: ${(err as Error).message}`, 'unwritable', `the relay must be able to create and replace files in ${dir}`, { cause: err });
  }
  // The rename is durable only once the directory is synced; failing that is not fatal.
  const dirHandle = await open(dir, 'r').catch(() => null);
  await dirHandle?.sync().catch(() => undefined);
  await dirHandle?.close();
}
