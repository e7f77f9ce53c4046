/**
 * The certificate, private key and CA file of a TLS server, read and checked before they are
 * put in force, so that a broken file is named with what is wrong with it.
 */
import { readFileSync } from 'node:fs';
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { createSecureContext } from 'node:tls';

export interface TlsFiles {
  cert: string;
  /** The private key of the certificate. */
  key: string;
  /** '' for none. */
  ca: string;
}

export interface TlsCredentials {
  /** What tls.createSecureContext() and Server.setSecureContext() take. */
  context: { cert: Buffer; key: Buffer; ca?: Buffer };
  /** SHA-256 of the certificate, as `AB:CD:...` (what a phone shows, and pins). */
  fingerprint: string;
  subject: string;
  subjectAltName: string;
  validTo: Date;
}

/** A TLS file that cannot be used: which one, and why. */
export class TlsFileError extends Error {
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${file}: ${problem}`);
    this.name = 'TlsFileError';
  }
}

/** Reads and checks the files; throws a TlsFileError naming the first one that is unusable. */
export function loadTlsCredentials(files: TlsFiles): TlsCredentials {
  const cert = readPem(files.cert);
  const certificate = parse(files.cert, () => new X509Certificate(cert), 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)');
  const key = readPem(files.key);
  const privateKey: KeyObject = parse(
    files.key,
    () => createPrivateKey(key),
    'holds no usable PEM private key (-----BEGIN PRIVATE KEY-----; a key protected by a passphrase is not supported)',
  );
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new TlsFileError(files.key, `this private key does not belong to the certificate in ${files.cert}: give the key the certificate was issued for`);
  }
  const context: TlsCredentials['context'] = { cert, key };
  if (files.ca !== '') {
    context.ca = readPem(files.ca);
    parse(files.ca, () => new X509Certificate(context.ca!), 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)');
  }
  // What the separate checks above do not cover (a broken certificate later in the chain).
  parse(files.cert, () => createSecureContext(context), 'cannot be used with this key and CA file');
  return {
    context,
    fingerprint: certificate.fingerprint256,
    subject: certificate.subject.replace(/\n/g, ', '),
    subjectAltName: certificate.subjectAltName ?? '',
    validTo: new Date(certificate.validTo),
  };
}

function readPem(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    const hint = code === 'EACCES' ? ': the server\'s user must be able to read it' : code === 'ENOENT' ? ': no such file' : '';
    throw new TlsFileError(file, `cannot be read (${code})${hint}`);
  }
}

function parse<T>(file: string, fn: () => T, problem: string): T {
  try {
    return fn();
  } catch (err) {
    throw new TlsFileError(file, `${problem}: ${(err as Error).message}`);
  }
}
