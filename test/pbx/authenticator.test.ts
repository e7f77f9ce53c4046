import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { requestFromLines } from '../helpers/request.js';
import type { SipRequest } from '../../lib/sip/message.js';
import { computeHA1, NonceService } from '../../lib/sip/digest.js';
import { Authenticator } from '../../lib/pbx/authenticator.js';
import type { ExtensionRecord } from '../../lib/store/store.js';

const REALM = 'pbx.test';
const md5 = (s: string) => createHash('md5').update(s).digest('hex');

function register(authorization?: string): SipRequest {
  return requestFromLines([
    'REGISTER sip:pbx.test SIP/2.0',
    'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-auth',
    'From: <sip:500@pbx.test>;tag=a',
    'To: <sip:500@pbx.test>',
    'Call-ID: auth-test',
    'CSeq: 1 REGISTER',
    ...(authorization ? [`Authorization: ${authorization}`] : []),
  ]);
}

function answer(challenge: string, password: string): string {
  const nonce = /nonce="([^"]+)"/.exec(challenge)![1]!;
  const ha1 = md5(`500:${REALM}:${password}`);
  const response = md5(`${ha1}:${nonce}:00000001:c1:auth:${md5('REGISTER:sip:pbx.test')}`);
  return `Digest username="500", realm="${REALM}", nonce="${nonce}", uri="sip:pbx.test", response="${response}", algorithm=MD5, qop=auth, nc=00000001, cnonce="c1"`;
}

test('an answer to an expired nonce is challenged again with stale=TRUE; a fresh one passes', () => {
  let now = 1_800_000_000_000;
  const record: ExtensionRecord = {
    number: '500', displayName: '', realm: REALM, createdAt: 0, allow: [],
    ha1Md5: computeHA1('MD5', '500', REALM, 'pw'), ha1Sha256: computeHA1('SHA-256', '500', REALM, 'pw'),
  };
  const auth = new Authenticator({
    extensions: { get: (n) => (n === '500' ? record : undefined) },
    nonces: new NonceService({ lifetimeMs: 60_000, now: () => now }),
    realm: REALM,
    secret: Buffer.alloc(32, 7),
    algorithms: ['MD5'],
  });
  const first = auth.authenticate(register(), 'www', 't1');
  assert.equal(first.ok, false);
  const challenge = !first.ok ? first.response.headers.get('www-authenticate')! : '';
  assert.doesNotMatch(challenge, /stale/i);

  now += 61_000;
  const late = auth.authenticate(register(answer(challenge, 'pw')), 'www', 't2');
  assert.equal(late.ok, false);
  assert.equal(!late.ok && late.response.status, 401);
  const fresh = !late.ok ? late.response.headers.get('www-authenticate')! : '';
  assert.match(fresh, /stale=TRUE/);

  const ok = auth.authenticate(register(answer(fresh, 'pw')), 'www', 't3');
  assert.deepEqual(ok, { ok: true, user: '500' });
  const wrong = auth.authenticate(register(answer(fresh, 'nope')), 'www', 't4');
  assert.equal(!wrong.ok && wrong.response.status, 403);
});
