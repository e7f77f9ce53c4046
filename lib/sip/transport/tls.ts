import tls from 'node:tls';
import { StreamTransport, type StreamOptions } from './stream.js';

/** TLS 1.2 and 1.3 only: older versions have known weaknesses (RFC 8996 deprecates 1.0 and 1.1). */
const PROTOCOLS = { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3' } as const;

/** Errors of a peer that simply went away during the handshake: not worth a log line. */
const PEER_GONE = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

export interface TlsOptions extends StreamOptions {
  /** Certificate, key and CA (PEM), as lib/tls/credentials.ts loaded them. */
  credentials: tls.SecureContextOptions;
  handshakeTimeoutMs: number;
  /** A handshake that failed or timed out (a plain TCP client on the TLS port, an old TLS version...). */
  onHandshakeFailed?: (error: string, remote: string) => void;
}

/**
 * SIP over TLS (RFC 3261 section 26.3.1, RFC 5630): a connection carries SIP once its handshake
 * is done; one that does not finish it in time, or speaks something else, is closed alone.
 */
export class TlsTransport extends StreamTransport {
  private constructor(
    private readonly tlsServer: tls.Server,
    opts: TlsOptions,
    address: string,
    port: number,
  ) {
    super('tls', tlsServer, opts, address, port);
  }

  static async open(opts: TlsOptions): Promise<TlsTransport> {
    const server = tls.createServer({ ...opts.credentials, ...PROTOCOLS, handshakeTimeout: opts.handshakeTimeoutMs, noDelay: true });
    const bound = await StreamTransport.listen(server, opts);
    const transport = new TlsTransport(server, opts, bound.address, bound.port);
    // Before the TLS layer takes the socket: a refused connection costs no handshake.
    server.prependListener('connection', (socket) => transport.accept(socket));
    server.on('secureConnection', (socket) => transport.adopt(socket));
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket) => {
      const remote = `${socket.remoteAddress ?? ''}:${socket.remotePort ?? 0}`;
      // Node reports a handshake timeout here but leaves the connection open.
      socket.destroy();
      if (!PEER_GONE.has(err.code ?? '')) opts.onHandshakeFailed?.(err.code ?? err.message, remote);
    });
    return transport;
  }

  /** New connections get these credentials; open ones keep theirs. Throws when they make no usable context. */
  setCredentials(credentials: tls.SecureContextOptions): void {
    this.tlsServer.setSecureContext({ ...credentials, ...PROTOCOLS });
  }
}
