// `minisipserver tls self-signed`: a certificate and key for SIP over TLS in a lab, with the
// configuration lines and what to give the phones so that they trust it (docs/DEPLOY.md,
// "SIP over TLS"). A real deployment takes its certificate from an ACME client instead.
import type { Argv, CommandModule } from 'yargs';
import { parseSubcommand } from './yargs-parse.js';

export interface TlsIo {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

export interface SelfSignedRequest {
  host: string;
  out: string;
  days: number;
  force: boolean;
}

const EXIT_OK = 0;
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;
const EXIT_CODES = 'Exit codes: 0 written; 1 a file exists already (see --force) or cannot be written; 2 usage error (bad host name, days).';
const MAX_DAYS = 3650;

/** Registers `self-signed` on `y`; `run` receives the parsed request. */
export function defineTlsSubcommands(y: Argv, run: (request: SelfSignedRequest) => void | Promise<void>): Argv {
  return y.command(
    'self-signed',
    'write a self-signed certificate (cert.pem) and its key (key.pem, mode 0600) for SIP over TLS in a lab, and print how to use them',
    (v) =>
      v
        .option('host', { type: 'string', demandOption: true, describe: 'the name or IP address phones use to reach the server (the certificate\'s subjectAltName)' })
        .option('out', { type: 'string', default: '.', describe: 'folder to write cert.pem and key.pem into (created if need be)' })
        .option('days', { type: 'number', default: 825, describe: `how long the certificate is valid, 1-${MAX_DAYS} days` })
        .option('force', { type: 'boolean', default: false, describe: 'replace cert.pem and key.pem if they exist' }),
    (a) => run({ host: String(a['host']), out: String(a['out']), days: Number(a['days']), force: a['force'] === true }),
  );
}

/** Runs `minisipserver tls <argv...>` in-process; resolves to the exit code. */
export async function runTls(argv: string[], io: TlsIo): Promise<number> {
  let request: SelfSignedRequest | undefined;
  const define = (y: Argv) =>
    defineTlsSubcommands(y, (r) => {
      request = r;
    });
  const code = await parseSubcommand(define, { name: 'tls', demand: 'name a tls command: self-signed', epilog: EXIT_CODES }, argv, io, () => request !== undefined);
  if (code !== null || !request) return code ?? EXIT_USAGE;
  return executeSelfSigned(request, io);
}

export async function executeSelfSigned(req: SelfSignedRequest, io: TlsIo): Promise<number> {
  const fail = (code: number, text: string): number => {
    io.err.write(`minisipserver tls self-signed: ${text}\n`);
    return code;
  };
  if (!Number.isInteger(req.days) || req.days < 1 || req.days > MAX_DAYS) return fail(EXIT_USAGE, `--days must be a whole number of days, 1-${MAX_DAYS}`);
  // The certificate library loads only when a certificate is really made (not for --help).
  const { hostProblem, writeSelfSigned } = await import('../lib/tls/self-signed.js');
  const problem = hostProblem(req.host);
  if (problem !== null) return fail(EXIT_USAGE, `--host: ${problem}`);
  let made;
  try {
    made = await writeSelfSigned({ host: req.host, days: req.days, dir: req.out, force: req.force });
  } catch (err) {
    return fail(EXIT_FAILURE, (err as Error).message);
  }
  const until = made.notAfter.toISOString().slice(0, 10);
  const host = req.host.includes(':') ? `[${req.host}]` : req.host;
  io.out.write(
    [
      `wrote ${made.certFile}  (certificate for ${made.subjectAltName}, valid until ${until})`,
      `wrote ${made.keyFile}  (private key, readable by its owner only: keep it that way)`,
      `SHA-256 fingerprint: ${made.fingerprint}`,
      '',
      'In the configuration (docs/DEPLOY.md, "SIP over TLS"):',
      '  sip:',
      '    transports: [udp, tcp, tls]',
      '    tls:',
      '      port: 5061',
      `      cert: ${made.certFile}`,
      `      key: ${made.keyFile}`,
      '',
      `Phones must trust this certificate: give them ${made.certFile} (never the key) as a trusted CA,`,
      `and register to ${req.host} port 5061 over TLS:`,
      `  baresip:    sip_cafile ${made.certFile} and sip_verify_server yes in ~/.baresip/config, account <sip:100@${host};transport=tls>`,
      '              (baresip 1.0 loads the file but checks no certificate)',
      `  linphonec:  root_ca=${made.certFile} in the [sip] section of ~/.linphonerc, proxy sip:${host};transport=tls`,
      '  desk phones: upload cert.pem as a trusted (CA) certificate in the web interface, then choose TLS as the transport',
      `Check it: openssl s_client -connect ${host}:5061 -CAfile ${made.certFile} -verify_return_error`,
      '',
    ].join('\n'),
  );
  return EXIT_OK;
}

export const tlsCommand: CommandModule = {
  command: 'tls',
  describe: 'certificates for SIP over TLS: tls self-signed',
  builder: (y) =>
    defineTlsSubcommands(y, async (request) => {
      process.exitCode = await executeSelfSigned(request, { out: process.stdout, err: process.stderr });
    })
      .demandCommand(1, 'name a tls command: self-signed')
      .epilog(EXIT_CODES),
  handler: () => undefined,
};
