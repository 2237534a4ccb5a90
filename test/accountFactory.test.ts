// The account factory: what this build can serve, refused at start and on reload with the account named.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { startRelay } from '../src/daemon.js';
import { silentLogger } from '../src/observability/logger.js';
import { AccountSetupError, createTokenSource, createTransport } from '../src/relay/index.js';
import { rawConfigFor, sampleMessage, sendMessage, simulatorSuite, startInProcessRelay, toConfig } from './helpers/harness.js';

describe('account factory', () => {
  const suite = simulatorSuite();

  const withAccount = (spoolDir: string, extra: Record<string, unknown>) =>
    toConfig(
      rawConfigFor(suite.sim, spoolDir, {
        accounts: { alerts: { tenantId: 't', clientId: 'c2', mailbox: 'alerts@contoso.com', ...extra } },
        routes: [{ sender: '@ops.contoso.com', account: 'alerts' }],
      }),
    );

  test('smtp with client credentials is built; graph and device-code are refused naming the account', () => {
    const spool = join(suite.dir(), 'spool');
    const ok = withAccount(spool, { clientSecret: 's' }).accounts.alerts!;
    const tokens = createTokenSource(ok, silentLogger());
    createTransport(ok, tokens, silentLogger()).close();

    const graph = withAccount(spool, { clientSecret: 's', transport: 'graph' }).accounts.alerts!;
    assert.throws(() => createTransport(graph, createTokenSource(graph, silentLogger()), silentLogger()), (err: unknown) => {
      assert.ok(err instanceof AccountSetupError);
      assert.equal(err.account, 'alerts');
      assert.match(err.message, /^accounts\.alerts: transport graph is not available in this build/);
      return true;
    });
    const device = withAccount(spool, { flow: 'device-code' }).accounts.alerts!;
    assert.throws(() => createTokenSource(device, silentLogger()), /accounts\.alerts: flow device-code \(delegated sign-in\) is not available in this build/);
  });

  test('the daemon refuses to start with an account it cannot serve', async () => {
    const config = withAccount(join(suite.dir(), 'spool'), { clientSecret: 's', transport: 'graph' });
    await assert.rejects(startRelay(config, silentLogger()), AccountSetupError);
  });

  test('a reload with an account it cannot serve is refused and changes nothing', async (t) => {
    suite.sim.reset();
    const spool = join(suite.dir(), 'spool');
    const r = await startInProcessRelay(rawConfigFor(suite.sim, spool, { allowNetworks: ['10.0.0.0/8'], users: [{ username: 'dev', password: 'pw' }] }));
    t.after(() => r.stop());
    const next = withAccount(spool, { clientSecret: 's', transport: 'graph' });
    // The new file would also open allowNetworks to loopback: refused as a whole, it does not.
    assert.throws(() => r.relay.reload(next), /transport graph is not available/);
    await assert.rejects(sendMessage(r.port, { from: 'a@ops.contoso.com', raw: sampleMessage({ from: 'a@ops.contoso.com' }) }), /530/);
    await sendMessage(r.port, { auth: { user: 'dev', pass: 'pw' }, from: 'a@ops.contoso.com', raw: sampleMessage({ from: 'a@ops.contoso.com' }) });
    const [got] = await suite.sim.waitForMessages(1);
    assert.equal(got?.mailbox, 'relay@contoso.com');
  });
});
