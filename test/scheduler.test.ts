import assert from 'node:assert/strict';
import { test } from 'node:test';
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
