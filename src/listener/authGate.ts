import type { SMTPServerSession } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { REPLIES } from './replies.js';

/**
 * `authRequiresTls`: on a plain session, AUTH is not advertised in EHLO (a client that logs in
 * whenever AUTH is offered would otherwise send its password in clear, as Postfix's
 * smtpd_tls_auth_only knows), and a client that tries anyway gets
 * `538 5.7.11 Encryption required for requested authentication mechanism` (RFC 4954) and is
 * logged. smtp-server alone can do neither: a session-disabled AUTH answers "500 command not
 * recognized", and its own refusal has another text and no hook. So two of its handlers are
 * wrapped, for gated sessions only. The wrap applies only when the handlers are the ones it was
 * written against (names and arity checked); otherwise the listener falls back to disabling AUTH
 * before STARTTLS, as before.
 */
interface ConnectionInternals {
  session: SMTPServerSession;
  secure: boolean;
  _server: { options: { disabledCommands: string[] } };
  send(code: number, text: string): void;
}
type Handler = (this: ConnectionInternals, command: Buffer, callback: () => void) => unknown;

/** Sessions whose AUTH waits for STARTTLS, with what to do when a client tries it anyway. */
const gated = new WeakMap<SMTPServerSession, (method: string) => void>();

let installed: boolean | null = null;

/** Wraps smtp-server's AUTH and EHLO handlers once; false when its internals are not as expected. */
export function installAuthGate(): boolean {
  if (installed !== null) return installed;
  const proto = SMTPConnection.prototype as unknown as Record<string, Handler | undefined>;
  const auth = proto.handler_AUTH;
  const ehlo = proto.handler_EHLO;
  installed = typeof auth === 'function' && typeof ehlo === 'function' && auth.length === 2 && ehlo.length === 2 && /_isSupported\('AUTH'\)/.test(String(ehlo));
  if (!installed || !auth || !ehlo) return false;
  const [code, text] = REPLIES.encryptionRequired;
  proto.handler_AUTH = function handlerAuth(this: ConnectionInternals, command, callback) {
    const refused = this.secure ? undefined : gated.get(this.session);
    if (!refused) return auth.call(this, command, callback);
    refused(String(command).trim().split(/\s+/)[1]?.toUpperCase() ?? '');
    this.send(code, text);
    return callback();
  };
  proto.handler_EHLO = function handlerEhlo(this: ConnectionInternals, command, callback) {
    if (this.secure || !gated.has(this.session)) return ehlo.call(this, command, callback);
    // EHLO builds its feature list synchronously: AUTH is left out for this one call.
    const own = this.session.disabledCommands;
    this.session.disabledCommands = [...(own ?? this._server.options.disabledCommands), 'AUTH'];
    try {
      return ehlo.call(this, command, callback);
    } finally {
      if (own === undefined) delete this.session.disabledCommands;
      else this.session.disabledCommands = own;
    }
  };
  return true;
}

/** Refuse AUTH on this session until it is encrypted; `onRefused` logs the attempt. */
export function gateAuthUntilTls(session: SMTPServerSession, onRefused: (method: string) => void): void {
  gated.set(session, onRefused);
}
