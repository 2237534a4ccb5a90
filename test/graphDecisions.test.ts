// The Graph transport's decisions as tables: which recipients a message gets, Retry-After, which
// parts are attachments, what leaves the draft, and decoding the parts that do.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { abortableDelay, parseRetryAfter } from '../src/relay/graphClient.js';
import { decodePart, draftPieces, leafKind, partDecoder, planDraft } from '../src/relay/graphDraft.js';
import { applyRecipientPlan, formatMailbox, planRecipients } from '../src/relay/graphRecipients.js';
import { parseHeaderBlock, serializeHeaderBlock } from '../src/relay/headers.js';
import { leaves, parseMimeTree } from '../src/relay/mimeParts.js';
import { tempDir } from './helpers/harness.js';

const header = (lines: string[]) => parseHeaderBlock(Buffer.from([...lines, '', 'body'].join('\r\n'), 'utf8'));
const recipientLines = (lines: string[], envelope: string[]) =>
  serializeHeaderBlock(applyRecipientPlan(header(lines), planRecipients(header(lines), envelope)))
    .toString('utf8')
    .split('\r\n')
    .filter((l) => /^(to|cc|bcc):|^ /i.test(l))
    .join('\n');

describe('recipients: exactly the envelope', () => {
  const cases: Array<{ name: string; headers: string[]; envelope: string[]; want: string }> = [
    { name: 'headers already match: kept as they are', headers: ['To: "Doe, Jane" <jane@x.com>', 'Cc: bob@x.com'], envelope: ['jane@x.com', 'BOB@x.com'], want: 'To: "Doe, Jane" <jane@x.com>\nCc: bob@x.com' },
    { name: 'a header recipient not in the envelope is dropped', headers: ['To: a@x.com, b@x.com, c@x.com'], envelope: ['a@x.com', 'b@x.com'], want: 'To: a@x.com,\n b@x.com' },
    { name: 'the other half of a split envelope', headers: ['To: a@x.com, b@x.com, c@x.com'], envelope: ['c@x.com'], want: 'To: c@x.com' },
    { name: 'an envelope-only recipient becomes Bcc', headers: ['To: a@x.com'], envelope: ['a@x.com', 'audit@x.com'], want: 'To: a@x.com\nBcc: audit@x.com' },
    { name: 'nobody visible is in this envelope: an empty group', headers: ['To: a@x.com', 'Cc: b@x.com'], envelope: ['z@x.com'], want: 'To: undisclosed-recipients:;\nBcc: z@x.com' },
    { name: 'a Bcc header recipient outside the envelope is dropped', headers: ['To: a@x.com', 'Bcc: secret@x.com'], envelope: ['a@x.com'], want: 'To: a@x.com' },
    { name: 'groups are flattened, duplicates kept once', headers: ['To: team: a@x.com, b@x.com;', 'Cc: a@x.com'], envelope: ['a@x.com'], want: 'To: a@x.com' },
    { name: 'IDN domain: the same address in either spelling', headers: ['To: Jürgen <j@bücher.de>'], envelope: ['j@xn--bcher-kva.de', 'k@bücher.de'], want: 'To: =?UTF-8?Q?J=C3=BCrgen?= <j@xn--bcher-kva.de>\nBcc: k@xn--bcher-kva.de' },
    { name: 'non-ASCII local part: UTF-8 (RFC 6532), not latin1', headers: ['To: a@x.com'], envelope: ['a@x.com', 'jürgen@x.com'], want: 'To: a@x.com\nBcc: jürgen@x.com' },
  ];
  for (const c of cases) test(c.name, () => assert.equal(recipientLines(c.headers, c.envelope), c.want));

  test('unchanged headers are kept byte for byte', () => {
    const block = header(['To: "Doe, Jane" <jane@x.com>']);
    assert.equal(applyRecipientPlan(block, planRecipients(block, ['jane@x.com'])), block);
  });

  test('display names: specials quoted, encoded-words decoded and re-encoded', () => {
    assert.equal(formatMailbox({ name: 'Ops, 2nd floor', address: 'o@x.com' }), '"Ops, 2nd floor" <o@x.com>');
    assert.equal(formatMailbox({ name: 'Müller', address: 'm@x.com' }), '=?UTF-8?Q?M=C3=BCller?= <m@x.com>');
    const plan = planRecipients(header(['To: =?utf-8?B?TcO8bGxlcg==?= <m@x.com>, b@x.com']), ['m@x.com']);
    assert.deepEqual(plan.to, [{ name: 'Müller', address: 'm@x.com' }]);
  });
});

describe('Retry-After', () => {
  const now = Date.parse('2026-11-26T12:00:00Z');
  const cases: Array<[string | undefined, number | undefined]> = [
    ['30', 30_000],
    ['0', 0],
    [' 5 ', 5_000],
    ['Thu, 26 Nov 2026 12:00:45 GMT', 45_000],
    ['Thu, 26 Nov 2026 11:59:00 GMT', 0],
    ['Thursday, 26-Nov-26 12:01:00 GMT', 60_000],
    ['86400', 600_000],
    ['Fri, 27 Nov 2026 12:00:00 GMT', 600_000],
    ['-5', undefined],
    ['1.5', undefined],
    ['soon', undefined],
    ['', undefined],
    [undefined, undefined],
  ];
  for (const [value, want] of cases) test(`${JSON.stringify(value)} -> ${want}`, () => assert.equal(parseRetryAfter(value, now, 600_000), want));

  test('a wait ends at once when the signal aborts', async () => {
    const controller = new AbortController();
    const started = Date.now();
    const waiting = abortableDelay(60_000, controller.signal);
    controller.abort(new Error('stopping'));
    await assert.rejects(waiting, /stopping/);
    assert.ok(Date.now() - started < 1000);
    await assert.rejects(abortableDelay(60_000, controller.signal), /stopping/, 'an aborted signal does not wait at all');
  });
});

describe('which parts are attachments', () => {
  const cases: Array<[string, Parameters<typeof leafKind>[0], ReturnType<typeof leafKind>]> = [
    ['HTML body without anything', { contentType: 'text/html' }, 'body'],
    ['text body, disposition inline', { contentType: 'text/plain', disposition: 'inline' }, 'body'],
    ['disposition attachment without a name', { contentType: 'text/plain', disposition: 'attachment' }, 'attachment'],
    ['a PDF with a file name', { contentType: 'application/pdf', filename: 'a.pdf' }, 'attachment'],
    ['an image with a Content-ID and a name', { contentType: 'image/png', filename: 'logo.png', contentId: 'logo@x', disposition: 'inline' }, 'inline'],
    ['an image with a Content-ID and no name', { contentType: 'image/png', contentId: 'logo@x' }, 'inline'],
    ['a text part with a Content-ID and no name is body', { contentType: 'text/html', contentId: 'part1@x' }, 'body'],
    ['Content-ID but disposition attachment', { contentType: 'image/png', contentId: 'x', disposition: 'attachment' }, 'attachment'],
  ];
  for (const [name, node, want] of cases) test(name, () => assert.equal(leafKind(node), want));
});

describe('the draft without its attachments', () => {
  const b64 = (n: number) => Buffer.alloc(n, 7).toString('base64').replace(/.{76}/g, '$&\r\n');
  const message = [
    'From: a@x.com',
    'To: b@x.com',
    'Content-Type: multipart/mixed; boundary="outer"',
    '',
    'preamble',
    '--outer',
    'Content-Type: multipart/related; boundary=inner',
    '',
    '--inner',
    'Content-Type: text/html; charset=utf-8',
    '',
    `<p>${'x'.repeat(3000)}</p>`,
    '--inner',
    'Content-Type: image/png',
    'Content-ID: <logo@x>',
    'Content-Transfer-Encoding: base64',
    '',
    b64(2000),
    '--inner--',
    '',
    '--outer',
    'Content-Type: application/pdf; name="=?utf-8?Q?r=C3=A9sum=C3=A9.pdf?="',
    'Content-Disposition: attachment',
    'Content-Transfer-Encoding: base64',
    '',
    b64(6000),
    '--outer--',
    'epilogue',
  ].join('\r\n');

  test('the tree, the plan and the pieces', async () => {
    const tmp = tempDir();
    try {
      const file = join(tmp.dir, 'm.eml');
      writeFileSync(file, message);
      const root = await parseMimeTree(file);
      assert.ok(root);
      assert.deepEqual(leaves(root).map((l) => [l.contentType, l.filename ?? null, l.contentId ?? null]), [
        ['text/html', null, null],
        ['image/png', null, 'logo@x'],
        ['application/pdf', 'résumé.pdf', null],
      ]);
      const html = leaves(root)[0]!;
      assert.equal(message.slice(html.bodyStart, html.bodyEnd), `<p>${'x'.repeat(3000)}</p>`);

      assert.deepEqual(planDraft(root, 0, 100_000), { ok: true, moved: [] });
      const onlyPdf = planDraft(root, 100, 7000);
      assert.ok(onlyPdf.ok);
      assert.deepEqual(onlyPdf.moved.map((l) => l.contentType), ['application/pdf'], 'the largest first, no more than needed');
      const both = planDraft(root, 100, 4000);
      assert.ok(both.ok);
      assert.deepEqual(both.moved.map((l) => l.contentType).sort(), ['application/pdf', 'image/png']);
      const none = planDraft(root, 100, 1000);
      assert.ok(!none.ok);
      assert.match(none.reason, /its text\/html body part is .* only attachments can be uploaded separately.*largeMessages: smtp/);

      const draft = draftPieces(root, new Set(both.moved))
        .map((p) => (Buffer.isBuffer(p) ? p.toString('latin1') : message.slice(p.from, p.to)))
        .join('');
      assert.ok(draft.includes('Content-Type: text/html') && draft.includes('--inner--') && draft.includes('--outer--'), 'the structure around the body stays');
      assert.ok(!draft.includes('image/png') && !draft.includes('application/pdf'));
      assert.equal(draft.split('--inner').length - 1, 2, 'the related part keeps its HTML part and its closing delimiter');

      const decoded = join(tmp.dir, 'pdf');
      assert.equal(await decodePart(file, leaves(root)[2]!, decoded), 6000);
      assert.deepEqual(readFileSync(decoded), Buffer.alloc(6000, 7));
    } finally {
      tmp.remove();
    }
  });

  test('a multipart left empty gets an empty text part', async () => {
    const tmp = tempDir();
    try {
      const file = join(tmp.dir, 'm.eml');
      writeFileSync(file, ['Content-Type: multipart/mixed; boundary=b', '', '--b', 'Content-Type: application/pdf; name=a.pdf', '', 'PDF', '--b--', ''].join('\r\n'));
      const root = (await parseMimeTree(file))!;
      const pieces = draftPieces(root, new Set(leaves(root)));
      const text = pieces.map((p) => (Buffer.isBuffer(p) ? p.toString('latin1') : readFileSync(file, 'latin1').slice(p.from, p.to))).join('');
      assert.equal(text, '--b\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n\r\n--b--\r\n');
    } finally {
      tmp.remove();
    }
  });

  test('quoted-printable and base64 decode across chunk boundaries', () => {
    const qp = partDecoder('quoted-printable');
    const out = Buffer.concat([qp.push(Buffer.from('caf=C3=A9 soft=\r\nbreak\r\nline tw')), qp.push(Buffer.from('o=3D2')), qp.end()]).toString('utf8');
    assert.equal(out, 'café softbreak\r\nline two=2');
    const b64 = partDecoder('base64');
    const whole = Buffer.from('hello, attachments');
    const text = whole.toString('base64');
    const got = Buffer.concat([b64.push(Buffer.from(text.slice(0, 5))), b64.push(Buffer.from(`${text.slice(5, 9)}\r\n`)), b64.push(Buffer.from(text.slice(9))), b64.end()]);
    assert.deepEqual(got, whole);
  });
});
