import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Pacer } from '../src/relay/pacing.js';
import { mockClock } from './helpers/clock.js';

test('pacer: never more than the limit inside one window', async (t) => {
  const { clock, advance } = mockClock(t);
  const pacer = new Pacer({ messages: 3, perSeconds: 0.3 }, clock);
  const started: number[] = [];
  const all = Promise.all(
    Array.from({ length: 7 }, () =>
      pacer.acquire().then((done) => {
        started.push(clock.now());
        done();
      }),
    ),
  );
  await advance(1_000);
  await all;
  started.sort((a, b) => a - b);
  for (let i = 3; i < started.length; i++) {
    // the 4th start is at least one window after the 1st, and so on
    assert.ok(started[i]! - started[i - 3]! >= 300, `start ${i} came too early: ${started.join(',')}`);
  }
});

test('pacer: a submission still under way keeps its slot until it completes', async (t) => {
  const { clock, advance } = mockClock(t);
  const pacer = new Pacer({ messages: 1, perSeconds: 0.05 }, clock);
  const done = await pacer.acquire();
  let second = false;
  const next = pacer.acquire().then((d) => {
    second = true;
    d();
  });
  await advance(150);
  assert.equal(second, false, 'no second start while the first is under way, even after the window');
  done();
  await advance(200);
  await next;
  assert.equal(second, true);
});

test('pacer: a pause holds every waiter, and waits can be cancelled', async (t) => {
  const { clock, advance } = mockClock(t);
  const pacer = new Pacer(null, clock);
  pacer.pause(clock.now() + 150);
  const controller = new AbortController();
  const waiting = pacer.acquire(controller.signal);
  controller.abort(new Error('stop'));
  await assert.rejects(waiting, /stop/);
  let admittedAt = 0;
  const next = pacer.acquire().then(() => (admittedAt = clock.now()));
  const t0 = clock.now();
  await advance(200);
  await next;
  assert.ok(admittedAt - t0 >= 150, `admitted after ${admittedAt - t0} ms`);
});

test('pacer: a wall-clock step of an hour either way changes nothing (monotonic time)', async (t) => {
  const { clock, advance, stepWall } = mockClock(t);
  const pacer = new Pacer({ messages: 2, perSeconds: 1 }, clock);
  for (let i = 0; i < 2; i++) (await pacer.acquire())();
  stepWall(-3_600_000);
  let third = 0;
  const next = pacer.acquire().then((d) => {
    third = clock.now();
    d();
  });
  const t0 = clock.now();
  await advance(1_100);
  await next;
  assert.ok(third - t0 <= 1_010, `the window ended ${third - t0} ms later`);
  stepWall(2 * 3_600_000);
  pacer.pause(clock.now() + 500);
  let fourth = 0;
  const after = pacer.acquire().then(() => (fourth = clock.now()));
  const t1 = clock.now();
  await advance(600);
  await after;
  assert.ok(fourth - t1 >= 500 && fourth - t1 <= 520, `paused ${fourth - t1} ms`);
});
