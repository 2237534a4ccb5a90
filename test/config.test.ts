import assert from 'node:assert/strict';
import { test } from 'node:test';
import { configProblems } from './helpers/configProblems.js';
import { parseConfig } from '../src/config/index.js';

const base = (m365: string, extra = '') => `
listen:
  - port: 2525
spool:
  dir: ./spool
${extra}
microsoft365:
${m365}
`;
const good = `  tenantId: contoso.onmicrosoft.com
  clientId: 11111111-2222-3333-4444-555555555555
  clientSecret: \${M365_CLIENT_SECRET}
  mailbox: Relay@Contoso.com
  sendAs: [alerts@contoso.com, "@Contoso.com"]`;

const problems = (text: string, env: NodeJS.ProcessEnv = { M365_CLIENT_SECRET: 's3cret' }): string => configProblems(text, env);

test('config: defaults, ${VAR} from the environment, paths relative to the file, frozen', () => {
  const config = parseConfig(base(good), '/etc/m365-relay/relay.yaml', { M365_CLIENT_SECRET: 's3cret' });
  assert.equal(config.microsoft365.clientSecret, 's3cret');
  assert.equal(config.microsoft365.mailbox, 'relay@contoso.com');
  assert.deepEqual(config.microsoft365.sendAs, ['alerts@contoso.com', '@contoso.com']);
  assert.equal(config.microsoft365.smtpHost, 'smtp.office365.com');
  assert.equal(config.microsoft365.smtpPort, 587);
  assert.equal(config.microsoft365.scope, 'https://outlook.office365.com/.default');
  assert.equal(config.microsoft365.authorityHost, 'https://login.microsoftonline.com');
  assert.deepEqual(config.microsoft365.rateLimit, { messages: 30, perSeconds: 60 });
  assert.equal(config.microsoft365.maxConnections, 3);
  assert.equal(config.listen[0]?.host, '0.0.0.0');
  assert.equal(config.maxMessageSize, 36_700_160);
  assert.equal(config.spool.dir, '/etc/m365-relay/spool');
  assert.equal(config.retry.maxAge, 5 * 86_400_000);
  assert.deepEqual(config.retry.schedule, [15, 60, 120, 300, 600, 900, 1800, 3600].map((s) => s * 1000));
  assert.ok(Object.isFrozen(config.microsoft365));
  assert.throws(() => {
    (config.microsoft365 as { mailbox: string }).mailbox = 'x';
  });
});

test('config: a missing key is named', () => {
  const message = problems(base(good.replace('  tenantId: contoso.onmicrosoft.com\n', '')));
  assert.match(message, /microsoft365\.tenantId: is missing \(required\)/);
});

test('config: a bad CIDR is named with its value', () => {
  const message = problems(base(good, 'allowNetworks: [192.168.10.0/24, 10.0.0.0/33, printer]'));
  assert.match(message, /allowNetworks\[1\]: "10\.0\.0\.0\/33" has an invalid prefix length/);
  assert.match(message, /allowNetworks\[2\]: "printer" is not an IP network/);
});

test('config: an unset ${VAR} names the variable and the key', () => {
  const message = problems(base(good), {});
  assert.match(message, /microsoft365\.clientSecret: environment variable M365_CLIENT_SECRET is not set/);
  assert.doesNotMatch(message, /must not be empty/);
});

test('config: secret and certificate together are refused', () => {
  const message = problems(base(`${good}\n  clientCertificate: { privateKeyFile: key.pem, certificateFile: cert.pem }`));
  assert.match(message, /microsoft365: give either clientSecret or clientCertificate, not both/);
});

test('config: no credential at all is refused', () => {
  const message = problems(base(good.replace('  clientSecret: ${M365_CLIENT_SECRET}\n', '')));
  assert.match(message, /a credential is missing: set clientSecret or clientCertificate/);
});

test('config: unknown keys are refused with a hint', () => {
  const message = problems(base(`${good}\n  rateLimt: { messages: 10, perSeconds: 60 }`, 'alowNetworks: []'));
  assert.match(message, /microsoft365: unknown key "rateLimt" \(did you mean "rateLimit"\?\)/);
  assert.match(message, /unknown key "alowNetworks" \(did you mean "allowNetworks"\?\)/);
});

test('config: users need exactly one of password and passwordHash; files must be readable', () => {
  const message = problems(base(`${good}\n  clientSecret2: x`.replace('\n  clientSecret2: x', ''), 'users:\n  - username: scanner\n'));
  assert.match(message, /users\[0\]: give exactly one of passwordHash/);
  const tls = problems(base(good).replace('  - port: 2525', '  - port: 2525\n    tls: { cert: /nonexistent/cert.pem, key: /nonexistent/key.pem }'));
  assert.match(tls, /listen\[0\]\.tls\.cert: cannot read \/nonexistent\/cert\.pem \(ENOENT\)/);
});

test('config: YAML syntax errors and non-mappings are reported, not thrown raw', () => {
  assert.match(problems('listen: [\n'), /YAML syntax/);
  assert.match(problems('- just\n- a list\n'), /must be a YAML mapping/);
  assert.match(problems(base(good.replace('mailbox: Relay@Contoso.com', 'mailbox: relay'))), /microsoft365\.mailbox: must be an email address/);
  assert.match(problems(base(good.replace('mailbox:', 'authorityHost: http://login.example\n  mailbox:'))), /authorityHost: must be an https:\/\/ URL/);
});
