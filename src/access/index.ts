import type { RelayConfig } from '../config/index.js';
import { AuthThrottle } from './authThrottle.js';
import { NetworkList } from './networks.js';
import { allowedNetworks, SenderBinding } from './senderBinding.js';
import { UserDirectory } from './users.js';

export { AuthThrottle } from './authThrottle.js';
export { NetworkList, normalizeAddress, parseCidr, CidrError, type Cidr } from './networks.js';
export { hashPassword, parsePasswordHash, verifyPassword, PasswordHashError, SCRYPT_DEFAULTS, type ParsedHash } from './passwords.js';
export { UserDirectory, DuplicateUserError } from './users.js';
export { SenderBinding } from './senderBinding.js';
export { ClientRateLimit } from './clientRate.js';

/** What the policy needs to know about a client: its address and, once AUTH succeeded, its user. */
export interface ClientIdentity {
  /** The socket's remote address (IPv4, IPv6 or IPv4-mapped IPv6). */
  remoteAddress?: string;
  /** The authenticated username; smtp-server sets session.user only after onAuth accepted it. */
  user?: unknown;
}

/**
 * Who may relay: a client whose address is in allowNetworks, or one that authenticated as a local
 * user. There is no third way in; this is what keeps the relay from ever being an open relay. An
 * empty allowNetworks with no users means nobody may relay.
 */
export class AccessPolicy {
  readonly networks: NetworkList;
  readonly users: UserDirectory;
  readonly senders: SenderBinding;

  /** Throws CidrError, PasswordHashError or DuplicateUserError for a configuration it cannot enforce. */
  constructor(config: Pick<RelayConfig, 'allowNetworks' | 'users'>) {
    this.networks = new NetworkList(allowedNetworks(config));
    this.users = new UserDirectory(config.users);
    this.senders = new SenderBinding(config);
  }

  /** Whether a client at this address may send without AUTH (it is in allowNetworks). */
  mayRelayWithoutAuth(address: string | undefined): boolean {
    return this.networks.contains(address);
  }

  /** Checks a local user's credentials (constant work whether or not the user exists). */
  authenticate(username: string, password: string): Promise<boolean> {
    return this.users.authenticate(username, password);
  }

  /**
   * The relay decision for a session: in allowNetworks, or authenticated as a user that still
   * exists (a reload that removes a user also stops its open sessions from sending more).
   */
  mayRelay(client: ClientIdentity): boolean {
    if (this.mayRelayWithoutAuth(client.remoteAddress)) return true;
    return typeof client.user === 'string' && client.user.length > 0 && this.users.has(client.user);
  }
}

export function createAuthThrottle(limits: RelayConfig['limits']): AuthThrottle {
  return new AuthThrottle({ maxFailures: limits.maxAuthFailures, windowMs: limits.authFailureWindow, blockMs: limits.authBlockDuration });
}
