import { readFileSync } from 'node:fs';
import type { SMTPServerOptions } from 'smtp-server';
import type { ListenConfig, RelayConfig } from '../config/index.js';

/** A listener's certificate or key file could not be read; the message names the file. */
export class ListenerTlsError extends Error {
  override readonly name = 'ListenerTlsError';
  readonly code = 'ELISTENERTLS';
}

export interface TlsMaterial {
  key: Buffer;
  cert: Buffer;
}

/** Reads a listener's PEM files (at start and on reload), or undefined for a plain listener. */
export function readTls(listen: ListenConfig): TlsMaterial | undefined {
  if (!listen.tls) return undefined;
  const read = (what: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new ListenerTlsError(`listener ${listen.host}:${listen.port}: cannot read the TLS ${what} file ${file}: ${(err as Error).message}`, { cause: err });
    }
  };
  return { cert: read('certificate', listen.tls.cert), key: read('key', listen.tls.key) };
}

/** Commands a device never needs. XCLIENT/XFORWARD would let a client claim another address. */
const ALWAYS_DISABLED = ['VRFY', 'XCLIENT', 'XFORWARD', 'WIZ', 'SHELL', 'KILL'];

/** The server-wide disabled commands of a listener (sessions may add AUTH, see handlers.ts). */
export function disabledCommands(tls: boolean): string[] {
  return tls ? [...ALWAYS_DISABLED] : [...ALWAYS_DISABLED, 'STARTTLS'];
}

/**
 * smtp-server options for one `listen` entry of a LAN relay. The handlers (access, limits, spool)
 * come from handlers.ts.
 */
export function serverOptions(
  listen: ListenConfig,
  config: RelayConfig,
  name: string,
  tls: TlsMaterial | undefined,
  handlers: Pick<SMTPServerOptions, 'onConnect' | 'onSecure' | 'onAuth' | 'onMailFrom' | 'onRcptTo' | 'onData' | 'onClose'>,
): SMTPServerOptions {
  return {
    name,
    banner: 'm365-relay',
    // Plain SMTP on the port; TLS only through STARTTLS (secure: true would be implicit TLS, 465).
    secure: false,
    ...(tls ? { key: tls.key, cert: tls.cert } : {}),
    // STARTTLS only where the listener has a certificate; without one it is neither advertised nor
    // accepted (otherwise smtp-server would fall back to its built-in, publicly known test key).
    hideSTARTTLS: !tls,
    disabledCommands: disabledCommands(Boolean(tls)),
    // AUTH and TLS. Devices that log in use PLAIN or LOGIN; nothing else is offered.
    // - Listener with a certificate: passwords only travel encrypted. AUTH is not advertised before
    //   STARTTLS (handlers.ts disables it per session, like Postfix smtpd_tls_auth_only) and
    //   allowInsecureAuth is false, so smtp-server also refuses AUTH on a plain session (538).
    // - Listener without a certificate: allowInsecureAuth is true, AUTH over plain text is accepted.
    //   Old devices cannot do TLS and live on the LAN; an administrator who wants encrypted
    //   passwords configures `tls` on the listener.
    authMethods: ['PLAIN', 'LOGIN'],
    allowInsecureAuth: !tls,
    // AUTH is optional at the protocol level: clients in allowNetworks relay without it. The relay
    // rule itself (allowNetworks or authenticated, nothing else) is enforced in onMailFrom,
    // onRcptTo and onData, with our own 530 5.7.0.
    authOptional: true,
    // SIZE is advertised as maxMessageSize; smtp-server marks stream.sizeExceeded and onData
    // answers 552 5.3.4 (rejectOversized stays off so that the reply text is ours).
    size: config.maxMessageSize,
    // Our replies carry their enhanced codes in the text (replies.ts); smtp-server's automatic
    // mapping would give wrong or doubled codes. DSN and REQUIRETLS are not implemented by the relay.
    hideENHANCEDSTATUSCODES: true,
    hideDSN: true,
    hideREQUIRETLS: true,
    // 8BITMIME, SMTPUTF8 and PIPELINING stay advertised, as smtp-server does by default: the bytes
    // are relayed as received.
    // maxRecipients is not given to smtp-server: onRcptTo answers 452 4.5.3 itself.
    // A LAN relay does not use PTR names; reverse lookups would only add latency per connection.
    disableReverseLookup: true,
    useXClient: false,
    useXForward: false,
    useProxy: false,
    // Per listener backstop; the total over all listeners is enforced in onConnect.
    maxClients: config.limits.maxConnections,
    socketTimeout: config.limits.socketTimeout,
    closeTimeout: 10_000,
    // smtp-server's own logging is off: the relay logs its own events through pino.
    logger: false,
    ...handlers,
  };
}
