// The From header's address(es) from a raw RFC 5322 message, enough for Exchange's SendAs check.

/** The header block (up to the first empty line), unfolded, split into header lines. */
export function headerLines(raw: Buffer): string[] {
  const text = raw.toString('utf8');
  const end = /\r?\n\r?\n/.exec(text);
  const block = end ? text.slice(0, end.index) : text;
  if (/^\r?\n/.test(text)) return []; // starts with the empty line: no headers at all
  return block
    .replace(/\r?\n(?=[ \t])/g, '') // unfold
    .split(/\r?\n/);
}

/** Lowercased addresses of the (first) From header, [] when there is none. */
export function fromAddresses(raw: Buffer): string[] {
  const line = headerLines(raw).find((l) => /^from[ \t]*:/i.test(l));
  if (line === undefined) return [];
  return parseAddressList(line.slice(line.indexOf(':') + 1));
}

/**
 * Addresses of an RFC 5322 address list: display names (quoted or not), comments, angle
 * addresses, bare addr-specs and groups (`name: a@b, c@d;`).
 */
export function parseAddressList(value: string): string[] {
  // One pass removes comments and splits on top-level commas, keeping quoted strings intact.
  const items: string[] = [];
  let current = '';
  let depth = 0;
  let quoted = false;
  let angle = false;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i] as string;
    if (quoted) {
      current += ch;
      if (ch === '\\' && i + 1 < value.length) current += value[++i];
      else if (ch === '"') quoted = false;
      continue;
    }
    if (depth > 0) {
      if (ch === '\\') i++;
      else if (ch === '(') depth++;
      else if (ch === ')') depth--;
      continue;
    }
    if (ch === '"') {
      quoted = true;
      current += ch;
    } else if (ch === '(') {
      depth = 1;
      current += ' ';
    } else if ((ch === ',' || ch === ';') && !angle) {
      items.push(current);
      current = '';
    } else {
      if (ch === '<') angle = true;
      else if (ch === '>') angle = false;
      current += ch;
    }
  }
  items.push(current);

  const addresses: string[] = [];
  for (let item of items) {
    // A group's display name ends at an unquoted colon.
    const colon = unquotedIndexOf(item, ':');
    if (colon >= 0 && unquotedIndexOf(item, '<') < 0) item = item.slice(colon + 1);
    else if (colon >= 0 && colon < unquotedIndexOf(item, '<')) item = item.slice(colon + 1);
    const lt = unquotedIndexOf(item, '<');
    let address: string;
    if (lt >= 0) {
      const gt = item.indexOf('>', lt);
      address = item.slice(lt + 1, gt < 0 ? undefined : gt);
      // an obsolete source route (<@a,@b:user@host>) keeps only the mailbox
      address = address.replace(/^@[^:]*:/, '');
    } else {
      address = item;
    }
    address = address.trim();
    if (address.includes('@')) addresses.push(address.toLowerCase());
  }
  return addresses;
}

function unquotedIndexOf(text: string, needle: string): number {
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '\\') i++;
      else if (ch === '"') quoted = false;
    } else if (ch === '"') quoted = true;
    else if (ch === needle) return i;
  }
  return -1;
}
