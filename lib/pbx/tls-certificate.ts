/**
 * The certificate of SIP over TLS (sip.tls): loaded at start, where a missing or broken file
 * stops the server with what to do, and read again on every SIGHUP, where a broken file is
 * logged and the certificate in force stays (a renewal hook that raced the files never takes
 * TLS down).
 */
import { loadTlsCredentials, TlsFileError, type TlsCredentials, type TlsFiles } from '../tls/credentials.js';
import type { Logger } from '../log.js';

/** A certificate this close to its end is logged as a warning at every load. */
const EXPIRY_WARNING_DAYS = 14;
const SELF_SIGNED_HINT = 'for a lab, `minisipserver tls self-signed --host NAME` makes a certificate and key (docs/DEPLOY.md, "SIP over TLS")';

export class TlsCertificate {
  private fingerprint = '';

  constructor(
    /** The files as the configuration names them now (a reload may have changed them). */
    private readonly files: () => TlsFiles,
    private readonly logger: Logger,
  ) {}

  /** The credentials to start with; throws an Error that names the file, the problem and what to do. */
  load(): TlsCredentials {
    let credentials: TlsCredentials;
    try {
      credentials = loadTlsCredentials(this.files());
    } catch (err) {
      if (!(err instanceof TlsFileError)) throw err;
      throw new Error(`sip.tls: ${err.message}; check sip.tls.cert, sip.tls.key and sip.tls.ca in the configuration; ${SELF_SIGNED_HINT}`);
    }
    this.loaded('tls.certificate', credentials);
    return credentials;
  }

  /** Reads the files again (SIGHUP) and hands usable credentials to `apply`; a failure keeps the certificate in force. */
  reload(apply: (credentials: TlsCredentials) => void): void {
    const files = this.files();
    let credentials: TlsCredentials;
    try {
      credentials = loadTlsCredentials(files);
      apply(credentials);
    } catch (err) {
      const fields = err instanceof TlsFileError ? { file: err.file, problem: err.problem } : { file: files.cert, problem: (err as Error).message };
      this.logger.error('tls.reload_failed', {
        ...fields,
        kept: this.fingerprint,
        hint: 'the certificate in force stays: fix the file (a certificate, its own key, PEM) and send SIGHUP again (systemctl reload minisipserver)',
      });
      return;
    }
    this.loaded('tls.certificate_reloaded', credentials);
  }

  private loaded(event: string, c: TlsCredentials): void {
    this.fingerprint = c.fingerprint;
    const daysLeft = Math.floor((c.validTo.getTime() - Date.now()) / 86_400_000);
    const fields = { subject: c.subject, subjectAltName: c.subjectAltName, fingerprint: c.fingerprint, validTo: c.validTo.toISOString(), daysLeft };
    this.logger.info(event, fields);
    if (daysLeft < EXPIRY_WARNING_DAYS) {
      this.logger.warn('tls.certificate_expiring', { ...fields, hint: daysLeft < 0 ? 'the certificate has expired: phones refuse it; renew it and send SIGHUP' : 'renew the certificate and send SIGHUP' });
    }
  }
}
