// `check-config --connect` against the built-in Microsoft 365 simulator: each misconfiguration an
// administrator meets, reproduced for real (Entra ID errors from the token endpoint, Exchange's
// replies over STARTTLS + XOAUTH2, an untrusted certificate, a closed port), and the explanation.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { SMTPServer } from 'smtp-server';
import { stringify } from 'yaml';
import { connectCheck } from '../src/cli/checkConfig.js';
import { inspectTokenClaims } from '../src/diagnostics/tokenClaims.js';
import { generateCa } from '../src/simulator/index.js';
import { generateServerCertificate } from '../src/simulator/certs.js';
import { CLI, rawConfigFor, simulatorSuite, toConfig } from './helpers/harness.js';

const run = promisify(execFile);
const APP = '11111111-2222-3333-4444-555555555555';
const EXPIRED_APP = '22222222-2222-3333-4444-555555555555';
const UNPERMITTED_APP = '33333333-2222-3333-4444-555555555555';

describe('check-config --connect', () => {
  const suite = simulatorSuite({
    rateLimit: null,
    apps: [
      { clientId: APP, clientSecret: 'sim-secret' },
      { clientId: EXPIRED_APP, clientSecret: 'old-secret', secretExpired: true },
      { clientId: UNPERMITTED_APP, clientSecret: 'other-secret' },
    ],
    mailboxes: [
      { address: 'relay@contoso.com', apps: [APP, EXPIRED_APP], sendAs: ['@contoso.com'] },
      { address: 'locked@contoso.com', apps: [APP], smtpAuthEnabled: false },
    ],
  });

  /** Runs the check in-process on the simulator config with `m365` overrides; returns exit code and text. */
  async function check(m365: Record<string, unknown>): Promise<{ code: number; text: string }> {
    const config = toConfig(rawConfigFor(suite.sim, join(suite.dir(), 'spool'), { microsoft365: m365 }));
    const out = new PassThrough();
    let text = '';
    out.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    const code = await connectCheck(config, out);
    return { code, text };
  }

  test('a working setup: token, STARTTLS and AUTH succeed, nothing is sent', async () => {
    suite.sim.reset();
    const before = suite.sim.stats.authSuccesses;
    const work = suite.dir();
    const file = join(work, 'relay.yaml');
    writeFileSync(file, stringify(rawConfigFor(suite.sim, join(work, 'spool'))));
    const { stdout } = await run(process.execPath, [CLI, 'check-config', '--config', file, '--connect'], { timeout: 30_000 });
    assert.match(stdout, /\[ok {2}\] token for app \S+ from https:\/\/127\.0\.0\.1:\d+/);
    assert.match(stdout, /\[ok {2}\] SMTP session with 127\.0\.0\.1:\d+ \(STARTTLS, AUTH XOAUTH2 as relay@contoso\.com\)/);
    assert.match(stdout, /Ready:/);
    assert.equal(suite.sim.stats.authSuccesses, before + 1, 'one real XOAUTH2 login');
    assert.equal(suite.sim.received.length, 0, 'no message was sent');
  });

  const cases: Array<{ name: string; m365: () => Record<string, unknown>; expect: RegExp[] }> = [
    { name: 'wrong client secret', m365: () => ({ clientSecret: 'not-the-secret' }), expect: [/AADSTS7000215/, /secret VALUE \(not its ID\)/] },
    { name: 'expired client secret', m365: () => ({ clientId: EXPIRED_APP, clientSecret: 'old-secret' }), expect: [/AADSTS7000222/, /has expired: create a new secret/] },
    { name: 'unknown app', m365: () => ({ clientId: '99999999-2222-3333-4444-555555555555' }), expect: [/AADSTS700016/, /not known in this tenant/] },
    { name: 'unknown tenant', m365: () => ({ tenantId: 'fabrikam.onmicrosoft.com' }), expect: [/AADSTS90002/, /check microsoft365\.tenantId/] },
    { name: 'wrong scope', m365: () => ({ scope: 'https://outlook.office365.com/SMTP.Send' }), expect: [/AADSTS70011/, /scope is invalid/] },
    {
      name: 'app without mailbox permission (or no Exchange service principal)',
      m365: () => ({ clientId: UNPERMITTED_APP, clientSecret: 'other-secret' }),
      expect: [/535 5\.7\.3/, /New-ServicePrincipal -AppId 33333333/, /Add-MailboxPermission -Identity relay@contoso\.com/],
    },
    { name: 'SMTP AUTH disabled for the mailbox', m365: () => ({ mailbox: 'locked@contoso.com' }), expect: [/5\.7\.139/, /Set-CASMailbox -Identity locked@contoso\.com -SmtpClientAuthenticationDisabled \$false/] },
  ];
  for (const c of cases) {
    test(`explains: ${c.name}`, async () => {
      const { code, text } = await check(c.m365());
      assert.equal(code, 1, text);
      assert.match(text, /\[FAIL\]/);
      for (const pattern of c.expect) assert.match(text, pattern, text);
      assert.match(text, /fix: /);
    });
  }

  test('explains: unreachable SMTP host (a closed port)', async () => {
    const port = await closedPort();
    const { code, text } = await check({ smtpPort: port });
    assert.equal(code, 1, text);
    assert.match(text, /\[ok {2}\] token/, 'the token step still succeeds');
    assert.match(text, new RegExp(`problem: 127\\.0\\.0\\.1:${port} could not be reached`));
    assert.match(text, /allow outbound TCP/);
  });

  test('explains: the SMTP server certificate is not trusted', async (t) => {
    // A real STARTTLS server whose certificate is signed by a CA this process does not trust.
    const strangerCa = await generateCa();
    const tls = await generateServerCertificate(strangerCa);
    const server = new SMTPServer({ key: tls.keyPem, cert: tls.certPem, authOptional: true, logger: false, onData: (s, _sess, cb) => s.resume().on('end', () => cb()) });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const port = (server.server.address() as { port: number }).port;
    const { code, text } = await check({ smtpPort: port });
    assert.equal(code, 1, text);
    assert.match(text, new RegExp(`TLS certificate of 127\\.0\\.0\\.1:${port} is not trusted`));
    assert.match(text, /NODE_EXTRA_CA_CERTS/);
  });

  test('explains: the token endpoint certificate is not trusted (CLI without the test CA)', async () => {
    const work = suite.dir();
    const file = join(work, 'relay.yaml');
    writeFileSync(file, stringify(rawConfigFor(suite.sim, join(work, 'spool'))));
    const env = { ...process.env };
    delete env.NODE_EXTRA_CA_CERTS;
    const result = await run(process.execPath, [CLI, 'check-config', '--config', file, '--connect'], { timeout: 30_000, env }).then(
      (r) => ({ code: 0, stdout: r.stdout }),
      (err: { code: number; stdout: string }) => ({ code: err.code, stdout: err.stdout }),
    );
    assert.equal(result.code, 1, result.stdout);
    assert.match(result.stdout, /\[FAIL\] token for app/);
    assert.match(result.stdout, /TLS certificate of https:\/\/127\.0\.0\.1:\d+ is not trusted/);
  });
});

describe('token claims (Entra ID JWTs, read only to explain)', () => {
  const jwt = (claims: Record<string, unknown>) => `e30.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;
  const account = { scope: 'https://outlook.office365.com/.default', graphScope: 'https://graph.microsoft.com/.default', clientId: APP, transport: 'smtp' as const, flow: 'client-credentials' as const };

  test('a token for Exchange with SMTP.SendAsApp passes', () => {
    const findings = inspectTokenClaims(jwt({ aud: 'https://outlook.office365.com', roles: ['SMTP.SendAsApp'], tid: 't' }), account);
    assert.deepEqual(findings.map((f) => f.ok), [true]);
  });

  test('a token for another API is flagged as the wrong scope', () => {
    const findings = inspectTokenClaims(jwt({ aud: 'https://graph.microsoft.com', roles: ['SMTP.SendAsApp'] }), account);
    assert.ok(findings.some((f) => !f.ok && /scope/.test(f.fix ?? '')));
  });

  test('a token without SMTP.SendAsApp says how to grant it', () => {
    const findings = inspectTokenClaims(jwt({ aud: '00000002-0000-0ff1-ce00-000000000000', roles: ['Mail.Read'] }), account);
    const missing = findings.find((f) => f.step === 'token permissions');
    assert.equal(missing?.ok, false);
    assert.equal(missing?.warning, true, 'a warning: RBAC for Applications grants access without the Entra role');
    assert.match(missing?.fix ?? '', /Grant admin consent/);
  });

  test('a delegated token is read for its scp scopes; a Graph token for Mail.Send', () => {
    const delegated = { ...account, scope: 'https://outlook.office.com/SMTP.Send', flow: 'device-code' as const };
    assert.deepEqual(inspectTokenClaims(jwt({ aud: 'https://outlook.office.com', scp: 'SMTP.Send User.Read' }), delegated).map((f) => f.ok), [true]);
    assert.match(inspectTokenClaims(jwt({ aud: 'https://outlook.office.com', scp: 'User.Read' }), delegated)[0]?.fix ?? '', /Delegated permissions > SMTP\.Send/);
    const graph = { ...account, transport: 'graph' as const };
    assert.deepEqual(inspectTokenClaims(jwt({ aud: 'https://graph.microsoft.com', roles: ['Mail.Send'] }), graph).map((f) => f.ok), [true]);
    assert.ok(inspectTokenClaims(jwt({ aud: 'https://outlook.office365.com', roles: ['Mail.Send'] }), graph).some((f) => f.step === 'token audience'));
  });

  test('an opaque token has nothing to read', () => {
    assert.deepEqual(inspectTokenClaims('sim.opaque', account), []);
  });
});

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
