// Test messages with attachments, and reading parts back out of what the simulator received.
import { createHash } from 'node:crypto';

/** Deterministic bytes that do not compress or repeat: a scan stand-in. */
export function scanBytes(size: number, seed = 'scan'): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(seed).digest();
  for (let i = 0; i < size; i += block.length) {
    block.copy(out, i);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

export function base64Lines(data: Buffer): string {
  return data.toString('base64').replace(/.{76}/g, '$&\r\n');
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The decoded bytes of the attachment called `name` in a received MIME message. */
export function attachmentOf(raw: Buffer, name: string): Buffer | null {
  return partWhere(raw, new RegExp(`filename="${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"`))?.body ?? null;
}

/**
 * The first part whose header block matches `pattern`: its header text and its body, decoded when
 * it is base64 (as the simulator writes uploaded attachments) and as it is otherwise.
 */
export function partWhere(raw: Buffer, pattern: RegExp): { headers: string; body: Buffer } | null {
  const text = raw.toString('latin1');
  const blocks = text.split(/\r\n--[^\r\n]+\r\n/);
  for (const block of blocks.slice(1)) {
    const end = block.indexOf('\r\n\r\n');
    if (end === -1) continue;
    const headers = block.slice(0, end);
    if (!pattern.test(headers)) continue;
    const body = block.slice(end + 4).replace(/\r\n--[^\r\n]*--\s*$/, '');
    return { headers, body: /content-transfer-encoding:\s*base64/i.test(headers) ? Buffer.from(body.replace(/\s+/g, ''), 'base64') : Buffer.from(body, 'latin1') };
  }
  return null;
}
