/**
 * A reason the relay cannot start that the administrator fixes in the configuration or on the
 * host: it names the config key, what is wrong and what to do. `run` prints it as one line and
 * exits 1 (no stack trace: the stack says nothing to an administrator; log.level debug adds it).
 */
export class StartError extends Error {
  override readonly name = 'StartError';
  readonly code = 'ESTART';
  constructor(
    /** The configuration key to look at ("http.port", "listen[0].port", "spool.dir"). */
    readonly key: string,
    /** What is wrong, in the administrator's terms. */
    problem: string,
    /** What to do about it. */
    readonly fix: string,
    options?: { cause?: unknown },
  ) {
    super(`${key}: ${problem}; ${fix}`, options);
  }
}

type Errno = NodeJS.ErrnoException;

/** Why binding `host:port` (the key `key`) failed, and the fix; for `run` and `check-config`. */
export function bindProblem(key: string, host: string, port: number, err: Errno, heldByRelay?: number): StartError {
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  switch (err.code) {
    case 'EADDRINUSE':
      return heldByRelay !== undefined
        ? new StartError(key, `${where} is held by the running relay (pid ${heldByRelay})`, 'that is expected while it runs', { cause: err })
        : new StartError(key, `${where} is already in use by another program`, `stop that program (see: ss -ltnp 'sport = :${port}') or choose another ${key.endsWith('.port') ? key : `${key}.port`}`, { cause: err });
    case 'EACCES':
    case 'EPERM':
      return new StartError(key, `not allowed to listen on ${where}`, port < 1024 ? 'ports below 1024 need CAP_NET_BIND_SERVICE (the systemd unit grants it) or use a port such as 2525 and map it' : 'check the sandbox or firewall rules of the service', { cause: err });
    case 'EADDRNOTAVAIL':
      return new StartError(key, `no network interface of this machine has the address ${host}`, `set ${key.replace(/\.port$/, '.host')} to an address of this machine, or 0.0.0.0 / "::" for all`, { cause: err });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new StartError(key, `the host name ${host} does not resolve`, `set ${key.replace(/\.port$/, '.host')} to an IP address of this machine`, { cause: err });
    default:
      return new StartError(key, `cannot listen on ${where}: ${err.message}`, `check ${key}`, { cause: err });
  }
}

/** Why the spool directory cannot be used, and the fix. */
export function spoolProblem(dir: string, err: Errno): StartError {
  const uid = process.geteuid?.();
  const who = uid === undefined ? 'the relay' : `the relay's user (uid ${uid})`;
  switch (err.code) {
    case 'EACCES':
    case 'EPERM':
      return new StartError('spool.dir', `${who} may not write in ${err.path ?? dir}`, `give it the directory (chown -R that user ${dir}; the systemd unit's StateDirectory= does this for /var/lib/m365-relay) or choose another spool.dir`, { cause: err });
    case 'EROFS':
      return new StartError('spool.dir', `${dir} is on a read-only file system`, 'choose a spool.dir on writable, persistent storage (under ProtectSystem=strict only StateDirectory= is writable)', { cause: err });
    case 'ENOSPC':
      return new StartError('spool.dir', `the file system of ${dir} is full`, 'free some space', { cause: err });
    case 'ENOTDIR':
    case 'EEXIST':
      return new StartError('spool.dir', `${err.path ?? dir} is not a directory`, 'point spool.dir at a directory', { cause: err });
    default:
      return new StartError('spool.dir', `cannot use ${dir}: ${err.message}`, 'check spool.dir and its permissions', { cause: err });
  }
}

/** True for errors of the file system or the network (they carry an errno code). */
export function isErrno(err: unknown): err is Errno {
  return err instanceof Error && typeof (err as Errno).code === 'string' && /^E[A-Z]+$/.test((err as Errno).code ?? '');
}
