// Secrets from files in the configuration: ${file:/abs/path} (Docker secrets, root-owned key files)
// and ${credential:NAME} (systemd LoadCredential=, read from $CREDENTIALS_DIRECTORY).
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseConfig } from '../src/config/index.js';
import { configProblems } from './helpers/configProblems.js';
import { tempDir } from './helpers/tmp.js';

const config = (secret: string, extra = '') => `
listen:
  - port: 2525
spool:
  dir: /var/lib/m365-relay/spool
microsoft365:
  tenantId: contoso.onmicrosoft.com
  clientId: 11111111-2222-3333-4444-555555555555
  clientSecret: "${secret}"
  mailbox: relay@contoso.com
${extra}`;

const problems = (text: string, env: NodeJS.ProcessEnv = {}): string => configProblems(text, env);

function secretsDir(t: { after(fn: () => void): void }): string {
  const tmp = tempDir('m365-relay-secrets-');
  t.after(tmp.remove);
  return tmp.dir;
}

test('${file:PATH}: the file content, without the trailing newline echo leaves', (t) => {
  const dir = secretsDir(t);
  writeFileSync(join(dir, 'secret'), 'from~a.file\n', { mode: 0o600 });
  const parsed = parseConfig(config(`\${file:${join(dir, 'secret')}}`), '/etc/m365-relay/relay.yaml', {});
  assert.equal(parsed.microsoft365.clientSecret, 'from~a.file');
  // Mixed with text and ${VAR} in one value.
  const mixed = parseConfig(config(`\${PREFIX}-\${file:${join(dir, 'secret')}}`), '/etc/m365-relay/relay.yaml', { PREFIX: 'p' });
  assert.equal(mixed.microsoft365.clientSecret, 'p-from~a.file');
});

test('${credential:NAME}: read from $CREDENTIALS_DIRECTORY, as systemd LoadCredential= provides it', (t) => {
  const dir = secretsDir(t);
  mkdirSync(join(dir, 'creds'));
  writeFileSync(join(dir, 'creds', 'client-secret'), 'from-a-credential\r\n', { mode: 0o600 });
  const parsed = parseConfig(config('${credential:client-secret}'), '/etc/m365-relay/relay.yaml', { CREDENTIALS_DIRECTORY: join(dir, 'creds') });
  assert.equal(parsed.microsoft365.clientSecret, 'from-a-credential');
});

test('${credential:NAME} outside systemd: says how to provide it', () => {
  const message = problems(config('${credential:client-secret}'));
  assert.match(message, /microsoft365\.clientSecret: \$\{credential:client-secret\}: CREDENTIALS_DIRECTORY is not set; run under systemd with LoadCredential=client-secret:\/path\/to\/file/);
  assert.doesNotMatch(message, /must not be empty/, 'one problem per key');
});

test('a missing or empty file, a relative path, a credential name with a slash: each named with its key', (t) => {
  const dir = secretsDir(t);
  writeFileSync(join(dir, 'empty'), '\n');
  assert.match(problems(config(`\${file:${join(dir, 'nope')}}`)), new RegExp(`microsoft365\\.clientSecret: .*cannot read ${join(dir, 'nope')} \\(ENOENT\\)`));
  assert.match(problems(config(`\${file:${join(dir, 'empty')}}`)), /microsoft365\.clientSecret: .*empty is empty/);
  assert.match(problems(config('${file:secrets/client}')), /microsoft365\.clientSecret: .*must be given by an absolute path/);
  assert.match(problems(config('${credential:../etc/shadow}'), { CREDENTIALS_DIRECTORY: dir }), /microsoft365\.clientSecret: .*a credential name is one word/);
});

test("a secret read from a file never appears in a configuration error", (t) => {
  const dir = secretsDir(t);
  writeFileSync(join(dir, 'secret'), 'Very$ecretValue\n', { mode: 0o600 });
  const message = problems(config(`\${file:${join(dir, 'secret')}}`, 'maxMessageSize: big\n'));
  assert.match(message, /maxMessageSize/);
  assert.doesNotMatch(message, /Very\$ecretValue/);
});

test('queue commands read the file without the service secrets: unresolved references stay as written', () => {
  const text = config('${M365_CLIENT_SECRET}', '') + 'failureNotices:\n  adminAddress: it@contoso.com\n';
  assert.match(problems(text), /environment variable M365_CLIENT_SECRET is not set/);
  const parsed = parseConfig(text, '/etc/m365-relay/relay.yaml', {}, { keepUnresolved: true });
  assert.equal(parsed.spool.dir, '/var/lib/m365-relay/spool');
  assert.equal(parsed.microsoft365.clientSecret, '${M365_CLIENT_SECRET}', 'never a guessed value');
  const resolved = parseConfig(text, '/etc/m365-relay/relay.yaml', { M365_CLIENT_SECRET: 's3' }, { keepUnresolved: true });
  assert.equal(resolved.microsoft365.clientSecret, 's3', 'what can be resolved still is');
});
