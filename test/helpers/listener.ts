import { join } from 'node:path';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/index.js';
import { createListener } from '../../src/listener/index.js';
import { SpaceGuard, Spool } from '../../src/spool/index.js';
import { captureLogger } from './logs.js';
import { tempDir } from './tmp.js';

export type T = { after: (fn: () => unknown) => void };

/** The real listener over a real spool, without the relay worker (upstream is never contacted). */
export async function startListener(t: T, overrides: Record<string, unknown> = {}, listen: Record<string, unknown> = { port: 0, host: '127.0.0.1' }, spoolExtra: Record<string, unknown> = {}) {
  const tmp = tempDir();
  t.after(tmp.remove);
  const spoolDir = (spoolExtra.dir as string | undefined) ?? join(tmp.dir, 'spool');
  const raw = {
    listen: [listen],
    allowNetworks: ['127.0.0.1/32'],
    spool: { minFreeSpace: 0, ...spoolExtra, dir: spoolDir },
    // The upstream is never contacted here: only the listener and the spool run.
    microsoft365: { tenantId: 't', clientId: 'c', clientSecret: 's', mailbox: 'relay@contoso.com' },
    ...overrides,
  };
  const config = parseConfig(stringify(raw), join(tmp.dir, 'relay.yaml'), {});
  const { logger, lines } = captureLogger();
  const spool = await Spool.open(config.spool.dir, logger);
  const listener = createListener({ config, sink: spool, logger, space: new SpaceGuard(config.spool.dir, config.spool.minFreeSpace, 0) });
  const [bound] = await listener.start();
  t.after(() => listener.close(500));
  return { port: bound!.port, spool, logs: lines, dir: tmp.dir, listener };
}

/**
 * A spooled message as the listener writes it: the relay's own Received: field (checked: it names
 * the queue id) followed by the client's bytes. Returns those bytes, to compare with what was sent.
 */
export function clientBytes(stored: Buffer, id: string): { received: string; rest: Buffer } {
  const text = stored.toString('latin1');
  const match = /^Received: from [^\r\n]*(?:\r?\n\t[^\r\n]*)*\r?\n/.exec(text);
  if (!match) throw new Error(`the spooled message does not start with the relay's Received: field:\n${text.slice(0, 300)}`);
  if (!match[0].includes(`(m365-relay) with `) || !match[0].includes(` id ${id}`)) throw new Error(`the Received: field does not name the relay and queue id ${id}:\n${match[0]}`);
  return { received: match[0], rest: stored.subarray(Buffer.byteLength(match[0], 'latin1')) };
}
