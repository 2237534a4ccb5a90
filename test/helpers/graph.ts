// A relay whose account sends through the simulator's Microsoft Graph (transport: graph).
import { join } from 'node:path';
import type { Simulator } from '../../src/simulator/index.js';
import { rawConfigFor, startInProcessRelay } from './harness.js';

export const GRAPH_APP = 'dddddddd-0000-0000-0000-000000000001';
export const GRAPH_MAILBOX = 'alerts@contoso.com';

/** The account `alerts`: GRAPH_APP sending as GRAPH_MAILBOX through the simulator's Graph. */
export function graphAccount(sim: Simulator, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    tenantId: sim.tenantId,
    clientId: GRAPH_APP,
    clientSecret: 'graph-secret',
    authorityHost: sim.authorityHost,
    mailbox: GRAPH_MAILBOX,
    sendAs: ['@ops.contoso.com'],
    transport: 'graph',
    graphHost: sim.graphHost,
    tokenTimeout: '5s',
    smtpTimeout: '20s',
    rateLimit: { messages: 1000, perSeconds: 60 },
    ...extra,
  };
}

/** A raw configuration routing @ops.contoso.com senders to `account` (named alerts). */
export function graphConfig(sim: Simulator, spoolDir: string, account: Record<string, unknown>, retry: Record<string, unknown> = {}) {
  return rawConfigFor(sim, spoolDir, { accounts: { alerts: account }, routes: [{ sender: '@ops.contoso.com', account: 'alerts' }], retry });
}

/** An in-process relay with that configuration and a new spool under `dir`; also says where the spool is. */
export async function startGraphRelay(sim: Simulator, dir: string, account: Record<string, unknown>, retry: Record<string, unknown> = {}) {
  const spoolDir = join(dir, 'spool');
  return Object.assign(await startInProcessRelay(graphConfig(sim, spoolDir, account, retry)), { spoolDir });
}
