/**
 * Via header (RFC 3261 sections 20.42 and 25.1, RFC 3581 rport, RFC 5118 section 4.5).
 *   via-parm = sent-protocol LWS sent-by *( SEMI via-params )
 *   sent-protocol = protocol-name SLASH protocol-version SLASH transport   (SLASH = SWS "/" SWS)
 */
import type { SipMessage } from '../message.js';
import { findTopLevelComma, isTokenChar, parseDecimal, skipWs, scanToken, trimEnd } from './lex.js';
import { checkParams, parseParams, receivedStart, rportEnd, rportStart, type Params } from './params.js';
import { lastHostEnd, lastHostStart, lastPort, scanHostPortEnd } from '../uri.js';

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

function stripBrackets(a: string): string {
  return a.length > 2 && a.charCodeAt(0) === 91 && a.charCodeAt(a.length - 1) === 93 ? a.slice(1, -1) : a;
}

/** Upper-case s[start, end), returning a shared constant for the usual transports. */
function upperToken(s: string, start: number, end: number): string {
  const n = end - start;
  const c0 = s.charCodeAt(start) & ~32;
  if (n === 3) {
    const c1 = s.charCodeAt(start + 1) & ~32;
    const c2 = s.charCodeAt(start + 2) & ~32;
    if (c0 === 85 && c1 === 68 && c2 === 80) return 'UDP';
    if (c0 === 84 && c1 === 67 && c2 === 80) return 'TCP';
    if (c0 === 84 && c1 === 76 && c2 === 83) return 'TLS';
    if (c0 === 87 && c1 === 83 && c2 === 83) return 'WSS';
  } else if (n === 2) {
    if (c0 === 87 && (s.charCodeAt(start + 1) & ~32) === 83) return 'WS';
  } else if (n === 4) {
    if (c0 === 83 && (s.charCodeAt(start + 1) & ~32) === 67 && (s.charCodeAt(start + 2) & ~32) === 84 && (s.charCodeAt(start + 3) & ~32) === 80) return 'SCTP';
  }
  return s.slice(start, end).toUpperCase();
}

function isSip20(s: string, ns: number, ne: number, vs: number, ve: number): boolean {
  return ne - ns === 3 && ve - vs === 3 && (s.charCodeAt(ns) & ~32) === 83 && (s.charCodeAt(ns + 1) & ~32) === 73 &&
    (s.charCodeAt(ns + 2) & ~32) === 80 && s.charCodeAt(vs) === 50 && s.charCodeAt(vs + 1) === 46 && s.charCodeAt(vs + 2) === 48;
}

// Where the last successful scanVia found the parts (module state: checking allocates nothing).
let vNameStart = 0;
let vNameEnd = 0;
let vVersionStart = 0;
let vVersionEnd = 0;
let vTransportStart = 0;
let vTransportEnd = 0;
let vHostStart = 0;
let vHostEnd = 0;
let vPort = -1;
let vParamsStart = 0;
let vEnd = 0;

/**
 * The syntax of one Via element s[start, end) up to its parameters (left for the caller, from
 * vParamsStart to vEnd). False on bad syntax.
 */
function scanViaHead(s: string, start: number, end: number): boolean {
  end = trimEnd(s, start, end);
  let i = skipWs(s, start, end);
  const nameStart = i;
  i = scanToken(s, i, end);
  if (i === nameStart) return false;
  const nameEnd = i;
  i = skipWs(s, i, end);
  if (i >= end || s.charCodeAt(i) !== 47 /* / */) return false;
  i = skipWs(s, i + 1, end);
  const versionStart = i;
  i = scanToken(s, i, end);
  if (i === versionStart) return false;
  const versionEnd = i;
  i = skipWs(s, i, end);
  if (i >= end || s.charCodeAt(i) !== 47) return false;
  i = skipWs(s, i + 1, end);
  const transportStart = i;
  i = scanToken(s, i, end);
  if (i === transportStart) return false;
  const transportEnd = i;
  i = skipWs(s, i, end);
  if (i === transportEnd) return false; // LWS is required between sent-protocol and sent-by

  // host [":" port]; an unbracketed IPv6 address (which scanHostPortEnd cannot read) as a fallback.
  let next = scanHostPortEnd(s, i, end);
  if (next >= 0) {
    vHostStart = lastHostStart();
    vHostEnd = lastHostEnd();
    vPort = lastPort();
  }
  if (s.charCodeAt(i) !== 91 && !(next >= 0 && (next === end || s.charCodeAt(next) !== 58))) {
    const bare = scanBareIpv6(s, i, end);
    if (bare >= 0) {
      vHostStart = i;
      vHostEnd = bare;
      vPort = -1;
      next = bare;
    }
  }
  if (next < 0) return false;
  if (next < end && isTokenChar(s.charCodeAt(next))) return false;
  vNameStart = nameStart;
  vNameEnd = nameEnd;
  vVersionStart = versionStart;
  vVersionEnd = versionEnd;
  vTransportStart = transportStart;
  vTransportEnd = transportEnd;
  vParamsStart = next;
  vEnd = end;
  return true;
}

/** True exactly when parseVia(s.slice(start, end)) would not be null; allocates nothing. */
export function isValidVia(s: string, start: number, end: number): boolean {
  if (!scanViaHead(s, start, end) || !checkParams(s, vParamsStart, vEnd)) return false;
  return rportStart < 0 || parseDecimal(s, rportStart, rportEnd, 65535) >= 0;
}

/** parseVia of the element s[start, end). */
function parseViaRange(s: string, start: number, end: number): Via | null {
  if (!scanViaHead(s, start, end)) return null;
  const hostStart = vHostStart;
  const hostEnd = vHostEnd;
  const port = vPort;
  const nameStart = vNameStart;
  const nameEnd = vNameEnd;
  const versionStart = vVersionStart;
  const versionEnd = vVersionEnd;
  const transportStart = vTransportStart;
  const transportEnd = vTransportEnd;
  const params: Params = new Map();
  if (!parseParams(s, vParamsStart, vEnd, params)) return null;
  let rport: number | true | undefined;
  if (params.has('rport')) {
    const r = params.get('rport');
    if (r === null || r === undefined) rport = true;
    else {
      const n = parseDecimal(r, 0, r.length, 65535);
      if (n < 0) return null;
      rport = n;
    }
  }
  const protocol = isSip20(s, nameStart, nameEnd, versionStart, versionEnd)
    ? 'SIP/2.0'
    : `${s.slice(nameStart, nameEnd).toUpperCase()}/${s.slice(versionStart, versionEnd).toUpperCase()}`;
  const via: Via = { protocol, transport: upperToken(s, transportStart, transportEnd), host: s.slice(hostStart, hostEnd), params };
  if (port >= 0) via.port = port;
  const branch = params.get('branch');
  if (branch) via.branch = branch;
  const received = params.get('received');
  if (received) via.received = stripBrackets(received);
  if (rport !== undefined) via.rport = rport;
  return via;
}

/** Parses one Via element (no top-level commas). Null on bad syntax; never throws. */
export function parseVia(element: string): Via | null {
  return parseViaRange(element, 0, element.length);
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
  return parseViaRange(line, 0, line.indexOf(',') < 0 ? line.length : findTopLevelComma(line, 0, line.length));
}

/**
 * What a transport needs to stamp the top Via (RFC 3261 section 18.2.1, RFC 3581), read without
 * building the Via: null exactly when topVia(msg) is null; else its host, whether it has an
 * rport parameter (topVia(msg).rport !== undefined) and a received one (.received !== undefined).
 */
export function topViaStampFacts(msg: SipMessage): { host: string; rport: boolean; received: boolean } | null {
  const i = msg.headers.names.indexOf('via');
  if (i < 0) return null;
  const line = msg.headers.values[i]!;
  if (!isValidVia(line, 0, line.indexOf(',') < 0 ? line.length : findTopLevelComma(line, 0, line.length))) return null;
  // A received parameter without a value does not count (parseVia keeps only non-empty values).
  return { host: line.slice(vHostStart, vHostEnd), rport: rportStart !== -2, received: receivedStart >= 0 };
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
