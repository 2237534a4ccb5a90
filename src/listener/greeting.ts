import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

/**
 * smtp-server holds every greeting back 100 ms to catch "early talkers" (spam bots that speak
 * before the banner). That test is for Internet-facing MTAs; on a LAN relay it only adds 100 ms
 * to every connection, and devices that send one message per connection (most of them) pay it
 * every time: with 8 concurrent senders it caps acceptance at about 80 messages a second.
 *
 * This replaces SMTPConnection.init with the same steps minus the delay. It only applies when
 * the library's init is the one it was written against (its source is checked), so an upgrade
 * that changes init falls back to the library's own behaviour instead of breaking.
 */
interface ConnectionInternals {
  _setListeners(callback: () => void): void;
  _server: { options: { maxClients?: number }; connections: Set<unknown> };
  name: string;
  send(code: number, text: string, context?: false): void;
  connectionReady(): void;
}

let applied: boolean | null = null;

export function greetWithoutDelay(): boolean {
  if (applied !== null) return applied;
  const proto = SMTPConnection.prototype as unknown as { init: (this: ConnectionInternals) => void };
  const source = String(proto.init);
  applied = /setTimeout\(\(\) => this\.connectionReady\(\), 100\)/.test(source) && /maxClients/.test(source);
  if (!applied) return false;
  proto.init = function init(this: ConnectionInternals) {
    this._setListeners(() => {
      const { maxClients } = this._server.options;
      if (maxClients && this._server.connections.size > maxClients) {
        return this.send(421, `${this.name} Too many connected clients, try again in a moment`, false);
      }
      this.connectionReady();
    });
  };
  return true;
}
