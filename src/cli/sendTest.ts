// `send-test`: a test message through the path devices use (the running relay's own listener, the
// spool, the worker, Exchange Online), then the outcome as the spool records it.
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import nodemailer from 'nodemailer';
import type { RelayConfig } from '../config/index.js';
import { silentLogger } from '../observability/logger.js';
import { QueueAdmin, Spool } from '../spool/index.js';

export interface SendTestOptions {
  to: string;
  from?: string;
  /** Local account to log in with, for a listener that requires AUTH from this host. */
  user?: { username: string; password: string };
  /** How long to follow the message; 0 returns once it is queued. */
  timeoutMs: number;
  out: NodeJS.WritableStream;
  /** The configuration file as given to --config, for the commands the output suggests. */
  configFile?: string;
}

const POLL_MS = 250;

/** Where the relay's own listener is reached, and whether it offers STARTTLS. */
export interface ListenerTarget {
  host: string;
  port: number;
  tls: boolean;
}

export type Submission = { ok: true; queuedAs: string; response: string } | { ok: false; response: string; hint: string | null };

/** Hands a test message to the relay's listener the way a device does; what the listener answered. */
export async function submitTestMessage(target: ListenerTarget, message: { from: string; to: string; user?: { username: string; password: string } }): Promise<Submission> {
  const transport = nodemailer.createTransport({
    host: target.host,
    port: target.port,
    secure: false,
    // With a certificate on the listener, STARTTLS is used (and AUTH needs it); the certificate is
    // not checked because this connects to our own listener by address, not by its name.
    ignoreTLS: !target.tls,
    tls: { rejectUnauthorized: false },
    auth: message.user ? { user: message.user.username, pass: message.user.password } : undefined,
    name: hostname(),
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 30_000,
  });
  try {
    const info = (await transport.sendMail({ envelope: { from: message.from, to: [message.to] }, raw: testMessage(message.from, message.to) })) as { response: string };
    return { ok: true, queuedAs: /queued as (\S+)/.exec(info.response)?.[1] ?? '', response: info.response };
  } catch (err) {
    const e = err as { response?: string; message: string; code?: string };
    const response = e.response ?? e.message;
    let hint: string | null = null;
    if (/\b530\b|5\.7\.0|authentication required/i.test(e.response ?? '')) {
      hint = `this host is not in allowNetworks: add ${target.host === '::1' ? '::1/128' : `${target.host}/32`} to allowNetworks, or pass --user NAME with the password in M365_RELAY_PASSWORD`;
    } else if (e.code === 'ECONNECTION' || /ECONNREFUSED/.test(e.message)) {
      hint = 'is the relay running (m365-relay run) with this configuration?';
    }
    return { ok: false, response, hint };
  } finally {
    transport.close();
  }
}

/** Exit code: 0 delivered (or queued, with no waiting), 1 refused, failed or still waiting at the timeout. */
export async function sendTest(config: RelayConfig, options: SendTestOptions): Promise<number> {
  const listen = config.listen[0]!;
  const target = { host: connectHost(listen.host), port: listen.port, tls: Boolean(listen.tls) };
  const sent = await submitTestMessage(target, { from: options.from ?? config.microsoft365.mailbox, to: options.to, user: options.user });
  if (!sent.ok) {
    options.out.write(`the relay at ${target.host}:${target.port} did not take the message: ${sent.response}\n`);
    if (sent.hint) options.out.write(`  ${sent.hint}\n`);
    return 1;
  }
  options.out.write(`accepted by the relay at ${target.host}:${target.port}: ${sent.response}\n`);
  if (options.timeoutMs <= 0 || !sent.queuedAs) return 0;
  return follow(config, sent.queuedAs, options);
}

/** Follows the message in the spool until it leaves it (delivered) or fails, bounded by timeoutMs. */
async function follow(config: RelayConfig, id: string, options: SendTestOptions): Promise<number> {
  const spool = await Spool.open(config.spool.dir, silentLogger());
  const admin = new QueueAdmin(spool);
  const deadline = Date.now() + options.timeoutMs;
  let lastReported: string | null = null;
  for (;;) {
    const found = await admin.find(id);
    if (!found && !existsSync(spool.dataPath(id))) {
      options.out.write(`${id}: delivered to Exchange Online (the relay's log has the upstream queue id: grep ${id})\n`);
      return 0;
    }
    const meta = found?.entry.meta;
    if (found?.entry.state === 'failed') {
      options.out.write(`${id}: FAILED: ${meta?.lastError ?? 'no reason recorded'}\n`);
      return 1;
    }
    if (meta?.lastError && meta.lastError !== lastReported) {
      lastReported = meta.lastError;
      options.out.write(`${id}: deferred after ${meta.attempts} attempt(s): ${meta.lastError}; next attempt ${meta.nextAttemptAt ?? 'now'}\n`);
    }
    if (Date.now() > deadline) {
      options.out.write(`${id}: still in the queue after ${Math.round(options.timeoutMs / 1000)} s; follow it with: m365-relay queue show ${id} --config ${options.configFile ?? 'FILE'}\n`);
      return 1;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/** A wildcard listen address is reached through loopback. */
export function connectHost(listenHost: string): string {
  if (listenHost === '0.0.0.0' || listenHost === '') return '127.0.0.1';
  if (listenHost === '::' || listenHost === '[::]') return '::1';
  return listenHost;
}

function testMessage(from: string, to: string): string {
  const now = new Date();
  return [
    `From: m365-relay test <${from}>`,
    `To: <${to}>`,
    `Subject: m365-relay test message from ${hostname()}`,
    `Date: ${now.toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: <${randomUUID()}@${hostname()}>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Auto-Submitted: auto-generated',
    '',
    `This message was sent by "m365-relay send-test" on ${hostname()} at ${now.toISOString()}.`,
    'It went through the relay the way a device\'s mail does: its SMTP listener, its spool, and the',
    'Microsoft 365 account it is configured with. If you can read this, the relay works end to end.',
    '',
  ].join('\r\n');
}
