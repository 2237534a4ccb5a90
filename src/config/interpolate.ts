import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type { ConfigProblem } from './errors.js';

/**
 * ${VAR}, ${VAR:-default}: an environment variable.
 * ${file:/abs/path}: a file's content (Docker secrets in /run/secrets, a key file owned by root).
 * ${credential:NAME}: a systemd credential, $CREDENTIALS_DIRECTORY/NAME (LoadCredential=NAME:/path).
 */
const REFERENCE = /\$\{(?:(file|credential):([^}]*)|([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?)\}/g;
/** A credential name as systemd accepts it: one path component. */
const CREDENTIAL_NAME = /^[A-Za-z0-9_.@-]+$/;

/**
 * Replaces references in every string of a parsed YAML tree: ${VAR} (or ${VAR:-default}) with the
 * environment's value, ${file:PATH} and ${credential:NAME} with a file's content (one trailing
 * newline removed). An unset variable or unreadable file is a problem naming the key, so that a
 * secret missing from the service's environment is caught at start, not at the first delivery.
 * Problems name variables and paths, never a value.
 */
export function interpolateEnv(value: unknown, env: NodeJS.ProcessEnv, problems: ConfigProblem[], path = '', options: InterpolateOptions = {}): unknown {
  if (typeof value === 'string') {
    return value.replace(REFERENCE, (whole, kind: string | undefined, target: string | undefined, name: string | undefined, fallback: string | undefined) => {
      if (keeps(options, path) && !resolvable(kind, target, name, fallback, env)) return whole;
      if (kind === 'file') return readSecretFile(target ?? '', whole, path, problems);
      if (kind === 'credential') return readCredential(target ?? '', whole, env, path, problems);
      const found = env[name ?? ''];
      if (found !== undefined && found !== '') return found;
      if (fallback !== undefined) return fallback;
      problems.push({ path, message: `environment variable ${name} is not set (referenced as ${whole})` });
      return '';
    });
  }
  if (Array.isArray(value)) return value.map((item, i) => interpolateEnv(item, env, problems, `${path}[${i}]`, options));
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, interpolateEnv(item, env, problems, path ? `${path}.${key}` : key, options)]),
    );
  }
  return value;
}

export interface InterpolateOptions {
  /**
   * Leave references that cannot be resolved as they are written instead of reporting them: for
   * commands that only need the spool (`queue ...`), run by an administrator without the service's
   * secrets in their environment. A function decides per key path ("accounts.scans.clientSecret"):
   * `login --account scans` resolves that account strictly and leaves the others' secrets alone.
   */
  keepUnresolved?: boolean | ((path: string) => boolean);
}

function keeps(options: InterpolateOptions, path: string): boolean {
  const keep = options.keepUnresolved;
  return typeof keep === 'function' ? keep(path) : Boolean(keep);
}

function resolvable(kind: string | undefined, target: string | undefined, name: string | undefined, fallback: string | undefined, env: NodeJS.ProcessEnv): boolean {
  if (kind === 'file') return isAbsolute(target ?? '') && readable(target ?? '');
  if (kind === 'credential') return Boolean(env.CREDENTIALS_DIRECTORY) && CREDENTIAL_NAME.test(target ?? '') && readable(join(env.CREDENTIALS_DIRECTORY ?? '', target ?? ''));
  return fallback !== undefined || Boolean(env[name ?? '']);
}

function readable(file: string): boolean {
  try {
    readFileSync(file);
    return true;
  } catch {
    return false;
  }
}

function readCredential(name: string, whole: string, env: NodeJS.ProcessEnv, path: string, problems: ConfigProblem[]): string {
  if (!CREDENTIAL_NAME.test(name)) {
    problems.push({ path, message: `${whole}: a credential name is one word such as client-secret (no slashes)` });
    return '';
  }
  const dir = env.CREDENTIALS_DIRECTORY;
  if (!dir) {
    problems.push({
      path,
      message: `${whole}: CREDENTIALS_DIRECTORY is not set; run under systemd with LoadCredential=${name}:/path/to/file in the unit, or use \${file:/path} or \${VAR}`,
    });
    return '';
  }
  return readSecretFile(join(dir, name), whole, path, problems);
}

function readSecretFile(file: string, whole: string, path: string, problems: ConfigProblem[]): string {
  if (!isAbsolute(file)) {
    problems.push({ path, message: `${whole}: the file must be given by an absolute path, such as \${file:/run/secrets/m365-client-secret}` });
    return '';
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    problems.push({ path, message: `${whole}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'}); check that it exists and that the relay's user may read it` });
    return '';
  }
  // `echo secret > file` leaves a newline that is not part of the secret.
  const content = text.replace(/\r?\n$/, '');
  if (content === '') problems.push({ path, message: `${whole}: ${file} is empty` });
  return content;
}
