// A stand-in for systemd's notification socket, for tests: an AF_UNIX datagram socket of the
// test's own (node cannot create one, so a few lines of Python from the distribution do), that
// records every message and answers systemd-notify's barrier (BARRIER=1 with a pipe descriptor:
// closing the descriptor is how systemd says "processed"). What it mocks is PID 1's receiving end
// only: the relay and systemd-notify are the real ones.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { waitFor } from './wait.js';

const RECEIVER = String.raw`
import array, json, os, socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind('\0' + path[1:] if path.startswith('@') else path)
print(json.dumps({"bound": True}), flush=True)
while True:
    msg, anc, flags, addr = s.recvmsg(65536, socket.CMSG_SPACE(64 * 4))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
            for fd in fds:
                os.close(fd)
    print(json.dumps({"message": msg.decode("utf-8", "replace")}), flush=True)
`;

export interface NotifySocket {
  /** The value for NOTIFY_SOCKET. */
  readonly address: string;
  /** Each datagram's assignments, in arrival order, with when it arrived. */
  readonly messages: Array<{ at: number; fields: Record<string, string> }>;
  close(): Promise<void>;
}

export async function startNotifySocket(address: string): Promise<NotifySocket> {
  const python = process.env.PYTHON ?? 'python3';
  const child = spawn(python, ['-c', RECEIVER, address], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const failed = new Promise<Error>((resolve) => child.once('error', resolve));
  let bound = false;
  let spawnError: Error | null = null;
  void failed.then((err) => (spawnError = err));
  const messages: NotifySocket['messages'] = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    const parsed = JSON.parse(line) as { bound?: boolean; message?: string };
    if (parsed.bound) bound = true;
    if (parsed.message !== undefined) {
      const fields = Object.fromEntries(parsed.message.split('\n').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
      messages.push({ at: Date.now(), fields });
    }
  });
  await waitFor(`the notify socket ${address} (${python}; Debian: apt-get install python3)`, () => {
    if (spawnError) throw spawnError;
    if (child.exitCode !== null) throw new Error(`the notify socket helper exited: ${stderr}`);
    return bound || undefined;
  }, 10_000);
  return {
    address,
    messages,
    close: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    },
  };
}
