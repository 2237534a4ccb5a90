import { accessSync, constants, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { accountsOf, checkAccountReferences, resolveAccount } from './accounts.js';
import { ConfigError, type ConfigProblem } from './errors.js';
import { interpolateEnv, type InterpolateOptions } from './interpolate.js';
import { configSchema, type RelayConfig } from './schema.js';
import { parseProxyUrl } from '../proxy/settings.js';

/** Reads, interpolates, validates and freezes a YAML configuration file. Throws ConfigError. */
export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env, options: InterpolateOptions = {}): RelayConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [{ path: '', message: `cannot read the file (${(err as NodeJS.ErrnoException).code ?? String(err)})` }]);
  }
  return parseConfig(text, file, env, options);
}

/** Like loadConfigFile, for YAML text; relative paths resolve against the directory of `source`. */
export function parseConfig(text: string, source: string, env: NodeJS.ProcessEnv = process.env, options: InterpolateOptions = {}): RelayConfig {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(source, doc.errors.map((e) => ({ path: '', message: `YAML syntax: ${e.message.split('\n')[0]}` })));
  }
  const raw: unknown = doc.toJS();
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(source, [{ path: '', message: 'the file must be a YAML mapping (listen:, spool:, microsoft365:, ...)' }]);
  }
  const problems: ConfigProblem[] = [];
  const interpolated = interpolateEnv(raw, env, problems, '', options);
  const result = configSchema.safeParse(interpolated);
  problems.push(...checkAccountReferences(interpolated as Record<string, unknown>));
  if (!result.success) {
    // A key whose ${VAR} was unset is already reported; its empty stand-in would only add noise.
    const reported = new Set(problems.map((p) => p.path));
    problems.push(...result.error.issues.map(describeIssue).filter((p) => !reported.has(p.path)));
  }
  if (problems.length > 0 || !result.success) throw new ConfigError(source, problems);

  const config = resolvePaths(result.data, dirname(resolve(source)));
  problems.push(...checkFiles(config), ...checkEnvironmentProxy(config, env));
  if (problems.length > 0) throw new ConfigError(source, problems);
  return deepFreeze(config);
}

function describeIssue(issue: z.core.$ZodIssue): ConfigProblem {
  const path = issue.path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i > 0 ? '.' : ''}${String(p)}`)).join('');
  if (issue.code === 'unrecognized_keys') {
    const known = knownKeysAt(issue.path);
    const parts = issue.keys.map((key) => {
      const hint = closest(key, known);
      return hint ? `unknown key "${key}" (did you mean "${hint}"?)` : `unknown key "${key}"`;
    });
    return { path, message: `${parts.join('; ')}${known.length ? `; allowed here: ${known.join(', ')}` : ''}` };
  }
  if (issue.code === 'invalid_type' && /received undefined/.test(issue.message)) {
    return { path, message: 'is missing (required)' };
  }
  if (issue.code === 'invalid_type') return { path, message: `must be of type ${issue.expected}` };
  if (issue.code === 'too_small' && issue.origin === 'string') return { path, message: 'must not be empty' };
  return { path, message: issue.message };
}

/** The keys the schema allows at a path, for "did you mean" hints. */
function knownKeysAt(path: PropertyKey[]): string[] {
  let schema: unknown = configSchema;
  for (const segment of path) {
    schema = unwrap(schema);
    const def = (schema as { def?: { type?: string; shape?: Record<string, unknown>; element?: unknown } }).def;
    if (def?.type === 'object' && typeof segment === 'string') schema = def.shape?.[segment];
    else if (def?.type === 'array') schema = def.element;
    else if (def?.type === 'record') schema = (def as { valueType?: unknown }).valueType;
    else return [];
  }
  const def = (unwrap(schema) as { def?: { type?: string; shape?: Record<string, unknown> } }).def;
  return def?.type === 'object' && def.shape ? Object.keys(def.shape) : [];
}

function unwrap(schema: unknown): unknown {
  let current = schema as { def?: { type?: string; innerType?: unknown; in?: unknown; schema?: unknown } } | undefined;
  for (let i = 0; i < 10 && current?.def; i++) {
    const def = current.def;
    const next = def.innerType ?? (def.type === 'pipe' ? def.in : undefined);
    if (!next) break;
    current = next as typeof current;
  }
  return current;
}

function closest(word: string, candidates: string[]): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best !== null && bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : null;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const saved = row[j] ?? 0;
      row[j] = Math.min((row[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = saved;
    }
  }
  return row[b.length] ?? 0;
}

function resolvePaths(config: z.output<typeof configSchema>, base: string): RelayConfig {
  const at = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const spoolDir = at(config.spool.dir);
  return {
    ...config,
    listen: config.listen.map((l) => (l.tls ? { ...l, tls: { cert: at(l.tls.cert), key: at(l.tls.key) } } : l)),
    spool: { ...config.spool, dir: spoolDir },
    ...(config.http?.tls && { http: { ...config.http, tls: { cert: at(config.http.tls.cert), key: at(config.http.tls.key) } } }),
    mailLog: config.mailLog.path === undefined ? config.mailLog : { ...config.mailLog, path: at(config.mailLog.path) },
    microsoft365: resolveAccount(config.microsoft365, 'default', spoolDir, at, config.proxy),
    accounts: Object.fromEntries(Object.entries(config.accounts).map(([name, account]) => [name, resolveAccount(account, name, spoolDir, at, config.proxy)])),
  };
}

function checkFiles(config: RelayConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const readable = (path: string, key: string) => {
    try {
      accessSync(path, constants.R_OK);
    } catch (err) {
      problems.push({ path: key, message: `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})` });
    }
  };
  config.listen.forEach((l, i) => {
    if (l.tls) {
      readable(l.tls.cert, `listen[${i}].tls.cert`);
      readable(l.tls.key, `listen[${i}].tls.key`);
    }
  });
  if (config.http?.tls) {
    readable(config.http.tls.cert, 'http.tls.cert');
    readable(config.http.tls.key, 'http.tls.key');
  }
  for (const [name, account] of accountsOf(config)) {
    const cert = account.clientCertificate;
    const key = name === 'default' ? 'microsoft365' : `accounts.${name}`;
    if (cert) {
      readable(cert.privateKeyFile, `${key}.clientCertificate.privateKeyFile`);
      readable(cert.certificateFile, `${key}.clientCertificate.certificateFile`);
    }
  }
  return problems;
}

/** A proxy URL in the environment that an account would use must be valid: found at start, not at the first delivery. */
function checkEnvironmentProxy(config: RelayConfig, env: NodeJS.ProcessEnv): ConfigProblem[] {
  if (![...accountsOf(config).values()].some((a) => a.proxy === undefined)) return [];
  for (const name of ['https_proxy', 'HTTPS_PROXY']) {
    const value = env[name]?.trim();
    if (!value) continue;
    try {
      parseProxyUrl(value);
    } catch (err) {
      return [{ path: 'proxy', message: `the environment's ${name} is not usable: ${(err as Error).message}; fix it, or set proxy: (a URL, or direct) in the configuration` }];
    }
    return [];
  }
  return [];
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const item of Object.values(value)) deepFreeze(item);
    Object.freeze(value);
  }
  return value;
}
