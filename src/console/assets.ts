// The console's only assets, served by the relay itself (no CDN, no web fonts: it works on a LAN
// without Internet). Kept in code so that `tsc` alone builds them into dist/.
import { createHash } from 'node:crypto';

const CSS = `
:root { --fg: #1b1f24; --muted: #5b6470; --bg: #f5f6f8; --card: #fff; --line: #d8dce2; --accent: #0b5cad;
  --ok: #1a7f37; --warn: #9a6700; --bad: #c62828; --hold: #6639ba; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--fg); background: var(--bg); }
a { color: var(--accent); }
header { background: #14263d; color: #fff; padding: .5rem 1rem; display: flex; flex-wrap: wrap; align-items: center; gap: .25rem 1rem; }
header .brand { font-weight: 600; margin-right: .5rem; }
header nav { display: flex; flex-wrap: wrap; gap: .25rem .9rem; flex: 1; }
header a { color: #dfe9f5; text-decoration: none; padding: .2rem 0; }
header a[aria-current="page"] { color: #fff; border-bottom: 2px solid #fff; }
header form { margin: 0; }
header .who { color: #b9c7d8; font-size: .9em; }
main { padding: 1rem; max-width: 1200px; margin: 0 auto; }
h1 { font-size: 1.35rem; margin: .2rem 0 1rem; }
h2 { font-size: 1.1rem; margin: 1.5rem 0 .6rem; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(9.5rem, 1fr)); gap: .6rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .6rem .8rem; }
.card .n { font-size: 1.6rem; font-weight: 600; display: block; }
.card .label { color: var(--muted); font-size: .85em; }
.panel { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .8rem; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; background: var(--card); border: 1px solid var(--line); border-radius: 6px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; font-size: .85em; color: var(--muted); white-space: nowrap; }
tr:last-child td { border-bottom: 0; }
td.wrap { word-break: break-word; min-width: 12rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .3rem 1rem; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; word-break: break-word; }
pre { white-space: pre-wrap; word-break: break-all; background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .6rem; font-size: .85em; margin: 0; }
.badge { display: inline-block; padding: 0 .45rem; border-radius: 9px; font-size: .8em; font-weight: 600; background: #e8ebef; color: var(--fg); white-space: nowrap; }
.s-delivered { background: #dafbe1; color: var(--ok); }
.s-deferred, .s-queued { background: #fff8c5; color: var(--warn); }
.s-failed, .s-corrupt, .s-deleted { background: #ffebe9; color: var(--bad); }
.s-hold, .s-held { background: #fbefff; color: var(--hold); }
.muted { color: var(--muted); }
.bad { color: var(--bad); }
.ok { color: var(--ok); }
.advice { border-left: 3px solid var(--warn); padding-left: .6rem; margin: .3rem 0 0; }
.notice { background: #ddf4ff; border: 1px solid #54aeff; border-radius: 6px; padding: .6rem .8rem; margin-bottom: 1rem; }
.error { background: #ffebe9; border: 1px solid #ff8182; border-radius: 6px; padding: .6rem .8rem; margin-bottom: 1rem; }
form.filters { display: flex; flex-wrap: wrap; gap: .5rem .8rem; align-items: flex-end; margin-bottom: 1rem; }
form.filters label { display: flex; flex-direction: column; font-size: .85em; color: var(--muted); }
input, select, button { font: inherit; }
input[type=text], input[type=email], input[type=password], input[type=search], select { padding: .35rem .5rem; border: 1px solid var(--line); border-radius: 4px; min-width: 0; max-width: 100%; background: #fff; }
button, .button { display: inline-block; padding: .35rem .8rem; border-radius: 4px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; text-decoration: none; }
button.secondary, .button.secondary { background: #fff; color: var(--accent); }
button.danger { background: var(--bad); border-color: var(--bad); }
header button { background: transparent; border-color: #8fa6c1; color: #dfe9f5; padding: .15rem .6rem; }
.actions { display: flex; flex-wrap: wrap; gap: .3rem; }
.actions form { margin: 0; } .actions button { font-size: .85em; padding: .2rem .6rem; }
.login { max-width: 22rem; margin: 3rem auto; }
.login label { display: block; margin: .6rem 0 .2rem; }
.login input { width: 100%; }
.login button { margin-top: 1rem; width: 100%; }
.stack > * + * { margin-top: .6rem; }
svg.chart { width: 100%; height: auto; display: block; }
svg.chart .delivered { fill: var(--ok); }
svg.chart .failed { fill: var(--bad); }
svg.chart .grid { stroke: var(--line); stroke-width: 1; }
svg.chart text { fill: var(--muted); font-size: 10px; }
.legend span::before { content: ""; display: inline-block; width: .7em; height: .7em; margin: 0 .3em 0 .8em; border-radius: 2px; background: currentColor; }
.legend .delivered { color: var(--ok); } .legend .failed { color: var(--bad); }
@media (max-width: 600px) { main { padding: .6rem; } th, td { padding: .35rem .4rem; } dl.facts { grid-template-columns: 1fr; } dl.facts dd { margin-bottom: .4rem; } }
`;

/** Follows a test message on its page: asks for its state every second until it is final. */
const JS = `
(function () {
  var box = document.querySelector('[data-follow]');
  if (!box) return;
  var url = box.getAttribute('data-follow');
  var state = document.getElementById('follow-state');
  var detail = document.getElementById('follow-detail');
  function poll() {
    fetch(url, { credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) { if (!r.ok) throw new Error('HTTP ' + r.status); return r.json(); })
      .then(function (s) {
        state.textContent = s.state;
        state.className = 'badge s-' + s.state;
        detail.textContent = s.detail || '';
        if (!s.final) setTimeout(poll, 1000);
      })
      .catch(function (e) { detail.textContent = 'could not ask the relay (' + e.message + '); retrying'; setTimeout(poll, 3000); });
  }
  poll();
})();
`;

const ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#14263d"/><path d="M3 5h10v6H3z" fill="none" stroke="#fff" stroke-width="1.3"/><path d="M3 5l5 4 5-4" fill="none" stroke="#fff" stroke-width="1.3"/></svg>`;

export interface Asset {
  type: string;
  body: string;
  etag: string;
}

function asset(type: string, body: string): Asset {
  return { type, body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 16)}"` };
}

export const ASSETS: Record<string, Asset> = {
  '/assets/console.css': asset('text/css; charset=utf-8', CSS),
  '/assets/console.js': asset('text/javascript; charset=utf-8', JS),
  '/assets/icon.svg': asset('image/svg+xml', ICON),
};
