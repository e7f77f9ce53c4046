/**
 * A self-signed certificate and its key for a lab: the certificate is its own CA, so a phone
 * that is given the certificate file as a trusted CA accepts the server.
 */
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync, chmodSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';

export interface SelfSignedCertificate {
  certPem: string;
  keyPem: string;
  /** SHA-256 of the certificate, `AB:CD:...`. */
  fingerprint: string;
  /** `DNS:name`, or `IP Address:192.0.2.1, DNS:192.0.2.1`, as openssl shows it. */
  subjectAltName: string;
  notAfter: Date;
}

/** RSA 2048 with SHA-256: what every phone's TLS stack accepts. */
const ALGORITHM = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };

/** Why `host` cannot name the server in a certificate; null for a host name (RFC 1123 labels) or an IP address. */
export function hostProblem(host: string): string | null {
  if (isIP(host) !== 0) return null;
  const labels = host.split('.');
  const ok = host.length <= 253 && labels.every((l) => /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(l));
  return ok ? null : `${JSON.stringify(host)} is neither a host name (letters, digits, - and dots) nor an IP address`;
}

export async function createSelfSigned(opts: { host: string; days: number }): Promise<SelfSignedCertificate> {
  const problem = hostProblem(opts.host);
  if (problem !== null) throw new Error(problem);
  // Node's webcrypto is the Web Crypto API; its type and the DOM's differ only in Ed25519 overloads.
  x509.cryptoProvider.set(webcrypto as unknown as Crypto);
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const notBefore = new Date();
  const notAfter = new Date(notBefore.getTime() + opts.days * 86_400_000);
  const serial = randomBytes(16);
  serial[0] = serial[0]! & 0x7f; // RFC 5280 section 4.1.2.2: a positive serial number
  // An address goes in as a DNS name too: mbedTLS 2 (Linphone's TLS library) matches the host it
  // connects to against DNS names alone, and refuses a certificate that names the address only.
  const names = [...(isIP(opts.host) !== 0 ? [{ type: 'ip' as const, value: opts.host }] : []), { type: 'dns' as const, value: opts.host }];
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toString('hex'),
    name: [{ CN: [opts.host] }, { O: ['minisipserver'] }],
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment | x509.KeyUsageFlags.keyCertSign, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const certPem = cert.toString('pem') + '\n';
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }) as string;
  const parsed = new X509Certificate(certPem);
  return { certPem, keyPem, fingerprint: parsed.fingerprint256, subjectAltName: parsed.subjectAltName ?? '', notAfter };
}

export interface WrittenCertificate extends SelfSignedCertificate {
  certFile: string;
  keyFile: string;
}

const CERT_FILE = 'cert.pem';
const KEY_FILE = 'key.pem';

/**
 * Writes cert.pem and key.pem (mode 0600) into `dir` (created if need be). Nothing is written
 * when either file exists, unless `force`: the error says so.
 */
export async function writeSelfSigned(opts: { host: string; days: number; dir: string; force: boolean }): Promise<WrittenCertificate> {
  const dir = resolve(opts.dir);
  const certFile = join(dir, CERT_FILE);
  const keyFile = join(dir, KEY_FILE);
  for (const f of [certFile, keyFile]) {
    if (!opts.force && existsSync(f)) throw new Error(`${f} exists already: give --force to replace it, or another --out folder`);
  }
  const made = await createSelfSigned(opts);
  mkdirSync(dir, { recursive: true });
  const flag = opts.force ? 'w' : 'wx';
  writeFileSync(keyFile, made.keyPem, { mode: 0o600, flag });
  // An existing file keeps its mode when it is overwritten: the key's is set again.
  chmodSync(keyFile, 0o600);
  writeFileSync(certFile, made.certPem, { mode: 0o644, flag });
  return { ...made, certFile, keyFile };
}
