import type { TestContext } from 'node:test';
import type { Clock } from '../../src/relay/clock.js';

/**
 * node:test's mock timers with a clock for the delivery loop: monotonic time is the mocked
 * Date.now(), and the wall clock can be stepped on its own (a clock step must change no timing).
 */
export function mockClock(t: TestContext, start = 1_700_000_000_000): { clock: Clock; advance(ms: number): Promise<void>; stepWall(ms: number): void } {
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: start });
  let wallOffset = 0;
  const clock: Clock = { now: () => Date.now(), wall: () => Date.now() + wallOffset };
  return {
    clock,
    /** Moves time forward in small steps, letting promise chains run between timers. */
    async advance(ms: number) {
      const step = 10;
      for (let done = 0; done < ms; done += step) {
        t.mock.timers.tick(Math.min(step, ms - done));
        for (let i = 0; i < 5; i++) await Promise.resolve();
      }
    },
    stepWall(ms: number) {
      wallOffset += ms;
    },
  };
}
