/**
 * Authorization / Proxy-Authorization / WWW-Authenticate / Proxy-Authenticate values
 * (RFC 3261 section 25.1, RFC 7616 section 3, RFC 7235 section 2.1):
 *   credentials = auth-scheme LWS ( auth-param *( COMMA auth-param ) / token68 )
 *   auth-param  = token EQUAL ( token / quoted-string )
 */
import { scanQuoted, scanToken, skipWs, trimEnd, unquote } from './lex.js';

export interface AuthHeader {
  /** The scheme as written ("Digest"); compare it case-insensitively. */
  scheme: string;
  /** Parameter names lower-case; quoted values unquoted and unescaped, token values raw. */
  params: Map<string, string>;
  /** The opaque token68 form ("Basic dXNlcjpw") instead of parameters, if that is what was sent. */
  token68?: string;
}

/** Characters of token68 besides alphanumerics: "-" / "." / "_" / "~" / "+" / "/" and trailing "=". */
function isToken68Char(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45 || c === 46 || c === 95 || c === 126 || c === 43 || c === 47;
}

function parseToken68(s: string, i: number, end: number): string | null {
  const start = i;
  while (i < end && isToken68Char(s.charCodeAt(i))) i++;
  if (i === start) return null;
  while (i < end && s.charCodeAt(i) === 61) i++;
  return i === end ? s.slice(start, end) : null;
}

/**
 * Null on bad syntax, including a parameter given twice (RFC 7616 section 3.4 allows each once;
 * a second value would be ambiguous). Empty list elements (",,") are skipped. Never throws.
 */
export function parseAuthHeader(value: string): AuthHeader | null {
  const s = value;
  const end = trimEnd(s, 0, s.length);
  const start = skipWs(s, 0, end);
  const schemeEnd = scanToken(s, start, end);
  if (schemeEnd === start) return null;
  const result: AuthHeader = { scheme: s.slice(start, schemeEnd), params: new Map() };
  if (schemeEnd === end) return result;
  let i = skipWs(s, schemeEnd, end);
  if (i === schemeEnd) return null;

  // token68 when the first item is not "name =" (RFC 7235 section 2.1).
  const probeEnd = scanToken(s, i, end);
  const afterName = skipWs(s, probeEnd, end);
  if (probeEnd === i || s.charCodeAt(afterName) !== 61 || (afterName + 1 < end && s.charCodeAt(afterName + 1) === 61) || afterName + 1 >= end) {
    const t = parseToken68(s, i, end);
    if (t === null) return null;
    result.token68 = t;
    return result;
  }

  while (i < end) {
    const c0 = s.charCodeAt(i);
    if (c0 === 44) {
      i = skipWs(s, i + 1, end);
      continue;
    }
    const nameEnd = scanToken(s, i, end);
    if (nameEnd === i) return null;
    const name = s.slice(i, nameEnd).toLowerCase();
    i = skipWs(s, nameEnd, end);
    if (s.charCodeAt(i) !== 61) return null;
    i = skipWs(s, i + 1, end);
    let v: string;
    if (s.charCodeAt(i) === 34) {
      const q = scanQuoted(s, i, end);
      if (q < 0) return null;
      v = unquote(s, i, q);
      i = q;
    } else {
      // Token values run to the next comma or blank; being liberal here accepts the unquoted
      // uri=sip:... that some clients send.
      let valueEnd = i;
      while (valueEnd < end) {
        const c = s.charCodeAt(valueEnd);
        if (c === 44 || c === 32 || c === 9 || c === 34) break;
        valueEnd++;
      }
      if (valueEnd === i) return null;
      v = s.slice(i, valueEnd);
      i = valueEnd;
    }
    if (result.params.has(name)) return null;
    result.params.set(name, v);
    i = skipWs(s, i, end);
    if (i < end) {
      if (s.charCodeAt(i) !== 44) return null;
      i = skipWs(s, i + 1, end);
    }
  }
  return result;
}
