import type { RelayConfig } from '../config/index.js';
import { AuthThrottle } from './authThrottle.js';
import { NetworkList } from './networks.js';
import { UserDirectory } from './users.js';

export { AuthThrottle } from './authThrottle.js';
export { NetworkList, normalizeAddress, parseCidr, CidrError } from './networks.js';
export { hashPassword, parsePasswordHash, verifyPassword, PasswordHashError } from './passwords.js';
export { UserDirectory } from './users.js';

/**
 * Who may relay: a client in allowNetworks, or one that authenticated as a local user. There is
 * no third way in; this is what keeps the relay from ever being open.
 */
export class AccessPolicy {
  readonly networks: NetworkList;
  readonly users: UserDirectory;

  constructor(config: Pick<RelayConfig, 'allowNetworks' | 'users'>) {
    this.networks = new NetworkList(config.allowNetworks);
    this.users = new UserDirectory(config.users);
  }

  mayRelay(session: { remoteAddress?: string; user?: unknown }): boolean {
    return Boolean(session.user) || this.networks.contains(session.remoteAddress);
  }
}

export function createAuthThrottle(limits: RelayConfig['limits']): AuthThrottle {
  return new AuthThrottle({ maxFailures: limits.maxAuthFailures, windowMs: limits.authFailureWindow, blockMs: limits.authBlockDuration });
}
