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
import { cli, toConfig } from './helpers/harness.js';
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
});
