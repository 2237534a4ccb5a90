import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classify } from '../src/relay/classify.js';

const cases: Array<[string, Parameters<typeof classify>[0], string, string]> = [
  ['accepted-like 4xx is transient', { code: 'EMESSAGE', responseCode: 451, response: '451 4.7.500 Server busy. Please try again later.' }, 'transient', 'temporary-failure'],
  ['421 is transient', { code: 'EPROTOCOL', responseCode: 421, response: '421 4.3.2 Service not available' }, 'transient', 'temporary-failure'],
  ['token rejected', { code: 'EAUTH', responseCode: 535, response: '535 5.7.3 Authentication unsuccessful' }, 'token-rejected', 'token-rejected'],
  ['smtp auth disabled', { code: 'EAUTH', responseCode: 535, response: '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.' }, 'configuration', 'smtp-auth-disabled'],
  ['basic auth refused', { responseCode: 550, response: '550 5.7.30 Basic authentication is not supported for Client Submission.' }, 'configuration', 'basic-auth-disabled'],
  ['concurrency', { responseCode: 432, response: '432 4.3.2 Concurrent connections limit exceeded.' }, 'throttled', 'concurrent-connections'],
  ['old concurrency text', { responseCode: 432, response: '432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded' }, 'throttled', 'concurrent-connections'],
  ['submission rate', { responseCode: 450, response: '450 4.7.0 Message submission rate for this client has exceeded the configured limit' }, 'throttled', 'rate-limited'],
  ['daily quota is 5xx yet not permanent', { responseCode: 554, response: '554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message' }, 'quota', 'recipient-quota-exceeded'],
  ['send as denied', { responseCode: 554, response: '554 5.2.252 SendAsDenied; relay@contoso.com not allowed to send as x@y' }, 'permanent', 'send-as-denied'],
  ['mailbox full', { responseCode: 554, response: '554 5.2.2 mailbox full; STOREDRV.Submission.Exception:QuotaExceededException' }, 'configuration', 'mailbox-full'],
  ['too large', { responseCode: 552, response: '552 5.3.4 Message size exceeds fixed maximum message size' }, 'permanent', 'message-too-large'],
  ['bad recipient', { responseCode: 550, response: '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found' }, 'permanent', 'bad-recipient'],
  ['other 5xx', { responseCode: 554, response: '554 5.6.0 Corrupt message content' }, 'permanent', 'permanent-failure'],
  ['connection refused', { code: 'ECONNECTION', message: 'connect ECONNREFUSED 127.0.0.1:587' }, 'transient', 'network'],
  ['timeout', { code: 'ETIMEDOUT', message: 'Greeting never received' }, 'transient', 'network'],
  ['TLS failure', { code: 'ETLS', message: 'self-signed certificate' }, 'transient', 'network'],
  ['token config error', { code: 'ETOKEN', tokenKind: 'configuration', message: 'AADSTS7000215' }, 'configuration', 'token-configuration'],
  ['token endpoint down', { code: 'ETOKEN', tokenKind: 'transient', message: '503' }, 'transient', 'token-unavailable'],
];

for (const [name, failure, expectedClass, reason] of cases) {
  test(`classify: ${name}`, () => {
    const result = classify(failure);
    assert.equal(result.class, expectedClass);
    assert.equal(result.reason, reason);
  });
}

test('classify: configuration problems carry advice for the administrator', () => {
  const result = classify({ responseCode: 535, response: '535 5.7.139 Authentication unsuccessful, basic authentication is disabled.' });
  assert.match(result.advice ?? '', /SmtpClientAuthenticationDisabled/);
});

// High Volume Email (smtp.hve.mx.microsoft): its own replies, each with the relay's action.
const hveCases: Array<[string, Parameters<typeof classify>[0], string, string, 'account' | 'message']> = [
  ['token close to expiry at AUTH: renew and retry at once, the account\'s, never the message\'s', { code: 'EAUTH', responseCode: 501, response: '501 5.5.127 Authentication unsuccessful. Token will expire soon', stage: 'session' }, 'token-rejected', 'token-expiring-soon', 'account'],
  ['token close to expiry, 535 5.7.142 spelling', { code: 'EAUTH', responseCode: 535, response: '535 5.7.142 Token will expire soon' }, 'token-rejected', 'token-expiring-soon', 'account'],
  ['expired token', { code: 'EAUTH', responseCode: 535, response: '535 5.7.143 Expired token' }, 'token-rejected', 'token-rejected', 'account'],
  ['external recipient refused at RCPT: that recipient fails for good', { code: 'EENVELOPE', responseCode: 550, response: '550 5.5.105 External recipients are not allowed for High Volume Email', stage: 'envelope' }, 'permanent', 'hve-external-recipient', 'message'],
  ['app not allowed on the HVE account', { code: 'EAUTH', responseCode: 550, response: '550 5.7.240 The application is not allowed for use with this High Volume Email account' }, 'configuration', 'hve-app-not-allowed', 'account'],
  ['API permission missing', { code: 'EAUTH', responseCode: 535, response: '535 5.7.144 XOAUTH2 authentication failed. Invalid API permission' }, 'configuration', 'hve-api-permission', 'account'],
  ['malformed XOAUTH2', { code: 'EAUTH', responseCode: 501, response: '501 5.5.123 Invalid XOAUTH2 argument' }, 'configuration', 'xoauth2-invalid', 'account'],
  ['HVE size limit', { responseCode: 552, response: '552 5.3.4 Message size exceeds the High Volume Email limit', stage: 'data' }, 'permanent', 'message-too-large', 'message'],
  ['too many recipients for one transaction: that recipient waits', { responseCode: 452, response: '452 4.5.3 Too many recipients', stage: 'envelope' }, 'transient', 'temporary-failure', 'message'],
];

for (const [name, failure, expectedClass, reason, scope] of hveCases) {
  test(`classify (HVE): ${name}`, () => {
    const result = classify(failure);
    assert.deepEqual([result.class, result.reason, result.scope], [expectedClass, reason, scope]);
  });
}

test('classify (HVE): the external-recipient refusal says to route external recipients through a mailbox', () => {
  const result = classify({ responseCode: 550, response: '550 5.5.105 External recipients are not allowed', stage: 'envelope' });
  assert.match(result.advice ?? '', /mailbox account/);
  assert.match(classify({ responseCode: 550, response: '550 5.7.240 The application is not allowed' }).advice ?? '', /Add-HVEAppAccess/);
});
