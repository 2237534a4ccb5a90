// Which proxy, if any, a connection to Microsoft 365 goes through: the configuration's `proxy` (an
// account's own, else the global one), else the environment as curl reads it. Pure functions.
import { BlockList, isIP } from 'node:net';

/** The value of a `proxy` key: `direct` means no proxy, even where the environment names one. */
export const DIRECT = 'direct';

/** Why a `proxy` value cannot be used; the message never contains its credentials. */
export class ProxyUrlError extends Error {
  override readonly name = 'ProxyUrlError';
}

/**
 * Parses a proxy URL: http:// or https://, a host, an optional port (default 80 / 443), optional
 * user:password (percent-encoded as in any URL), and nothing else (no path, query or fragment).
 */
export function parseProxyUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw new ProxyUrlError(`"${redactProxyUrl(text)}" is not a URL; write it as http://proxy.example.com:3128 (or https://, optionally http://user:password@host:port)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ProxyUrlError(`${url.protocol}// proxies are not supported: give an http:// or https:// proxy that allows CONNECT`);
  }
  if (!url.hostname) throw new ProxyUrlError('the proxy URL has no host');
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
    throw new ProxyUrlError(`"${redactProxyUrl(url)}" has a path, query or fragment; a proxy URL is only scheme://[user:password@]host[:port]`);
  }
  return url;
}

/** The URL as it may be shown: credentials replaced by "***" (the user name too: it can be a token). */
export function redactProxyUrl(url: string | URL): string {
  if (url instanceof URL) {
    const port = url.port ? `:${url.port}` : '';
    return `${url.protocol}//${url.username || url.password ? '***@' : ''}${url.hostname}${port}`;
  }
  // Not a parsable URL: hide anything before an "@" in the authority.
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^/@\s]*@/i, (_, scheme: string | undefined) => `${scheme ?? ''}***@`);
}

/** The proxy a connection from this account uses, and where that choice came from (for check-config). */
export interface ProxyChoice {
  url: URL;
  /** `proxy` (the configuration) or the environment variable it came from. */
  source: string;
}

/**
 * The proxy for a connection to `host` (a name or an IP address): the configured value when there
 * is one (`direct` = none), else https_proxy / HTTPS_PROXY from `env` unless no_proxy / NO_PROXY
 * matches the host. HTTPS_PROXY serves SMTP too: the SMTP session is tunnelled with CONNECT and
 * encrypted end to end by STARTTLS, just as HTTPS is. A bad URL in the environment throws.
 */
export function proxyFor(configured: string | undefined, host: string, env: NodeJS.ProcessEnv): ProxyChoice | null {
  if (configured !== undefined) return configured === DIRECT ? null : { url: parseProxyUrl(configured), source: 'proxy' };
  const name = ['https_proxy', 'HTTPS_PROXY'].find((n) => env[n]?.trim());
  if (!name) return null;
  const noProxy = env.no_proxy ?? env.NO_PROXY;
  if (noProxy !== undefined && noProxyMatches(host, noProxy)) return null;
  try {
    return { url: parseProxyUrl(env[name] ?? ''), source: name };
  } catch (err) {
    throw new ProxyUrlError(`${name}: ${(err as Error).message}`);
  }
}

/** " via proxy http://***@proxy:3128 (from HTTPS_PROXY)" when connections to `host` go through a proxy, else "". */
export function proxyNote(configured: string | undefined, host: string, env: NodeJS.ProcessEnv = process.env): string {
  const choice = proxyFor(configured, host, env);
  return choice ? ` via proxy ${redactProxyUrl(choice.url)}${choice.source === 'proxy' ? '' : ` (from ${choice.source})`}` : '';
}

/**
 * curl's NO_PROXY rules (lib/noproxy.c): a comma-separated list; `*` alone matches every host; a
 * name matches itself and its subdomains ("contoso.com" and ".contoso.com" both match contoso.com
 * and smtp.contoso.com, never notcontoso.com); an IP address destination matches only IP entries,
 * exactly or by CIDR (10.0.0.0/8, fd00::/8). Case and trailing dots are ignored. Ports are not
 * part of an entry (curl ignores them too, so "host:587" matches nothing). Loopback is not special:
 * as with curl, 127.0.0.1 and localhost go through the proxy unless NO_PROXY lists them.
 */
export function noProxyMatches(host: string, noProxy: string): boolean {
  const list = noProxy.trim();
  if (list === '*') return true;
  const target = host.replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '').toLowerCase();
  const family = isIP(target);
  for (const raw of list.split(/[,\s]+/)) {
    const entry = raw.trim().toLowerCase().replace(/\.$/, '');
    if (!entry) continue;
    if (family !== 0) {
      if (ipMatches(target, family, entry)) return true;
      continue;
    }
    const name = entry.startsWith('.') ? entry.slice(1) : entry;
    if (name && (target === name || target.endsWith(`.${name}`))) return true;
  }
  return false;
}

function ipMatches(address: string, family: number, entry: string): boolean {
  const slash = entry.indexOf('/');
  const network = slash === -1 ? entry : entry.slice(0, slash);
  if (isIP(network) !== family) return false;
  const max = family === 4 ? 32 : 128;
  const bitsText = slash === -1 ? String(max) : entry.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bitsText)) return false;
  const bits = Number(bitsText);
  if (bits > max) return false;
  const list = new BlockList();
  const type = family === 4 ? 'ipv4' : 'ipv6';
  list.addSubnet(network, bits, type);
  return list.check(address, type);
}
