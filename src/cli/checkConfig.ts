// `check-config [--connect]`: the configuration as the relay reads it, then (with --connect) the
// upstream checked for real, each failure with its fix.
import type { RelayConfig } from '../config/index.js';
import { checkUpstream, type Finding } from '../diagnostics/upstreamCheck.js';

export function describeConfig(file: string, config: RelayConfig): string {
  return (
    `${file}: OK\n  listeners: ${config.listen.map((l) => `${l.host}:${l.port}${l.tls ? ' (STARTTLS)' : ''}`).join(', ')}\n` +
    `  relays for: ${config.allowNetworks.join(', ') || '(no networks)'}; ${config.users.length} local user(s)\n` +
    `  sends as: ${config.microsoft365.mailbox} via ${config.microsoft365.smtpHost}:${config.microsoft365.smtpPort}\n`
  );
}

/** Exit code 0 when every account checks out (warnings allowed), 1 otherwise. */
export async function connectCheck(config: RelayConfig, out: NodeJS.WritableStream): Promise<number> {
  let failed = false;
  const accounts = [{ name: 'microsoft365', account: config.microsoft365 }];
  for (const { name, account } of accounts) {
    out.write(`\n${name} (${account.mailbox}):\n`);
    const findings = await checkUpstream(account);
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
