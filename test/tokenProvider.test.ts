// The token provider over real msal-node against the simulator's HTTPS token endpoint.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TokenError, TokenProvider } from '../src/oauth/index.js';
import { silentLogger } from '../src/observability/logger.js';
import type { Simulator } from '../src/simulator/index.js';
import { rawConfigFor, startTestSimulator, toConfig } from './helpers/harness.js';
import { captureLogger } from './helpers/logs.js';

describe('token provider', () => {
  let sim: Simulator;
  before(async () => {
    sim = await startTestSimulator({ apps: [{ clientId: 'app-1', clientSecret: 'right' }, { clientId: 'app-old', clientSecret: 'old', secretExpired: true }] });
  });
  after(() => sim.close());

  const provider = (m365: Record<string, unknown>) => new TokenProvider(toConfig(rawConfigFor(sim, '/tmp/unused-spool', { microsoft365: m365 })).microsoft365, silentLogger());

  test('concurrent callers share one token request; later calls come from the cache', async () => {
    const tokens = provider({ clientId: 'app-1', clientSecret: 'right' });
    const before = sim.stats.tokenRequests;
    const results = await Promise.all(Array.from({ length: 10 }, () => tokens.getToken()));
    assert.equal(sim.stats.tokenRequests - before, 1);
    assert.equal(new Set(results.map((r) => r.accessToken)).size, 1);
    assert.ok(results[0]!.expiresOn.getTime() > Date.now() + 30 * 60_000);
    await tokens.getToken();
    assert.equal(sim.stats.tokenRequests - before, 1, 'served from msal cache');
  });

  test('a forced renewal skips the cache, shares one request, and replaces the cached token', async () => {
    const tokens = provider({ clientId: 'app-1', clientSecret: 'right' });
    const first = await tokens.getToken();
    const before = sim.stats.tokenRequests;
    const forced = await Promise.all([tokens.getToken({ forceRefresh: true }), tokens.getToken({ forceRefresh: true })]);
    assert.equal(sim.stats.tokenRequests - before, 1);
    assert.notEqual(forced[0]!.accessToken, first.accessToken);
    assert.equal((await tokens.getToken()).accessToken, forced[0]!.accessToken);
  });

  test('Entra configuration errors become TokenErrors with the administrator advice', async () => {
    const cases: Array<[Record<string, unknown>, number, RegExp]> = [
      [{ clientId: 'app-1', clientSecret: 'S3cr3t-wr0ng-VALUE' }, 7000215, /secret VALUE/],
      [{ clientId: 'app-old', clientSecret: 'old' }, 7000222, /expired/],
      [{ clientId: 'nobody', clientSecret: 'x' }, 700016, /not known in this tenant/],
      [{ clientId: 'app-1', clientSecret: 'right', tenantId: 'fabrikam.onmicrosoft.com' }, 90002, /tenant was not found/],
      [{ clientId: 'app-1', clientSecret: 'right', scope: 'https://outlook.office365.com/SMTP.Send' }, 70011, /scope is invalid/],
    ];
    for (const [m365, code, advice] of cases) {
      const err = await provider(m365).getToken().then(
        () => assert.fail('a token was issued'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof TokenError);
      assert.equal(err.kind, 'configuration');
      assert.equal(err.aadsts, code);
      assert.match(err.advice, advice);
      assert.ok(!err.message.includes('S3cr3t-wr0ng-VALUE'), 'the secret is not in the message');
    }
  });

  test('an unavailable endpoint is transient', async () => {
    sim.faults.tokenEndpointDown = true;
    try {
      const err = await provider({ clientId: 'app-1', clientSecret: 'right' }).getToken().catch((e: unknown) => e);
      assert.ok(err instanceof TokenError);
      assert.equal(err.kind, 'transient');
    } finally {
      sim.faults.tokenEndpointDown = false;
    }
  });
});

describe('token renewal margin (tokenRenewBefore)', () => {
  let sim: Simulator;
  before(async () => {
    sim = await startTestSimulator({ apps: [{ clientId: 'app-1', clientSecret: 'right' }] });
  });
  after(() => sim.close());

  // Only Date is mocked: msal and the provider read the time from it, the HTTP requests run for real.
  test('a cached token with less than the margin left is renewed before use; with msal\'s 5 minutes it would still be served', async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
    const make = (extra: Record<string, unknown>) => new TokenProvider(toConfig(rawConfigFor(sim, '/tmp/unused-spool', { microsoft365: { clientId: 'app-1', clientSecret: 'right', ...extra } })).microsoft365, silentLogger());
    const hve = make({ tokenRenewBefore: '15m' });
    const mailbox = make({});
    const [hveFirst, mailboxFirst] = [await hve.getToken(), await mailbox.getToken()];
    const requests = sim.stats.tokenRequests;

    t.mock.timers.tick(60 * 60_000 - 16 * 60_000 - 1000); // about 16 minutes of life left
    assert.equal((await hve.getToken()).accessToken, hveFirst.accessToken, 'still outside the margin');
    assert.equal(sim.stats.tokenRequests, requests);

    t.mock.timers.tick(2 * 60_000); // about 14 minutes left: inside HVE's margin, not inside msal's
    const renewed = await hve.getToken();
    assert.notEqual(renewed.accessToken, hveFirst.accessToken, 'renewed ahead');
    assert.ok(renewed.expiresOn.getTime() - Date.now() > 50 * 60_000);
    assert.equal((await mailbox.getToken()).accessToken, mailboxFirst.accessToken, 'the 5-minute margin still serves it');
    assert.equal(sim.stats.tokenRequests, requests + 1);
  });

  test('tokens issued short-lived are served a while (no request per delivery) and reported once', async (t) => {
    const { logger, lines } = captureLogger();
    sim.faults.shortLivedTokens(5, 600); // 10 minutes: inside a 15-minute margin from birth
    const hve = new TokenProvider(toConfig(rawConfigFor(sim, '/tmp/unused-spool', { microsoft365: { clientId: 'app-1', clientSecret: 'right', tokenRenewBefore: '15m' } })).microsoft365, logger);
    const requests = sim.stats.tokenRequests;
    const first = await hve.getToken();
    for (let i = 0; i < 5; i++) assert.equal((await hve.getToken()).accessToken, first.accessToken);
    assert.equal(sim.stats.tokenRequests - requests, 1);
    const forced = await hve.getToken({ forceRefresh: true });
    assert.notEqual(forced.accessToken, first.accessToken, 'a forced renewal still asks');
    assert.equal(lines.filter((l) => l.alert === 'token-short-lived').length, 1);
    sim.faults.shortLivedTokens(0, 1);
    t.after(() => hve.stopBackgroundRefresh());
  });
});
