// Delegated sign-in at the simulator, driven by real clients: msal-node's PublicClientApplication
// (device code, silent refresh), raw OAuth requests for exact answers, nodemailer for XOAUTH2.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { PublicClientApplication, type AuthenticationResult } from '@azure/msal-node';
import { startSimulator, type Simulator, type SimulatorOptions } from '../src/simulator/index.js';
import { loadTestCa } from './helpers/testCa.js';
import { waitFor } from './helpers/wait.js';
import { xoauth2Transport } from './helpers/xoauth2.js';

const PUBLIC_APP = 'aaaaaaaa-0000-0000-0000-000000000001';
const CONFIDENTIAL_APP = 'aaaaaaaa-0000-0000-0000-000000000002';
const USER = 'relay@contoso.com';
const OTHER_USER = 'alice@contoso.com';
const SMTP_SEND = 'https://outlook.office.com/SMTP.Send';
const GRAPH_SEND = 'https://graph.microsoft.com/Mail.Send';

const ca = loadTestCa();
const sims: Simulator[] = [];
after(() => Promise.all(sims.map((s) => s.close())));

async function newSim(options: SimulatorOptions = {}): Promise<Simulator> {
  const sim = await startSimulator({
    ca,
    rateLimit: null,
    deviceCodeIntervalSeconds: 0.1,
    apps: [{ clientId: PUBLIC_APP }, { clientId: CONFIDENTIAL_APP, clientSecret: 'secret' }],
    mailboxes: [
      { address: USER, apps: [], sendAs: ['@contoso.com'] },
      { address: OTHER_USER, apps: [] },
    ],
    ...options,
  });
  sims.push(sim);
  return sim;
}

function pca(sim: Simulator, clientId = PUBLIC_APP): PublicClientApplication {
  return new PublicClientApplication({ auth: { clientId, authority: `${sim.authorityHost}/${sim.tenantId}`, knownAuthorities: [new URL(sim.authorityHost).host] } });
}

/** msal's device-code flow; `act` plays the user once the code is shown. */
async function deviceCodeSignIn(sim: Simulator, act: (userCode: string) => void, options: { clientId?: string; scope?: string } = {}) {
  const app = pca(sim, options.clientId);
  const result = await app.acquireTokenByDeviceCode({
    scopes: [options.scope ?? SMTP_SEND],
    timeout: 10,
    deviceCodeCallback: (response) => setImmediate(() => act(response.userCode)),
  });
  assert.ok(result);
  return { app, result };
}

async function post(sim: Simulator, path: string, params: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${sim.authorityHost}/${sim.tenantId}/oauth2/v2.0/${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(params),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function smtpSend(sim: Simulator, user: string, accessToken: string, from = user) {
  const transport = xoauth2Transport(sim, accessToken, user);
  try {
    return await transport.sendMail({ envelope: { from, to: ['bob@contoso.com'] }, raw: `From: ${from}\r\nTo: bob@contoso.com\r\nSubject: hi\r\n\r\nhello\r\n` });
  } finally {
    transport.close();
  }
}

const firstLine = (body: Record<string, unknown>): string => String(body.error_description).split('\r\n')[0] ?? '';

describe('simulated Entra ID: device code', () => {
  test('the device code endpoint answers RFC 8628 fields and Microsoft-style message', async () => {
    const sim = await newSim();
    const { status, body } = await post(sim, 'devicecode', { client_id: PUBLIC_APP, scope: `${SMTP_SEND} openid profile offline_access` });
    assert.equal(status, 200);
    assert.match(String(body.user_code), /^[A-Z0-9]{9}$/);
    assert.equal(typeof body.device_code, 'string');
    assert.equal(body.verification_uri, `${sim.authorityHost}/devicelogin`);
    assert.equal(body.expires_in, 900);
    assert.equal(body.interval, 0.1);
    assert.match(String(body.message), new RegExp(`open the page ${body.verification_uri as string} and enter the code ${body.user_code as string} to authenticate`));
    assert.deepEqual(sim.pendingUserCodes(), [body.user_code]);
    assert.equal(sim.stats.deviceCodesIssued, 1);

    const unknownApp = await post(sim, 'devicecode', { client_id: 'nobody', scope: SMTP_SEND });
    assert.deepEqual([unknownApp.status, unknownApp.body.error_codes], [400, [700016]]);
    const badScope = await post(sim, 'devicecode', { client_id: PUBLIC_APP, scope: 'https://outlook.office365.com/.default' });
    assert.deepEqual([badScope.body.error, badScope.body.error_codes], ['invalid_scope', [70011]]);
    const twoResources = await post(sim, 'devicecode', { client_id: PUBLIC_APP, scope: `${SMTP_SEND} ${GRAPH_SEND}` });
    assert.deepEqual(twoResources.body.error_codes, [28000]);
  });

  test('msal-node polls while pending; approval yields access, refresh and id tokens for the user', async () => {
    const sim = await newSim();
    let polls = 0;
    const { result } = await deviceCodeSignIn(sim, (userCode) => {
      // Let msal poll a few times first: it must keep polling on authorization_pending.
      void waitFor('a few polls', () => (polls = sim.stats.tokenRequests) >= 3, 5_000).then(() => sim.approveDeviceCode(userCode, 'Relay@Contoso.com'));
    });
    assert.ok(polls >= 3);
    assert.equal(result.account?.username, USER);
    assert.equal(result.account?.idTokenClaims?.preferred_username, USER);
    assert.match(result.account?.homeAccountId ?? '', /^[0-9a-f-]{36}\.[0-9a-f-]{36}$/, 'uid.utid from client_info');
    assert.deepEqual(result.scopes, [SMTP_SEND]);
    assert.deepEqual(sim.pendingUserCodes(), []);
    // The approved code is redeemed once.
    assert.throws(() => sim.approveDeviceCode('BCDFGHJKL', USER), /no device code/);
  });

  test('declined and expired codes, and approval by someone who is not a user of the tenant', async () => {
    const sim = await newSim({ deviceCodeLifetimeSeconds: 1 });
    const declined = await deviceCodeSignIn(sim, (code) => sim.denyDeviceCode(code)).catch((e: unknown) => e as { errorCode: string; errorMessage: string });
    assert.deepEqual([(declined as { errorCode: string }).errorCode, (declined as { errorMessage: string }).errorMessage], ['post_request_failed', 'authorization_declined']);

    const code = await post(sim, 'devicecode', { client_id: PUBLIC_APP, scope: SMTP_SEND });
    assert.throws(() => sim.approveDeviceCode(String(code.body.user_code), 'mallory@fabrikam.com'), /not a user/);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    assert.throws(() => sim.approveDeviceCode(String(code.body.user_code), USER), /expired/);
    const poll = await post(sim, 'token', { grant_type: 'urn:ietf:params:oauth:grant-type:device_code', client_id: PUBLIC_APP, device_code: String(code.body.device_code) });
    assert.deepEqual([poll.status, poll.body.error], [400, 'expired_token']);
  });

  test('an app without "Allow public client flows" gets AADSTS7000218 at its poll', async () => {
    const sim = await newSim();
    const code = await post(sim, 'devicecode', { client_id: CONFIDENTIAL_APP, scope: SMTP_SEND });
    assert.equal(code.status, 200);
    const poll = await post(sim, 'token', { grant_type: 'device_code', client_id: CONFIDENTIAL_APP, device_code: String(code.body.device_code) });
    assert.deepEqual([poll.status, poll.body.error, poll.body.error_codes], [401, 'invalid_client', [7000218]]);
    const pending = await post(sim, 'token', { grant_type: 'device_code', client_id: CONFIDENTIAL_APP, client_secret: 'secret', device_code: String(code.body.device_code) });
    assert.equal(pending.body.error, 'authorization_pending', 'with its secret the confidential app may poll');
  });
});

describe('simulated Entra ID: refresh tokens', () => {
  async function signedIn(sim: Simulator, user = USER): Promise<{ app: PublicClientApplication; result: AuthenticationResult; refreshToken: () => string }> {
    const { app, result } = await deviceCodeSignIn(sim, (code) => sim.approveDeviceCode(code, user));
    const refreshToken = () => Object.values(JSON.parse(app.getTokenCache().serialize()).RefreshToken as Record<string, { secret: string }>)[0]?.secret ?? '';
    return { app, result, refreshToken };
  }

  test('each refresh returns a new refresh token; the used one is retired', async () => {
    const sim = await newSim();
    const { app, result, refreshToken } = await signedIn(sim);
    const first = refreshToken();
    assert.match(first, /^simrt\./);
    const renewed = await app.acquireTokenSilent({ account: result.account!, scopes: [SMTP_SEND], forceRefresh: true });
    assert.equal(renewed.fromCache, false);
    assert.notEqual(renewed.accessToken, result.accessToken);
    assert.notEqual(refreshToken(), first, 'msal stored the rotated refresh token');
    assert.equal(sim.stats.refreshTokensRedeemed, 1);

    const reuse = await post(sim, 'token', { grant_type: 'refresh_token', client_id: PUBLIC_APP, refresh_token: first, scope: SMTP_SEND });
    assert.deepEqual([reuse.status, reuse.body.error, reuse.body.error_codes], [400, 'invalid_grant', [70000]]);

    // The same refresh token also yields a Graph Mail.Send token (a refresh token spans resources).
    const graph = await post(sim, 'token', { grant_type: 'refresh_token', client_id: PUBLIC_APP, refresh_token: refreshToken(), scope: `${GRAPH_SEND} offline_access` });
    assert.equal(graph.status, 200);
    assert.equal(graph.body.scope, GRAPH_SEND);
    assert.equal(typeof graph.body.refresh_token, 'string');
    assert.equal(graph.body.id_token, undefined, 'no openid, no id_token');
  });

  test('revoked (AADSTS50173), inactive (AADSTS700082) and sign-in frequency (AADSTS70043) refresh tokens', async () => {
    const sim = await newSim({ refreshTokenLifetimeSeconds: 1 });
    const a = await signedIn(sim);
    const b = await signedIn(sim, OTHER_USER);
    assert.equal(sim.revokeRefreshTokens(USER), 1, 'only that user');
    const revoked = await post(sim, 'token', { grant_type: 'refresh_token', client_id: PUBLIC_APP, refresh_token: a.refreshToken(), scope: SMTP_SEND });
    assert.equal(revoked.body.error, 'invalid_grant');
    assert.match(firstLine(revoked.body), /^AADSTS50173: The provided grant has expired due to it being revoked/);
    const revokedViaMsal = await a.app.acquireTokenSilent({ account: a.result.account!, scopes: [SMTP_SEND], forceRefresh: true }).catch((e: unknown) => e as { errorCode: string; errorMessage: string });
    assert.equal((revokedViaMsal as { errorCode: string }).errorCode, 'invalid_grant');

    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const inactive = await post(sim, 'token', { grant_type: 'refresh_token', client_id: PUBLIC_APP, refresh_token: b.refreshToken(), scope: SMTP_SEND });
    assert.match(firstLine(inactive.body), /^AADSTS700082: The refresh token has expired due to inactivity\. The token was issued on .* and was inactive for 0\.00:00:0\d\.$/);

    const strict = await newSim({ signInFrequencySeconds: 1 });
    const c = await signedIn(strict);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const frequency = await post(strict, 'token', { grant_type: 'refresh_token', client_id: PUBLIC_APP, refresh_token: c.refreshToken(), scope: SMTP_SEND });
    assert.match(firstLine(frequency.body), /^AADSTS70043: /);
  });

  test('a confidential-only app cannot refresh without its credential', async () => {
    const sim = await newSim();
    const refresh = await post(sim, 'token', { grant_type: 'refresh_token', client_id: CONFIDENTIAL_APP, refresh_token: 'simrt.whatever', scope: SMTP_SEND });
    assert.deepEqual(refresh.body.error_codes, [7000218]);
  });
});

describe('simulated Exchange Online: delegated XOAUTH2', () => {
  test("a delegated SMTP.Send token authenticates its user's mailbox only", async () => {
    const sim = await newSim();
    const { result } = await deviceCodeSignIn(sim, (code) => sim.approveDeviceCode(code, USER));
    const info = await smtpSend(sim, USER, result.accessToken);
    assert.match(info.response, /^250 2\.0\.0 OK/);
    const [message] = await sim.waitForMessages(1);
    assert.equal(message?.mailbox, USER);
    assert.equal(message?.user, USER);
    assert.equal(message?.clientId, PUBLIC_APP);

    const asOther = await smtpSend(sim, OTHER_USER, result.accessToken).catch((e: unknown) => e as { responseCode: number; response: string });
    assert.equal((asOther as { responseCode: number }).responseCode, 535);
    assert.match((asOther as { response: string }).response, /5\.7\.3 Authentication unsuccessful/);
  });

  test('a Graph Mail.Send token is not an SMTP token', async () => {
    const sim = await newSim();
    const { result } = await deviceCodeSignIn(sim, (code) => sim.approveDeviceCode(code, USER), { scope: GRAPH_SEND });
    assert.deepEqual(result.scopes, [GRAPH_SEND]);
    const err = await smtpSend(sim, USER, result.accessToken).catch((e: unknown) => e as { responseCode: number });
    assert.equal((err as { responseCode: number }).responseCode, 535);
  });
});
