/** The transports SIP runs over here: datagrams, and connections in clear or in TLS. */
export type TransportName = 'udp' | 'tcp' | 'tls';

/** Where a message came from or goes to. `connectionId` names the TCP or TLS connection to answer on. */
export interface Endpoint {
  transport: TransportName;
  address: string;
  port: number;
  connectionId?: number;
}

/**
 * Bytes received, with their source; the stack parses them. `waitedMs`: how long they waited in a
 * receive queue the transport can see (the native UDP engine's), when known.
 */
export type InboundHandler = (data: Buffer, source: Endpoint, waitedMs?: number) => void;

/**
 * TCP and TLS deliver in order or fail (RFC 3261 sections 17.1.1.2 and 17.1.2.2): no
 * retransmission timers, and a message goes back on the connection it came in on.
 */
export function isConnectionTransport(transport: TransportName): boolean {
  return transport !== 'udp';
}
