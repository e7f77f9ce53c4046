/**
 * Which of our addresses a peer reaches us on: written in Via, Contact and SDP. With a wildcard
 * bind (0.0.0.0) the socket does not say which interface a datagram arrived on, so the choice is
 * made from what is known: a configured address, the host the peer itself used to reach us, the
 * interface on the peer's subnet, or the first external interface.
 */
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';

export interface LocalAddressOptions {
  /** Configured address (sip.advertise / media.advertise); '' = decide. */
  configured: string;
  /** The address the sockets are bound to. */
  bind: string;
}

export class LocalAddress {
  private readonly cache = new Map<string, string>();

  constructor(private readonly opts: LocalAddressOptions) {}

  /**
   * @param peer the peer's IP address (source of its messages)
   * @param hint the host the peer addressed us with (Request-URI host of its request), if any
   */
  for(peer: string, hint?: string): string {
    if (this.opts.configured) return this.opts.configured;
    if (hint !== undefined && isIP(hint) !== 0 && !isWildcard(hint)) return hint;
    if (!isWildcard(this.opts.bind)) return this.opts.bind;
    let known = this.cache.get(peer);
    if (known === undefined) {
      known = pickInterface(peer);
      if (this.cache.size > 4096) this.cache.clear();
      this.cache.set(peer, known);
    }
    return known;
  }
}

function isWildcard(a: string): boolean {
  return a === '0.0.0.0' || a === '::' || a === '';
}

function pickInterface(peer: string): string {
  const v6 = peer.includes(':');
  if (peer === '127.0.0.1' || peer.startsWith('127.')) return '127.0.0.1';
  if (peer === '::1') return '::1';
  const all = Object.values(networkInterfaces()).flatMap((list) => list ?? []);
  const family = v6 ? 'IPv6' : 'IPv4';
  const candidates = all.filter((i) => i.family === family && !i.internal);
  if (!v6) {
    const p = ipv4ToInt(peer);
    for (const i of candidates) {
      const mask = ipv4ToInt(i.netmask);
      if (p !== null && mask !== null && ((ipv4ToInt(i.address)! & mask) >>> 0) === ((p & mask) >>> 0)) return i.address;
    }
  }
  return candidates[0]?.address ?? (v6 ? '::1' : '127.0.0.1');
}

function ipv4ToInt(a: string): number | null {
  const parts = a.split('.');
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    const v = Number(p);
    if (!Number.isInteger(v) || v < 0 || v > 255) return null;
    n = (n * 256 + v) >>> 0;
  }
  return n;
}

/** `host:port` with IPv6 in brackets (RFC 3261 section 25.1 / RFC 5118). */
export function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}
