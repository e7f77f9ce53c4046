/**
 * name-addr / addr-spec values of From, To, Contact, Route, Record-Route, Reply-To
 * (RFC 3261 sections 20.10, 20.20, 20.39 and 25.1):
 *   ( name-addr / addr-spec ) *( SEMI param )    name-addr = [ display-name ] LAQUOT addr-spec RAQUOT
 * In the bare addr-spec form the parameters belong to the header, not to the URI (section 20.10),
 * so "sip:a@b;tag=x" has uri "sip:a@b" and params {tag: x}.
 */
import type { SipMessage } from '../message.js';
import { scanQuoted, skipWs, trimEnd, unquote, quote } from './lex.js';
import { parseParams, formatParams, type Params } from './params.js';

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

/** Parses one element (no top-level commas). Null on bad syntax; never throws. */
export function parseNameAddr(value: string): NameAddr | null {
  const s = value;
  const end = trimEnd(s, 0, s.length);
  let i = skipWs(s, 0, end);
  if (i >= end) return null;
  let displayName: string | undefined;
  let laquot: number;
  if (s.charCodeAt(i) === 34) {
    const q = scanQuoted(s, i, end);
    if (q < 0) return null; // unbalanced quote (RFC 4475 quotbal)
    displayName = unquote(s, i, q);
    laquot = skipWs(s, q, end);
    if (s.charCodeAt(laquot) !== 60) return null;
  } else {
    laquot = s.indexOf('<', i);
    if (laquot >= end) laquot = -1;
    if (laquot >= 0) {
      // An unquoted display name is a run of tokens; anything here but a quote is tolerated.
      const nameEnd = trimEnd(s, i, laquot);
      for (let j = i; j < nameEnd; j++) if (s.charCodeAt(j) === 34) return null;
      if (nameEnd > i) displayName = s.slice(i, nameEnd);
    }
  }
  const params: Params = new Map();
  if (laquot >= 0) {
    const raquot = s.indexOf('>', laquot + 1);
    if (raquot < 0 || raquot >= end) return null;
    // Blanks just inside the brackets are not legal (RFC 4475 badaspec) but harmless: ignored.
    const uriStart = skipWs(s, laquot + 1, raquot);
    const uriEnd = trimEnd(s, uriStart, raquot);
    if (!looksLikeUri(s, uriStart, uriEnd)) return null;
    if (!parseParams(s, raquot + 1, end, params)) return null;
    const na: NameAddr = { uri: s.slice(uriStart, uriEnd), params };
    if (displayName !== undefined) na.displayName = displayName;
    return na;
  }
  let semi = s.indexOf(';', i);
  if (semi < 0 || semi > end) semi = end;
  const uriEnd = trimEnd(s, i, semi);
  if (!looksLikeUri(s, i, uriEnd)) return null;
  if (!parseParams(s, semi, end, params)) return null;
  return { uri: s.slice(i, uriEnd), params };
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
