// The web console in a real browser: Playwright (playwright-core) driving Debian's Chromium headless
// against the real daemon (node dist/cli.js run) and the built-in Microsoft 365 simulator, all on
// loopback. Screenshots of each page go to test-artifacts/console/ (ignored by git).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { hashPassword } from '../src/access/passwords.js';
import { artifactPath, launchBrowser } from './helpers/browser.js';
import { rawConfigFor, sendMessage, simulatorSuite, spawnRelay, type ChildRelay } from './helpers/harness.js';
import type { LogLine } from './helpers/logs.js';
import { waitFor } from './helpers/wait.js';

const PASSWORD = 'correct horse battery staple';

describe('web console in Chromium', () => {
  const suite = simulatorSuite();
  let relay: ChildRelay;
  let base: string;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  let page: Page;
  const shot = (name: string, target: Page = page) => target.screenshot({ path: artifactPath('console', name), fullPage: true });

  before(async () => {
    const dir = suite.dir();
    relay = await spawnRelay(
      rawConfigFor(suite.sim, `${dir}/spool`, {
        http: { host: '127.0.0.1', port: 0 },
        console: { users: [{ username: 'admin', passwordHash: await hashPassword(PASSWORD) }] },
        limits: { maxAuthFailures: 4, authFailureWindow: '10m', authBlockDuration: '10m' },
        // A deferred message waits for the administrator's retry, not for the schedule.
        retry: { schedule: ['1h'] },
      }),
      dir,
    );
    const http = await relay.waitForLog('the http listener', (l) => l.event === 'http-listening');
    base = `http://127.0.0.1:${http.port as number}`;
    browser = await launchBrowser();
    page = browser.context.pages()[0] ?? (await browser.context.newPage());
  });

  after(async () => {
    await browser?.close();
    await relay?.stop();
  });

  const delivered = (id: string) => relay.waitForLog(`delivery of ${id}`, (l) => l.event === 'delivered' && l.msgId === id, 20_000);
  const queuedId = (response: string) => /queued as (\S+)/.exec(response)?.[1] ?? assert.fail(`no queue id in ${response}`);
  /** A message Exchange defers (451 at RCPT); the fault is cleared once it is, so a retry delivers it. */
  const deferredMessage = async (to: string) => {
    suite.sim.faults.rejectRecipients.set(to, '451 4.7.500 Server busy. Please try again later.');
    const id = queuedId((await sendMessage(relay.port, { to: [to] })).response);
    await relay.waitForLog(`the deferral of ${id}`, (l) => l.event === 'deferred' && l.msgId === id, 20_000);
    suite.sim.faults.rejectRecipients.clear();
    return id;
  };

  test('an unauthenticated request gets the login page, a plain form with username and password', async () => {
    const res = await fetch(`${base}/queue`, { redirect: 'manual' });
    assert.equal(res.status, 303);
    assert.equal(res.headers.get('location'), '/login?next=%2Fqueue');
    const api = await fetch(`${base}/api/message/0MIB2K3F4A1B2C3D4E5/status`);
    assert.equal(api.status, 401);

    const response = await page.goto(`${base}/queue`);
    assert.equal(response?.status(), 200);
    assert.match(page.url(), /\/login\?next=%2Fqueue$/);
    assert.equal(await page.locator('form input[name="username"]').count(), 1);
    assert.equal(await page.locator('form input[name="password"][type="password"]').count(), 1);
    // Security headers on every page: no framing, no inline script, nothing cached.
    const headers = response?.headers() ?? {};
    assert.match(headers['content-security-policy'] ?? '', /script-src 'self'/);
    assert.doesNotMatch(headers['content-security-policy'] ?? '', /unsafe-inline/);
    assert.match(headers['content-security-policy'] ?? '', /frame-ancestors 'none'/);
    assert.equal(headers['x-frame-options'], 'DENY');
    assert.equal(headers['cache-control'], 'no-store');
    await shot('login');
  });

  test('log in: a session cookie that is HttpOnly, SameSite=Strict and expires; back to the page asked for', async () => {
    await page.fill('input[name="username"]', 'admin');
    await page.fill('input[name="password"]', PASSWORD);
    await Promise.all([page.waitForURL(`${base}/queue`), page.click('button[type="submit"]')]);
    const [cookie] = await browser.context.cookies(base);
    assert.ok(cookie, 'a session cookie');
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Strict');
    assert.ok(cookie.expires > Date.now() / 1000 && cookie.expires < Date.now() / 1000 + 13 * 3600, `expires within 12 h: ${cookie.expires}`);
    assert.ok(relay.logs.some((l) => l.event === 'console-login' && l.user === 'admin'));
    assert.ok(!JSON.stringify(relay.logs).includes(PASSWORD), 'the password is never logged');
  });

  test('the overview shows the delivered count and the token expiry of the account', async () => {
    const info = await sendMessage(relay.port, { to: ['alice@contoso.com'] });
    await delivered(queuedId(info.response));
    const readyz = (await (await fetch(`${base}/readyz`)).json()) as { checks: { token: { expiresOn: string } } };
    const expiresOn = readyz.checks.token.expiresOn;
    assert.ok(expiresOn, '/readyz knows the token');

    await page.goto(`${base}/`);
    // The mail log may record the delivery a moment after the relay logged it.
    await waitFor('the delivered count on the overview', async () => {
      await page.reload();
      return (await page.locator('#delivered-24h .n').textContent())?.trim() === '1';
    }, 15_000, 250);
    const token = await page.locator('tr[data-account="default"] td.token').textContent();
    assert.ok(token?.includes(`expires ${expiresOn.slice(0, 19).replace('T', ' ')} UTC`), `token cell: ${token}`);
    assert.ok(!(await page.content()).includes('sim-secret'), 'the client secret is never shown');
    await shot('overview');
  });

  test('retry a deferred message from the queue page and see it delivered; the action is logged with the administrator', async () => {
    const id = await deferredMessage('later@contoso.com');

    await page.goto(`${base}/queue?state=deferred`);
    const row = page.locator(`tr[data-id="${id}"]`);
    assert.match((await row.textContent()) ?? '', /deferred/);
    await shot('queue');
    await row.getByRole('button', { name: 'Retry' }).click();
    await page.waitForURL(/\/confirm\?/);
    await shot('confirm');
    await Promise.all([page.waitForURL(/\/queue\?.*done=retry/), page.getByRole('button', { name: 'Yes, retry' }).click()]);
    assert.match((await page.locator('[role="status"]').textContent()) ?? '', new RegExp(`${id}: queued for delivery now`));

    await delivered(id);
    const action = await relay.waitForLog('the admin-action line', (l: LogLine) => l.event === 'admin-action' && l.msgId === id);
    assert.equal(action.user, 'admin');
    assert.equal(action.action, 'retry');
    assert.equal(relay.logs.filter((l) => l.event === 'admin-action' && l.msgId === id).length, 1, 'logged once');
    assert.ok(relay.logs.some((l) => l.event === 'console-action' && l.msgId === id && l.user === 'admin' && l.action === 'retry'));
    assert.ok(suite.sim.received.some((m) => m.envelope.to.includes('later@contoso.com')));
    await page.goto(`${base}/queue`);
    assert.equal(await page.locator(`tr[data-id="${id}"]`).count(), 0, 'the delivered message left the queue');

    // Its history, from the mail log: received, the deferral, the administrator's retry, delivered.
    await page.goto(`${base}/message/${id}`);
    await waitFor('the delivery in the history', async () => {
      await page.reload();
      return /delivered/.test((await page.locator('#history').textContent().catch(() => '')) ?? '');
    }, 15_000, 250);
    const history = (await page.locator('#history').textContent()) ?? '';
    for (const kind of ['received', 'deferred', 'delivered']) assert.match(history, new RegExp(kind), `history has ${kind}: ${history}`);
    assert.match(history, /admin/);
    assert.match((await page.locator('#replies').textContent()) ?? '', /451 4\.7\.500/);
    await shot('message');
  });

  test("a deferred message's page: envelope, route, headers (not the body); hold, then delete from there", async () => {
    const id = await deferredMessage('held@contoso.com');
    await page.goto(`${base}/message/${id}`);
    assert.match((await page.locator('#envelope').textContent()) ?? '', /held@contoso\.com/);
    assert.match((await page.locator('#route').textContent()) ?? '', /default/);
    assert.match((await page.locator('#headers').textContent()) ?? '', /Subject: Scan from MFP 3rd floor/);
    assert.doesNotMatch((await page.locator('#headers').textContent()) ?? '', /Scanned document attached/, 'the body is not shown');
    await page.getByRole('button', { name: 'Hold' }).click();
    await Promise.all([page.waitForURL(new RegExp(`/message/${id}\\?`)), page.getByRole('button', { name: 'Yes, hold' }).click()]);
    assert.match((await page.locator('h1').textContent()) ?? '', /hold/);
    await page.getByRole('button', { name: 'Delete' }).click();
    await Promise.all([page.waitForURL(/\/queue\?done=delete/), page.getByRole('button', { name: 'Yes, delete' }).click()]);
    await relay.waitForLog('the delete action', (l) => l.event === 'admin-action' && l.msgId === id && l.action === 'delete' && l.user === 'admin');
  });

  test('a POST without the CSRF token (or with a wrong one, or from another site) is refused', async () => {
    const id = await deferredMessage('csrf@contoso.com');
    // The browser's own request context: the session cookie goes with it.
    for (const form of [{ id, action: 'delete' }, { id, action: 'delete', _csrf: 'not-the-token' }] as Array<Record<string, string>>) {
      const res = await page.request.post(`${base}/queue/action`, { form, maxRedirects: 0 });
      assert.equal(res.status(), 403, JSON.stringify(form));
    }
    await page.goto(`${base}/queue`);
    const token = await page.locator('input[name="_csrf"]').first().inputValue();
    const foreign = await page.request.post(`${base}/queue/action`, { form: { id, action: 'delete', _csrf: token }, headers: { Origin: 'http://evil.example' }, maxRedirects: 0 });
    assert.equal(foreign.status(), 403);
    assert.equal(await page.locator(`tr[data-id="${id}"]`).count(), 1, 'the message is still queued');
    assert.ok(relay.logs.some((l) => l.event === 'console-csrf-refused'));
  });

  test('the mail log search finds messages as the CLI does', async () => {
    await page.goto(`${base}/log?to=alice%40contoso.com&state=delivered&since=1h`);
    const rows = page.locator('#log tbody tr');
    await waitFor('a search result', async () => (await rows.count()) > 0, 10_000);
    assert.match((await rows.first().textContent()) ?? '', /alice@contoso\.com/);
    await page.goto(`${base}/log?to=nobody%40nowhere.example`);
    assert.equal(await page.locator('#log').count(), 0);
    const bad = await page.goto(`${base}/log?since=yesterday-ish`);
    assert.equal(bad?.status(), 400);
    await page.goto(`${base}/log`);
    await shot('log');
  });

  test('send a test message and follow it to its outcome on the page', async () => {
    await page.goto(`${base}/send-test`);
    await shot('send-test');
    await page.fill('input[name="to"]', 'bob@contoso.com');
    await Promise.all([page.waitForURL(/\/send-test\/[0-9A-Z]{19}/), page.getByRole('button', { name: 'Send' }).click()]);
    await page.locator('#follow-state', { hasText: 'delivered' }).waitFor({ timeout: 30_000 });
    assert.ok(suite.sim.received.some((m) => m.envelope.to.includes('bob@contoso.com')));
    await shot('send-test-outcome');
  });

  test("at a phone's width every page fits the screen", async () => {
    const phone = await browser.context.newPage();
    await phone.setViewportSize({ width: 390, height: 844 });
    for (const path of ['/', '/queue', '/log', '/send-test']) {
      await phone.goto(`${base}${path}`);
      // Runs in the page (the tests' types have no DOM library).
      const overflow = await phone.evaluate('document.documentElement.scrollWidth - window.innerWidth') as number;
      assert.ok(overflow <= 0, `${path} is ${overflow}px wider than the phone`);
    }
    await shot('overview-phone', phone);
    await phone.close();
  });

  test('log out ends the session', async () => {
    await page.goto(`${base}/`);
    await Promise.all([page.waitForURL(/\/login/), page.getByRole('button', { name: 'Log out' }).click()]);
    await page.goto(`${base}/queue`);
    assert.match(page.url(), /\/login/);
  });

  test('too many bad logins are slowed down, then refused even with the right password', async () => {
    const attempt = (password: string) => fetch(`${base}/login`, { method: 'POST', body: new URLSearchParams({ username: 'admin', password }), redirect: 'manual' });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await attempt(`wrong ${i}`)).status);
    assert.deepEqual(statuses, [401, 401, 401, 429]);
    const blocked = await attempt(PASSWORD);
    assert.equal(blocked.status, 429);
    assert.ok(Number(blocked.headers.get('retry-after')) > 0);
    assert.equal(blocked.headers.get('set-cookie'), null);
    await page.goto(`${base}/login`);
    await page.fill('input[name="username"]', 'admin');
    await page.fill('input[name="password"]', PASSWORD);
    await page.click('button[type="submit"]');
    assert.match((await page.locator('[role="alert"]').textContent()) ?? '', /Too many failed logins/);
    await shot('login-blocked');
    assert.ok(relay.logs.some((l) => l.event === 'console-login-blocked'));
  });
});
