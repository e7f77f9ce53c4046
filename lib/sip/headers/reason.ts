/**
 * Reason header element (RFC 3326 section 2):
 *   reason-value = protocol *( SEMI reason-params ), reason-params = protocol-cause / reason-text / ext
 *   protocol-cause = "cause" EQUAL cause (1*DIGIT), reason-text = "text" EQUAL quoted-string
 */
import { parseDecimal, scanToken, skipWs, trimEnd } from './lex.js';
import { paramText, parseParams, type Params } from './params.js';

export interface Reason {
  protocol: string;
  cause?: number;
  text?: string;
}

/** Parses one element ("SIP;cause=200;text=\"Call completed elsewhere\""). Null on bad syntax. */
export function parseReason(value: string): Reason | null {
  const s = value;
  const end = trimEnd(s, 0, s.length);
  const start = skipWs(s, 0, end);
  const protocolEnd = scanToken(s, start, end);
  if (protocolEnd === start) return null;
  const params: Params = new Map();
  if (!parseParams(s, protocolEnd, end, params)) return null;
  const reason: Reason = { protocol: s.slice(start, protocolEnd) };
  const cause = params.get('cause');
  if (cause !== undefined) {
    if (cause === null) return null;
    const n = parseDecimal(cause, 0, cause.length, 0x7fffffff);
    if (n < 0) return null;
    reason.cause = n;
  }
  const text = params.get('text');
  if (text !== undefined) {
    if (text === null) return null;
    reason.text = paramText(text)!;
  }
  return reason;
}
