/**
 * The client side of HTTP Digest as SIP uses it (RFC 3261 section 22.2, RFC 7616, RFC 8760):
 * answering a 401 or 407 with credentials for one account. The server side is lib/sip/digest.ts.
 */
import { createHash } from 'node:crypto';
import { computeHA1, type DigestAlgorithm } from './digest.js';
import { parseAuthHeader, type AuthHeader } from './headers/auth.js';
import { quote } from './headers/lex.js';
import { splitTopLevelCommas, type SipResponse } from './message.js';
import { randomToken } from './random-id.js';

export interface DigestAccount {
  username: string;
  password: string;
}

export interface AuthorizationHeader {
  name: 'authorization' | 'proxy-authorization';
  value: string;
}

/** A challenge we can answer. */
interface UsableChallenge {
  algorithm: DigestAlgorithm;
  realm: string;
  nonce: string;
  opaque: string | undefined;
  /** qop=auth offered; otherwise the RFC 2069 form is answered. */
  qopAuth: boolean;
}

const HASH_NAME: Record<DigestAlgorithm, string> = { MD5: 'md5', 'SHA-256': 'sha256' };

/** RFC 8760 section 2.4: the strongest algorithm offered wins. */
const PREFERENCE: readonly DigestAlgorithm[] = ['SHA-256', 'MD5'];

/**
 * The Authorization (for a 401) or Proxy-Authorization (for a 407) that answers `res` for a
 * request `method uri`; null when the response carries no challenge we can answer. auth-int is
 * not supported, so `body` is not used.
 */
export function authorizationFor(res: SipResponse, account: DigestAccount, method: string, uri: string, _body?: Buffer): AuthorizationHeader | null {
  const names = headerNames(res.status);
  if (names === null) return null;
  const challenge = bestChallenge(res.headers.getAll(names.challenge));
  if (challenge === null) return null;
  return { name: names.credentials, value: credentialsValue(challenge, account, method, uri) };
}

/** True when a challenge of the 401/407 says stale=true (RFC 7616 section 3.3): the password was right. */
export function challengeIsStale(res: SipResponse): boolean {
  const names = headerNames(res.status);
  if (names === null) return false;
  return digestChallenges(res.headers.getAll(names.challenge)).some((c) => c.params.get('stale')?.toLowerCase() === 'true');
}

function headerNames(status: number): { challenge: string; credentials: AuthorizationHeader['name'] } | null {
  if (status === 401) return { challenge: 'www-authenticate', credentials: 'authorization' };
  if (status === 407) return { challenge: 'proxy-authenticate', credentials: 'proxy-authorization' };
  return null;
}

function bestChallenge(lines: string[]): UsableChallenge | null {
  const usable = digestChallenges(lines).map(usableChallenge).filter((c): c is UsableChallenge => c !== null);
  for (const algorithm of PREFERENCE) {
    const found = usable.find((c) => c.algorithm === algorithm);
    if (found) return found;
  }
  return null;
}

/** Every Digest challenge in the header lines (a line may hold several, RFC 7235 section 4.1). */
function digestChallenges(lines: string[]): AuthHeader[] {
  const out: AuthHeader[] = [];
  for (const line of lines) {
    for (const text of splitChallenges(line)) {
      const parsed = parseAuthHeader(text);
      if (parsed && parsed.scheme.toLowerCase() === 'digest') out.push(parsed);
    }
  }
  return out;
}

/** An element that starts with `token SP` (and not `token =`) opens a new challenge. */
const CHALLENGE_START = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+\s+[^\s=]/;

function splitChallenges(line: string): string[] {
  const challenges: string[] = [];
  for (const element of splitTopLevelCommas(line, [])) {
    if (challenges.length === 0 || CHALLENGE_START.test(element)) challenges.push(element);
    else challenges[challenges.length - 1] += `, ${element}`;
  }
  return challenges;
}

/**
 * RFC 7616 section 3.3: no algorithm means MD5; -sess variants and algorithms we lack are
 * skipped, and so is a qop list without "auth" (auth-int alone).
 */
function usableChallenge(c: AuthHeader): UsableChallenge | null {
  const realm = c.params.get('realm');
  const nonce = c.params.get('nonce');
  if (realm === undefined || nonce === undefined) return null;
  const algorithm = algorithmOf(c.params.get('algorithm') ?? 'MD5');
  if (algorithm === null) return null;
  const qop = c.params.get('qop');
  const qopAuth = qop !== undefined && qop.split(',').some((q) => q.trim().toLowerCase() === 'auth');
  if (qop !== undefined && !qopAuth) return null;
  return { algorithm, realm, nonce, opaque: c.params.get('opaque'), qopAuth };
}

function algorithmOf(token: string): DigestAlgorithm | null {
  const upper = token.toUpperCase();
  if (upper === 'MD5') return 'MD5';
  if (upper === 'SHA-256') return 'SHA-256';
  return null;
}

function hashHex(algorithm: DigestAlgorithm, text: string): string {
  return createHash(HASH_NAME[algorithm]).update(text, 'utf8').digest('hex');
}

/**
 * RFC 7616 section 3.4: username, realm, nonce, uri, response, cnonce and opaque are
 * quoted-strings; algorithm, qop and nc are tokens.
 */
function credentialsValue(c: UsableChallenge, account: DigestAccount, method: string, uri: string): string {
  const ha1 = computeHA1(c.algorithm, account.username, c.realm, account.password);
  const ha2 = hashHex(c.algorithm, `${method}:${uri}`);
  let value = `Digest username=${quote(account.username)}, realm=${quote(c.realm)}, nonce=${quote(c.nonce)}, uri=${quote(uri)}`;
  if (c.qopAuth) {
    const nc = '00000001';
    const cnonce = randomToken(16);
    const response = hashHex(c.algorithm, `${ha1}:${c.nonce}:${nc}:${cnonce}:auth:${ha2}`);
    value += `, response=${quote(response)}, algorithm=${c.algorithm}, qop=auth, nc=${nc}, cnonce=${quote(cnonce)}`;
  } else {
    // RFC 2069 form, kept by RFC 3261 section 22.4.
    value += `, response=${quote(hashHex(c.algorithm, `${ha1}:${c.nonce}:${ha2}`))}, algorithm=${c.algorithm}`;
  }
  if (c.opaque !== undefined) value += `, opaque=${quote(c.opaque)}`;
  return value;
}
