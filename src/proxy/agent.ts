import { Agent, type AgentOptions, type RequestOptions } from 'node:https';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { openTunnel } from './tunnel.js';

/**
 * An https.Agent whose connections go through an HTTP CONNECT tunnel: TLS runs inside the tunnel
 * with the destination's own name (SNI and certificate check), so the proxy sees only host:port.
 * Node's Agent takes a socket from createConnection's callback (a documented form) when the
 * method returns nothing.
 */
export class TunnelingAgent extends Agent {
  constructor(
    private readonly proxy: URL,
    private readonly connectTimeoutMs: number,
    options: AgentOptions = {},
  ) {
    super(options);
  }

  override createConnection(options: RequestOptions, callback?: (err: Error | null, stream: Duplex) => void): undefined {
    const host = String(options.hostname ?? options.host ?? 'localhost').replace(/^\[(.*)\]$/, '$1');
    const port = Number(options.port ?? 443);
    openTunnel(this.proxy, host, port, this.connectTimeoutMs).then(
      (tunnel) => {
        const tlsOptions = { ...(options as ConnectionOptions), socket: tunnel, host, servername: isIP(host) ? undefined : host };
        callback?.(null, tlsConnect(tlsOptions));
      },
      (err: Error) => callback?.(err, undefined as unknown as Duplex),
    );
    return undefined;
  }
}
