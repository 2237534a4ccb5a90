// Certificates for the simulator: a private CA, the loopback server certificate it signs (shared by
// the HTTPS token endpoint and the SMTP STARTTLS listener), and self-signed app certificates for
// Entra ID certificate credentials.
import { createHash, X509Certificate } from 'node:crypto';
import { generate } from 'selfsigned';

export interface PemPair {
  certPem: string;
  keyPem: string;
}

const DAY_MS = 86_400_000;

/** A CA certificate and key, usable as SimulatorOptions.ca and as NODE_EXTRA_CA_CERTS. */
export async function generateCa(): Promise<PemPair> {
  const notBeforeDate = new Date(Date.now() - DAY_MS);
  const pems = await generate([{ name: 'commonName', value: 'm365-relay simulator test CA' }, { name: 'organizationName', value: 'm365-relay' }], {
    keySize: 2048,
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate: new Date(notBeforeDate.getTime() + 3650 * DAY_MS),
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  return { certPem: pems.cert, keyPem: pems.private };
}

/** The servers' certificate: CN localhost, SAN DNS localhost + IP 127.0.0.1 and ::1, signed by `ca`. */
export async function generateServerCertificate(ca: PemPair): Promise<PemPair> {
  const notBeforeDate = new Date(Date.now() - DAY_MS);
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keySize: 2048,
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate: new Date(notBeforeDate.getTime() + 30 * DAY_MS),
    ca: { cert: ca.certPem, key: ca.keyPem },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  });
  return { certPem: pems.cert, keyPem: pems.private };
}

/** A self-signed RSA certificate for an app registration's certificate credential (PS256/RS256 capable). */
export async function generateClientCertificate(commonName = 'm365-relay simulator app'): Promise<PemPair> {
  const notBeforeDate = new Date(Date.now() - DAY_MS);
  const pems = await generate([{ name: 'commonName', value: commonName }], {
    keySize: 2048,
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate: new Date(notBeforeDate.getTime() + 365 * DAY_MS),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', clientAuth: true },
    ],
  });
  return { certPem: pems.cert, keyPem: pems.private };
}

/** The first certificate of a PEM bundle, parsed. */
export function parseCertificate(pem: string): X509Certificate {
  const first = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem);
  if (!first) throw new Error('no PEM certificate found');
  return new X509Certificate(first[0]);
}

/** SHA-1 and SHA-256 thumbprints of a certificate's DER bytes. */
export function thumbprints(cert: X509Certificate): { sha1: Buffer; sha256: Buffer } {
  return { sha1: createHash('sha1').update(cert.raw).digest(), sha256: createHash('sha256').update(cert.raw).digest() };
}
