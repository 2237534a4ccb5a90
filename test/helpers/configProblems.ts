import assert from 'node:assert/strict';
import { ConfigError, parseConfig } from '../../src/config/index.js';

/** The ConfigError message for a configuration that must be refused; fails the test if it is accepted. */
export function configProblems(text: string, env: NodeJS.ProcessEnv): string {
  try {
    parseConfig(text, '/etc/m365-relay/relay.yaml', env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.message;
  }
  assert.fail('the configuration was accepted');
}
