import dgram from 'node:dgram';
import type { InboundHandler } from './types.js';

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string, family: number) => void;

function ipLookup(address: string, options: unknown, callback: LookupCallback): void {
  const family = address.includes(':') ? 6 : 4;
  callback(null, address, family);
}

export interface UdpOptions {
  address: string;
  port: number;
  family: 4 | 6;
  bufferBytes: number;
  onMessage: InboundHandler;
  onError?: (err: Error) => void;
  /** A socket already bound (SO_REUSEPORT, see lib/platform/reuse-port.ts) to adopt instead of binding. */
  fd?: number;
  /** Asked first for each datagram with its source address: true drops it unread (a banned source). */
  drop?: (address: string) => boolean;
  /** Native engine only (sip.udpCoalesceUs): how long datagrams reaching an idle socket wait for others. */
  coalesceUs?: number;
}

/** One UDP socket (RFC 3261 section 18.1/18.2 over datagrams). */
export class UdpTransport {
  private constructor(
    private readonly socket: dgram.Socket,
    readonly address: string,
    readonly port: number,
  ) {}

  static open(opts: UdpOptions): Promise<UdpTransport> {
    return new Promise((resolve, reject) => {
      const socket = dgram.createSocket({
        type: opts.family === 6 ? 'udp6' : 'udp4',
        ipv6Only: opts.family === 6,
        recvBufferSize: opts.bufferBytes,
        sendBufferSize: opts.bufferBytes,
        // We only ever send to IP addresses (where a request came from): no name lookup, and no
        // deferral of every send to the next tick as dns.lookup does even for an IP.
        lookup: ipLookup,
      });
      const onBindError = (err: Error) => {
        socket.close();
        reject(err);
      };
      socket.once('error', onBindError);
      const bindOptions = opts.fd !== undefined ? { fd: opts.fd } : { address: opts.address, port: opts.port, exclusive: true };
      socket.bind(bindOptions, () => {
        socket.off('error', onBindError);
        socket.on('error', (err) => opts.onError?.(err));
        const drop = opts.drop;
        socket.on('message', (data, rinfo) => {
          if (drop !== undefined && drop(rinfo.address)) return;
          opts.onMessage(data, { transport: 'udp', address: rinfo.address, port: rinfo.port });
        });
        const a = socket.address();
        resolve(new UdpTransport(socket, a.address, a.port));
      });
    });
  }

  send(data: Buffer, address: string, port: number): void {
    // A send to an unreachable or invalid address must never take the server down.
    try {
      this.socket.send(data, port, address);
    } catch {
      /* counted by the caller's absent response; nothing else to do for a datagram */
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
