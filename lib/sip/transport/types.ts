/** Where a message came from or goes to. `connectionId` names the TCP connection to answer on. */
export interface Endpoint {
  transport: 'udp' | 'tcp';
  address: string;
  port: number;
  connectionId?: number;
}

/** Bytes received, with their source; the stack parses them. */
export type InboundHandler = (data: Buffer, source: Endpoint) => void;
