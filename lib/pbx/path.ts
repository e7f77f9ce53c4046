/**
 * RFC 3327 Path on the registrar's side: the Path values of a REGISTER (the proxies between the
 * phone and us, the one next to us first, section 4), checked and kept as written, and whether
 * the phone asked to see them in the 2xx.
 */
import type { SipRequest } from '../sip/message.js';
import { parseNameAddr } from '../sip/headers/name-addr.js';
import { parseUri } from '../sip/uri.js';

/** Most Path values kept with a binding: one front proxy needs one, a chain of them a few. */
export const MAX_PATH_VALUES = 8;
/** Longest Path value kept (characters): a proxy's URI with a few parameters. */
export const MAX_PATH_VALUE_CHARS = 512;

export type PathRead = { ok: true; path: string[] } | { ok: false; problem: string };

/**
 * The Path values of a REGISTER in order (empty without Path). Each must be a sip: or sips: URI
 * in name-addr form; the first must have `lr` (RFC 3261 section 12.2.1.1: the server sends to
 * the first Route only as a loose router; a strict router is refused here rather than half-served).
 */
export function readPath(req: SipRequest): PathRead {
  const values = req.headers.list('path');
  if (values.length > MAX_PATH_VALUES) return { ok: false, problem: `more than ${MAX_PATH_VALUES} Path values` };
  const path: string[] = [];
  for (const raw of values) {
    const value = raw.trim();
    if (value.length > MAX_PATH_VALUE_CHARS) return { ok: false, problem: `a Path value longer than ${MAX_PATH_VALUE_CHARS} characters` };
    const na = parseNameAddr(value);
    const uri = na === null ? null : parseUri(na.uri);
    if (uri === null || (uri.scheme !== 'sip' && uri.scheme !== 'sips') || uri.host === '') {
      return { ok: false, problem: 'malformed Path: each value must be a <sip:...> or <sips:...> URI' };
    }
    if (path.length === 0 && !uri.params.has('lr')) {
      return { ok: false, problem: 'the first Path URI has no ;lr: strict routing is not supported' };
    }
    path.push(value);
  }
  return { ok: true, path };
}

/** Section 5.3: the Path goes back in the 2xx only to a phone that said `Supported: path`. */
export function supportsPath(req: SipRequest): boolean {
  for (const name of ['supported', 'require']) {
    if (!req.headers.has(name)) continue;
    if (req.headers.list(name).some((tag) => tag.toLowerCase() === 'path')) return true;
  }
  return false;
}
