/**
 * The `;name=value` parameter list shared by Via, From/To/Contact, Reason, Content-Type ...
 * (RFC 3261 section 25.1: generic-param = token [ EQUAL gen-value ], gen-value = token / host /
 * quoted-string). SEMI and EQUAL allow whitespace on both sides.
 *
 * Names are stored lower-case (parameter names compare case-insensitively); values are kept as
 * written, quoted-strings with their quotes, so formatting a parsed list gives the same text back.
 * A parameter without a value maps to null. When a name repeats, the first occurrence wins.
 */
import { isTokenChar, scanQuoted, skipWs, trimEnd, quote } from './lex.js';

export type Params = Map<string, string | null>;

const COMMON = ['tag', 'branch', 'rport', 'received', 'transport', 'lr', 'expires', 'q', 'maddr', 'ttl', 'user', 'method'];

/** s[start, end) lower-cased; the common parameter names come back as shared constants. */
function lowerName(s: string, start: number, end: number): string {
  const n = end - start;
  for (const name of COMMON) {
    if (name.length !== n) continue;
    let k = 0;
    while (k < n && (s.charCodeAt(start + k) | 32) === name.charCodeAt(k)) k++;
    if (k === n) return name;
  }
  return s.slice(start, end).toLowerCase();
}

/** Ends an unquoted gen-value: whitespace, ";", ",", quote and angle brackets. */
function endsValue(c: number): boolean {
  return c === 59 || c === 44 || c === 32 || c === 9 || c === 34 || c === 60 || c === 62;
}

/**
 * Parses s[i, end), which must be nothing but parameters (each introduced by ";"), into `out`.
 * Returns false on any syntax error (an empty name such as ";;", a dangling "=", a stray character).
 */
export function parseParams(s: string, i: number, end: number, out: Params): boolean {
  return scanParams(s, i, end, out);
}

/**
 * Bounds of the value of the first "rport" parameter seen by the last checkParams call:
 * rportStart -2 when there was none, -1 when it had no value.
 */
export let rportStart = -2;
export let rportEnd = -2;
/** Likewise for the first "received" parameter. */
export let receivedStart = -2;

/**
 * parseParams without building the map: the same syntax check, allocating nothing. It also notes
 * where the first rport parameter's value is (rportStart/rportEnd), which the Via check needs.
 */
export function checkParams(s: string, i: number, end: number): boolean {
  rportStart = -2;
  rportEnd = -2;
  receivedStart = -2;
  return scanParams(s, i, end, null);
}

function isRport(s: string, start: number, end: number): boolean {
  return end - start === 5 && (s.charCodeAt(start) | 32) === 114 && (s.charCodeAt(start + 1) | 32) === 112 &&
    (s.charCodeAt(start + 2) | 32) === 111 && (s.charCodeAt(start + 3) | 32) === 114 && (s.charCodeAt(start + 4) | 32) === 116;
}

function isReceived(s: string, start: number, end: number): boolean {
  if (end - start !== 8) return false;
  for (let k = 0; k < 8; k++) if ((s.charCodeAt(start + k) | 32) !== RECEIVED.charCodeAt(k)) return false;
  return true;
}
const RECEIVED = 'received';

function scanParams(s: string, i: number, end: number, out: Params | null): boolean {
  end = trimEnd(s, i, end);
  i = skipWs(s, i, end);
  while (i < end) {
    if (s.charCodeAt(i) !== 59 /* ; */) return false;
    i = skipWs(s, i + 1, end);
    const nameStart = i;
    while (i < end && isTokenChar(s.charCodeAt(i))) i++;
    if (i === nameStart) return false;
    const nameEnd = i;
    i = skipWs(s, i, end);
    let valueStart = -1;
    let valueEnd = -1;
    if (i < end && s.charCodeAt(i) === 61 /* = */) {
      i = skipWs(s, i + 1, end);
      valueStart = i;
      if (i < end && s.charCodeAt(i) === 34) {
        const q = scanQuoted(s, i, end);
        if (q < 0) return false;
        i = q;
      } else {
        while (i < end && !endsValue(s.charCodeAt(i))) i++;
      }
      if (i === valueStart) return false;
      valueEnd = i;
      i = skipWs(s, i, end);
    }
    if (out !== null) {
      const name = lowerName(s, nameStart, nameEnd);
      if (!out.has(name)) out.set(name, valueStart < 0 ? null : s.slice(valueStart, valueEnd));
    } else if (rportStart === -2 && isRport(s, nameStart, nameEnd)) {
      rportStart = valueStart;
      rportEnd = valueEnd;
    } else if (receivedStart === -2 && isReceived(s, nameStart, nameEnd)) {
      receivedStart = valueStart;
    }
  }
  return true;
}

/** ";a=b;c" for a parameter map (values written as stored). */
export function formatParams(params: Params): string {
  let out = '';
  for (const [name, value] of params) out += value === null ? `;${name}` : `;${name}=${value}`;
  return out;
}

/**
 * A parameter value as text: quoted values are unquoted and unescaped, token values returned
 * as they are, a valueless parameter gives undefined.
 */
export function paramText(value: string | null | undefined): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (value.length >= 2 && value.charCodeAt(0) === 34 && value.charCodeAt(value.length - 1) === 34) {
    let out = '';
    for (let i = 1; i < value.length - 1; i++) {
      if (value.charCodeAt(i) === 92 && i + 1 < value.length - 1) i++;
      out += value[i];
    }
    return out;
  }
  return value;
}

/** A gen-value for `text`: kept bare when it is a token, quoted otherwise. */
export function paramValue(text: string): string {
  if (text.length === 0) return '""';
  for (let i = 0; i < text.length; i++) if (!isTokenChar(text.charCodeAt(i))) return quote(text);
  return text;
}
