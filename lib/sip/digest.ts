/**
 * HTTP Digest authentication as SIP uses it (RFC 3261 §22.4, RFC 7616, RFC 8760): HA1
 * computation, Authorization header parsing, response verification, stateless nonces and
 * challenge values. No PBX knowledge: the registrar decides which HA1 to use.
 */
import * as crypto from 'node:crypto';
import { createHash, createHmac, randomBytes, randomFillSync } from 'node:crypto';

export type DigestAlgorithm = 'MD5' | 'SHA-256';

export interface Credentials {
  scheme: 'Digest';
  username: string;
  realm: string;
  nonce: string;
  uri: string;
  response: string;
  algorithm: DigestAlgorithm | string;
  cnonce?: string;
  qop?: string;
  nc?: string;
  opaque?: string;
}

const HASH_NAME: Record<DigestAlgorithm, string> = { MD5: 'md5', 'SHA-256': 'sha256' };
const HEX_LENGTH: Record<DigestAlgorithm, number> = { MD5: 32, 'SHA-256': 64 };

/** One-shot hashing (Node >= 20.12) is about 2.5x faster than createHash for short inputs. */
const oneShotHash: ((algorithm: string, data: string | Buffer, encoding: 'hex' | 'base64url') => string) | undefined =
  typeof crypto.hash === 'function' ? crypto.hash : undefined;

function hashHex(algorithm: DigestAlgorithm, text: string): string {
  const name = HASH_NAME[algorithm];
  return oneShotHash ? oneShotHash(name, text, 'hex') : createHash(name).update(text, 'utf8').digest('hex');
}

/** Compares two strings of equal length without an early exit. */
function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let k = 0; k < a.length; k++) diff |= a.charCodeAt(k) ^ b.charCodeAt(k);
  return diff === 0;
}

/** HA1 = H(username ":" realm ":" password), RFC 7616 §3.4.2. Lower-case hex. */
export function computeHA1(algorithm: DigestAlgorithm, username: string, realm: string, password: string): string {
  return hashHex(algorithm, `${username}:${realm}:${password}`);
}

/**
 * A fake HA1 for a user that does not exist, stable per (algorithm, user, realm) so that a
 * scanner sees the same behaviour for known and unknown users (the registrar always computes
 * and compares). Same length as a real HA1 for the algorithm.
 */
export function decoyHA1(algorithm: DigestAlgorithm, username: string, realm: string, secret: Buffer): string {
  const mac = createHmac('sha256', secret).update(`decoy-ha1\0${algorithm}\0${username}\0${realm}`, 'utf8').digest('hex');
  return mac.slice(0, HEX_LENGTH[algorithm]);
}

/**
 * The algorithm named in credentials, if we support it. RFC 7616 §3.3 tokens are
 * case-insensitive. The "-sess" variants are never offered in our challenges, so refused.
 */
export function credentialAlgorithm(c: Credentials): DigestAlgorithm | null {
  const a = c.algorithm.toUpperCase();
  if (a === 'MD5') return 'MD5';
  if (a === 'SHA-256') return 'SHA-256';
  return null;
}

// ---------------------------------------------------------------------------------------------
// Authorization / Proxy-Authorization parsing

/** Anything longer is not a credential we would ever accept; refuse rather than scan it. */
const MAX_HEADER_LENGTH = 4096;
const MAX_PARAMS = 32;

const enum Ch {
  Tab = 9,
  Space = 32,
  Quote = 34,
  Comma = 44,
  Equals = 61,
  Backslash = 92,
}

function isWhitespace(c: number): boolean {
  return c === Ch.Space || c === Ch.Tab || c === 13 || c === 10;
}

/** RFC 7230 tchar: a visible ASCII character that is not a delimiter. */
function isTokenChar(c: number): boolean {
  if (c <= 32 || c >= 127) return false;
  // "(),/:;<=>?@[\]{}  are delimiters
  return !(
    c === 34 || c === 40 || c === 41 || c === 44 || c === 47 || c === 58 || c === 59 || c === 60 ||
    c === 61 || c === 62 || c === 63 || c === 64 || c === 91 || c === 92 || c === 93 || c === 123 || c === 125
  );
}

/**
 * Parse the value of an Authorization or Proxy-Authorization header (RFC 3261 §25.1
 * "credentials", RFC 7616 §3.4). Returns null for any other scheme, malformed syntax, a
 * repeated parameter or a missing mandatory parameter. Never throws.
 */
export function parseCredentials(headerValue: string): Credentials | null {
  if (typeof headerValue !== 'string' || headerValue.length > MAX_HEADER_LENGTH) return null;
  const s = headerValue;
  const end = s.length;
  let i = 0;
  while (i < end && isWhitespace(s.charCodeAt(i))) i++;
  const schemeStart = i;
  while (i < end && isTokenChar(s.charCodeAt(i))) i++;
  if (s.slice(schemeStart, i).toLowerCase() !== 'digest') return null;
  if (i >= end || !isWhitespace(s.charCodeAt(i))) return null;

  const params = new Map<string, string>();
  for (;;) {
    while (i < end && isWhitespace(s.charCodeAt(i))) i++;
    if (i >= end) break;
    const nameStart = i;
    while (i < end && isTokenChar(s.charCodeAt(i))) i++;
    if (i === nameStart) return null;
    const name = s.slice(nameStart, i).toLowerCase();
    while (i < end && isWhitespace(s.charCodeAt(i))) i++;
    if (s.charCodeAt(i) !== Ch.Equals) return null;
    i++;
    while (i < end && isWhitespace(s.charCodeAt(i))) i++;
    let value: string;
    if (s.charCodeAt(i) === Ch.Quote) {
      // quoted-string with quoted-pair escapes, RFC 3261 §25.1
      i++;
      const close = s.indexOf('"', i);
      const backslash = s.indexOf('\\', i);
      if (close >= 0 && (backslash < 0 || backslash > close)) {
        // the usual case, no escapes: one slice, no per-character loop
        value = s.slice(i, close);
        i = close + 1;
      } else {
        let out = '';
        let chunkStart = i;
        let closed = false;
        while (i < end) {
          const c = s.charCodeAt(i);
          if (c === Ch.Quote) {
            out += s.slice(chunkStart, i);
            i++;
            closed = true;
            break;
          }
          if (c === Ch.Backslash) {
            if (i + 1 >= end) return null;
            out += s.slice(chunkStart, i);
            chunkStart = i + 1;
            i += 2;
            continue;
          }
          i++;
        }
        if (!closed) return null;
        value = out;
      }
    } else {
      const valueStart = i;
      while (i < end && isTokenChar(s.charCodeAt(i))) i++;
      if (i === valueStart) return null;
      value = s.slice(valueStart, i);
    }
    if (params.has(name) || params.size >= MAX_PARAMS) return null;
    params.set(name, value);
    while (i < end && isWhitespace(s.charCodeAt(i))) i++;
    if (i >= end) break;
    if (s.charCodeAt(i) !== Ch.Comma) return null;
    i++;
  }

  const username = params.get('username');
  const realm = params.get('realm');
  const nonce = params.get('nonce');
  const uri = params.get('uri');
  const response = params.get('response');
  if (username === undefined || realm === undefined || nonce === undefined || uri === undefined || response === undefined) {
    return null;
  }
  const creds: Credentials = {
    scheme: 'Digest',
    username,
    realm,
    nonce,
    uri,
    response,
    algorithm: params.get('algorithm') ?? 'MD5', // RFC 7616 §3.4: absent means MD5
  };
  const qop = params.get('qop');
  const cnonce = params.get('cnonce');
  const nc = params.get('nc');
  const opaque = params.get('opaque');
  // RFC 7616 §3.4: with qop, cnonce and nc MUST be present.
  if (qop !== undefined && (cnonce === undefined || nc === undefined)) return null;
  if (qop !== undefined) creds.qop = qop;
  if (cnonce !== undefined) creds.cnonce = cnonce;
  if (nc !== undefined) creds.nc = nc;
  if (opaque !== undefined) creds.opaque = opaque;
  return creds;
}

// ---------------------------------------------------------------------------------------------
// Response computation

/**
 * The response the client should have sent (RFC 7616 §3.4.1, qop=auth) or, without qop, the
 * RFC 2069 form kept by RFC 3261 §22.4. Returns '' (which matches nothing) when the algorithm
 * or qop is one we do not support (e.g. auth-int, which needs the body).
 */
export function expectedResponse(c: Credentials, method: string, ha1: string): string {
  const algorithm = credentialAlgorithm(c);
  if (algorithm === null) return '';
  const ha2 = cachedHA2(algorithm, method, c.uri);
  if (c.qop === undefined) return hashHex(algorithm, `${ha1}:${c.nonce}:${ha2}`);
  if (c.qop.toLowerCase() !== 'auth' || c.nc === undefined || c.cnonce === undefined) return '';
  return hashHex(algorithm, `${ha1}:${c.nonce}:${c.nc}:${c.cnonce}:${c.qop}:${ha2}`);
}

/**
 * HA2 = H(method ":" digest-uri) (RFC 7616 section 3.4.3) is the same for every REGISTER a phone
 * sends to the same Request-URI: remember a bounded number of them.
 */
const HA2_CACHE_MAX = 4096;
const ha2Cache = new Map<string, string>();
function cachedHA2(algorithm: DigestAlgorithm, method: string, uri: string): string {
  const key = `${algorithm} ${method} ${uri}`;
  let ha2 = ha2Cache.get(key);
  if (ha2 === undefined) {
    ha2 = hashHex(algorithm, `${method}:${uri}`);
    if (ha2Cache.size >= HA2_CACHE_MAX) ha2Cache.clear();
    ha2Cache.set(key, ha2);
  }
  return ha2;
}

/** True when the credentials' response matches; compared in constant time. */
export function verifyResponse(c: Credentials, method: string, ha1: string): boolean {
  const expected = expectedResponse(c, method, ha1);
  if (expected === '' || c.response.length !== expected.length) return false;
  return constantTimeEqual(expected, c.response.toLowerCase());
}

// ---------------------------------------------------------------------------------------------
// Challenges

function quote(value: string): string {
  return value.indexOf('"') < 0 && value.indexOf('\\') < 0 ? `"${value}"` : '"' + value.replace(/["\\]/g, '\\$&') + '"';
}

/**
 * One WWW-Authenticate / Proxy-Authenticate value per algorithm, SHA-256 first then MD5, so a
 * client picks the strongest it supports (RFC 8760 §2.4, RFC 7616 §3.7).
 */
export function challengeHeaderValues(
  realm: string,
  nonce: string,
  opaque: string,
  stale: boolean,
  algorithms: readonly DigestAlgorithm[] = ['SHA-256', 'MD5'],
): string[] {
  const common = `realm=${quote(realm)}, nonce=${quote(nonce)}` + (opaque !== '' ? `, opaque=${quote(opaque)}` : '');
  const tail = `, qop="auth"` + (stale ? ', stale=TRUE' : '');
  return algorithms.map((alg) => `Digest ${common}, algorithm=${alg}${tail}`);
}

// ---------------------------------------------------------------------------------------------
// Nonces

// Layout: base64url(payload) || base64url(mac), payload = 6-byte epoch ms (good until the year
// 10889) || 9 random bytes, mac = SHA-256(secret || payload) truncated to 15 bytes (120 bits).
// A secret-prefix hash is a sound MAC here because every payload has the same length: the
// length-extension forgery it is known for needs a longer message, which is never accepted.
// One hash instead of HMAC's two: issuing and checking nonces is on the REGISTER hot path.
// 15 bytes are exactly 20 base64url characters, so the two halves are handled as strings.
const TIMESTAMP_BYTES = 6;
const RANDOM_BYTES = 9;
const PAYLOAD_BYTES = TIMESTAMP_BYTES + RANDOM_BYTES;
const HALF_CHARS = 20;
const NONCE_PATTERN = /^[A-Za-z0-9_-]{40}$/;
const RANDOM_POOL_BYTES = RANDOM_BYTES * 512;
const NC_PATTERN = /^[0-9a-fA-F]{8}$/;
const SECRET_BYTES = 32;

/** The keyed hash of a nonce payload; single-threaded use only (shared scratch buffer). */
class NonceMac {
  private readonly scratch = Buffer.alloc(SECRET_BYTES + PAYLOAD_BYTES); // secret || payload

  constructor(secret: Buffer) {
    const key = secret.length === SECRET_BYTES ? secret : createHash('sha256').update(secret).digest();
    key.copy(this.scratch, 0);
  }

  /** Loads a payload given as its 20 base64url characters; returns its timestamp. */
  loadPayload(payloadB64: string): number {
    this.scratch.write(payloadB64, SECRET_BYTES, PAYLOAD_BYTES, 'base64url');
    return this.scratch.readUIntBE(SECRET_BYTES, TIMESTAMP_BYTES);
  }

  /** Loads a payload from its parts; returns its 20 base64url characters. */
  buildPayload(timestamp: number, random: Buffer, randomOffset: number): string {
    this.scratch.writeUIntBE(timestamp, SECRET_BYTES, TIMESTAMP_BYTES);
    random.copy(this.scratch, SECRET_BYTES + TIMESTAMP_BYTES, randomOffset, randomOffset + RANDOM_BYTES);
    return this.scratch.toString('base64url', SECRET_BYTES);
  }

  /** The MAC of the loaded payload, as its 20 base64url characters. */
  macOfLoaded(): string {
    const digest = oneShotHash
      ? oneShotHash('sha256', this.scratch, 'base64url')
      : createHash('sha256').update(this.scratch).digest('base64url');
    return digest.slice(0, HALF_CHARS);
  }
}

export interface NonceServiceOptions {
  secret?: Buffer;
  lifetimeMs?: number;
  now?: () => number;
  maxTracked?: number;
}

/**
 * Issues and checks signed nonces (layout above). Every nonce issued is also remembered, with
 * the highest nonce-count (nc) accepted for it, in a table bounded by `maxTracked`: a nonce
 * found there needs no MAC check, and its nc is checked against replay. A nonce no longer in
 * the table (evicted, or issued before a restart) is still recognised by its MAC.
 *
 * Eviction: when the table is full the oldest entry is dropped and the "eviction watermark"
 * rises to that nonce's issue time. From then on any untracked nonce issued at or before the
 * watermark is reported 'stale' by check() and refused by acceptNonceCount(): a client holding
 * it gets a fresh challenge with stale=TRUE and retries without asking its user, and a replay
 * of an evicted nonce can never be accepted. At 20,000 nonces/s and the default 200,000 entries
 * a nonce stays reusable for about 10 s, which covers the REGISTER -> 401 -> REGISTER exchange.
 */
export class NonceService {
  private readonly mac: NonceMac;
  private readonly lifetimeMs: number;
  private readonly now: () => number;
  private readonly maxTracked: number;
  /** nonce -> highest nc accepted (0: none yet). */
  private readonly lastNc = new Map<string, number>();
  /**
   * The tracked nonces in order of issue or first use, a ring of maxTracked slots. A Map cannot
   * serve as this queue: V8 leaves deleted entries in place until it rehashes, so finding the
   * first key after many deletions from the front walks all of them.
   */
  private readonly order: Array<string | undefined> = [];
  private orderHead = 0;
  private evictionWatermark = -1;
  private readonly randomPool = Buffer.alloc(RANDOM_POOL_BYTES);
  private randomOffset = RANDOM_POOL_BYTES;

  constructor(opts: NonceServiceOptions = {}) {
    this.mac = new NonceMac(opts.secret ?? randomBytes(32));
    this.lifetimeMs = opts.lifetimeMs ?? 300_000;
    this.now = opts.now ?? Date.now;
    this.maxTracked = Math.max(1, opts.maxTracked ?? 200_000);
  }

  /** Number of nonces whose nc is being tracked (for metrics and tests). */
  get trackedCount(): number {
    return this.lastNc.size;
  }

  issue(): string {
    if (this.randomOffset >= RANDOM_POOL_BYTES) {
      randomFillSync(this.randomPool);
      this.randomOffset = 0;
    }
    const timestamp = Math.min(Math.max(0, Math.floor(this.now())), 2 ** 48 - 1);
    const payload = this.mac.buildPayload(timestamp, this.randomPool, this.randomOffset);
    this.randomOffset += RANDOM_BYTES;
    const nonce = payload + this.mac.macOfLoaded();
    this.track(nonce, 0);
    return nonce;
  }

  /**
   * True when `nonce` is one this server issued (or accepted) within the last `withinMs` and
   * still tracks: no MAC check, one table lookup (overload control asks it for each new request
   * that carries credentials).
   */
  issuedWithin(nonce: string, withinMs: number): boolean {
    if (!this.lastNc.has(nonce)) return false;
    const issuedAt = timestampOf(nonce);
    return issuedAt !== null && this.now() - issuedAt <= withinMs;
  }

  check(nonce: string): 'ok' | 'stale' | 'invalid' {
    if (typeof nonce !== 'string') return 'invalid';
    if (this.lastNc.has(nonce)) {
      const issuedAt = timestampOf(nonce);
      return issuedAt !== null && this.now() - issuedAt <= this.lifetimeMs ? 'ok' : 'stale';
    }
    if (!NONCE_PATTERN.test(nonce)) return 'invalid';
    const issuedAt = this.mac.loadPayload(nonce.slice(0, HALF_CHARS));
    if (!constantTimeEqual(this.mac.macOfLoaded(), nonce.slice(HALF_CHARS))) return 'invalid';
    if (this.now() - issuedAt > this.lifetimeMs) return 'stale';
    if (issuedAt <= this.evictionWatermark && !this.lastNc.has(nonce)) return 'stale';
    return 'ok';
  }

  /**
   * Records `nc` for `nonce` if it is 8 hex digits (RFC 7616 §3.4) and strictly greater than
   * the last one accepted for that nonce; false otherwise (a replay). Call check() first: this
   * does not verify the nonce's signature again.
   */
  acceptNonceCount(nonce: string, nc: string): boolean {
    if (typeof nc !== 'string' || !NC_PATTERN.test(nc)) return false;
    const count = parseInt(nc, 16);
    const previous = this.lastNc.get(nonce);
    if (previous !== undefined) {
      if (count <= previous || count === 0) return false;
      this.lastNc.set(nonce, count); // keeps its place in the eviction order
      return true;
    }
    const issuedAt = timestampOf(nonce);
    if (issuedAt === null || issuedAt <= this.evictionWatermark) return false;
    if (this.now() - issuedAt > this.lifetimeMs) return false;
    this.track(nonce, count);
    return true;
  }

  private track(nonce: string, count: number): void {
    this.dropExpiredHead();
    if (this.lastNc.size >= this.maxTracked) this.evictOldest();
    const slot = (this.orderHead + this.lastNc.size) % this.maxTracked;
    this.order[slot] = nonce;
    this.lastNc.set(nonce, count);
  }

  /** Entries past their lifetime are useless (check() says stale); drop a few per insert. */
  private dropExpiredHead(): void {
    const cutoff = this.now() - this.lifetimeMs;
    for (let n = 0; n < 4 && this.lastNc.size > 0; n++) {
      const issuedAt = timestampOf(this.order[this.orderHead]!);
      if (issuedAt === null || issuedAt >= cutoff) return;
      this.dropHead();
    }
  }

  private evictOldest(): void {
    const issuedAt = timestampOf(this.order[this.orderHead]!) ?? 0;
    if (issuedAt > this.evictionWatermark) this.evictionWatermark = issuedAt;
    this.dropHead();
  }

  private dropHead(): void {
    this.lastNc.delete(this.order[this.orderHead]!);
    this.order[this.orderHead] = undefined;
    this.orderHead = (this.orderHead + 1) % this.maxTracked;
  }
}

/** base64url character code -> its 6-bit value, or -1. */
const B64URL_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < 64; i++) B64URL_VALUE['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.charCodeAt(i)] = i;

/** The issue time written in a nonce (its first 8 characters = 6 bytes), without checking its MAC. */
function timestampOf(nonce: string): number | null {
  if (nonce.length !== 40) return null;
  let value = 0;
  for (let i = 0; i < 8; i++) {
    const c = nonce.charCodeAt(i);
    const v = c < 128 ? B64URL_VALUE[c]! : -1;
    if (v < 0) return null;
    value = value * 64 + v; // 48 bits: exact in a double
  }
  return value;
}
