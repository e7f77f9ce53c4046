/**
 * SIP, SIPS and tel URIs (RFC 3261 sections 19.1 and 25.1, RFC 3966, RFC 5118 for IPv6).
 *
 * Parts are kept as written (escapes not decoded) so a parsed URI formats back to the same
 * text; `uriEquals` decodes escapes where section 19.1.4 says to. An IPv6 reference is stored
 * in `host` without its brackets and formatted with them.
 */

export interface SipUri {
  /** Lower-case scheme: "sip", "sips", "tel" or any other (opaque) scheme. */
  scheme: string;
  /** sip/sips: user part; tel: the number; other schemes: everything after the colon. */
  user?: string;
  password?: string;
  /** '' for tel: and opaque schemes. */
  host: string;
  port?: number;
  /** uri-parameters, names lower-case, values as written (null when valueless). */
  params: Map<string, string | null>;
  /** Header components after '?', names and values as written. */
  headers: Map<string, string>;
}

const enum Cls {
  User = 1,
  Password = 2,
  Param = 4,
  Header = 8,
  Host = 16,
  Tel = 32,
  Scheme = 64,
}

const CLASS = new Uint8Array(128);
function allow(chars: string, cls: number): void {
  for (let i = 0; i < chars.length; i++) CLASS[chars.charCodeAt(i)]! |= cls;
}
const ALPHA = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
const DIGIT = '0123456789';
const UNRESERVED = ALPHA + DIGIT + "-_.!~*'()";
// '%' is allowed everywhere escapes are; a '%' not followed by two hex digits is accepted
// liberally (unescapeUriPart keeps it literally). '#' in the user part is not legal but phones
// send it in dial strings, so it is tolerated.
allow(UNRESERVED + '%&=+$,;?/#', Cls.User);
allow(UNRESERVED + '%&=+$,', Cls.Password);
allow(UNRESERVED + '%[]/:&+$', Cls.Param);
allow(UNRESERVED + '%[]/?:+$', Cls.Header);
allow(ALPHA + DIGIT + '-._', Cls.Host);
allow(ALPHA + DIGIT + '-.()*#+%', Cls.Tel);
allow(ALPHA + DIGIT + '+-.', Cls.Scheme);

function inClass(c: number, cls: Cls): boolean {
  return c < 128 && (CLASS[c]! & cls) !== 0;
}

function allIn(s: string, start: number, end: number, cls: Cls): boolean {
  for (let i = start; i < end; i++) if (!inClass(s.charCodeAt(i), cls)) return false;
  return true;
}

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

/** host [":" port] as found in a URI or a Via sent-by. */
export interface HostPort {
  host: string;
  port?: number;
  /** Index just past the host/port. */
  next: number;
}

/**
 * Where the last successful hostPortEnd found the host (without brackets) and the port (-1 when
 * there was none). Module state instead of a result object: the validators call it once per
 * message and allocate nothing.
 */
let hpHostStart = 0;
let hpHostEnd = 0;
let hpPort = -1;

/**
 * The scanner behind scanHostPort: index just past host [":" port] in s[i, end), or -1 (same
 * rules as scanHostPort). The host bounds and port are left in hpHostStart/hpHostEnd/hpPort.
 */
function hostPortEnd(s: string, i: number, end: number): number {
  if (i < end && s.charCodeAt(i) === 91 /* [ */) {
    const close = s.indexOf(']', i + 1);
    if (close < 0 || close >= end) return -1;
    let colons = 0;
    for (let j = i + 1; j < close; j++) {
      const c = s.charCodeAt(j);
      if (c === 58) colons++;
      else if (c !== 46 && !isHex(c)) return -1;
    }
    if (colons < 2) return -1;
    hpHostStart = i + 1;
    hpHostEnd = close;
    i = close + 1;
  } else {
    const start = i;
    while (i < end && inClass(s.charCodeAt(i), Cls.Host)) i++;
    if (i === start) return -1;
    hpHostStart = start;
    hpHostEnd = i;
  }
  hpPort = -1;
  if (i < end && s.charCodeAt(i) === 58 /* : */) {
    const portStart = ++i;
    let port = 0;
    while (i < end && i - portStart < 6) {
      const c = s.charCodeAt(i);
      if (c < 48 || c > 57) break;
      port = port * 10 + (c - 48);
      i++;
    }
    if (i === portStart || port > 65535) return -1;
    hpPort = port;
  }
  return i;
}

/**
 * Non-allocating form of scanHostPort for the header validators: index just past host [":" port]
 * or -1; lastHostStart/lastHostEnd/lastPort then tell where the host was and the port.
 */
export function scanHostPortEnd(s: string, i: number, end: number): number {
  return hostPortEnd(s, i, end);
}

/** Host start of the last successful scanHostPortEnd. */
export function lastHostStart(): number {
  return hpHostStart;
}

/** Host end of the last successful scanHostPortEnd. */
export function lastHostEnd(): number {
  return hpHostEnd;
}

/** Port of the last successful scanHostPortEnd, -1 when there was none. */
export function lastPort(): number {
  return hpPort;
}

/**
 * Reads host [":" port] from s[i, end). The host is a hostname, an IPv4 address or a bracketed
 * IPv6 reference (RFC 5118: an IPv6 address must be in brackets in a SIP URI; a bracketed
 * reference with three colons in a row, the RFC 3261 ABNF bug of RFC 5118 section 4.10, is
 * tolerated). Stops at the first character that cannot belong to it; returns null when there
 * is no valid host or the port is not 0..65535.
 */
export function scanHostPort(s: string, i: number, end: number): HostPort | null {
  const next = hostPortEnd(s, i, end);
  if (next < 0) return null;
  const host = s.slice(hpHostStart, hpHostEnd);
  return hpPort >= 0 ? { host, port: hpPort, next } : { host, next };
}

/**
 * Reads ";name[=value]" uri-parameters from s[i, end) up to '?' or end; returns the stop index or
 * -1. With `out` null it only checks the syntax.
 */
function scanUriParams(s: string, i: number, end: number, out: Map<string, string | null> | null): number {
  while (i < end && s.charCodeAt(i) === 59 /* ; */) {
    const nameStart = ++i;
    while (i < end && inClass(s.charCodeAt(i), Cls.Param)) i++;
    if (i === nameStart) return -1;
    const nameEnd = i;
    let valueStart = -1;
    if (i < end && s.charCodeAt(i) === 61 /* = */) {
      valueStart = ++i;
      while (i < end && inClass(s.charCodeAt(i), Cls.Param)) i++;
      if (i === valueStart) return -1;
    }
    if (out !== null) {
      const name = s.slice(nameStart, nameEnd).toLowerCase();
      if (!out.has(name)) out.set(name, valueStart < 0 ? null : s.slice(valueStart, i));
    }
  }
  return i;
}

/** Reads "?h=v&h=v" from s[i, end) (s[i] is '?'); returns false on bad syntax. `out` null: check only. */
function scanUriHeaders(s: string, i: number, end: number, out: Map<string, string> | null): boolean {
  i++;
  if (i >= end) return false;
  while (i < end) {
    const nameStart = i;
    while (i < end && inClass(s.charCodeAt(i), Cls.Header)) i++;
    if (i === nameStart || i >= end || s.charCodeAt(i) !== 61) return false;
    const nameEnd = i;
    const valueStart = ++i;
    while (i < end && inClass(s.charCodeAt(i), Cls.Header)) i++;
    if (out !== null) {
      const name = s.slice(nameStart, nameEnd);
      if (!out.has(name)) out.set(name, s.slice(valueStart, i));
    }
    if (i < end) {
      if (s.charCodeAt(i) !== 38 /* & */) return false;
      i++;
      if (i === end) return false;
    }
  }
  return true;
}

/** sip/sips URI s[i, end) after the scheme colon, into `uri` (or only checked when uri is null). */
function scanSipUri(s: string, i: number, end: number, uri: SipUri | null): boolean {
  // The user part may hold ';' and '?' (RFC 4475 semiuri), so userinfo is everything before '@'
  // ('@' itself is never legal unescaped in the user, password, parameters or headers).
  let at = s.indexOf('@', i);
  if (at >= end) at = -1;
  if (at >= 0) {
    let colon = -1;
    for (let j = i; j < at; j++) {
      if (s.charCodeAt(j) === 58) {
        colon = j;
        break;
      }
    }
    const userEnd = colon < 0 ? at : colon;
    if (userEnd === i || !allIn(s, i, userEnd, Cls.User)) return false;
    if (colon >= 0 && !allIn(s, colon + 1, at, Cls.Password)) return false;
    if (uri !== null) {
      uri.user = s.slice(i, userEnd);
      if (colon >= 0) uri.password = s.slice(colon + 1, at);
    }
    i = at + 1;
  }
  const next = hostPortEnd(s, i, end);
  if (next < 0) return false;
  if (uri !== null) {
    uri.host = s.slice(hpHostStart, hpHostEnd);
    if (hpPort >= 0) uri.port = hpPort;
  }
  i = scanUriParams(s, next, end, uri === null ? null : uri.params);
  if (i < 0) return false;
  if (i < end) {
    if (s.charCodeAt(i) !== 63 /* ? */) return false;
    if (!scanUriHeaders(s, i, end, uri === null ? null : uri.headers)) return false;
  }
  return true;
}

function parseSipUri(scheme: string, s: string, i: number): SipUri | null {
  const uri: SipUri = { scheme, host: '', params: new Map(), headers: new Map() };
  return scanSipUri(s, i, s.length, uri) ? uri : null;
}

function parseTelUri(s: string, i: number): SipUri | null {
  const end = s.length;
  const start = i;
  while (i < end && inClass(s.charCodeAt(i), Cls.Tel)) i++;
  if (i === start) return null;
  const uri: SipUri = { scheme: 'tel', user: s.slice(start, i), host: '', params: new Map(), headers: new Map() };
  i = scanUriParams(s, i, end, uri.params);
  return i === end ? uri : null;
}

/** Index of the scheme colon of s[start, end), or -1 when the scheme is malformed or missing. */
function schemeColon(s: string, start: number, end: number): number {
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c === 58) return i === start ? -1 : i;
    if (!inClass(c, Cls.Scheme) || (i === start && !(c >= 65 && c <= 90) && !(c >= 97 && c <= 122))) return -1;
  }
  return -1;
}

/**
 * True exactly when parseUri(s.slice(start, end)) would not be null, without building anything
 * (the parser checks every Request-URI; most are never looked at again).
 */
export function isValidUri(s: string, start: number, end: number): boolean {
  const colon = schemeColon(s, start, end);
  if (colon < 0 || colon + 1 >= end) return false;
  const n = colon - start;
  const c0 = s.charCodeAt(start) | 32;
  if ((n === 3 || n === 4) && c0 === 115 && (s.charCodeAt(start + 1) | 32) === 105 && (s.charCodeAt(start + 2) | 32) === 112) {
    if (n === 3 || (s.charCodeAt(start + 3) | 32) === 115) return scanSipUri(s, colon + 1, end, null);
  }
  if (n === 3 && c0 === 116 && (s.charCodeAt(start + 1) | 32) === 101 && (s.charCodeAt(start + 2) | 32) === 108) {
    let i = colon + 1;
    const userStart = i;
    while (i < end && inClass(s.charCodeAt(i), Cls.Tel)) i++;
    if (i === userStart) return false;
    return scanUriParams(s, i, end, null) === end;
  }
  for (let i = colon + 1; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c <= 32 || c === 127 || c === 34 || c === 60 || c === 62) return false;
  }
  return true;
}

/** Parses a URI; null on bad syntax. Never throws. */
export function parseUri(text: string): SipUri | null {
  if (typeof text !== 'string') return null;
  const end = text.length;
  let colon = -1;
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 58) {
      colon = i;
      break;
    }
    if (!inClass(c, Cls.Scheme) || (i === 0 && !(c >= 65 && c <= 90) && !(c >= 97 && c <= 122))) return null;
  }
  if (colon <= 0 || colon + 1 >= end) return null;
  const scheme = colon === 3 && text.startsWith('sip') ? 'sip' : text.slice(0, colon).toLowerCase();
  if (scheme === 'sip' || scheme === 'sips') return parseSipUri(scheme, text, colon + 1);
  if (scheme === 'tel') return parseTelUri(text, colon + 1);
  for (let i = colon + 1; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c <= 32 || c === 127 || c === 34 || c === 60 || c === 62) return null;
  }
  return { scheme, user: text.slice(colon + 1), host: '', params: new Map(), headers: new Map() };
}

function formatUriParams(params: Map<string, string | null>): string {
  let out = '';
  for (const [name, value] of params) out += value === null ? `;${name}` : `;${name}=${value}`;
  return out;
}

export function formatUri(u: SipUri): string {
  if (u.scheme !== 'sip' && u.scheme !== 'sips') {
    return u.scheme === 'tel' ? `tel:${u.user ?? ''}${formatUriParams(u.params)}` : `${u.scheme}:${u.user ?? ''}`;
  }
  let out = `${u.scheme}:`;
  if (u.user !== undefined) {
    out += u.user;
    if (u.password !== undefined) out += `:${u.password}`;
    out += '@';
  }
  out += u.host.indexOf(':') >= 0 ? `[${u.host}]` : u.host;
  if (u.port !== undefined) out += `:${u.port}`;
  out += formatUriParams(u.params);
  let sep = '?';
  for (const [name, value] of u.headers) {
    out += `${sep}${name}=${value}`;
    sep = '&';
  }
  return out;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/**
 * Decodes %XX escapes (as UTF-8 octets). A '%' not followed by two hex digits stays as it is;
 * "%00" becomes U+0000 and does not end the string. Never throws.
 */
export function unescapeUriPart(s: string): string {
  if (s.indexOf('%') < 0) return s;
  let out = '';
  let i = 0;
  const n = s.length;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c === 37 && i + 2 < n && hexValue(s.charCodeAt(i + 1)) >= 0 && hexValue(s.charCodeAt(i + 2)) >= 0) {
      // Gather a run of escapes so multi-octet UTF-8 sequences decode as one character.
      const bytes: number[] = [];
      while (i + 2 < n && s.charCodeAt(i) === 37) {
        const hi = hexValue(s.charCodeAt(i + 1));
        const lo = hexValue(s.charCodeAt(i + 2));
        if (hi < 0 || lo < 0) break;
        bytes.push(hi * 16 + lo);
        i += 3;
      }
      out += Buffer.from(bytes).toString('utf8');
    } else {
      out += s[i];
      i++;
    }
  }
  return out;
}

/** Parameters that must match when present in either URI (RFC 3261 section 19.1.4). */
const MUST_MATCH = ['user', 'ttl', 'method', 'maddr', 'transport'];

function paramValueEq(a: string | null, b: string | null): boolean {
  if (a === null || b === null) return a === b;
  return unescapeUriPart(a).toLowerCase() === unescapeUriPart(b).toLowerCase();
}

/** URI parameters keyed by their unescaped lower-case name. */
function decodedParams(p: Map<string, string | null>): Map<string, string | null> {
  const out = new Map<string, string | null>();
  for (const [k, v] of p) out.set(unescapeUriPart(k).toLowerCase(), v);
  return out;
}

function paramsEqual(pa: Map<string, string | null>, pb: Map<string, string | null>): boolean {
  const a = decodedParams(pa);
  const b = decodedParams(pb);
  for (const name of MUST_MATCH) {
    if (a.has(name) !== b.has(name)) return false;
  }
  for (const [name, va] of a) {
    if (!b.has(name)) continue;
    if (!paramValueEq(va, b.get(name)!)) return false;
  }
  return true;
}

function headersEqual(a: Map<string, string>, b: Map<string, string>): boolean {
  if (a.size !== b.size) return false;
  const lowerB = new Map<string, string>();
  for (const [k, v] of b) lowerB.set(unescapeUriPart(k).toLowerCase(), unescapeUriPart(v));
  for (const [k, v] of a) {
    const other = lowerB.get(unescapeUriPart(k).toLowerCase());
    if (other === undefined || other !== unescapeUriPart(v)) return false;
  }
  return true;
}

/** A tel: number without visual separators (RFC 3966 section 4 comparison). */
function telDigits(n: string): string {
  let out = '';
  for (let i = 0; i < n.length; i++) {
    const c = n.charCodeAt(i);
    if (c !== 45 && c !== 46 && c !== 40 && c !== 41) out += n[i];
  }
  return out.toLowerCase();
}

/**
 * URI equivalence, RFC 3261 section 19.1.4: user and password compared case-sensitively after
 * unescaping, host case-insensitively, a port only equals the same explicit port, user/ttl/
 * method/maddr/transport parameters must appear in both or neither, other parameters only
 * compared when present in both, header components must all match.
 */
export function uriEquals(a: SipUri, b: SipUri): boolean {
  if (a.scheme !== b.scheme) return false;
  if (a.scheme === 'tel') {
    return telDigits(unescapeUriPart(a.user ?? '')) === telDigits(unescapeUriPart(b.user ?? '')) && paramsEqual(a.params, b.params);
  }
  if (a.scheme !== 'sip' && a.scheme !== 'sips') return a.user === b.user;
  if ((a.user === undefined) !== (b.user === undefined)) return false;
  if (a.user !== undefined && unescapeUriPart(a.user) !== unescapeUriPart(b.user!)) return false;
  if ((a.password === undefined) !== (b.password === undefined)) return false;
  if (a.password !== undefined && unescapeUriPart(a.password) !== unescapeUriPart(b.password!)) return false;
  if (a.host.toLowerCase() !== b.host.toLowerCase()) return false;
  if (a.port !== b.port) return false;
  return paramsEqual(a.params, b.params) && headersEqual(a.headers, b.headers);
}
