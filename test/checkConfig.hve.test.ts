// check-config's description of High Volume Email accounts and recipient routes (no network).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeConfig } from '../src/cli/checkConfig.js';
import { parseConfig } from '../src/config/index.js';

const config = (routes: string, defaultTransport = 'smtp') =>
  parseConfig(
    `
listen: [{ port: 2525 }]
spool: { dir: /tmp/unused-spool }
microsoft365: { tenantId: t, clientId: c, clientSecret: s, mailbox: relay@contoso.com, transport: ${defaultTransport} }
accounts:
  hve: { tenantId: t, clientId: c2, clientSecret: s, mailbox: notify@contoso.com, transport: hve }
routes: ${routes}
`,
    '/etc/m365-relay/relay.yaml',
    {},
  );

test('check-config names the HVE endpoint, its limits and its recipient routes', () => {
  const text = describeConfig('relay.yaml', config('[{ recipientDomain: [contoso.com, contoso.onmicrosoft.com], account: hve }]'));
  assert.match(text, /account hve: notify@contoso\.com via High Volume Email smtp\.hve\.mx\.microsoft:587 \(internal recipients only.*50 recipients a transaction, messages up to 10 MB, token renewed 15 min before expiry\)/);
  assert.match(text, /recipients in contoso\.com, contoso\.onmicrosoft\.com -> hve/);
  assert.doesNotMatch(text, /WARNING/);
});

test('check-config warns when routes would give an HVE account external recipients, or nothing', () => {
  assert.match(describeConfig('relay.yaml', config('[{ sender: "@contoso.com", account: hve }]')), /WARNING: account hve is High Volume Email .*a user, network or sender route names it.*550 5\.5\.105/);
  assert.match(describeConfig('relay.yaml', config('[]')), /WARNING: account hve is High Volume Email but no route sends it mail/);
  assert.match(describeConfig('relay.yaml', config('[]', 'hve')), /WARNING: account default is High Volume Email .*it is the default account/);
});
