/**
 * Where requests for a registered contact are sent. A phone behind NAT registers a private
 * Contact that cannot be reached; its REGISTER's source (the NAT's public side, kept open by the
 * phone's refreshes) can. A Contact that is reachable as written (a public or loopback address,
 * or a device registering on behalf of another, as SIPp's callee side does) is used as written.
 * A phone registered through a front proxy (RFC 3327 Path) is reached through that proxy.
 */
import { isIP } from 'node:net';
import { isConnectionTransport, type Endpoint } from '../sip/transport/types.js';
import { parseNameAddr } from '../sip/headers/name-addr.js';
import { parseUri } from '../sip/uri.js';
import type { Binding } from './registrar.js';

export function contactTarget(b: Binding): Endpoint {
  const flow: Endpoint = { transport: b.transport, address: b.sourceAddress, port: b.sourcePort };
  if (b.connectionId !== undefined) flow.connectionId = b.connectionId;
  if (b.path !== undefined && b.path.length > 0) return firstRouteHop(b.path[0]!, flow);
  // TCP and TLS: the phone's own connection is the only sure way back (RFC 5626 section 3);
  // the server opens no connections of its own.
  if (isConnectionTransport(b.transport)) return flow;
  const host = b.uri.host;
  if (isIP(host) === 0) return flow; // a name: the flow it registered from is what we know works
  const port = b.uri.port ?? (b.uri.scheme === 'sips' ? 5061 : 5060);
  if (host === b.sourceAddress && port === b.sourcePort) return flow;
  if (isPrivate(host) && host !== b.sourceAddress) return flow; // behind NAT
  const transport = (b.uri.params.get('transport') ?? 'udp').toLowerCase();
  if (transport !== 'udp') return flow;
  return { transport: 'udp', address: host, port };
}

/**
 * RFC 3261 section 8.1.2: a request with a pre-loaded route set (the binding's Path) goes to the
 * first Route's URI, a loose router (the registrar refused a first Path URI without `lr`). Over TCP
 * and TLS, and for a proxy named by a host name, that is the flow the REGISTER came over: the
 * server opens no connections and resolves no names, and the proxy that sent the REGISTER is the
 * one that wrote the first Path value (RFC 3327 section 4).
 */
function firstRouteHop(value: string, flow: Endpoint): Endpoint {
  if (isConnectionTransport(flow.transport)) return flow;
  const uri = parseUri(parseNameAddr(value)?.uri ?? '');
  if (uri === null || uri.scheme !== 'sip' || isIP(uri.host) === 0) return flow;
  if ((uri.params.get('transport') ?? 'udp').toLowerCase() !== 'udp') return flow;
  return { transport: 'udp', address: uri.host, port: uri.port ?? 5060 };
}

/** RFC 1918, RFC 6598 (carrier-grade NAT), link-local, and IPv6 unique-local / link-local. */
export function isPrivate(ip: string): boolean {
  if (ip.includes(':')) {
    const l = ip.toLowerCase();
    return l.startsWith('fc') || l.startsWith('fd') || l.startsWith('fe80:');
  }
  // The first two parts of a dotted quad, read in place (this runs several times per call);
  // anything not plainly digits goes through the general conversion below.
  let a = -1;
  let b = -1;
  const dot1 = ip.indexOf('.');
  const dot2 = dot1 < 0 ? -1 : ip.indexOf('.', dot1 + 1);
  if (dot1 > 0 && dot1 <= 3 && dot2 > dot1 + 1 && dot2 <= dot1 + 4) {
    a = digitsValue(ip, 0, dot1);
    b = digitsValue(ip, dot1 + 1, dot2);
  }
  if (a < 0 || b < 0) [a, b] = ip.split('.').map(Number) as [number, number];
  return a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127) || (a === 169 && b === 254);
}

/** The decimal value of s[start, end), or -1 when it holds anything but digits. */
function digitsValue(s: string, start: number, end: number): number {
  let v = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v;
}
