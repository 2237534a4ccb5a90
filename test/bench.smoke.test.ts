// Keeps the benchmark script from rotting: a quick run with tiny sizes. It checks that every figure
// is produced, not how fast anything is (speed is measured by `npm run bench`, never asserted here).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from './helpers/harness.js';
import { tempDir } from './helpers/tmp.js';

test('bench: the quick smoke run produces every figure', (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const out = join(tmp.dir, 'quick.json');
  const result = spawnSync(process.execPath, [join(ROOT, 'scripts', 'bench.mjs'), '--quick', '--out', out], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(result.status, 0, `bench failed: ${result.stderr}\n${result.stdout}`);
  const report = JSON.parse(readFileSync(out, 'utf8')) as { machine: { cores: number; node: string }; results: Record<string, { value: number; unit: string }> };
  assert.ok(report.machine.cores >= 1);
  assert.equal(report.machine.node, process.version);
  for (const figure of [
    'acceptThroughput_1PerConnection',
    'acceptLatencyP99_1PerConnection',
    'acceptThroughput_5PerConnection',
    'endToEndDrainAfterLastAck',
    'endToEndDeliveredRate',
    'rssIdle',
    'rssPeak_idleConnections',
    'rssPeak_bigMessagesInFlight',
    'restartToFirstDelivery',
    'outageRecovery',
    'killDuringOutageRecovery',
  ]) {
    const r = report.results[figure];
    assert.ok(r, `figure ${figure} is missing`);
    assert.ok(Number.isFinite(r.value) && r.value >= 0, `${figure} = ${r.value}`);
  }
  assert.match(result.stdout, /acceptThroughput_1PerConnection/);
});
