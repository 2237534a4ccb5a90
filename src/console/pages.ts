// The console's pages: view data in, escaped HTML out (no I/O here; see server.ts for the data).
import type { QueueListItem } from '../cli/queueList.js';
import type { Credential } from '../oauth/credentialExpiry.js';
import type { LaneHealth } from '../relay/index.js';
import { receivedAtOf, type AdminActionName, type MessageMeta } from '../spool/index.js';
import { hourlyChart, type HourFigures } from './chart.js';
import { formatSize, formatTime, relativeTime } from './format.js';
import { html, type SafeHtml } from './html.js';
import { SEARCHABLE_STATES, type MailLogEvent, type MailLogMessage, type MailLogState } from '../maillog/index.js';
import { ACTION_QUESTIONS, actionsFor, type QueueFilter } from './policy.js';

/** Who is looking, for the header and the forms. */
export interface Viewer {
  username: string;
  csrf: string;
}

type Section = 'overview' | 'queue' | 'log' | 'send-test' | null;

const NAV: Array<[Exclude<Section, null>, string, string]> = [
  ['overview', '/', 'Overview'],
  ['queue', '/queue', 'Queue'],
  ['log', '/log', 'Mail log'],
  ['send-test', '/send-test', 'Send a test'],
];

export function layout(title: string, body: SafeHtml, viewer: Viewer | null, section: Section = null): string {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · m365-relay</title><link rel="stylesheet" href="/assets/console.css"><link rel="icon" href="/assets/icon.svg" type="image/svg+xml">
<script src="/assets/console.js" defer></script></head>
<body><header><span class="brand">m365-relay</span>${
    viewer
      ? html`<nav>${NAV.map(([key, href, label]) => html`<a href="${href}"${key === section ? html` aria-current="page"` : ''}>${label}</a>`)}</nav>
<span class="who">${viewer.username}</span><form method="post" action="/logout">${csrfField(viewer)}<button type="submit">Log out</button></form>`
      : ''
  }</header>
<main>${body}</main></body></html>
`.text;
}

function csrfField(viewer: Viewer): SafeHtml {
  return html`<input type="hidden" name="_csrf" value="${viewer.csrf}">`;
}

function badge(state: string): SafeHtml {
  return html`<span class="badge s-${state}">${state}</span>`;
}

/** A time for people (UTC, and how far from now) and for machines (datetime, ISO 8601). */
function when(at: number | string | null | undefined, now: number): SafeHtml {
  if (at === null || at === undefined) return html`<span class="muted">-</span>`;
  const relative = relativeTime(at, now);
  return html`${stamp(at)}${relative ? html` <span class="muted">(${relative})</span>` : ''}`;
}

function stamp(at: number | string): SafeHtml {
  const ms = typeof at === 'number' ? at : Date.parse(at);
  return Number.isNaN(ms) ? html`${String(at)}` : html`<time datetime="${new Date(ms).toISOString()}">${formatTime(ms)}</time>`;
}

// --- login -----------------------------------------------------------------------------------

export function loginPage(options: { next: string; error?: string; refusal?: string | null; username?: string }): string {
  const body = html`<div class="login panel"><h1>Log in</h1>
${options.refusal ? html`<p class="error">${options.refusal}</p>` : ''}${options.error ? html`<p class="error" role="alert">${options.error}</p>` : ''}
<form method="post" action="/login">
<input type="hidden" name="next" value="${options.next}">
<label for="username">User name</label><input type="text" id="username" name="username" autocomplete="username" autocapitalize="none" spellcheck="false" required value="${options.username ?? ''}" autofocus>
<label for="password">Password</label><input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit">Log in</button>
</form></div>`;
  return layout('Log in', body, null);
}

// --- overview --------------------------------------------------------------------------------

export interface AccountView {
  name: string;
  transport: string;
  flow: string;
  mailbox: string;
  health: LaneHealth | null;
  credentials: Credential[];
  lastDelivery: number | null;
}

export interface OverviewView {
  now: number;
  spool: Record<string, number>;
  oldestReceivedAt: number | null;
  log: Record<MailLogState, number> | null;
  hours: HourFigures[] | null;
  accounts: AccountView[];
}

export function overviewPage(view: OverviewView, viewer: Viewer): string {
  const { now } = view;
  const card = (n: number | string, label: string, href?: string) =>
    html`<div class="card"><span class="n">${href ? html`<a href="${href}">${n}</a>` : n}</span><span class="label">${label}</span></div>`;
  const delivered24 = view.hours?.reduce((n, h) => n + h.delivered, 0);
  const failed24 = view.hours?.reduce((n, h) => n + h.failed, 0);
  const body = html`<h1>Overview</h1>
<h2>Messages by state</h2>
<div class="cards" id="states">
${card(view.spool.waiting ?? 0, 'waiting (queued or deferred)', '/queue')}
${card(view.spool.active ?? 0, 'being delivered now')}
${card(view.spool.hold ?? 0, 'held', '/queue?state=hold')}
${card(view.spool.failed ?? 0, 'failed, kept in the spool', '/queue?state=failed')}
${view.spool.corrupt ? card(view.spool.corrupt, 'corrupt (need an administrator)', '/queue?state=corrupt') : ''}
${delivered24 !== undefined ? html`<div class="card" id="delivered-24h"><span class="n">${delivered24}</span><span class="label">delivered in 24 h</span></div>` : ''}
${failed24 !== undefined ? card(failed24, 'failed in 24 h', '/log?state=failed&since=24h') : ''}
${view.log ? html`<div class="card" id="delivered-total"><span class="n"><a href="/log?state=delivered">${view.log.delivered}</a></span><span class="label">delivered (whole mail log)</span></div>` : ''}
</div>
${view.oldestReceivedAt !== null ? html`<p class="muted">Oldest waiting message received ${when(view.oldestReceivedAt, now)}.</p>` : ''}
<h2>Delivered and failed per hour, last 24 h</h2>
${view.hours ? html`<div class="panel">${hourlyChart(view.hours)}<p class="legend muted"><span class="delivered">delivered</span><span class="failed">failed</span></p></div>` : mailLogOff()}
<h2>Accounts</h2>
<div class="scroll"><table id="accounts"><thead><tr><th>Account</th><th>Transport</th><th>Mailbox</th><th>Token</th><th>Sign-in</th><th>Credential</th><th>State</th><th>Last delivery</th></tr></thead><tbody>
${view.accounts.map((a) => accountRow(a, now))}
</tbody></table></div>`;
  return layout('Overview', body, viewer, 'overview');
}

function mailLogOff(): SafeHtml {
  return html`<p class="notice">The mail log is off (mailLog in the configuration), so there is no history to show.</p>`;
}

function accountRow(a: AccountView, now: number): SafeHtml {
  const h = a.health;
  const token = h?.token;
  const tokenCell = !token
    ? html`<span class="muted">not started</span>`
    : html`${token.expiresOn ? html`expires ${when(token.expiresOn, now)}` : html`<span class="muted">none yet</span>`}${
        token.lastError ? html`<div class="bad">${token.lastError}</div>${token.advice ? html`<p class="advice">${token.advice}</p>` : ''}` : ''
      }`;
  const signin =
    a.flow !== 'device-code'
      ? html`<span class="muted">app-only</span>`
      : token?.needsLogin
        ? html`<span class="bad">signed out</span><p class="advice">Sign the mailbox in again: m365-relay login --config FILE --account ${a.name}</p>`
        : html`${token?.signinExpiresAt ? html`until ${when(token.signinExpiresAt, now)}` : html`<span class="muted">unknown</span>`}`;
  const credentials = a.credentials.length
    ? a.credentials.map((c) => html`<div>${c.kind === 'client-certificate' ? 'certificate' : 'secret'} expires ${when(c.expiresAt, now)}${Date.parse(c.expiresAt) <= now ? html` <span class="bad">expired</span>` : ''}</div>`)
    : html`<span class="muted">${a.flow === 'device-code' ? 'none (user sign-in)' : 'expiry not known'}</span>`;
  let state: SafeHtml;
  if (!h) state = html`<span class="muted">-</span>`;
  else if (h.holding) {
    state = html`<span class="badge s-hold">holding</span> since ${when(h.holding.since, now)}, next probe ${relativeTime(h.holding.nextProbeAt, now)}${h.holding.reason ? html`<div>${h.holding.reason}</div>` : ''}${
      h.holding.advice ? html`<p class="advice">${h.holding.advice}</p>` : ''
    }`;
  } else if (h.pausedUntil) {
    state = html`<span class="badge s-deferred">paused</span> until ${when(h.pausedUntil, now)}${h.pauseReason ? html`<div>${h.pauseReason}</div>` : ''}`;
  } else {
    state = html`<span class="badge s-delivered">delivering</span>`;
  }
  const load = h ? html`<div class="muted">${h.waiting} waiting, ${h.inFlight} in flight</div>` : '';
  return html`<tr data-account="${a.name}"><td>${a.name}</td><td>${a.transport}</td><td>${a.mailbox}</td><td class="token">${tokenCell}</td><td>${signin}</td><td class="credential">${credentials}</td><td>${state}${load}</td><td>${
    a.lastDelivery ? when(a.lastDelivery, now) : html`<span class="muted">none in the mail log</span>`
  }</td></tr>`;
}

// --- queue -----------------------------------------------------------------------------------

export interface QueueView {
  now: number;
  items: QueueListItem[];
  total: number;
  shown: number;
  filter: QueueFilter;
  accounts: string[];
  done: string | null;
}

const QUEUE_STATES = ['queued', 'deferred', 'hold', 'failed', 'corrupt'];

export function queuePage(view: QueueView, viewer: Viewer): string {
  const f = view.filter;
  const option = (value: string, current: string | undefined, label = value) => html`<option value="${value}"${value === (current ?? '') ? html` selected` : ''}>${label}</option>`;
  const here = `/queue${queryOf(f)}`;
  const body = html`<h1>Queue</h1>
${view.done ? html`<p class="notice" role="status">${view.done}</p>` : ''}
<form class="filters" method="get" action="/queue">
<label>State<select name="state">${option('', f.state, 'any')}${QUEUE_STATES.map((s) => option(s, f.state))}</select></label>
<label>Account<select name="account">${option('', f.account, 'any')}${view.accounts.map((a) => option(a, f.account))}</select></label>
<label>Sender<input type="search" name="from" value="${f.from ?? ''}"></label>
<label>Recipient<input type="search" name="to" value="${f.to ?? ''}"></label>
<button type="submit">Filter</button> <a href="/queue">clear</a>
</form>
<p class="muted">${view.total} message(s) in the spool match${view.shown < view.items.length || view.shown < view.total ? html`; the oldest ${view.shown} are shown` : ''}.</p>
${view.items.length === 0 ? html`<p>No message matches.</p>` : html`<div class="scroll"><table id="queue"><thead><tr><th>ID</th><th>State</th><th>Actions</th><th>Received</th><th>From</th><th>To</th><th>Tries</th><th>Next attempt</th><th>Last error</th><th>Account</th></tr></thead><tbody>
${view.items.slice(0, view.shown).map((i) => queueRow(i, view.now, here))}
</tbody></table></div>`}`;
  return layout('Queue', body, viewer, 'queue');
}

function queueRow(i: QueueListItem, now: number, back: string): SafeHtml {
  const received = receivedAtOf(i.id);
  return html`<tr data-id="${i.id}"><td><a href="/message/${i.id}">${i.id}</a></td><td>${badge(i.state)}</td><td><div class="actions">${actionLinks(i.id, i.state, back)}</div></td><td>${stamp(received)}</td><td>${i.from || '<>'}</td><td class="wrap">${i.recipients.join(', ')}</td><td>${i.attempts}</td><td>${
    i.nextAttemptAt ? when(i.nextAttemptAt, now) : i.state === 'queued' || i.state === 'deferred' ? 'now' : '-'
  }</td><td class="wrap">${i.lastError ?? ''}</td><td>${i.account}</td></tr>`;
}

/** Each action leads to its confirmation page (which makes the change, with the CSRF token). */
function actionLinks(id: string, state: QueueListItem['state'], back: string): SafeHtml[] {
  return actionsFor(state).map(
    (action) =>
      html`<form method="get" action="/confirm"><input type="hidden" name="id" value="${id}"><input type="hidden" name="action" value="${action}"><input type="hidden" name="back" value="${back}"><button type="submit" class="secondary">${capitalize(action)}</button></form>`,
  );
}

function queryOf(filter: object): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(filter)) if (typeof v === 'string' && v) params.set(k, v);
  const text = params.toString();
  return text ? `?${text}` : '';
}

export function confirmPage(view: { id: string; action: AdminActionName; back: string; summary: QueueListItem | null }, viewer: Viewer): string {
  const s = view.summary;
  const body = html`<h1>${capitalize(view.action)} message ${view.id}?</h1>
<div class="panel stack">
${s ? html`<dl class="facts"><dt>State</dt><dd>${badge(s.state)}</dd><dt>From</dt><dd>${s.from || '<>'}</dd><dt>To</dt><dd>${s.recipients.join(', ')}</dd><dt>Attempts</dt><dd>${s.attempts}</dd>${
    s.lastError ? html`<dt>Last error</dt><dd>${s.lastError}</dd>` : ''
  }</dl>` : ''}
<p>${ACTION_QUESTIONS[view.action]}</p>
<form method="post" action="/queue/action" class="actions">${csrfField(viewer)}
<input type="hidden" name="id" value="${view.id}"><input type="hidden" name="action" value="${view.action}"><input type="hidden" name="back" value="${view.back}">
<button type="submit"${view.action === 'delete' ? html` class="danger"` : ''}>Yes, ${view.action}</button> <a class="button secondary" href="${view.back}">Cancel</a>
</form></div>`;
  return layout(`${capitalize(view.action)} ${view.id}`, body, viewer, 'queue');
}

// --- message ---------------------------------------------------------------------------------

export interface MessageView {
  now: number;
  id: string;
  spool: { item: QueueListItem; meta: MessageMeta; headers: string } | null;
  log: { message: MailLogMessage; events: MailLogEvent[] } | null;
  mailLogOn: boolean;
  done: string | null;
}

export function messagePage(view: MessageView, viewer: Viewer): string {
  const { now, spool, log } = view;
  const m = spool?.meta;
  const lm = log?.message;
  const state = spool ? spool.item.state : (lm?.state ?? 'unknown');
  const replies = upstreamReplies(log?.events ?? []);
  const client = m?.client;
  const body = html`<h1>Message ${view.id} ${badge(state)}</h1>
${view.done ? html`<p class="notice" role="status">${view.done}</p>` : ''}
${spool ? html`<div class="actions">${actionLinks(view.id, spool.item.state, `/message/${view.id}`)}</div>` : html`<p class="muted">Not in the spool any more${lm ? '' : ', and not in the mail log'}.</p>`}
<h2>Envelope</h2>
<div class="panel"><dl class="facts" id="envelope">
<dt>Sender</dt><dd>${(m?.envelope.from ?? lm?.sender) || '<>'}</dd>
<dt>Recipients</dt><dd>${
    m
      ? m.recipients.map((r) => html`<div>${r.address} ${badge(r.status)}${r.lastError ? html` <span class="muted">${r.lastError}</span>` : ''}</div>`)
      : (lm?.recipients ?? []).map((r) => html`<div>${r}</div>`)
  }</dd>
<dt>Received</dt><dd>${when(m?.receivedAt ?? lm?.receivedAt, now)}</dd>
<dt>From client</dt><dd>${client ? html`${client.address}${client.helo ? html` (HELO ${client.helo})` : ''}${client.user ? html`, user ${client.user}` : ''}${client.secure ? ', TLS' : ''}` : lm ? html`${lm.clientAddress}${lm.clientName ? html` (${lm.clientName})` : ''}${lm.user ? html`, user ${lm.user}` : ''}${lm.tls ? ', TLS' : ''}, listener ${lm.listener}` : '-'}</dd>
<dt>Size</dt><dd>${m ? formatSize(m.size) : lm ? formatSize(lm.size) : '-'}</dd>
${lm?.messageId ? html`<dt>Message-ID</dt><dd>${lm.messageId}</dd>` : ''}
${lm?.subject ? html`<dt>Subject</dt><dd>${lm.subject}</dd>` : ''}
</dl></div>
<h2>Route and attempts</h2>
<div class="panel"><dl class="facts" id="route">
<dt>Account</dt><dd>${spool ? spool.item.account : (lm?.account ?? '-')}${spool?.item.route ? html` <span class="muted">(route: ${spool.item.route})</span>` : ''}</dd>
<dt>Attempts</dt><dd>${m ? m.attempts : replies.length}</dd>
${m ? html`<dt>Next attempt</dt><dd>${spool?.item.nextAttemptAt ? when(spool.item.nextAttemptAt, now) : state === 'queued' || state === 'deferred' ? 'now' : '-'}</dd>` : ''}
${m?.lastError ? html`<dt>Last error</dt><dd>${m.lastError}</dd>` : ''}
${m?.failedAt ? html`<dt>Failed at</dt><dd>${when(m.failedAt, now)}</dd>` : ''}
${lm?.lastReply ? html`<dt>Last upstream reply</dt><dd>${lm.lastReply}</dd>` : ''}
</dl></div>
<h2>Upstream replies</h2>
${replies.length ? html`<div class="scroll"><table id="replies"><thead><tr><th>When</th><th>Account</th><th>Reply</th><th>Upstream id</th><th>Took</th></tr></thead><tbody>${replies.map(
    (r) => html`<tr><td>${stamp(r.at)}</td><td>${str(r.account)}</td><td class="wrap">${r.reply}</td><td>${str(r.upstreamId)}</td><td>${typeof r.durationMs === 'number' ? `${r.durationMs} ms` : ''}</td></tr>`,
  )}</tbody></table></div>` : html`<p class="muted">${view.mailLogOn ? 'No reply recorded yet.' : 'The mail log is off: replies are in the relay\'s log only.'}</p>`}
<h2>History</h2>
${log ? html`<div class="scroll"><table id="history"><thead><tr><th>When</th><th>Event</th><th>Details</th></tr></thead><tbody>${log.events.map(
    (e) => html`<tr><td>${stamp(e.at)}</td><td>${badge(e.kind)}</td><td class="wrap">${details(e.detail)}</td></tr>`,
  )}</tbody></table></div>` : view.mailLogOn ? html`<p class="muted">The mail log has no record of this message.</p>` : mailLogOff()}
${spool ? html`<h2>Headers</h2><pre id="headers">${spool.headers}</pre>` : ''}`;
  return layout(`Message ${view.id}`, body, viewer, 'queue');
}

/**
 * What Exchange answered at each attempt: its final reply, or, when it refused before (at RCPT,
 * or the attempt never got that far), the reason the deferral or failure that followed recorded.
 */
export function upstreamReplies(events: readonly MailLogEvent[]): Array<{ at: number; account: unknown; reply: string; upstreamId: unknown; durationMs: unknown }> {
  const out: Array<{ at: number; account: unknown; reply: string; upstreamId: unknown; durationMs: unknown }> = [];
  events.forEach((e, i) => {
    if (e.kind !== 'attempt') return;
    const outcome = events.slice(i + 1).find((next) => next.kind === 'attempt' || next.kind === 'deferred' || next.kind === 'failed');
    const reason = outcome && outcome.kind !== 'attempt' ? outcome.detail.reason : undefined;
    const reply = typeof e.detail.reply === 'string' ? e.detail.reply : typeof reason === 'string' ? reason : null;
    if (reply !== null) out.push({ at: e.at, account: e.detail.account, reply, upstreamId: e.detail.upstreamId, durationMs: e.detail.durationMs });
  });
  return out;
}

function str(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v.join(', ');
  return JSON.stringify(v);
}

function details(detail: Record<string, unknown>): SafeHtml[] {
  return Object.entries(detail)
    .filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => html`<div><span class="muted">${k}:</span> ${/At$/.test(k) && typeof v === 'number' ? formatTime(v) : str(v)}</div>`);
}

// --- mail log --------------------------------------------------------------------------------

export interface LogView {
  params: URLSearchParams;
  /** Null when the mail log is off. */
  results: MailLogMessage[] | null;
  problem: string | null;
  limit: number;
}

export function logPage(view: LogView, viewer: Viewer): string {
  const p = (name: string) => view.params.get(name) ?? '';
  const field = (name: string, label: string, placeholder = '') => html`<label>${label}<input type="search" name="${name}" value="${p(name)}" placeholder="${placeholder}"></label>`;
  const state = p('state');
  const body = html`<h1>Mail log</h1>
<form class="filters" method="get" action="/log">
${field('to', 'Recipient')}${field('from', 'Sender')}${field('id', 'Queue id')}${field('message-id', 'Message-ID')}${field('subject', 'Subject contains')}
<label>State<select name="state">${['', ...SEARCHABLE_STATES].map((s) => html`<option value="${s}"${s === state ? html` selected` : ''}>${s || 'any'}</option>`)}</select></label>
${field('since', 'Since', '2h, 7d or a date')}${field('until', 'Until', 'a date and time')}
<label>Limit<input type="text" name="limit" inputmode="numeric" size="4" value="${p('limit') || String(view.limit)}"></label>
<button type="submit">Search</button> <a href="/log">clear</a>
</form>
${view.problem ? html`<p class="error" role="alert">${view.problem}</p>` : ''}
${view.results === null ? mailLogOff() : view.problem ? '' : view.results.length === 0 ? html`<p>No message matches.</p>` : html`<p class="muted">${view.results.length} message(s), newest first${view.results.length >= view.limit ? html` (the first ${view.limit}; raise the limit to see more)` : ''}.</p>
<div class="scroll"><table id="log"><thead><tr><th>Received</th><th>Queue id</th><th>State</th><th>From</th><th>To</th><th>Subject</th><th>Account</th><th>Last reply</th></tr></thead><tbody>
${view.results.map(
    (r) => html`<tr data-id="${r.id}"><td>${stamp(r.receivedAt)}</td><td><a href="/message/${r.id}">${r.id}</a></td><td>${badge(r.state)}</td><td>${r.sender || '<>'}</td><td class="wrap">${r.recipients.join(', ')}</td><td class="wrap">${r.subject ?? ''}</td><td>${r.account ?? ''}</td><td class="wrap">${r.lastReply ?? ''}</td></tr>`,
  )}
</tbody></table></div>`}`;
  return layout('Mail log', body, viewer, 'log');
}

// --- send a test -----------------------------------------------------------------------------

export function sendTestPage(view: { from: string; to: string; error: string | null; hint: string | null }, viewer: Viewer): string {
  const body = html`<h1>Send a test message</h1>
<p>The message goes through the relay the way a device's mail does: its SMTP listener, its spool and the Microsoft 365 account its route chooses. This page then follows it to its outcome.</p>
${view.error ? html`<div class="error" role="alert"><p>The relay did not take the message: ${view.error}</p>${view.hint ? html`<p>${view.hint}</p>` : ''}</div>` : ''}
<form method="post" action="/send-test" class="panel stack">${csrfField(viewer)}
<div><label for="to">To</label><br><input type="email" id="to" name="to" required value="${view.to}" size="34"></div>
<div><label for="from">From</label><br><input type="email" id="from" name="from" required value="${view.from}" size="34"></div>
<button type="submit">Send</button>
</form>`;
  return layout('Send a test', body, viewer, 'send-test');
}

export interface MessageStatus {
  id: string;
  state: string;
  final: boolean;
  detail: string;
}

export function followPage(status: MessageStatus, to: string, viewer: Viewer): string {
  const body = html`<h1>Test message ${status.id}</h1>
<div class="panel stack" data-follow="/api/message/${status.id}/status">
<p>Accepted by the relay for ${to}. Its outcome: <span id="follow-state" class="badge s-${status.state}">${status.state}</span></p>
<p id="follow-detail">${status.detail}</p>
<p class="muted">This page follows the message until it is delivered or fails. <a href="/message/${status.id}">The message's page</a> has its whole history.</p>
</div>
<noscript><p>Without JavaScript, reload this page to see the outcome.</p></noscript>`;
  return layout('Send a test', body, viewer, 'send-test');
}

// --- errors ----------------------------------------------------------------------------------

export function problemPage(title: string, message: string, viewer: Viewer | null, link: { href: string; label: string } = { href: '/', label: 'Back to the overview' }): string {
  return layout(title, html`<h1>${title}</h1><p class="error">${message}</p><p><a href="${link.href}">${link.label}</a></p>`, viewer);
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
