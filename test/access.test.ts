// Unit tests for src/access: password hashes (scrypt), the local user directory and the relay policy.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { describe, test } from 'node:test';
import {
  AccessPolicy,
  DuplicateUserError,
  hashPassword,
  parsePasswordHash,
  PasswordHashError,
  SCRYPT_DEFAULTS,
  UserDirectory,
  verifyPassword,
} from '../src/access/index.js';
import { ConfigError, parseConfig } from '../src/config/index.js';

/** The fastest of a few runs: a steadier figure than one run on a busy machine. */
async function fastestMs(runs: number, fn: () => Promise<unknown>): Promise<number> {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await fn();
    best = Math.min(best, performance.now() - start);
  }
  return best;
}

describe('passwords', () => {
  test('hashPassword makes a self-describing scrypt hash with a random salt; verifyPassword round-trips', async () => {
    const encoded = await hashPassword('correct horse battery staple');
    assert.match(encoded, /^scrypt\$N=16384,r=8,p=1\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$/);
    const parsed = parsePasswordHash(encoded);
    assert.deepEqual({ N: parsed.N, r: parsed.r, p: parsed.p }, { ...SCRYPT_DEFAULTS });
    assert.equal(parsed.salt.length, 16);
    assert.equal(parsed.hash.length, 32);
    assert.equal(await verifyPassword('correct horse battery staple', encoded), true);
    assert.equal(await verifyPassword('correct horse battery staple', parsed), true, 'the parsed form works too');
    // The same password hashes differently each time (salt), and both verify.
    const again = await hashPassword('correct horse battery staple');
    assert.notEqual(again, encoded);
    assert.equal(await verifyPassword('correct horse battery staple', again), true);
  });

  test('a wrong password does not verify (also near misses, empty, and non-ASCII)', async () => {
    const encoded = await hashPassword('Pässwort-1');
    assert.equal(await verifyPassword('Pässwort-1', encoded), true);
    for (const wrong of ['pässwort-1', 'Pässwort-1 ', 'Passwort-1', '', 'Pässwort-2']) {
      assert.equal(await verifyPassword(wrong, encoded), false, JSON.stringify(wrong));
    }
  });

  test('hashPassword refuses an empty password', async () => {
    await assert.rejects(hashPassword(''), TypeError);
  });

  test('verification stays cheap enough for a login (about 50 ms; bound generously)', async () => {
    const encoded = await hashPassword('timing');
    const ms = await fastestMs(3, () => verifyPassword('timing', encoded));
    assert.ok(ms < 250, `verifyPassword took ${ms.toFixed(1)} ms`);
  });

  test('malformed hashes are refused with PasswordHashError, saying what is wrong', async () => {
    const good = await hashPassword('x');
    const [, params, salt, hash] = good.split('$') as [string, string, string, string];
    const cases: Array<[string, RegExp]> = [
      ['', /not a password hash/],
      ['plaintext-password', /not a password hash/],
      [`bcrypt$${params}$${salt}$${hash}`, /not a password hash/],
      [`scrypt$${params}$${salt}`, /not a password hash/],
      [`scrypt$${params}$${salt}$${hash}$extra`, /not a password hash/],
      [`scrypt$N=16384,r=8$${salt}$${hash}`, /malformed scrypt parameters/],
      [`scrypt$n=16384,r=8,p=1$${salt}$${hash}`, /malformed scrypt parameters/],
      [`scrypt$N=1000,r=8,p=1$${salt}$${hash}`, /invalid scrypt N=1000/],
      [`scrypt$N=1,r=8,p=1$${salt}$${hash}`, /invalid scrypt N=1/],
      [`scrypt$N=16384,r=0,p=1$${salt}$${hash}`, /invalid scrypt r=0/],
      [`scrypt$N=16384,r=8,p=99$${salt}$${hash}`, /invalid scrypt r=8 or p=99/],
      [`scrypt$N=1048576,r=8,p=1$${salt}$${hash}`, /more than 256 MiB/],
      [`scrypt$${params}$not*base64!$${hash}`, /salt that is not valid base64/],
      [`scrypt$${params}$${salt}$${hash.slice(0, -2)}%%`, /hash that is not valid base64/],
      [`scrypt$${params}$AAAA$${hash}`, /salt shorter than 8 bytes/],
      [`scrypt$${params}$${salt}$AAAAAAAA`, /derived key that is not 16 to 64 bytes/],
    ];
    for (const [encoded, message] of cases) {
      assert.throws(
        () => parsePasswordHash(encoded),
        (err: unknown) => err instanceof PasswordHashError && err.code === 'EPASSWORDHASH' && message.test(err.message),
        encoded,
      );
    }
    // verifyPassword with an encoded string parses it first: a malformed one rejects, never "false".
    await assert.rejects(verifyPassword('x', 'scrypt$garbage'), PasswordHashError);
    // Hashes of other (sound) costs still verify: the parameters come from the hash.
    assert.doesNotThrow(() => parsePasswordHash(`scrypt$N=32768,r=8,p=2$${salt}$${hash}`));
  });

  test('the config check reports a malformed passwordHash at load time', () => {
    const yaml = `
listen: [{ port: 2525 }]
spool: { dir: ./spool }
users:
  - { username: scanner, passwordHash: "scrypt$N=16384,r=8,p=1$bad" }
microsoft365: { tenantId: t, clientId: c, clientSecret: s, mailbox: relay@contoso.com }
`;
    assert.throws(
      () => parseConfig(yaml, '/etc/m365-relay/relay.yaml', {}),
      (err: unknown) => err instanceof ConfigError && /users.*passwordHash.*not a password hash/.test(err.message),
    );
  });
});

describe('UserDirectory', () => {
  test('hashed and plain-password users authenticate; wrong passwords and unknown users do not', async () => {
    const users = new UserDirectory([
      { username: 'scanner', passwordHash: await hashPassword('scan-pw') },
      { username: 'nas', password: 'plain-pw' },
    ]);
    assert.equal(users.size, 2);
    assert.equal(await users.authenticate('scanner', 'scan-pw'), true);
    assert.equal(await users.authenticate('nas', 'plain-pw'), true);
    assert.equal(await users.authenticate('scanner', 'plain-pw'), false);
    assert.equal(await users.authenticate('nas', 'scan-pw'), false);
    assert.equal(await users.authenticate('nas', 'plain-pw '), false);
    assert.equal(await users.authenticate('nas', ''), false);
    assert.equal(await users.authenticate('nobody', 'scan-pw'), false);
    assert.equal(await users.authenticate('', ''), false);
  });

  test('usernames are case-sensitive (SASL login names, compared verbatim)', async () => {
    const users = new UserDirectory([{ username: 'Scanner', password: 'pw' }]);
    assert.equal(await users.authenticate('Scanner', 'pw'), true);
    assert.equal(await users.authenticate('scanner', 'pw'), false);
    assert.equal(await users.authenticate('SCANNER', 'pw'), false);
    assert.equal(users.has('Scanner'), true);
    assert.equal(users.has('scanner'), false);
  });

  test('unknown users and plain-password users cost the same scrypt work as hashed users', async () => {
    const users = new UserDirectory([
      { username: 'hashed', passwordHash: await hashPassword('pw') },
      { username: 'plain', password: 'pw' },
    ]);
    const hashed = await fastestMs(3, () => users.authenticate('hashed', 'wrong'));
    const plain = await fastestMs(3, () => users.authenticate('plain', 'wrong'));
    const unknown = await fastestMs(3, () => users.authenticate('nobody', 'wrong'));
    // Without the dummy scrypt, plain and unknown would take microseconds against tens of ms.
    for (const [what, ms] of [['plain', plain], ['unknown', unknown]] as const) {
      assert.ok(ms > hashed * 0.4 && ms < hashed * 2.5, `${what} took ${ms.toFixed(1)} ms, a hashed user ${hashed.toFixed(1)} ms`);
    }
  });

  test('a malformed hash or a duplicate username is refused when the directory is built', async () => {
    assert.throws(() => new UserDirectory([{ username: 'a', passwordHash: 'scrypt$oops' }]), PasswordHashError);
    assert.throws(
      () => new UserDirectory([{ username: 'a', password: 'x' }, { username: 'a', password: 'y' }]),
      (err: unknown) => err instanceof DuplicateUserError && /"a" is listed more than once/.test(err.message),
    );
    // Different case is a different user, so not a duplicate.
    assert.equal(new UserDirectory([{ username: 'a', password: 'x' }, { username: 'A', password: 'y' }]).size, 2);
  });
});

describe('AccessPolicy', () => {
  test('allowNetworks: IPv4, IPv6 and IPv4-mapped IPv6 addresses', () => {
    const policy = new AccessPolicy({ allowNetworks: ['192.168.10.0/24', 'fd00:10::/64'], users: [] });
    assert.equal(policy.mayRelayWithoutAuth('192.168.10.5'), true);
    assert.equal(policy.mayRelayWithoutAuth('::ffff:192.168.10.5'), true);
    assert.equal(policy.mayRelayWithoutAuth('::FFFF:192.168.10.250'), true);
    assert.equal(policy.mayRelayWithoutAuth('fd00:10::25'), true);
    assert.equal(policy.mayRelayWithoutAuth('192.168.11.5'), false);
    assert.equal(policy.mayRelayWithoutAuth('::ffff:192.168.11.5'), false);
    assert.equal(policy.mayRelayWithoutAuth('fd00:11::25'), false);
    assert.equal(policy.mayRelayWithoutAuth('127.0.0.1'), false);
    assert.equal(policy.mayRelayWithoutAuth(''), false);
    assert.equal(policy.mayRelayWithoutAuth(undefined), false);
    assert.equal(policy.mayRelayWithoutAuth('not an address'), false);
  });

  test('never an open relay: only allowNetworks or an authenticated, existing local user may relay', async () => {
    const policy = new AccessPolicy({ allowNetworks: ['10.0.0.0/8'], users: [{ username: 'scanner', password: 'pw' }] });
    assert.equal(policy.mayRelay({ remoteAddress: '10.1.2.3' }), true);
    assert.equal(policy.mayRelay({ remoteAddress: '203.0.113.9' }), false);
    assert.equal(policy.mayRelay({ remoteAddress: '203.0.113.9', user: 'scanner' }), true);
    // Only a username that exists counts, and only as a string (smtp-server's session.user).
    assert.equal(policy.mayRelay({ remoteAddress: '203.0.113.9', user: 'removed-user' }), false);
    assert.equal(policy.mayRelay({ remoteAddress: '203.0.113.9', user: '' }), false);
    assert.equal(policy.mayRelay({ remoteAddress: '203.0.113.9', user: true }), false);
    assert.equal(policy.mayRelay({ remoteAddress: '203.0.113.9', user: { username: 'scanner' } }), false);
    assert.equal(policy.mayRelay({}), false);
    assert.equal(await policy.authenticate('scanner', 'pw'), true);
    assert.equal(await policy.authenticate('scanner', 'nope'), false);

    // The empty configuration lets nobody relay.
    const closed = new AccessPolicy({ allowNetworks: [], users: [] });
    for (const remoteAddress of ['127.0.0.1', '::1', '10.0.0.1', '0.0.0.0']) assert.equal(closed.mayRelay({ remoteAddress }), false);
  });

  test('a catch-all network is honoured only because it was configured', () => {
    // 0.0.0.0/0 is an administrator's explicit choice; the policy does not second-guess it.
    const policy = new AccessPolicy({ allowNetworks: ['0.0.0.0/0'], users: [] });
    assert.equal(policy.mayRelay({ remoteAddress: '203.0.113.9' }), true);
    assert.equal(policy.mayRelay({ remoteAddress: '2001:db8::1' }), false, 'an IPv4 rule does not open IPv6');
  });
});
