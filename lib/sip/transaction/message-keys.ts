/**
 * The few header facts the transaction layer needs (top Via, branch, sent-by, CSeq, tags), read
 * straight from the raw `Headers`. Kept in one place so they can later be swapped for the shared
 * typed header parsers. None of these throw: a missing or malformed field reads as undefined.
 */
import { randomBytes } from 'node:crypto';
import type { SipMessage, SipRequest } from '../message.js';

/** RFC 3261 §8.1.1.7: branches of RFC 3261 implementations start with this. */
export const MAGIC_COOKIE = 'z9hG4bK';

/** The top Via element: the first Via line up to its first top-level comma. */
export function topVia(msg: SipMessage): string | undefined {
  const line = msg.headers.get('via');
  if (line === undefined) return undefined;
  let inQuote = false;
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (inQuote) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inQuote = false;
    } else if (c === 34) inQuote = true;
    else if (c === 44 /* , */) return line.slice(0, i).trim();
  }
  return line.trim();
}

/**
 * Value of a `;name=value` parameter in `value` starting the search at `from`, matched
 * case-insensitively on the name ('' for a parameter without value, undefined when absent).
 * `lowerName` must already be lower case. Compares in place: only the result is allocated.
 */
export function paramValue(value: string, lowerName: string, from = 0): string | undefined {
  const len = value.length;
  let i = value.indexOf(';', from);
  while (i >= 0) {
    let p = i + 1;
    while (p < len && isSpace(value.charCodeAt(p))) p++;
    let n = 0;
    while (n < lowerName.length && p + n < len && (value.charCodeAt(p + n) | 0x20) === lowerName.charCodeAt(n)) n++;
    const next = value.indexOf(';', i + 1);
    if (n === lowerName.length) {
      let q = p + n;
      while (q < len && isSpace(value.charCodeAt(q))) q++;
      const end = next < 0 ? len : next;
      if (q === end) return '';
      if (value.charCodeAt(q) === 61 /* = */) return value.slice(q + 1, end).trim();
    }
    i = next;
  }
  return undefined;
}

export function viaBranch(via: string): string | undefined {
  return paramValue(via, 'branch');
}

/**
 * sent-by of a Via element ("host[:port]", lower-cased). The element is
 * `SIP / 2.0 / transport LWS sent-by *(; param)`, RFC 3261 §20.42.
 */
export function viaSentBy(via: string): string | undefined {
  // Works on index bounds within `via`: one slice (plus one more when there is upper case).
  const semi = via.indexOf(';');
  const end = semi < 0 ? via.length : semi;
  if (end === 0) return undefined;
  const lastSlash = via.lastIndexOf('/', end - 1);
  if (lastSlash < 0) return undefined;
  let i = lastSlash + 1;
  while (i < end && isSpace(via.charCodeAt(i))) i++;
  while (i < end && !isSpace(via.charCodeAt(i))) i++; // transport token
  const sentBy = via.slice(i, end).trim();
  return sentBy.length === 0 ? undefined : sentBy.toLowerCase();
}

function isSpace(c: number): boolean {
  return c === 32 || c === 9 || c === 13 || c === 10;
}

/** Method of the CSeq header ("4711 INVITE" -> "INVITE"). */
export function cseqMethod(msg: SipMessage): string | undefined {
  const v = msg.headers.get('cseq');
  if (v === undefined) return undefined;
  const t = v.trim();
  let i = 0;
  while (i < t.length && !isSpace(t.charCodeAt(i))) i++;
  const m = t.slice(i).trim();
  return m.length === 0 ? undefined : m;
}

/** Sequence number of the CSeq header as written ("4711 INVITE" -> "4711"). */
export function cseqNumber(msg: SipMessage): string | undefined {
  const v = msg.headers.get('cseq');
  if (v === undefined) return undefined;
  const t = v.trim();
  let i = 0;
  while (i < t.length && !isSpace(t.charCodeAt(i))) i++;
  return i === 0 ? undefined : t.slice(0, i);
}

/** The tag parameter of a From/To value, looked for after the name-addr's closing '>'. */
export function tagOf(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const gt = value.lastIndexOf('>');
  return paramValue(value, 'tag', gt < 0 ? 0 : gt);
}

export function toTag(msg: SipMessage): string | undefined {
  return tagOf(msg.headers.get('to'));
}

export function fromTag(msg: SipMessage): string | undefined {
  return tagOf(msg.headers.get('from'));
}

/**
 * RFC 3261 §17.2.3 fallback for RFC 2543 peers (no magic cookie): Request-URI, To tag, From tag,
 * Call-ID, CSeq and top Via. For INVITE (and the ACK or CANCEL that refer to it) the To tag is
 * left out: the INVITE usually has none while its ACK carries the tag of our response, which the
 * caller checks separately.
 */
export function legacyServerKey(req: SipRequest, via: string, method: string): string {
  const base =
    'L\n' + req.uri + '\n' + (fromTag(req) ?? '') + '\n' + (req.headers.get('call-id') ?? '') + '\n' +
    (cseqNumber(req) ?? '') + '\n' + method + '\n' + via;
  return method === 'INVITE' ? base : base + '\n' + (toTag(req) ?? '');
}

/**
 * A string with the content of `s` that shares no memory with the string `s` was cut from.
 * Header values are slices of the whole message text (V8 keeps a substring of 13 or more
 * characters as a view on its parent), so a table key kept as such a slice would keep the whole
 * request alive for as long as the transaction. Shorter strings are always copies already.
 */
export function detach(s: string): string {
  if (s.length < 13) return s;
  const copy = s.slice(0, 1) + s.slice(1);
  // Reading a character flattens the concatenation into a new flat string in place; the garbage
  // collector then drops the concatenation's shell. The sink keeps the read from being optimized away.
  flattenSink = copy.charCodeAt(0);
  return copy;
}
let flattenSink = 0;

const METHODS = new Map<string, string>(
  ['REGISTER', 'OPTIONS', 'INVITE', 'ACK', 'BYE', 'CANCEL', 'INFO', 'UPDATE', 'PRACK', 'SUBSCRIBE', 'NOTIFY', 'MESSAGE', 'REFER', 'PUBLISH'].map(
    (m) => [m, m],
  ),
);

/** `method` as one shared string for the common methods (a long-lived field should not hold one copy per request). */
export function internMethod(method: string): string {
  return METHODS.get(method) ?? detach(method);
}

/** RFC 3261 §17.1.3 key of a client transaction. */
export function clientKey(branch: string, method: string): string {
  return branch + '\n' + method;
}

// Unique ids without a crypto call per message: a random per-process prefix and a counter.
const ID_PREFIX = randomBytes(6).toString('hex');
let idCounter = 0;

/** A fresh RFC 3261 branch (magic cookie + unique suffix). */
export function newBranch(): string {
  idCounter = (idCounter + 1) % Number.MAX_SAFE_INTEGER;
  return MAGIC_COOKIE + ID_PREFIX + idCounter.toString(36);
}

/** A fresh To tag. */
export function newTag(): string {
  idCounter = (idCounter + 1) % Number.MAX_SAFE_INTEGER;
  return ID_PREFIX + idCounter.toString(36);
}
