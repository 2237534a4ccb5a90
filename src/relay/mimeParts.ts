// The MIME tree of a message in a file, as byte ranges, found by streaming it once (never holding
// more than a line): every part at every depth (multipart/mixed > multipart/related > text/html...),
// so the Graph transport can take attachments out of a message too large for one request and keep
// the bodies where they are. message/rfc822 parts are leaves (not descended into).
import { createReadStream } from 'node:fs';
import { parseHeaderValue } from 'nodemailer/lib/mime-funcs';
import { decodeWords } from './graphRecipients.js';

export interface MimeNode {
  /** Where the part's delimiter line starts (0 for the whole message): [start, end) is the part with its delimiter. */
  start: number;
  end: number;
  /** The part's body (after its header block), without the line break that belongs to the next delimiter. */
  bodyStart: number;
  bodyEnd: number;
  /** Lowercased type/subtype, text/plain when absent. */
  contentType: string;
  charset?: string;
  /** Lowercased Content-Transfer-Encoding, '7bit' when absent. */
  encoding: string;
  /** Lowercased Content-Disposition type (inline, attachment), when given. */
  disposition?: string;
  /** Decoded (RFC 2231 / RFC 2047) file name, from Content-Disposition filename or Content-Type name. */
  filename?: string;
  /** Without the angle brackets. */
  contentId?: string;
  /** Multipart nodes only. */
  boundary?: string;
  children?: MimeNode[];
}

const MAX_HEADER_BYTES = 256 * 1024;
/** RFC 2046 limits boundaries to 70 characters: a longer line is never a delimiter and is not decoded. */
const MAX_DELIMITER_LINE = 70 + 8;

/** null when the structure cannot be read (a multipart without its closing delimiter, a huge header block). */
export async function parseMimeTree(path: string): Promise<MimeNode | null> {
  const root: MimeNode = { start: 0, end: 0, bodyStart: 0, bodyEnd: 0, contentType: 'text/plain', encoding: '7bit' };
  /** Multiparts whose closing delimiter has not come yet, outermost first. */
  const open: Array<{ node: MimeNode; child: MimeNode | null }> = [];
  let inHeaders = true;
  let current = root;
  let headerLines: string[] = [];
  let headerBytes = 0;
  let previousEol = 0;
  let offset = 0;
  let rest: Buffer = Buffer.alloc(0);

  const finishHeaders = (lineEnd: number): void => {
    describe(current, headerLines);
    current.bodyStart = lineEnd;
    headerLines = [];
    headerBytes = 0;
    inHeaders = false;
    if (current.boundary) open.push({ node: current, child: null });
  };

  const onLine = (line: string, lineStart: number, lineEnd: number, eol: number): boolean => {
    if (inHeaders) {
      if (line === '') {
        finishHeaders(lineEnd);
      } else {
        headerBytes += lineEnd - lineStart;
        if (headerBytes > MAX_HEADER_BYTES) return false;
        if (/^[ \t]/.test(line) && headerLines.length > 0) headerLines[headerLines.length - 1] += ` ${line.trim()}`;
        else headerLines.push(line);
      }
      previousEol = eol;
      return true;
    }
    if (line.startsWith('--')) {
      const trimmed = line.replace(/[ \t]+$/, '');
      for (let level = open.length - 1; level >= 0; level--) {
        const { node } = open[level]!;
        const isClose = trimmed === `--${node.boundary}--`;
        if (trimmed !== `--${node.boundary}` && !isClose) continue;
        // This delimiter ends every part opened inside this multipart.
        for (let inner = open.length - 1; inner >= level; inner--) {
          const child = open[inner]!.child;
          if (child) close(child, lineStart, previousEol);
          open[inner]!.child = null;
        }
        for (let inner = open.length - 1; inner > level; inner--) close(open[inner]!.node, lineStart, previousEol);
        open.length = level + 1;
        if (isClose) {
          open.pop();
        } else {
          const child: MimeNode = { start: lineStart, end: lineStart, bodyStart: lineEnd, bodyEnd: lineEnd, contentType: 'text/plain', encoding: '7bit' };
          (node.children ??= []).push(child);
          open[level]!.child = child;
          current = child;
          inHeaders = true;
        }
        break;
      }
    }
    previousEol = eol;
    return true;
  };

  for await (const chunk of createReadStream(path, { highWaterMark: 256 * 1024 })) {
    const data: Buffer = rest.length ? Buffer.concat([rest, chunk as Buffer]) : (chunk as Buffer);
    let from = 0;
    for (;;) {
      const nl = data.indexOf(0x0a, from);
      if (nl === -1) break;
      const eol = nl > from && data[nl - 1] === 0x0d ? 2 : 1;
      const length = nl + 1 - eol - from;
      // Only header and delimiter lines are ever compared: decoding body lines as text is wasted work.
      const line = inHeaders || length <= MAX_DELIMITER_LINE ? data.toString('latin1', from, from + length) : '';
      if (!onLine(line, offset + from, offset + nl + 1, eol)) return null;
      from = nl + 1;
    }
    offset += from;
    rest = data.subarray(from);
    if (inHeaders && rest.length > MAX_HEADER_BYTES) return null;
  }
  const size = offset + rest.length;
  // A last line without a line break can still be a closing delimiter.
  if (rest.length > 0 && rest.length <= MAX_DELIMITER_LINE) onLine(rest.toString('latin1'), offset, size, 0);
  if (inHeaders && current === root) finishHeaders(size);
  if (open.length > 0) return null;
  root.end = size;
  root.bodyEnd = size;
  return root;
}

function close(node: MimeNode, lineStart: number, previousEol: number): void {
  node.end = lineStart;
  node.bodyEnd = Math.max(node.bodyStart, lineStart - previousEol);
}

function describe(node: MimeNode, lines: string[]): void {
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const type = parseHeaderValue(headers.get('content-type') ?? 'text/plain');
  node.contentType = type.value.trim().toLowerCase() || 'text/plain';
  if (type.params.charset) node.charset = type.params.charset;
  node.encoding = (headers.get('content-transfer-encoding') ?? '7bit').trim().toLowerCase();
  const dispositionHeader = headers.get('content-disposition');
  const disposition = dispositionHeader !== undefined ? parseHeaderValue(dispositionHeader) : undefined;
  if (disposition?.value) node.disposition = disposition.value.trim().toLowerCase();
  const filename = disposition?.params.filename ?? type.params.name;
  if (filename) node.filename = decodeWords(filename);
  const contentId = /<([^>]+)>/.exec(headers.get('content-id') ?? '')?.[1] ?? headers.get('content-id')?.trim();
  if (contentId) node.contentId = contentId;
  const boundary = type.params.boundary;
  if (node.contentType.startsWith('multipart/') && boundary) {
    node.boundary = boundary;
    node.children = [];
  }
}

/** Every leaf part, depth first, in the order they appear. */
export function leaves(node: MimeNode): MimeNode[] {
  return node.children ? node.children.flatMap(leaves) : [node];
}
