#!/usr/bin/env node
// npm test: build and type-check (the tests start the compiled daemon as a real child process), create one test
// CA for the run (the built-in simulator's TLS certificate is signed by it, and NODE_EXTRA_CA_CERTS
// makes every test process and child trust it, as an administrator would do for a private CA), then
// run node's test runner over test/**/*.test.ts.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const run = (cmd, args, env = process.env) => spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env }).status ?? 1;

const tsc = join(root, 'node_modules/typescript/bin/tsc');
if (run(process.execPath, [tsc, '-p', 'tsconfig.json']) !== 0) process.exit(1);
// The tests are TypeScript too: type-check them with the sources (tsx alone would not).
if (run(process.execPath, [tsc, '-p', 'tsconfig.test.json']) !== 0) process.exit(1);

const { generateCa } = await import(join(root, 'dist/simulator/index.js'));
const caDir = mkdtempSync(join(tmpdir(), 'm365-relay-test-ca-'));
const ca = await generateCa();
writeFileSync(join(caDir, 'ca.pem'), ca.certPem);
writeFileSync(join(caDir, 'ca-key.pem'), ca.keyPem, { mode: 0o600 });

const only = process.argv.slice(2);
const files = only.length ? only : readdirSync(join(root, 'test')).filter((f) => f.endsWith('.test.ts')).sort().map((f) => join('test', f));
const env = { ...process.env, NODE_EXTRA_CA_CERTS: join(caDir, 'ca.pem'), M365_RELAY_TEST_CA_DIR: caDir };
let status = 1;
try {
  status = run(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=120000', ...files], env);
} finally {
  rmSync(caDir, { recursive: true, force: true });
}
process.exit(status);
