// Delegated sign-in end to end through the simulator with real msal-node: `login` (device code),
// the token cache file, DelegatedTokenProvider (restart, background refresh, lost sign-in) and an
// XOAUTH2 session with the delegated token.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { loginCommand, type DelegatedLoginTarget } from '../src/cli/login.js';
import { DelegatedTokenProvider, LoginError, TokenCacheError, TokenCacheFile, TokenError, parseCacheKey, runDeviceCodeLogin } from '../src/oauth/index.js';
import { CredentialWatch } from '../src/oauth/credentialExpiry.js';
import type { Simulator } from '../src/simulator/index.js';
import { simulatorSuite, startTestSimulator } from './helpers/harness.js';
import { captureLogger } from './helpers/logs.js';
import { tempDir } from './helpers/tmp.js';
import { waitFor } from './helpers/wait.js';

const PUBLIC_APP = 'bbbbbbbb-0000-0000-0000-000000000001';
const CONFIDENTIAL_APP = 'bbbbbbbb-0000-0000-0000-000000000002';
const USER = 'relay@contoso.com';
const OTHER_USER = 'alice@contoso.com';
const SCOPE = 'https://outlook.office.com/SMTP.Send';
const CONFIG_FILE = '/etc/m365-relay/relay.yaml';
const LOGIN_ADVICE = `run \`m365-relay login --config ${CONFIG_FILE} --account scanner\``;

const suiteOptions = {
  rateLimit: null,
  deviceCodeIntervalSeconds: 0.1,
  apps: [{ clientId: PUBLIC_APP }, { clientId: CONFIDENTIAL_APP, clientSecret: 'secret' }],
  mailboxes: [
    { address: USER, apps: [], sendAs: ['@contoso.com'] },
    { address: OTHER_USER, apps: [] },
  ],
};

function target(sim: Simulator, dir: string, overrides: Partial<DelegatedLoginTarget> = {}): DelegatedLoginTarget {
  return {
    name: 'scanner',
    configFile: CONFIG_FILE,
    tenantId: sim.tenantId,
    clientId: PUBLIC_APP,
    authorityHost: sim.authorityHost,
    mailbox: USER,
    scopes: [SCOPE],
    cacheFile: join(dir, 'tokens', 'scanner.json'),
    timeout: 10_000,
    requestTimeout: 5_000,
    ...overrides,
  };
}

function provider(account: DelegatedLoginTarget, options: Partial<ConstructorParameters<typeof DelegatedTokenProvider>[0]> = {}) {
  const logs = captureLogger();
  const tokens = new DelegatedTokenProvider({ ...account, accountName: account.name, tokenTimeout: 5_000, ...options }, logs.logger);
  return { tokens, logs };
}

/** Runs `m365-relay login` and plays the user: reads the code from its output and signs in as `user`. */
async function login(sim: Simulator, account: DelegatedLoginTarget, act: { user?: string; decline?: boolean } = {}): Promise<{ status: number; text: string }> {
  let text = '';
  const out = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString('utf8');
      done();
    },
  });
  const running = loginCommand({ account, out });
  const code = await Promise.race([
    waitFor('the device code in the output', () => /enter the code ([A-Z0-9]+)/.exec(text)?.[1], 10_000),
    running.then(() => null),
  ]);
  if (code) {
    if (act.decline) sim.denyDeviceCode(code);
    else sim.approveDeviceCode(code, act.user ?? USER);
  }
  return { status: await running, text };
}

async function sendWith(sim: Simulator, accessToken: string) {
  const transport = nodemailer.createTransport({
    host: sim.smtpHost,
    port: sim.smtpPort,
    secure: false,
    requireTLS: true,
    auth: { type: 'OAuth2', user: USER, accessToken },
    connectionTimeout: 5_000,
    greetingTimeout: 5_000,
    socketTimeout: 5_000,
  });
  try {
    return await transport.sendMail({ envelope: { from: USER, to: ['bob@contoso.com'] }, raw: `From: ${USER}\r\nTo: bob@contoso.com\r\nSubject: delegated\r\n\r\nhello\r\n` });
  } finally {
    transport.close();
  }
}

const refreshTokenIn = (file: string, key?: string) =>
  new TokenCacheFile(file, key).read().then((msal) => Object.values((JSON.parse(msal ?? '{}') as { RefreshToken?: Record<string, { secret: string }> }).RefreshToken ?? {})[0]?.secret);

async function tokenError(promise: Promise<unknown>): Promise<TokenError> {
  const err = await promise.then(
    () => assert.fail('a token was issued'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof TokenError, `a TokenError, got ${String(err)}`);
  return err;
}

describe('delegated sign-in (device code) and token provider', () => {
  const suite = simulatorSuite(suiteOptions);

  test('login writes a 0600 cache in a 0700 directory; after a restart the provider sends mail with it, no new sign-in', async () => {
    const { sim } = suite;
    const account = target(sim, suite.dir());
    const codesBefore = sim.stats.deviceCodesIssued;
    const { status, text } = await login(sim, account);
    assert.equal(status, 0, text);
    assert.match(text, /To sign in, use a web browser to open the page https:\/\/\S+\/devicelogin and enter the code [A-Z0-9]{9} to authenticate\./);
    assert.match(text, /Signed in as relay@contoso\.com\./);
    assert.match(text, /mode 0600, not encrypted/);
    assert.equal(statSync(account.cacheFile).mode & 0o777, 0o600);
    assert.equal(statSync(join(account.cacheFile, '..')).mode & 0o777, 0o700);
    assert.deepEqual(readdirSync(join(account.cacheFile, '..')), ['scanner.json'], 'no temp files left');

    // A new provider instance, as after a restart: the cache has all it needs.
    const { tokens } = provider(account);
    const token = await tokens.getToken();
    assert.ok(token.expiresOn.getTime() > Date.now() + 30 * 60_000);
    assert.equal(sim.stats.deviceCodesIssued, codesBefore + 1, 'no second sign-in');
    const info = await sendWith(sim, token.accessToken);
    assert.match(info.response, /^250 /);
    const received = sim.received.at(-1);
    assert.equal(received?.user, USER);
    assert.equal(received?.clientId, PUBLIC_APP);

    // A forced renewal redeems the refresh token, which rolls; the cache file follows.
    const rtBefore = await refreshTokenIn(account.cacheFile);
    const renewed = await tokens.getToken({ forceRefresh: true });
    assert.notEqual(renewed.accessToken, token.accessToken);
    assert.notEqual(await refreshTokenIn(account.cacheFile), rtBefore);
    assert.equal(statSync(account.cacheFile).mode & 0o777, 0o600);
    const inDays = (tokens.signinExpiresInSeconds() ?? 0) / 86_400;
    assert.ok(inDays > 89.9 && inDays <= 90, `sign-in estimated to last 90 days, got ${inDays}`);
    assert.equal(tokens.health().ok, true);
  });

  test('an encrypted cache holds no token in clear; the same key reads it, a wrong or missing key is a clear error', async () => {
    const { sim } = suite;
    const key = randomBytes(32).toString('base64');
    const account = target(sim, suite.dir(), { cacheKey: key });
    const { status, text } = await login(sim, account);
    assert.equal(status, 0, text);
    assert.match(text, /mode 0600, encrypted/);
    const raw = readFileSync(account.cacheFile, 'utf8');
    for (const secret of ['simrt.', 'sim.', USER]) assert.ok(!raw.includes(secret), `${secret} is not in the file`);
    // No JWT (header.payload.): base64 ciphertext has no dots, so this cannot match by chance as "eyJ" could.
    assert.doesNotMatch(raw, /eyJ[\w-]{8,}\.[\w-]{8,}\./, 'no access token in the file');
    assert.equal(JSON.parse(raw).encryption.cipher, 'aes-256-gcm');

    const ok = await provider(account).tokens.getToken();
    assert.match((await sendWith(sim, ok.accessToken)).response, /^250 /);

    const wrong = provider({ ...account, cacheKey: randomBytes(32).toString('hex') });
    const err = await tokenError(wrong.tokens.getToken());
    assert.equal(err.kind, 'configuration');
    assert.match(err.message, /cannot be decrypted with the configured key/);
    assert.match(err.advice, /configure the key that was set/);
    assert.ok(err.advice.endsWith(LOGIN_ADVICE), err.advice);
    assert.equal(wrong.tokens.health().needsLogin, true);
    assert.ok(wrong.logs.lines.some((l) => l.event === 'signin-lost' && l.level === 'error'));

    const none = await tokenError(provider({ ...account, cacheKey: undefined }).tokens.getToken());
    assert.match(none.message, /is encrypted and no key is configured/);
  });

  test('a passphrase key (scrypt), and a plaintext cache rewritten encrypted once a key is set', async () => {
    const { sim } = suite;
    const passphrase = 'correct horse battery staple';
    const account = target(sim, suite.dir(), { cacheKey: passphrase });
    assert.equal((await login(sim, account)).status, 0);
    const envelope = JSON.parse(readFileSync(account.cacheFile, 'utf8'));
    assert.equal(envelope.encryption.kdf, 'scrypt');
    assert.equal(Buffer.from(envelope.encryption.salt, 'base64').length, 16);
    await provider(account).tokens.getToken();

    const plain = target(sim, suite.dir());
    assert.equal((await login(sim, plain)).status, 0);
    assert.ok(readFileSync(plain.cacheFile, 'utf8').includes('simrt.'));
    await provider({ ...plain, cacheKey: passphrase }).tokens.getToken();
    const rewritten = readFileSync(plain.cacheFile, 'utf8');
    assert.ok(!rewritten.includes('simrt.'), 'rewritten encrypted');
    assert.equal(JSON.parse(rewritten).encryption.kdf, 'scrypt');
    await provider({ ...plain, cacheKey: passphrase }).tokens.getToken();
  });

  test('background refresh keeps the refresh token rolling while idle; left idle past its lifetime, the sign-in is lost', async () => {
    // Its own simulator: refresh tokens die after 2 s unused.
    const short = await startTestSimulator({ ...suiteOptions, refreshTokenLifetimeSeconds: 2 });
    try {
      const account = target(short, suite.dir());
      assert.equal((await login(short, account)).status, 0);
      const { tokens, logs } = provider(account, { keepAliveInterval: 400 });
      const first = await refreshTokenIn(account.cacheFile);
      tokens.startBackgroundRefresh();
      try {
        // Well past the 2 s lifetime of any single refresh token.
        await waitFor('refresh tokens redeemed in the background', () => short.stats.refreshTokensRedeemed >= 8, 15_000);
      } finally {
        tokens.stopBackgroundRefresh();
      }
      assert.notEqual(await refreshTokenIn(account.cacheFile), first);
      assert.ok(logs.lines.some((l) => l.event === 'token' && l.delegated === true));
      assert.ok(!logs.text().includes('simrt.'), 'no refresh token in the logs');
      await tokens.getToken({ forceRefresh: true });

      // Idle without background refresh: the refresh token expires (AADSTS700082).
      await new Promise((resolve) => setTimeout(resolve, 2_200));
      const err = await tokenError(tokens.getToken({ forceRefresh: true }));
      assert.equal(err.kind, 'configuration');
      assert.equal(err.aadsts, 700082);
      assert.equal(err.advice, `the mailbox user must sign in again: ${LOGIN_ADVICE}`);
    } finally {
      await short.close();
    }
  });

  test('a sign-in near its end: the one credential-expiry mechanism alerts (kind delegated-signin) with the login advice', async () => {
    const { sim } = suite;
    const account = target(sim, suite.dir());
    assert.equal((await login(sim, account)).status, 0);
    // As if Entra let refresh tokens live 10 days: the estimate is already inside the 30-day band.
    const { tokens } = provider(account, { refreshTokenLifetime: 10 * 86_400_000 });
    tokens.startBackgroundRefresh();
    try {
      await waitFor('the sign-in read', () => tokens.health().signinExpiresAt, 10_000);
    } finally {
      tokens.stopBackgroundRefresh();
    }
    const seconds = tokens.signinExpiresInSeconds() ?? 0;
    assert.ok(seconds > 9 * 86_400 && seconds <= 10 * 86_400, `signinExpiresInSeconds ${seconds}`);
    const { logger, lines } = captureLogger();
    const watch = new CredentialWatch(logger, { signins: () => [{ account: 'scans', expiresAt: tokens.health().signinExpiresAt }], configFile: '/etc/m365-relay/relay.yaml' });
    watch.watch([]);
    watch.stop();
    const alert = lines.find((l) => l.event === 'alert' && l.alert === 'credential-expiring');
    assert.equal(alert?.kind, 'delegated-signin');
    assert.equal(alert?.level, 'error');
    assert.equal(alert?.account, 'scans');
    assert.match(String(alert?.advice), /m365-relay login --config \/etc\/m365-relay\/relay\.yaml --account scans/);
    assert.ok(!lines.some((l) => l.event === 'signin-expiring'), 'one mechanism: no separate sign-in warning');
    assert.deepEqual(watch.list().map((c) => [c.account, c.kind, c.source]), [['scans', 'delegated-signin', 'signin']]);
  });

  test('a revoked sign-in: TokenError "configuration" with the login advice; a new login restores the running provider', async () => {
    const { sim } = suite;
    const account = target(sim, suite.dir());
    assert.equal((await login(sim, account)).status, 0);
    const { tokens, logs } = provider(account);
    await tokens.getToken();
    sim.revokeRefreshTokens(USER);
    const err = await tokenError(tokens.getToken({ forceRefresh: true }));
    assert.equal(err.kind, 'configuration');
    assert.equal(err.aadsts, 50173);
    assert.match(err.message, /no longer accepts the sign-in of relay@contoso\.com: AADSTS50173/);
    assert.equal(err.advice, `the mailbox user must sign in again: ${LOGIN_ADVICE}`);
    assert.equal(tokens.signinExpiresInSeconds(), 0);
    assert.deepEqual([tokens.health().ok, tokens.health().needsLogin], [false, true]);
    const lost = logs.lines.filter((l) => l.event === 'signin-lost');
    assert.equal(lost.length, 1);
    assert.equal(lost[0]?.level, 'error');
    await tokenError(tokens.getToken({ forceRefresh: true }));
    assert.equal(logs.lines.filter((l) => l.event === 'signin-lost').length, 1, 'said once, not per attempt');

    assert.equal((await login(sim, account)).status, 0);
    await tokens.getToken({ forceRefresh: true });
    assert.equal(tokens.health().needsLogin, false);
    assert.ok(logs.lines.some((l) => l.event === 'signin-restored'));
  });

  test('no cache file yet: TokenError "configuration" that says to run login', async () => {
    const { sim } = suite;
    const err = await tokenError(provider(target(sim, suite.dir())).tokens.getToken());
    assert.equal(err.kind, 'configuration');
    assert.match(err.message, /no sign-in for relay@contoso\.com in the token cache/);
    assert.equal(err.advice, `sign the mailbox in: ${LOGIN_ADVICE}`);
  });

  test('signed in as the wrong user: a clear error, and nothing is written', async () => {
    const { sim } = suite;
    const account = target(sim, suite.dir());
    const { status, text } = await login(sim, account, { user: OTHER_USER });
    assert.equal(status, 1);
    assert.match(text, /Sign-in failed: signed in as alice@contoso\.com, but the account's mailbox is relay@contoso\.com/);
    assert.match(text, /What to do: run the login again and sign in as relay@contoso\.com/);
    assert.match(text, /To try again: m365-relay login --config \/etc\/m365-relay\/relay\.yaml --account scanner/);
    assert.equal(existsSync(account.cacheFile), false);
  });

  test('login failures name their cause: declined, public client flows off, unknown app', async () => {
    const { sim } = suite;
    const declined = await login(sim, target(sim, suite.dir()), { decline: true });
    assert.equal(declined.status, 1);
    assert.match(declined.text, /Sign-in failed: the user declined the sign-in/);

    const failure = async (overrides: Partial<DelegatedLoginTarget>, act?: (code: string) => void): Promise<LoginError> => {
      const err = await runDeviceCodeLogin(target(sim, suite.dir(), overrides), {
        onPrompt: (message) => act?.(/enter the code ([A-Z0-9]+)/.exec(message)?.[1] ?? ''),
      }).then(
        () => assert.fail('signed in'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof LoginError, String(err));
      return err;
    };
    const confidential = await failure({ clientId: CONFIDENTIAL_APP });
    assert.equal(confidential.reason, 'public-client-disabled');
    assert.match(confidential.advice, /"Allow public client flows" to Yes/);

    const unknown = await failure({ clientId: 'nobody' });
    assert.equal(unknown.reason, 'refused');
    assert.match(unknown.message, /did not issue a device code: AADSTS700016: Application with identifier 'nobody' was not found/);

    const timedOut = await failure({ timeout: 500 });
    assert.equal(timedOut.reason, 'expired');
  });
});

describe('token cache file', () => {
  test('keys: 32 bytes as hex, base64 or base64url; otherwise a passphrase of 16 characters or more', () => {
    const bytes = randomBytes(32);
    for (const text of [bytes.toString('hex'), bytes.toString('base64'), bytes.toString('base64url')]) {
      const key = parseCacheKey(text);
      assert.equal(key.kind, 'raw');
      assert.ok(key.kind === 'raw' && key.key.equals(bytes));
    }
    assert.equal(parseCacheKey('a long enough passphrase').kind, 'passphrase');
    assert.throws(() => parseCacheKey('short'), (err: unknown) => err instanceof TokenCacheError && err.problem === 'weak-key' && /openssl rand -base64 32/.test(err.advice));
  });

  test('a damaged file is a typed error that says what to do', async () => {
    const { dir, remove } = tempDir();
    try {
      const file = join(dir, 'cache.json');
      writeFileSync(file, '{"format":"m365-relay/token-cache","version":1,"encr', { mode: 0o600 });
      const err = await new TokenCacheFile(file, undefined, { loginCommand: 'm365-relay login --config c.yaml --account a' }).read().catch((e: unknown) => e);
      assert.ok(err instanceof TokenCacheError);
      assert.equal(err.problem, 'corrupt');
      assert.equal(err.advice, `remove ${file} and sign in again: run \`m365-relay login --config c.yaml --account a\``);
      assert.equal(await new TokenCacheFile(join(dir, 'absent.json')).read(), null);
    } finally {
      remove();
    }
  });
});
