/**
 * Character classes and tiny scanners shared by the SIP header parsers (RFC 3261 section 25.1).
 * Everything works on (string, index) pairs with charCodeAt so no parser allocates while scanning.
 */

/** token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~") */
const TOKEN = new Uint8Array(128);
for (let c = 48; c <= 57; c++) TOKEN[c] = 1;
for (let c = 65; c <= 90; c++) TOKEN[c] = 1;
for (let c = 97; c <= 122; c++) TOKEN[c] = 1;
for (const ch of "-.!%*_+`'~") TOKEN[ch.charCodeAt(0)] = 1;

export function isTokenChar(c: number): boolean {
  return c < 128 && TOKEN[c] === 1;
}

/** True when the whole string is a non-empty token. */
export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) if (!isTokenChar(s.charCodeAt(i))) return false;
  return true;
}

/** Index of the first non-token character at or after `i` (or `end`). */
export function scanToken(s: string, i: number, end: number): number {
  while (i < end && isTokenChar(s.charCodeAt(i))) i++;
  return i;
}

export function isWsp(c: number): boolean {
  return c === 32 || c === 9;
}

/** Skips SP / HT (folded lines are already unfolded to one SP by the message parser). */
export function skipWs(s: string, i: number, end: number): number {
  while (i < end) {
    const c = s.charCodeAt(i);
    if (c !== 32 && c !== 9) break;
    i++;
  }
  return i;
}

/** Index one past the last non-SP/HT character of s[start, end). */
export function trimEnd(s: string, start: number, end: number): number {
  while (end > start) {
    const c = s.charCodeAt(end - 1);
    if (c !== 32 && c !== 9) break;
    end--;
  }
  return end;
}

export function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

/**
 * Reads an unsigned decimal s[start, end) made only of digits. Returns -1 when it is empty or
 * has another character, -2 when it exceeds `max` (leading zeros allowed: "0068" is 68).
 */
export function parseDecimal(s: string, start: number, end: number, max: number): number {
  if (start >= end) return -1;
  let n = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    n = n * 10 + (c - 48);
    // Checked per digit so a long run of digits never loses precision before the test.
    if (n > max) {
      for (let j = i + 1; j < end; j++) {
        const d = s.charCodeAt(j);
        if (d < 48 || d > 57) return -1;
      }
      return -2;
    }
  }
  return n;
}

/**
 * Given s[i] === '"', returns the index just past the closing quote of the quoted-string,
 * honouring quoted-pair backslash escapes, or -1 when the quote is never closed.
 */
export function scanQuoted(s: string, i: number, end: number): number {
  for (let j = i + 1; j < end; j++) {
    const c = s.charCodeAt(j);
    if (c === 92 /* \ */) j++;
    else if (c === 34 /* " */) return j + 1;
  }
  return -1;
}

/** Content of a quoted-string s[start, end) (quotes included) with quoted-pairs resolved. */
export function unquote(s: string, start: number, end: number): string {
  const inner = s.slice(start + 1, end - 1);
  if (inner.indexOf('\\') < 0) return inner;
  let out = '';
  for (let i = 0; i < inner.length; i++) {
    const c = inner.charCodeAt(i);
    if (c === 92 && i + 1 < inner.length) {
      out += inner[i + 1];
      i++;
    } else out += inner[i];
  }
  return out;
}

/** A quoted-string for `text`, escaping backslash and double quote (RFC 3261 section 25.1). */
export function quote(text: string): string {
  let out = '"';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 34 || c === 92) out += '\\';
    out += text[i];
  }
  return out + '"';
}

/**
 * Index of the first top-level comma in s[i, end): commas inside quoted strings and <...>
 * do not count. Returns `end` when there is none.
 */
export function findTopLevelComma(s: string, i: number, end: number): number {
  let inAngle = false;
  for (; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c === 34) {
      const q = scanQuoted(s, i, end);
      if (q < 0) return end;
      i = q - 1;
    } else if (c === 60) inAngle = true;
    else if (c === 62) inAngle = false;
    else if (c === 44 && !inAngle) return i;
  }
  return end;
}
