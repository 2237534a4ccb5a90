import net from 'node:net';
import tls from 'node:tls';

/** What reply() gives once the server has closed the connection. */
export const CLOSED = '(closed)';

/**
 * A raw SMTP conversation over a socket, for tests that need exact replies or hold sessions open:
 * the listener's and the simulator's tests. Every wait is bounded.
 */
export class RawSmtp {
  private buffer = '';
  private lines: string[] = [];
  private replies: string[] = [];
  private waiting: Array<(reply: string) => void> = [];
  /** The 220 (or other) greeting, when connect() read it. */
  greeting = '';
  closed = false;

  private constructor(private socket: net.Socket | tls.TLSSocket) {
    this.attach(socket);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.buffer += chunk.toString('utf8');
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) !== -1) {
      const line = this.buffer.slice(0, nl).replace(/\r$/, '');
      this.buffer = this.buffer.slice(nl + 1);
      this.lines.push(line);
      if (/^\d{3}(?: |$)/.test(line)) {
        const reply = this.lines.join('\n');
        this.lines = [];
        const waiter = this.waiting.shift();
        if (waiter) waiter(reply);
        else this.replies.push(reply);
      }
    }
  };

  private attach(socket: net.Socket | tls.TLSSocket): void {
    socket.on('data', this.onData);
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiting.splice(0)) w(CLOSED);
    });
    socket.on('error', () => undefined);
  }

  /**
   * Connects and (unless `greeting: false`) reads the greeting; with `ready: true` anything but a
   * 220 greeting rejects.
   */
  static connect(port: number, host = '127.0.0.1', options: { greeting?: boolean; ready?: boolean } = {}): Promise<RawSmtp> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect to ${host}:${port} timed out`));
      }, 5000);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        const session = new RawSmtp(socket);
        if (options.greeting === false) return resolve(session);
        session.reply().then((greeting) => {
          session.greeting = greeting;
          if (options.ready && !greeting.startsWith('220 ')) reject(new Error(`greeting: ${greeting}`));
          else resolve(session);
        }, reject);
      });
    });
  }

  /** The next complete reply (all its lines, joined by \n), or CLOSED. */
  reply(timeoutMs = 5000): Promise<string> {
    const ready = this.replies.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.closed) return Promise.resolve(CLOSED);
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
  command(line: string, timeoutMs?: number): Promise<string> {
    this.write(`${line}\r\n`);
    return this.reply(timeoutMs);
  }

  /** STARTTLS, then the TLS handshake on the same socket; `options` say how the certificate is checked. */
  async starttls(options: tls.ConnectionOptions = {}): Promise<void> {
    const r = await this.command('STARTTLS');
    if (!r.startsWith('220 ')) throw new Error(`STARTTLS refused: ${r}`);
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    const secure = tls.connect({ ...options, socket: plain as net.Socket });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('TLS handshake timed out')), 5000);
      secure.once('secureConnect', () => {
        clearTimeout(timer);
        resolve();
      });
      secure.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    this.socket = secure;
    this.attach(secure);
  }

  /** MAIL, RCPT..., DATA and the message; returns the first refusal or the final reply. */
  async send(from: string, to: string[], data: string | Buffer, mailArgs = '', timeoutMs?: number): Promise<string> {
    let r = await this.command(`MAIL FROM:<${from}>${mailArgs}`);
    if (!r.startsWith('250')) return r;
    for (const rcpt of to) {
      r = await this.command(`RCPT TO:<${rcpt}>`);
      if (!r.startsWith('250')) return r;
    }
    r = await this.command('DATA');
    if (!r.startsWith('354')) return r;
    this.write(data);
    return this.command('.', timeoutMs);
  }

  close(): void {
    this.socket.destroy();
  }
}
