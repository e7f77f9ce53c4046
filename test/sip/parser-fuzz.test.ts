/**
 * Seeded mutation fuzzing of parseMessage and frameStream: 10,000 mangled REGISTER / INVITE /
 * OPTIONS messages. Nothing may throw; every failure carries a reason; and whatever parses must
 * be a fixed point of serialize after one round (parse(serialize(parse(x))) is stable).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32 } from '../helpers/prng.js';
import { parseMessage, frameStream, type ParseResult } from '../../lib/sip/parser.js';
import { serialize } from '../../lib/sip/message.js';

const sdp = 'v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\ns=-\r\nc=IN IP4 192.0.2.101\r\nt=0 0\r\nm=audio 49172 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n';

const SEEDS: string[] = [
  [
    'REGISTER sip:registrar.example.com SIP/2.0',
    'Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKnashds7;rport',
    'Max-Forwards: 70',
    'To: Bob <sip:bob@example.com>',
    'From: Bob <sip:bob@example.com>;tag=a73kszlfl',
    'Call-ID: 1j9FpLxk3uxtm8tn@192.0.2.10',
    'CSeq: 2 REGISTER',
    'Contact: <sip:bob@192.0.2.10:5060;transport=udp>;expires=3600',
    'Authorization: Digest username="bob", realm="example.com", nonce="ea9c8e88df84f1cec4341ae6cbe5a359", uri="sip:registrar.example.com", response="dfe56131d1958046689d83306477ecc", algorithm=MD5',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n'),
  [
    'INVITE sip:bob@biloxi.example.com SIP/2.0',
    'Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK74bf9, SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bK1;received=[2001:db8::2]',
    'Max-Forwards: 70',
    'From: "Alice, A." <sip:alice@atlanta.example.com>;tag=9fxced76sl',
    'To: Bob <sip:bob@biloxi.example.com>',
    'Call-ID: 3848276298220188511@atlanta.example.com',
    'CSeq: 1 INVITE',
    'Contact: <sip:alice@client.atlanta.example.com;transport=tcp>',
    'Content-Type: application/sdp',
    `Content-Length: ${sdp.length}`,
    '',
    sdp,
  ].join('\r\n'),
  [
    'OPTIONS sip:carol@chicago.example.com SIP/2.0',
    'v: SIP/2.0/TCP cube2214a.example.com;branch=z9hG4bKhjhs8ass877',
    'Max-Forwards: 70',
    't: <sip:carol@chicago.example.com>',
    'f: Alice <sip:alice@example.com>;tag=1928301774',
    'i: a84b4c76e66710',
    'CSeq: 63104 OPTIONS',
    'Accept: application/sdp',
    'l: 0',
    '',
    '',
  ].join('\r\n'),
];

const INSERTS = ['\r', '\n', '\r\n', '\r\n ', '\0', '"', ',', ';', ':', '<', '>', ' ', '\t', '%', '%00', '\\', '99999999999999999999999', '-1', '\u00ff', '\u2603', '[', ']', '=', '@'];

function mutate(seed: Buffer, rnd: () => number): Buffer {
  let bytes = Buffer.from(seed);
  const pick = (n: number): number => Math.floor(rnd() * n);
  const rounds = 1 + pick(4);
  for (let r = 0; r < rounds; r++) {
    const op = pick(7);
    if (bytes.length === 0) break;
    if (op === 0) {
      bytes[pick(bytes.length)] = pick(256); // byte flip
    } else if (op === 1) {
      bytes = bytes.subarray(0, pick(bytes.length + 1)); // truncation
    } else if (op === 2 || op === 3) {
      const lines = bytes.toString('latin1').split('\r\n');
      const i = pick(lines.length);
      if (op === 2) lines.splice(i, 0, lines[i]!); // duplicate a line
      else if (i > 0) lines.splice(i, 1); // remove a header line
      bytes = Buffer.from(lines.join('\r\n'), 'latin1');
    } else if (op === 4) {
      const at = pick(bytes.length + 1);
      const ins = Buffer.from(INSERTS[pick(INSERTS.length)]!, 'utf8');
      bytes = Buffer.concat([bytes.subarray(0, at), ins, bytes.subarray(at)]);
    } else if (op === 5) {
      // replace a run of digits with a huge or odd number
      const s = bytes.toString('latin1');
      const digits = [...s.matchAll(/\d+/g)];
      if (digits.length > 0) {
        const d = digits[pick(digits.length)]!;
        const repl = ['4294967301', '2147483648', '0', '-999', '65536', '1e3', '00000000000000000000001'][pick(7)]!;
        bytes = Buffer.from(s.slice(0, d.index) + repl + s.slice(d.index! + d[0].length), 'latin1');
      }
    } else {
      // a random slice of garbage bytes
      const at = pick(bytes.length + 1);
      const junk = Buffer.alloc(1 + pick(8));
      for (let k = 0; k < junk.length; k++) junk[k] = pick(256);
      bytes = Buffer.concat([bytes.subarray(0, at), junk, bytes.subarray(at)]);
    }
  }
  return bytes;
}

function checkResult(r: ParseResult, label: string): void {
  if (r.ok) {
    assert.ok(r.message.kind === 'request' || r.message.kind === 'response', label);
    return;
  }
  assert.equal(typeof r.error, 'string', label);
  assert.ok(r.error.length > 0, label);
  // parseMessage's last-resort catch must never be what produced the answer
  assert.doesNotMatch(r.error, /^unparseable message/, label);
  assert.ok(r.status === 400 || r.status === 505 || r.status === 513, label);
  if (r.request) {
    assert.equal(r.request.kind, 'request', label);
    assert.ok(r.request.headers.has('via') && r.request.headers.has('call-id'), label);
  }
}

test('10,000 mutated messages: no throw, a reason for every failure, serialize is stable', () => {
  const rnd = mulberry32(0x5eed1234);
  const seeds = SEEDS.map((s) => Buffer.from(s, 'utf8'));
  let parsed = 0;
  let failed = 0;
  for (let n = 0; n < 10_000; n++) {
    const input = mutate(seeds[n % seeds.length]!, rnd);
    const datagram = n % 2 === 0;
    const label = `case ${n}: ${JSON.stringify(input.toString('latin1').slice(0, 400))}`;
    let r: ParseResult;
    try {
      r = parseMessage(input, { datagram });
    } catch (err) {
      assert.fail(`parseMessage threw on ${label}: ${String(err)}`);
    }
    checkResult(r, label);

    const f = frameStream(input);
    assert.ok(['incomplete', 'message', 'error', 'keepalive'].includes(f.kind), label);
    if (f.kind === 'message' || f.kind === 'keepalive') assert.ok(f.length > 0 && f.length <= input.length, label);
    if (f.kind === 'error') assert.ok(f.error.length > 0 && f.error !== 'unframeable stream', label);

    if (!r.ok) {
      failed++;
      continue;
    }
    parsed++;
    const once = serialize(r.message);
    const again = parseMessage(once, { datagram });
    assert.ok(again.ok, `${label} reparse failed: ${again.ok ? '' : again.error}`);
    const twice = serialize(again.message);
    assert.ok(twice.equals(once), `${label} not stable:\n${once.toString('latin1')}\n---\n${twice.toString('latin1')}`);
  }
  // the mutations must exercise both paths, or the test proves little
  assert.ok(parsed > 1000, `only ${parsed} mutants parsed`);
  assert.ok(failed > 1000, `only ${failed} mutants failed`);
  console.log(`fuzz: ${parsed} parsed, ${failed} rejected`);
});

test('random bytes and empty input never throw', () => {
  const rnd = mulberry32(42);
  assert.equal(parseMessage(Buffer.alloc(0)).ok, false);
  for (let n = 0; n < 2000; n++) {
    const buf = Buffer.alloc(Math.floor(rnd() * 300));
    for (let i = 0; i < buf.length; i++) buf[i] = Math.floor(rnd() * 256);
    checkResult(parseMessage(buf, { datagram: true }), `random ${n}`);
    assert.ok(frameStream(buf).kind.length > 0);
  }
});
