// The `versus-postfix` part of the benchmark: a private Postfix instance (its own config_directory,
// queue and data directories under a temp dir, smtpd on a free loopback port, its queue held with
// defer_transports = smtp) and Postfix's own load generator, smtp-source. Never touches
// /etc/postfix or the system's mail beyond installing Debian's package when it is missing.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SBIN = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'];
const which = (name) => SBIN.map((d) => join(d, name)).find((p) => existsSync(p)) ?? null;

/**
 * Makes sure `postfix` and `smtp-source` exist. Installs Debian's package when they are missing and
 * we may (root, apt-get, `install` true), answering debconf "No configuration" so that the package
 * writes no system main.cf and starts no system Postfix on port 25. Returns null when ready, or
 * the reason to skip.
 */
export function ensurePostfix({ install }) {
  if (which('postfix') && which('smtp-source')) return null;
  const how = 'install Debian\'s postfix package (as root: apt-get install postfix, answering "No configuration") and run the bench as root';
  if (!install) return `postfix is not installed: ${how}`;
  if (process.getuid?.() !== 0 || !which('apt-get')) return `postfix is not installed and this is not a root Debian system: ${how}`;
  const run = (cmd, args, input) => spawnSync(cmd, args, { input, stdio: [input ? 'pipe' : 'ignore', 'inherit', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 600_000 });
  console.log('versus-postfix: installing Debian\'s postfix package (apt-get update; apt-get install -y postfix)');
  run('debconf-set-selections', [], 'postfix postfix/main_mailer_type select No configuration\n');
  if (run('apt-get', ['update', '-qq']).status !== 0) return 'apt-get update failed';
  if (run('apt-get', ['install', '-y', '-q', 'postfix']).status !== 0) return 'apt-get install postfix failed';
  // Should the package have started the system instance anyway, stop it: the bench runs its own.
  if (spawnSync('postfix', ['status'], { stdio: 'ignore' }).status === 0) {
    const stopped = which('invoke-rc.d') ? spawnSync('invoke-rc.d', ['postfix', 'stop'], { stdio: 'ignore' }).status === 0 : false;
    if (!stopped) spawnSync('postfix', ['stop'], { stdio: 'ignore' });
  }
  return which('postfix') && which('smtp-source') ? null : 'postfix installed but smtp-source not found';
}

/** A port nothing listens on right now (the kernel's choice, released at once). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function mainCf(dir) {
  return `# private benchmark instance: nothing here is the system's Postfix
compatibility_level = 3.7
queue_directory = ${dir}/queue
data_directory = ${dir}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.localdomain
mydomain = localdomain
inet_interfaces = loopback-only
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
defer_transports = smtp
alias_maps =
alias_database =
biff = no
maillog_file_prefixes = ${dir}
maillog_file = ${dir}/maillog
`;
}

// The services an smtpd -> cleanup -> qmgr path needs, none chrooted; smtpd only on loopback.
function masterCf(port) {
  return `127.0.0.1:${port} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
`;
}

/** Starts a private Postfix under a new temp dir; `stop()` stops it and removes the dir (safe to call twice). */
export async function startPrivatePostfix() {
  const dir = mkdtempSync(join(tmpdir(), 'm365-relay-bench-postfix-'));
  chmodSync(dir, 0o755); // Postfix's daemons run as the postfix user and must reach their queue
  const config = join(dir, 'etc');
  mkdirSync(config);
  mkdirSync(join(dir, 'queue'));
  const port = await freePort();
  writeFileSync(join(config, 'main.cf'), mainCf(dir));
  writeFileSync(join(config, 'master.cf'), masterCf(port));
  const postfix = (...args) => spawnSync('postfix', ['-c', config, ...args], { encoding: 'utf8', timeout: 60_000 });
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    if (postfix('stop').status !== 0) postfix('abort');
    rmSync(dir, { recursive: true, force: true });
  };
  const started = postfix('start');
  if (started.status !== 0) {
    stop();
    throw new Error(`the private postfix did not start: ${started.stderr}${started.stdout}`);
  }
  try {
    await waitForPort(port, 20_000);
  } catch (err) {
    stop();
    throw err;
  }
  return {
    port,
    dir,
    /** Empties the queue between rounds, so that every round starts alike. */
    clearQueue() {
      spawnSync('postsuper', ['-c', config, '-d', 'ALL'], { stdio: 'ignore', timeout: 60_000 });
    },
    stop,
  };
}

async function waitForPort(port, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect({ port, host: '127.0.0.1' });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Runs smtp-source: `messages` messages of `size` bytes, `sessions` at once, one message per
 * connection. Resolves with the seconds it took (to its exit, i.e. the last 250 and QUIT).
 */
export function smtpSource(port, { messages, sessions, size, timeoutMs = 300_000 }) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn('smtp-source', ['-4', '-s', String(sessions), '-m', String(messages), '-l', String(size), '-M', 'bench.local', '-f', 'bench@contoso.com', '-t', 'sink@contoso.com', `127.0.0.1:${port}`], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve((performance.now() - t0) / 1000);
      else reject(new Error(`smtp-source failed (${signal ?? code}): ${stderr.trim().slice(0, 500)}`));
    });
  });
}
