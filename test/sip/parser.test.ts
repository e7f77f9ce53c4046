import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMessage, frameStream, DEFAULT_LIMITS, type ParseResult } from '../../lib/sip/parser.js';
import { serialize, createResponse, type SipRequest, type SipResponse } from '../../lib/sip/message.js';

const crlf = (lines: string[]): string => lines.join('\r\n');

function register(extra: string[] = [], body = ''): string {
  return crlf([
    'REGISTER sip:example.com SIP/2.0',
    'Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport',
    'Max-Forwards: 70',
    'To: "Bob" <sip:bob@example.com>',
    'From: "Bob" <sip:bob@example.com>;tag=456248',
    'Call-ID: 843817637684230@998sdasdh09',
    'CSeq: 1826 REGISTER',
    'Contact: <sip:bob@192.0.2.10:5060>',
    ...extra,
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ]);
}

function ok(r: ParseResult): SipRequest | SipResponse {
  assert.ok(r.ok, r.ok ? '' : r.error);
  return r.message;
}

function bad(r: ParseResult): Extract<ParseResult, { ok: false }> {
  assert.equal(r.ok, false);
  if (r.ok) throw new Error('unreachable');
  return r;
}

const parse = (s: string | Buffer, datagram = true): ParseResult => parseMessage(Buffer.isBuffer(s) ? s : Buffer.from(s), { datagram });

test('parses a request line, headers in order and the body', () => {
  const m = ok(parse(register([], 'hello'))) as SipRequest;
  assert.equal(m.kind, 'request');
  assert.equal(m.method, 'REGISTER');
  assert.equal(m.uri, 'sip:example.com');
  assert.equal(m.version, 'SIP/2.0');
  assert.deepEqual(m.headers.names, ['via', 'max-forwards', 'to', 'from', 'call-id', 'cseq', 'contact', 'content-length']);
  assert.equal(m.headers.get('From'), '"Bob" <sip:bob@example.com>;tag=456248');
  assert.equal(m.body.toString(), 'hello');
});

test('parses a status line with a UTF-8 or empty reason phrase', () => {
  const base = ['Via: SIP/2.0/UDP h;branch=z9hG4bK1', 'From: <sip:a@b>;tag=1', 'To: <sip:c@d>;tag=2', 'Call-ID: x', 'CSeq: 1 INVITE', 'Content-Length: 0', '', ''];
  const r = ok(parse(crlf(['SIP/2.0 486 Busy Here – désolé', ...base]))) as SipResponse;
  assert.equal(r.status, 486);
  assert.equal(r.reason, 'Busy Here – désolé');
  const e = ok(parse(crlf(['SIP/2.0 180', ...base]))) as SipResponse;
  assert.equal(e.status, 180);
  assert.equal(e.reason, '');
  assert.match(bad(parse(crlf(['SIP/2.0 099 Low', ...base]))).error, /status code/);
  assert.match(bad(parse(crlf(['SIP/2.0 700 High', ...base]))).error, /status code/);
  assert.match(bad(parse(crlf(['SIP/2.0 20 Short', ...base]))).error, /status code/);
  assert.equal(bad(parse(crlf(['SIP/3.0 200 OK', ...base]))).status, 505);
  assert.equal(bad(parse(crlf(['SIP/2.0 200 OK', ...base.slice(1)]))).error, 'missing mandatory header Via');
});

test('accepts leading CRLFs, a lower-case version, compact names and bare LF line ends', () => {
  const msg = '\r\n\r\nOPTIONS sip:a@b sip/2.0\nv: SIP/2.0/TCP h;branch=z9hG4bKx\nf: <sip:a@b>;tag=1\nt: sip:c@d\ni: abc\nCSeq: 2 OPTIONS\nl: 0\n\n';
  const m = ok(parse(msg)) as SipRequest;
  assert.equal(m.method, 'OPTIONS');
  assert.equal(m.version, 'SIP/2.0');
  assert.deepEqual(m.headers.names, ['via', 'from', 'to', 'call-id', 'cseq', 'content-length']);
  assert.equal(m.headers.get('call-id'), 'abc');
});

test('a bare-LF empty line ends the headers even when the body holds CRLF CRLF', () => {
  const msg = register().replace('Content-Length: 0\r\n\r\n', 'Content-Length: 12\n\nab\r\n\r\ncdefgh');
  const m = ok(parse(msg));
  assert.equal(m.body.toString(), 'ab\r\n\r\ncdefgh');
  assert.equal(m.headers.size, 8);
  const multibyte = register(['Subject: ☎é'], '').replace('Content-Length: 0\r\n\r\n', 'Content-Length: 5\n\n12\r\n\r\n');
  assert.equal(ok(parse(multibyte)).body.toString(), '12\r\n\r');
});

test('a datagram cut inside its empty line still frames the same in the ASCII and UTF-8 paths', () => {
  const cut = register().slice(0, -1); // ends "\r\n\r"
  assert.equal(ok(parse(cut)).body.length, 0);
  const utf8 = register(['Subject: é']).slice(0, -1);
  assert.equal(ok(parse(utf8)).body.length, 0);
  const cl = register([], 'abc').replace('Content-Length: 3\r\n\r\nabc', 'Content-Length: 3\r\n\r');
  assert.match(bad(parse(cl)).error, /Content-Length 3 exceeds the 0 body bytes/);
});

test('unfolds continuation lines and allows blanks before the colon', () => {
  const m = ok(parse(register(['Subject  :  first\r\n  second\r\n\tthird', 'X-Empty:']))) as SipRequest;
  assert.equal(m.headers.get('subject'), 'first second third');
  assert.equal(m.headers.get('x-empty'), '');
});

test('rejects header lines without a colon, with a bad name, and a continuation at the start', () => {
  assert.match(bad(parse(register(['Foobar roobar']))).error, /without a colon/);
  assert.match(bad(parse(register(['Bad Name: x']))).error, /header name/);
  const r = bad(parse(register(['Bad Name: x'])));
  assert.equal(r.status, 400);
  assert.equal(r.request?.method, 'REGISTER', 'mandatory headers are readable, so a 400 can be built');
  assert.match(bad(parse('OPTIONS sip:a@b SIP/2.0\r\n  folded: x\r\nVia: SIP/2.0/UDP h\r\n\r\n')).error, /continuation/);
});

test('start line faults', () => {
  assert.match(bad(parse(register().replace('sip:example.com', '<sip:example.com>'))).error, /<>/);
  assert.match(bad(parse(register().replace('sip:example.com', 'sip:exa mple.com'))).error, /whitespace/);
  assert.match(bad(parse(register().replace(' SIP/2.0\r\n', '\r\n'))).error, /SIP-Version/);
  assert.match(bad(parse(register().replace(' SIP/2.0\r\n', ' HTTP/1.1\r\n'))).error, /SIP-Version/);
  const v = bad(parse(register().replace(' SIP/2.0\r\n', ' SIP/2.1\r\n')));
  assert.equal(v.status, 505);
  assert.ok(v.request);
  assert.match(bad(parse(register().replace('sip:example.com', 'sip:'))).error, /Request-URI/);
  const notSip = bad(parse('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  assert.equal(notSip.request, undefined);
  assert.match(bad(parse('\u00ff\u00fe garbage\r\n\r\n')).error, /not a SIP/);
  assert.match(bad(parse('\r\n\r\n')).error, /empty/);
  // several blanks and trailing blanks are accepted
  assert.equal((ok(parse(register().replace('REGISTER sip:example.com SIP/2.0', 'REGISTER  sip:example.com \tSIP/2.0  '))) as SipRequest).uri, 'sip:example.com');
});

test('unknown URI schemes, Require tags and Content-Types are the server\'s business, not parse errors', () => {
  const m = ok(parse(register(['Require: foo', 'Content-Type: application/x-unknown'], 'abc').replace('sip:example.com', 'urn:service:sos'))) as SipRequest;
  assert.equal(m.uri, 'urn:service:sos');
});

test('mandatory headers: each missing one is named; Max-Forwards may be missing', () => {
  for (const [line, name] of [['Via:', 'Via'], ['To:', 'To'], ['From:', 'From'], ['Call-ID:', 'Call-ID'], ['CSeq:', 'CSeq']] as const) {
    const text = register().split('\r\n').filter((l) => !l.startsWith(line)).join('\r\n');
    const r = bad(parse(text));
    assert.equal(r.error, `missing mandatory header ${name}`);
    assert.equal(r.request, undefined);
  }
  const noMf = register().split('\r\n').filter((l) => !l.startsWith('Max-Forwards')).join('\r\n');
  assert.equal(ok(parse(noMf)).headers.has('max-forwards'), false);
});

test('single-valued headers may appear only once and hold one value', () => {
  assert.match(bad(parse(register(['Call-ID: second']))).error, /Call-ID header appears 2 times/);
  assert.match(bad(parse(register(['t: sip:x@y']))).error, /To header appears 2 times/);
  assert.match(bad(parse(register(['Max-Forwards: 5']))).error, /Max-Forwards/);
  assert.match(bad(parse(register(['Content-Type: a/b', 'Content-Type: c/d']))).error, /Content-Type/);
  assert.match(bad(parse(register().replace('Call-ID: 843817637684230@998sdasdh09', 'Call-ID: a@b, c@d'))).error, /Call-ID header has several values/);
  assert.match(bad(parse(register().replace('To: "Bob" <sip:bob@example.com>', 'To: <sip:a@b>, <sip:c@d>'))).error, /To header has several values/);
  // commas inside quotes or <> are not separators
  const m = ok(parse(register().replace('To: "Bob" <sip:bob@example.com>', 'To: "Doe, John" <sip:a@b;x=1,2>')));
  assert.equal(m.headers.get('to'), '"Doe, John" <sip:a@b;x=1,2>');
});

test('CSeq: range and method match; Max-Forwards 0..255', () => {
  assert.match(bad(parse(register().replace('CSeq: 1826 REGISTER', 'CSeq: 2147483648 REGISTER'))).error, /CSeq/);
  assert.ok(parse(register().replace('CSeq: 1826 REGISTER', 'CSeq: 2147483647 REGISTER')).ok);
  assert.ok(parse(register().replace('CSeq: 1826 REGISTER', 'CSeq: 0 REGISTER')).ok);
  const mm = bad(parse(register().replace('CSeq: 1826 REGISTER', 'CSeq: 1826 INVITE')));
  assert.equal(mm.error, 'CSeq method INVITE does not match request method REGISTER');
  assert.ok(mm.request);
  assert.match(bad(parse(register().replace('CSeq: 1826 REGISTER', 'CSeq: REGISTER'))).error, /CSeq/);
  assert.match(bad(parse(register().replace('Max-Forwards: 70', 'Max-Forwards: 256'))).error, /Max-Forwards/);
  assert.match(bad(parse(register().replace('Max-Forwards: 70', 'Max-Forwards: -1'))).error, /Max-Forwards/);
  assert.ok(parse(register().replace('Max-Forwards: 70', 'Max-Forwards: 255')).ok);
  // an overlarge Expires is for the registrar to judge
  assert.ok(parse(register(['Expires: 100000000000000000000000000000'])).ok);
});

test('Content-Length: datagram rules (RFC 3261 section 18.3)', () => {
  const full = register([], 'v=0\r\n');
  assert.equal(ok(parse(full + 'trailing junk')).body.toString(), 'v=0\r\n', 'bytes after the body are ignored');
  const r = bad(parse(full.replace('Content-Length: 5', 'Content-Length: 50')));
  assert.match(r.error, /Content-Length 50 exceeds/);
  assert.ok(r.request);
  assert.match(bad(parse(full.replace('Content-Length: 5', 'Content-Length: -5'))).error, /Content-Length/);
  assert.match(bad(parse(full.replace('Content-Length: 5', 'Content-Length: five'))).error, /Content-Length/);
  assert.match(bad(parse(full.replace('Content-Length: 5', 'Content-Length: 99999999999999999999'))).error, /Content-Length/);
  assert.match(bad(parse(full.replace('Content-Length: 5', 'Content-Length: 5\r\nl: 6'))).error, /conflicting Content-Length/);
  assert.match(bad(parse(full.replace('Content-Length: 5', 'Content-Length: 5\r\nl: 5'))).error, /Content-Length header appears 2 times/);
  const noCl = full.replace('Content-Length: 5\r\n', '');
  assert.equal(ok(parse(noCl)).body.toString(), 'v=0\r\n', 'UDP without Content-Length: the rest of the datagram');
  assert.equal(ok(parse(noCl, false)).body.length, 0, 'stream without Content-Length: no body');
  // a UTF-8 header section: the body boundary is found in bytes
  const utf8 = register(['Subject: ☎ ☎ ☎'], 'body');
  assert.equal(ok(parse(utf8)).body.toString(), 'body');
  assert.equal(ok(parse(utf8)).headers.get('subject'), '☎ ☎ ☎');
});

test('limits: 64 KiB message => 513 with a request to answer', () => {
  const huge = register([`X-Pad: ${'a'.repeat(70000)}`]);
  const r = bad(parse(huge));
  assert.equal(r.status, 513);
  assert.match(r.error, /exceeds 65536/);
  // headers beyond the limit are cut, but the mandatory ones came first
  const big = register([], 'b'.repeat(70000));
  const r2 = bad(parse(big));
  assert.equal(r2.status, 513);
  assert.equal(r2.request?.method, 'REGISTER');
  assert.equal(r2.request?.headers.get('call-id'), '843817637684230@998sdasdh09');
  // right at the limit is fine
  const exact = register([], '');
  const padded = register([`X-Pad: ${'p'.repeat(DEFAULT_LIMITS.maxMessageBytes - Buffer.byteLength(exact) - 9)}`]);
  assert.equal(Buffer.byteLength(padded), DEFAULT_LIMITS.maxMessageBytes);
  assert.ok(parse(padded).ok);
  // custom limits
  assert.equal(bad(parseMessage(Buffer.from(register()), { datagram: true, limits: { ...DEFAULT_LIMITS, maxMessageBytes: 100 } })).status, 513);
});

test('limits: more than 256 header lines => 513, more than maxVia Via values => 513', () => {
  const many = register(Array.from({ length: 250 }, (_, i) => `X-H${i}: ${i}`));
  const r = bad(parse(many));
  assert.equal(r.status, 513);
  assert.match(r.error, /more than 256 header lines/);
  assert.ok(r.request, 'the mandatory headers were read before the limit');
  assert.ok(parse(register(Array.from({ length: 240 }, (_, i) => `X-H${i}: ${i}`))).ok);

  const vias = (n: number): string[] => [`Via: ${Array.from({ length: n }, (_, i) => `SIP/2.0/UDP h${i};branch=z9hG4bK${i}`).join(', ')}`];
  assert.ok(parse(register(vias(DEFAULT_LIMITS.maxVia - 1))).ok);
  const v = bad(parse(register(vias(DEFAULT_LIMITS.maxVia))));
  assert.equal(v.status, 513);
  assert.match(v.error, /Via values/);
  assert.ok(v.request, 'a server can still answer it');
  const small = { maxMessageBytes: 65536, maxHeaders: 10, maxVia: 2 };
  assert.match(bad(parseMessage(Buffer.from(register(vias(2))), { datagram: true, limits: small })).error, /more than 2 Via/);
  assert.match(bad(parseMessage(Buffer.from(register(['A: 1', 'B: 2', 'C: 3'])), { datagram: true, limits: small })).error, /more than 10 header lines/);
});

test('a malformed top Via cannot be answered', () => {
  const r = bad(parse(register().replace('Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport', 'Via: SIP/2.0/UDP 192.0.2.15;;,;,,')));
  assert.match(r.error, /Via/);
  assert.equal(r.request, undefined);
});

test('a parsed request serializes and reparses to the same message; responses can be built from it', () => {
  const m = ok(parse(register(['Subject: folded\r\n line'], 'v=0\r\n'))) as SipRequest;
  const again = ok(parse(serialize(m))) as SipRequest;
  assert.deepEqual(again.headers.names, m.headers.names.filter((n) => n !== 'content-length').concat('content-length'));
  assert.equal(again.headers.get('subject'), 'folded line');
  assert.deepEqual(again.body, m.body);
  const resp = createResponse(m, 200, undefined, 'abc');
  const parsed = ok(parse(serialize(resp))) as SipResponse;
  assert.equal(parsed.status, 200);
  assert.equal(parsed.headers.get('to'), '"Bob" <sip:bob@example.com>;tag=abc');
});

test('frameStream: whole, split, two in one buffer, keep-alives, errors', () => {
  const one = Buffer.from(register([], 'v=0\r\n'));
  assert.deepEqual(frameStream(one), { kind: 'message', length: one.length });
  for (const cut of [1, 10, one.length - 6, one.length - 1]) assert.deepEqual(frameStream(one.subarray(0, cut)), { kind: 'incomplete' });
  const two = Buffer.concat([one, one.subarray(0, 20)]);
  assert.deepEqual(frameStream(two), { kind: 'message', length: one.length });
  assert.deepEqual(frameStream(Buffer.from('\r\n\r\n')), { kind: 'keepalive', length: 4 });
  assert.deepEqual(frameStream(Buffer.concat([Buffer.from('\r\n\r\n'), one])), { kind: 'keepalive', length: 4 });
  assert.deepEqual(frameStream(Buffer.concat([Buffer.from('\r\n'), one])), { kind: 'keepalive', length: 2 });
  assert.deepEqual(frameStream(Buffer.from('\r\n')), { kind: 'keepalive', length: 2 });
  assert.deepEqual(frameStream(Buffer.from('\r\n\r')), { kind: 'incomplete' });
  assert.deepEqual(frameStream(Buffer.from('\r')), { kind: 'incomplete' });
  assert.deepEqual(frameStream(Buffer.alloc(0)), { kind: 'incomplete' });
  assert.equal(frameStream(Buffer.from('\rX')).kind, 'error');
  // compact form and blanks before the colon
  const compact = Buffer.from('OPTIONS sip:a@b SIP/2.0\r\nl : 3\r\n\r\nabcNEXT');
  assert.deepEqual(frameStream(compact), { kind: 'message', length: compact.length - 4 });
  // no Content-Length: treated as 0
  const none = Buffer.from('OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\nrest');
  assert.deepEqual(frameStream(none), { kind: 'message', length: none.length - 4 });
  // bare LF header section followed by a body holding CRLF CRLF
  const lfOnly = Buffer.from('OPTIONS sip:a@b SIP/2.0\nContent-Length: 6\n\nx\r\n\r\nyNEXT');
  assert.deepEqual(frameStream(lfOnly), { kind: 'message', length: lfOnly.length - 4 });
  // conflicting / bad Content-Length cannot be framed
  assert.equal(frameStream(Buffer.from('OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 3\r\nl: 4\r\n\r\nabcd')).kind, 'error');
  assert.equal(frameStream(Buffer.from('OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -3\r\n\r\n')).kind, 'error');
  // oversized: a header section without end beyond the limit, or a Content-Length beyond it
  assert.equal(frameStream(Buffer.alloc(70000, 0x41)).kind, 'error');
  assert.equal(frameStream(Buffer.from('OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 65536\r\n\r\n')).kind, 'error');
  assert.deepEqual(frameStream(Buffer.alloc(1000, 0x41)), { kind: 'incomplete' });
});

test('frameStream cuts a byte stream delivered in small chunks into the same messages', () => {
  const a = Buffer.from(register([], 'first'));
  const b = Buffer.from(register([], 'second body'));
  const wire = Buffer.concat([a, Buffer.from('\r\n\r\n'), b]);
  let pending = Buffer.alloc(0);
  const got: string[] = [];
  for (let i = 0; i < wire.length; i += 7) {
    pending = Buffer.concat([pending, wire.subarray(i, i + 7)]);
    for (let guard = 0; guard < 10; guard++) {
      const f = frameStream(pending);
      if (f.kind === 'incomplete') break;
      assert.notEqual(f.kind, 'error');
      if (f.kind === 'error') break;
      if (f.kind === 'message') {
        const r = parseMessage(pending.subarray(0, f.length));
        got.push(ok(r).body.toString());
      } else got.push('keepalive');
      pending = pending.subarray(f.length);
    }
  }
  assert.deepEqual(got, ['first', 'keepalive', 'second body']);
  assert.equal(pending.length, 0);
});
