/**
 * Number analysis: what a dialled number reaches. Built-ins first (IVR numbers are checked by
 * the call manager before this; then extensions), then the dial plan's rules to trunks, with the
 * call class of the rule checked against what the caller is granted.
 */
import { parseUri, unescapeUriPart } from '../sip/uri.js';
import type { ExtensionRecord } from '../store/store.js';
import type { DialClass, DialRule } from '../trunks/config.js';
import { DialPlan } from '../trunks/dialplan.js';
import type { Trunk } from '../trunks/trunk.js';
import type { Binding } from './registrar.js';

export type Route =
  | { kind: 'extension'; number: string; extension: ExtensionRecord; contacts: Binding[] }
  | { kind: 'unregistered'; number: string; extension: ExtensionRecord }
  | { kind: 'not-found'; number: string }
  /** A dial-plan rule: `number` is the analysed number; `trunks` the rule's trunk, then its fallback. */
  | { kind: 'trunk'; number: string; rule: DialRule; trunks: Trunk[] }
  /** A rule of a restricted class the caller is not granted. */
  | { kind: 'restricted'; number: string; rule: DialRule };

export interface RouterDeps {
  extensions: { get(number: string): ExtensionRecord | undefined };
  registrar: { lookup(aor: string): Binding[] };
  trunks?: { get(name: string): Trunk | undefined };
}

/**
 * Who dials, for the dial plan: `grants` are the restricted classes the caller may use (an
 * extension's `allow`; none for a service). Without a dialler only extensions are reached:
 * calls that came in from a trunk never go back out by number analysis.
 */
export interface Dialler {
  grants: readonly string[];
}

const DIAL_STRING = /^\+?[0-9*#]{1,64}$/;

export class Router {
  private plan = new DialPlan([]);
  private classes: Record<string, DialClass> = {};

  constructor(private readonly deps: RouterDeps) {}

  /** The dial plan and classes (at start, and on a configuration reload). */
  setDialPlan(rules: readonly DialRule[], classes: Record<string, DialClass>): void {
    this.plan = new DialPlan(rules);
    this.classes = classes;
  }

  extension(number: string): ExtensionRecord | undefined {
    return this.deps.extensions.get(number);
  }

  route(dialled: string, dialler?: Dialler): Route {
    const number = normaliseDialled(dialled);
    const extension = this.deps.extensions.get(number);
    if (extension) {
      const contacts = this.deps.registrar.lookup(number);
      if (contacts.length === 0) return { kind: 'unregistered', number, extension };
      return { kind: 'extension', number, extension, contacts };
    }
    // Only a dial string goes to a trunk: what a URI escape can smuggle in (a@b) never does.
    if (!dialler || !DIAL_STRING.test(number)) return { kind: 'not-found', number };
    const hit = this.plan.match(number);
    if (!hit) return { kind: 'not-found', number };
    const { rule, analysed } = hit;
    if (rule.class !== '' && this.classes[rule.class]?.restricted && !dialler.grants.includes(rule.class)) {
      return { kind: 'restricted', number: analysed, rule };
    }
    const trunks: Trunk[] = [];
    for (const name of [rule.trunk, rule.fallback]) {
      const t = name ? this.deps.trunks?.get(name) : undefined;
      if (t) trunks.push(t);
    }
    if (trunks.length === 0) return { kind: 'not-found', number };
    return { kind: 'trunk', number: analysed, rule, trunks };
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
