/**
 * CSeq header (RFC 3261 section 20.16): CSeq = 1*DIGIT LWS Method.
 * The number must be below 2**31 (section 8.1.1.5); leading zeros are legal ("0009" is 9).
 */
import { parseDecimal, scanToken, skipWs, trimEnd } from './lex.js';

const MAX_CSEQ = 0x7fffffff;

/** Null on bad syntax or an out-of-range number; never throws. */
export function parseCSeq(value: string): { seq: number; method: string } | null {
  const s = value;
  const end = trimEnd(s, 0, s.length);
  const start = skipWs(s, 0, end);
  let i = start;
  while (i < end) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) break;
    i++;
  }
  const seq = parseDecimal(s, start, i, MAX_CSEQ);
  if (seq < 0) return null;
  const methodStart = skipWs(s, i, end);
  if (methodStart === i) return null; // LWS is required between number and method
  const methodEnd = scanToken(s, methodStart, end);
  if (methodEnd === methodStart || methodEnd !== end) return null;
  return { seq, method: s.slice(methodStart, methodEnd) };
}
