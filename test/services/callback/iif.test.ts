// The call-back text protocol: what parseIif accepts and refuses, formatIif's output, callBackRequest.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ACK_RESULTS, callBackRequest, formatIif, MAX_DATAGRAM_BYTES, MAX_PARAMETERS, parseIif, RESPONSE_RESULTS, type IifError, type IifParse } from '../../../lib/services/callback/iif.js';
import { mulberry32 } from '../../helpers/prng.js';

function ok(text: string | Uint8Array): { method: string; params: Record<string, string> } {
  const r = parseIif(text);
  assert.ok(r.ok, `expected ${JSON.stringify(String(text))} to parse, got ${JSON.stringify(r)}`);
  return { method: r.message.method, params: Object.fromEntries(r.message.params) };
}

function fails(text: string | Uint8Array, error: IifError): Extract<IifParse, { ok: false }> {
  const r = parseIif(text);
  assert.ok(!r.ok, `expected ${JSON.stringify(String(text).slice(0, 80))} to fail with ${error}`);
  assert.equal(r.error, error, r.detail);
  assert.equal(typeof r.detail, 'string');
  return r;
}

test('both spellings: with and without the space after the colon', () => {
  assert.deepEqual(ok('REQUEST:id=1'), { method: 'REQUEST', params: { id: '1' } });
  assert.deepEqual(ok('REQUEST: id=1'), { method: 'REQUEST', params: { id: '1' } });
  assert.deepEqual(ok('ACK:   id=1'), { method: 'ACK', params: { id: '1' } });
  assert.deepEqual(ok(Buffer.from('RESPONSE: id=1;result=0;duration=12;cause=16\r\n')).params, { id: '1', result: '0', duration: '12', cause: '16' });
});

test('every method, and the separators ; , and spaces', () => {
  for (const m of ['REQUEST', 'ACK', 'RESPONSE', 'CANCEL', 'RELEASE']) assert.equal(ok(`${m}: id=x`).method, m);
  const want = { id: '7', user1: '101', user2: '102' };
  assert.deepEqual(ok('REQUEST: id=7;user1=101;user2=102').params, want);
  assert.deepEqual(ok('REQUEST: id=7,user1=101,user2=102').params, want);
  assert.deepEqual(ok('REQUEST: id=7 user1=101\tuser2=102').params, want);
  assert.deepEqual(ok('REQUEST: id=7; user1=101 ,user2=102;;').params, want);
});

test('spaces around = and names in any case', () => {
  assert.deepEqual(ok('REQUEST: id = 7 ; USER1= 101;User2 =102').params, { id: '7', user1: '101', user2: '102' });
  assert.deepEqual(ok('REQUEST: ID=7;Caller1=anonymous').params, { id: '7', caller1: 'anonymous' });
});

test('every alias gives the canonical name', () => {
  for (const a of ['id', 'index', 'callid', 'seq', 'INDEX', 'CallId']) assert.deepEqual(ok(`CANCEL: ${a}=z9`).params, { id: 'z9' });
  for (const a of ['user1', 'callee1', 'called1']) assert.deepEqual(ok(`REQUEST: ${a}=101`).params, { user1: '101' });
  for (const a of ['user2', 'callee2', 'called2']) assert.deepEqual(ok(`REQUEST: ${a}=102`).params, { user2: '102' });
  for (const a of ['duration', 'maxduration', 'time', 'MaxDuration']) assert.deepEqual(ok(`REQUEST: ${a}=60`).params, { duration: '60' });
  assert.deepEqual(ok('REQUEST: caller1=1;caller2=2').params, { caller1: '1', caller2: '2' });
  assert.deepEqual(ok('ACK: id=1;result=2;reason=unknown-number').params, { id: '1', result: '2', reason: 'unknown-number' });
});

test('unknown parameters are ignored, whatever their value', () => {
  assert.deepEqual(ok('REQUEST: id=1;foo=bar;user1=101;x_2=<weird>;user2=102').params, { id: '1', user1: '101', user2: '102' });
});

test('a parameter given twice (also through an alias) is malformed, and the id is still read', () => {
  assert.equal(fails('REQUEST: id=1;user1=101;user1=102', 'malformed').id, '1');
  assert.equal(fails('REQUEST: id=1;user1=101;callee1=102', 'malformed').id, '1');
  const twice = fails('REQUEST: id=1;seq=2', 'malformed');
  assert.equal(twice.id, '1');
  assert.equal(twice.method, 'REQUEST');
});

test('a missing value, a value holding =, a name without =', () => {
  assert.equal(fails('REQUEST: id=5;user1=;user2=1', 'malformed').id, '5');
  fails('REQUEST: id=5;user1', 'malformed');
  fails('REQUEST: id=', 'malformed');
  assert.equal(fails('REQUEST: id=5;user1=1=2', 'malformed').id, '5');
  fails('REQUEST: =5', 'malformed');
  fails('REQUEST: id-x=5', 'malformed');
});

test('a datagram over 1500 bytes is too large, and its id is still read', () => {
  const big = `REQUEST: id=big1;user1=101;user2=102;x=${'a'.repeat(MAX_DATAGRAM_BYTES)}`;
  const r = fails(big, 'too-large');
  assert.equal(r.id, 'big1');
  assert.equal(r.method, 'REQUEST');
  assert.equal(fails(Buffer.from(big), 'too-large').id, 'big1');
  const exact = `ACK: id=1;x=${'a'.repeat(MAX_DATAGRAM_BYTES - 'ACK: id=1;x='.length)}`;
  assert.equal(Buffer.byteLength(exact), MAX_DATAGRAM_BYTES);
  assert.equal(ok(exact).method, 'ACK', 'exactly 1500 bytes is fine');
  assert.equal(parseIif(`${exact}b`).ok, false);
  // A Uint8Array that is a view into a larger buffer.
  const backing = Buffer.from(`xxxxCANCEL: id=v1yyyy`);
  assert.deepEqual(ok(new Uint8Array(backing.buffer, backing.byteOffset + 4, 'CANCEL: id=v1'.length)).params, { id: 'v1' });
});

test(`more than ${MAX_PARAMETERS} parameters are refused`, () => {
  const params = (n: number) => Array.from({ length: n }, (_, i) => `p${i}=${i}`);
  assert.equal(ok(`REQUEST: ${['id=m', ...params(MAX_PARAMETERS - 1)].join(';')}`).params.id, 'm');
  const r = fails(`REQUEST: ${['id=m', ...params(MAX_PARAMETERS)].join(';')}`, 'too-many-parameters');
  assert.equal(r.id, 'm');
});

test('an unknown or lower-case method, or none', () => {
  fails('INVITE: id=1', 'unknown-method');
  fails('request: id=1', 'unknown-method');
  fails('Request: id=1', 'unknown-method');
  assert.equal(fails('request: id=1', 'unknown-method').method, undefined);
  fails('REQUEST id=1', 'malformed');
  fails(':id=1', 'malformed');
  fails('', 'malformed');
  fails('   ', 'malformed');
});

test('bad values: id characters and length, number characters, whole numbers', () => {
  assert.equal(fails('CANCEL: id=a/b', 'bad-value').id, undefined, 'an id breaking the rule is not given back');
  fails('CANCEL: id=a"b', 'bad-value');
  fails(`CANCEL: id=${'x'.repeat(65)}`, 'bad-value');
  assert.deepEqual(ok(`CANCEL: id=${'x'.repeat(64)}`).params.id, 'x'.repeat(64));
  assert.deepEqual(ok('CANCEL: id=AZaz09._:@+-').params.id, 'AZaz09._:@+-');
  assert.equal(fails('REQUEST: id=n1;user1=10!1;user2=102', 'bad-value').id, 'n1');
  fails('REQUEST: id=n1;user1=101;user2=1(2)', 'bad-value');
  fails('REQUEST: id=n1;caller1=a@b', 'bad-value');
  assert.deepEqual(ok('REQUEST: id=n1;user1=*9#+1._-;user2=anonymous').params.user1, '*9#+1._-');
  fails('REQUEST: id=n1;duration=1.5', 'bad-value');
  fails('REQUEST: id=n1;duration=-1', 'bad-value');
  fails('REQUEST: id=n1;duration=1234567890', 'bad-value');
  fails('RESPONSE: id=n1;result=x', 'bad-value');
  fails('RESPONSE: id=n1;cause=1e3', 'bad-value');
  fails('ACK: id=n1;result=1;reason=bad!', 'bad-value');
});

test('callBackRequest: the request, or what is missing', () => {
  const req = (text: string) => {
    const r = parseIif(text);
    assert.ok(r.ok);
    return callBackRequest(r.message);
  };
  assert.deepEqual(req('REQUEST: id=1;user2=2'), { ok: false, missing: 'user1' });
  assert.deepEqual(req('REQUEST: id=1;user1=2'), { ok: false, missing: 'user2' });
  assert.deepEqual(req('REQUEST: user1=1;user2=2'), { ok: false, missing: 'id' });
  assert.deepEqual(req('REQUEST: index=r1;callee1=101;called2=102'), { ok: true, request: { id: 'r1', user1: '101', user2: '102', maxDurationS: 0 } });
  assert.deepEqual(req('REQUEST: id=r2;caller1=8005551000;user1=101;caller2=555;user2=90123;time=600'), {
    ok: true,
    request: { id: 'r2', caller1: '8005551000', user1: '101', caller2: '555', user2: '90123', maxDurationS: 600 },
  });
});

test('formatIif writes METHOD: and ;-joined pairs, which parse back', () => {
  assert.equal(formatIif('ACK', [['id', 'x1'], ['result', ACK_RESULTS.accepted]]), 'ACK: id=x1;result=0');
  assert.equal(formatIif('ACK', [['id', 'x1'], ['result', ACK_RESULTS['unknown-id']], ['reason', 'unknown-id']]), 'ACK: id=x1;result=6;reason=unknown-id');
  assert.equal(formatIif('RESPONSE', [['id', 'x1'], ['result', RESPONSE_RESULTS.bridged], ['duration', 12], ['cause', 16]]), 'RESPONSE: id=x1;result=0;duration=12;cause=16');
  assert.equal(formatIif('CANCEL', [['id', 'x1']]), 'CANCEL: id=x1');
  assert.equal(formatIif('CANCEL', []), 'CANCEL: ');
  assert.deepEqual(ok(formatIif('REQUEST', [['id', 'a'], ['user1', '1'], ['user2', '2'], ['duration', 5]])).params, { id: 'a', user1: '1', user2: '2', duration: '5' });
});

test('the result tables', () => {
  assert.deepEqual(ACK_RESULTS, { accepted: 0, 'bad-request': 1, 'unknown-number': 2, 'limit-reached': 3, 'duplicate-id': 4, unavailable: 5, 'unknown-id': 6 });
  assert.deepEqual(RESPONSE_RESULTS, { bridged: 0, 'user1-failed': 1, 'user2-failed': 2, cancelled: 3, 'server-stopped': 4 });
});

test('fuzz: parseIif never throws, and answers ok or one of its errors (seeded)', () => {
  const errors = new Set<IifError>(['too-large', 'too-many-parameters', 'malformed', 'unknown-method', 'bad-value']);
  const seeds = [
    'REQUEST: id=7781;caller1=8005551000;user1=101;user2=90123456789;duration=600',
    'REQUEST:index=1,callee1=101,callee2=102',
    'ACK: id=7781;result=0',
    'ACK: id=7781;result=2;reason=unknown-number',
    'RESPONSE: id=7781;result=0;duration=125;cause=16',
    'CANCEL: id=7782',
    'RELEASE: seq=7782',
  ];
  const inserts = [';', ',', ' ', '=', ':', '\t', '\r\n', '\0', 'id=', 'user1=', '\u00ff', '9'.repeat(70), 'x=y;'.repeat(40), 'REQUEST:', '"'];
  const rnd = mulberry32(0xc411bac);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const ID = /^[A-Za-z0-9._:@+-]{1,64}$/;
  let oks = 0;
  for (let n = 0; n < 20_000; n++) {
    let input: string | Buffer;
    if (n % 10 === 9) {
      input = Buffer.from(Array.from({ length: Math.floor(rnd() * 200) }, () => Math.floor(rnd() * 256)));
    } else {
      let s = pick(seeds);
      for (let k = 1 + Math.floor(rnd() * 4); k > 0; k--) {
        const at = Math.floor(rnd() * (s.length + 1));
        switch (Math.floor(rnd() * 5)) {
          case 0:
            s = s.slice(0, at) + String.fromCharCode(Math.floor(rnd() * 256)) + s.slice(at + 1);
            break;
          case 1:
            s = s.slice(0, at) + pick(inserts) + s.slice(at);
            break;
          case 2:
            s = s.slice(0, at) + s.slice(at + 1 + Math.floor(rnd() * 10));
            break;
          case 3:
            s = s.slice(0, at) + s.slice(at, at + 1 + Math.floor(rnd() * 8)).repeat(1 + Math.floor(rnd() * 300)) + s.slice(at);
            break;
          default:
            s = s.slice(0, at);
        }
      }
      input = n % 2 === 0 ? s : Buffer.from(s, 'latin1');
    }
    let r: IifParse;
    try {
      r = parseIif(input);
    } catch (err) {
      assert.fail(`case ${n} threw on ${JSON.stringify(input.toString())}: ${String(err)}`);
    }
    if (r.ok) {
      oks++;
      const id = r.message.params.get('id');
      if (id !== undefined) assert.match(id, ID, `case ${n}`);
    } else {
      assert.ok(errors.has(r.error), `case ${n}: error ${String(r.error)}`);
      assert.equal(typeof r.detail, 'string');
      if (r.id !== undefined) assert.match(r.id, ID, `case ${n}: the id of a failure`);
    }
  }
  assert.ok(oks > 1000 && oks < 19_000, `a mix of accepted and refused inputs (${oks} accepted)`);
});
