import net from 'node:net';
import { frameStream, type ParseLimits } from '../parser.js';
import type { InboundHandler } from './types.js';

export interface TcpOptions {
  address: string;
  port: number;
  limits: ParseLimits;
  maxConnections: number;
  idleMs: number;
  onMessage: InboundHandler;
  onFramingError?: (error: string, remote: string) => void;
  /** Asked at accept with the peer's address: false closes the connection at once (a banned source). */
  admit?: (address: string) => boolean;
}

interface Connection {
  socket: net.Socket;
  buffer: Buffer;
}

/**
 * SIP over TCP (RFC 3261 section 18.3): messages are framed by Content-Length, responses go back on
 * the connection the request came in on, idle connections are closed, and the number of
 * connections is bounded.
 */
export class TcpTransport {
  private readonly connections = new Map<number, Connection>();
  private nextId = 1;

  private constructor(
    private readonly server: net.Server,
    private readonly opts: TcpOptions,
    readonly address: string,
    readonly port: number,
  ) {}

  static open(opts: TcpOptions): Promise<TcpTransport> {
    return new Promise((resolve, reject) => {
      const server = net.createServer({ noDelay: true });
      server.maxConnections = opts.maxConnections;
      const onBindError = (err: Error) => reject(err);
      server.once('error', onBindError);
      server.listen({ host: opts.address, port: opts.port, ipv6Only: opts.address.includes(':'), exclusive: true }, () => {
        server.off('error', onBindError);
        server.on('error', () => {});
        const a = server.address() as net.AddressInfo;
        const transport = new TcpTransport(server, opts, a.address, a.port);
        server.on('connection', (socket) => transport.accept(socket));
        resolve(transport);
      });
    });
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  private accept(socket: net.Socket): void {
    if (this.opts.admit !== undefined && !this.opts.admit(socket.remoteAddress ?? '')) {
      // Nothing is read or answered: the peer sees its connection reset.
      socket.on('error', () => {});
      socket.resetAndDestroy();
      return;
    }
    const id = this.nextId++;
    const conn: Connection = { socket, buffer: Buffer.alloc(0) };
    this.connections.set(id, conn);
    socket.setTimeout(this.opts.idleMs);
    socket.on('timeout', () => socket.destroy());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.connections.delete(id));
    const remote = { transport: 'tcp' as const, address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0, connectionId: id };
    socket.on('data', (chunk) => {
      conn.buffer = conn.buffer.length === 0 ? chunk : Buffer.concat([conn.buffer, chunk]);
      this.drain(conn, remote);
    });
  }

  private drain(conn: Connection, remote: { transport: 'tcp'; address: string; port: number; connectionId: number }): void {
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

  /** Sends on an existing connection; false when it is gone. */
  send(data: Buffer, connectionId: number): boolean {
    const conn = this.connections.get(connectionId);
    if (!conn || conn.socket.destroyed) return false;
    conn.socket.write(data);
    return true;
  }

  /** Closes every connection from `address`; how many. */
  closeFrom(address: string): number {
    let n = 0;
    for (const c of this.connections.values()) {
      if (c.socket.remoteAddress !== address) continue;
      c.socket.destroy();
      n++;
    }
    return n;
  }

  close(): Promise<void> {
    for (const c of this.connections.values()) c.socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
