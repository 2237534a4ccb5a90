// config/relay.example.yaml is the commented reference: it parses as shipped, and every key the
// schema accepts appears in it (set or commented), so a new key cannot be added without documenting it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseConfig } from '../src/config/index.js';
import { configSchema } from '../src/config/schema.js';
import { ROOT } from './helpers/harness.js';

const FILE = join(ROOT, 'config', 'relay.example.yaml');
const TEXT = readFileSync(FILE, 'utf8');

type Def = { type?: string; shape?: Record<string, unknown>; element?: unknown; valueType?: unknown; innerType?: unknown; in?: unknown; options?: unknown[] };
const defOf = (schema: unknown): Def | undefined => (schema as { def?: Def } | undefined)?.def;

/** Every key path the schema accepts: "listen[].tls.cert", "accounts.*.mailbox", ... */
function keyPaths(schema: unknown, prefix = ''): string[] {
  const def = defOf(schema);
  if (!def) return [];
  switch (def.type) {
    case 'object':
      return Object.entries(def.shape ?? {}).flatMap(([key, value]) => {
        const path = prefix ? `${prefix}.${key}` : key;
        return [path, ...keyPaths(value, path)];
      });
    case 'array':
      return keyPaths(def.element, `${prefix}[]`);
    case 'record':
      return keyPaths(def.valueType, `${prefix}.*`);
    case 'pipe':
      return keyPaths(def.in, prefix);
    case 'union':
      return (def.options ?? []).flatMap((o) => keyPaths(o, prefix));
    default:
      return def.innerType ? keyPaths(def.innerType, prefix) : [];
  }
}

test('the example configuration parses as shipped (the quoted "::" hint included)', () => {
  const config = parseConfig(TEXT, FILE, { M365_CLIENT_SECRET: 'x' });
  assert.equal(config.log.format, 'json');
  assert.ok(/use "::" \(quoted/.test(TEXT), 'the IPv6 wildcard is shown quoted');
  assert.throws(() => parseConfig(TEXT.replace('host: 0.0.0.0 ', 'host: :: '), FILE, { M365_CLIENT_SECRET: 'x' }), /YAML syntax/, 'why it must be quoted');
  assert.equal(parseConfig(TEXT.replace('host: 0.0.0.0 ', 'host: "::" '), FILE, { M365_CLIENT_SECRET: 'x' }).listen[0]?.host, '::');
});

test('every key the schema accepts appears in the example, set or commented', () => {
  const paths = [...new Set(keyPaths(configSchema))];
  assert.ok(paths.length > 60, `the schema walk found only ${paths.length} keys`);
  for (const expected of ['failureNotices.adminAddress', 'limits.maxAuthFailures', 'listen[].authRequiresTls', 'log.format', 'accounts.*.mailbox']) {
    assert.ok(paths.includes(expected), `the walk knows ${expected}`);
  }
  const missing = paths.filter((path) => {
    const key = path.split('.').pop()?.replace(/\[\]$/, '') ?? '';
    if (key === '*') return false;
    // `key:` as a mapping key: at a line start (after "#" and "- "), or inside a flow mapping.
    return !new RegExp(`(^[\\t ]*#?[\\t ]*(- )?|[{,][\\t ]*)${key}:`, 'm').test(TEXT);
  });
  assert.deepEqual(missing, [], 'keys missing from config/relay.example.yaml');
});
