// What the simulator's HTTPS servers (Entra ID, Graph) share: listening, and knowing every socket.
import type { Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

/** 'https://host:port' with IPv6 literals bracketed. */
function originFor(host: string, port: number): string {
  return `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** Listens and resolves with the server's origin. */
export async function listenHttps(server: Server, host: string, port: number): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return originFor(host, (server.address() as AddressInfo).port);
}

/**
 * Every TCP connection, including ones still in the TLS handshake (closeAllConnections() only
 * knows those that reached HTTP), so that close() never waits on a client.
 */
export function trackSockets(server: Server): Set<Socket> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return sockets;
}
