import { join } from 'node:path';
import type { ConfigProblem } from './errors.js';
import { DEFAULT_ACCOUNT, type AccountConfig, type RelayConfig } from './schema.js';

const ACCOUNT_NAME = /^[a-z0-9_-]{1,64}$/;

/**
 * Checks account names and the accounts that routes name, on the interpolated YAML tree. Done here
 * rather than in the schema so that these problems are reported together with every other one
 * (zod skips whole-object checks once any key has a problem).
 */
export function checkAccountReferences(raw: Record<string, unknown>): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const accounts = raw.accounts;
  const names = accounts && typeof accounts === 'object' && !Array.isArray(accounts) ? Object.keys(accounts) : [];
  for (const name of names) {
    if (name === DEFAULT_ACCOUNT) {
      problems.push({ path: `accounts.${name}`, message: '"default" is the top-level microsoft365; give this account another name' });
    } else if (!ACCOUNT_NAME.test(name)) {
      problems.push({ path: `accounts.${name}`, message: 'an account name may use lowercase letters, digits, - and _ only (at most 64)' });
    }
  }
  const known = [DEFAULT_ACCOUNT, ...names];
  if (Array.isArray(raw.routes)) {
    raw.routes.forEach((route: unknown, i) => {
      const account = route && typeof route === 'object' ? (route as { account?: unknown }).account : undefined;
      if (typeof account === 'string' && account !== '' && !known.includes(account)) {
        problems.push({ path: `routes[${i}].account`, message: `unknown account "${account}"; known accounts: ${known.join(', ')}` });
      }
    });
  }
  return problems;
}

/**
 * Names each account, resolves its files against the configuration's directory, defaults
 * tokenCacheFile, and gives it the global `proxy` unless it has its own.
 */
export function resolveAccount(
  account: Omit<AccountConfig, 'name' | 'tokenCacheFile'> & { tokenCacheFile?: string },
  name: string,
  spoolDir: string,
  at: (path: string) => string,
  globalProxy?: string,
): AccountConfig {
  const cert = account.clientCertificate;
  const proxy = account.proxy ?? globalProxy;
  return {
    ...account,
    ...(proxy !== undefined && { proxy }),
    name,
    clientCertificate: cert ? { privateKeyFile: at(cert.privateKeyFile), certificateFile: at(cert.certificateFile) } : undefined,
    tokenCacheFile: account.tokenCacheFile ? at(account.tokenCacheFile) : join(spoolDir, 'signin', `${name}.json`),
  };
}

/** Every account by name: `default` first, then `accounts` in file order. */
export function accountsOf(config: Pick<RelayConfig, 'microsoft365' | 'accounts'>): Map<string, AccountConfig> {
  return new Map<string, AccountConfig>([[DEFAULT_ACCOUNT, config.microsoft365], ...Object.entries(config.accounts)]);
}
