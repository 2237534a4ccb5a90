import net from 'node:net';

/** A raw SMTP conversation over a socket, for tests that need exact replies. Every wait is bounded. */
export class RawSmtp {
  private buffer = '';
  private replies: string[] = [];
  private waiting: Array<(reply: string) => void> = [];
  private pending: string[] = [];
  closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer += chunk.toString('latin1');
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) !== -1) {
        const line = this.buffer.slice(0, nl).replace(/\r$/, '');
        this.buffer = this.buffer.slice(nl + 1);
        this.pending.push(line);
        if (/^\d{3}(?: |$)/.test(line)) {
          const reply = this.pending.join('\n');
          this.pending = [];
          const waiter = this.waiting.shift();
          if (waiter) waiter(reply);
          else this.replies.push(reply);
        }
      }
    });
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiting.splice(0)) w('(connection closed)');
    });
    socket.on('error', () => undefined);
  }

  static connect(port: number, host = '127.0.0.1', options: { greeting?: boolean } = {}): Promise<RawSmtp> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host });
      const timer = setTimeout(() => reject(new Error('connect timed out')), 5000);
      socket.once('error', reject);
      socket.once('connect', async () => {
        clearTimeout(timer);
        const session = new RawSmtp(socket);
        if (options.greeting !== false) await session.reply();
        resolve(session);
      });
    });
  }

  /** The next complete reply (all its lines), or '(connection closed)'. */
  reply(timeoutMs = 5000): Promise<string> {
    const ready = this.replies.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.closed) return Promise.resolve('(connection closed)');
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no SMTP reply within ${timeoutMs} ms`)), timeoutMs);
      this.waiting.push((r) => {
        clearTimeout(timer);
        resolve(r);
      });
    });
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Sends one command line and returns its reply. */
  async command(line: string, timeoutMs?: number): Promise<string> {
    this.write(`${line}\r\n`);
    return this.reply(timeoutMs);
  }

  close(): void {
    this.socket.destroy();
  }
}
