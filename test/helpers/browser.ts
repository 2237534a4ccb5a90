import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { ROOT } from './harness.js';
import { tempDir } from './tmp.js';

/** Debian's Chromium: never a browser download (.ci/run installs the package when it is missing). */
export const CHROMIUM = process.env.M365_RELAY_TEST_CHROMIUM ?? '/usr/bin/chromium';

/** Where browser tests leave their screenshots (ignored by git). */
export const ARTIFACTS = join(ROOT, 'test-artifacts');

/**
 * Headless Chromium with a fresh profile, for one suite. `close` ends the browser and removes the
 * profile. Fails with the fix when Chromium is missing.
 */
export async function launchBrowser(options: { ignoreHTTPSErrors?: boolean } = {}): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium); .ci/run does this`);
  const profile = tempDir('m365-relay-chromium-');
  const context = await chromium.launchPersistentContext(profile.dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
    ignoreHTTPSErrors: options.ignoreHTTPSErrors ?? false,
    timeout: 60_000,
  });
  context.setDefaultTimeout(30_000);
  return {
    context,
    async close() {
      await context.close().catch(() => undefined);
      profile.remove();
    },
  };
}

/** The path of a screenshot named `name` under test-artifacts/<suite>/. */
export function artifactPath(suite: string, name: string): string {
  const dir = join(ARTIFACTS, suite);
  mkdirSync(dir, { recursive: true });
  return join(dir, `${name}.png`);
}
