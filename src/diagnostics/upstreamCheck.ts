// `check-config --connect`: does what a delivery does up to the point of sending (token, connect,
// STARTTLS, AUTH XOAUTH2, QUIT) and turns any failure into the problem and its fix in plain words.
import { get as httpsGet } from 'node:https';
import nodemailer, { type TransportOptions } from 'nodemailer';
import type { AccountConfig, Microsoft365Config } from '../config/index.js';
import { TokenError, type AccessToken, type TokenSource } from '../oauth/index.js';
import { httpsAgentFor, ProxyError, proxyNote } from '../proxy/index.js';
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
  const tokenStep = `${account.flow === 'device-code' ? `delegated token for ${account.mailbox} (token cache ${account.tokenCacheFile})` : `token for app ${account.clientId}`} from ${account.authorityHost}${via(account, new URL(account.authorityHost).hostname)}`;
  try {
    token = await tokens.getToken();
    findings.push({ step: tokenStep, ok: true, detail: `obtained, valid until ${token.expiresOn.toISOString()}` });
  } catch (err) {
    // msal reports a failed connection with little of its cause: ask the endpoint ourselves (by
    // the same proxy) to learn whether it was the proxy, DNS, a refused port or an untrusted certificate.
    const network = err instanceof TokenError && err.kind === 'configuration' ? null : await probeHttps(account, account.authorityHost, account.tokenTimeout);
    const detail = network ? `${(err as Error).message} (${network.message})` : (err as Error).message;
    findings.push({ step: tokenStep, ok: false, detail, ...explainTokenFailure(network ? new Error(detail, { cause: network }) : err, account) });
    return findings;
  }

  findings.push(...inspectTokenClaims(token.accessToken, account));
  if (account.transport === 'graph') {
    // Graph has no way to log in without sending; Mail.Send is proven by a real message.
    findings.push({ step: `Graph sendMail at ${account.graphHost}${via(account, new URL(account.graphHost).hostname)}`, ok: true, detail: 'not tried without sending: run m365-relay send-test to prove Mail.Send for the mailbox' });
    return findings;
  }

  const smtpStep = `SMTP session with ${account.smtpHost}:${account.smtpPort}${via(account, account.smtpHost)} (STARTTLS, AUTH XOAUTH2 as ${account.mailbox}), nothing sent`;
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

function via(account: Pick<AccountConfig, 'proxy'>, host: string): string {
  return proxyNote(account.proxy, host);
}

/** The ProxyError somewhere in an error's cause chain. */
function proxyErrorIn(err: unknown): ProxyError | null {
  let current = err;
  for (let depth = 0; depth < 6 && current; depth++) {
    if (current instanceof ProxyError) return current;
    current = (current as { cause?: unknown }).cause;
  }
  return null;
}

/** What each refusal of the proxy means, and its fix. */
export function explainProxyFailure(err: ProxyError, account: Pick<AccountConfig, 'proxy'>): Explanation {
  const where = account.proxy !== undefined ? 'the proxy key of the configuration' : 'HTTPS_PROXY in the service environment';
  switch (err.kind) {
    case 'unreachable':
      return {
        problem: `the proxy ${err.proxy} cannot be reached (connection refused, DNS or network): the relay never got to ${err.target}`,
        fix: `check the proxy's host and port in ${where}, that the proxy is running and that this host may connect to it; if this network needs no proxy, set proxy: direct`,
      };
    case 'auth':
      return {
        problem: err.message.includes('refused the credentials') ? `the proxy ${err.proxy} refused the user name or password (407)` : `the proxy ${err.proxy} needs authentication (407 Proxy Authentication Required)`,
        fix:
          'put the proxy account in the URL: proxy: "http://${PROXY_USER}:${PROXY_PASSWORD}@host:port" (the values from the environment or ${file:/path}; percent-encode @ : / in them). ' +
          'Only Basic authentication is supported: a proxy that wants NTLM or Kerberos needs a rule that lets this host through without authentication',
      };
    case 'forbidden': {
      const port = Number(err.target.slice(err.target.lastIndexOf(':') + 1));
      const smtp = port !== 443;
      return {
        problem: `the proxy ${err.proxy} does not allow a tunnel to ${err.target} (answered ${err.status ?? '?'} to CONNECT)`,
        fix: smtp
          ? `allow CONNECT to ${err.target} in the proxy (many proxies allow CONNECT to port 443 only: in Squid, add ${port} to the SSL_ports ACL or allow it before "http_access deny CONNECT !SSL_ports"); or use transport: graph, which needs only HTTPS (443); or set proxy: direct for this account and open TCP ${port} outbound in the firewall`
          : `allow CONNECT to ${err.target} in the proxy's allow list (the Microsoft 365 endpoints must be reachable without TLS inspection)`,
      };
    }
    case 'timeout':
      return { problem: `the proxy ${err.proxy} did not open the tunnel to ${err.target} in time`, fix: `check that the proxy can reach ${err.target} and is not overloaded; check the host and port in ${where}` };
  }
}

export function explainTokenFailure(err: unknown, account: Pick<AccountConfig, 'authorityHost' | 'proxy'>): Explanation {
  const text = `${(err as Error)?.message ?? ''} ${String((err as { cause?: unknown })?.cause ?? '')}`;
  const proxyError = proxyErrorIn(err);
  if (proxyError) return explainProxyFailure(proxyError, account);
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
  const proxyError = proxyErrorIn(err);
  if (proxyError) return explainProxyFailure(proxyError, account);
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

/** A bare HTTPS request to `origin` (by the account's proxy): null when it answers at all, else the connection's error. */
function probeHttps(account: Pick<AccountConfig, 'proxy'>, origin: string, timeoutMs: number): Promise<Error | null> {
  const bound = Math.min(timeoutMs, 15_000);
  const agent = httpsAgentFor(account.proxy, new URL(origin).hostname, bound);
  return new Promise<Error | null>((resolve) => {
    const req = httpsGet(origin, { timeout: bound, agent }, (res) => {
      res.resume();
      resolve(null);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${bound} ms`), { code: 'ETIMEDOUT' })));
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e instanceof ProxyError ? e : Object.assign(new Error(`${e.code ?? 'error'}: ${e.message}`, { cause: e }), { code: e.code })));
  }).finally(() => agent.destroy());
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
