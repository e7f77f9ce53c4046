import { isIP } from 'node:net';
import { createResponse, type SipRequest, type SipResponse } from '../sip/message.js';
import { parseContactList, parseNameAddr, type NameAddr } from '../sip/headers/name-addr.js';
import { parseCSeq } from '../sip/headers/cseq.js';
import { parseUri, uriEquals, type SipUri } from '../sip/uri.js';
import type { Endpoint } from '../sip/transport/types.js';
import type { BindingRecord, Store } from '../store/store.js';
import type { BindingWriter } from '../store/binding-writer.js';
import type { Authenticator } from './authenticator.js';
import type { Logger } from '../log.js';
import { readPath, supportsPath } from './path.js';

export interface RegistrarOptions {
  store: Store;
  writer: BindingWriter;
  auth: Authenticator;
  logger: Logger;
  minExpires: number;
  maxExpires: number;
  defaultExpires: number;
  maxContacts: number;
  /** Most extensions registered at once; 0 = unlimited. */
  maxClients: number;
  /** Extensions removed by another process (`minisipserver ext remove`) lose their bindings. */
  extensions?: { takeChanged(): boolean; exists(number: string): boolean };
  now?: () => number;
  /**
   * Other server processes register phones into the same store (sip.workers): lookups also
   * read the store, expired bindings are purged there by time (never a row another process has
   * refreshed), and maxClients counts the registrations of all processes.
   */
  shared?: boolean;
  /**
   * Whether a REGISTER from this address may carry Path (RFC 3327): only a trusted front proxy
   * (security.trusted) may decide where requests for a phone go. Absent: Path is refused (403).
   */
  mayInsertPath?: (address: string) => boolean;
}

/** Sources whose refused Path has been logged (each once), at most this many remembered. */
const PATH_REFUSALS_LOGGED = 1000;
/** Retry-After (seconds) of the 503 that answers a REGISTER while the store's database is away. */
const STORE_RETRY_AFTER_S = 10;

/** How long a binding of ours may wait for the binding writer's flush (shared mode). */
const UNFLUSHED_MS = 1000;

/** A binding as the registrar keeps it in memory: the stored record plus its parsed URI. */
export interface Binding extends BindingRecord {
  uri: SipUri;
  /** The TCP connection the phone registered over (not stored: connections end with the process). */
  connectionId?: number;
}

export type RegisterResult = { response: SipResponse; event?: { aor: string; action: 'register' | 'refresh' | 'unregister' } };

export type BindingChange = 'added' | 'refreshed' | 'removed' | 'expired';

/**
 * Told of every binding that comes, is refreshed, goes (unregistered, pushed out by a newer one,
 * its extension removed) or expires, after the registrar's own state has changed (lookup() and
 * bindingsOf() already show it). Called synchronously on the REGISTER path: keep it cheap, never throw.
 */
export interface RegistrarObserver {
  binding(change: BindingChange, binding: Binding): void;
}

/**
 * The registrar (RFC 3261 section 10.3): authenticates REGISTER, keeps several contacts per
 * extension with their lifetimes, and persists them so that a restart forgets nobody.
 */
export class Registrar {
  private readonly bindings = new Map<string, Binding[]>();
  private readonly now: () => number;
  private sweepTimer: NodeJS.Timeout | undefined;
  /** The live state (admin API, event channel); undefined: nobody listens, nothing is collected. */
  observer: RegistrarObserver | undefined = undefined;
  /** Sources already logged for a refused Path (a proxy left out of security.trusted sends it with every REGISTER). */
  private readonly pathRefusedFrom = new Set<string>();

  constructor(private readonly opts: RegistrarOptions) {
    this.now = opts.now ?? Date.now;
    for (const rec of opts.store.loadBindings(this.now())) {
      const uri = parseUri(rec.contact);
      if (!uri) continue;
      const list = this.bindings.get(rec.aor) ?? [];
      list.push({ ...rec, uri });
      this.bindings.set(rec.aor, list);
    }
  }

  /** Changes the limits of new REGISTERs (a configuration reload); bindings are kept. */
  setLimits(limits: Partial<Pick<RegistrarOptions, 'minExpires' | 'maxExpires' | 'defaultExpires' | 'maxContacts' | 'maxClients'>>): void {
    Object.assign(this.opts, limits);
  }

  /** Starts the once-a-second expiry sweep. */
  start(): void {
    this.sweepTimer ??= setInterval(() => this.sweep(), 1000);
    this.sweepTimer.unref();
  }

  stop(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    this.opts.writer.flush();
  }

  /** Current bindings of an extension (not expired), most recent first. */
  lookup(aor: string): Binding[] {
    const t = this.now();
    const own = (this.bindings.get(aor) ?? []).filter((b) => b.expiresAt > t);
    if (!this.opts.shared) return own.sort((a, b) => b.updatedAt - a.updatedAt);
    // Shared: the store is the truth (another process may have removed or refreshed a binding);
    // ours are added only while they may still wait for the writer's next flush.
    const out: Binding[] = [];
    for (const rec of this.opts.store.loadBindingsOf(aor, t)) {
      const mine = own.find((b) => b.contact === rec.contact);
      if (mine !== undefined && mine.updatedAt >= rec.updatedAt) {
        out.push(mine);
        continue;
      }
      const uri = parseUri(rec.contact);
      if (uri) out.push({ ...rec, uri });
    }
    for (const b of own) if (t - b.updatedAt < UNFLUSHED_MS && !out.some((o) => o.contact === b.contact)) out.push(b);
    return out.sort((a, b) => b.updatedAt - a.updatedAt);
  }

  /** Number of extensions with at least one live binding (in every server process when shared). */
  get registeredCount(): number {
    return Math.max(this.bindings.size, this.sharedRegistered);
  }

  /** The store's count of registered extensions, refreshed by the sweep (shared mode). */
  private sharedRegistered = 0;

  get bindingCount(): number {
    let n = 0;
    for (const list of this.bindings.values()) n += list.length;
    return n;
  }

  /**
   * This process's bindings of an extension as kept in memory (no copy, not filtered: one may have
   * expired since the last sweep), or undefined. Never reads the store.
   */
  bindingsOf(aor: string): readonly Binding[] | undefined {
    return this.bindings.get(aor);
  }

  allBindings(): Binding[] {
    const out: Binding[] = [];
    for (const list of this.bindings.values()) out.push(...list);
    return out;
  }

  handle(req: SipRequest, source: Endpoint, toTag: string): RegisterResult {
    const fail = (status: number, reason?: string): RegisterResult => ({ response: createResponse(req, status, reason, toTag) });

    // Without credentials the answer is a challenge whatever the request names (the same for
    // every user): nothing else needs to be read.
    if (!req.headers.has('authorization')) return { response: this.opts.auth.challenge(req, 'www', toTag, false, 'no credentials').response };

    const to = parseNameAddr(req.headers.get('to') ?? '');
    const toUri = to ? parseUri(to.uri) : null;
    if (!toUri || (toUri.scheme !== 'sip' && toUri.scheme !== 'sips')) return fail(400, 'Bad Request (To is not a sip: address-of-record)');
    const aor = toUri.user ?? '';

    const auth = this.opts.auth.authenticate(req, 'www', toTag, source);
    if (!auth.ok) {
      if (auth.response.status === 403) {
        this.opts.logger.peer('warn', 'register.auth_failed', { aor, from: `${source.address}:${source.port}` });
      }
      return { response: auth.response };
    }
    // RFC 3261 section 10.3 step 6: the authenticated user may only change its own bindings.
    if (auth.user !== aor) return fail(403, 'Forbidden');
    // A registration must reach the shared database (RFC 3261 section 21.5.4: 503 with Retry-After).
    if (this.opts.store.available === false) {
      const res = createResponse(req, 503, 'Service Unavailable (database unreachable)', toTag);
      res.headers.append('Retry-After', String(STORE_RETRY_AFTER_S));
      return { response: res };
    }

    // RFC 3327 section 5.3: the Path of this REGISTER goes with each of its bindings (none: a
    // refresh clears it). Sections 5.3 and 6: a registrar uses Path only from proxies it trusts;
    // from anyone else it would let a user send calls for its number through any address.
    let path: string[] | undefined;
    if (req.headers.has('path')) {
      if (this.opts.mayInsertPath?.(source.address) !== true) {
        this.pathRefused(source);
        return fail(403, 'Forbidden (Path is accepted only from a trusted proxy)');
      }
      const read = readPath(req);
      if (!read.ok) return fail(400, `Bad Request (${read.problem})`);
      if (read.path.length > 0) path = read.path;
    }

    const contacts = parseContactList(req);
    if (!contacts) return fail(400, 'Bad Request (malformed Contact)');
    const cseq = parseCSeq(req.headers.get('cseq') ?? '');
    if (!cseq) return fail(400, 'Bad Request (malformed CSeq)');
    const callId = req.headers.get('call-id') ?? '';
    const expiresHeader = parseExpires(req.headers.get('expires'));
    if (expiresHeader === 'invalid') return fail(400, 'Bad Request (malformed Expires)');

    const now = this.now();
    const current = this.liveList(aor, now);

    if (contacts.star) {
      // Section 10.3 step 6: "*" only with Expires: 0 and no other Contact.
      if (contacts.contacts.length > 0 || expiresHeader !== 0) return fail(400, 'Bad Request (Contact * needs Expires: 0 alone)');
      for (const b of current) {
        if (b.callId === callId && cseq.seq <= b.cseq) return fail(500, 'Server Internal Error (out-of-order REGISTER)');
      }
      for (const b of this.opts.shared ? this.lookup(aor) : current) this.opts.writer.remove(aor, b.contact);
      const before = this.bindings.get(aor);
      this.bindings.delete(aor);
      this.opts.logger.info('register.unregister_all', { aor, from: `${source.address}:${source.port}` });
      const observer = this.observer;
      if (observer && before) for (const b of before) observer.binding(b.expiresAt > now ? 'removed' : 'expired', b);
      return { response: this.ok(req, toTag, [], path), event: { aor, action: 'unregister' } };
    }

    if (contacts.contacts.length === 0) return { response: this.ok(req, toTag, current, path) };

    // Validate every contact first, nothing changes unless all are acceptable: the request is
    // atomic (section 10.3 step 7).
    const changes: Array<{ contact: NameAddr; uri: SipUri; expires: number }> = [];
    for (const c of contacts.contacts) {
      // A refresh names the very same Contact URI: reuse its parsed form.
      const uri = current.find((b) => b.contact === c.uri)?.uri ?? parseUri(c.uri);
      if (!uri) return fail(400, 'Bad Request (malformed Contact URI)');
      const param = c.params.get('expires');
      let expires = param !== undefined ? parseExpires(param ?? '') : expiresHeader;
      if (expires === 'invalid') expires = this.opts.defaultExpires;
      if (expires === undefined) expires = this.opts.defaultExpires;
      if (expires > 0 && expires < this.opts.minExpires) {
        const res = createResponse(req, 423, undefined, toTag);
        res.headers.append('Min-Expires', String(this.opts.minExpires));
        return { response: res };
      }
      const existing = current.find((b) => b.contact === c.uri) ?? current.find((b) => uriEquals(b.uri, uri));
      if (existing && existing.callId === callId && cseq.seq <= existing.cseq) {
        return fail(500, 'Server Internal Error (out-of-order REGISTER)');
      }
      changes.push({ contact: c, uri, expires: Math.min(expires, this.opts.maxExpires) });
    }

    const isNewClient = current.length === 0;
    if (isNewClient && this.opts.maxClients > 0 && changes.some((c) => c.expires > 0) && this.registeredCount >= this.opts.maxClients) {
      this.opts.logger.peer('warn', 'register.limit_reached', { aor, maxClients: this.opts.maxClients });
      return fail(403, `Forbidden (registration limit of ${this.opts.maxClients} clients reached)`);
    }

    const list = [...current];
    let action: 'register' | 'refresh' | 'unregister' = isNewClient ? 'register' : 'refresh';
    // What the observer is told once the bindings are in place (nothing is collected without one).
    const observer = this.observer;
    const changed: Array<[BindingChange, Binding]> | undefined = observer ? [] : undefined;
    // Bindings that expired since the last sweep go now (the list below is built from the live ones).
    if (changed) for (const b of this.bindings.get(aor) ?? []) if (b.expiresAt <= now) changed.push(['expired', b]);
    for (const ch of changes) {
      let idx = list.findIndex((b) => b.contact === ch.contact.uri);
      if (idx < 0) idx = list.findIndex((b) => uriEquals(b.uri, ch.uri));
      const existing = idx >= 0 ? list[idx] : undefined;
      if (ch.expires === 0) {
        if (existing) {
          list.splice(idx, 1);
          this.opts.writer.remove(aor, existing.contact);
          changed?.push(['removed', existing]);
        } else if (this.opts.shared) {
          this.opts.writer.remove(aor, ch.contact.uri); // registered through another process
        }
        continue;
      }
      const binding: Binding = {
        aor,
        contact: ch.contact.uri,
        contactHeader: contactElement(ch.contact),
        uri: ch.uri,
        expiresAt: now + ch.expires * 1000,
        callId,
        cseq: cseq.seq,
        q: parseQ(ch.contact.params.get('q')),
        instanceId: unquote(ch.contact.params.get('+sip.instance')),
        transport: source.transport,
        sourceAddress: source.address,
        sourcePort: source.port,
        userAgent: req.headers.get('user-agent')?.slice(0, 200),
        updatedAt: now,
      };
      if (source.connectionId !== undefined) binding.connectionId = source.connectionId;
      if (path !== undefined) binding.path = path;
      // The host the phone addressed us with: our address as it sees it (Via, Contact, SDP).
      // Not through a proxy: the phone addressed the proxy (whose dispatcher may leave the
      // Request-URI as the phone wrote it), and the proxy reaches us on our own address.
      const local = path === undefined ? parseUri(req.uri)?.host : undefined;
      if (local !== undefined && isIP(local) !== 0) binding.localAddress = local;
      if (existing) list[idx] = binding;
      else list.push(binding);
      this.opts.writer.upsert(binding);
      changed?.push([existing ? 'refreshed' : 'added', binding]);
    }
    // Beyond the per-extension limit the oldest binding gives way to the newest (a phone that
    // rebooted with a new Call-ID must not be locked out until its old binding expires).
    list.sort((a, b) => b.updatedAt - a.updatedAt);
    while (list.length > this.opts.maxContacts) {
      const dropped = list.pop()!;
      this.opts.writer.remove(aor, dropped.contact);
      changed?.push(['removed', dropped]);
    }
    if (list.length === 0) {
      this.bindings.delete(aor);
      action = 'unregister';
    } else {
      this.bindings.set(aor, list);
    }
    if (changed) for (const [change, b] of changed) observer!.binding(change, b);
    if (this.opts.logger.enabled('debug')) {
      this.opts.logger.debug('register.ok', { aor, action, contacts: list.length, from: `${source.address}:${source.port}` });
    }
    return { response: this.ok(req, toTag, list, path), event: { aor, action } };
  }

  private liveList(aor: string, now: number): Binding[] {
    const list = this.bindings.get(aor);
    if (!list) return [];
    return list.filter((b) => b.expiresAt > now);
  }

  /**
   * 200 OK listing every current binding with its remaining lifetime (section 10.3 step 8), and
   * the Path stored from this REGISTER, in order, when the phone supports it (RFC 3327 section 5.3).
   */
  private ok(req: SipRequest, toTag: string, list: Binding[], path?: string[]): SipResponse {
    const res = createResponse(req, 200, undefined, toTag);
    const now = this.now();
    for (const b of list) {
      res.headers.append('Contact', `${b.contactHeader};expires=${Math.max(0, Math.round((b.expiresAt - now) / 1000))}`);
    }
    if (path !== undefined && supportsPath(req)) for (const p of path) res.headers.append('Path', p);
    res.headers.append('Date', this.httpDate(now));
    return res;
  }

  private dateSecond = -1;
  private dateText = '';
  /** RFC 3261 section 20.17 Date, formatted once per second. */
  private httpDate(now: number): string {
    const second = Math.floor(now / 1000);
    if (second !== this.dateSecond) {
      this.dateSecond = second;
      this.dateText = new Date(second * 1000).toUTCString();
    }
    return this.dateText;
  }

  /** A Path from an untrusted source: logged once per source (it comes with every REGISTER of its phones). */
  private pathRefused(source: Endpoint): void {
    const fields = {
      from: source.address,
      hint: 'Path is taken only from a trusted front proxy: add its address to security.trusted (docs/DEPLOY.md, "Behind a front proxy")',
    };
    if (this.pathRefusedFrom.has(source.address)) return;
    if (this.pathRefusedFrom.size >= PATH_REFUSALS_LOGGED) {
      this.opts.logger.peer('warn', 'register.path_refused', fields);
      return;
    }
    this.pathRefusedFrom.add(source.address);
    this.opts.logger.warn('register.path_refused', fields);
  }

  private sweep(): void {
    const now = this.now();
    const ext = this.opts.extensions;
    if (ext && ext.takeChanged()) {
      for (const [aor, list] of this.bindings) {
        if (ext.exists(aor)) continue;
        for (const b of list) this.opts.writer.remove(aor, b.contact);
        this.bindings.delete(aor);
        this.opts.logger.info('register.extension_removed', { aor, bindings: list.length });
        const observer = this.observer;
        if (observer) for (const b of list) observer.binding('removed', b);
      }
    }
    const shared = this.opts.shared === true;
    for (const [aor, list] of this.bindings) {
      const live = list.filter((b) => b.expiresAt > now);
      if (live.length === list.length) continue;
      // Shared: another process may have refreshed the same contact since; the store is purged
      // by time below instead, which only removes rows that are still expired.
      if (!shared) for (const b of list) if (b.expiresAt <= now) this.opts.writer.remove(aor, b.contact);
      if (live.length === 0) this.bindings.delete(aor);
      else this.bindings.set(aor, live);
      const observer = this.observer;
      if (observer) for (const b of list) if (b.expiresAt <= now) observer.binding('expired', b);
    }
    if (shared) {
      this.opts.store.purgeExpiredBindings(now);
      this.sharedRegistered = this.opts.store.countRegistered(now);
    }
  }
}

/** The Contact element as we will list it: URI in angle brackets plus its params, minus expires. */
function contactElement(c: NameAddr): string {
  let s = `<${c.uri}>`;
  for (const [k, v] of c.params) {
    if (k === 'expires') continue;
    s += v === null ? `;${k}` : `;${k}=${v}`;
  }
  return s;
}

/** Expires value: delta-seconds (RFC 3261 section 20.19); huge values are capped later. */
function parseExpires(v: string | undefined): number | undefined | 'invalid' {
  if (v === undefined) return undefined;
  const s = v.trim();
  if (!/^\d{1,20}$/.test(s)) return 'invalid';
  const n = Number(s);
  return n > 0xffffffff ? 0xffffffff : n;
}

function parseQ(v: string | null | undefined): number | undefined {
  if (v === undefined || v === null) return undefined;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 && n <= 1 ? n : undefined;
}

function unquote(v: string | null | undefined): string | undefined {
  if (v === undefined || v === null) return undefined;
  return v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
}

