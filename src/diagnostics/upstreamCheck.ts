// `check-config --connect`: does what a delivery does up to the point of sending (token, connect,
// STARTTLS, AUTH XOAUTH2, QUIT) and turns any failure into the problem and its fix in plain words.
import { get as httpsGet } from 'node:https';
import nodemailer, { type TransportOptions } from 'nodemailer';
import type { AccountConfig, Microsoft365Config } from '../config/index.js';
import { TokenError, type AccessToken, type TokenSource } from '../oauth/index.js';
import { provideTokens, submissionOptions } from '../relay/transport.js';
import { inspectTokenClaims } from './tokenClaims.js';

export interface Finding {
  /** What was checked, e.g. "token from https://login.microsoftonline.com". */
  step: string;
  ok: boolean;
  /** What happened, as the server or library said it. */
  detail: string;
  /** For failures and warnings: what it means, and what to do. */
  problem?: string;
  fix?: string;
  /** A doubt that does not stop delivery by itself. */
  warning?: boolean;
}

/**
 * The whole check for one Microsoft 365 account, with the token source the relay would use (app
 * credentials or the signed-in user's cache); stops at the first step that fails.
 */
export async function checkUpstream(account: AccountConfig, tokens: TokenSource): Promise<Finding[]> {
  const findings: Finding[] = [];
  let token: AccessToken;
  const tokenStep = `${account.flow === 'device-code' ? `delegated token for ${account.mailbox} (token cache ${account.tokenCacheFile})` : `token for app ${account.clientId}`} from ${account.authorityHost}`;
  try {
    token = await tokens.getToken();
    findings.push({ step: tokenStep, ok: true, detail: `obtained, valid until ${token.expiresOn.toISOString()}` });
  } catch (err) {
    // msal reports a failed connection as "endpoints_resolution_error" and drops the cause: ask
    // the endpoint ourselves to learn whether it was DNS, a refused port or an untrusted certificate.
    const network = err instanceof TokenError && err.kind === 'configuration' ? null : await probeHttps(account.authorityHost, account.tokenTimeout);
    const detail = network ? `${(err as Error).message} (${network})` : (err as Error).message;
    findings.push({ step: tokenStep, ok: false, detail, ...explainTokenFailure(network ? new Error(detail, { cause: err }) : err, account) });
    return findings;
  }

  findings.push(...inspectTokenClaims(token.accessToken, account));
  if (account.transport === 'graph') {
    // Graph has no way to log in without sending; Mail.Send is proven by a real message.
    findings.push({ step: `Graph sendMail at ${account.graphHost}`, ok: true, detail: 'not tried without sending: run m365-relay send-test to prove Mail.Send for the mailbox' });
    return findings;
  }

  const smtpStep = `SMTP session with ${account.smtpHost}:${account.smtpPort} (STARTTLS, AUTH XOAUTH2 as ${account.mailbox}), nothing sent`;
  const transporter = nodemailer.createTransport({ ...submissionOptions(account) } as TransportOptions);
  provideTokens(transporter, tokens);
  try {
    await transporter.verify();
    findings.push({ step: smtpStep, ok: true, detail: 'Exchange Online accepted the token for the mailbox' });
  } catch (err) {
    findings.push({ step: smtpStep, ok: false, detail: smtpErrorText(err), ...explainSmtpFailure(err as SmtpError, account) });
  } finally {
    transporter.close();
  }
  return findings;
}

interface SmtpError extends Error {
  code?: string;
  responseCode?: number;
  response?: string;
}

interface Explanation {
  problem: string;
  fix: string;
}

/** Node's and OpenSSL's words for a certificate it does not trust (not just any mention of "certificate"). */
const TLS_TRUST =
  /self[- ]signed certificate|unable to verify the first certificate|certificate signature failure|certificate verify failed|certificate revoked|CERT_SIGNATURE_FAILURE|unable to get (local )?issuer certificate|certificate has expired|certificate is not yet valid|UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_GET_ISSUER_CERT|CERT_HAS_EXPIRED|ERR_TLS_CERT_ALTNAME_INVALID|Hostname\/IP does not match certificate/i;
const UNREACHABLE = /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|ECONNRESET|timed? ?out|socket hang up|getaddrinfo/i;

export function explainTokenFailure(err: unknown, account: Pick<Microsoft365Config, 'authorityHost'>): Explanation {
  const text = `${(err as Error)?.message ?? ''} ${String((err as { cause?: unknown })?.cause ?? '')}`;
  if (err instanceof TokenError && err.kind === 'configuration') {
    return { problem: err.aadsts ? `Entra ID refused the request (AADSTS${err.aadsts})` : 'Entra ID refused the request', fix: err.advice };
  }
  if (TLS_TRUST.test(text)) return tlsTrust(account.authorityHost);
  if (UNREACHABLE.test(text) || (err instanceof TokenError && err.kind === 'transient')) {
    return {
      problem: `the token endpoint ${account.authorityHost} could not be reached`,
      fix: `allow outbound HTTPS (TCP 443) from this host to ${new URL(account.authorityHost).host}, check DNS and any proxy, then run this check again`,
    };
  }
  return { problem: 'the token request failed for an unrecognised reason', fix: 'read the detail above; run with log.level debug for msal-node diagnostics' };
}

export function explainSmtpFailure(err: SmtpError, account: Microsoft365Config): Explanation {
  const text = `${err.response ?? ''} ${err.message ?? ''}`;
  if (/\b5\.7\.139\b/.test(text)) {
    return {
      problem: `SMTP AUTH is disabled for the mailbox ${account.mailbox} or for the whole tenant`,
      fix:
        `in Exchange Online PowerShell: Set-CASMailbox -Identity ${account.mailbox} -SmtpClientAuthenticationDisabled $false; ` +
        'if the tenant switch is on, Get-TransportConfig | fl SmtpClientAuthenticationDisabled shows it (the mailbox setting overrides it when set to $false). ' +
        'Where SMTP AUTH must stay off, use transport: graph',
    };
  }
  if (/\b5\.7\.30\b/.test(text)) {
    return { problem: 'Exchange refused basic authentication', fix: 'the relay must authenticate with XOAUTH2: check that microsoft365 has clientId and a credential' };
  }
  if (err.responseCode === 535 || /\b5\.7\.3\b/.test(text)) {
    return {
      problem: `Exchange Online refused the app's token for ${account.mailbox} (535 5.7.3): the token is valid for Entra ID, but Exchange does not let this app use this mailbox`,
      fix:
        `1) register the app's service principal in Exchange: New-ServicePrincipal -AppId ${account.clientId} -ObjectId <Object ID of the Enterprise Application>; ` +
        `2) give it the mailbox: Add-MailboxPermission -Identity ${account.mailbox} -User <that service principal's Identity> -AccessRights FullAccess; ` +
        '3) check that the app has the Office 365 Exchange Online application permission SMTP.SendAsApp with admin consent, and that scope is https://outlook.office365.com/.default. ' +
        'Changes can take up to an hour to apply in Exchange Online',
    };
  }
  if (err.code === 'ETLS' || TLS_TRUST.test(text)) {
    if (/STARTTLS|upgrade/i.test(text) && !TLS_TRUST.test(text)) {
      return {
        problem: `${account.smtpHost}:${account.smtpPort} did not offer STARTTLS, so the relay refused to authenticate in clear text`,
        fix: 'check smtpHost and smtpPort (smtp.office365.com, 587); a firewall or antivirus that rewrites SMTP can strip STARTTLS: exempt this host',
      };
    }
    return tlsTrust(`${account.smtpHost}:${account.smtpPort}`);
  }
  if (err.code === 'ECONNECTION' || err.code === 'ETIMEDOUT' || err.code === 'EDNS' || err.code === 'ESOCKET' || UNREACHABLE.test(text)) {
    return {
      problem: `${account.smtpHost}:${account.smtpPort} could not be reached`,
      fix: `allow outbound TCP ${account.smtpPort} from this host to ${account.smtpHost} (many networks and ISPs block outbound SMTP ports), check DNS and smtpHost/smtpPort, then run this check again`,
    };
  }
  if (err.code === 'ETOKEN' || err instanceof TokenError) return explainTokenFailure(err, account);
  if (err.responseCode !== undefined) {
    return { problem: `Exchange Online answered ${err.responseCode}`, fix: 'read the reply above; the table "What happens to a message upstream" in the README says what each reply means' };
  }
  return { problem: 'the SMTP session failed for an unrecognised reason', fix: 'read the detail above; check smtpHost, smtpPort and the network path' };
}

/** A bare HTTPS request to `origin`: null when it answers at all, else the connection error's code and text. */
function probeHttps(origin: string, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    const req = httpsGet(origin, { timeout: Math.min(timeoutMs, 15_000) }, (res) => {
      res.resume();
      resolve(null);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${Math.min(timeoutMs, 15_000)} ms`), { code: 'ETIMEDOUT' })));
    req.on('error', (e: NodeJS.ErrnoException) => resolve(`${e.code ?? 'error'}: ${e.message}`));
  });
}

function tlsTrust(where: string): Explanation {
  return {
    problem: `the TLS certificate of ${where} is not trusted by this host`,
    fix:
      'a proxy or firewall that inspects TLS must exempt Microsoft 365 hosts, or give its CA to Node with NODE_EXTRA_CA_CERTS=/path/to/ca.pem; ' +
      'also check the system clock and that the host name is the real Microsoft one (the certificate must match it)',
  };
}

function smtpErrorText(err: unknown): string {
  const e = err as SmtpError;
  return (e.response || e.message || String(err)).replace(/\s+/g, ' ').trim();
}
