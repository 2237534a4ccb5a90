import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nextAttempt } from '../src/retry/policy.js';

const MIN = 60_000;
const policy = { schedule: [1, 2, 5, 10, 15, 30, 60].map((m) => m * MIN), maxAge: 5 * 24 * 60 * MIN, jitter: 0.1 };
const t0 = Date.parse('2026-11-23T08:00:00Z');

test('retry: follows the schedule, then repeats its last step', () => {
  const delays = [1, 2, 3, 4, 5, 6, 7, 8, 20].map((attempts) => {
    const d = nextAttempt(policy, { attempts, receivedAt: t0, now: t0, random: 0 });
    assert.equal(d.action, 'retry');
    return d.action === 'retry' ? d.delayMs / MIN : NaN;
  });
  assert.deepEqual(delays, [1, 2, 5, 10, 15, 30, 60, 60, 60]);
});

test('retry: jitter adds at most the configured share', () => {
  const low = nextAttempt(policy, { attempts: 3, receivedAt: t0, now: t0, random: 0 });
  const high = nextAttempt(policy, { attempts: 3, receivedAt: t0, now: t0, random: 0.999999 });
  assert.ok(low.action === 'retry' && high.action === 'retry');
  assert.equal(low.delayMs, 5 * MIN);
  assert.ok(high.delayMs > 5 * MIN && high.delayMs <= 5.5 * MIN);
});

test('retry: an upstream hint is a lower bound', () => {
  const d = nextAttempt(policy, { attempts: 1, receivedAt: t0, now: t0, minDelayMs: 60 * MIN, random: 0 });
  assert.ok(d.action === 'retry');
  assert.equal(d.delayMs, 60 * MIN);
});

test('retry: the last attempt is made at the end of the lifetime, then the message expires', () => {
  const nearEnd = t0 + policy.maxAge - 10 * MIN;
  const d = nextAttempt(policy, { attempts: 50, receivedAt: t0, now: nearEnd, random: 0 });
  assert.ok(d.action === 'retry');
  assert.equal(d.at, t0 + policy.maxAge);
  assert.deepEqual(nextAttempt(policy, { attempts: 51, receivedAt: t0, now: t0 + policy.maxAge, random: 0 }), { action: 'expire' });
});
