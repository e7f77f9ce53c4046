/**
 * SIP message model (RFC 3261 section 7). A message keeps its header fields in wire order as
 * (canonical name, raw value) pairs; typed views (Via, From, CSeq, ...) are parsed on demand by
 * lib/sip/headers and cached, so a message that is only answered or dropped pays for little.
 */

/** Compact forms, RFC 3261 section 7.3.3 and the IANA registry. */
const COMPACT: Record<string, string> = {
  i: 'call-id', m: 'contact', e: 'content-encoding', l: 'content-length', c: 'content-type',
  f: 'from', s: 'subject', k: 'supported', t: 'to', v: 'via', o: 'event', r: 'refer-to',
  b: 'referred-by', u: 'allow-events', x: 'session-expires', a: 'accept-contact', j: 'reject-contact',
  d: 'request-disposition', y: 'identity',
};

/** Canonical spelling used when serializing a header whose name we know. */
const PRETTY: Record<string, string> = {
  'call-id': 'Call-ID', cseq: 'CSeq', 'www-authenticate': 'WWW-Authenticate', 'mime-version': 'MIME-Version',
  'rack': 'RAck', 'rseq': 'RSeq',
};

/** Lower-case long name for any header name as it appears on the wire (handles compact forms). */
export function canonicalName(name: string): string {
  // Callers mostly pass the canonical name already ('via', 'call-id'): no case mapping then.
  if (name.length > 1 && isLowerAscii(name)) return name;
  const lower = name.toLowerCase();
  if (lower.length === 1) return COMPACT[lower] ?? lower;
  return lower;
}

/** True when `s` has no upper-case letter and nothing outside printable ASCII. */
function isLowerAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 33 || c > 126 || (c >= 65 && c <= 90)) return false;
  }
  return true;
}

const prettyCache = new Map<string, string>();
/** "content-length" -> "Content-Length", with the irregular ones (Call-ID, CSeq, ...) spelled right. */
export function prettyName(canonical: string): string {
  let p = prettyCache.get(canonical);
  if (p !== undefined) return p;
  p = PRETTY[canonical] ?? canonical.replace(/(^|-)([a-z])/g, (_m, sep: string, ch: string) => sep + ch.toUpperCase());
  if (prettyCache.size < 1024) prettyCache.set(canonical, p);
  return p;
}

/**
 * Ordered header fields. Names are stored canonical (lower-case, long form); values are stored
 * raw (trimmed, folded lines unfolded). A header line with a comma-separated list stays one entry.
 */
export class Headers {
  readonly names: string[] = [];
  readonly values: string[] = [];

  get size(): number {
    return this.names.length;
  }

  /** First value of the header, or undefined. */
  get(name: string): string | undefined {
    const n = canonicalName(name);
    const i = this.names.indexOf(n);
    return i < 0 ? undefined : this.values[i];
  }

  /** Every header line of that name, in order (no comma splitting). */
  getAll(name: string): string[] {
    const n = canonicalName(name);
    const out: string[] = [];
    for (let i = 0; i < this.names.length; i++) if (this.names[i] === n) out.push(this.values[i]!);
    return out;
  }

  /** Every element of a list-valued header (Via, Contact, Route, Allow, ...): lines split on top-level commas. */
  list(name: string): string[] {
    const out: string[] = [];
    for (const line of this.getAll(name)) splitTopLevelCommas(line, out);
    return out;
  }

  has(name: string): boolean {
    return this.names.indexOf(canonicalName(name)) >= 0;
  }

  count(name: string): number {
    const n = canonicalName(name);
    let c = 0;
    for (const x of this.names) if (x === n) c++;
    return c;
  }

  append(name: string, value: string): this {
    this.names.push(canonicalName(name));
    this.values.push(value);
    return this;
  }

  /** Insert before every other header line (used for a new top Via or Record-Route). */
  prepend(name: string, value: string): this {
    this.names.unshift(canonicalName(name));
    this.values.unshift(value);
    return this;
  }

  /** Replace all lines of that name by one line (appended where the first one stood). */
  set(name: string, value: string): this {
    const n = canonicalName(name);
    const i = this.names.indexOf(n);
    if (i < 0) return this.append(n, value);
    this.values[i] = value;
    for (let j = this.names.length - 1; j > i; j--) {
      if (this.names[j] === n) {
        this.names.splice(j, 1);
        this.values.splice(j, 1);
      }
    }
    return this;
  }

  delete(name: string): this {
    const n = canonicalName(name);
    for (let j = this.names.length - 1; j >= 0; j--) {
      if (this.names[j] === n) {
        this.names.splice(j, 1);
        this.values.splice(j, 1);
      }
    }
    return this;
  }

  /** Removes the first element of a list-valued header (e.g. the top Via), keeping the rest. */
  shiftListElement(name: string): string | undefined {
    const n = canonicalName(name);
    const i = this.names.indexOf(n);
    if (i < 0) return undefined;
    const parts = splitTopLevelCommas(this.values[i]!, []);
    const first = parts.shift();
    if (parts.length === 0) {
      this.names.splice(i, 1);
      this.values.splice(i, 1);
    } else {
      this.values[i] = parts.join(', ');
    }
    return first;
  }

  clone(): Headers {
    const h = new Headers();
    h.names.push(...this.names);
    h.values.push(...this.values);
    return h;
  }
}

/**
 * Splits a header value on commas that are outside quoted strings and <...> (RFC 3261 section 7.3.1),
 * trimming each element. Pushes onto `out` and returns it.
 */
export function splitTopLevelCommas(value: string, out: string[]): string[] {
  let start = 0;
  let inQuote = false;
  let inAngle = false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (inQuote) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inQuote = false;
    } else if (c === 34) inQuote = true;
    else if (c === 60 /* < */) inAngle = true;
    else if (c === 62 /* > */) inAngle = false;
    else if (c === 44 /* , */ && !inAngle) {
      const part = value.slice(start, i).trim();
      if (part) out.push(part);
      start = i + 1;
    }
  }
  const last = value.slice(start).trim();
  if (last) out.push(last);
  return out;
}

export interface SipRequest {
  readonly kind: 'request';
  method: string;
  /** Request-URI exactly as received (or as we will send it). */
  uri: string;
  version: string;
  headers: Headers;
  body: Buffer;
}

export interface SipResponse {
  readonly kind: 'response';
  status: number;
  reason: string;
  version: string;
  headers: Headers;
  body: Buffer;
}

export type SipMessage = SipRequest | SipResponse;

const EMPTY = Buffer.alloc(0);

export function createRequest(method: string, uri: string, headers = new Headers(), body: Buffer = EMPTY): SipRequest {
  return { kind: 'request', method, uri, version: 'SIP/2.0', headers, body };
}

export function createResponseObject(status: number, reason: string, headers = new Headers(), body: Buffer = EMPTY): SipResponse {
  return { kind: 'response', status, reason, version: 'SIP/2.0', headers, body };
}

/** Default reason phrases (RFC 3261 section 21 and extensions). */
export const REASON: Record<number, string> = {
  100: 'Trying', 180: 'Ringing', 181: 'Call Is Being Forwarded', 182: 'Queued', 183: 'Session Progress',
  200: 'OK', 202: 'Accepted', 204: 'No Notification',
  300: 'Multiple Choices', 301: 'Moved Permanently', 302: 'Moved Temporarily', 305: 'Use Proxy', 380: 'Alternative Service',
  400: 'Bad Request', 401: 'Unauthorized', 402: 'Payment Required', 403: 'Forbidden', 404: 'Not Found',
  405: 'Method Not Allowed', 406: 'Not Acceptable', 407: 'Proxy Authentication Required', 408: 'Request Timeout',
  410: 'Gone', 413: 'Request Entity Too Large', 414: 'Request-URI Too Long', 415: 'Unsupported Media Type',
  416: 'Unsupported URI Scheme', 420: 'Bad Extension', 421: 'Extension Required', 423: 'Interval Too Brief',
  480: 'Temporarily Unavailable', 481: 'Call/Transaction Does Not Exist', 482: 'Loop Detected', 483: 'Too Many Hops',
  484: 'Address Incomplete', 485: 'Ambiguous', 486: 'Busy Here', 487: 'Request Terminated', 488: 'Not Acceptable Here',
  489: 'Bad Event', 491: 'Request Pending', 493: 'Undecipherable',
  500: 'Server Internal Error', 501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable',
  504: 'Server Time-out', 505: 'Version Not Supported', 513: 'Message Too Large',
  600: 'Busy Everywhere', 603: 'Decline', 604: 'Does Not Exist Anywhere', 606: 'Not Acceptable',
};

/**
 * A response to `req` built as RFC 3261 section 8.2.6.2 says: Via, From, Call-ID and CSeq copied,
 * To copied with a tag added when `toTag` is given and the To has none.
 */
export function createResponse(req: SipRequest, status: number, reason?: string, toTag?: string): SipResponse {
  const h = new Headers();
  const src = req.headers;
  for (let i = 0; i < src.names.length; i++) {
    const n = src.names[i]!;
    if (n === 'via' || n === 'from' || n === 'call-id' || n === 'cseq') {
      h.names.push(n);
      h.values.push(src.values[i]!);
    } else if (n === 'to') {
      let v = src.values[i]!;
      if (toTag && status > 100 && !hasTagParam(v)) v = `${v};tag=${toTag}`;
      h.names.push(n);
      h.values.push(v);
    }
  }
  return createResponseObject(status, reason ?? REASON[status] ?? 'Unknown', h);
}

/** True when a From/To value carries a tag parameter outside its <...> and quotes. */
export function hasTagParam(value: string): boolean {
  const gt = value.lastIndexOf('>');
  const params = gt >= 0 ? value.slice(gt + 1) : value;
  return /;\s*tag\s*=/i.test(params);
}

/**
 * Serialized messages are written back to back into slabs of this size rather than each into a
 * Buffer of its own: Node's Buffer.from takes a fresh 8 KiB pool every dozen messages, and each
 * new ArrayBuffer costs far more than the copy. The views do not pin a slab for long: what a
 * transaction keeps for retransmission is copied (RetainedBytes), and only messages too big for
 * that copy get a Buffer of their own below.
 */
const SLAB_SIZE = 128 * 1024;
/** Messages whose bytes may exceed this (an upper bound) are serialized into a Buffer of their own. */
const SLAB_MAX_MESSAGE = 8 * 1024;
let slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
let slabUsed = 0;

/**
 * Serializes a message to wire bytes. Content-Length is always written from the body
 * (RFC 3261 section 18.3: mandatory on stream transports, harmless on UDP).
 */
export function serialize(msg: SipMessage): Buffer {
  let head =
    msg.kind === 'request' ? `${msg.method} ${msg.uri} ${msg.version}\r\n` : `${msg.version} ${msg.status} ${msg.reason}\r\n`;
  const { names, values } = msg.headers;
  for (let i = 0; i < names.length; i++) {
    const n = names[i]!;
    if (n === 'content-length') continue;
    head += `${prettyName(n)}: ${values[i]}\r\n`;
  }
  const body = msg.body;
  head += `Content-Length: ${body.length}\r\n\r\n`;
  // UTF-8 takes at most 3 bytes per UTF-16 code unit.
  const bound = head.length * 3 + body.length;
  if (bound > SLAB_MAX_MESSAGE) {
    const headBuf = Buffer.from(head, 'utf8');
    return body.length === 0 ? headBuf : Buffer.concat([headBuf, body], headBuf.length + body.length);
  }
  if (slabUsed + bound > SLAB_SIZE) {
    slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
    slabUsed = 0;
  }
  const start = slabUsed;
  let end = start + slab.write(head, start);
  if (body.length > 0) {
    slab.set(body, end);
    end += body.length;
  }
  // Next message on an 8-byte boundary, as Node's own pool does.
  slabUsed = (end + 7) & ~7;
  return slab.subarray(start, end);
}
