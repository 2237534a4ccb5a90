// `m365-relay setup`: the printed Microsoft 365 steps, compared with golden files (test/golden/,
// each reviewed line by line against Microsoft's documentation; see README "Guided setup").
// UPDATE_GOLDEN=1 rewrites them; a rewrite must be reviewed again before it is committed.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { stringify } from 'yaml';
import { setupSteps, type SetupAccount } from '../src/cli/setup.js';
import { cli, ROOT, tempDir } from './helpers/harness.js';

const GOLDEN = join(ROOT, 'test', 'golden');
const TENANT = '8f3c2a71-5b0e-4c3d-9a41-2d7e6b1f0c55';
const APP = '4b2d9e10-7c61-4f8a-b3d5-91e0a6c2f7d8';
/** Where the configuration is said to be in the golden files (the test's temp dir is replaced by it). */
const CONFIG_DIR = '/etc/m365-relay';

function golden(name: string, actual: string): void {
  const file = join(GOLDEN, name);
  if (process.env.UPDATE_GOLDEN === '1' || !existsSync(file)) {
    if (process.env.UPDATE_GOLDEN !== '1') assert.fail(`${file} is missing: run with UPDATE_GOLDEN=1 and review it`);
    writeFileSync(file, actual);
  }
  assert.equal(actual, readFileSync(file, 'utf8'));
}

/** Runs `setup` on a configuration with this account as `name` (or the top level for default). */
function setupOutput(t: { after(fn: () => void): void }, account: Record<string, unknown>, name = 'scans', files: Record<string, string> = {}, env: NodeJS.ProcessEnv = process.env) {
  const tmp = tempDir();
  t.after(tmp.remove);
  for (const [file, text] of Object.entries(files)) writeFileSync(join(tmp.dir, file), text);
  const main = { tenantId: TENANT, clientId: APP, clientSecret: 'x', mailbox: 'relay@contoso.com' };
  const raw = { listen: [{ port: 2525 }], spool: { dir: join(tmp.dir, 'spool') }, microsoft365: name === 'default' ? account : main, ...(name === 'default' ? {} : { accounts: { [name]: account } }) };
  const file = join(tmp.dir, 'relay.yaml');
  writeFileSync(file, stringify(raw));
  const out = cli(['setup', '--account', name, '--config', file], undefined, env);
  assert.equal(out.code, 0, out.stderr);
  return { stdout: out.stdout.split(tmp.dir).join(CONFIG_DIR), stderr: out.stderr };
}

describe('setup prints the Microsoft 365 steps of one account', () => {
  test('app-only SMTP with a client secret from the environment: the secret is never printed', (t) => {
    const out = setupOutput(
      t,
      { tenantId: TENANT, clientId: APP, clientSecret: '${SCANS_SECRET}', clientSecretExpires: '2027-05-01', mailbox: 'scans@contoso.com', sendAs: ['scanner@contoso.com', '@scans.contoso.com'] },
      'scans',
      {},
      { ...process.env, SCANS_SECRET: 'Sup3r~Secret.Value' },
    );
    assert.doesNotMatch(out.stdout, /Sup3r~Secret/);
    golden('setup-secret.txt', out.stdout);
  });

  test('app-only SMTP with a certificate (the top-level account)', (t) => {
    const out = setupOutput(t, { tenantId: TENANT, clientId: APP, clientCertificate: { certificateFile: 'relay-cert.pem', privateKeyFile: 'relay-key.pem' }, mailbox: 'relay@contoso.com' }, 'default', {
      'relay-cert.pem': '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n',
      'relay-key.pem': 'key',
    });
    golden('setup-certificate.txt', out.stdout);
  });

  test('Graph: Mail.Send, and Mail.ReadWrite for messages over 4 MB', (t) => {
    const out = setupOutput(t, { tenantId: TENANT, clientId: APP, clientSecret: 'literal-secret-in-file', mailbox: 'alerts@contoso.com', transport: 'graph' }, 'alerts');
    assert.doesNotMatch(out.stdout, /literal-secret-in-file/);
    golden('setup-graph.txt', out.stdout);
  });

  test('a delegated account in GCC High: its cloud, scopes and the login step', (t) => {
    const out = setupOutput(t, { tenantId: TENANT, clientId: APP, flow: 'device-code', cloud: 'usgov', mailbox: 'frontdesk@contoso.us' }, 'frontdesk');
    golden('setup-delegated-usgov.txt', out.stdout);
  });

  test('High Volume Email (transport hve): Exchange Mail.Send and Add-HVEAppAccess', () => {
    // The configuration cannot name transport: hve before that transport exists; the steps take the account's values.
    const account: SetupAccount = {
      name: 'bulk',
      tenantId: TENANT,
      clientId: APP,
      cloud: 'global',
      flow: 'client-credentials',
      transport: 'hve',
      mailbox: 'notices@contoso.com',
      sendAs: [],
      largeMessages: 'graph',
      hasClientSecret: true,
      clientSecretSource: '${HVE_SECRET}',
      clientSecretExpires: undefined,
      clientCertificate: undefined,
      authorityHost: 'https://login.microsoftonline.com',
      scope: 'https://outlook.office365.com/.default',
      graphScope: 'https://graph.microsoft.com/.default',
      smtpHost: 'smtp.hve.mx.microsoft',
      smtpPort: 587,
      graphHost: 'https://graph.microsoft.com',
    };
    golden('setup-hve.txt', setupSteps(account, `${CONFIG_DIR}/relay.yaml`));
  });

  test('--help, and the errors: no --account, an unknown account', (t) => {
    const help = cli(['setup', '--help']);
    assert.equal(help.code, 0);
    golden('setup-help.txt', help.stdout);
    const tmp = tempDir();
    t.after(tmp.remove);
    const file = join(tmp.dir, 'relay.yaml');
    writeFileSync(file, stringify({ listen: [{ port: 2525 }], spool: { dir: join(tmp.dir, 'spool') }, microsoft365: { tenantId: TENANT, clientId: APP, clientSecret: '${UNSET_SECRET}', mailbox: 'relay@contoso.com' } }));
    const missing = cli(['setup', '--config', file]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /setup needs --account NAME/);
    const unknown = cli(['setup', '--account', 'nope', '--config', file]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /there is no account "nope" \(known: default\)/);
    // An unresolvable secret does not stop setup (it needs none).
    const ok = cli(['setup', '--account', 'default', '--config', file]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /where clientSecret reads it \(\$\{UNSET_SECRET\}\)/);
  });
});
