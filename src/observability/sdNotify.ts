import { spawn } from 'node:child_process';
import type { Logger } from './logger.js';

/**
 * systemd's readiness protocol (sd_notify(3)): under `Type=notify` systemd waits for READY=1 on
 * the datagram socket named by $NOTIFY_SOCKET before `systemctl start` returns.
 *
 * Node cannot send a datagram on an AF_UNIX socket (dgram has udp4/udp6 only), and the npm
 * packages that can (sd-notify) compile a native addon at install time. systemd ships
 * `systemd-notify`, which does exactly this; the unit sets NotifyAccess=all because the message
 * then comes from that child, not from the main process. systemd-notify (without --no-block) waits
 * until systemd has processed the message (BARRIER=1, since systemd 246), so the message is
 * attributed to the unit while the child still runs: the race that systemd-notify(1) describes
 * for short-lived helpers does not arise.
 */
export interface Notifier {
  /** Sends VARIABLE=VALUE assignments; resolves when done or failed (failures are logged, never thrown). */
  send(...assignments: string[]): Promise<void>;
}

export interface NotifierOptions {
  env?: NodeJS.ProcessEnv;
  /** The helper to run; `systemd-notify` from PATH by default. */
  command?: string;
  /** Bound on the helper (its own barrier waits at most 5 s). */
  timeoutMs?: number;
}

export function systemdNotifier(logger: Logger, options: NotifierOptions = {}): Notifier {
  const env = options.env ?? process.env;
  const socket = env.NOTIFY_SOCKET;
  if (!socket) return { send: () => Promise.resolve() };
  const command = options.command ?? 'systemd-notify';
  const timeoutMs = options.timeoutMs ?? 10_000;
  return {
    send(...assignments) {
      return new Promise<void>((resolve) => {
        let stderr = '';
        const child = spawn(command, assignments, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...env, NOTIFY_SOCKET: socket } });
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        child.stderr.on('data', (chunk: Buffer) => {
          stderr += chunk.toString('utf8');
        });
        const fail = (reason: string) => {
          logger.warn(
            { event: 'notify-failed', assignments: assignments.map((a) => a.split('=')[0]), reason },
            `could not tell systemd ${assignments[0]}: ${reason}` + (assignments[0] === 'READY=1' ? '; systemd will time the start out (TimeoutStartSec=)' : ''),
          );
        };
        child.once('error', (err: NodeJS.ErrnoException) => {
          clearTimeout(timer);
          fail(err.code === 'ENOENT' ? `${command} is not installed (Debian: apt-get install systemd), or use Type=exec in the unit` : err.message);
          resolve();
        });
        child.once('exit', (code, signal) => {
          clearTimeout(timer);
          if (code === 0) logger.debug({ event: 'notified', assignments }, 'told systemd');
          else fail(`${command} exited ${code ?? signal}: ${stderr.trim()}`);
          resolve();
        });
      });
    },
  };
}
