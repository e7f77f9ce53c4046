/**
 * Via header (RFC 3261 sections 20.42 and 25.1, RFC 3581 rport, RFC 5118 section 4.5).
 *   via-parm = sent-protocol LWS sent-by *( SEMI via-params )
 *   sent-protocol = protocol-name SLASH protocol-version SLASH transport   (SLASH = SWS "/" SWS)
 */
import type { SipMessage } from '../message.js';
import { findTopLevelComma, isTokenChar, parseDecimal, skipWs, scanToken, trimEnd } from './lex.js';
import { parseParams, type Params } from './params.js';
import { scanHostPort, type HostPort } from '../uri.js';

export interface Via {
  /** "SIP/2.0" (protocol name and version, upper-case). */
  protocol: string;
  /** Upper-case transport: UDP, TCP, TLS, SCTP, WS, ... */
  transport: string;
  /** sent-by host; an IPv6 address without brackets. */
  host: string;
  port?: number;
  /** Every via-param, names lower-case, values as written. */
  params: Params;
  branch?: string;
  /** The received address without brackets (RFC 5118 allows it with or without). */
  received?: string;
  /** rport with a value, or true when present without one (RFC 3581). */
  rport?: number | true;
}

function isIpv6Char(c: number): boolean {
  return (c >= 48 && c <= 58) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102) || c === 46;
}

/**
 * An unbracketed IPv6 sent-by such as "2001:db8::1" is not legal ABNF (it cannot carry a port),
 * but it is unambiguous when it has two or more colons, so it is accepted as a host without port.
 */
function scanBareIpv6(s: string, i: number, end: number): number {
  let j = i;
  let colons = 0;
  while (j < end && isIpv6Char(s.charCodeAt(j))) {
    if (s.charCodeAt(j) === 58) colons++;
    j++;
  }
  if (colons < 2) return -1;
  if (j < end) {
    const c = s.charCodeAt(j);
    if (c !== 59 && c !== 32 && c !== 9) return -1;
  }
  return j;
}

/** scanHostPort, falling back to an unbracketed IPv6 address (which scanHostPort cannot read). */
function scanHostOrBareIpv6(s: string, i: number, end: number): HostPort | null {
  const hp = scanHostPort(s, i, end);
  if (hp !== null && (hp.next === end || s.charCodeAt(hp.next) !== 58)) return hp;
  const bare = scanBareIpv6(s, i, end);
  return bare < 0 ? hp : { host: s.slice(i, bare), next: bare };
}

function stripBrackets(a: string): string {
  return a.length > 2 && a.charCodeAt(0) === 91 && a.charCodeAt(a.length - 1) === 93 ? a.slice(1, -1) : a;
}

const TRANSPORTS = ['UDP', 'TCP', 'TLS', 'SCTP', 'WS', 'WSS'];

/** Upper-case s[start, end), returning a shared constant for the usual transports. */
function upperToken(s: string, start: number, end: number): string {
  for (const t of TRANSPORTS) {
    if (t.length !== end - start) continue;
    let k = 0;
    while (k < t.length && (s.charCodeAt(start + k) & ~32) === t.charCodeAt(k)) k++;
    if (k === t.length) return t;
  }
  return s.slice(start, end).toUpperCase();
}

function isSip20(s: string, ns: number, ne: number, vs: number, ve: number): boolean {
  return ne - ns === 3 && ve - vs === 3 && (s.charCodeAt(ns) & ~32) === 83 && (s.charCodeAt(ns + 1) & ~32) === 73 &&
    (s.charCodeAt(ns + 2) & ~32) === 80 && s.startsWith('2.0', vs);
}

/** Parses one Via element (no top-level commas). Null on bad syntax; never throws. */
export function parseVia(element: string): Via | null {
  const s = element;
  const end = trimEnd(s, 0, s.length);
  let i = skipWs(s, 0, end);
  const nameStart = i;
  i = scanToken(s, i, end);
  if (i === nameStart) return null;
  const nameEnd = i;
  i = skipWs(s, i, end);
  if (s.charCodeAt(i) !== 47 /* / */) return null;
  i = skipWs(s, i + 1, end);
  const versionStart = i;
  i = scanToken(s, i, end);
  if (i === versionStart) return null;
  const versionEnd = i;
  i = skipWs(s, i, end);
  if (s.charCodeAt(i) !== 47) return null;
  i = skipWs(s, i + 1, end);
  const transportStart = i;
  i = scanToken(s, i, end);
  if (i === transportStart) return null;
  const transport = upperToken(s, transportStart, i);
  const wsStart = i;
  i = skipWs(s, i, end);
  if (i === wsStart) return null; // LWS is required between sent-protocol and sent-by

  let host: string;
  let port: number | undefined;
  const hp = s.charCodeAt(i) === 91 ? scanHostPort(s, i, end) : scanHostOrBareIpv6(s, i, end);
  if (hp === null) return null;
  host = hp.host;
  port = hp.port;
  i = hp.next;
  if (i < end && isTokenChar(s.charCodeAt(i))) return null;
  const params: Params = new Map();
  if (!parseParams(s, i, end, params)) return null;

  const protocol = isSip20(s, nameStart, nameEnd, versionStart, versionEnd)
    ? 'SIP/2.0'
    : `${s.slice(nameStart, nameEnd).toUpperCase()}/${s.slice(versionStart, versionEnd).toUpperCase()}`;
  const via: Via = { protocol, transport, host, params };
  if (port !== undefined) via.port = port;
  const branch = params.get('branch');
  if (branch) via.branch = branch;
  const received = params.get('received');
  if (received) via.received = stripBrackets(received);
  if (params.has('rport')) {
    const r = params.get('rport');
    if (r === null || r === undefined) via.rport = true;
    else {
      const n = parseDecimal(r, 0, r.length, 65535);
      if (n < 0) return null;
      via.rport = n;
    }
  }
  return via;
}

/** Every Via element of the message, top first; null when any of them is malformed. */
export function parseViaList(msg: SipMessage): Via[] | null {
  const out: Via[] = [];
  for (const element of msg.headers.list('via')) {
    const v = parseVia(element);
    if (v === null) return null;
    out.push(v);
  }
  return out;
}

/** The top Via only: parses just the first element of the first Via line. */
export function topVia(msg: SipMessage): Via | null {
  const i = msg.headers.names.indexOf('via');
  if (i < 0) return null;
  const line = msg.headers.values[i]!;
  const comma = findTopLevelComma(line, 0, line.length);
  return parseVia(comma === line.length ? line : line.slice(0, comma));
}

/**
 * Formats a Via element. `params` is written in order, except that the branch, received and
 * rport fields win over the map's values (so a stack can set `received`/`rport` and format).
 */
export function formatVia(v: Via): string {
  let out = `${v.protocol}/${v.transport} ${v.host.indexOf(':') >= 0 ? `[${v.host}]` : v.host}`;
  if (v.port !== undefined) out += `:${v.port}`;
  const fieldValue = (name: string): string | null | undefined => {
    if (name === 'branch') return v.branch;
    if (name === 'received') return v.received === undefined ? undefined : v.received.indexOf(':') >= 0 ? `[${v.received}]` : v.received;
    if (name === 'rport') return v.rport === undefined ? undefined : v.rport === true ? null : String(v.rport);
    return undefined;
  };
  const written = new Set<string>();
  for (const [name, value] of v.params) {
    written.add(name);
    if (name === 'branch' || name === 'received' || name === 'rport') {
      const field = fieldValue(name);
      if (field === undefined) continue; // the field was cleared: drop the stale parameter
      out += field === null ? `;${name}` : `;${name}=${field}`;
    } else {
      out += value === null ? `;${name}` : `;${name}=${value}`;
    }
  }
  for (const name of ['branch', 'received', 'rport']) {
    if (written.has(name)) continue;
    const field = fieldValue(name);
    if (field === undefined) continue;
    out += field === null ? `;${name}` : `;${name}=${field}`;
  }
  return out;
}
