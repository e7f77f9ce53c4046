/**
 * A registration trunk's REGISTER client (RFC 3261 section 10.2): registers the account's
 * address-of-record with our Contact, answers the provider's digest challenge, refreshes at about
 * half the granted time, follows 423 Min-Expires, retries failures with a doubling back-off, and
 * unregisters on stop.
 *
 * Status: idle -> registering (the first attempt) -> registered or failing. A refresh keeps
 * `registered` and a retry keeps `failing` until its outcome is known; stop() -> stopped.
 */
import { createRequest, Headers, type SipRequest, type SipResponse } from '../sip/message.js';
import { authorizationFor, challengeIsStale, type AuthorizationHeader } from '../sip/digest-client.js';
import { parseNameAddr } from '../sip/headers/name-addr.js';
import { parseUri, uriEquals } from '../sip/uri.js';
import { newBranch } from '../sip/transaction/message-keys.js';
import { randomToken } from '../sip/random-id.js';
import type { ClientTransaction } from '../sip/transaction/layer.js';
import type { Endpoint } from '../sip/transport/types.js';
import { bracket, hostPortText } from '../pbx/call-messages.js';
import type { TrunkConfig } from './config.js';

export interface RegistrationEnv {
  sendRequest(req: SipRequest, dest: Endpoint, user: { onResponse(res: SipResponse): void; onTimeout(): void }): ClientTransaction | null;
  /** Our address as that peer sees it. */
  localHost(peer: string): string;
  sipPort(): number;
  viaRport: boolean;
  userAgent: string;
  log(level: 'debug' | 'info' | 'warn', event: string, fields: Record<string, unknown>): void;
}

export interface RegistrationState {
  status: 'idle' | 'registering' | 'registered' | 'failing' | 'stopped';
  lastStatus?: number;
  lastReason?: string;
  /** When the binding ends (registered). */
  expiresAt?: number;
  /** When the next REGISTER goes out (a refresh or a retry). */
  nextAttemptAt?: number;
  /** Failed attempts in a row. */
  failures: number;
}

const RETRY_MIN_MS = 30_000;
const RETRY_MAX_MS = 600_000;
/** 423 answers followed in a row. */
const MAX_TOO_BRIEF = 3;
/** A Min-Expires beyond a day is not followed. */
const MAX_MIN_EXPIRES = 86_400;
/** Challenges answered for one request: the first, then only stale ones (RFC 7616 section 3.3). */
const MAX_CHALLENGES = 4;

/** One REGISTER and what follows it: answers to challenges and 423 retries. */
interface Exchange {
  /** The registration's generation it belongs to: answers to an older one are ignored. */
  generation: number;
  dest: Endpoint;
  contactUri: string;
  sentBy: string;
  expires: number;
  /** 401/407 answered in a row. */
  challenges: number;
  /** 423 followed in a row. */
  tooBrief: number;
}

/** How an exchange ended: a final response, or the status a failure to get one counts as. */
interface Outcome {
  status?: number;
  reason: string;
  res?: SipResponse;
}

export class TrunkRegistration {
  /** Told of every status change, and of every failure. */
  onChange: (state: RegistrationState) => void = () => {};
  /** The Contact user we register (incoming calls from the provider come to it). */
  readonly contactUser: string;
  private current: RegistrationState = { status: 'idle', failures: 0 };
  private readonly account: { username: string; password: string };
  private readonly aor: string;
  private readonly requestUri: string;
  private readonly callId = randomToken(16);
  private readonly fromTag = randomToken(8);
  private readonly retryMinMs: number;
  private readonly retryMaxMs: number;
  private expires: number;
  private cseq = 0;
  private generation = 0;
  private timer: NodeJS.Timeout | undefined;
  /** An attempt is under way (destination lookup or REGISTER). */
  private pending = false;
  /** The binding the provider last confirmed lasts until then. */
  private boundUntil = 0;
  /** Where the last REGISTER went, with which Contact: what stop() unregisters. */
  private lastSent: Pick<Exchange, 'dest' | 'contactUri' | 'sentBy'> | null = null;

  constructor(
    private readonly env: RegistrationEnv,
    private readonly trunk: TrunkConfig,
    private readonly destination: () => Promise<Endpoint>,
    opts: { retryMinMs?: number; retryMaxMs?: number } = {},
  ) {
    this.contactUser = trunk.username;
    this.account = { username: trunk.authUsername || trunk.username, password: trunk.password };
    this.aor = `<sip:${trunk.fromUser || trunk.username}@${bracket(trunk.fromDomain || trunk.host)}>`;
    const hostPort = trunk.port === 5060 ? bracket(trunk.host) : hostPortText(trunk.host, trunk.port);
    this.requestUri = `sip:${hostPort}${trunk.transport === 'tcp' ? ';transport=tcp' : ''}`;
    this.expires = trunk.expires;
    this.retryMinMs = opts.retryMinMs ?? RETRY_MIN_MS;
    this.retryMaxMs = Math.max(this.retryMinMs, opts.retryMaxMs ?? RETRY_MAX_MS);
  }

  get state(): RegistrationState {
    return { ...this.current };
  }

  start(): void {
    if (this.current.status !== 'idle' && this.current.status !== 'stopped') return;
    this.setState({ status: 'registering', failures: 0 });
    this.attempt();
  }

  /** Unregisters (Expires: 0); resolves on its final response or after `timeoutMs`. */
  async stop(timeoutMs: number): Promise<void> {
    if (this.current.status === 'stopped') return;
    const last = this.lastSent;
    const mayBeBound = last !== null && (this.pending || this.boundUntil > Date.now());
    this.generation++;
    this.clearTimer();
    this.pending = false;
    this.boundUntil = 0;
    const { lastStatus, lastReason, failures } = this.current;
    this.setState({ status: 'stopped', lastStatus, lastReason, failures });
    if (mayBeBound && last !== null) await this.unregister(last, timeoutMs);
  }

  private attempt(): void {
    const generation = ++this.generation;
    this.pending = true;
    Promise.resolve()
      .then(() => this.destination())
      .then(
        (dest) => this.guard(() => {
          if (generation === this.generation) this.register(this.exchange(generation, dest, this.expires));
        }),
        (err: unknown) => this.guard(() => {
          if (generation === this.generation) this.failed({ reason: `no address for ${this.trunk.host}: ${errorText(err)}` });
        }),
      );
  }

  private exchange(generation: number, dest: Endpoint, expires: number): Exchange {
    const host = this.env.localHost(dest.address);
    const port = this.env.sipPort();
    const transport = dest.transport === 'tcp' ? ';transport=tcp' : '';
    const contactUri = `sip:${this.contactUser}@${hostPortText(host, port)}${transport}`;
    return { generation, dest, contactUri, sentBy: hostPortText(host, port), expires, challenges: 0, tooBrief: 0 };
  }

  private register(x: Exchange): void {
    this.send(x, null, (outcome) => this.registerOutcome(x, outcome));
  }

  private registerOutcome(x: Exchange, o: Outcome): void {
    if (o.res !== undefined && o.res.status >= 200 && o.res.status < 300) {
      this.registered(x, o.res);
      return;
    }
    const longer = o.res?.status === 423 ? this.minExpires(x, o.res) : null;
    if (longer !== null) {
      // RFC 3261 section 10.2.8: ask again at once with at least Min-Expires.
      this.expires = x.expires = longer;
      x.tooBrief++;
      x.challenges = 0;
      this.register(x);
      return;
    }
    this.failed(o);
  }

  private minExpires(x: Exchange, res: SipResponse): number | null {
    if (x.tooBrief >= MAX_TOO_BRIEF) return null;
    const min = parseSeconds(res.headers.get('min-expires'));
    return min !== null && min > x.expires && min <= MAX_MIN_EXPIRES ? min : null;
  }

  /**
   * Sends one REGISTER and answers its challenge: once, and again only when the new challenge
   * says stale (the password was right, the nonce old). `done` gets any other final outcome; a
   * timeout counts as 408 and a request that cannot be sent as 503 (RFC 3261 section 8.1.3.1).
   */
  private send(x: Exchange, auth: AuthorizationHeader | null, done: (o: Outcome) => void): void {
    const req = this.request(x, auth);
    this.lastSent = { dest: x.dest, contactUri: x.contactUri, sentBy: x.sentBy };
    let tx: ClientTransaction | null = null;
    try {
      tx = this.env.sendRequest(req, x.dest, {
        onResponse: (res) => this.guard(() => {
          if (res.status >= 200 && x.generation === this.generation) this.answered(x, req, res, done);
        }),
        onTimeout: () => this.guard(() => {
          if (x.generation === this.generation) done({ status: 408, reason: 'Request Timeout (no answer)' });
        }),
      });
    } catch (err) {
      this.env.log('warn', 'trunk.send_failed', { trunk: this.trunk.name, error: errorText(err) });
    }
    if (tx === null) done({ status: 503, reason: 'Service Unavailable (the REGISTER could not be sent)' });
  }

  private answered(x: Exchange, req: SipRequest, res: SipResponse, done: (o: Outcome) => void): void {
    if (res.status === 401 || res.status === 407) {
      const auth = this.answerChallenge(x, req, res);
      if (auth !== null) {
        this.send(x, auth, done);
        return;
      }
    }
    done({ status: res.status, reason: res.reason, res });
  }

  private answerChallenge(x: Exchange, req: SipRequest, res: SipResponse): AuthorizationHeader | null {
    if (x.challenges >= MAX_CHALLENGES || (x.challenges > 0 && !challengeIsStale(res))) return null;
    const auth = authorizationFor(res, this.account, req.method, req.uri);
    if (auth !== null) x.challenges++;
    return auth;
  }

  private request(x: Exchange, auth: AuthorizationHeader | null): SipRequest {
    const h = new Headers();
    const transport = x.dest.transport === 'tcp' ? 'TCP' : 'UDP';
    h.append('via', `SIP/2.0/${transport} ${x.sentBy};branch=${newBranch()}${this.env.viaRport ? ';rport' : ''}`);
    h.append('max-forwards', '70');
    h.append('from', `${this.aor};tag=${this.fromTag}`);
    h.append('to', this.aor);
    h.append('call-id', this.callId);
    h.append('cseq', `${++this.cseq} REGISTER`);
    h.append('contact', `<${x.contactUri}>`);
    h.append('expires', String(x.expires));
    if (this.env.userAgent) h.append('user-agent', this.env.userAgent);
    if (auth !== null) h.append(auth.name, auth.value);
    return createRequest('REGISTER', this.requestUri, h);
  }

  private registered(x: Exchange, res: SipResponse): void {
    const seconds = grantedSeconds(res, x.contactUri, x.expires);
    if (seconds <= 0) {
      this.failed({ status: res.status, reason: `${res.reason} (no binding kept)`, res });
      return;
    }
    const now = Date.now();
    const delay = refreshDelayMs(seconds * 1000);
    const wasRegistered = this.current.status === 'registered';
    this.pending = false;
    this.boundUntil = now + seconds * 1000;
    this.current = { status: 'registered', lastStatus: res.status, lastReason: res.reason, expiresAt: this.boundUntil, nextAttemptAt: now + delay, failures: 0 };
    this.schedule(delay);
    if (wasRegistered) return;
    this.env.log('info', 'trunk.registered', { trunk: this.trunk.name, host: this.trunk.host, expires: seconds, contact: x.contactUri });
    this.changed();
  }

  private failed(o: Outcome): void {
    const failures = this.current.failures + 1;
    const retryMs = Math.min(this.retryMaxMs, this.retryMinMs * 2 ** Math.min(failures - 1, 30));
    this.pending = false;
    const state: RegistrationState = { status: 'failing', lastReason: o.reason, nextAttemptAt: Date.now() + retryMs, failures };
    if (o.status !== undefined) state.lastStatus = o.status;
    this.setState(state);
    this.schedule(retryMs);
    this.env.log('warn', 'trunk.register_failed', {
      trunk: this.trunk.name,
      status: o.status,
      reason: o.reason,
      retryInSeconds: retryMs / 1000,
    });
  }

  private unregister(last: Pick<Exchange, 'dest' | 'contactUri' | 'sentBy'>, timeoutMs: number): Promise<void> {
    const x: Exchange = { ...last, generation: this.generation, expires: 0, challenges: 0, tooBrief: 0 };
    return new Promise<void>((resolve) => {
      let over = false;
      const finish = (o: Outcome | null): void => {
        if (over) return;
        over = true;
        clearTimeout(timer);
        this.logUnregister(o, timeoutMs);
        resolve();
      };
      const timer = setTimeout(() => finish(null), timeoutMs);
      timer.unref();
      this.send(x, null, finish);
    });
  }

  private logUnregister(o: Outcome | null, timeoutMs: number): void {
    const trunk = this.trunk.name;
    if (o === null) this.env.log('warn', 'trunk.unregister_failed', { trunk, reason: `no final answer within ${timeoutMs} ms` });
    else if (o.status !== undefined && o.status >= 200 && o.status < 300) this.env.log('info', 'trunk.unregistered', { trunk });
    else this.env.log('warn', 'trunk.unregister_failed', { trunk, status: o.status, reason: o.reason });
  }

  private schedule(ms: number): void {
    this.clearTimer();
    this.timer = setTimeout(() => this.guard(() => {
      this.timer = undefined;
      this.attempt();
    }), ms);
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private setState(state: RegistrationState): void {
    this.current = state;
    this.changed();
  }

  private changed(): void {
    try {
      this.onChange(this.state);
    } catch (err) {
      this.env.log('warn', 'trunk.state_listener_failed', { trunk: this.trunk.name, error: errorText(err) });
    }
  }

  /**
   * Runs a callback of the transaction layer or a timer: a fault is logged, never thrown back,
   * and a registration it left without a next step is retried like a failure.
   */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.env.log('warn', 'trunk.register_error', { trunk: this.trunk.name, error: errorText(err) });
      if (this.current.status === 'stopped' || this.timer !== undefined) return;
      try {
        this.failed({ reason: `internal error: ${errorText(err)}` });
      } catch {
        // logging itself failed: nothing more can be done here
      }
    }
  }
}

/**
 * The refresh delay for a binding granted for `grantedMs`: half of it, but at least 5 s from
 * now when the binding lasts long enough, and at least 1 s before it ends.
 */
export function refreshDelayMs(grantedMs: number): number {
  if (grantedMs <= 2000) return grantedMs / 2;
  return Math.max(grantedMs / 2, Math.min(5000, grantedMs - 1000));
}

/**
 * RFC 3261 section 10.2.4: the lifetime of our binding is its Contact's expires parameter in
 * the 2xx, else the Expires header, else what we asked for.
 */
function grantedSeconds(res: SipResponse, contactUri: string, asked: number): number {
  for (const element of res.headers.list('contact')) {
    const na = parseNameAddr(element);
    if (na === null || !sameUri(na.uri, contactUri)) continue;
    const seconds = parseSeconds(na.params.get('expires') ?? undefined);
    if (seconds !== null) return seconds;
  }
  return parseSeconds(res.headers.get('expires')) ?? asked;
}

/** RFC 3261 section 10.2.4: a registrar may write our Contact URI differently but equivalently (section 19.1.4). */
function sameUri(a: string, b: string): boolean {
  if (a === b) return true;
  const ua = parseUri(a);
  const ub = parseUri(b);
  return ua !== null && ub !== null && uriEquals(ua, ub);
}

/** delta-seconds (RFC 3261 section 25.1), capped at 2^32-1; null when absent or malformed. */
function parseSeconds(value: string | undefined): number | null {
  if (value === undefined) return null;
  const s = value.trim();
  if (!/^\d{1,10}$/.test(s)) return null;
  return Math.min(Number(s), 0xffffffff);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
