// The account lane with node:test's mock timers: pacing, holds and probes on monotonic time, one
// owner of where each message is. The deliveries are stand-ins (the lane's contract is the
// DeliverFn); the real ones are tested end to end in delivery.e2e.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { toConfig } from './helpers/harness.js';
import { accountsOf } from '../src/config/index.js';
import { silentLogger } from '../src/observability/logger.js';
import type { AccountTokenSource, MessageTransport } from '../src/relay/accountFactory.js';
import type { Ticket } from '../src/relay/accountHold.js';
import { AccountLane, type DeliveryEnd } from '../src/relay/lane.js';
import { mockClock } from './helpers/clock.js';

const tokens: AccountTokenSource = {
  getToken: () => Promise.resolve({ accessToken: 't', expiresOn: new Date(Date.now() + 3_600_000) }),
  health: () => ({ ok: true, expiresOn: null, lastError: null }),
  startBackgroundRefresh: () => undefined,
  stopBackgroundRefresh: () => undefined,
};
const transport: MessageTransport = { send: () => Promise.reject(new Error('not used')), close: () => undefined };

function account(rateLimit = { messages: 1000, perSeconds: 1 }) {
  const config = toConfig({
    listen: [{ port: 0 }],
    spool: { dir: '/nonexistent' },
    microsoft365: { tenantId: 't', clientId: 'c', clientSecret: 's', mailbox: 'relay@contoso.com', maxConnections: 3, rateLimit },
  });
  return accountsOf(config).get('default')!;
}

type Behaviour = (id: string, ticket: Ticket, lane: AccountLane) => DeliveryEnd | 'hold' | 'reachable';

function laneWith(t: Parameters<typeof mockClock>[0], behave: Behaviour, rateLimit?: { messages: number; perSeconds: number }) {
  const time = mockClock(t);
  const started: Array<{ id: string; at: number; probe: boolean }> = [];
  const lane: AccountLane = new AccountLane(
    account(rateLimit),
    tokens,
    transport,
    silentLogger(),
    time.clock,
    async (l, id, ticket) => {
      const release = await l.acquireSlot();
      try {
        if (l.isHolding && !ticket.probe) return { next: 'keep-place' };
        started.push({ id, at: time.clock.now(), probe: ticket.probe });
        const result = behave(id, ticket, l);
        if (result === 'hold') {
          l.report({ kind: 'hold', upstream: 'unreachable' }, ticket);
          return { next: 'keep-place' };
        }
        if (result === 'reachable') {
          l.report({ kind: 'reachable' }, ticket);
          return { next: 'done' };
        }
        return result;
      } finally {
        release();
      }
    },
    () => undefined,
  );
  t.after(() => lane.halt('test over'));
  return { lane, started, ...time };
}

test('lane: an outage holds the account; one probe per interval; the first success lets everything flow', async (t) => {
  let down = true;
  const { lane, started, clock, advance } = laneWith(t, () => (down ? 'hold' : 'reachable'));
  const t0 = clock.now();
  lane.activate();
  for (let i = 0; i < 10; i++) lane.enqueue(`m${i}`, t0);
  await advance(50);
  assert.equal(started.length, 1, 'the first failure holds the others before they go');
  await advance(14_000 - 50);
  // Probes 1 s, then 2 s, then 4 s apart: one at a time.
  const failedAt = started[0]!.at;
  assert.deepEqual(started.filter((s) => s.probe).map((s) => s.at - failedAt), [1_000, 3_000, 7_000]);
  down = false;
  await advance(10_000);
  const delivered = new Set(started.filter((s) => s.at > t0 + 15_000).map((s) => s.id));
  assert.equal(delivered.size, 10, 'all ten delivered after the probe that succeeded');
  assert.equal(lane.size, 0);
});

test('lane: a wall-clock step of an hour either way changes no timing', async (t) => {
  let down = true;
  const { lane, started, clock, advance, stepWall } = laneWith(t, () => (down ? 'hold' : 'reachable'), { messages: 3, perSeconds: 60 });
  const t0 = clock.now();
  lane.activate();
  lane.enqueue('a', t0);
  await advance(10);
  stepWall(-3_600_000);
  down = false;
  await advance(1_000);
  assert.equal(started.filter((s) => s.probe).length, 1, 'the probe went after 1 s despite the clock going back an hour');
  // Pacing: three per minute (a's failure counts too); c waits out the window, not the wall clock.
  lane.enqueue('b', clock.now());
  lane.enqueue('c', clock.now());
  await advance(100);
  stepWall(2 * 3_600_000);
  await advance(100);
  assert.deepEqual(started.map((s) => s.id), ['a', 'a', 'b'], 'a failed once, then a and b within the window');
  await advance(60_000);
  assert.deepEqual(started.map((s) => s.id), ['a', 'a', 'b', 'c']);
  const c = started[3]!;
  assert.ok(c.at - t0 >= 60_000 && c.at - t0 <= 62_000, `c went after ${c.at - t0} ms`);
});

test('lane: an id in flight is not scheduled twice; a deferral comes back at its time, an account failure at its old one', async (t) => {
  let releaseFirst: (end: DeliveryEnd) => void = () => undefined;
  let calls = 0;
  const time = mockClock(t);
  const starts: string[] = [];
  const lane = new AccountLane(
    account(),
    tokens,
    transport,
    silentLogger(),
    time.clock,
    (_l, id) => {
      starts.push(id);
      calls++;
      if (calls === 1) return new Promise<DeliveryEnd>((resolve) => (releaseFirst = resolve));
      return Promise.resolve({ next: 'done' });
    },
    () => undefined,
  );
  t.after(() => lane.halt('test over'));
  lane.activate();
  lane.enqueue('x', time.clock.now());
  await time.advance(10);
  assert.equal(lane.where('x'), 'in-flight');
  lane.enqueue('x', time.clock.now()); // a rescan racing the delivery
  await time.advance(10);
  assert.deepEqual(starts, ['x'], 'not started twice');
  releaseFirst({ next: 'retry-at', at: time.clock.now() + 15_000 });
  await time.advance(10);
  assert.equal(lane.where('x'), 'waiting');
  await time.advance(14_000);
  assert.deepEqual(starts, ['x']);
  await time.advance(1_100);
  assert.deepEqual(starts, ['x', 'x']);
});
