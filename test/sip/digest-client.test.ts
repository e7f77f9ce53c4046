import { test } from 'node:test';
import assert from 'node:assert/strict';
import { authorizationFor, challengeIsStale } from '../../lib/sip/digest-client.js';
import { challengeHeaderValues, computeHA1, parseCredentials, verifyResponse, type DigestAlgorithm } from '../../lib/sip/digest.js';
import { createResponseObject, Headers, type SipResponse } from '../../lib/sip/message.js';

const account = { username: '5001', password: 'secret5001' };
const URI = 'sip:carrier.example.com';

function challenged(status: number, values: string[]): SipResponse {
  const h = new Headers();
  for (const v of values) h.append(status === 407 ? 'proxy-authenticate' : 'www-authenticate', v);
  return createResponseObject(status, status === 407 ? 'Proxy Authentication Required' : 'Unauthorized', h);
}

/** What the server-side verifier says about the answer, and the credentials it read. */
function verify(value: string, realm: string, algorithm: DigestAlgorithm, method = 'REGISTER', password = account.password) {
  const creds = parseCredentials(value);
  assert.ok(creds, `unparsable credentials: ${value}`);
  const ok = verifyResponse(creds, method, computeHA1(algorithm, creds.username, realm, password));
  return { creds, ok };
}

for (const algorithm of ['SHA-256', 'MD5'] as const) {
  test(`a ${algorithm} challenge with qop=auth is answered in the form the server verifies`, () => {
    const res = challenged(401, challengeHeaderValues('pbx', 'n0nce', 'op4que', false, [algorithm]));
    const auth = authorizationFor(res, account, 'REGISTER', URI);
    assert.ok(auth);
    assert.equal(auth.name, 'authorization');
    const { creds, ok } = verify(auth.value, 'pbx', algorithm);
    assert.equal(ok, true);
    assert.equal(creds.algorithm, algorithm);
    assert.equal(creds.qop, 'auth');
    assert.equal(creds.nc, '00000001');
    assert.match(creds.cnonce ?? '', /^[0-9a-f]{32}$/);
    assert.equal(creds.opaque, 'op4que');
    assert.equal(creds.uri, URI);
    assert.equal(creds.username, '5001');
    assert.equal(verify(auth.value, 'pbx', algorithm, 'INVITE').ok, false, 'the method is part of HA2');
    assert.equal(verify(auth.value, 'pbx', algorithm, 'REGISTER', 'wrong').ok, false);
  });

  test(`a ${algorithm} challenge without qop gets the RFC 2069 form`, () => {
    const res = challenged(407, [`Digest realm="pbx", nonce="abc", algorithm=${algorithm}`]);
    const auth = authorizationFor(res, account, 'INVITE', URI);
    assert.ok(auth);
    assert.equal(auth.name, 'proxy-authorization');
    const { creds, ok } = verify(auth.value, 'pbx', algorithm, 'INVITE');
    assert.equal(ok, true);
    assert.equal(creds.qop, undefined);
    assert.equal(creds.nc, undefined);
    assert.equal(creds.cnonce, undefined);
    assert.equal(creds.opaque, undefined);
  });
}

test('each answer has a fresh cnonce', () => {
  const res = challenged(401, challengeHeaderValues('pbx', 'n', '', false, ['MD5']));
  const a = parseCredentials(authorizationFor(res, account, 'REGISTER', URI)!.value)!;
  const b = parseCredentials(authorizationFor(res, account, 'REGISTER', URI)!.value)!;
  assert.notEqual(a.cnonce, b.cnonce);
});

test('SHA-256 is preferred over MD5 whatever their order (RFC 8760)', () => {
  for (const order of [['MD5', 'SHA-256'], ['SHA-256', 'MD5']] as const) {
    const res = challenged(401, challengeHeaderValues('pbx', 'n', 'o', false, order));
    const auth = authorizationFor(res, account, 'REGISTER', URI)!;
    const { creds, ok } = verify(auth.value, 'pbx', 'SHA-256');
    assert.equal(creds.algorithm, 'SHA-256');
    assert.equal(ok, true);
  }
});

test('no algorithm means MD5; algorithm tokens are case-insensitive', () => {
  let auth = authorizationFor(challenged(401, ['Digest realm="pbx", nonce="n", qop="auth"']), account, 'REGISTER', URI)!;
  assert.equal(verify(auth.value, 'pbx', 'MD5').ok, true);
  assert.equal(parseCredentials(auth.value)!.algorithm, 'MD5');
  auth = authorizationFor(challenged(401, ['Digest realm="pbx", nonce="n", algorithm=sha-256, qop="auth"']), account, 'REGISTER', URI)!;
  assert.equal(verify(auth.value, 'pbx', 'SHA-256').ok, true);
});

test('-sess and unknown algorithms are skipped; nothing usable gives null', () => {
  const sessOnly = challenged(401, [
    'Digest realm="pbx", nonce="n", algorithm=MD5-sess, qop="auth"',
    'Digest realm="pbx", nonce="n", algorithm=SHA-256-sess, qop="auth"',
    'Digest realm="pbx", nonce="n", algorithm=SHA-512-256, qop="auth"',
  ]);
  assert.equal(authorizationFor(sessOnly, account, 'REGISTER', URI), null);
  const withMd5 = challenged(401, [
    'Digest realm="pbx", nonce="n1", algorithm=SHA-512-256, qop="auth"',
    'Digest realm="pbx", nonce="n2", algorithm=SHA-256-sess, qop="auth"',
    'Digest realm="pbx", nonce="n3", algorithm=MD5, qop="auth"',
  ]);
  const creds = parseCredentials(authorizationFor(withMd5, account, 'REGISTER', URI)!.value)!;
  assert.equal(creds.algorithm, 'MD5');
  assert.equal(creds.nonce, 'n3');
});

test('auth-int alone is skipped; a qop list that also offers auth is answered with auth', () => {
  assert.equal(authorizationFor(challenged(401, ['Digest realm="pbx", nonce="n", qop="auth-int"']), account, 'REGISTER', URI, Buffer.from('x')), null);
  const auth = authorizationFor(challenged(401, ['Digest realm="pbx", nonce="n", qop="auth-int, auth"']), account, 'REGISTER', URI)!;
  const { creds, ok } = verify(auth.value, 'pbx', 'MD5');
  assert.equal(creds.qop, 'auth');
  assert.equal(ok, true);
  const fallback = challenged(401, [
    'Digest realm="pbx", nonce="n1", algorithm=SHA-256, qop="auth-int"',
    'Digest realm="pbx", nonce="n2", algorithm=MD5, qop="auth"',
  ]);
  assert.equal(parseCredentials(authorizationFor(fallback, account, 'REGISTER', URI)!.value)!.algorithm, 'MD5');
});

test('not a challenge: other statuses, no header, other schemes, missing realm or nonce', () => {
  const values = challengeHeaderValues('pbx', 'n', '', false, ['MD5']);
  const ok = challenged(401, values);
  assert.equal(authorizationFor({ ...ok, status: 403 }, account, 'REGISTER', URI), null);
  assert.equal(authorizationFor(challenged(401, []), account, 'REGISTER', URI), null);
  // a 407 reads Proxy-Authenticate only
  const wrongHeader = createResponseObject(407, 'Proxy Authentication Required', new Headers().append('www-authenticate', values[0]!));
  assert.equal(authorizationFor(wrongHeader, account, 'INVITE', URI), null);
  assert.equal(authorizationFor(challenged(401, ['Basic realm="pbx"']), account, 'REGISTER', URI), null);
  assert.equal(authorizationFor(challenged(401, ['Digest nonce="n"']), account, 'REGISTER', URI), null);
  assert.equal(authorizationFor(challenged(401, ['Digest realm="pbx"']), account, 'REGISTER', URI), null);
  assert.equal(authorizationFor(challenged(401, ['Digest realm="pbx", nonce="unclosed']), account, 'REGISTER', URI), null);
});

test('several challenges in one header line are told apart (RFC 7235 section 4.1)', () => {
  const res = challenged(401, ['Basic realm="x, y", Digest realm="pbx", nonce="n1", algorithm=MD5, qop="auth", Digest realm="pbx", nonce="n2", algorithm=SHA-256, qop="auth,auth-int"']);
  const auth = authorizationFor(res, account, 'REGISTER', URI)!;
  const { creds, ok } = verify(auth.value, 'pbx', 'SHA-256');
  assert.equal(creds.nonce, 'n2');
  assert.equal(ok, true);
});

test('values with quotes and backslashes are escaped; the verifier reads them back (RFC 7616 section 3.4)', () => {
  const realm = 'the "big" \\ carrier';
  const user = { username: 'we"ird\\user', password: 'p"w\\d' };
  const res = challenged(401, challengeHeaderValues(realm, 'n"o\\nce', 'o"p\\aque', false, ['SHA-256']));
  const auth = authorizationFor(res, user, 'REGISTER', URI)!;
  const creds = parseCredentials(auth.value)!;
  assert.equal(creds.username, user.username);
  assert.equal(creds.realm, realm);
  assert.equal(creds.nonce, 'n"o\\nce');
  assert.equal(creds.opaque, 'o"p\\aque');
  assert.equal(verifyResponse(creds, 'REGISTER', computeHA1('SHA-256', user.username, realm, user.password)), true);
  // algorithm, qop and nc are tokens, never quoted
  assert.match(auth.value, /algorithm=SHA-256,/);
  assert.match(auth.value, /qop=auth,/);
  assert.match(auth.value, /nc=00000001,/);
});

test('stale=true is recognised in the challenge of the response', () => {
  assert.equal(challengeIsStale(challenged(401, challengeHeaderValues('pbx', 'n', '', true))), true);
  assert.equal(challengeIsStale(challenged(407, ['Digest realm="pbx", nonce="n", stale="true"'])), true);
  assert.equal(challengeIsStale(challenged(401, challengeHeaderValues('pbx', 'n', '', false))), false);
  assert.equal(challengeIsStale(challenged(401, ['Digest realm="pbx", nonce="n", stale=false'])), false);
});
