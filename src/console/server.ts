// The web console (issue 14): pages served by the relay's http listener, inside the daemon. Each
// request is authenticated by a session cookie; each state-changing one carries the session's CSRF
// token; queue actions go through the same spool operations as the `queue` commands.
import { existsSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AuthThrottle } from '../access/authThrottle.js';
import { hashPassword, verifyPassword } from '../access/passwords.js';
import { toCorruptItem, toListItem, PAST_TENSE, type QueueListItem } from '../cli/queueList.js';
import { submitTestMessage, type ListenerTarget } from '../cli/sendTest.js';
import { accountsOf, type RelayConfig } from '../config/index.js';
import type { Logger } from '../observability/logger.js';
import type { Credential } from '../oauth/credentialExpiry.js';
import type { LaneHealth } from '../relay/index.js';
import { QueueAdmin, QueueCommandError, type Spool } from '../spool/index.js';
import { isMessageId } from '../spool/ids.js';
import { ASSETS } from './assets.js';
import { last24Hours } from './chart.js';
import { formatTime } from './format.js';
import { DEFAULT_SEARCH_LIMIT, type MailLogReader } from '../maillog/index.js';
import { confirmPage, followPage, loginPage, logPage, messagePage, overviewPage, problemPage, queuePage, sendTestPage, type MessageStatus, type Viewer } from './pages.js';
import { filterQueue, isActionName, parseLogQuery, plainHttpRefusal, safeBack, type QueueFilter } from './policy.js';
import { csrfMatches, SESSION_MAX_MS, SessionStore, type Session } from './sessions.js';

/** What the console reads from the running relay; each piece keeps its one owner. */
export interface ConsoleSources {
  /** The configuration in force (it changes on reload). */
  config(): RelayConfig;
  spool: Spool;
  health(): Record<string, LaneHealth>;
  credentials(): Credential[];
  queueFigures(): Promise<{ counts: Record<string, number>; oldestReceivedAt: number | null }>;
  /** Null when the mail log is off (or cannot be read right now). */
  mailLog(): Pick<MailLogReader, 'search' | 'show' | 'perHour' | 'stateCounts'> | null;
  /** Where the relay's own SMTP listener is reached, for the test message. */
  listener(): ListenerTarget;
  /** After a queue action: the daemon logs the action and re-reads the queue at once. */
  wake(): void;
}

export interface ConsoleOptions {
  sources: ConsoleSources;
  logger: Logger;
  /** The http listener has a certificate: cookies are Secure, logins from anywhere are fine. */
  tls: boolean;
  now?: () => number;
}

export interface WebConsole {
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
}

const COOKIE = 'm365relay_session';
const MAX_BODY = 64 * 1024;
/** Rows on the queue page: the oldest first, the rest behind the filters. */
const QUEUE_PAGE_ROWS = 500;

const SECURITY_HEADERS = {
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'X-Frame-Options': 'DENY',
  'X-Content-Type-Options': 'nosniff',
  // same-origin, not no-referrer: with no-referrer, browsers send "Origin: null" on the console's own forms.
  'Referrer-Policy': 'same-origin',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

class HttpProblem extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function createConsole(options: ConsoleOptions): WebConsole {
  const { sources, logger, tls } = options;
  const now = options.now ?? Date.now;
  const sessions = new SessionStore(now);
  const limits = sources.config().limits;
  // Guessing administrators' passwords is slowed down and then blocked per client, as for SMTP AUTH.
  const throttle = new AuthThrottle({ maxFailures: limits.maxAuthFailures, windowMs: limits.authFailureWindow, blockMs: limits.authBlockDuration });
  // An unknown user name costs as much as a wrong password: timing does not tell which names exist.
  let decoy: Promise<string> | null = null;

  const users = () => new Map((sources.config().console?.users ?? []).map((u) => [u.username, u.passwordHash]));

  function send(res: ServerResponse, status: number, body: string, headers: Record<string, string | string[]> = {}): void {
    res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store', ...SECURITY_HEADERS, ...headers });
    res.end(body);
  }

  function json(res: ServerResponse, status: number, value: unknown): void {
    res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...SECURITY_HEADERS });
    res.end(JSON.stringify(value));
  }

  function redirect(res: ServerResponse, location: string, headers: Record<string, string | string[]> = {}): void {
    res.writeHead(303, { Location: location, 'Cache-Control': 'no-store', ...SECURITY_HEADERS, ...headers });
    res.end();
  }

  function cookie(value: string, maxAgeMs: number): string {
    return `${COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${Math.max(0, Math.floor(maxAgeMs / 1000))}${tls ? '; Secure' : ''}`;
  }

  function sessionOf(req: IncomingMessage): Session | null {
    const id = cookies(req)[COOKIE];
    const session = sessions.touch(id);
    if (!session) return null;
    // A reload that removed the administrator ends their sessions.
    if (!users().has(session.username)) {
      sessions.end(session.id);
      return null;
    }
    return session;
  }

  async function login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const form = await readForm(req);
    const client = req.socket.remoteAddress ?? 'unknown';
    const next = safeBack(form.get('next'), '/');
    const username = (form.get('username') ?? '').trim();
    const password = form.get('password') ?? '';
    const refusal = plainHttpRefusal({ tls, allowPlainHttp: sources.config().console?.allowPlainHttp ?? false, clientAddress: client });
    if (refusal) {
      logger.warn({ event: 'console-login-refused', client, reason: 'plain http' }, 'console login refused: plain HTTP from another host');
      return send(res, 403, loginPage({ next, refusal }));
    }
    if (throttle.isBlocked(client, now())) {
      logger.warn({ event: 'console-login-blocked', client }, 'console login refused: too many failed logins from this address');
      return send(res, 429, loginPage({ next, username, error: 'Too many failed logins from your address. Wait a few minutes, then try again.' }), { 'Retry-After': String(Math.ceil(limits.authBlockDuration / 1000)) });
    }
    const hash = users().get(username);
    const ok = hash !== undefined ? await verifyPassword(password, hash) : await verifyPassword(password, await (decoy ??= hashPassword('decoy password'))).then(() => false);
    if (!ok) {
      const { delayMs, blocked } = throttle.recordFailure(client, now());
      // An unknown name is not logged: it may be a password typed into the wrong field.
      const who = hash !== undefined ? username : '(unknown user)';
      logger.warn({ event: 'console-login-failed', client, user: who, blocked }, `console login failed for ${who} from ${client}`);
      // Each failure answers later than the one before; then the address is blocked for a while.
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      return send(res, blocked ? 429 : 401, loginPage({ next, username, error: blocked ? 'Too many failed logins from your address. Wait a few minutes, then try again.' : 'Wrong user name or password.' }));
    }
    throttle.recordSuccess(client);
    const session = sessions.create(username);
    logger.info({ event: 'console-login', user: username, client }, `${username} logged in to the console from ${client}`);
    return redirect(res, next, { 'Set-Cookie': cookie(session.id, SESSION_MAX_MS) });
  }

  // --- pages -----------------------------------------------------------------------------------

  async function overview(res: ServerResponse, viewer: Viewer): Promise<void> {
    const at = now();
    const config = sources.config();
    const figures = await sources.queueFigures();
    const log = sources.mailLog();
    const health = sources.health();
    const credentials = sources.credentials();
    const accounts = [...accountsOf(config).values()].map((a) => ({
      name: a.name,
      transport: a.transport,
      flow: a.flow,
      mailbox: a.mailbox,
      health: health[a.name] ?? null,
      credentials: credentials.filter((c) => c.account === a.name),
      lastDelivery: log?.search({ account: a.name, state: 'delivered', limit: 1 })[0]?.updatedAt ?? null,
    }));
    send(
      res,
      200,
      overviewPage(
        {
          now: at,
          spool: figures.counts,
          oldestReceivedAt: figures.oldestReceivedAt,
          log: log?.stateCounts() ?? null,
          hours: log ? last24Hours(log.perHour(at - 24 * 3_600_000, at), at) : null,
          accounts,
        },
        viewer,
      ),
    );
  }

  async function queueItems(): Promise<QueueListItem[]> {
    const { spool } = sources;
    return [...(await spool.list()).map(toListItem), ...(await spool.listCorrupt()).map(toCorruptItem)];
  }

  async function queue(res: ServerResponse, url: URL, viewer: Viewer): Promise<void> {
    const filter: QueueFilter = {};
    for (const key of ['state', 'account', 'from', 'to'] as const) {
      const value = url.searchParams.get(key)?.trim();
      if (value) filter[key] = value;
    }
    const items = filterQueue(await queueItems(), filter);
    send(
      res,
      200,
      queuePage({ now: now(), items, total: items.length, shown: Math.min(items.length, QUEUE_PAGE_ROWS), filter, accounts: [...accountsOf(sources.config()).keys()], done: doneText(url) }, viewer),
    );
  }

  function doneText(url: URL): string | null {
    const action = url.searchParams.get('done');
    const id = url.searchParams.get('id');
    return isActionName(action) && id && isMessageId(id) ? `${id}: ${PAST_TENSE[action]}` : null;
  }

  async function find(id: string): Promise<QueueListItem | null> {
    const found = await new QueueAdmin(sources.spool).find(id);
    if (found) return toListItem(found.entry);
    const corrupt = (await sources.spool.listCorrupt()).find((c) => c.id === id);
    return corrupt ? toCorruptItem(corrupt) : null;
  }

  async function confirm(res: ServerResponse, url: URL, viewer: Viewer): Promise<void> {
    const id = url.searchParams.get('id') ?? '';
    const action = url.searchParams.get('action');
    if (!isMessageId(id) || !isActionName(action)) throw new HttpProblem(400, 'This link does not name a message and an action.');
    send(res, 200, confirmPage({ id, action, back: safeBack(url.searchParams.get('back')), summary: await find(id) }, viewer));
  }

  async function act(res: ServerResponse, form: URLSearchParams, viewer: Viewer): Promise<void> {
    const id = form.get('id') ?? '';
    const action = form.get('action');
    const back = safeBack(form.get('back'));
    if (!isMessageId(id) || !isActionName(action)) throw new HttpProblem(400, 'The request does not name a message and an action.');
    // The same operations as the `queue` commands, recorded under the administrator's name.
    const admin = new QueueAdmin(sources.spool, { user: viewer.username });
    try {
      await admin[action](id);
    } catch (err) {
      if (!(err instanceof QueueCommandError)) throw err;
      logger.warn({ event: 'console-action-refused', user: viewer.username, action, msgId: id, reason: err.message }, `console: ${action} ${id} by ${viewer.username} refused: ${err.message}`);
      return send(res, 409, problemPage(`Could not ${action} ${id}`, err.message, viewer, { href: back, label: 'Back' }));
    }
    logger.info({ event: 'console-action', user: viewer.username, action, msgId: id }, `console: ${action} ${id} by ${viewer.username}`);
    sources.wake();
    const target = new URL(back, 'http://console');
    target.searchParams.set('done', action);
    target.searchParams.set('id', id);
    redirect(res, action === 'delete' && target.pathname.startsWith('/message/') ? `/queue?done=delete&id=${id}` : `${target.pathname}${target.search}`);
  }

  async function message(res: ServerResponse, id: string, url: URL, viewer: Viewer): Promise<void> {
    if (!isMessageId(id)) throw new HttpProblem(404, `"${id}" is not a queue id.`);
    const log = sources.mailLog();
    const admin = new QueueAdmin(sources.spool);
    const inSpool = await admin.find(id);
    // Only the header block is read from the data file, never the body.
    const shown = inSpool ? await admin.show(id).catch(() => null) : null;
    const corrupt = !shown ? (await sources.spool.listCorrupt()).find((c) => c.id === id) : undefined;
    const spool = shown
      ? { item: toListItem(shown.entry), meta: shown.entry.meta, headers: shown.headers }
      : corrupt?.meta
        ? { item: toCorruptItem(corrupt), meta: corrupt.meta, headers: '' }
        : null;
    const history = log?.show(id) ?? null;
    if (!spool && !history) throw new HttpProblem(404, `There is no message ${id} in the spool${log ? ' or the mail log' : ''}.`);
    send(res, 200, messagePage({ now: now(), id, spool, log: history, mailLogOn: log !== null, done: doneText(url) }, viewer));
  }

  function logSearch(res: ServerResponse, url: URL, viewer: Viewer): void {
    const { filter, problem } = parseLogQuery(url.searchParams, now());
    const log = sources.mailLog();
    const results = log && !problem ? log.search(filter) : log ? [] : null;
    send(res, problem ? 400 : 200, logPage({ params: url.searchParams, results, problem, limit: filter.limit ?? DEFAULT_SEARCH_LIMIT }, viewer));
  }

  async function sendTest(res: ServerResponse, form: URLSearchParams, viewer: Viewer): Promise<void> {
    const to = (form.get('to') ?? '').trim();
    const from = (form.get('from') ?? '').trim();
    const address = /^[^\s<>@"]+@[^\s<>@"]+$/;
    if (!address.test(to) || !address.test(from)) {
      return send(res, 400, sendTestPage({ to, from, error: 'give a recipient and a sender as plain email addresses (name@example.com)', hint: null }, viewer));
    }
    const sent = await submitTestMessage(sources.listener(), { from, to });
    logger.info({ event: 'console-send-test', user: viewer.username, to, from, msgId: sent.ok ? sent.queuedAs : undefined, accepted: sent.ok }, `console: test message to ${to} by ${viewer.username}`);
    if (!sent.ok || !sent.queuedAs) {
      return send(res, 502, sendTestPage({ to, from, error: sent.response, hint: sent.ok ? null : sent.hint }, viewer));
    }
    redirect(res, `/send-test/${sent.queuedAs}?to=${encodeURIComponent(to)}`);
  }

  /** Where a message is now, for the test message's page. */
  async function statusOf(id: string): Promise<MessageStatus> {
    const item = await find(id);
    if (item) {
      const detail =
        item.state === 'failed'
          ? `failed: ${item.lastError ?? 'no reason recorded'}`
          : item.state === 'corrupt'
            ? `moved to corrupt/: ${item.lastError ?? ''}`
            : item.lastError
              ? `deferred after ${item.attempts} attempt(s): ${item.lastError}; next attempt ${item.nextAttemptAt ? formatTime(item.nextAttemptAt) : 'now'}`
              : item.state === 'hold'
                ? 'held by an administrator'
                : 'waiting for delivery';
      return { id, state: item.state, final: item.state === 'failed' || item.state === 'corrupt', detail };
    }
    if (existsSync(sources.spool.dataPath(id))) return { id, state: 'queued', final: false, detail: 'changing state' };
    const log = sources.mailLog();
    if (!log) return { id, state: 'delivered', final: true, detail: 'delivered to Exchange Online (it left the spool)' };
    const recorded = log.show(id)?.message;
    if (recorded && ['delivered', 'failed', 'deleted'].includes(recorded.state)) {
      return { id, state: recorded.state, final: true, detail: recorded.lastReply ? `upstream reply: ${recorded.lastReply}` : '' };
    }
    return { id, state: 'queued', final: false, detail: 'it left the queue; waiting for the mail log to record the outcome' };
  }

  // --- routing ---------------------------------------------------------------------------------

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://console');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const isGet = method === 'GET' || method === 'HEAD';

    const asset = ASSETS[path];
    if (asset && isGet) {
      if (req.headers['if-none-match'] === asset.etag) {
        res.writeHead(304, { ETag: asset.etag });
        return void res.end();
      }
      res.writeHead(200, { 'Content-Type': asset.type, 'Cache-Control': 'no-cache', ETag: asset.etag, ...SECURITY_HEADERS });
      return void res.end(asset.body);
    }
    if (!isGet && method !== 'POST') {
      res.setHeader('Allow', 'GET, HEAD, POST');
      throw new HttpProblem(405, 'This method is not used here.');
    }
    if (method === 'POST' && !sameOrigin(req)) throw new HttpProblem(403, 'This request came from another site and was refused.');

    if (path === '/login') {
      if (method === 'POST') return login(req, res);
      if (sessionOf(req)) return redirect(res, '/');
      const refusal = plainHttpRefusal({ tls, allowPlainHttp: sources.config().console?.allowPlainHttp ?? false, clientAddress: req.socket.remoteAddress });
      return send(res, 200, loginPage({ next: safeBack(url.searchParams.get('next'), '/'), refusal }));
    }

    const session = sessionOf(req);
    if (!session) {
      if (path.startsWith('/api/')) return json(res, 401, { error: 'log in first' });
      if (isGet) return redirect(res, `/login?next=${encodeURIComponent(path + url.search)}`);
      throw new HttpProblem(403, 'You are not logged in (or the session has expired). Log in and try again.');
    }
    const viewer: Viewer = { username: session.username, csrf: session.csrf };

    if (method === 'POST') {
      const form = await readForm(req);
      if (!csrfMatches(session, form.get('_csrf'))) {
        logger.warn({ event: 'console-csrf-refused', user: session.username, path, client: req.socket.remoteAddress }, 'console: a request without the right CSRF token was refused');
        throw new HttpProblem(403, 'This form has expired or did not come from this console. Reload the page and try again.');
      }
      switch (path) {
        case '/logout':
          sessions.end(session.id);
          logger.info({ event: 'console-logout', user: session.username }, `${session.username} logged out of the console`);
          return redirect(res, '/login', { 'Set-Cookie': cookie('', 0) });
        case '/queue/action':
          return act(res, form, viewer);
        case '/send-test':
          return sendTest(res, form, viewer);
        default:
          throw new HttpProblem(404, 'There is no such page.');
      }
    }

    const messageMatch = /^\/message\/([^/]+)$/.exec(path);
    const followMatch = /^\/send-test\/([^/]+)$/.exec(path);
    const statusMatch = /^\/api\/message\/([^/]+)\/status$/.exec(path);
    if (path === '/') return overview(res, viewer);
    if (path === '/queue') return queue(res, url, viewer);
    if (path === '/confirm') return confirm(res, url, viewer);
    if (path === '/log') return logSearch(res, url, viewer);
    if (path === '/send-test') return send(res, 200, sendTestPage({ to: '', from: sources.config().microsoft365.mailbox, error: null, hint: null }, viewer));
    if (messageMatch?.[1]) return message(res, decodeURIComponent(messageMatch[1]), url, viewer);
    if (followMatch?.[1] && isMessageId(followMatch[1])) return send(res, 200, followPage(await statusOf(followMatch[1]), url.searchParams.get('to') ?? '', viewer));
    if (statusMatch?.[1] && isMessageId(statusMatch[1])) return json(res, 200, await statusOf(statusMatch[1]));
    throw new HttpProblem(404, 'There is no such page.');
  }

  return {
    async handle(req, res) {
      try {
        await route(req, res);
      } catch (err) {
        if (res.headersSent) throw err;
        if (err instanceof HttpProblem) {
          const session = err.status === 403 ? null : sessionOf(req);
          return send(res, err.status, problemPage(err.status === 404 ? 'Not found' : 'Refused', err.message, session && { username: session.username, csrf: session.csrf }));
        }
        logger.error({ err, event: 'console-error', path: req.url }, 'console request failed');
        send(res, 500, problemPage('Something went wrong', 'The relay could not answer this request; its log has the details.', null));
      }
    },
  };
}

/** A POST's Origin (browsers send it) must be this console: another site cannot submit forms here. */
function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true; // not a browser's cross-site request; the CSRF token still applies
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

function cookies(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return out;
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const type = req.headers['content-type'] ?? '';
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new HttpProblem(413, 'The request is too large.');
    chunks.push(chunk as Buffer);
  }
  if (size > 0 && !type.startsWith('application/x-www-form-urlencoded')) throw new HttpProblem(415, 'Send the form as application/x-www-form-urlencoded.');
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}
