import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { SMTPServerOptions } from 'smtp-server';
import type { ListenConfig, RelayConfig } from '../config/index.js';

/** A listener's certificate or key file could not be read or do not match; the message names the key and the file. */
export class ListenerTlsError extends Error {
  override readonly name = 'ListenerTlsError';
  readonly code = 'ELISTENERTLS';
  constructor(
    /** The config key: listen[N].tls.cert or listen[N].tls.key. */
    readonly key: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${key}: ${message}`, options);
  }
}

export interface TlsMaterial {
  key: Buffer;
  cert: Buffer;
}

/**
 * Reads a listener's PEM files (at start, on reload and in check-config) and checks that the key
 * belongs to the certificate, or undefined for a plain listener. Throws ListenerTlsError.
 */
export function readTls(listen: ListenConfig, index = 0): TlsMaterial | undefined {
  return listen.tls && readTlsFiles(listen.tls, `listen[${index}].tls`);
}

/** Reads a certificate and its key named at config key `key` (listen[N].tls, http.tls); throws ListenerTlsError. */
export function readTlsFiles(files: { cert: string; key: string }, key: string): TlsMaterial {
  const read = (what: 'cert' | 'key', file: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new ListenerTlsError(`${key}.${what}`, `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); check the path and that the relay's user may read it`, { cause: err });
    }
  };
  const material = { cert: read('cert', files.cert), key: read('key', files.key) };
  checkTlsPair(material, key, files);
  return material;
}

/** The certificate parses, the key parses, and the key is the certificate's (else TLS handshakes would fail later). */
function checkTlsPair(material: TlsMaterial, key: string, files: { cert: string; key: string }): void {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(material.cert);
  } catch (err) {
    throw new ListenerTlsError(`${key}.cert`, `${files.cert} is not a PEM certificate (${(err as Error).message})`, { cause: err });
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(material.key);
  } catch (err) {
    throw new ListenerTlsError(`${key}.key`, `${files.key} is not a PEM private key, or it is encrypted (${(err as Error).message}); give an unencrypted PEM key`, { cause: err });
  }
  if (!cert.checkPrivateKey(privateKey)) {
    throw new ListenerTlsError(`${key}.key`, `${files.key} is not the key of the certificate ${files.cert}; give the key the certificate was issued for`);
  }
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
  auth: { authRequiresTls: boolean; gate: boolean } = { authRequiresTls: Boolean(tls), gate: false },
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
    // - authRequiresTls (the default with a certificate): passwords only travel encrypted. AUTH is
    //   not advertised before STARTTLS, like Postfix smtpd_tls_auth_only, and an attempt gets our
    //   538 5.7.11 (authGate.ts). smtp-server's own refusal stays off (allowInsecureAuth) while the
    //   gate answers; without the gate it is the backstop.
    // - authRequiresTls: false, or no certificate: AUTH over plain text is accepted. Old devices
    //   cannot do TLS and live on the LAN (the README explains the trade-off).
    authMethods: ['PLAIN', 'LOGIN'],
    allowInsecureAuth: auth.gate || !auth.authRequiresTls,
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
