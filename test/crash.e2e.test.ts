// kill -9 of the real daemon at each step between "bytes arrive" and "Exchange has it", then a
// restart on the same spool: every message acknowledged with 250 must reach the simulator.
// The crash is injected with M365_RELAY_CRASH_AT (src/spool/crashPoints.ts): the daemon SIGKILLs
// itself at exactly that step, so each window is hit every time rather than by luck.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { rawConfigFor, sampleMessage, sendMessage, spawnRelay, simulatorSuite } from './helpers/harness.js';
import { waitFor } from './helpers/wait.js';

const POINTS = [
  { point: 'after-data-fsync', acknowledged: false },
  { point: 'after-meta-rename', acknowledged: false },
  { point: 'before-ack', acknowledged: false },
  { point: 'after-claim', acknowledged: true },
  { point: 'after-upstream-accept', acknowledged: true },
  { point: 'between-defer-steps', acknowledged: true },
] as const;

describe('crash safety (kill -9)', () => {
  const suite = simulatorSuite();

  for (const { point, acknowledged } of POINTS) {
    test(`killed at ${point}: ${acknowledged ? 'the acknowledged message is delivered after the restart' : 'no 250 was sent, and the spool stays consistent'}`, async (t) => {
      suite.sim.reset();
      const work = suite.dir();
      const raw = rawConfigFor(suite.sim, join(work, 'spool'));
      if (point === 'between-defer-steps') suite.sim.faults.failNext(1);
      const subject = `crash ${point}`;
      const relay = await spawnRelay(raw, work, { env: { M365_RELAY_CRASH_AT: point } });
      t.after(() => relay.kill());
      let gotAck = false;
      try {
        await sendMessage(relay.port, { from: 'alerts@contoso.com', raw: sampleMessage({ from: 'alerts@contoso.com', subject }) });
        gotAck = true;
      } catch {
        gotAck = false; // the connection died with the daemon
      }
      assert.equal(await relay.exited, 'SIGKILL', 'the daemon was killed at the crash point');
      assert.equal(gotAck, acknowledged, acknowledged ? 'the crash came after the 250' : 'the crash came before the 250');

      const restarted = await spawnRelay(raw, work, { name: 'restart.yaml' });
      t.after(() => restarted.kill());
      if (acknowledged) {
        await waitFor('the acknowledged message upstream', () => suite.sim.received.some((m) => m.raw.toString().includes(`Subject: ${subject}`)), 15_000);
        await restarted.waitForLog('the spool to be empty', (l) => l.event === 'delivered', 15_000);
        const copies = suite.sim.received.filter((m) => m.raw.toString().includes(`Subject: ${subject}`)).length;
        // Only a message that was in flight upstream at the kill may arrive twice.
        assert.ok(copies === 1 || (point === 'after-upstream-accept' && copies === 2), `${copies} copies arrived`);
      } else {
        const recovered = await restarted.waitForLog('recovery', (l) => l.event === 'spool-recovered');
        // A message whose metadata is durable is delivered even though the client was not told;
        // one that has only its data file is removed as never acknowledged. Never anything corrupt.
        assert.equal(recovered.movedToCorrupt, 0);
        if (point === 'after-data-fsync') assert.equal(recovered.removedOrphanData, 1);
        else await waitFor('the durable message upstream', () => suite.sim.received.some((m) => m.raw.toString().includes(`Subject: ${subject}`)), 15_000);
      }
      assert.equal(await restarted.stop(), 0);
      assert.deepEqual(readdirSync(join(work, 'spool', 'active')), [], 'nothing left claimed after a clean stop');
    });
  }

  test('random kills during a burst: every acknowledged message is delivered', async (t) => {
    suite.sim.reset();
    const work = suite.dir();
    const raw = rawConfigFor(suite.sim, join(work, 'spool'));
    const acknowledged = new Set<string>();
    let sent = 0;
    for (let round = 0; round < 3; round++) {
      const relay = await spawnRelay(raw, work);
      t.after(() => relay.kill());
      const clients = Array.from({ length: 4 }, async (_, c) => {
        for (let i = 0; i < 25; i++) {
          const subject = `burst r${round} c${c} m${i}`;
          sent++;
          try {
            await sendMessage(relay.port, { from: 'alerts@contoso.com', raw: sampleMessage({ from: 'alerts@contoso.com', subject }) });
            acknowledged.add(subject);
          } catch {
            return; // the daemon is gone
          }
        }
      });
      await new Promise((r) => setTimeout(r, 150 + round * 120));
      await relay.kill();
      await Promise.all(clients);
    }
    const final = await spawnRelay(raw, work);
    t.after(() => final.kill());
    const subjects = () => new Set(suite.sim.received.map((m) => /Subject: (.*)\r\n/.exec(m.raw.toString())?.[1]));
    await waitFor(`all ${acknowledged.size} acknowledged messages upstream`, () => [...acknowledged].every((s) => subjects().has(s)), 30_000);
    assert.ok(acknowledged.size > 0 && acknowledged.size <= sent);
    assert.equal(await final.stop(), 0);
  });
});
