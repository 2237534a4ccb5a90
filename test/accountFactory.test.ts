// The account factory: what this build can serve, refused at start and on reload with the account named.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { startRelay } from '../src/daemon.js';
import { DelegatedTokenProvider } from '../src/oauth/index.js';
import { silentLogger } from '../src/observability/logger.js';
import { AccountSetupError, createTokenSource, createTransport } from '../src/relay/index.js';
import { rawConfigFor, sampleMessage, sendMessage, simulatorSuite, startInProcessRelay, toConfig } from './helpers/harness.js';

/** A device-code account whose cache key is too weak to use: refused when its token source is built. */
const WEAK_KEY = { flow: 'device-code', tokenCacheKey: 'short' };

describe('account factory', () => {
  const suite = simulatorSuite();

  const withAccount = (spoolDir: string, extra: Record<string, unknown>) =>
    toConfig(
      rawConfigFor(suite.sim, spoolDir, {
        accounts: { alerts: { tenantId: 't', clientId: 'c2', mailbox: 'alerts@contoso.com', ...extra } },
        routes: [{ sender: '@ops.contoso.com', account: 'alerts' }],
      }),
    );

  test('client credentials and device code are built; an unusable tokenCacheKey is refused naming the account', () => {
    const spool = join(suite.dir(), 'spool');
    const ok = withAccount(spool, { clientSecret: 's' }).accounts.alerts!;
    const tokens = createTokenSource(ok, silentLogger());
    createTransport(ok, tokens, silentLogger()).close();

    const device = withAccount(spool, { flow: 'device-code' }).accounts.alerts!;
    assert.ok(createTokenSource(device, silentLogger()) instanceof DelegatedTokenProvider);
    assert.throws(() => createTokenSource(withAccount(spool, WEAK_KEY).accounts.alerts!, silentLogger()), (err: unknown) => {
      assert.ok(err instanceof AccountSetupError);
      assert.equal(err.account, 'alerts');
      assert.match(err.message, /^accounts\.alerts\.tokenCacheKey: /);
      return true;
    });
  });

  test('the daemon refuses to start with an account it cannot serve', async () => {
    const config = withAccount(join(suite.dir(), 'spool'), WEAK_KEY);
    await assert.rejects(startRelay(config, silentLogger()), AccountSetupError);
  });

  test('a reload with an account it cannot serve is refused and changes nothing', async (t) => {
    suite.sim.reset();
    const spool = join(suite.dir(), 'spool');
    const r = await startInProcessRelay(rawConfigFor(suite.sim, spool, { allowNetworks: ['10.0.0.0/8'], users: [{ username: 'dev', password: 'pw' }] }));
    t.after(() => r.stop());
    const next = withAccount(spool, WEAK_KEY);
    // The new file would also open allowNetworks to loopback: refused as a whole, it does not.
    assert.throws(() => r.relay.reload(next), /accounts\.alerts\.tokenCacheKey/);
    await assert.rejects(sendMessage(r.port, { from: 'a@ops.contoso.com', raw: sampleMessage({ from: 'a@ops.contoso.com' }) }), /530/);
    await sendMessage(r.port, { auth: { user: 'dev', pass: 'pw' }, from: 'a@ops.contoso.com', raw: sampleMessage({ from: 'a@ops.contoso.com' }) });
    const [got] = await suite.sim.waitForMessages(1);
    assert.equal(got?.mailbox, 'relay@contoso.com');
  });
});
