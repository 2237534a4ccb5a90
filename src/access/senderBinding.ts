import type { RelayConfig } from '../config/index.js';
import { matchesAddressList } from '../mail/addresses.js';
import { NetworkList } from './networks.js';

/**
 * Who may send as whom (`users[].allowedSenders`, `allowNetworks[].allowedSenders`). A user that
 * logged in is bound by its own list (none: any sender, as before). A client without AUTH is bound
 * by the most specific allowNetworks entry that contains its address: a plain CIDR entry binds to
 * nothing. Without any allowedSenders in the configuration nothing changes.
 */
export class SenderBinding {
  private readonly byUser = new Map<string, readonly string[]>();
  /** Every allowNetworks entry, most specific first, with its senders (null: unbound). */
  private readonly networks: Array<{ list: NetworkList; senders: readonly string[] | null }>;

  constructor(config: Pick<RelayConfig, 'allowNetworks' | 'users'>) {
    for (const user of config.users) if (user.allowedSenders) this.byUser.set(user.username, user.allowedSenders);
    this.networks = config.allowNetworks
      .map((entry) => (typeof entry === 'string' ? { network: entry, senders: null } : { network: entry.network, senders: entry.allowedSenders }))
      .map(({ network, senders }) => ({ list: new NetworkList([network]), senders }))
      .sort((a, b) => (b.list.networks[0]?.prefix ?? 0) - (a.list.networks[0]?.prefix ?? 0));
  }

  /** The senders this client is bound to, or null when it may use any. */
  sendersFor(client: { user?: string; address?: string }): readonly string[] | null {
    if (client.user) return this.byUser.get(client.user) ?? null;
    return this.networks.find((n) => n.list.contains(client.address))?.senders ?? null;
  }

  /** Whether the client may use this envelope sender ('' is the null sender <>). */
  allows(client: { user?: string; address?: string }, sender: string): boolean {
    const senders = this.sendersFor(client);
    return senders === null || matchesAddressList(senders, sender);
  }
}

/** The CIDR strings of allowNetworks, bound or not. */
export function allowedNetworks(config: Pick<RelayConfig, 'allowNetworks'>): string[] {
  return config.allowNetworks.map((entry) => (typeof entry === 'string' ? entry : entry.network));
}
