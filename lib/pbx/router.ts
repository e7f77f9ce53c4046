/**
 * Number analysis: what a dialled number reaches. Today: the local extensions (ringing every
 * registered contact); IVR numbers and trunk prefixes join here as they are built.
 */
import { parseUri, unescapeUriPart } from '../sip/uri.js';
import type { ExtensionRecord } from '../store/store.js';
import type { Binding } from './registrar.js';

export type Route =
  | { kind: 'extension'; number: string; extension: ExtensionRecord; contacts: Binding[] }
  | { kind: 'unregistered'; number: string; extension: ExtensionRecord }
  | { kind: 'not-found'; number: string };

export interface RouterDeps {
  extensions: { get(number: string): ExtensionRecord | undefined };
  registrar: { lookup(aor: string): Binding[] };
}

export class Router {
  constructor(private readonly deps: RouterDeps) {}

  extension(number: string): ExtensionRecord | undefined {
    return this.deps.extensions.get(number);
  }

  route(dialled: string): Route {
    const number = normaliseDialled(dialled);
    const extension = this.deps.extensions.get(number);
    if (!extension) return { kind: 'not-found', number };
    const contacts = this.deps.registrar.lookup(number);
    if (contacts.length === 0) return { kind: 'unregistered', number, extension };
    return { kind: 'extension', number, extension, contacts };
  }
}

/**
 * The number a Request-URI dials: the user part of a sip:/sips: URI, the number of a tel: URI
 * (RFC 3966), escapes decoded. '' when the URI names no number.
 */
export function dialledNumber(requestUri: string): string {
  const uri = parseUri(requestUri);
  return uri ? unescapeUriPart(uri.user ?? '') : '';
}

/** Visual separators of a dial string (RFC 3966 section 5.1.1) are not part of the number. */
export function normaliseDialled(s: string): string {
  return s.replace(/[-.()\s]/g, '');
}
