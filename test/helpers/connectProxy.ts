// A forwarding HTTP proxy on loopback that only does CONNECT, as corporate proxies do for HTTPS:
// optional Basic authentication, ports it refuses (403), and a record of every CONNECT it saw.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { connect, type AddressInfo, type Socket } from 'node:net';

export interface TestProxy {
  port: number;
  /** http://127.0.0.1:PORT, or https://localhost:PORT for a TLS proxy */
  url: string;
  /** Every CONNECT target asked for (host:port), in order, with the answer given. */
  connects: Array<{ target: string; status: number; authorization: string | undefined }>;
  close(): Promise<void>;
}

/** `tls`: an https:// proxy with this certificate (for localhost, e.g. from generateServerCertificate). */
export async function startConnectProxy(options: { user?: string; password?: string; refusePorts?: number[]; tls?: { certPem: string; keyPem: string } } = {}): Promise<TestProxy> {
  const connects: TestProxy['connects'] = [];
  const sockets = new Set<Socket>();
  const expected = options.user !== undefined ? `Basic ${Buffer.from(`${options.user}:${options.password ?? ''}`).toString('base64')}` : undefined;
  const refuseOthers = (_req: IncomingMessage, res: import('node:http').ServerResponse) => {
    res.writeHead(405, { allow: 'CONNECT' }).end();
  };
  const server: Server = options.tls ? createTlsServer({ cert: options.tls.certPem, key: options.tls.keyPem }, refuseOthers) : createServer(refuseOthers);
  server.on(options.tls ? 'secureConnection' : 'connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    const target = req.url ?? '';
    const authorization = req.headers['proxy-authorization'];
    const answer = (status: number, text: string, extra = '') => {
      connects.push({ target, status, authorization });
      client.end(`HTTP/1.1 ${status} ${text}\r\n${extra}Content-Length: 0\r\n\r\n`);
    };
    if (expected !== undefined && authorization !== expected) return answer(407, 'Proxy Authentication Required', 'Proxy-Authenticate: Basic realm="test"\r\n');
    const colon = target.lastIndexOf(':');
    const host = target.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
    const port = Number(target.slice(colon + 1));
    if (options.refusePorts?.includes(port)) return answer(403, 'Forbidden');
    const upstream = connect(port, host, () => {
      connects.push({ target, status: 200, authorization });
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream);
    upstream.once('close', () => sockets.delete(upstream));
    upstream.on('error', () => answer(502, 'Bad Gateway'));
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: options.tls ? `https://localhost:${port}` : `http://127.0.0.1:${port}`,
    connects,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
