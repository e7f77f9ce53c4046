/**
 * name-addr / addr-spec values of From, To, Contact, Route, Record-Route, Reply-To
 * (RFC 3261 sections 20.10, 20.20, 20.39 and 25.1):
 *   ( name-addr / addr-spec ) *( SEMI param )    name-addr = [ display-name ] LAQUOT addr-spec RAQUOT
 * In the bare addr-spec form the parameters belong to the header, not to the URI (section 20.10),
 * so "sip:a@b;tag=x" has uri "sip:a@b" and params {tag: x}.
 */
import type { SipMessage } from '../message.js';
import { scanQuoted, skipWs, trimEnd, unquote, quote } from './lex.js';
import { checkParams, parseParams, formatParams, type Params } from './params.js';

export interface NameAddr {
  /** Display name: unquoted and unescaped when it was a quoted-string, else the trimmed text. */
  displayName?: string;
  /** The URI as written (not parsed: see lib/sip/uri.ts). */
  uri: string;
  /** Header parameters (tag, expires, q, ...), names lower-case, values as written. */
  params: Params;
}

/** True when s[start, end) starts like "scheme:" with a non-empty rest and holds no blanks. */
function looksLikeUri(s: string, start: number, end: number): boolean {
  let i = start;
  const first = s.charCodeAt(i);
  if (!((first >= 65 && first <= 90) || (first >= 97 && first <= 122))) return false;
  for (i++; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c === 58) break;
    const ok = (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 43 || c === 45 || c === 46;
    if (!ok) return false;
  }
  if (i + 1 >= end) return false;
  for (let j = i + 1; j < end; j++) {
    const c = s.charCodeAt(j);
    if (c <= 32 || c === 34 || c === 60 || c === 62) return false;
  }
  return true;
}

// Where the last successful scanNameAddr found the parts (module state, so checking allocates nothing).
let naDisplayKind = 0; // 0: none, 1: quoted-string [naDisplayStart, naDisplayEnd), 2: unquoted text
let naDisplayStart = 0;
let naDisplayEnd = 0;
let naUriStart = 0;
let naUriEnd = 0;

/**
 * The syntax of one name-addr / addr-spec element s[start, end), parameters going to `params`
 * (or only checked when it is null). Leaves the display name and URI bounds in the na* variables.
 */
function scanNameAddr(s: string, start: number, end: number, params: Params | null): boolean {
  end = trimEnd(s, start, end);
  let i = skipWs(s, start, end);
  if (i >= end) return false;
  naDisplayKind = 0;
  let laquot: number;
  if (s.charCodeAt(i) === 34) {
    const q = scanQuoted(s, i, end);
    if (q < 0) return false; // unbalanced quote (RFC 4475 quotbal)
    naDisplayKind = 1;
    naDisplayStart = i;
    naDisplayEnd = q;
    laquot = skipWs(s, q, end);
    if (s.charCodeAt(laquot) !== 60) return false;
  } else {
    laquot = s.indexOf('<', i);
    if (laquot >= end) laquot = -1;
    if (laquot >= 0) {
      // An unquoted display name is a run of tokens; anything here but a quote is tolerated.
      const nameEnd = trimEnd(s, i, laquot);
      for (let j = i; j < nameEnd; j++) if (s.charCodeAt(j) === 34) return false;
      if (nameEnd > i) {
        naDisplayKind = 2;
        naDisplayStart = i;
        naDisplayEnd = nameEnd;
      }
    }
  }
  if (laquot >= 0) {
    const raquot = s.indexOf('>', laquot + 1);
    if (raquot < 0 || raquot >= end) return false;
    // Blanks just inside the brackets are not legal (RFC 4475 badaspec) but harmless: ignored.
    const uriStart = skipWs(s, laquot + 1, raquot);
    const uriEnd = trimEnd(s, uriStart, raquot);
    if (!looksLikeUri(s, uriStart, uriEnd)) return false;
    if (!(params === null ? checkParams(s, raquot + 1, end) : parseParams(s, raquot + 1, end, params))) return false;
    naUriStart = uriStart;
    naUriEnd = uriEnd;
    return true;
  }
  let semi = s.indexOf(';', i);
  if (semi < 0 || semi > end) semi = end;
  const uriEnd = trimEnd(s, i, semi);
  if (!looksLikeUri(s, i, uriEnd)) return false;
  if (!(params === null ? checkParams(s, semi, end) : parseParams(s, semi, end, params))) return false;
  naDisplayKind = 0;
  naUriStart = i;
  naUriEnd = uriEnd;
  return true;
}

/** True exactly when parseNameAddr(s.slice(start, end)) would not be null; allocates nothing. */
export function isValidNameAddr(s: string, start: number, end: number): boolean {
  return scanNameAddr(s, start, end, null);
}

/** Parses one element (no top-level commas). Null on bad syntax; never throws. */
export function parseNameAddr(value: string): NameAddr | null {
  const params: Params = new Map();
  if (!scanNameAddr(value, 0, value.length, params)) return null;
  const na: NameAddr = { uri: value.slice(naUriStart, naUriEnd), params };
  if (naDisplayKind === 1) na.displayName = unquote(value, naDisplayStart, naDisplayEnd);
  else if (naDisplayKind === 2) na.displayName = value.slice(naDisplayStart, naDisplayEnd);
  return na;
}

/** Always writes the name-addr form, which is safe whatever characters the URI holds. */
export function formatNameAddr(n: NameAddr): string {
  const name = n.displayName !== undefined ? `${quote(n.displayName)} ` : '';
  return `${name}<${n.uri}>${formatParams(n.params)}`;
}

/** The tag parameter of a From/To value, if it has one. */
export function tagOf(value: string): string | undefined {
  const tag = parseNameAddr(value)?.params.get('tag');
  return tag === null || tag === undefined ? undefined : tag;
}

/**
 * All Contact elements of a message; `star` when the value is "*" (RFC 3261 section 10.2.2:
 * then it must be the only element). Null when an element is malformed or "*" is mixed with others.
 */
export function parseContactList(msg: SipMessage): { star: boolean; contacts: NameAddr[] } | null {
  const elements = msg.headers.list('contact');
  const contacts: NameAddr[] = [];
  let star = false;
  for (const element of elements) {
    if (element === '*') {
      star = true;
      continue;
    }
    const na = parseNameAddr(element);
    if (na === null) return null;
    contacts.push(na);
  }
  if (star && (contacts.length > 0 || elements.length > 1)) return null;
  return { star, contacts };
}
