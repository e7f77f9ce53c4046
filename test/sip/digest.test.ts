import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  challengeHeaderValues,
  computeHA1,
  decoyHA1,
  expectedResponse,
  NonceService,
  parseCredentials,
  verifyResponse,
  type Credentials,
} from '../../lib/sip/digest.js';

// RFC 7616 §3.9.1
const RFC7616 = {
  username: 'Mufasa',
  realm: 'http-auth@example.org',
  password: 'Circle of Life',
  uri: '/dir/index.html',
  nonce: '7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v',
  cnonce: 'f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ',
  opaque: 'FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS',
};

function rfc7616Header(algorithm: string, cnonce: string, response: string): string {
  return (
    `Digest username="${RFC7616.username}", realm="${RFC7616.realm}", uri="${RFC7616.uri}", ` +
    `algorithm=${algorithm}, nonce="${RFC7616.nonce}", nc=00000001, cnonce="${cnonce}", qop=auth, ` +
    `response="${response}", opaque="${RFC7616.opaque}"`
  );
}

test('RFC 7616 §3.9.1 SHA-256 example verifies', () => {
  const c = parseCredentials(rfc7616Header('SHA-256', RFC7616.cnonce, '753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1'));
  assert.ok(c);
  const ha1 = computeHA1('SHA-256', RFC7616.username, RFC7616.realm, RFC7616.password);
  assert.equal(expectedResponse(c, 'GET', ha1), '753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1');
  assert.equal(verifyResponse(c, 'GET', ha1), true);
  assert.equal(verifyResponse(c, 'POST', ha1), false, 'method is part of HA2');
});

test('RFC 7616 §3.9.1 MD5 example verifies', () => {
  const c = parseCredentials(rfc7616Header('MD5', RFC7616.cnonce, '8ca523f5e9506fed4657c9700eebdbec'));
  assert.ok(c);
  const ha1 = computeHA1('MD5', RFC7616.username, RFC7616.realm, RFC7616.password);
  assert.equal(expectedResponse(c, 'GET', ha1), '8ca523f5e9506fed4657c9700eebdbec');
  assert.equal(verifyResponse(c, 'GET', ha1), true);
  const wrongPassword = computeHA1('MD5', RFC7616.username, RFC7616.realm, 'circle of life');
  assert.equal(verifyResponse(c, 'GET', wrongPassword), false);
});

test('RFC 2617 §3.5 example (MD5 by default, qop=auth) verifies, upper-case hex accepted', () => {
  const header =
    'Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", ' +
    'uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", ' +
    'response="6629FAE49393A05397450978507C4EF1", opaque="5ccc069c403ebaf9f0171e9517f40e41"';
  const c = parseCredentials(header);
  assert.ok(c);
  assert.equal(c.algorithm, 'MD5');
  const ha1 = computeHA1('MD5', 'Mufasa', 'testrealm@host.com', 'Circle Of Life');
  assert.equal(verifyResponse(c, 'GET', ha1), true);
});

test('no-qop (RFC 2069) response: H(HA1:nonce:HA2)', () => {
  const ha1 = computeHA1('MD5', '100', 'pbx', 'secret');
  const base: Credentials = { scheme: 'Digest', username: '100', realm: 'pbx', nonce: 'n1', uri: 'sip:pbx', response: '', algorithm: 'MD5' };
  const expected = expectedResponse(base, 'REGISTER', ha1);
  assert.match(expected, /^[0-9a-f]{32}$/);
  assert.equal(verifyResponse({ ...base, response: expected }, 'REGISTER', ha1), true);
  assert.equal(verifyResponse({ ...base, response: expected, nonce: 'n2' }, 'REGISTER', ha1), false);
});

test('unsupported algorithm or qop never verifies', () => {
  const ha1 = computeHA1('MD5', 'u', 'r', 'p');
  const c: Credentials = { scheme: 'Digest', username: 'u', realm: 'r', nonce: 'n', uri: 'sip:r', response: 'x', algorithm: 'SHA-512-256' };
  assert.equal(expectedResponse(c, 'REGISTER', ha1), '');
  assert.equal(verifyResponse(c, 'REGISTER', ha1), false);
  const intQop: Credentials = { ...c, algorithm: 'MD5', qop: 'auth-int', nc: '00000001', cnonce: 'c' };
  assert.equal(verifyResponse(intQop, 'REGISTER', ha1), false);
});

test('parseCredentials: escapes, case-insensitive keys, whitespace, token values', () => {
  const c = parseCredentials('  digest  USERNAME = "a\\"b\\\\c" ,Realm="r",nonce=abc,URI="sip:x@y",response="00",algorithm=sha-256');
  assert.ok(c);
  assert.equal(c.username, 'a"b\\c');
  assert.equal(c.realm, 'r');
  assert.equal(c.nonce, 'abc');
  assert.equal(c.uri, 'sip:x@y');
  assert.equal(c.algorithm, 'sha-256');
  assert.equal(c.qop, undefined);
  assert.equal(c.opaque, undefined);
});

test('parseCredentials: refuses what it must refuse', () => {
  const ok = 'Digest username="u", realm="r", nonce="n", uri="sip:r", response="0"';
  assert.ok(parseCredentials(ok));
  const bad = [
    'NoOneKnowsThisScheme username="u", realm="r", nonce="n", uri="sip:r", response="0"',
    'Basic dTpw',
    'Digest',
    'Digest ',
    'Digestusername="u"',
    '',
    'Digest realm="r", nonce="n", uri="sip:r", response="0"', // no username
    'Digest username="u", realm="r", nonce="n", uri="sip:r"', // no response
    'Digest username="u", realm="r", nonce="n", uri="sip:r", response="0", qop=auth', // qop without nc/cnonce
    'Digest username="u", username="v", realm="r", nonce="n", uri="sip:r", response="0"', // repeated
    'Digest username="u, realm="r", nonce="n", uri="sip:r", response="0', // unterminated quote
    'Digest username="u" realm="r"', // missing comma
    'Digest username=, realm="r"',
    'Digest =x',
    'Digest username="u\\',
    ok + ', ' + 'x'.repeat(5000) + '=1', // oversized
    '\u0000\u0001\uffff garbage ""\\',
  ];
  for (const value of bad) assert.equal(parseCredentials(value), null, value.slice(0, 80));
  assert.equal(parseCredentials(undefined as unknown as string), null);
});

test('parseCredentials never throws on random input', () => {
  const alphabet = 'Digest ="\\,abc=\t\r\n\u00e9';
  let state = 12345;
  const next = () => (state = (state * 1103515245 + 12345) & 0x7fffffff);
  for (let n = 0; n < 2000; n++) {
    let s = n % 2 === 0 ? 'Digest ' : '';
    const len = next() % 60;
    for (let k = 0; k < len; k++) s += alphabet[next() % alphabet.length];
    const c = parseCredentials(s);
    assert.ok(c === null || c.scheme === 'Digest');
  }
});

test('challengeHeaderValues: SHA-256 first then MD5, qop auth, stale flag, quoting', () => {
  const [sha, md5, extra] = challengeHeaderValues('pb"x', 'NONCE', 'OP', true);
  assert.equal(extra, undefined);
  assert.equal(sha, 'Digest realm="pb\\"x", nonce="NONCE", opaque="OP", algorithm=SHA-256, qop="auth", stale=TRUE');
  assert.equal(md5, 'Digest realm="pb\\"x", nonce="NONCE", opaque="OP", algorithm=MD5, qop="auth", stale=TRUE');
  const fresh = challengeHeaderValues('r', 'N', '', false);
  assert.equal(fresh[0], 'Digest realm="r", nonce="N", algorithm=SHA-256, qop="auth"');
  // A client's reply to our challenge parses back.
  const reply = parseCredentials(fresh[0]!.replace('Digest ', 'Digest username="u", uri="sip:r", response="1", nc=00000001, cnonce="c", '));
  assert.ok(reply);
  assert.equal(reply.realm, 'r');
});

test('decoyHA1 is stable per user, differs across users, has the real HA1 length', () => {
  const secret = Buffer.alloc(32, 7);
  const a = decoyHA1('MD5', 'ghost', 'r', secret);
  assert.equal(a, decoyHA1('MD5', 'ghost', 'r', secret));
  assert.notEqual(a, decoyHA1('MD5', 'ghost2', 'r', secret));
  assert.notEqual(a, decoyHA1('MD5', 'ghost', 'r', Buffer.alloc(32, 8)));
  assert.match(a, /^[0-9a-f]{32}$/);
  assert.match(decoyHA1('SHA-256', 'ghost', 'r', secret), /^[0-9a-f]{64}$/);
});

test('nonce layout: 6-byte ms timestamp, 9 random bytes, SHA-256(key || both) truncated to 15 bytes', () => {
  for (const secret of [Buffer.alloc(32, 9), Buffer.alloc(100, 3), Buffer.from('short')]) {
    const svc = new NonceService({ secret, now: () => 1_234_567_890_123 });
    const raw = Buffer.from(svc.issue(), 'base64url');
    assert.equal(raw.length, 30);
    assert.equal(raw.readUIntBE(0, 6), 1_234_567_890_123);
    const key = secret.length === 32 ? secret : createHash('sha256').update(secret).digest();
    const mac = createHash('sha256').update(Buffer.concat([key, raw.subarray(0, 15)])).digest().subarray(0, 15);
    assert.deepEqual(raw.subarray(15), mac);
  }
});

function clock(start: number) {
  const c = { t: start, now: () => c.t };
  return c;
}

test('nonce: fresh is ok, older than lifetime is stale, tampered or foreign is invalid', () => {
  const c = clock(1_700_000_000_000);
  const svc = new NonceService({ secret: Buffer.alloc(32, 1), lifetimeMs: 1000, now: c.now });
  const n = svc.issue();
  assert.match(n, /^[A-Za-z0-9_-]{40}$/);
  assert.notEqual(n, svc.issue(), 'two nonces issued in the same millisecond differ');
  assert.equal(svc.check(n), 'ok');
  c.t += 1000;
  assert.equal(svc.check(n), 'ok', 'exactly at the lifetime still ok');
  c.t += 1;
  assert.equal(svc.check(n), 'stale');

  const fresh = svc.issue();
  const flipped = fresh.slice(0, 39) + (fresh[39] === 'A' ? 'B' : 'A');
  assert.equal(svc.check(flipped), 'invalid');
  const other = new NonceService({ secret: Buffer.alloc(32, 2), now: c.now });
  assert.equal(svc.check(other.issue()), 'invalid', 'signed with another secret');
  for (const junk of ['', 'abc', fresh + 'A', fresh.slice(0, 39) + '!', '\u0000'.repeat(40)]) {
    assert.equal(svc.check(junk), 'invalid', JSON.stringify(junk));
  }
});

test('nonce count: hex of 8 digits, strictly increasing, replay refused, per nonce', () => {
  const c = clock(1_000_000);
  const svc = new NonceService({ now: c.now });
  const a = svc.issue();
  const b = svc.issue();
  assert.equal(svc.acceptNonceCount(a, '00000001'), true);
  assert.equal(svc.acceptNonceCount(a, '00000001'), false, 'replay');
  assert.equal(svc.acceptNonceCount(a, '00000003'), true, 'gaps allowed');
  assert.equal(svc.acceptNonceCount(a, '00000002'), false, 'going back refused');
  assert.equal(svc.acceptNonceCount(a, '0000000A'), true, 'upper-case hex');
  assert.equal(svc.acceptNonceCount(b, '00000001'), true, 'another nonce has its own counter');
  for (const bad of ['1', '0000000g', '000000001', '', ' 0000001']) {
    assert.equal(svc.acceptNonceCount(b, bad), false, bad);
  }
  assert.equal(svc.acceptNonceCount('not-a-nonce', '00000001'), false);
});

test('nonce table is bounded; an evicted nonce becomes stale and cannot be replayed', () => {
  const c = clock(5_000_000);
  const svc = new NonceService({ now: c.now, maxTracked: 3, lifetimeMs: 60_000 });
  const nonces: string[] = [];
  for (let n = 0; n < 5; n++) {
    c.t += 1;
    nonces.push(svc.issue());
  }
  assert.equal(svc.trackedCount, 3, 'issued nonces are remembered, at most maxTracked');
  // nonces[0] and [1] were evicted: their use is refused and check() sends the client to re-challenge.
  for (const old of nonces.slice(0, 2)) {
    assert.equal(svc.acceptNonceCount(old, '00000001'), false);
    assert.equal(svc.check(old), 'stale');
  }
  for (const n of nonces.slice(2)) {
    assert.equal(svc.check(n), 'ok');
    assert.equal(svc.acceptNonceCount(n, '00000001'), true);
    assert.equal(svc.acceptNonceCount(n, '00000001'), false, 'the same nc again is a replay');
  }
  assert.equal(svc.acceptNonceCount(nonces[4]!, '00000002'), true);
  // A newly issued nonce works and pushes out the oldest tracked one.
  c.t += 1;
  const later = svc.issue();
  assert.equal(svc.check(later), 'ok');
  assert.equal(svc.acceptNonceCount(later, '00000001'), true);
  assert.equal(svc.trackedCount, 3);
  assert.equal(svc.check(nonces[2]!), 'stale');
});

test('nonce table: the order of eviction holds over many turns of its ring, mixed with expiry and late first use', () => {
  const c = clock(7_000_000);
  const svc = new NonceService({ now: c.now, maxTracked: 4, lifetimeMs: 1_000 });
  const issued: string[] = [];
  for (let n = 0; n < 37; n++) {
    c.t += 10;
    issued.push(svc.issue());
    assert.ok(svc.trackedCount <= 4);
  }
  // The last four are tracked and usable once each; every earlier one is refused.
  for (const n of issued.slice(0, 33)) assert.equal(svc.acceptNonceCount(n, '00000001'), false);
  for (const n of issued.slice(33)) assert.equal(svc.acceptNonceCount(n, '00000001'), true);
  // After their lifetime they leave as new ones come, and the ring keeps going.
  c.t += 5_000;
  for (let n = 0; n < 9; n++) {
    c.t += 10;
    const fresh = svc.issue();
    assert.equal(svc.acceptNonceCount(fresh, '00000001'), true);
    assert.equal(svc.acceptNonceCount(fresh, '00000001'), false, 'replay');
  }
  assert.equal(svc.trackedCount, 4);
});

test('expired entries leave the table as new nonces arrive', () => {
  const c = clock(9_000_000);
  const svc = new NonceService({ now: c.now, lifetimeMs: 100 });
  for (let n = 0; n < 4; n++) assert.equal(svc.acceptNonceCount(svc.issue(), '00000001'), true);
  assert.equal(svc.trackedCount, 4);
  c.t += 500;
  const fresh = svc.issue();
  assert.equal(svc.acceptNonceCount(fresh, '00000001'), true);
  assert.equal(svc.trackedCount, 1);
});

test('20,000 verifications of the same credentials all succeed (parsing and checks keep no state that drifts)', () => {
  const ha1 = computeHA1('MD5', '100', 'pbx', 'pw');
  const svc = new NonceService();
  const nonce = svc.issue();
  const c: Credentials = {
    scheme: 'Digest', username: '100', realm: 'pbx', nonce, uri: 'sip:pbx', response: '',
    algorithm: 'MD5', qop: 'auth', nc: '00000001', cnonce: 'abc',
  };
  c.response = expectedResponse(c, 'REGISTER', ha1);
  const header = `Digest username="100", realm="pbx", nonce="${nonce}", uri="sip:pbx", response="${c.response}", algorithm=MD5, qop=auth, nc=00000001, cnonce="abc"`;
  let ok = 0;
  for (let n = 0; n < 20_000; n++) {
    const parsed = parseCredentials(header);
    if (parsed && svc.check(parsed.nonce) === 'ok' && verifyResponse(parsed, 'REGISTER', ha1)) ok++;
  }
  assert.equal(ok, 20_000); // speed: scripts/bench/registrar-bench.mjs
});
