import { accountsOf, type AccountConfig, type RelayConfig } from '../config/index.js';
import type { Logger } from '../observability/logger.js';
import type { AccountFactory, AccountTokenSource, MessageTransport } from './accountFactory.js';
import type { Clock } from './clock.js';
import { AccountLane, type DeliverFn } from './lane.js';

/** What every lane is built with besides its account's parts. */
export interface LaneWiring {
  clock: Clock;
  deliver: DeliverFn;
  /** A retired lane's message that still needs delivering (ended after the lane was retired). */
  rehome(id: string, dueAt: number, from: AccountLane): void;
}

/** A reload prepared by LaneSet.prepare: nothing has changed until apply(). */
export interface ReconfigurePlan {
  apply(): void;
  /** Drops what was built for the plan (the reload was refused elsewhere). */
  discard(): void;
}

/**
 * The lanes of the configured accounts, and of removed accounts still finishing their deliveries.
 * Builds each lane's parts through the AccountFactory and swaps them on reload.
 */
export class LaneSet {
  private readonly lanes = new Map<string, AccountLane>();
  /** Lanes of accounts removed by a reload, finishing their deliveries under way. */
  private readonly retiring = new Set<AccountLane>();

  /** Throws AccountSetupError (or TokenError for an unreadable certificate) when an account cannot be set up. */
  constructor(
    config: RelayConfig,
    private readonly factory: AccountFactory,
    private readonly logger: Logger,
    private readonly wiring: LaneWiring,
  ) {
    try {
      for (const account of accountsOf(config).values()) {
        this.lanes.set(account.name, this.newLane(account, this.buildParts(account)));
      }
    } catch (err) {
      for (const lane of this.lanes.values()) lane.close();
      throw err;
    }
  }

  get(name: string): AccountLane | undefined {
    return this.lanes.get(name);
  }

  /** The lanes of the configured accounts. */
  active(): AccountLane[] {
    return [...this.lanes.values()];
  }

  /** Configured and retiring lanes. */
  all(): AccountLane[] {
    return [...this.lanes.values(), ...this.retiring];
  }

  private newLane(account: AccountConfig, parts: { tokens: AccountTokenSource; transport: MessageTransport }): AccountLane {
    const { clock, deliver, rehome } = this.wiring;
    return new AccountLane(account, parts.tokens, parts.transport, this.logger, clock, deliver, rehome);
  }

  private buildParts(account: AccountConfig): { tokens: AccountTokenSource; transport: MessageTransport } {
    const tokens = this.factory.createTokenSource(account, this.logger);
    try {
      return { tokens, transport: this.factory.createTransport(account, tokens, this.logger) };
    } catch (err) {
      tokens.stopBackgroundRefresh();
      throw err;
    }
  }

  /**
   * Builds the token source and transport of every new or changed account first, so that an
   * account this build cannot set up refuses the reload (AccountSetupError) with nothing changed.
   * apply() then switches: changed accounts use their new parts at once (the old transport closes
   * when its deliveries finish), unchanged accounts keep theirs, new ones start (`activate` when
   * the worker runs), and removed ones are handed to `onRetire` and closed once their deliveries
   * under way have settled.
   */
  prepare(config: RelayConfig, hooks: { activate: boolean; onRetire(lane: AccountLane): void }): ReconfigurePlan {
    const next = accountsOf(config);
    const built = new Map<string, { tokens: AccountTokenSource; transport: MessageTransport }>();
    const discard = () => {
      for (const parts of built.values()) {
        parts.tokens.stopBackgroundRefresh();
        parts.transport.close();
      }
    };
    try {
      for (const [name, account] of next) {
        const lane = this.lanes.get(name);
        if (!lane || !sameSettings(lane.account, account)) built.set(name, this.buildParts(account));
      }
    } catch (err) {
      discard();
      throw err;
    }
    const apply = () => {
      for (const [name, account] of next) {
        const lane = this.lanes.get(name);
        const parts = built.get(name);
        if (lane && parts) {
          lane.replace(account, parts.tokens, parts.transport);
          this.logger.info({ event: 'account-changed', account: name }, `account ${name}: new settings in use`);
        } else if (lane) {
          lane.update(account);
        } else if (parts) {
          const added = this.newLane(account, parts);
          this.lanes.set(name, added);
          if (hooks.activate) added.activate();
          this.logger.info({ event: 'account-added', account: name }, `account ${name} added`);
        }
      }
      for (const [name, lane] of this.lanes) if (!next.has(name)) this.retire(lane, hooks.onRetire);
    };
    return { apply, discard };
  }

  private retire(lane: AccountLane, onRetire: (lane: AccountLane) => void): void {
    this.lanes.delete(lane.name);
    this.retiring.add(lane);
    lane.retire();
    onRetire(lane);
    void lane.settled().then(() => {
      lane.close();
      this.retiring.delete(lane);
    });
  }
}

/** Whether a reload changed an account's settings (then it gets a new token source and transport). */
function sameSettings(a: AccountConfig, b: AccountConfig): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
