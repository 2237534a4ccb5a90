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
