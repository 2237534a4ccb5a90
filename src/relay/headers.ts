import { read } from 'node:fs';
import { closeFd, openFd } from '../spool/fd.js';

/**
 * The header block of a spooled message, split into fields with their raw bytes kept, so that
 * fields we do not touch go out byte for byte as the device wrote them. Strings are latin1: one
 * char per byte, a lossless round trip for 8-bit headers.
 */
export interface HeaderField {
  /** Lower-cased field name. */
  name: string;
  /** The whole field as it was, folding and line ending included. */
  raw: string;
}

export interface HeaderBlock {
  fields: HeaderField[];
  /** The line ending the message uses, reused for fields we add. */
  eol: '\r\n' | '\n';
  /** Where the body starts in the data file (after the blank line), or where the fields end when no body exists. */
  bodyOffset: number;
  /** Whether the blank separator line was present. */
  hasSeparator: boolean;
}

const MAX_HEADER_BYTES = 1024 * 1024;

/** Reads just the header block of a data file (at most 1 MiB; bodies are never read here). */
export async function readHeaderBlock(path: string): Promise<HeaderBlock> {
  const fd = await openFd(path, 'r');
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buffer = Buffer.allocUnsafe(64 * 1024);
      const bytesRead = await readAt(fd, buffer, total);
      if (bytesRead === 0) break;
      chunks.push(buffer.subarray(0, bytesRead));
      total += bytesRead;
      const sofar = Buffer.concat(chunks);
      if (findSeparator(sofar) !== null || total >= MAX_HEADER_BYTES) return parseHeaderBlock(sofar);
    }
    return parseHeaderBlock(Buffer.concat(chunks));
  } finally {
    await closeFd(fd);
  }
}

function readAt(fd: number, buffer: Buffer, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, buffer, 0, buffer.length, position, (err, bytesRead) => (err ? reject(err) : resolve(bytesRead)));
  });
}

function findSeparator(data: Buffer): { headerEnd: number; bodyStart: number } | null {
  // The first empty line: CRLF CRLF, or bare LF LF from devices that write Unix line endings.
  const crlf = data.indexOf('\r\n\r\n');
  const lf = data.indexOf('\n\n');
  if (crlf === -1 && lf === -1) {
    if (data.subarray(0, 2).toString('latin1') === '\r\n') return { headerEnd: 0, bodyStart: 2 };
    if (data[0] === 0x0a) return { headerEnd: 0, bodyStart: 1 };
    return null;
  }
  if (crlf !== -1 && (lf === -1 || crlf < lf)) return { headerEnd: crlf + 2, bodyStart: crlf + 4 };
  return { headerEnd: lf + 1, bodyStart: lf + 2 };
}

export function parseHeaderBlock(data: Buffer): HeaderBlock {
  const separator = findSeparator(data);
  const headerEnd = separator ? separator.headerEnd : Math.min(data.length, MAX_HEADER_BYTES);
  const text = data.subarray(0, headerEnd).toString('latin1');
  const eol = text.includes('\r\n') || !text.includes('\n') ? '\r\n' : '\n';
  const fields: HeaderField[] = [];
  const lines = text.split(/(?<=\n)/);
  let consumed = 0;
  for (const line of lines) {
    const isContinuation = line[0] === ' ' || line[0] === '\t';
    const last = fields[fields.length - 1];
    if (isContinuation && last) {
      last.raw += line;
    } else {
      const colon = line.indexOf(':');
      if (colon <= 0 || !/^[\x21-\x39\x3b-\x7e]+$/.test(line.slice(0, colon).trimEnd())) {
        // Not a header field: the device sent no header block (body only). Stop here.
        break;
      }
      fields.push({ name: line.slice(0, colon).trim().toLowerCase(), raw: line });
    }
    consumed += line.length;
  }
  const complete = separator !== null && consumed === headerEnd;
  return {
    fields,
    eol,
    bodyOffset: complete ? separator.bodyStart : consumed,
    hasSeparator: complete,
  };
}

export function fieldValue(field: HeaderField): string {
  return field.raw.slice(field.raw.indexOf(':') + 1).replace(/\r?\n[ \t]/g, ' ').trim();
}

export function findField(block: HeaderBlock, name: string): HeaderField | undefined {
  return block.fields.find((f) => f.name === name);
}

/** The header block as bytes, ending with the blank line the body needs. */
export function serializeHeaderBlock(block: HeaderBlock): Buffer {
  const text = block.fields.map((f) => (f.raw.endsWith('\n') ? f.raw : f.raw + block.eol)).join('') + block.eol;
  return Buffer.from(text, 'latin1');
}

/**
 * Splits an address header value into display name and address:
 * `"Scanner 3" <scan@x>`, `Scanner <scan@x>`, `scan@x (Scanner)`, `scan@x`.
 */
export function parseMailbox(value: string): { name: string; address: string } | null {
  const angle = /^(.*)<([^<>]*)>\s*(?:\(.*\))?\s*$/s.exec(value);
  if (angle) return { name: (angle[1] ?? '').trim(), address: (angle[2] ?? '').trim() };
  const bare = /^\s*([^\s()<>,;:"]+@[^\s()<>,;:"]+)\s*(?:\((.*)\))?\s*$/s.exec(value);
  if (bare) return { name: (bare[2] ?? '').trim(), address: bare[1] ?? '' };
  return null;
}
