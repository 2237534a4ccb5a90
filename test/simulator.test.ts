// The built-in Microsoft 365 simulator, driven by real clients: msal-node's
// ConfidentialClientApplication against the token endpoint, nodemailer (and a small raw SMTP client
// for exact replies) against the submission endpoint. Needs the test CA (npm test creates it).
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { after, before, beforeEach, describe, test } from 'node:test';
import { ConfidentialClientApplication } from '@azure/msal-node';
import nodemailer from 'nodemailer';
import { generateClientCertificate, startSimulator, type Simulator, type SimulatorOptions } from '../src/simulator/index.js';
import { loadTestCa } from './helpers/testCa.js';
import { xoauth2Transport } from './helpers/xoauth2.js';
import { RawSmtp } from './helpers/rawSmtp.js';
import { waitFor } from './helpers/wait.js';

const CLIENT_ID = '11111111-2222-3333-4444-555555555555';
const SECRET = 'sim-secret';
const MAILBOX = 'relay@contoso.com';
const SCOPE = 'https://outlook.office365.com/.default';

const ca = loadTestCa();
const sims: Simulator[] = [];

async function newSim(options: SimulatorOptions = {}): Promise<Simulator> {
  const sim = await startSimulator({ ca, ...options });
  sims.push(sim);
  return sim;
}

after(async () => {
  await Promise.all(sims.map((s) => s.close()));
});

function msal(sim: Simulator, credential: { clientSecret: string } | { clientCertificate: { thumbprintSha256: string; privateKey: string; x5c: string } }, clientId = CLIENT_ID, tenant = sim.tenantId) {
  return new ConfidentialClientApplication({
    auth: { clientId, authority: `${sim.authorityHost}/${tenant}`, knownAuthorities: [new URL(sim.authorityHost).host], ...credential },
  });
}

async function tokenFor(sim: Simulator, options: { skipCache?: boolean; clientId?: string; secret?: string } = {}): Promise<string> {
  const result = await msal(sim, { clientSecret: options.secret ?? SECRET }, options.clientId).acquireTokenByClientCredential({ scopes: [SCOPE], skipCache: options.skipCache });
  assert.ok(result?.accessToken, 'msal returned a token');
  return result.accessToken;
}

/** What msal-node throws for a refused token request: a ServerError with these fields. */
interface MsalError {
  errorCode: string;
  errorMessage: string;
  status?: number;
}

async function msalFailure(promise: Promise<unknown>): Promise<MsalError> {
  try {
    await promise;
  } catch (err) {
    return err as MsalError;
  }
  assert.fail('the token request should have failed');
}

function transport(sim: Simulator, accessToken: string, user = MAILBOX) {
  return xoauth2Transport(sim, accessToken, user);
}

/** Sends with a fresh transport and closes it; resolves with the info or the error. */
async function send(sim: Simulator, accessToken: string, message: { from?: string; to?: string[]; raw?: Buffer | string }, user = MAILBOX) {
  const t = transport(sim, accessToken, user);
  try {
    const info = await t.sendMail({ envelope: { from: message.from ?? 'scanner@contoso.com', to: message.to ?? ['bob@contoso.com'] }, raw: message.raw ?? sampleRaw() });
    return { info, error: undefined };
  } catch (err) {
    return { info: undefined, error: err as Error & { responseCode?: number; response?: string; code?: string } };
  } finally {
    t.close();
  }
}

function sampleRaw(from = '"Scanner, 2nd floor" <scanner@contoso.com>'): Buffer {
  return Buffer.from(
    [
      `From: ${from}`,
      'To: Bob <bob@contoso.com>',
      'Subject: Scan 0042',
      'Message-ID: <scan-0042@scanner.lan>',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      'Scanned page attached (not really).',
      '.a line that starts with a dot',
      '..and two dots',
      'ünïcödé ✓',
      '',
    ].join('\r\n'),
  );
}

/** EHLO, STARTTLS (the simulator's certificate verified), EHLO, AUTH XOAUTH2: the final AUTH reply. */
async function authenticated(sim: Simulator, accessToken: string, user = MAILBOX): Promise<{ client: RawSmtp; reply: string }> {
  const client = await RawSmtp.connect(sim.smtpPort, sim.smtpHost);
  await client.command('EHLO client.lan');
  await client.starttls({ servername: 'localhost' });
  await client.command('EHLO client.lan');
  const reply = await client.command(`AUTH XOAUTH2 ${xoauth2(user, accessToken)}`);
  return { client, reply };
}

const xoauth2 = (user: string, token: string): string => Buffer.from(`user=${user}\x01auth=Bearer ${token}\x01\x01`).toString('base64');

describe('token endpoint (msal-node ConfidentialClientApplication)', () => {
  let sim: Simulator;
  let cert: { certPem: string; keyPem: string };
  let otherCert: { certPem: string; keyPem: string };
  const CERT_APP = 'cccccccc-0000-0000-0000-000000000001';
  const EXPIRED_APP = 'eeeeeeee-0000-0000-0000-000000000001';

  before(async () => {
    [cert, otherCert] = await Promise.all([generateClientCertificate('simulator test app'), generateClientCertificate('some other app')]);
    sim = await newSim({
      apps: [
        { clientId: CLIENT_ID, clientSecret: SECRET },
        { clientId: CERT_APP, certificatePem: cert.certPem },
        { clientId: EXPIRED_APP, clientSecret: 'old-secret', secretExpired: true },
      ],
    });
  });
  beforeEach(() => sim.reset());

  const sha256 = (pem: string): string => createHash('sha256').update(new X509Certificate(pem).raw).digest('hex').toUpperCase();

  test('client secret: a token, then msal serves it from its cache; skipCache fetches a new one', async () => {
    const cca = msal(sim, { clientSecret: SECRET });
    const before = sim.stats.tokensIssued;
    const first = await cca.acquireTokenByClientCredential({ scopes: [SCOPE] });
    assert.ok(first?.accessToken);
    assert.equal(first.fromCache, false);
    assert.equal(first.tokenType, 'Bearer');
    const lifetime = (first.expiresOn as Date).getTime() - Date.now();
    assert.ok(lifetime > 3_500_000 && lifetime <= 3_601_000, `expires in about an hour (${lifetime} ms)`);
    const cached = await cca.acquireTokenByClientCredential({ scopes: [SCOPE] });
    assert.equal(cached?.fromCache, true);
    assert.equal(cached?.accessToken, first.accessToken);
    const fresh = await cca.acquireTokenByClientCredential({ scopes: [SCOPE], skipCache: true });
    assert.equal(fresh?.fromCache, false);
    assert.notEqual(fresh?.accessToken, first.accessToken);
    assert.equal(sim.stats.tokensIssued, before + 2);
  });

  test('the outlook.office.com resource is accepted too', async () => {
    const result = await msal(sim, { clientSecret: SECRET }).acquireTokenByClientCredential({ scopes: ['https://outlook.office.com/.default'] });
    assert.ok(result?.accessToken);
  });

  test('certificate credentials (thumbprintSha256 + privateKey + x5c): a verified client assertion gets a token', async () => {
    const cca = msal(sim, { clientCertificate: { thumbprintSha256: sha256(cert.certPem), privateKey: cert.keyPem, x5c: cert.certPem } }, CERT_APP);
    const result = await cca.acquireTokenByClientCredential({ scopes: [SCOPE] });
    assert.ok(result?.accessToken);
  });

  test('certificate credentials signed by the wrong key, or with an unregistered certificate: AADSTS700027', async () => {
    // the registered certificate's thumbprint, but another key: the signature does not verify
    const forged = msal(sim, { clientCertificate: { thumbprintSha256: sha256(cert.certPem), privateKey: otherCert.keyPem, x5c: cert.certPem } }, CERT_APP);
    const e1 = await msalFailure(forged.acquireTokenByClientCredential({ scopes: [SCOPE] }));
    assert.equal(e1.errorCode, 'invalid_client');
    assert.match(e1.errorMessage, /AADSTS700027: Client assertion failed signature validation/);
    // a certificate that is not registered on the app
    const unknown = msal(sim, { clientCertificate: { thumbprintSha256: sha256(otherCert.certPem), privateKey: otherCert.keyPem, x5c: otherCert.certPem } }, CERT_APP);
    const e2 = await msalFailure(unknown.acquireTokenByClientCredential({ scopes: [SCOPE] }));
    assert.match(e2.errorMessage, /AADSTS700027: The certificate with identifier used to sign the client assertion is not registered/);
    // an app with only a secret cannot use a certificate
    const secretApp = msal(sim, { clientCertificate: { thumbprintSha256: sha256(cert.certPem), privateKey: cert.keyPem, x5c: cert.certPem } }, CLIENT_ID);
    const e3 = await msalFailure(secretApp.acquireTokenByClientCredential({ scopes: [SCOPE] }));
    assert.match(e3.errorMessage, /AADSTS700027/);
  });

  test('wrong secret: invalid_client AADSTS7000215', async () => {
    const err = await msalFailure(msal(sim, { clientSecret: 'the-secret-id-not-its-value' }).acquireTokenByClientCredential({ scopes: [SCOPE] }));
    assert.equal(err.errorCode, 'invalid_client');
    assert.equal(err.status, 401);
    assert.match(err.errorMessage, /AADSTS7000215: Invalid client secret provided\. Ensure the secret being sent in the request is the client secret value, not the client secret ID/);
    assert.match(err.errorMessage, /Trace ID: [0-9a-f-]{36}/);
  });

  test('expired secret: invalid_client AADSTS7000222', async () => {
    const err = await msalFailure(msal(sim, { clientSecret: 'old-secret' }, EXPIRED_APP).acquireTokenByClientCredential({ scopes: [SCOPE] }));
    assert.equal(err.errorCode, 'invalid_client');
    assert.match(err.errorMessage, new RegExp(`AADSTS7000222: The provided client secret keys for app '${EXPIRED_APP}' are expired`));
  });

  test('unknown app: unauthorized_client AADSTS700016', async () => {
    const stranger = '99999999-8888-7777-6666-555555555555';
    const err = await msalFailure(msal(sim, { clientSecret: SECRET }, stranger).acquireTokenByClientCredential({ scopes: [SCOPE] }));
    assert.equal(err.errorCode, 'unauthorized_client');
    assert.match(err.errorMessage, new RegExp(`AADSTS700016: Application with identifier '${stranger}' was not found in the directory`));
  });

  test('bad scope: invalid_scope AADSTS70011', async () => {
    const err = await msalFailure(msal(sim, { clientSecret: SECRET }).acquireTokenByClientCredential({ scopes: ['https://outlook.office365.com/SMTP.Send'] }));
    assert.equal(err.errorCode, 'invalid_scope');
    assert.match(err.errorMessage, /AADSTS70011/);
  });

  test('unknown tenant: invalid_request AADSTS90002', async () => {
    const err = await msalFailure(msal(sim, { clientSecret: SECRET }, CLIENT_ID, 'fabrikam.onmicrosoft.com').acquireTokenByClientCredential({ scopes: [SCOPE] }));
    assert.equal(err.errorCode, 'invalid_request');
    assert.match(err.errorMessage, /AADSTS90002: Tenant 'fabrikam\.onmicrosoft\.com' not found/);
  });

  test('tokenEndpointDown: 503 temporarily_unavailable (with Retry-After: 1, so msal recovers quickly)', async () => {
    sim.faults.tokenEndpointDown = true;
    const cca = msal(sim, { clientSecret: SECRET });
    const err = await msalFailure(cca.acquireTokenByClientCredential({ scopes: [SCOPE] }));
    assert.equal(err.errorCode, 'temporarily_unavailable');
    assert.equal(err.status, 503);
    sim.faults.tokenEndpointDown = false;
    await new Promise((resolve) => setTimeout(resolve, 1_100)); // msal's client-side throttle
    const result = await cca.acquireTokenByClientCredential({ scopes: [SCOPE] });
    assert.ok(result?.accessToken);
  });

  test('tokenEndpointDelayMs delays the answer', async () => {
    sim.faults.tokenEndpointDelayMs = 400;
    const started = Date.now();
    await tokenFor(sim, { skipCache: true });
    assert.ok(Date.now() - started >= 380, 'the answer was delayed');
  });

  test('Entra error body shape on the wire', async () => {
    const res = await fetch(`${sim.authorityHost}/${sim.tenantId}/oauth2/v2.0/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: CLIENT_ID, client_secret: 'nope', scope: SCOPE }),
    });
    assert.equal(res.status, 401);
    const body = (await res.json()) as Record<string, unknown>;
    assert.equal(body.error, 'invalid_client');
    assert.deepEqual(body.error_codes, [7000215]);
    assert.match(String(body.error_description), /^AADSTS7000215: .*\r\nTrace ID: \S+\r\nCorrelation ID: \S+\r\nTimestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/s);
    for (const key of ['timestamp', 'trace_id', 'correlation_id']) assert.equal(typeof body[key], 'string', key);
  });
});

describe('SMTP submission (nodemailer, STARTTLS + XOAUTH2)', () => {
  let sim: Simulator;
  let token: string;

  before(async () => {
    sim = await newSim({
      mailboxes: [
        { address: MAILBOX, apps: [CLIENT_ID], sendAs: ['@contoso.com', 'alerts@fabrikam.com'] },
        { address: 'locked@contoso.com', apps: [CLIENT_ID], smtpAuthEnabled: false },
        { address: 'other@contoso.com', apps: ['aaaaaaaa-0000-0000-0000-000000000000'] },
      ],
    });
    token = await tokenFor(sim);
  });
  beforeEach(() => sim.reset());

  test('a raw message with an explicit envelope is recorded byte for byte', async () => {
    const raw = sampleRaw();
    const { info, error } = await send(sim, token, { from: 'scanner@contoso.com', to: ['bob@contoso.com', 'carol@fabrikam.com'], raw });
    assert.equal(error, undefined);
    const [got] = await sim.waitForMessages(1, 5_000);
    assert.ok(got);
    assert.ok(got.raw.equals(raw), 'raw bytes identical (dot-stuffing undone)');
    assert.deepEqual(got.envelope, { from: 'scanner@contoso.com', to: ['bob@contoso.com', 'carol@fabrikam.com'] });
    assert.equal(got.mailbox, MAILBOX);
    assert.equal(got.clientId, CLIENT_ID);
    assert.ok(got.at instanceof Date);
    assert.match(info?.response ?? '', /^250 2\.0\.0 OK <[^>]+> \[Hostname=[^\]]+\]$/);
    assert.ok(info?.response.includes(got.queueId), 'the reply carries the queue id');
  });

  test('sendAs: an exact extra address is allowed, and so is the mailbox itself', async () => {
    const a = await send(sim, token, { from: 'alerts@fabrikam.com', raw: sampleRaw('Alerts <ALERTS@fabrikam.com>') });
    assert.equal(a.error, undefined);
    const b = await send(sim, token, { from: MAILBOX, raw: sampleRaw(MAILBOX) });
    assert.equal(b.error, undefined);
    await sim.waitForMessages(2, 5_000);
  });

  test('SendAs denied: envelope sender outside the mailbox and its sendAs -> 554 5.2.252', async () => {
    const { error } = await send(sim, token, { from: 'someone@fabrikam.com', raw: sampleRaw() });
    assert.equal(error?.responseCode, 554);
    assert.match(
      error?.response ?? '',
      /^554 5\.2\.252 SendAsDenied; relay@contoso\.com not allowed to send as someone@fabrikam\.com; STOREDRV\.Submission\.Exception:SendAsDeniedException\.MapiExceptionSendAsDenied$/,
    );
    assert.equal(sim.received.length, 0);
  });

  test('SendAs denied: the From header (folded, quoted display name) is checked too', async () => {
    const raw = Buffer.from(['Subject: x', 'From: "Mallory <boss@contoso.com>, the" (comment)', '\t<mallory@evil.example>', 'To: bob@contoso.com', '', 'body', ''].join('\r\n'));
    const { error } = await send(sim, token, { from: 'scanner@contoso.com', raw });
    assert.equal(error?.responseCode, 554);
    assert.match(error?.response ?? '', /not allowed to send as mallory@evil\.example;/);
  });

  test('revoked token -> 535 5.7.3 (a new token works)', async () => {
    const old = await tokenFor(sim, { skipCache: true });
    sim.revokeAllTokens();
    const { error } = await send(sim, old, {});
    assert.equal(error?.responseCode, 535);
    assert.equal(error?.response, '535 5.7.3 Authentication unsuccessful');
    const fresh = await tokenFor(sim, { skipCache: true });
    assert.equal((await send(sim, fresh, {})).error, undefined);
    token = fresh;
  });

  test('a token the simulator never issued, or for an app without access to the mailbox -> 535 5.7.3', async () => {
    const forged = await send(sim, 'eyJ0eXAiOiJKV1QifQ.forged.token', {});
    assert.equal(forged.error?.response, '535 5.7.3 Authentication unsuccessful');
    const other = await send(sim, token, {}, 'other@contoso.com');
    assert.equal(other.error?.response, '535 5.7.3 Authentication unsuccessful');
  });

  test('SMTP AUTH disabled for the mailbox -> 535 5.7.139', async () => {
    const { error } = await send(sim, token, {}, 'locked@contoso.com');
    assert.equal(error?.responseCode, 535);
    assert.equal(error?.response, '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox.');
  });

  test('AUTH LOGIN (basic auth) -> 535 5.7.139 basic authentication is disabled', async () => {
    const t = nodemailer.createTransport({ host: sim.smtpHost, port: sim.smtpPort, requireTLS: true, auth: { user: MAILBOX, pass: 'password' }, authMethod: 'LOGIN', connectionTimeout: 5_000, greetingTimeout: 5_000, socketTimeout: 5_000 });
    try {
      await assert.rejects(t.verify(), (err: Error & { responseCode?: number; response?: string }) => {
        assert.equal(err.responseCode, 535);
        assert.equal(err.response, '535 5.7.139 Authentication unsuccessful, basic authentication is disabled.');
        return true;
      });
    } finally {
      t.close();
    }
  });

  test('handshake: AUTH and MAIL are refused before STARTTLS; EHLO after TLS offers SIZE and AUTH', async () => {
    const client = await RawSmtp.connect(sim.smtpPort, sim.smtpHost);
    const { greeting } = client;
    try {
      assert.match(greeting, /^220 /);
      const ehlo = await client.command('EHLO client.lan');
      assert.match(ehlo, /^250-.*STARTTLS/ms);
      assert.match(ehlo, /SIZE 157286400/);
      assert.equal(await client.command(`AUTH XOAUTH2 ${xoauth2(MAILBOX, token)}`), '504 5.7.4 Unrecognized authentication type');
      assert.equal(await client.command('MAIL FROM:<scanner@contoso.com>'), '530 5.7.57 Client not authenticated to send mail');
      await client.starttls({ servername: 'localhost' });
      const secureEhlo = await client.command('EHLO client.lan');
      assert.match(secureEhlo, /AUTH LOGIN.*XOAUTH2/);
      assert.match(secureEhlo, /SIZE 157286400/);
      assert.doesNotMatch(secureEhlo, /STARTTLS/);
      assert.equal(await client.command('MAIL FROM:<scanner@contoso.com>'), '530 5.7.57 Client not authenticated to send mail');
      assert.match(await client.command(`AUTH XOAUTH2 ${xoauth2(MAILBOX, token)}`), /^235 /);
      assert.match(await client.command('MAIL FROM:<scanner@contoso.com>'), /^250 /);
      assert.match(await client.command('QUIT'), /^221 /);
    } finally {
      client.close();
    }
  });

  test('rejectRecipients: that recipient is refused at RCPT, the rest are delivered', async () => {
    sim.faults.rejectRecipients.set('ghost@contoso.com', '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup');
    const { info, error } = await send(sim, token, { to: ['bob@contoso.com', 'Ghost@contoso.com'] });
    assert.equal(error, undefined);
    assert.deepEqual(info?.accepted, ['bob@contoso.com']);
    assert.deepEqual(info?.rejected, ['Ghost@contoso.com']);
    const errors = (info as unknown as { rejectedErrors?: { response?: string }[] }).rejectedErrors ?? [];
    assert.equal(errors[0]?.response, '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup');
    const [got] = await sim.waitForMessages(1, 5_000);
    assert.deepEqual(got?.envelope.to, ['bob@contoso.com']);
  });

  test('failNext: the next N replies are transient and nothing is recorded; then accepted', async () => {
    sim.faults.failNext(1);
    const first = await send(sim, token, {});
    assert.equal(first.error?.responseCode, 451);
    assert.equal(first.error?.response, '451 4.7.500 Server busy. Please try again later.');
    assert.equal(sim.received.length, 0);
    sim.faults.failNext(1, '421 4.3.2 Service not available');
    assert.equal((await send(sim, token, {})).error?.responseCode, 421);
    assert.equal((await send(sim, token, {})).error, undefined);
    assert.equal(sim.received.length, 1);
  });

  test('rejectData: a permanent end-of-DATA reply for every message', async () => {
    sim.faults.rejectData = '552 5.3.4 Message size exceeds fixed maximum message size';
    const { error } = await send(sim, token, {});
    assert.equal(error?.responseCode, 552);
    assert.equal(error?.response, '552 5.3.4 Message size exceeds fixed maximum message size');
    assert.equal(sim.received.length, 0);
  });

  test('refuseConnections: TCP accepted and closed at once', async () => {
    sim.faults.refuseConnections = true;
    const before = sim.stats.connections;
    const { error } = await send(sim, token, {});
    assert.ok(error, 'sending failed');
    assert.equal(error.responseCode, undefined, `no SMTP reply at all (${error.message})`);
    assert.ok(sim.stats.connections > before);
    sim.faults.refuseConnections = false;
    assert.equal((await send(sim, token, {})).error, undefined);
  });

  test('dropBeforeFinalReply: the message is recorded but the client gets no final reply', async () => {
    sim.faults.dropBeforeFinalReply = 1;
    const { error } = await send(sim, token, {});
    assert.ok(error, 'the client saw the connection drop');
    assert.equal(error.responseCode, undefined);
    assert.equal(sim.received.length, 1, 'the simulator kept the message: a retry would duplicate it');
    assert.equal(sim.faults.dropBeforeFinalReply, 0);
    assert.equal((await send(sim, token, {})).error, undefined);
    assert.equal(sim.received.length, 2);
  });

  test('more than 3 concurrently authenticated sessions for one mailbox -> 432 4.3.2', async () => {
    const throttled = sim.stats.throttled;
    const sessions = await Promise.all([0, 1, 2, 3].map(() => authenticated(sim, token)));
    try {
      const replies = sessions.map((s) => s.reply).sort();
      assert.deepEqual(replies.slice(0, 3).map((r) => r.slice(0, 4)), ['235 ', '235 ', '235 ']);
      assert.equal(replies[3], '432 4.3.2 Concurrent connections limit exceeded. Visit https://aka.ms/concurrent_sending for more information.');
      assert.equal(sim.stats.maxConcurrentPerMailbox, 3);
      assert.equal(sim.stats.throttled, throttled + 1);
      // a closed session frees its slot
      const ok = sessions.find((s) => s.reply.startsWith('235'));
      ok?.client.close();
      await waitFor('a freed slot', () => ok?.client.closed === true, 5_000);
      await new Promise((resolve) => setTimeout(resolve, 50)); // smtp-server reports the close on setImmediate
      const again = await authenticated(sim, token);
      sessions.push(again);
      assert.match(again.reply, /^235 /);
    } finally {
      for (const s of sessions) s.client.close();
    }
  });

  test('waitForMessages rejects with a clear error on timeout', async () => {
    await assert.rejects(sim.waitForMessages(1, 100), /timed out after 100 ms waiting for 1 message\(s\) at the Microsoft 365 simulator; it has received 0/);
  });
});

describe('simulator limits and lifecycle', () => {
  test('rate limit per mailbox: MAIL FROM beyond it -> 450 4.7.0', async () => {
    const sim = await newSim({ rateLimit: { messages: 2, perSeconds: 60 } });
    const token = await tokenFor(sim);
    assert.equal((await send(sim, token, {})).error, undefined);
    assert.equal((await send(sim, token, {})).error, undefined);
    const { error } = await send(sim, token, {});
    assert.equal(error?.responseCode, 450);
    assert.equal(error?.response, '450 4.7.0 Message submission rate for this client has exceeded the configured limit');
    assert.equal(sim.stats.throttled, 1);
    assert.equal(sim.received.length, 2);
    await sim.close();
  });

  test('expired tokens are refused (and msal fetches a new one for a short-lived token)', async () => {
    const sim = await newSim({ tokenLifetimeSeconds: 1 });
    const token = await tokenFor(sim);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const { error } = await send(sim, token, {});
    assert.equal(error?.response, '535 5.7.3 Authentication unsuccessful');
    await sim.close();
  });

  test('close() ends open sessions and rejects pending waits; defaults are as documented', async () => {
    const sim = await newSim();
    assert.equal(sim.tenantId, 'contoso.onmicrosoft.com');
    assert.equal(sim.smtpHost, '127.0.0.1');
    assert.match(sim.authorityHost, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(sim.caPem, ca.certPem);
    const token = await tokenFor(sim);
    const { client, reply } = await authenticated(sim, token);
    assert.match(reply, /^235 /);
    const pending = sim.waitForMessages(1, 5_000);
    const started = Date.now();
    await sim.close();
    await assert.rejects(pending, /closed/);
    assert.ok(Date.now() - started < 2_000, 'close() did not wait for the client');
    await waitFor('the session to be dropped', () => client.closed, 5_000);
  });
});
