// Failure notices (RFC 3464): who gets one, what it contains, and end to end through the relay and
// the simulator: a failed message produces exactly one notice, and a failed notice produces none.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { buildFailureNotice, noticeRecipient, type FailureNoticeConfig } from '../src/relay/failureNotice.js';
import type { MessageMeta } from '../src/spool/index.js';
import { rawConfigFor, sampleMessage, sendMessage, simulatorSuite, startInProcessRelay, toConfig } from './helpers/harness.js';
import { waitFor } from './helpers/wait.js';

const account = { mailbox: 'relay@contoso.com', sendAs: ['@contoso.com', 'alerts@fabrikam.com'] };
const notices = (extra: Partial<FailureNoticeConfig> = {}): FailureNoticeConfig => ({ notify: 'sender', adminAddress: 'it@contoso.com', ...extra });

function meta(from: string, extra: Partial<MessageMeta> = {}): MessageMeta {
  return {
    version: 1,
    id: 'abc123',
    envelope: { from, to: ['bad@contoso.com', 'good@contoso.com'] },
    recipients: [
      { address: 'bad@contoso.com', status: 'failed', lastError: '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup' },
      { address: 'good@contoso.com', status: 'delivered' },
    ],
    client: { address: '10.0.0.7' },
    size: 100,
    receivedAt: '2026-11-23T08:00:00.000Z',
    attempts: 1,
    nextAttemptAt: null,
    lastError: '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup',
    ...extra,
  };
}

describe('failure notice recipient', () => {
  test('a sender in the organisation gets it', () => {
    assert.deepEqual(noticeRecipient(meta('Alice@Contoso.com'), notices(), account), { to: 'alice@contoso.com', why: 'sender' });
    assert.deepEqual(noticeRecipient(meta('alerts@fabrikam.com'), notices(), account), { to: 'alerts@fabrikam.com', why: 'sender' });
  });
  test('a device address goes to the administrator, or to nobody without one', () => {
    assert.deepEqual(noticeRecipient(meta('scanner@printer.local'), notices(), account), { to: 'it@contoso.com', why: 'admin' });
    assert.equal(noticeRecipient(meta('scanner@printer.local'), notices({ adminAddress: undefined }), account).to, null);
  });
  test('localDomains replaces the default', () => {
    assert.deepEqual(noticeRecipient(meta('ops@printer.local'), notices({ localDomains: ['@printer.local'] }), account), { to: 'ops@printer.local', why: 'sender' });
    assert.deepEqual(noticeRecipient(meta('alice@contoso.com'), notices({ localDomains: ['@printer.local'] }), account).to, 'it@contoso.com');
  });
  test('notify: admin sends every notice to the administrator', () => {
    assert.deepEqual(noticeRecipient(meta('alice@contoso.com'), notices({ notify: 'admin' }), account), { to: 'it@contoso.com', why: 'admin' });
  });
  test('never for a null sender or a notice', () => {
    assert.equal(noticeRecipient(meta(''), notices(), account).to, null);
    assert.equal(noticeRecipient(meta('alice@contoso.com', { notice: { for: 'x' } }), notices(), account).to, null);
  });
});

describe('failure notice content (RFC 3464)', () => {
  const headers = Buffer.from('From: Scanner <scanner@printer.local>\r\nTo: bad@contoso.com\r\nSubject: Scan 42\r\n');
  const build = (expired: boolean) =>
    buildFailureNotice({ meta: meta('scanner@printer.local'), originalHeaders: headers, originalSubject: 'Scan 42', from: 'relay@contoso.com', to: 'it@contoso.com', remoteMta: 'smtp.office365.com', expired, now: new Date('2026-11-23T09:00:00Z') }).toString('utf8');

  test('multipart/report with a human part, delivery-status per failed recipient, and the original headers', () => {
    const text = build(false);
    const boundary = /boundary="([^"]+)"/.exec(text)?.[1] ?? '';
    assert.match(text, /^Content-Type: multipart\/report; report-type=delivery-status; boundary="/m);
    assert.match(text, /^Auto-Submitted: auto-replied\r$/m);
    assert.match(text, /^Subject: Undeliverable: Scan 42\r$/m);
    const parts = text.split(`--${boundary}`);
    assert.equal(parts.length, 5, 'preamble, three parts, closing');
    assert.match(parts[1] ?? '', /Content-Type: text\/plain[\s\S]*bad@contoso\.com: 550 5\.1\.10[\s\S]*delivered to:\r\n {2}good@contoso\.com/);
    assert.match(parts[2] ?? '', /Content-Type: message\/delivery-status\r\n\r\nReporting-MTA: dns; /);
    assert.match(parts[2] ?? '', /Final-Recipient: rfc822; bad@contoso\.com\r\nAction: failed\r\nStatus: 5\.1\.10\r\nRemote-MTA: dns; smtp\.office365\.com\r\nDiagnostic-Code: smtp; 550 5\.1\.10/);
    assert.doesNotMatch(parts[2] ?? '', /good@contoso\.com/, 'only failed recipients are reported');
    assert.match(parts[3] ?? '', /Content-Type: text\/rfc822-headers\r\n\r\nFrom: Scanner <scanner@printer\.local>\r\nTo: bad@contoso\.com\r\nSubject: Scan 42\r\n/);
    assert.equal(parts[4], '--\r\n');
  });

  test('an expired message reports 4.4.7', () => {
    assert.match(build(true), /Status: 4\.4\.7/);
  });
});

describe('failure notices end to end', () => {
  const suite = simulatorSuite();

  test('config: notify admin without adminAddress is refused', () => {
    assert.throws(() => toConfig(rawConfigFor(suite.sim, '/tmp/unused-spool', { failureNotices: { notify: 'admin' } })), /adminAddress/);
  });

  test('a device message rejected upstream: one notice to the administrator through the same upstream; a failed notice gets none', async (t) => {
    suite.sim.reset();
    t.after(() => suite.sim.reset());
    suite.sim.faults.rejectRecipients.set('nobody@contoso.com', '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup');
    const relay = await startInProcessRelay(rawConfigFor(suite.sim, join(suite.dir(), 'spool'), { failureNotices: { adminAddress: 'it@contoso.com' } }));
    t.after(() => relay.stop());

    const info = await sendMessage(relay.port, { from: 'scanner@printer.local', to: ['nobody@contoso.com'], raw: sampleMessage({ to: ['nobody@contoso.com'], subject: 'Scan 77' }) });
    const id = /queued as (\S+)/.exec(info.response)?.[1];
    const [notice] = await suite.sim.waitForMessages(1);
    assert.deepEqual(notice?.envelope, { from: 'relay@contoso.com', to: ['it@contoso.com'] }, 'null sender is rewritten to the mailbox by the sender policy');
    const text = notice?.raw.toString('utf8') ?? '';
    assert.match(text, /^Subject: Undeliverable: Scan 77\r$/m);
    assert.match(text, /Final-Recipient: rfc822; nobody@contoso\.com/);
    assert.match(text, new RegExp(`X-M365-Relay-Queue-ID: ${id}`));
    const queued = relay.logs.find((l) => l.event === 'notice-queued');
    assert.equal(queued?.msgId, id);

    // Now the administrator's address is rejected too: the notice itself fails, and nothing answers it.
    suite.sim.reset();
    suite.sim.faults.rejectRecipients.set('nobody@contoso.com', '550 5.1.10 RESOLVER.ADR.RecipientNotFound; not found');
    suite.sim.faults.rejectRecipients.set('it@contoso.com', '550 5.1.10 RESOLVER.ADR.RecipientNotFound; not found');
    await sendMessage(relay.port, { from: 'scanner@printer.local', to: ['nobody@contoso.com'] });
    const skipped = await waitFor('the failed notice to be skipped', () => relay.logs.find((l) => l.event === 'notice-skipped'), 10_000);
    assert.match(String(skipped.reason), /itself a failure notice/);
    assert.equal(relay.logs.filter((l) => l.event === 'notice-queued').length, 2, 'one notice per failed device message, none for the failed notice');
    assert.equal(suite.sim.received.length, 0);
  });

  test('a sender in the organisation gets the notice itself', async (t) => {
    suite.sim.reset();
    t.after(() => suite.sim.reset());
    suite.sim.faults.rejectRecipients.set('nobody@contoso.com', '550 5.1.10 RESOLVER.ADR.RecipientNotFound; not found');
    const relay = await startInProcessRelay(rawConfigFor(suite.sim, join(suite.dir(), 'spool'), { failureNotices: {} }));
    t.after(() => relay.stop());
    await sendMessage(relay.port, { from: 'alice@contoso.com', to: ['nobody@contoso.com'] });
    const [notice] = await suite.sim.waitForMessages(1);
    assert.deepEqual(notice?.envelope.to, ['alice@contoso.com']);
  });
});
