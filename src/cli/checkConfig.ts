// `check-config [--connect]`: the configuration as the relay reads it, then (with --connect) the
// upstream checked for real, each failure with its fix.
import { accountsOf, formatDuration, type AccountConfig, type RelayConfig, type RouteConfig } from '../config/index.js';
import { mailLogPathOf } from '../maillog/index.js';
import { checkUpstream, type Finding } from '../diagnostics/upstreamCheck.js';
import { credentialsOf, describeExpiry, expiryState } from '../oauth/credentialExpiry.js';
import { silentLogger } from '../observability/logger.js';
import { createTokenSource } from '../relay/accountFactory.js';

export function describeConfig(file: string, config: RelayConfig): string {
  return (
    `${file}: OK\n  listeners: ${config.listen.map((l) => `${l.host}:${l.port}${l.tls ? ' (STARTTLS)' : ''}`).join(', ')}\n` +
    `  relays for: ${config.allowNetworks.map((n) => (typeof n === 'string' ? n : `${n.network} (as ${n.allowedSenders.join(', ')})`)).join(', ') || '(no networks)'}; ${config.users.length} local user(s)\n` +
    [...accountsOf(config).values()].map((a) => `  account ${a.name}: ${a.mailbox} via ${describeTransport(a)} (cloud ${a.cloud}, ${a.flow})\n${describeCredentials(a)}`).join('') +
    (config.routes.length ? `  routes (first match wins, else default):\n${config.routes.map((r) => `    ${describeRoute(r)} -> ${r.account}\n`).join('')}` : '') +
    `  mail log: ${describeMailLog(config)}\n` +
    describeConsole(config)
  );
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
  return a.transport === 'graph' ? `Graph ${a.graphHost}` : `${a.smtpHost}:${a.smtpPort}`;
}

function describeRoute(r: RouteConfig): string {
  return r.user !== undefined ? `user ${r.user}` : r.network !== undefined ? `network ${r.network}` : `sender ${r.sender ?? ''}`;
}

/** Exit code 0 when every account checks out (warnings allowed), 1 otherwise. */
export async function connectCheck(config: RelayConfig, out: NodeJS.WritableStream, configFile?: string): Promise<number> {
  let failed = false;
  for (const account of accountsOf(config).values()) {
    out.write(`\naccount ${account.name} (${account.mailbox}):\n`);
    const tokens = createTokenSource(account, silentLogger(), { configFile });
    const findings = await checkUpstream(account, tokens);
    for (const finding of findings) {
      out.write(formatFinding(finding));
      if (!finding.ok && !finding.warning) failed = true;
    }
  }
  out.write(failed ? '\nThe relay cannot deliver with this configuration: fix the problem above and run this check again.\n' : '\nReady: the relay can reach Microsoft 365 and authenticate as the mailbox.\n');
  return failed ? 1 : 0;
}

function formatFinding(f: Finding): string {
  const mark = f.ok ? 'ok  ' : f.warning ? 'WARN' : 'FAIL';
  let text = `  [${mark}] ${f.step}: ${f.detail}\n`;
  if (f.problem) text += `         problem: ${f.problem}\n`;
  if (f.fix) text += `         fix: ${f.fix}\n`;
  return text;
}
