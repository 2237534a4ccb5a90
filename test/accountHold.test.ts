import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AccountHold, HOLD_BASE_MS, HOLD_MAX_MS, type Ticket } from '../src/relay/accountHold.js';

function go(hold: AccountHold, now: number): Ticket {
  const a = hold.admit(now);
  assert.equal(a.kind, 'go');
  return (a as { ticket: Ticket }).ticket;
}

test('account hold: a failure shared by concurrent deliveries counts once', () => {
  const hold = new AccountHold();
  const tickets = [go(hold, 0), go(hold, 0), go(hold, 0)];
  assert.equal(hold.fault(tickets[0]!, 10), true);
  assert.equal(hold.fault(tickets[1]!, 11), false);
  assert.equal(hold.fault(tickets[2]!, 12), false);
  assert.deepEqual(hold.admit(20), { kind: 'wait', until: 10 + HOLD_BASE_MS });
});

test('account hold: one probe at a time, backoff from 1 s doubling to 10 s, the first answer opens', () => {
  const hold = new AccountHold();
  let now = 0;
  hold.fault(go(hold, now), now);
  const waits: number[] = [];
  for (let i = 0; i < 8; i++) {
    const admission = hold.admit(now);
    assert.equal(admission.kind, 'wait');
    const until = (admission as { until: number }).until;
    waits.push(until - now);
    now = until;
    const probe = go(hold, now);
    assert.equal(probe.probe, true);
    assert.deepEqual(hold.admit(now), { kind: 'wait', until: null }, 'no second delivery while the probe runs');
    hold.fault(probe, now);
  }
  assert.deepEqual(waits, [1_000, 2_000, 4_000, 8_000, 10_000, 10_000, 10_000, 10_000]);
  assert.equal(HOLD_BASE_MS, 1_000);
  assert.equal(HOLD_MAX_MS, 10_000);
  now += 10_000;
  const probe = go(hold, now);
  assert.equal(hold.reachable(probe), true);
  const after = go(hold, now);
  assert.equal(after.probe, false, 'open again: everything flows');
  assert.equal(go(hold, now).probe, false);
});

test('account hold: a late failure of a delivery from before the hold does not extend it; probeNow probes at once', () => {
  const hold = new AccountHold();
  const early = go(hold, 0);
  const early2 = go(hold, 0);
  hold.fault(early, 0);
  const probe = (hold.admit(1_000) as { ticket: Ticket }).ticket;
  assert.equal(hold.fault(early2, 1_001), false);
  hold.fault(probe, 1_002); // next in 1 s
  assert.equal(hold.admit(1_500).kind, 'wait');
  hold.probeNow(1_500);
  assert.equal(go(hold, 1_500).probe, true);
});

test('account hold: a probe that ends without reaching upstream lets the next one go', () => {
  const hold = new AccountHold();
  hold.fault(go(hold, 0), 0);
  const probe = go(hold, 1_000);
  hold.settle(probe);
  assert.equal(go(hold, 1_000).probe, true);
});
