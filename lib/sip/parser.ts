/**
 * Wire bytes -> SipMessage (RFC 3261 sections 7, 18.3 and 25; the RFC 4475 / RFC 5118 torture
 * cases). One pass over the header section with indexOf/charCodeAt; typed header views are left
 * to lib/sip/headers except for the checks a server needs before it can answer at all.
 *
 * parseMessage never throws: every fault becomes { ok: false, error, status }, and when the
 * request is readable enough to answer (section 8.2.6) the partly parsed request comes with it.
 */
import { isAscii } from 'node:buffer';
import { Headers, type SipMessage, type SipRequest, type SipResponse } from './message.js';
import { isValidUri } from './uri.js';
import { isValidVia } from './headers/via.js';
import { parseCSeq } from './headers/cseq.js';
import { isValidNameAddr } from './headers/name-addr.js';
import { findTopLevelComma, isTokenChar, parseDecimal, trimEnd } from './headers/lex.js';
import { canonicalHeaderName, knownHeaderName } from './headers/names.js';

export interface ParseLimits {
  maxMessageBytes: number;
  maxHeaders: number;
  maxVia: number;
}

/**
 * Default bounds on what one peer can make us hold. Beyond maxVia a request is answered 513
 * (not 400: the message may be well-formed, like RFC 4475 longreq with its 34 Via values, it is
 * only larger than this server accepts); the limit is configurable (sip.maxVia).
 */
export const DEFAULT_LIMITS: ParseLimits = Object.freeze({ maxMessageBytes: 65536, maxHeaders: 256, maxVia: 32 });

export type ParseResult =
  | { ok: true; message: SipMessage }
  | { ok: false; error: string; status: 400 | 505 | 513; request?: SipRequest };

export type FrameResult =
  | { kind: 'incomplete' }
  | { kind: 'message'; length: number }
  | { kind: 'error'; error: string }
  | { kind: 'keepalive'; length: number };

const EMPTY = Buffer.alloc(0);
const LF = 10;
const CR = 13;

/** Messages up to this size are decoded whole (see parse); bigger ones only up to the body. */
const WHOLE_DECODE_MAX = 4096;
const LF_CRLF = Buffer.from('\n\r\n');
const LF_LF = Buffer.from('\n\n');

/**
 * Index where the body starts (just past the empty line ending the header section), searching
 * buf[from, limit); -1 if there is no empty line. Bare LF line ends are tolerated.
 */
function findBodyStart(buf: Buffer, from: number, limit: number): number {
  // "\n\r\n" finds the usual CRLF CRLF. A bare-LF "\n\n" earlier than that is caught by
  // scanHeaders (it stops at the first empty line), so it is only searched for when there is
  // no CRLF CRLF at all: one native search instead of one per line.
  let body = buf.indexOf(LF_CRLF, from);
  if (body >= 0) body += 3;
  else {
    body = buf.indexOf(LF_LF, from);
    if (body >= 0) body += 2;
  }
  return body >= 0 && body <= limit ? body : -1;
}

/** Like findBodyStart, but exact for bare-LF header sections too (frameStream has no scanHeaders pass). */
function findBodyStartExact(buf: Buffer, from: number, limit: number): number {
  const crlf = buf.indexOf(LF_CRLF, from);
  const lf = buf.indexOf(LF_LF, from);
  let body = -1;
  if (crlf >= 0 && (lf < 0 || crlf < lf)) body = crlf + 3;
  else if (lf >= 0) body = lf + 2;
  return body >= 0 && body <= limit ? body : -1;
}

/** Byte offset in buf, from `from`, just past the `count`-th LF (LF bytes decode 1:1 in UTF-8). */
function offsetAfterLfs(buf: Buffer, from: number, count: number): number {
  let at = from;
  for (let k = 0; k < count; k++) {
    const lf = buf.indexOf(LF, at);
    if (lf < 0) return buf.length;
    at = lf + 1;
  }
  return at;
}

/** Number of LFs in s[0, end). */
function countLfs(s: string, end: number): number {
  let n = 0;
  for (let i = s.indexOf('\n'); i >= 0 && i < end; i = s.indexOf('\n', i + 1)) n++;
  return n;
}

/** Skips the CRLFs a sender may put before the start line (RFC 3261 section 7.5). */
function skipLeadingLineEnds(buf: Buffer): number {
  let i = 0;
  while (i < buf.length && (buf[i] === CR || buf[i] === LF)) i++;
  return i;
}

/** "SIP/2.0", compared case-insensitively. */
function isSip20(s: string, start: number, end: number): boolean {
  return end - start === 7 && startsWithSipSlash(s, start) && s.charCodeAt(start + 4) === 50 && s.charCodeAt(start + 5) === 46 && s.charCodeAt(start + 6) === 48;
}

function startsWithSipSlash(s: string, i: number): boolean {
  return (s.charCodeAt(i) | 32) === 115 && (s.charCodeAt(i + 1) | 32) === 105 && (s.charCodeAt(i + 2) | 32) === 112 && s.charCodeAt(i + 3) === 47;
}

function isBlank(c: number): boolean {
  return c === 32 || c === 9;
}

function nextBlank(s: string, i: number, end: number): number {
  while (i < end && !isBlank(s.charCodeAt(i))) i++;
  return i;
}

function skipBlanks(s: string, i: number, end: number): number {
  while (i < end && isBlank(s.charCodeAt(i))) i++;
  return i;
}

/** Number of top-level comma-separated elements of a list header line. */
function countElements(value: string): number {
  if (value.indexOf(',') < 0) return 1;
  let n = 0;
  let i = 0;
  const end = value.length;
  while (i <= end) {
    const comma = findTopLevelComma(value, i, end);
    if (trimEnd(value, i, comma) > i) n++;
    i = comma + 1;
  }
  return n;
}

interface StartLine {
  kind: 'request' | 'response';
  method: string;
  uri: string;
  status: number;
  reason: string;
  /** First fault of the start line, if any. */
  error?: string;
  errorStatus: 400 | 505;
}

/** Parses the start line s[0, end); null when it is neither a request nor a status line. */
function parseStartLine(s: string, end: number): StartLine | null {
  if (end >= 4 && startsWithSipSlash(s, 0)) {
    const line: StartLine = { kind: 'response', method: '', uri: '', status: 0, reason: '', errorStatus: 400 };
    const versionEnd = nextBlank(s, 0, end);
    if (!isSip20(s, 0, versionEnd)) {
      line.error = `unsupported SIP version ${s.slice(0, versionEnd)}`;
      line.errorStatus = 505;
    }
    const codeStart = skipBlanks(s, versionEnd, end);
    const codeEnd = nextBlank(s, codeStart, end);
    const code = codeEnd - codeStart === 3 ? parseDecimal(s, codeStart, codeEnd, 699) : -1;
    if (code < 100) {
      line.error ??= `invalid status code ${s.slice(codeStart, Math.min(codeEnd, codeStart + 20))}`;
      return line;
    }
    line.status = code;
    // Reason-Phrase = *(reserved / unreserved / escaped / UTF8-NONASCII / UTF8-CONT / SP / HTAB)
    line.reason = codeEnd < end ? s.slice(codeEnd + 1, end) : '';
    return line;
  }

  const methodEnd = nextBlank(s, 0, end);
  if (methodEnd === 0) return null;
  for (let i = 0; i < methodEnd; i++) if (!isTokenChar(s.charCodeAt(i))) return null;
  const line: StartLine = { kind: 'request', method: s.slice(0, methodEnd), uri: '', status: 0, reason: '', errorStatus: 400 };
  // Several blanks between the elements and trailing blanks (RFC 4475 lwsstart, trws) are accepted.
  const uriStart = skipBlanks(s, methodEnd, end);
  const uriEnd = nextBlank(s, uriStart, end);
  const versionStart = skipBlanks(s, uriEnd, end);
  const versionEnd = nextBlank(s, versionStart, end);
  const rest = skipBlanks(s, versionEnd, end);
  line.uri = s.slice(uriStart, uriEnd);
  if (uriStart === uriEnd) line.error = 'request line has no Request-URI';
  else if (versionStart === versionEnd) line.error = 'request line has no SIP-Version';
  else if (rest < end) line.error = 'whitespace inside the Request-URI'; // RFC 4475 lwsruri
  else if (!isSip20(s, versionStart, versionEnd)) {
    if (versionEnd - versionStart > 4 && startsWithSipSlash(s, versionStart)) {
      line.error = `unsupported SIP version ${s.slice(versionStart, versionEnd)}`;
      line.errorStatus = 505;
    } else line.error = 'malformed SIP-Version in the request line';
  } else if (line.uri.charCodeAt(0) === 60) line.error = 'Request-URI must not be enclosed in <>'; // ltgtruri
  else if (!isValidUri(s, uriStart, uriEnd)) line.error = `malformed Request-URI ${line.uri.slice(0, 80)}`;
  return line;
}

/**
 * Parser state for one message: the headers, the first fault, and first index / count of each
 * header the parser checks itself (plain number fields: no per-header objects).
 */
class Scan {
  readonly headers = new Headers();
  error: string | undefined = undefined;
  errorStatus: 400 | 505 | 513 = 400;
  viaFirst = -1;
  viaCount = 0;
  viaValues = 0;
  fromFirst = -1;
  fromCount = 0;
  toFirst = -1;
  toCount = 0;
  callIdFirst = -1;
  callIdCount = 0;
  cseqFirst = -1;
  cseqCount = 0;
  maxForwardsFirst = -1;
  maxForwardsCount = 0;
  contentLengthFirst = -1;
  contentLengthCount = 0;
  contentTypeFirst = -1;
  contentTypeCount = 0;
  /** Distinct Content-Length values, to tell a conflict from a plain repeat. */
  contentLengthsDiffer = false;
}

function fail(scan: Scan, error: string, status: 400 | 505 | 513 = 400): void {
  if (scan.error === undefined) {
    scan.error = error;
    scan.errorStatus = status;
  }
}

/** Notes a header the parser checks itself (names are the interned canonical constants). */
function record(scan: Scan, name: string, value: string, index: number): void {
  switch (name) {
    case 'via':
      if (scan.viaCount++ === 0) scan.viaFirst = index;
      scan.viaValues += countElements(value);
      break;
    case 'from':
      if (scan.fromCount++ === 0) scan.fromFirst = index;
      break;
    case 'to':
      if (scan.toCount++ === 0) scan.toFirst = index;
      break;
    case 'call-id':
      if (scan.callIdCount++ === 0) scan.callIdFirst = index;
      break;
    case 'cseq':
      if (scan.cseqCount++ === 0) scan.cseqFirst = index;
      break;
    case 'max-forwards':
      if (scan.maxForwardsCount++ === 0) scan.maxForwardsFirst = index;
      break;
    case 'content-length':
      if (scan.contentLengthCount > 0 && scan.headers.values[scan.contentLengthFirst] !== value) scan.contentLengthsDiffer = true;
      if (scan.contentLengthCount++ === 0) scan.contentLengthFirst = index;
      break;
    case 'content-type':
      if (scan.contentTypeCount++ === 0) scan.contentTypeFirst = index;
      break;
  }
}

/**
 * Reads the header lines of s[from, end) into scan.headers: "name HCOLON value", folded
 * continuation lines (CRLF + SP/HT) unfolded to one SP, bare LF accepted. Stops at the empty
 * line and returns the index just past it, or `end`.
 */
function scanHeaders(s: string, from: number, end: number, scan: Scan, limits: ParseLimits): number {
  const { names, values } = scan.headers;
  let pos = from;
  while (pos < end) {
    let lf = s.indexOf('\n', pos);
    if (lf < 0 || lf > end) lf = end;
    let lineEnd = lf > pos && s.charCodeAt(lf - 1) === CR ? lf - 1 : lf;
    if (lineEnd === pos) return lf < end ? lf + 1 : end; // the empty line
    const lineStart = pos;
    pos = lf + 1;

    const c0 = s.charCodeAt(lineStart);
    if (isBlank(c0)) {
      fail(scan, 'continuation line without a header');
      continue;
    }
    // Fast path: the text before the first colon (minus blanks) is one of the common names.
    // Else the name is scanned as a token, as RFC 3261 has it.
    let name: string | undefined;
    let nameEnd = lineStart;
    let colon = s.indexOf(':', lineStart);
    if (colon > lineStart && colon < lineEnd) {
      nameEnd = colon;
      while (isBlank(s.charCodeAt(nameEnd - 1)) && nameEnd > lineStart + 1) nameEnd--;
      name = knownHeaderName(s, lineStart, nameEnd);
    }
    if (name === undefined) {
      nameEnd = lineStart;
      while (nameEnd < lineEnd && isTokenChar(s.charCodeAt(nameEnd))) nameEnd++;
      colon = skipBlanks(s, nameEnd, lineEnd);
    }
    if (colon >= lineEnd || s.charCodeAt(colon) !== 58 || nameEnd === lineStart) {
      if (scan.error === undefined) {
        let hasColon = false;
        for (let k = lineStart; k < lineEnd && !hasColon; k++) hasColon = s.charCodeAt(k) === 58;
        const shown = s.slice(lineStart, Math.min(lineEnd, lineStart + 40));
        fail(scan, hasColon ? `invalid header name in: ${shown}` : `header line without a colon: ${shown}`);
      }
      // Skip the bad line's continuation lines too.
      while (pos < end && isBlank(s.charCodeAt(pos))) {
        const next = s.indexOf('\n', pos);
        pos = next < 0 || next > end ? end : next + 1;
      }
      continue;
    }

    let valueStart = colon + 1;
    if (valueStart < lineEnd && isBlank(s.charCodeAt(valueStart))) valueStart = skipBlanks(s, valueStart + 1, lineEnd);
    let value = s.slice(valueStart, trimEnd(s, valueStart, lineEnd));
    // Folded continuation lines (RFC 3261 section 7.3.1): each joins the value with one SP.
    while (pos < end && isBlank(s.charCodeAt(pos))) {
      lf = s.indexOf('\n', pos);
      if (lf < 0 || lf > end) lf = end;
      lineEnd = lf > pos && s.charCodeAt(lf - 1) === CR ? lf - 1 : lf;
      valueStart = skipBlanks(s, pos, lineEnd);
      const pieceEnd = trimEnd(s, valueStart, lineEnd);
      if (pieceEnd > valueStart) {
        const piece = s.slice(valueStart, pieceEnd);
        value = value.length === 0 ? piece : `${value} ${piece}`;
      }
      pos = lf + 1;
    }

    if (names.length >= limits.maxHeaders) {
      fail(scan, `more than ${limits.maxHeaders} header lines`, 513);
      return end;
    }
    if (name === undefined) name = canonicalHeaderName(s, lineStart, nameEnd);
    record(scan, name, value, names.length);
    names.push(name);
    values.push(value);
  }
  return end;
}

/**
 * True when the CSeq value is plainly "<number> <method>" for this request method (the usual
 * case); anything else goes through parseCSeq, which gives the same verdict with a reason.
 */
function plainCSeqMatches(v: string, method: string): boolean {
  let i = 0;
  let n = 0;
  const len = v.length;
  while (i < len && i < 10) {
    const c = v.charCodeAt(i);
    if (c < 48 || c > 57) break;
    n = n * 10 + (c - 48);
    i++;
  }
  return i > 0 && n <= 0x7fffffff && v.charCodeAt(i) === 32 && len === i + 1 + method.length && v.startsWith(method, i + 1);
}

/** The checks of RFC 3261 sections 8.2 and 20 that decide whether a message is usable at all. */
function checkHeaders(scan: Scan, start: StartLine, limits: ParseLimits): void {
  const v = scan.headers.values;
  if (scan.viaValues > limits.maxVia) fail(scan, `more than ${limits.maxVia} Via values`, 513);
  if (scan.viaCount === 0 || scan.fromCount === 0 || scan.toCount === 0 || scan.callIdCount === 0 || scan.cseqCount === 0) {
    const missing: string[] = [];
    if (scan.viaCount === 0) missing.push('Via');
    if (scan.fromCount === 0) missing.push('From');
    if (scan.toCount === 0) missing.push('To');
    if (scan.callIdCount === 0) missing.push('Call-ID');
    if (scan.cseqCount === 0) missing.push('CSeq');
    fail(scan, `missing mandatory header${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);
  }

  // Single-valued headers: repeated lines or several comma values are fatal (RFC 4475 multi01).
  checkSingle(scan, scan.callIdFirst, scan.callIdCount, 'Call-ID');
  checkSingle(scan, scan.cseqFirst, scan.cseqCount, 'CSeq');
  checkSingle(scan, scan.fromFirst, scan.fromCount, 'From');
  checkSingle(scan, scan.toFirst, scan.toCount, 'To');
  checkSingle(scan, scan.maxForwardsFirst, scan.maxForwardsCount, 'Max-Forwards');
  checkSingle(scan, scan.contentTypeFirst, scan.contentTypeCount, 'Content-Type');
  if (scan.contentLengthCount > 1) {
    fail(scan, scan.contentLengthsDiffer ? 'conflicting Content-Length values' : `Content-Length header appears ${scan.contentLengthCount} times`);
  }
  if (scan.callIdCount === 1 && v[scan.callIdFirst]!.length === 0) fail(scan, 'empty Call-ID');

  if (scan.cseqCount === 1) {
    const raw = v[scan.cseqFirst]!;
    if (start.kind !== 'request' || !plainCSeqMatches(raw, start.method)) {
      const cseq = parseCSeq(raw);
      if (cseq === null) fail(scan, `malformed CSeq ${raw.slice(0, 60)} (number must be 0..2^31-1)`);
      else if (start.kind === 'request' && cseq.method !== start.method) {
        fail(scan, `CSeq method ${cseq.method} does not match request method ${start.method}`);
      }
    }
  }
  if (scan.maxForwardsCount === 1) {
    const mf = v[scan.maxForwardsFirst]!;
    if (parseDecimal(mf, 0, mf.length, 255) < 0) fail(scan, `Max-Forwards ${mf.slice(0, 20)} is not 0..255`);
  }
  if (scan.fromCount === 1) {
    const from = v[scan.fromFirst]!;
    if (!isValidNameAddr(from, 0, from.length)) fail(scan, 'malformed From header');
  }
  if (scan.toCount === 1) {
    const to = v[scan.toFirst]!;
    if (!isValidNameAddr(to, 0, to.length)) fail(scan, 'malformed To header');
  }
  if (scan.viaCount > 0 && !topViaReadable(v[scan.viaFirst]!)) fail(scan, 'malformed Via header');
}

function checkSingle(scan: Scan, first: number, count: number, label: string): void {
  if (count > 1) fail(scan, `${label} header appears ${count} times`);
  else if (count === 1 && countElements(scan.headers.values[first]!) > 1) fail(scan, `${label} header has several values`);
}

function topViaReadable(line: string): boolean {
  return isValidVia(line, 0, line.indexOf(',') < 0 ? line.length : findTopLevelComma(line, 0, line.length));
}

/** Section 8.2.6: a response can be built when these could be read. */
function answerable(scan: Scan): boolean {
  if (scan.viaCount === 0 || !topViaReadable(scan.headers.values[scan.viaFirst]!)) return false;
  return scan.fromCount === 1 && scan.toCount === 1 && scan.callIdCount === 1 && scan.cseqCount === 1;
}

/**
 * Parses one SIP message. `datagram` (UDP): a Content-Length beyond the datagram is an error,
 * bytes after the body are ignored and a missing Content-Length means "the rest of the datagram"
 * (RFC 3261 section 18.3). Otherwise (a frame cut by frameStream) a missing Content-Length
 * means no body. The body is a view into `data`, not a copy.
 */
export function parseMessage(data: Buffer, opts?: { datagram?: boolean; limits?: ParseLimits }): ParseResult {
  try {
    return parse(data, opts?.datagram === true, opts?.limits ?? DEFAULT_LIMITS);
  } catch (err) {
    // Not expected to happen: kept so that no input can ever crash the transport.
    return { ok: false, error: `unparseable message (${(err as Error)?.message ?? 'internal error'})`, status: 400 };
  }
}

function parse(data: Buffer, datagram: boolean, limits: ParseLimits): ParseResult {
  const start = skipLeadingLineEnds(data);
  if (start >= data.length) return { ok: false, error: 'empty message', status: 400 };
  const tooLarge = data.length > limits.maxMessageBytes;
  let text = '';
  let bodyStart = -1;
  // Fast path for small all-ASCII messages: decode everything once; then string index i is
  // byte start + i (every UTF-8 decoding step that eats more than one byte yields fewer UTF-16
  // units, so equal lengths mean a 1:1 mapping) and scanHeaders finds the empty line itself.
  let oneToOne = false;
  if (data.length - start <= WHOLE_DECODE_MAX && !tooLarge) {
    // All-ASCII (the usual case): latin1 decodes the same characters, faster than utf8.
    if (isAscii(start === 0 ? data : data.subarray(start))) {
      text = data.toString('latin1', start);
      oneToOne = true;
    } else {
      text = data.toString('utf8', start);
      oneToOne = text.length === data.length - start;
    }
  }
  if (!oneToOne) {
    bodyStart = findBodyStart(data, start, Math.min(data.length, limits.maxMessageBytes));
    if (bodyStart < 0) {
      // No empty line: a datagram that simply ends after its last header (RFC 4475 baddn).
      if (tooLarge) return { ok: false, error: `message exceeds ${limits.maxMessageBytes} bytes`, status: 513 };
      bodyStart = data.length;
    }
    text = data.toString('utf8', start, bodyStart);
  }

  let lineEnd = text.indexOf('\n');
  if (lineEnd < 0) lineEnd = text.length;
  const startLine = parseStartLine(text, lineEnd > 0 && text.charCodeAt(lineEnd - 1) === CR ? lineEnd - 1 : lineEnd);
  if (startLine === null) return { ok: false, error: 'not a SIP request or status line', status: 400 };

  const scan = new Scan();
  if (tooLarge) fail(scan, `message of ${data.length} bytes exceeds ${limits.maxMessageBytes} bytes`, 513);
  if (startLine.error !== undefined) fail(scan, startLine.error, startLine.errorStatus);
  const headerEnd = scanHeaders(text, lineEnd + 1, text.length, scan, limits);
  if (oneToOne) bodyStart = start + headerEnd;
  else if (headerEnd < text.length) {
    // An empty line before the one findBodyStart saw (bare-LF "\n\n" inside a CRLF message).
    bodyStart = offsetAfterLfs(data, start, countLfs(text, headerEnd));
  }
  checkHeaders(scan, startLine, limits);

  let body: Buffer = EMPTY;
  if (scan.error === undefined) {
    const available = data.length - bodyStart;
    if (scan.contentLengthCount === 1) {
      const raw = scan.headers.values[scan.contentLengthFirst]!;
      const length = parseDecimal(raw, 0, raw.length, limits.maxMessageBytes);
      if (length === -1) fail(scan, `invalid Content-Length ${raw.slice(0, 20)}`);
      else if (length === -2) fail(scan, `Content-Length ${raw.slice(0, 20)} is too large`);
      else if (length > available) fail(scan, `Content-Length ${length} exceeds the ${available} body bytes received`);
      else if (length > 0) body = data.subarray(bodyStart, bodyStart + length);
    } else if (datagram && available > 0) {
      body = data.subarray(bodyStart);
    }
  }

  if (scan.error !== undefined) {
    const result: ParseResult = { ok: false, error: scan.error, status: scan.errorStatus };
    if (startLine.kind === 'request' && answerable(scan)) {
      result.request = { kind: 'request', method: startLine.method, uri: startLine.uri, version: 'SIP/2.0', headers: scan.headers, body };
    }
    return result;
  }
  const message: SipRequest | SipResponse =
    startLine.kind === 'request'
      ? { kind: 'request', method: startLine.method, uri: startLine.uri, version: 'SIP/2.0', headers: scan.headers, body }
      : { kind: 'response', status: startLine.status, reason: startLine.reason, version: 'SIP/2.0', headers: scan.headers, body };
  return { ok: true, message };
}

/** Case-insensitive compare of buf[i, i + name.length) with a lower-case ASCII name. */
function bytesEqualLower(buf: Buffer, i: number, name: string): boolean {
  for (let k = 0; k < name.length; k++) if ((buf[i + k]! | 32) !== name.charCodeAt(k)) return false;
  return true;
}

/**
 * Content-Length of the header section buf[from, to) as a number; -1 when absent, -2 when
 * invalid or when two different values appear (framing would be undefined, RFC 4475 mcl01).
 */
function frameContentLength(buf: Buffer, from: number, to: number, max: number): number {
  let found = -1;
  let i = from;
  while (i < to) {
    let lf = buf.indexOf(LF, i);
    if (lf < 0 || lf > to) lf = to;
    let nameEnd = -1;
    if (lf - i > 14 && bytesEqualLower(buf, i, 'content-length')) nameEnd = i + 14;
    else if ((buf[i]! | 32) === 108 /* l */ && lf - i > 1 && (buf[i + 1] === 58 || isBlank(buf[i + 1]!))) nameEnd = i + 1;
    if (nameEnd > 0) {
      let j = nameEnd;
      while (j < lf && isBlank(buf[j]!)) j++;
      if (buf[j] === 58) {
        j++;
        while (j < lf && isBlank(buf[j]!)) j++;
        let end = lf > j && buf[lf - 1] === CR ? lf - 1 : lf;
        while (end > j && isBlank(buf[end - 1]!)) end--;
        if (end - j > 10) return -2;
        let n = 0;
        for (let k = j; k < end; k++) {
          const c = buf[k]!;
          if (c < 48 || c > 57) return -2;
          n = n * 10 + (c - 48);
        }
        if (end === j || n > max) return -2;
        if (found >= 0 && found !== n) return -2;
        found = n;
      }
    }
    i = lf + 1;
  }
  return found;
}

/**
 * Stream framing for TCP/TLS (RFC 3261 section 18.3): where the first message in `buf` ends,
 * using its Content-Length (a missing one counts as 0). CRLF keep-alives between messages
 * (RFC 5626 section 3.5.1) come back as 'keepalive': "\r\n\r\n" (a ping, length 4) or a lone
 * "\r\n" (a pong, length 2; a ping split after its first CRLF therefore reads as two pongs).
 * 'error' means the stream cannot be framed any more and the connection should be closed.
 */
export function frameStream(buf: Buffer, limits: ParseLimits = DEFAULT_LIMITS): FrameResult {
  try {
    const n = buf.length;
    if (n === 0) return { kind: 'incomplete' };
    const b0 = buf[0]!;
    if (b0 === CR || b0 === LF) {
      if (b0 === LF) return { kind: 'keepalive', length: 1 };
      if (n < 2) return { kind: 'incomplete' };
      if (buf[1] !== LF) return { kind: 'error', error: 'CR not followed by LF between messages' };
      if (n >= 4 && buf[2] === CR && buf[3] === LF) return { kind: 'keepalive', length: 4 };
      if (n === 3 && buf[2] === CR) return { kind: 'incomplete' };
      return { kind: 'keepalive', length: 2 };
    }
    const limit = Math.min(n, limits.maxMessageBytes);
    const bodyStart = findBodyStartExact(buf, 0, limit);
    if (bodyStart < 0) {
      return n >= limits.maxMessageBytes ? { kind: 'error', error: `header section exceeds ${limits.maxMessageBytes} bytes` } : { kind: 'incomplete' };
    }
    const cl = frameContentLength(buf, 0, bodyStart, limits.maxMessageBytes);
    if (cl === -2) return { kind: 'error', error: 'invalid or conflicting Content-Length' };
    const length = bodyStart + (cl < 0 ? 0 : cl);
    if (length > limits.maxMessageBytes) return { kind: 'error', error: `message exceeds ${limits.maxMessageBytes} bytes` };
    return length <= n ? { kind: 'message', length } : { kind: 'incomplete' };
  } catch {
    return { kind: 'error', error: 'unframeable stream' };
  }
}
