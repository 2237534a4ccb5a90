// Several Microsoft 365 accounts, routes and sovereign-cloud presets in the configuration.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { accountsOf, CLOUDS, ConfigError, parseConfig, type RelayConfig } from '../src/config/index.js';
import { tempDir } from './helpers/tmp.js';

const SOURCE = '/etc/m365-relay/relay.yaml';
const head = `
listen:
  - port: 2525
spool:
  dir: ./spool
microsoft365:
  tenantId: contoso.onmicrosoft.com
  clientId: 11111111-2222-3333-4444-555555555555
  clientSecret: s3cret
  mailbox: relay@contoso.com
`;

function load(extra: string, env: NodeJS.ProcessEnv = {}): RelayConfig {
  return parseConfig(`${head}${extra}`, SOURCE, env);
}

function problems(extra: string, env: NodeJS.ProcessEnv = {}, text = `${head}${extra}`): string {
  try {
    parseConfig(text, SOURCE, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.message;
  }
  assert.fail('the configuration was accepted');
}

/** An account entry in flow YAML with the given extra keys. */
const account = (mailbox: string, extra = '') => `{ tenantId: contoso.onmicrosoft.com, clientId: 22222222-0000-0000-0000-000000000001, clientSecret: x, mailbox: ${mailbox}${extra} }`;

test('accounts and routes: the example of the issue, names kept exactly', () => {
  const config = load(`
accounts:
  scans:  { tenantId: contoso.onmicrosoft.com, clientId: c1, clientSecret: s1, mailbox: scans@contoso.com, transport: smtp }
  alerts: { tenantId: contoso.onmicrosoft.com, clientId: c2, clientSecret: s2, mailbox: alerts@contoso.com, transport: graph,
            graphHost: https://graph.microsoft.com }
routes:
  - { user: scanner, account: scans }
  - { network: 10.1.0.0/16, account: alerts }
  - { sender: "@ops.contoso.com", account: alerts }
`);
  assert.deepEqual([...accountsOf(config).keys()], ['default', 'scans', 'alerts']);
  assert.equal(config.microsoft365.name, 'default');
  assert.equal(config.accounts.scans?.name, 'scans');
  assert.equal(config.accounts.scans?.transport, 'smtp');
  assert.equal(config.accounts.alerts?.transport, 'graph');
  assert.equal(config.accounts.alerts?.graphHost, 'https://graph.microsoft.com');
  assert.equal(config.microsoft365.transport, 'smtp', 'smtp is the default transport');
  // Every key of microsoft365 has the same defaults in an account.
  assert.equal(config.accounts.scans?.maxConnections, 3);
  assert.deepEqual(config.accounts.scans?.rateLimit, { messages: 30, perSeconds: 60 });
  assert.equal(config.accounts.scans?.smtpHost, 'smtp.office365.com');
  assert.deepEqual(config.routes, [
    { user: 'scanner', account: 'scans' },
    { network: '10.1.0.0/16', account: 'alerts' },
    { sender: '@ops.contoso.com', account: 'alerts' },
  ]);
  assert.ok(Object.isFrozen(config.accounts.scans));
});

test('accounts: sign-in defaults: flow client-credentials, tokenCacheFile under the spool, paths relative to the file', (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  writeFileSync(join(tmp.dir, 'app.key'), 'key');
  writeFileSync(join(tmp.dir, 'app.crt'), 'crt');
  const text = `${head}
accounts:
  desk: { tenantId: t, clientId: c, flow: device-code, mailbox: desk@contoso.com, tokenCacheKey: "\${M365_RELAY_CACHE_KEY}" }
  certs: { tenantId: t, clientId: c, mailbox: c@contoso.com, tokenCacheFile: cache/certs.json,
           clientCertificate: { privateKeyFile: app.key, certificateFile: ${join(tmp.dir, 'app.crt')} } }
`;
  const config = parseConfig(text, join(tmp.dir, 'relay.yaml'), { M365_RELAY_CACHE_KEY: 'k3y' }).accounts;
  assert.equal(config.desk?.flow, 'device-code');
  assert.equal(config.desk?.clientSecret, undefined);
  assert.equal(config.desk?.tokenCacheKey, 'k3y');
  assert.equal(config.desk?.tokenCacheFile, join(tmp.dir, 'spool', 'signin', 'desk.json'));
  assert.equal(config.certs?.flow, 'client-credentials');
  assert.equal(config.certs?.tokenCacheFile, join(tmp.dir, 'cache', 'certs.json'));
  assert.equal(config.certs?.clientCertificate?.privateKeyFile, join(tmp.dir, 'app.key'));
});

test('cloud presets: each cloud resolves its hosts and scopes; app-only and delegated scopes differ', () => {
  const accounts = load(`
accounts:
  gov: ${account('gov@contoso.us', ', cloud: usgov')}
  dod: ${account('dod@contoso.mil', ', cloud: usgov-dod')}
  cn: ${account('cn@contoso.cn', ', cloud: china')}
  govuser: { tenantId: t, clientId: c, mailbox: u@contoso.us, cloud: usgov, flow: device-code }
  user: { tenantId: t, clientId: c, mailbox: u@contoso.com, flow: device-code }
`).accounts;
  const endpoints = (name: string) => {
    const a = accounts[name];
    assert.ok(a, name);
    return { authorityHost: a.authorityHost, smtpHost: a.smtpHost, graphHost: a.graphHost, scope: a.scope, graphScope: a.graphScope };
  };
  assert.deepEqual(endpoints('gov'), {
    authorityHost: 'https://login.microsoftonline.us',
    smtpHost: 'outlook.office365.us',
    graphHost: 'https://graph.microsoft.us',
    scope: 'https://outlook.office365.us/.default',
    graphScope: 'https://graph.microsoft.us/.default',
  });
  assert.deepEqual(endpoints('dod'), {
    authorityHost: 'https://login.microsoftonline.us',
    smtpHost: 'outlook-dod.office365.us',
    graphHost: 'https://dod-graph.microsoft.us',
    scope: 'https://outlook-dod.office365.us/.default',
    graphScope: 'https://dod-graph.microsoft.us/.default',
  });
  assert.deepEqual(endpoints('cn'), {
    authorityHost: 'https://login.chinacloudapi.cn',
    smtpHost: 'smtp.partner.outlook.cn',
    graphHost: 'https://microsoftgraph.chinacloudapi.cn',
    scope: 'https://partner.outlook.cn/.default',
    graphScope: 'https://microsoftgraph.chinacloudapi.cn/.default',
  });
  assert.equal(endpoints('govuser').scope, 'https://outlook.office365.us/SMTP.Send');
  assert.equal(endpoints('govuser').graphScope, 'https://graph.microsoft.us/Mail.Send');
  assert.equal(endpoints('user').scope, 'https://outlook.office.com/SMTP.Send');
  assert.equal(endpoints('user').graphScope, 'https://graph.microsoft.com/Mail.Send');
  // The top-level account without `cloud` is global, exactly as before.
  const global = load('').microsoft365;
  assert.equal(global.cloud, 'global');
  assert.equal(global.scope, CLOUDS.global.smtpAppScope);
  assert.equal(global.graphHost, 'https://graph.microsoft.com');
});

test('cloud presets: every explicit key wins over the preset', () => {
  const gov = load(`
accounts:
  gov: ${account('gov@contoso.us', ', cloud: usgov, smtpHost: smtp.office365.us, authorityHost: "https://login.example.us/", scope: custom-scope, graphHost: https://graph.example.us, graphScope: g-scope')}
`).accounts.gov;
  assert.equal(gov?.smtpHost, 'smtp.office365.us');
  assert.equal(gov?.authorityHost, 'https://login.example.us');
  assert.equal(gov?.scope, 'custom-scope');
  assert.equal(gov?.graphHost, 'https://graph.example.us');
  assert.equal(gov?.graphScope, 'g-scope');
  // An explicit value equal to the global default is not "defaulted" away by the cloud preset.
  const cn = load(`\naccounts:\n  cn: ${account('cn@contoso.cn', ', cloud: china, smtpHost: smtp.office365.com')}\n`).accounts.cn;
  assert.equal(cn?.smtpHost, 'smtp.office365.com');
  assert.equal(cn?.authorityHost, 'https://login.chinacloudapi.cn');
});

test('routes: an unknown account is named with the known ones, together with the other problems', () => {
  const message = problems(
    '',
    {},
    `${head.replace('  tenantId: contoso.onmicrosoft.com\n', '')}
accounts:
  scans: ${account('scans@contoso.com')}
routes:
  - { user: scanner, account: scans }
  - { sender: "@ops.contoso.com", account: alert }
`,
  );
  assert.match(message, /routes\[1\]\.account: unknown account "alert"; known accounts: default, scans/);
  assert.match(message, /microsoft365\.tenantId: is missing \(required\)/);
  assert.doesNotMatch(message, /routes\[0\]/);
});

test('routes: exactly one matcher each; networks and senders are checked', () => {
  const message = problems(`
accounts:
  scans: ${account('scans@contoso.com')}
routes:
  - { user: scanner, network: 10.0.0.0/8, account: scans }
  - { account: scans }
  - { network: 10.1.0.0/33, account: scans }
  - { sender: "ops.contoso.com", account: scans }
  - { user: scanner, acount: scans }
  - { user: scanner, account: default }
`);
  assert.match(message, /routes\[0\]: a route has exactly one of user, network, sender or recipientDomain \(this one has user and network\)/);
  assert.match(message, /routes\[1\]: a route needs one of user, network, sender or recipientDomain/);
  assert.match(message, /routes\[2\]\.network: "10\.1\.0\.0\/33" has an invalid prefix length/);
  assert.match(message, /routes\[3\]\.sender: must be an email address .* or a domain written as "@contoso\.com"/);
  assert.match(message, /routes\[4\]: unknown key "acount" \(did you mean "account"\?\)/);
  assert.doesNotMatch(message, /routes\[5\]/, 'default is always a known account');
});

test('accounts: names, the reserved name default, unknown keys with a hint, credentials per flow', () => {
  const message = problems(`
accounts:
  Scans: ${account('a@contoso.com')}
  default: ${account('b@contoso.com')}
  typo: ${account('c@contoso.com', ', trasport: graph')}
  both: ${account('d@contoso.com', ', clientCertificate: { privateKeyFile: k, certificateFile: c }')}
  none: { tenantId: t, clientId: c, mailbox: e@contoso.com }
  public: ${account('f@contoso.com', ', flow: device-code')}
  weird: ${account('g@contoso.com', ', transport: ews, cloud: germany, graphHost: http://graph.local')}
`);
  assert.match(message, /accounts\.Scans: an account name may use lowercase letters, digits, - and _ only/);
  assert.match(message, /accounts\.default: "default" is the top-level microsoft365; give this account another name/);
  assert.match(message, /accounts\.typo: unknown key "trasport" \(did you mean "transport"\?\)/);
  assert.match(message, /accounts\.both: give either clientSecret or clientCertificate, not both/);
  assert.match(message, /accounts\.none: a credential is missing: set clientSecret or clientCertificate/);
  assert.match(message, /accounts\.public: flow device-code signs in as a user \(public client\): remove clientSecret and clientCertificate/);
  assert.match(message, /accounts\.weird\.transport: must be smtp, graph or hve/);
  assert.match(message, /accounts\.weird\.cloud: must be one of global, usgov, usgov-dod, china/);
  assert.match(message, /accounts\.weird\.graphHost: must be an https:\/\/ URL/);
});

test('accounts: a certificate file of any account must be readable', () => {
  const message = problems(`
accounts:
  certs: { tenantId: t, clientId: c, mailbox: c@contoso.com, clientCertificate: { privateKeyFile: /nonexistent/app.key, certificateFile: /nonexistent/app.crt } }
`);
  assert.match(message, /accounts\.certs\.clientCertificate\.privateKeyFile: cannot read \/nonexistent\/app\.key \(ENOENT\)/);
});

test('Graph keys: largeMessages (graph by default, smtp allowed app-only) and retryAfterMax (10m by default)', () => {
  const config = load(`
accounts:
  alerts: ${account('alerts@contoso.com', ', transport: graph, largeMessages: smtp, retryAfterMax: 2m')}
`);
  assert.equal(config.microsoft365.largeMessages, 'graph', 'off by default');
  assert.equal(config.microsoft365.retryAfterMax, 600_000);
  assert.equal(config.accounts.alerts?.largeMessages, 'smtp');
  assert.equal(config.accounts.alerts?.retryAfterMax, 120_000);
  assert.match(problems(`
accounts:
  alerts: ${account('alerts@contoso.com', ', largeMessages: always')}
`), /largeMessages.*must be graph or smtp/);
  assert.match(problems(`
accounts:
  signed: { tenantId: contoso.onmicrosoft.com, clientId: c3, flow: device-code, mailbox: s@contoso.com, transport: graph, largeMessages: smtp }
`), /largeMessages: smtp needs an app-only account/);
  assert.match(problems(`
accounts:
  alerts: ${account('alerts@contoso.com', ', retryAfterMax: soon')}
`), /retryAfterMax must be a duration/);
});

test('transport hve: the HVE endpoint and limits by default (explicit keys win), a mailbox keeps its own', () => {
  const config = load(`
accounts:
  hve: ${account('notify@contoso.com', ', transport: hve')}
  hve2: ${account('notify2@contoso.com', ', transport: hve, maxRecipientsPerMessage: 20, smtpHost: smtp-hve.office365.com, tokenRenewBefore: 20m')}
routes:
  - { recipientDomain: [contoso.com, "@Fabrikam.COM", bücher.de], account: hve }
`);
  const hve = config.accounts.hve!;
  assert.equal(hve.smtpHost, 'smtp.hve.mx.microsoft');
  assert.equal(hve.smtpPort, 587);
  assert.equal(hve.scope, 'https://outlook.office365.com/.default');
  assert.equal(hve.maxRecipientsPerMessage, 50);
  assert.equal(hve.maxMessageSize, 10 * 1024 * 1024);
  assert.equal(hve.tokenRenewBefore, 15 * 60_000);
  assert.deepEqual(hve.rateLimit, { messages: 600, perSeconds: 60 });
  const hve2 = config.accounts.hve2!;
  assert.deepEqual([hve2.smtpHost, hve2.maxRecipientsPerMessage, hve2.tokenRenewBefore], ['smtp-hve.office365.com', 20, 20 * 60_000]);
  const mailbox = config.microsoft365;
  assert.deepEqual([mailbox.smtpHost, mailbox.maxRecipientsPerMessage, mailbox.maxMessageSize, mailbox.tokenRenewBefore, mailbox.rateLimit.messages], ['smtp.office365.com', 500, null, 5 * 60_000, 30]);
  assert.deepEqual(config.routes[0]?.recipientDomain, ['contoso.com', 'fabrikam.com', 'xn--bcher-kva.de']);
});

test('transport hve and recipientDomain: what is refused, with the fix', () => {
  assert.match(problems(`
accounts:
  hve: { tenantId: t, clientId: c, mailbox: notify@contoso.com, transport: hve, flow: device-code }
`), /transport hve signs in with an app-only token.*Add-HVEAppAccess/);
  assert.match(problems(`
accounts:
  hve: ${account('notify@contoso.com', ', transport: hve, cloud: usgov')}
`), /HVE endpoint.*set smtpHost|High Volume Email's endpoint is known for the global cloud only/);
  assert.match(problems(`
routes:
  - { recipientDomain: ["not a domain"], account: default }
`), /must be a domain name/);
  assert.match(problems(`
routes:
  - { recipientDomain: [contoso.com], sender: "@contoso.com", account: default }
`), /exactly one of user, network, sender or recipientDomain/);
});
