import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseHeaderBlock, parseMailbox, serializeHeaderBlock } from '../src/relay/headers.js';
import { applySenderPolicy, maySendAs } from '../src/relay/senderPolicy.js';

const policy = { mailbox: 'relay@contoso.com', sendAs: ['alerts@contoso.com', '@ops.contoso.com'] };
const received = new Date('2026-11-23T08:00:00Z');

function run(message: string, envelopeFrom: string) {
  const block = parseHeaderBlock(Buffer.from(message, 'latin1'));
  const decision = applySenderPolicy(policy, { envelopeFrom, header: block, messageId: 'ABC123', receivedAt: received });
  return { block, decision, header: serializeHeaderBlock(decision.header).toString('latin1') };
}

test('maySendAs: the mailbox, listed addresses and listed domains, case-insensitive', () => {
  assert.ok(maySendAs(policy, 'Relay@Contoso.com'));
  assert.ok(maySendAs(policy, 'alerts@contoso.com'));
  assert.ok(maySendAs(policy, 'nas@OPS.contoso.com'));
  assert.ok(!maySendAs(policy, 'nas@evilops.contoso.com.example'));
  assert.ok(!maySendAs(policy, 'bob@contoso.com'));
  assert.ok(!maySendAs(policy, ''));
});

test('sender policy: an allowed sender goes out unchanged', () => {
  const msg = 'From: Alerts <alerts@contoso.com>\r\nTo: a@b.c\r\nDate: Mon, 23 Nov 2026 08:00:00 +0000\r\nMessage-ID: <x@y>\r\nSubject: hi\r\n\r\nbody\r\n';
  const { decision, header } = run(msg, 'alerts@contoso.com');
  assert.equal(decision.envelopeFrom, 'alerts@contoso.com');
  assert.deepEqual(decision.changes, []);
  assert.equal(header, msg.slice(0, msg.indexOf('\r\n\r\n') + 4));
});

test('sender policy: a device address is rewritten, display name kept, original in Reply-To', () => {
  const msg = 'From: "Scanner 3rd floor" <scanner@printer.local>\r\nSubject: scan\r\n\r\nbody';
  const { decision, header, block } = run(msg, 'scanner@printer.local');
  assert.equal(decision.envelopeFrom, 'relay@contoso.com');
  assert.match(header, /^From: "Scanner 3rd floor" <relay@contoso\.com>\r\nReply-To: scanner@printer\.local\r\nSubject: scan\r\n/);
  assert.match(header, /\r\nDate: Mon, 23 Nov 2026 08:00:00 \+0000\r\n/);
  assert.match(header, /\r\nMessage-ID: <ABC123@contoso\.com>\r\n\r\n$/);
  assert.equal(block.bodyOffset, msg.indexOf('body'));
});

test('sender policy: an existing Reply-To is kept; folded From headers are understood', () => {
  const msg = 'From: =?utf-8?q?Scanner_=C3=A9?=\r\n <scanner@printer.local>\r\nReply-To: helpdesk@contoso.com\r\nDate: x\r\nMessage-ID: <m@x>\r\n\r\n';
  const { header } = run(msg, 'scanner@printer.local');
  assert.equal(header, 'From: =?utf-8?q?Scanner_=C3=A9?= <relay@contoso.com>\r\nReply-To: helpdesk@contoso.com\r\nDate: x\r\nMessage-ID: <m@x>\r\n\r\n');
});

test('sender policy: allowed envelope but foreign From header rewrites only the header', () => {
  const { decision, header } = run('From: ups@192.168.1.9\r\nDate: x\r\nMessage-ID: <m@x>\r\n\r\nload on battery', 'alerts@contoso.com');
  assert.equal(decision.envelopeFrom, 'alerts@contoso.com');
  assert.match(header, /^From: <relay@contoso\.com>\r\nReply-To: ups@192\.168\.1\.9\r\n/);
});

test('sender policy: null sender and a message without any header', () => {
  const { decision, header, block } = run('just a body line\r\n', '');
  assert.equal(decision.envelopeFrom, 'relay@contoso.com');
  assert.equal(block.bodyOffset, 0);
  assert.match(header, /^From: relay@contoso\.com\r\nDate: .*\r\nMessage-ID: .*\r\n\r\n$/);
});

test('headers: bare LF messages keep LF; 8-bit header bytes survive', () => {
  const msg = Buffer.concat([Buffer.from('From: a@contoso.com\nSubject: caf'), Buffer.from([0xe9]), Buffer.from('\nDate: x\nMessage-ID: <m@x>\n\nbody\n')]);
  const block = parseHeaderBlock(msg);
  assert.equal(block.eol, '\n');
  const decision = applySenderPolicy({ mailbox: 'a@contoso.com', sendAs: [] }, { envelopeFrom: 'a@contoso.com', header: block, messageId: 'X', receivedAt: received });
  assert.deepEqual(serializeHeaderBlock(decision.header), msg.subarray(0, block.bodyOffset));
});

test('parseMailbox: the common From forms', () => {
  assert.deepEqual(parseMailbox('"A B" <a@b.c>'), { name: '"A B"', address: 'a@b.c' });
  assert.deepEqual(parseMailbox('a@b.c (Printer)'), { name: 'Printer', address: 'a@b.c' });
  assert.deepEqual(parseMailbox('a@b.c'), { name: '', address: 'a@b.c' });
  assert.equal(parseMailbox('undisclosed'), null);
});
