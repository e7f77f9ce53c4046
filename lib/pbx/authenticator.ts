import {
  challengeHeaderValues,
  decoyHA1,
  parseCredentials,
  verifyResponse,
  type Credentials,
  type DigestAlgorithm,
  type NonceService,
} from '../sip/digest.js';
import { createResponse, type SipRequest, type SipResponse } from '../sip/message.js';
import type { ExtensionRecord } from '../store/store.js';
import type { Endpoint } from '../sip/transport/types.js';

export type AuthOutcome = { ok: true; user: string } | { ok: false; response: SipResponse; reason: string };

export interface AuthenticatorOptions {
  /** Where extension records come from (an ExtensionCache in the server). */
  extensions: { get(number: string): ExtensionRecord | undefined };
  nonces: NonceService;
  realm: string;
  /** Server secret: derives decoy hashes for users that do not exist. */
  secret: Buffer;
  /** Algorithms offered, in the order of the challenges (most preferred first, RFC 7616 section 3.7). */
  algorithms?: readonly DigestAlgorithm[];
  /** User-Agent fragments (any case) of clients that fail on any challenge but MD5. */
  md5OnlyUserAgents?: readonly string[];
  /**
   * Told of each failed authentication whose source is known (lib/security counts them towards a
   * ban): a wrong answer (wrong password or unknown user, alike) and a nonce we never issued.
   * Not a missing answer, a stale nonce, an unsupported algorithm or a replayed nonce-count:
   * those are challenged again and guess nothing.
   */
  onFailure?: (source: Endpoint) => void;
}

/**
 * Digest authentication of requests (RFC 3261 section 22, RFC 7616, RFC 8760) for REGISTER (401,
 * WWW-Authenticate) and for requests a proxy would challenge (407, Proxy-Authenticate).
 *
 * Known and unknown users are indistinguishable from outside: both get the same challenge, an
 * unknown user's answer is checked against a decoy hash (same work, always wrong), and a wrong
 * answer gets the same 403 either way.
 */
export class Authenticator {
  /**
   * Answers refused with 403 'wrong credentials' (a password guessed wrong, or an unknown user):
   * a plain number on the failure path, read by the metrics when scraped.
   */
  wrongCredentials = 0;
  private readonly opaque: string;
  private readonly algorithms: readonly DigestAlgorithm[];

  constructor(private readonly opts: AuthenticatorOptions) {
    this.opaque = opts.secret.subarray(0, 8).toString('hex');
    this.algorithms = opts.algorithms ?? ['SHA-256', 'MD5'];
    this.md5Only = (opts.md5OnlyUserAgents ?? []).map((p) => p.toLowerCase());
  }

  private readonly md5Only: string[];

  /**
   * The algorithms to challenge this request with. Some clients (old libre/baresip, sofia-sip)
   * abandon the registration when any challenge names an algorithm they lack, instead of
   * picking the one they know (RFC 7616 section 3.7); they are recognised by User-Agent.
   */
  private algorithmsFor(req: SipRequest): readonly DigestAlgorithm[] {
    if (this.md5Only.length === 0 || !this.algorithms.includes('MD5')) return this.algorithms;
    const ua = req.headers.get('user-agent');
    if (ua === undefined) return this.algorithms;
    const lower = ua.toLowerCase();
    for (const token of this.md5Only) if (lower.includes(token)) return MD5_ONLY;
    return this.algorithms;
  }

  /** `source`: where the request came from, for onFailure. */
  authenticate(req: SipRequest, mode: 'www' | 'proxy', toTag: string, source?: Endpoint): AuthOutcome {
    const headerName = mode === 'www' ? 'authorization' : 'proxy-authorization';
    const creds = this.pickCredentials(req.headers.getAll(headerName));
    if (!creds) return this.challenge(req, mode, toTag, false, 'no credentials');

    const algorithm = normaliseAlgorithm(creds.algorithm);
    if (!algorithm || !this.algorithms.includes(algorithm)) return this.challenge(req, mode, toTag, false, `unsupported algorithm ${creds.algorithm}`);
    if (creds.qop !== undefined && creds.qop.toLowerCase() !== 'auth') {
      return this.challenge(req, mode, toTag, false, `unsupported qop ${creds.qop}`);
    }

    const nonceState = this.opts.nonces.check(creds.nonce);
    if (nonceState !== 'ok') {
      if (nonceState === 'invalid' && source !== undefined) this.opts.onFailure?.(source);
      return this.challenge(req, mode, toTag, nonceState === 'stale', `nonce ${nonceState}`);
    }

    const ext = this.opts.extensions.get(creds.username);
    const ha1 =
      ext && ext.realm === this.opts.realm
        ? algorithm === 'SHA-256'
          ? ext.ha1Sha256
          : ext.ha1Md5
        : decoyHA1(algorithm, creds.username, this.opts.realm, this.opts.secret);
    if (!verifyResponse(creds, req.method, ha1)) {
      this.wrongCredentials++;
      if (source !== undefined) this.opts.onFailure?.(source);
      return { ok: false, response: createResponse(req, 403, 'Forbidden', toTag), reason: 'wrong credentials' };
    }
    // RFC 7616 section 3.4: a nonce-count that does not increase is a replay; challenge afresh.
    if (creds.qop !== undefined && !this.opts.nonces.acceptNonceCount(creds.nonce, creds.nc ?? '')) {
      return this.challenge(req, mode, toTag, true, 'nonce-count replayed');
    }
    return { ok: true, user: creds.username };
  }

  /**
   * True when the request carries credentials for our realm whose nonce this server issued
   * within the last `withinMs`: it answers a recent challenge, i.e. it is the second half of an
   * attempt that was admitted once already (overload control serves it). Nothing is verified
   * here; authenticate() still does that.
   */
  answersRecentChallenge(req: SipRequest, withinMs: number): boolean {
    const values = req.headers.getAll(req.method === 'REGISTER' ? 'authorization' : 'proxy-authorization');
    for (const v of values) {
      const c = parseCredentials(v);
      if (c !== null && c.realm === this.opts.realm && this.opts.nonces.issuedWithin(c.nonce, withinMs)) return true;
    }
    return false;
  }

  /** Several credentials may be present (one per realm or algorithm): take the one for our realm. */
  private pickCredentials(values: string[]): Credentials | null {
    let fallback: Credentials | null = null;
    for (const v of values) {
      const c = parseCredentials(v);
      if (!c) continue;
      if (c.realm === this.opts.realm) return c;
      fallback ??= c;
    }
    return fallback && fallback.realm === this.opts.realm ? fallback : null;
  }

  challenge(req: SipRequest, mode: 'www' | 'proxy', toTag: string, stale: boolean, reason: string): Extract<AuthOutcome, { ok: false }> {
    const res = createResponse(req, mode === 'www' ? 401 : 407, undefined, toTag);
    const header = mode === 'www' ? 'WWW-Authenticate' : 'Proxy-Authenticate';
    for (const value of challengeHeaderValues(this.opts.realm, this.opts.nonces.issue(), this.opaque, stale, this.algorithmsFor(req))) {
      res.headers.append(header, value);
    }
    return { ok: false, response: res, reason };
  }
}

const MD5_ONLY: readonly DigestAlgorithm[] = ['MD5'];

function normaliseAlgorithm(alg: string): DigestAlgorithm | null {
  const a = alg.toUpperCase();
  if (a === 'MD5') return 'MD5';
  if (a === 'SHA-256') return 'SHA-256';
  return null;
}
