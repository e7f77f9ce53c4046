/**
 * Header name -> canonical (lower-case, long form) name, for the parser's hot path.
 *
 * Common names are matched in place (case-insensitively, without slicing the line) and come back
 * as the interned string constants below, so later `===` tests and Headers lookups compare
 * pointers. Anything else goes through message.ts's canonicalName, memoised in a bounded cache
 * so random names from peers cannot grow it.
 */
import { canonicalName } from '../message.js';

const KNOWN = [
  'via', 'from', 'to', 'call-id', 'cseq', 'contact', 'max-forwards', 'content-length', 'content-type',
  'expires', 'allow', 'supported', 'user-agent', 'server', 'authorization', 'proxy-authorization',
  'www-authenticate', 'proxy-authenticate', 'route', 'record-route', 'allow-events', 'require',
  'proxy-require', 'unsupported', 'event', 'subscription-state', 'accept', 'accept-encoding',
  'accept-language', 'date', 'session-expires', 'min-se', 'min-expires', 'p-asserted-identity',
  'p-preferred-identity', 'privacy', 'refer-to', 'referred-by', 'replaces', 'reason', 'rseq', 'rack',
  'diversion', 'content-disposition', 'content-encoding', 'retry-after', 'timestamp', 'subject',
  'warning', 'alert-info', 'call-info', 'path', 'organization', 'x-real-ip',
] as const;

/** Known names grouped by length: a lookup compares only names of the right length. */
const BY_LENGTH: string[][] = [];
for (const name of KNOWN) (BY_LENGTH[name.length] ??= []).push(name);

function sameIgnoringCase(s: string, start: number, name: string): boolean {
  for (let k = 0; k < name.length; k++) {
    // | 32 folds ASCII upper case to lower case and leaves '-' and digits unchanged.
    if ((s.charCodeAt(start + k) | 32) !== name.charCodeAt(k)) return false;
  }
  return true;
}

const cache = new Map<string, string>();
const CACHE_LIMIT = 512;

/** Canonical name of the header name s[start, end) (which the caller checked is a token). */
export function canonicalHeaderName(s: string, start: number, end: number): string {
  const candidates = BY_LENGTH[end - start];
  if (candidates !== undefined) {
    for (const name of candidates) if (sameIgnoringCase(s, start, name)) return name;
  }
  const raw = s.slice(start, end);
  let c = cache.get(raw);
  if (c === undefined) {
    c = canonicalName(raw);
    if (cache.size < CACHE_LIMIT) cache.set(raw, c);
  }
  return c;
}
