// The top-level parts of a multipart MIME message in a file, as byte ranges, found by streaming it
// once (never holding more than a line). Enough to send a message through Graph in pieces: the
// large parts (scans, PDFs) are cut out and uploaded on their own.
import { createReadStream } from 'node:fs';

export interface MimePart {
  /** Where the part's delimiter line starts: [start, end) is the part with its delimiter, as in the file. */
  start: number;
  end: number;
  /** The part's body (after its header block), without the line break that belongs to the next delimiter. */
  bodyStart: number;
  bodyEnd: number;
  contentType: string;
  /** Lowercased Content-Transfer-Encoding, '7bit' when absent. */
  encoding: string;
  filename?: string;
  contentId?: string;
  inline: boolean;
}

export interface MimeStructure {
  boundary: string;
  /** Where the first delimiter line starts: what comes before is the message header and the preamble. */
  firstPartStart: number;
  parts: MimePart[];
}

const MAX_HEADER_BYTES = 256 * 1024;

/** null when the message is not multipart (or its structure cannot be read). */
export async function findMimeParts(path: string): Promise<MimeStructure | null> {
  let offset = 0;
  let rest: Buffer = Buffer.alloc(0);
  // Changed inside onLine: the cast keeps TypeScript from narrowing it to its first value.
  let state = 'top' as 'top' | 'preamble' | 'part-headers' | 'part-body' | 'epilogue';
  let headerLines: string[] = [];
  let headerBytes = 0;
  let boundary = '';
  let firstPartStart = -1;
  const parts: MimePart[] = [];
  let current: Partial<MimePart> & { start: number } = { start: 0 };
  let previousLineEndLength = 0;

  const onLine = (line: string, lineStart: number, lineEnd: number, eolLength: number): boolean => {
    if (state === 'top' || state === 'part-headers') {
      if (line === '') {
        const headers = parseHeaders(headerLines);
        headerLines = [];
        headerBytes = 0;
        if (state === 'top') {
          const type = headers.get('content-type') ?? '';
          const b = /boundary="?([^";]+)"?/i.exec(type)?.[1];
          if (!/^multipart\//i.test(type) || !b) return false;
          boundary = b.trim();
          state = 'preamble';
        } else {
          const type = headers.get('content-type') ?? 'text/plain';
          const disposition = headers.get('content-disposition') ?? '';
          const filename = param(disposition, 'filename') ?? param(type, 'name');
          const contentId = /<([^>]+)>/.exec(headers.get('content-id') ?? '')?.[1];
          Object.assign(current, {
            bodyStart: lineEnd,
            contentType: type.split(';')[0]!.trim().toLowerCase() || 'application/octet-stream',
            encoding: (headers.get('content-transfer-encoding') ?? '7bit').trim().toLowerCase(),
            inline: /^\s*inline/i.test(disposition),
            ...(filename !== undefined && { filename }),
            ...(contentId !== undefined && { contentId }),
          });
          state = 'part-body';
        }
        return true;
      }
      headerBytes += lineEnd - lineStart;
      if (headerBytes > MAX_HEADER_BYTES) return false;
      if (/^[ \t]/.test(line) && headerLines.length > 0) headerLines[headerLines.length - 1] += ` ${line.trim()}`;
      else headerLines.push(line);
      return true;
    }
    const trimmed = line.replace(/[ \t]+$/, '');
    const isClose = trimmed === `--${boundary}--`;
    if (state !== 'epilogue' && (trimmed === `--${boundary}` || isClose)) {
      if (state === 'part-body') {
        current.end = lineStart;
        current.bodyEnd = lineStart - previousLineEndLength;
        parts.push(current as MimePart);
      } else if (firstPartStart === -1) {
        firstPartStart = lineStart;
      }
      if (isClose) {
        state = 'epilogue';
      } else {
        current = { start: lineStart };
        state = 'part-headers';
      }
    }
    previousLineEndLength = eolLength;
    return true;
  };

  for await (const chunk of createReadStream(path, { highWaterMark: 256 * 1024 })) {
    let data: Buffer = rest.length ? Buffer.concat([rest, chunk as Buffer]) : (chunk as Buffer);
    let from = 0;
    for (;;) {
      const nl = data.indexOf(0x0a, from);
      if (nl === -1) break;
      const eol = nl > from && data[nl - 1] === 0x0d ? 2 : 1;
      // Only header and delimiter lines are ever compared: decoding the rest as text is wasted work.
      const lineLength = nl + 1 - eol - from;
      const line = state === 'part-body' || state === 'preamble' || state === 'epilogue' ? (lineLength <= boundary.length + 8 ? data.toString('latin1', from, nl + 1 - eol) : '') : data.toString('latin1', from, nl + 1 - eol);
      if (!onLine(line, offset + from, offset + nl + 1, eol)) return null;
      from = nl + 1;
    }
    offset += from;
    rest = data.subarray(from);
    data = Buffer.alloc(0);
    if (rest.length > MAX_HEADER_BYTES && state !== 'part-body' && state !== 'preamble' && state !== 'epilogue') return null;
  }
  if (parts.length === 0 || firstPartStart === -1 || state !== 'epilogue') return null;
  return { boundary, firstPartStart, parts };
}

function parseHeaders(lines: string[]): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) map.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return map;
}

function param(value: string, name: string): string | undefined {
  const m = new RegExp(`(?:^|;)\\s*${name}\\*?="?([^";]+)"?`, 'i').exec(value);
  return m?.[1]?.trim();
}
