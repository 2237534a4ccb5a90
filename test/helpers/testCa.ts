import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The test run's CA (created by `npm test`, scripts/test.mjs): M365_RELAY_TEST_CA_DIR holds ca.pem
 * and ca-key.pem, and NODE_EXTRA_CA_CERTS points at ca.pem so that every process trusts it.
 */
export function loadTestCa(): { certPem: string; keyPem: string } {
  const dir = process.env.M365_RELAY_TEST_CA_DIR;
  const certFile = dir ? join(dir, 'ca.pem') : '';
  const keyFile = dir ? join(dir, 'ca-key.pem') : '';
  if (!dir || !existsSync(certFile) || !existsSync(keyFile)) {
    throw new Error(
      `no test CA: M365_RELAY_TEST_CA_DIR ${dir ? `(${dir}) lacks ca.pem or ca-key.pem` : 'is not set'}. ` +
        'Run the tests with npm test, which creates the test CA (and sets NODE_EXTRA_CA_CERTS to it).',
    );
  }
  return { certPem: readFileSync(certFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8') };
}
