// Expiring credentials: client secrets (clientSecretExpires) and certificates (notAfter, from the
// file) warn 30, 7 and 1 days ahead, once a day (mock timers), show in the metric and in check-config.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { generate } from 'selfsigned';
import { stringify } from 'yaml';
import { accountsOf } from '../src/config/index.js';
import { CredentialWatch, credentialsOf, expiryState } from '../src/oauth/credentialExpiry.js';
import { RelayMetrics } from '../src/observability/metrics.js';
import { cli, cliAsync, rawConfigFor, startTestSimulator, toConfig } from './helpers/harness.js';
import { startRelay } from '../src/daemon.js';
import { lookupSecretExpiry, matchSecret, registrationTokenSource } from '../src/oauth/registration.js';
import { silentLogger } from '../src/observability/logger.js';
import { waitFor } from './helpers/wait.js';
import { captureLogger } from './helpers/logs.js';
import { tempDir } from './helpers/tmp.js';

const DAY = 86_400_000;
const NOW = Date.parse('2026-11-26T12:00:00Z');

describe('credential expiry', () => {
  test('bands: 30, 7 and 1 days ahead, then expired', () => {
    const at = (days: number) => new Date(NOW + days * DAY).toISOString();
    const cases: Array<[number, string | number | null]> = [
      [45, null],
      [30, 30],
      [29.5, 30],
      [7, 7],
      [3, 7],
      [1, 1],
      [0.2, 1],
      [-0.1, 'expired'],
    ];
    for (const [days, band] of cases) assert.equal(expiryState(at(days), NOW).band, band, `${days} days`);
    assert.equal(expiryState(at(3.5), NOW).daysLeft, 3);
  });

  test('a short-lived certificate and a secret near its end: alerts at start and once a day, the metric, check-config', async (t) => {
    const tmp = tempDir();
    t.after(tmp.remove);
    const notBeforeDate = new Date(Date.now() - DAY);
    const pems = await generate([{ name: 'commonName', value: 'm365-relay test app' }], { keySize: 2048, algorithm: 'sha256', notBeforeDate, notAfterDate: new Date(Date.now() + 5 * DAY) });
    writeFileSync(join(tmp.dir, 'app.pem'), pems.cert);
    writeFileSync(join(tmp.dir, 'app.key'), pems.private, { mode: 0o600 });
    const raw = {
      listen: [{ port: 2525 }],
      spool: { dir: join(tmp.dir, 'spool') },
      microsoft365: { tenantId: 't', clientId: 'c', clientSecret: 's', clientSecretExpires: new Date(Date.now() + 20 * DAY).toISOString().slice(0, 10), mailbox: 'relay@contoso.com' },
      accounts: {
        scans: { tenantId: 't', clientId: 'd', clientCertificate: { certificateFile: join(tmp.dir, 'app.pem'), privateKeyFile: join(tmp.dir, 'app.key') }, mailbox: 'scans@contoso.com' },
        later: { tenantId: 't', clientId: 'e', clientSecret: 's', clientSecretExpires: '2099-01-01', mailbox: 'later@contoso.com' },
      },
    };
    const config = toConfig(raw);
    const credentials = [...accountsOf(config).values()].flatMap(credentialsOf);
    assert.deepEqual(credentials.map((c) => [c.account, c.kind]), [['default', 'client-secret'], ['scans', 'client-certificate'], ['later', 'client-secret']]);

    t.mock.timers.enable({ apis: ['setInterval', 'Date'], now: Date.now() });
    const { logger, lines } = captureLogger();
    const watch = new CredentialWatch(logger);
    t.after(() => watch.stop());
    watch.watch(accountsOf(config).values());
    const alerts = () => lines.filter((l) => l.event === 'alert' && l.alert === 'credential-expiring');
    assert.deepEqual(alerts().map((l) => [l.account, l.kind, l.level]), [['default', 'client-secret', 'error'], ['scans', 'client-certificate', 'error']]);
    assert.match(String(alerts()[1]?.advice), /upload a new certificate/);
    t.mock.timers.tick(DAY);
    assert.equal(alerts().length, 4, 'once a day again');

    const metrics = new RelayMetrics();
    metrics.setSources({ queue: async () => ({ counts: {}, oldestReceivedAt: null }), connections: () => ({}), credentials: () => watch.list() });
    const text = await metrics.metrics();
    assert.match(text, /m365relay_credential_expires_in_seconds\{account="scans",kind="client-certificate"\} \d+/);
    assert.match(text, /m365relay_credential_expires_in_seconds\{account="later",kind="client-secret"\} \d+/);
    t.mock.timers.reset();

    const file = join(tmp.dir, 'relay.yaml');
    writeFileSync(file, stringify(raw));
    const checked = cli(['check-config', '--config', file]);
    assert.match(checked.stdout, /WARNING: the client certificate of account scans expires \S+ \(in 4 days\)/);
    assert.match(checked.stdout, /WARNING: the client secret of account default expires \S+ \(in (19|20) days\)/);
    assert.match(checked.stdout, /the client secret of account later expires 2099-01-01T00:00:00.000Z \(in \d+ days\)/);
    assert.doesNotMatch(checked.stdout, /WARNING: the client secret of account later/);
  });

  test('the end of the secret from the app registration (Graph) replaces clientSecretExpires; a refusal keeps the configured date; a reload drops an old lookup', async (t) => {
    const config = toConfig({
      listen: [{ port: 2525 }],
      spool: { dir: '/tmp/unused' },
      microsoft365: { tenantId: 't', clientId: 'c', clientSecret: 'abc-secret', clientSecretExpires: '2099-01-01', mailbox: 'relay@contoso.com' },
      accounts: { denied: { tenantId: 't', clientId: 'd', clientSecret: 'xyz', clientSecretExpires: '2099-02-01', mailbox: 'd@contoso.com' } },
    });
    t.mock.timers.enable({ apis: ['setInterval', 'setTimeout', 'Date'], now: NOW });
    const { logger, lines } = captureLogger();
    const asked: string[] = [];
    const watch = new CredentialWatch(logger, {
      lookupDelayMs: 120_000,
      lookup: async (account) => {
        asked.push(account.name);
        return account.name === 'default' ? { status: 'found', expiresAt: new Date(NOW + 5 * DAY).toISOString() } : { status: 'denied', message: 'Graph answered 403' };
      },
    });
    t.after(() => watch.stop());
    watch.watch(accountsOf(config).values());
    const alerts = () => lines.filter((l) => l.event === 'alert' && l.alert === 'credential-expiring');
    assert.equal(alerts().length, 0, 'the configured dates are far away');
    assert.deepEqual(asked, [], 'no lookup before the delay: the start\'s own token requests go first');
    t.mock.timers.tick(120_000);
    await watch.lookups;
    assert.deepEqual(asked.sort(), ['default', 'denied']);
    assert.deepEqual(alerts().map((l) => [l.account, l.kind, l.source, l.expiresInDays]), [['default', 'client-secret', 'graph', 4]]);
    assert.match(String(alerts()[0]?.msg), /from its app registration/);
    assert.ok(lines.some((l) => l.event === 'credential-registration' && l.account === 'default' && l.level === 'warn'), 'the configured date differs: said');
    assert.ok(lines.some((l) => l.event === 'credential-registration' && l.account === 'denied' && l.level === 'info'), 'a refusal is not an error');
    assert.deepEqual(
      watch.list().map((c) => [c.account, c.source, c.expiresAt.slice(0, 10)]).sort(),
      [['default', 'graph', new Date(NOW + 5 * DAY).toISOString().slice(0, 10)], ['denied', 'config', '2099-02-01']],
    );
    // Hourly checks, still one alert a day; the lookup again after a day.
    t.mock.timers.tick(23 * 3_600_000);
    assert.equal(alerts().length, 1);
    t.mock.timers.tick(3_600_000);
    await watch.lookups;
    assert.equal(alerts().length, 2);
    assert.equal(asked.length, 4, 'looked up again after a day');

    // A reload while a lookup is under way: its answer belongs to the old configuration and is dropped.
    const releases: Array<() => void> = [];
    const slow = new CredentialWatch(logger, {
      lookupDelayMs: 0,
      lookup: () => new Promise((resolve) => releases.push(() => resolve({ status: 'found', expiresAt: new Date(NOW + 2 * DAY).toISOString() }))),
    });
    t.after(() => slow.stop());
    slow.watch(accountsOf(config).values());
    t.mock.timers.tick(0);
    const pending = slow.lookups;
    slow.watch([]);
    assert.equal(releases.length, 2, 'both secret accounts looked up');
    for (const release of releases) release();
    await pending;
    assert.deepEqual(slow.list(), []);
  });

  test('against the Graph of the simulator: read with Application.Read.All, 403 without it, no match for another secret', async (t) => {
    const sim = await startTestSimulator({
      apps: [
        { clientId: 'aaaaaaaa-0000-0000-0000-000000000001', clientSecret: 'reader-secret', applicationReadAll: true, secretExpiresAt: '2026-12-03T00:00:00.000Z' },
        { clientId: 'aaaaaaaa-0000-0000-0000-000000000002', clientSecret: 'plain-secret' },
      ],
    });
    t.after(() => sim.close());
    const account = (clientId: string, clientSecret: string) =>
      accountsOf(toConfig({ listen: [{ port: 2525 }], spool: { dir: '/tmp/unused' }, microsoft365: { tenantId: sim.tenantId, clientId, clientSecret, authorityHost: sim.authorityHost, graphHost: sim.graphHost, mailbox: 'relay@contoso.com', tokenTimeout: '5s' } })).get('default')!;
    const reader = account('aaaaaaaa-0000-0000-0000-000000000001', 'reader-secret');
    assert.deepEqual(await lookupSecretExpiry(reader, registrationTokenSource(reader, silentLogger())), { status: 'found', expiresAt: '2026-12-03T00:00:00.000Z' });
    const plain = account('aaaaaaaa-0000-0000-0000-000000000002', 'plain-secret');
    const denied = await lookupSecretExpiry(plain, registrationTokenSource(plain, silentLogger()));
    assert.equal(denied.status, 'denied');
    assert.match((denied as { message: string }).message, /403.*Application\.Read\.All/);
    assert.equal(matchSecret('reader-secret', [{ hint: 'xyz', endDateTime: '2027-01-01T00:00:00Z' }]), null);
    assert.equal(matchSecret('reader-secret', [{ hint: 'rea', endDateTime: '2027-01-01T00:00:00Z' }, { hint: 'rea', endDateTime: '2026-06-01T00:00:00Z' }]), '2026-06-01T00:00:00.000Z', 'the earliest of the matching secrets');
  });

  test('the relay reads the registration after start and alerts; check-config --connect shows it', async (t) => {
    const sim = await startTestSimulator({
      rateLimit: null,
      apps: [{ clientId: '11111111-2222-3333-4444-555555555555', clientSecret: 'sim-secret', applicationReadAll: true, secretExpiresAt: new Date(Date.now() + 3 * DAY + 3_600_000).toISOString() }],
    });
    t.after(() => sim.close());
    const tmp = tempDir();
    const raw = rawConfigFor(sim, join(tmp.dir, 'spool'), { microsoft365: { clientSecretExpires: '2099-01-01', graphHost: sim.graphHost } });
    const { logger, lines } = captureLogger();
    const relay = await startRelay(toConfig(raw), logger, { registrationLookupDelayMs: 0 });
    t.after(async () => {
      await relay.stop();
      tmp.remove();
    });
    const alert = await waitFor('the alert from the registration', () => lines.find((l) => l.event === 'alert' && l.alert === 'credential-expiring'), 15_000);
    assert.deepEqual([alert.account, alert.kind, alert.source, alert.expiresInDays], ['default', 'client-secret', 'graph', 3]);

    const file = join(tmp.dir, 'check.yaml');
    writeFileSync(file, stringify(rawConfigFor(sim, join(tmp.dir, 'spool2'), { microsoft365: { graphHost: sim.graphHost } })));
    const checked = await cliAsync(['check-config', '--config', file, '--connect']);
    assert.match(checked.stdout, /\[WARN\] client secret expiry in the app registration \(Graph https:\/\/127\.0\.0\.1:\d+\): the client secret of account default expires \S+ \(from its app registration\) \(in 3 days\)/);
  });
});
