import net from 'node:net';
import { StreamTransport, type StreamOptions } from './stream.js';

/** SIP over TCP (RFC 3261 section 18.3): a connection carries SIP from its accept on. */
export class TcpTransport extends StreamTransport {
  static async open(opts: StreamOptions): Promise<TcpTransport> {
    const server = net.createServer({ noDelay: true });
    const bound = await StreamTransport.listen(server, opts);
    const transport = new TcpTransport('tcp', server, opts, bound.address, bound.port);
    server.on('connection', (socket) => {
      if (transport.accept(socket)) transport.adopt(socket);
    });
    return transport;
  }
}
