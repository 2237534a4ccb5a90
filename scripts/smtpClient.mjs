// A minimal SMTP client for the benchmark: one socket, one command at a time, no TLS, no MIME.
// Lighter than nodemailer so that on a 2-core machine the client does not steal the relay's CPU.
import net from 'node:net';

export class SmtpSession {
  static connect(port, host = '127.0.0.1', timeoutMs = 30_000) {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host });
      const session = new SmtpSession(socket, timeoutMs);
      socket.once('connect', async () => {
        try {
          await session.reply(220);
          resolve(session);
        } catch (err) {
          reject(err);
        }
      });
      socket.once('error', reject);
    });
  }

  constructor(socket, timeoutMs) {
    this.socket = socket;
    this.buffer = '';
    this.waiters = [];
    this.lines = [];
    socket.setNoDelay(true);
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error('SMTP timeout')));
    socket.on('data', (chunk) => {
      this.buffer += chunk.toString('latin1');
      let nl;
      while ((nl = this.buffer.indexOf('\n')) !== -1) {
        const line = this.buffer.slice(0, nl).replace(/\r$/, '');
        this.buffer = this.buffer.slice(nl + 1);
        this.lines.push(line);
        if (/^\d{3} /.test(line)) {
          const all = this.lines;
          this.lines = [];
          this.waiters.shift()?.resolve(all);
        }
      }
    });
    socket.on('error', (err) => {
      for (const w of this.waiters.splice(0)) w.reject(err);
    });
    socket.on('close', () => {
      for (const w of this.waiters.splice(0)) w.reject(new Error('connection closed'));
    });
  }

  reply(expected) {
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject })).then((lines) => {
      const last = lines[lines.length - 1];
      if (expected && !last.startsWith(String(expected))) throw new Error(`expected ${expected}, got: ${last}`);
      return last;
    });
  }

  async command(line, expected) {
    const waiting = this.reply(expected);
    this.socket.write(`${line}\r\n`);
    return waiting;
  }

  /** Sends one message; resolves with the final reply and the ms from end of DATA to that reply. */
  async send(from, to, data) {
    await this.command(`MAIL FROM:<${from}>`, 250);
    for (const rcpt of to) await this.command(`RCPT TO:<${rcpt}>`, 250);
    await this.command('DATA', 354);
    const waiting = this.reply(250);
    const tail = data.subarray(-2).toString() === '\r\n' ? '.\r\n' : '\r\n.\r\n';
    // Large bodies are written in slices so the socket's buffer stays bounded.
    for (let offset = 0; offset < data.length; offset += 1 << 20) {
      if (!this.socket.write(data.subarray(offset, offset + (1 << 20)))) await new Promise((r) => this.socket.once('drain', r));
    }
    const t0 = performance.now();
    this.socket.write(tail);
    const reply = await waiting;
    return { reply, latencyMs: performance.now() - t0 };
  }

  async quit() {
    try {
      await this.command('QUIT', 221);
    } catch {
      /* closing anyway */
    }
    this.socket.destroy();
  }
}

/** A message of about `size` bytes, with no line starting with a dot. */
/** A message of about `size` bytes whose bulk is one base64 attachment (what a scanner sends). */
export function makeAttachmentMessage(size, from = 'bench@contoso.com', to = 'sink@contoso.com', tag = '') {
  const boundary = 'bench-boundary-0123456789';
  const header =
    `From: ${from}\r\nTo: ${to}\r\nSubject: bench ${tag}\r\nDate: Mon, 23 Nov 2026 08:00:00 +0000\r\nMessage-ID: <${tag || Math.random().toString(36).slice(2)}@bench>\r\n` +
    `MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="${boundary}"\r\n\r\n` +
    `--${boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nScanned document attached.\r\n` +
    `--${boundary}\r\nContent-Type: application/pdf; name="scan.pdf"\r\nContent-Disposition: attachment; filename="scan.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n`;
  const trailer = `\r\n--${boundary}--\r\n`;
  const encodedSize = Math.max(76, size - header.length - trailer.length);
  const raw = Buffer.alloc(Math.floor((encodedSize * 76) / 78 / 4) * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 2654435761) >>> 24; // not all zeros: no accidental compression anywhere
  const lines = raw.toString('base64').match(/.{1,76}/g).join('\r\n');
  return Buffer.from(header + lines + trailer, 'latin1');
}

export function makeMessage(size, from = 'bench@contoso.com', to = 'sink@contoso.com', tag = '') {
  const header = `From: ${from}\r\nTo: ${to}\r\nSubject: bench ${tag}\r\nDate: Mon, 23 Nov 2026 08:00:00 +0000\r\nMessage-ID: <${tag || Math.random().toString(36).slice(2)}@bench>\r\n\r\n`;
  const line = 'The quick brown fox jumps over the lazy dog 0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n';
  const bodySize = Math.max(0, size - header.length);
  const body = line.repeat(Math.ceil(bodySize / line.length)).slice(0, bodySize);
  return Buffer.from(header + body + (body.endsWith('\r\n') ? '' : '\r\n'), 'latin1');
}
