import { NetworkList } from '../access/networks.js';
import { DEFAULT_ACCOUNT, type RouteConfig } from '../config/index.js';
import { addressKey } from '../mail/addresses.js';

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
  /** "user scanner", "network 10.1.0.0/16", "sender @ops.contoso.com", "recipientDomain contoso.com", or "default". */
  rule: string;
}

/** Some of a message's recipients and the route they take: one queue entry each. */
export interface RoutePart extends RouteDecision {
  recipients: string[];
}

interface CompiledRoute {
  account: string;
  rule: string;
  /** `recipient` is absent when the whole message is asked about (no recipientDomain route matches then). */
  matches(input: RouteInput, recipient?: string): boolean;
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

  /** The route of the message as a whole (recipientDomain routes aside). */
  resolve(input: RouteInput): RouteDecision {
    return this.resolveFor(input, undefined);
  }

  /**
   * Each recipient takes the first route that matches it; recipients of one account form one
   * part, in the order of their first recipient. One part (the usual case) is an unsplit message.
   * Parts of one account are one part even when different rules chose them (the first rule names it).
   */
  plan(input: RouteInput, recipients: readonly string[]): RoutePart[] {
    const parts = new Map<string, RoutePart>();
    for (const recipient of recipients) {
      const decision = this.resolveFor(input, recipient);
      const part = parts.get(decision.account);
      if (part) part.recipients.push(recipient);
      else parts.set(decision.account, { ...decision, recipients: [recipient] });
    }
    return [...parts.values()];
  }

  private resolveFor(input: RouteInput, recipient: string | undefined): RouteDecision {
    for (const route of this.routes) {
      if (route.matches(input, recipient)) return { account: route.account, rule: route.rule };
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
  if (route.recipientDomain !== undefined) {
    const domains = new Set(route.recipientDomain);
    return { account, rule: `recipientDomain ${route.recipientDomain.join(',')}`, matches: (_input, recipient) => recipient !== undefined && domains.has(domainOf(recipient)) };
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

/** The recipient's domain as recipientDomain lists it: lower-case ASCII (IDN as A-labels). */
function domainOf(address: string): string {
  const key = addressKey(address);
  return key.slice(key.lastIndexOf('@') + 1);
}
