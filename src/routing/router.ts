import { NetworkList } from '../access/networks.js';
import { DEFAULT_ACCOUNT, type RouteConfig } from '../config/index.js';

/** What a route is chosen from: who handed the message over, and its envelope sender. */
export interface RouteInput {
  /** The authenticated local user, if the session logged in. */
  user?: string;
  /** The client's address (IPv4, IPv6 or IPv4-mapped IPv6). */
  address: string;
  /** The envelope sender; '' for the null sender <>. */
  sender: string;
}

/** The account chosen for a message and the rule that chose it; stored in its metadata. */
export interface RouteDecision {
  account: string;
  /** "user scanner", "network 10.1.0.0/16", "sender @ops.contoso.com", or "default" when no route matched. */
  rule: string;
}

interface CompiledRoute {
  account: string;
  rule: string;
  matches(input: RouteInput): boolean;
}

/**
 * The `routes:` list, compiled once per configuration. First match wins; no match is the default
 * account. A sender rule "@domain" matches that domain exactly, not its subdomains (the same as
 * sendAs): "@contoso.com" does not match ops.contoso.com, list both if both are meant.
 */
export class Router {
  private readonly routes: CompiledRoute[];

  constructor(routes: readonly RouteConfig[]) {
    this.routes = routes.map(compile);
  }

  resolve(input: RouteInput): RouteDecision {
    for (const route of this.routes) {
      if (route.matches(input)) return { account: route.account, rule: route.rule };
    }
    return { account: DEFAULT_ACCOUNT, rule: 'default' };
  }
}

function compile(route: RouteConfig): CompiledRoute {
  const { account } = route;
  if (route.user !== undefined) {
    const user = route.user;
    // Usernames are SASL login names, compared verbatim as the user directory does.
    return { account, rule: `user ${user}`, matches: (input) => input.user === user };
  }
  if (route.network !== undefined) {
    const networks = new NetworkList([route.network]);
    return { account, rule: `network ${route.network}`, matches: (input) => networks.contains(input.address) };
  }
  const sender = (route.sender ?? '').toLowerCase();
  return { account, rule: `sender ${sender}`, matches: (input) => senderMatches(sender, input.sender) };
}

/** "alerts@contoso.com" matches that address; "@contoso.com" any address whose domain is exactly contoso.com. */
export function senderMatches(pattern: string, sender: string): boolean {
  const address = sender.trim().toLowerCase();
  const at = address.lastIndexOf('@');
  if (at <= 0) return false; // the null sender and bare local parts match no sender rule
  return pattern.startsWith('@') ? address.slice(at) === pattern : address === pattern;
}
