import type net from 'node:net';
import { frameStream, type ParseLimits } from '../parser.js';
import type { ConnectionLimits, ConnectionRefusal } from './connection-limits.js';
import type { InboundHandler } from './types.js';

export interface StreamOptions {
  address: string;
  port: number;
  limits: ParseLimits;
  /** Shared by every TCP and TLS listener of the server: bans, the total and per-source limits. */
  connections: ConnectionLimits;
  idleMs: number;
  onMessage: InboundHandler;
  onFramingError?: (error: string, remote: string) => void;
  /** A connection refused for a limit (a banned source is refused without a word). */
  onRefused?: (reason: Exclude<ConnectionRefusal, 'banned'>, remote: string) => void;
}

interface Connection {
  socket: net.Socket;
  buffer: Buffer;
}

type StreamSource = { transport: 'tcp' | 'tls'; address: string; port: number; connectionId: number };

/** Connection ids are unique across every stream transport: an id alone names the connection. */
let nextConnectionId = 1;

/**
 * What SIP over TCP and over TLS share (RFC 3261 section 18.3): admission at accept, messages
 * framed by Content-Length, CRLF keep-alives, responses and requests to a phone sent back on the
 * connection it came in on, idle connections closed. The subclass says when an accepted
 * connection carries SIP: at once for TCP, after the handshake for TLS.
 */
export abstract class StreamTransport {
  /** Connections carrying SIP, by id. */
  private readonly connections = new Map<number, Connection>();
  /** Every accepted socket, TLS handshakes in progress included. */
  private readonly accepted = new Set<net.Socket>();

  protected constructor(
    readonly transport: 'tcp' | 'tls',
    private readonly server: net.Server,
    private readonly opts: StreamOptions,
    readonly address: string,
    readonly port: number,
  ) {}

  /** Binds `server` (IPv6 addresses only on an IPv6 address); rejects with the bind error. */
  protected static listen(server: net.Server, opts: StreamOptions): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: opts.address, port: opts.port, ipv6Only: opts.address.includes(':'), exclusive: true }, () => {
        server.off('error', reject);
        server.on('error', () => {});
        resolve(server.address() as net.AddressInfo);
      });
    });
  }

  get connectionCount(): number {
    return this.accepted.size;
  }

  /**
   * A new TCP connection: counted, or closed at once without a byte read or answered (reset for a
   * banned source, which learns nothing more).
   */
  protected accept(socket: net.Socket): boolean {
    const address = socket.remoteAddress ?? '';
    socket.on('error', () => socket.destroy());
    const refusal = this.opts.connections.tryOpen(address);
    if (refusal !== null) {
      if (refusal === 'banned') {
        socket.resetAndDestroy();
      } else {
        this.opts.onRefused?.(refusal, `${address}:${socket.remotePort ?? 0}`);
        socket.destroy();
      }
      return false;
    }
    this.accepted.add(socket);
    socket.once('close', () => {
      this.accepted.delete(socket);
      this.opts.connections.closed(address);
    });
    return true;
  }

  /** An accepted connection now carries SIP (`socket` is the TLS socket over it for TLS). */
  protected adopt(socket: net.Socket): void {
    const id = nextConnectionId++;
    const conn: Connection = { socket, buffer: Buffer.alloc(0) };
    this.connections.set(id, conn);
    socket.setTimeout(this.opts.idleMs);
    socket.on('timeout', () => socket.destroy());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.connections.delete(id));
    const remote: StreamSource = { transport: this.transport, address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0, connectionId: id };
    socket.on('data', (chunk: Buffer) => {
      conn.buffer = conn.buffer.length === 0 ? chunk : Buffer.concat([conn.buffer, chunk]);
      this.drain(conn, remote);
    });
  }

  private drain(conn: Connection, remote: StreamSource): void {
    // Bounded: at most one message's worth of bytes (the limit) is ever buffered per connection.
    for (let guard = 0; guard < 1000 && conn.buffer.length > 0; guard++) {
      const frame = frameStream(conn.buffer, this.opts.limits);
      if (frame.kind === 'incomplete') {
        if (conn.buffer.length > this.opts.limits.maxMessageBytes) {
          this.opts.onFramingError?.('message exceeds the size limit', `${remote.address}:${remote.port}`);
          conn.socket.destroy();
        }
        return;
      }
      if (frame.kind === 'error') {
        // Framing is lost: nothing after this point can be trusted (RFC 3261 section 18.3).
        this.opts.onFramingError?.(frame.error, `${remote.address}:${remote.port}`);
        conn.socket.destroy();
        return;
      }
      const message = conn.buffer.subarray(0, frame.length);
      conn.buffer = conn.buffer.subarray(frame.length);
      if (frame.kind === 'keepalive') {
        // RFC 5626 section 3.5.1: answer a double-CRLF ping with a single CRLF pong.
        if (message.length >= 4) conn.socket.write('\r\n');
        continue;
      }
      this.opts.onMessage(message, remote);
    }
  }

  /** Sends on an existing connection; false when it is gone (or is another transport's). */
  send(data: Buffer, connectionId: number): boolean {
    const conn = this.connections.get(connectionId);
    if (!conn || conn.socket.destroyed) return false;
    conn.socket.write(data);
    return true;
  }

  /** Closes every connection from `address`, TLS handshakes in progress included; how many. */
  closeFrom(address: string): number {
    let n = 0;
    for (const c of this.connections.values()) if (c.socket.remoteAddress === address) c.socket.destroy();
    for (const socket of this.accepted) {
      if (socket.remoteAddress !== address) continue;
      socket.destroy();
      n++;
    }
    return n;
  }

  close(): Promise<void> {
    for (const c of this.connections.values()) c.socket.destroy();
    for (const socket of this.accepted) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
