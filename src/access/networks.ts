import { BlockList, isIPv4, isIPv6 } from 'node:net';

/** A parsed CIDR network such as 192.168.10.0/24 or fd00::/8. */
export interface Cidr {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** Thrown for a network that is not valid CIDR notation; the message names the value. */
export class CidrError extends Error {
  override readonly name = 'CidrError';
}

/**
 * Parses "a.b.c.d/n", "x::y/n" or a bare address (taken as a single host: /32 or /128).
 * Host bits set below the prefix (192.168.10.5/24) are accepted, as most MTAs do.
 */
export function parseCidr(text: string): Cidr {
  const value = text.trim();
  const slash = value.indexOf('/');
  const address = slash === -1 ? value : value.slice(0, slash);
  const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : null;
  if (!family) throw new CidrError(`"${text}" is not an IP network (expected e.g. 192.168.10.0/24 or fd00::/8)`);
  const max = family === 'ipv4' ? 32 : 128;
  if (slash === -1) return { address, prefix: max, family };
  const prefixText = value.slice(slash + 1);
  const prefix = Number(prefixText);
  if (!/^\d{1,3}$/.test(prefixText) || prefix > max) {
    throw new CidrError(`"${text}" has an invalid prefix length (0-${max} for ${family === 'ipv4' ? 'IPv4' : 'IPv6'})`);
  }
  return { address, prefix, family };
}

/**
 * An IPv4 client on a dual-stack socket shows up as ::ffff:192.168.10.5; match it as IPv4 so that
 * an IPv4 allow rule applies to it.
 */
export function normalizeAddress(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped?.[1]) return mapped[1];
  const zone = address.indexOf('%');
  return zone === -1 ? address : address.slice(0, zone);
}

/** A set of networks with a membership test for client addresses. */
export class NetworkList {
  private readonly list = new BlockList();
  readonly networks: readonly Cidr[];

  constructor(networks: readonly string[]) {
    this.networks = networks.map(parseCidr);
    for (const net of this.networks) this.list.addSubnet(net.address, net.prefix, net.family);
  }

  contains(address: string | undefined): boolean {
    if (!address) return false;
    const normalized = normalizeAddress(address);
    if (isIPv4(normalized)) return this.list.check(normalized, 'ipv4');
    if (isIPv6(normalized)) return this.list.check(normalized, 'ipv6');
    return false;
  }
}
