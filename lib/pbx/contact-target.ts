/**
 * Where requests for a registered contact are sent. A phone behind NAT registers a private
 * Contact that cannot be reached; its REGISTER's source (the NAT's public side, kept open by the
 * phone's refreshes) can. A Contact that is reachable as written (a public or loopback address,
 * or a device registering on behalf of another, as SIPp's callee side does) is used as written.
 */
import { isIP } from 'node:net';
import type { Endpoint } from '../sip/transport/types.js';
import type { Binding } from './registrar.js';

export function contactTarget(b: Binding): Endpoint {
  const flow: Endpoint = { transport: b.transport, address: b.sourceAddress, port: b.sourcePort };
  if (b.connectionId !== undefined) flow.connectionId = b.connectionId;
  // TCP: the phone's own connection is the only sure way back (RFC 5626 section 3).
  if (b.transport === 'tcp') return flow;
  const host = b.uri.host;
  if (isIP(host) === 0) return flow; // a name: the flow it registered from is what we know works
  const port = b.uri.port ?? (b.uri.scheme === 'sips' ? 5061 : 5060);
  if (host === b.sourceAddress && port === b.sourcePort) return flow;
  if (isPrivate(host) && host !== b.sourceAddress) return flow; // behind NAT
  const transport = (b.uri.params.get('transport') ?? 'udp').toLowerCase();
  if (transport !== 'udp') return flow;
  return { transport: 'udp', address: host, port };
}

/** RFC 1918, RFC 6598 (carrier-grade NAT), link-local, and IPv6 unique-local / link-local. */
export function isPrivate(ip: string): boolean {
  if (ip.includes(':')) {
    const l = ip.toLowerCase();
    return l.startsWith('fc') || l.startsWith('fd') || l.startsWith('fe80:');
  }
  const [a, b] = ip.split('.').map(Number) as [number, number];
  return a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127) || (a === 169 && b === 254);
}
