import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Pacer } from '../src/relay/pacing.js';
import { Scheduler } from '../src/relay/scheduler.js';

test('scheduler: hands out due ids earliest first, arrival order on ties', () => {
  const s = new Scheduler();
  s.schedule('B', 0);
  s.schedule('A', 0);
  s.schedule('C', 500);
  s.schedule('D', 100);
  assert.deepEqual([s.takeDue(1000), s.takeDue(1000), s.takeDue(1000), s.takeDue(1000), s.takeDue(1000)], ['A', 'B', 'D', 'C', null]);
});

test('scheduler: not-yet-due ids wait; re-scheduling replaces the old time', () => {
  const s = new Scheduler();
  s.schedule('A', 1000);
  assert.equal(s.takeDue(999), null);
  assert.equal(s.nextDueAt(), 1000);
  s.schedule('A', 5000);
  assert.equal(s.takeDue(1000), null);
  assert.equal(s.nextDueAt(), 5000);
  s.remove('A');
  assert.equal(s.nextDueAt(), null);
  assert.equal(s.size, 0);
});

test('pacer: never more than the limit inside one window', async () => {
  const pacer = new Pacer({ messages: 3, perSeconds: 0.3 });
  const started: number[] = [];
  const t0 = Date.now();
  await Promise.all(
    Array.from({ length: 7 }, () =>
      pacer.acquire().then((done) => {
        started.push(Date.now() - t0);
        done();
      }),
    ),
  );
  started.sort((a, b) => a - b);
  for (let i = 3; i < started.length; i++) {
    // the 4th start is at least one window after the 1st, and so on
    assert.ok(started[i]! - started[i - 3]! >= 295, `start ${i} came too early: ${started.join(',')}`);
  }
});

test('pacer: a submission still under way keeps its slot until it completes', async () => {
  const pacer = new Pacer({ messages: 1, perSeconds: 0.05 });
  const done = await pacer.acquire();
  let second = false;
  const next = pacer.acquire().then((d) => {
    second = true;
    d();
  });
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(second, false, 'no second start while the first is under way, even after the window');
  done();
  await next;
  assert.equal(second, true);
});

test('pacer: a pause holds every waiter, and waits can be cancelled', async () => {
  const pacer = new Pacer(null);
  pacer.pause(Date.now() + 150);
  const controller = new AbortController();
  const waiting = pacer.acquire(controller.signal);
  controller.abort(new Error('stop'));
  await assert.rejects(waiting, /stop/);
  const t0 = Date.now();
  await pacer.acquire();
  assert.ok(Date.now() - t0 >= 100);
});

test('scheduler: drain hands over every scheduled id with its latest due time, earliest first', () => {
  const s = new Scheduler();
  s.schedule('b', 200);
  s.schedule('a', 300);
  s.schedule('c', 100);
  s.schedule('a', 50); // rescheduled: the stale entry must not come back
  assert.deepEqual(s.drain(), [
    { id: 'a', at: 50 },
    { id: 'c', at: 100 },
    { id: 'b', at: 200 },
  ]);
  assert.equal(s.size, 0);
  assert.equal(s.takeDue(Number.MAX_SAFE_INTEGER), null);
  assert.equal(s.nextDueAt(), null);
});
