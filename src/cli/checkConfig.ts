// `check-config [--connect]`: the configuration as the relay reads it, then (with --connect) the
// upstream checked for real, each failure with its fix.
import { accountsOf, formatDuration, type AccountConfig, type RelayConfig, type RouteConfig } from '../config/index.js';
import { mailLogPathOf } from '../maillog/index.js';
import { checkUpstream, type Finding } from '../diagnostics/upstreamCheck.js';
import { credentialsOf, describeExpiry, expiryState } from '../oauth/credentialExpiry.js';
import { lookupSecretExpiry, registrationTokenSource, type RegistrationLookup } from '../oauth/registration.js';
import { silentLogger } from '../observability/logger.js';
import { proxyNote } from '../proxy/index.js';
import { createTokenSource } from '../relay/accountFactory.js';

export function describeConfig(file: string, config: RelayConfig): string {
  return (
    `${file}: OK\n  listeners: ${config.listen.map((l) => `${l.host}:${l.port}${l.tls ? ' (STARTTLS)' : ''}`).join(', ')}\n` +
    `  relays for: ${config.allowNetworks.map((n) => (typeof n === 'string' ? n : `${n.network} (as ${n.allowedSenders.join(', ')})`)).join(', ') || '(no networks)'}; ${config.users.length} local user(s)\n` +
    [...accountsOf(config).values()].map((a) => `  account ${a.name}: ${a.mailbox} via ${describeTransport(a)} (cloud ${a.cloud}, ${a.flow})\n${describeCredentials(a)}`).join('') +
    (config.routes.length ? `  routes (first match wins, else default):\n${config.routes.map((r) => `    ${describeRoute(r)} -> ${r.account}\n`).join('')}` : '') +
    hveWithoutRoute(config) +
    `  mail log: ${describeMailLog(config)}\n` +
    describeConsole(config)
  );
}

/** An HVE account takes internal recipients only: warn when routes give it others, or nothing. */
function hveWithoutRoute(config: RelayConfig): string {
  return [...accountsOf(config).values()]
    .filter((a) => a.transport === 'hve')
    .map((a) => {
      const routes = config.routes.filter((r) => r.account === a.name);
      const broad = a.name === 'default' ? 'it is the default account' : routes.some((r) => r.recipientDomain === undefined) ? 'a user, network or sender route names it' : null;
      if (broad) return `  WARNING: account ${a.name} is High Volume Email (internal recipients only) but ${broad}, so it gets external recipients too, which HVE refuses (550 5.5.105): route it with recipientDomain: [your internal domains] and send the rest through a mailbox account\n`;
      if (routes.length === 0) return `  WARNING: account ${a.name} is High Volume Email but no route sends it mail: add a route with recipientDomain: [your internal domains] and account: ${a.name}\n`;
      return '';
    })
    .join('');
}

function describeMailLog(config: RelayConfig): string {
  const path = mailLogPathOf(config);
  if (!path) return 'off (mailLog.enabled: false)';
  return `${path} (retention ${formatDuration(config.mailLog.retention)}${config.mailLog.recordSubjects ? '' : ', subjects not recorded'})`;
}

function describeConsole(config: RelayConfig): string {
  if (!config.console || !config.http) return '';
  const { host, port, tls } = config.http;
  const logins = tls ? 'HTTPS' : config.console.allowPlainHttp ? 'plain HTTP from anywhere (allowPlainHttp)' : 'plain HTTP: logins from loopback only';
  return `  web console: ${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}/ (${config.console.users.length} administrator(s); ${logins})\n`;
}

/** Known credential expiries, with a warning mark inside 30 days (the relay alerts then too). */
function describeCredentials(a: AccountConfig): string {
  const now = Date.now();
  return credentialsOf(a)
    .map((c) => `    ${expiryState(c.expiresAt, now).band === null ? '' : 'WARNING: '}${describeExpiry(c, now)}\n`)
    .join('');
}

function describeTransport(a: AccountConfig): string {
  if (a.transport === 'graph') return `Graph ${a.graphHost}${proxyNote(a.proxy, new URL(a.graphHost).hostname)}`;
  if (a.transport !== 'hve') return `${a.smtpHost}:${a.smtpPort}${proxyNote(a.proxy, a.smtpHost)}`;
  const mb = (bytes: number) => `${Math.round((bytes / 1024 / 1024) * 10) / 10} MB`;
  return (
    `High Volume Email ${a.smtpHost}:${a.smtpPort}${proxyNote(a.proxy, a.smtpHost)} (internal recipients only: route external ones to a mailbox account; ` +
    `${a.maxRecipientsPerMessage} recipients a transaction, messages up to ${a.maxMessageSize === null ? 'maxMessageSize' : mb(a.maxMessageSize)}, ` +
    `token renewed ${Math.round(a.tokenRenewBefore / 60_000)} min before expiry)`
  );
}

function describeRoute(r: RouteConfig): string {
  if (r.recipientDomain !== undefined) return `recipients in ${r.recipientDomain.join(', ')}`;
  return r.user !== undefined ? `user ${r.user}` : r.network !== undefined ? `network ${r.network}` : `sender ${r.sender ?? ''}`;
}

/** Exit code 0 when every account checks out (warnings allowed), 1 otherwise. */
export async function connectCheck(config: RelayConfig, out: NodeJS.WritableStream, configFile?: string): Promise<number> {
  let failed = false;
  for (const account of accountsOf(config).values()) {
    out.write(`\naccount ${account.name} (${account.mailbox}):\n`);
    const tokens = createTokenSource(account, silentLogger(), { configFile });
    const findings = await checkUpstream(account, tokens);
    if (account.flow === 'client-credentials' && account.clientSecret && findings.every((f) => f.ok || f.warning)) {
      findings.push(registrationFinding(account, await lookupSecretExpiry(account, registrationTokenSource(account, silentLogger()))));
    }
    for (const finding of findings) {
      out.write(formatFinding(finding));
      if (!finding.ok && !finding.warning) failed = true;
    }
  }
  out.write(failed ? '\nThe relay cannot deliver with this configuration: fix the problem above and run this check again.\n' : '\nReady: the relay can reach Microsoft 365 and authenticate as the mailbox.\n');
  return failed ? 1 : 0;
}

/** The secret's expiry as the app registration records it (read with Graph when the app may). */
function registrationFinding(account: AccountConfig, result: RegistrationLookup): Finding {
  const step = `client secret expiry in the app registration (Graph ${account.graphHost})`;
  if (result.status === 'found' && result.expiresAt) {
    const now = Date.now();
    const credential = { account: account.name, kind: 'client-secret' as const, expiresAt: result.expiresAt, source: 'graph' as const };
    const near = expiryState(result.expiresAt, now).band !== null;
    return { step, ok: !near, ...(near && { warning: true, problem: 'the client secret expires soon', fix: 'create a new client secret (Certificates & secrets), put it where clientSecret reads it, and reload' }), detail: describeExpiry(credential, now) };
  }
  if (result.status === 'found') {
    return { step, ok: false, warning: true, detail: "none of the app's secrets begins like the configured clientSecret", problem: 'clientSecret may not be a current secret of this app', fix: 'check that clientSecret holds the secret VALUE (not its ID) of this app' };
  }
  return { step, ok: true, detail: `not read (${result.message}); clientSecretExpires ${account.clientSecretExpires ? `(${account.clientSecretExpires}) ` : ''}is used. Optional: grant the app Application.Read.All (Microsoft Graph, application) to have it read from the registration` };
}

function formatFinding(f: Finding): string {
  const mark = f.ok ? 'ok  ' : f.warning ? 'WARN' : 'FAIL';
  let text = `  [${mark}] ${f.step}: ${f.detail}\n`;
  if (f.problem) text += `         problem: ${f.problem}\n`;
  if (f.fix) text += `         fix: ${f.fix}\n`;
  return text;
}
