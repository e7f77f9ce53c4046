/**
 * RFC 4475 and RFC 5118 torture messages (../shared/conformance): every message of both
 * index.tsv files is checked here: valid ones for concrete parsed values, invalid ones for a
 * failure that names the fault, "tolerate" ones for not throwing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_LIMITS, parseMessage, type ParseResult } from '../../lib/sip/parser.js';
import type { SipMessage, SipRequest, SipResponse } from '../../lib/sip/message.js';
import { parseViaList, topVia } from '../../lib/sip/headers/via.js';
import { parseContactList, parseNameAddr, tagOf } from '../../lib/sip/headers/name-addr.js';
import { parseCSeq } from '../../lib/sip/headers/cseq.js';
import { parseAuthHeader } from '../../lib/sip/headers/auth.js';
import { parseUri, uriEquals, unescapeUriPart } from '../../lib/sip/uri.js';

const CONFORMANCE = path.resolve(process.cwd(), '../shared/conformance');

interface Row {
  set: string;
  name: string;
  expect: string;
}

function readIndex(set: string): Row[] {
  const text = fs.readFileSync(path.join(CONFORMANCE, set, 'index.tsv'), 'utf8');
  return text
    .split('\n')
    .slice(1)
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const cols = l.split('\t');
      return { set, name: cols[0]!, expect: cols[3]! };
    });
}

/**
 * The RFC 5118 files have bare LF line ends, some no closing empty line and two a wrong
 * Content-Length; the conformance README converts them for the wire like this.
 */
function wireBytes(raw: Buffer): Buffer {
  if (raw.includes(0x0d)) return raw;
  let s = raw.toString('latin1').replace(/\n/g, '\r\n');
  let sep = s.indexOf('\r\n\r\n');
  if (sep < 0) {
    s = s.replace(/(\r\n)*$/, '') + '\r\n\r\n';
    sep = s.indexOf('\r\n\r\n');
  }
  const head = s.slice(0, sep);
  const body = s.slice(sep + 4);
  const fixed = head.replace(/^(Content-Length|l)([ \t]*:[ \t]*)\d+/im, (_m, n: string, c: string) => `${n}${c}${body.length}`);
  return Buffer.from(`${fixed}\r\n\r\n${body}`, 'latin1');
}

function load(set: string, name: string): Buffer {
  return wireBytes(fs.readFileSync(path.join(CONFORMANCE, set, `${name}.dat`)));
}

/** longreq carries 34 Via values: parsed with room for them (the default bound of 32 answers 513). */
const TORTURE_LIMITS = { ...DEFAULT_LIMITS, maxVia: 64 };

function parseFile(set: string, name: string): ParseResult {
  return parseMessage(load(set, name), { datagram: true, limits: TORTURE_LIMITS });
}

function request(set: string, name: string): SipRequest {
  const r = parseFile(set, name);
  assert.ok(r.ok, `${name} should parse: ${r.ok ? '' : r.error}`);
  assert.equal(r.message.kind, 'request');
  return r.message as SipRequest;
}

function response(set: string, name: string): SipResponse {
  const r = parseFile(set, name);
  assert.ok(r.ok, `${name} should parse: ${r.ok ? '' : r.error}`);
  assert.equal(r.message.kind, 'response');
  return r.message as SipResponse;
}

function rejected(set: string, name: string, fault: RegExp, status: 400 | 505 | 513 = 400): Extract<ParseResult, { ok: false }> {
  const r = parseFile(set, name);
  assert.equal(r.ok, false, `${name} must not parse`);
  if (r.ok) throw new Error('unreachable');
  assert.match(r.error, fault);
  assert.equal(r.status, status);
  return r;
}

const h = (m: SipMessage, name: string): string | undefined => m.headers.get(name);

/** One check per message; the test below fails when index.tsv names a message not listed here. */
const CHECKS: Record<string, () => void> = {
  // ---- RFC 4475 3.1.1 valid
  wsinv() {
    const m = request('rfc4475', 'wsinv');
    assert.equal(m.method, 'INVITE');
    assert.equal(m.uri, 'sip:vivekg@chair-dnrc.example.com;unknownparam');
    assert.deepEqual(parseCSeq(h(m, 'cseq')!), { seq: 9, method: 'INVITE' });
    assert.equal(h(m, 'max-forwards'), '0068');
    assert.equal(h(m, 'subject'), '');
    assert.equal(h(m, 'newfangledheader'), 'newfangled value continued newfangled value');
    assert.equal(h(m, 'unknownheaderwithunusualvalue'), ';;,,;;,;');
    assert.equal(tagOf(h(m, 'to')!), '1918181833n');
    const from = parseNameAddr(h(m, 'from')!)!;
    assert.equal(from.displayName, 'J Rosenberg \\"');
    assert.equal(from.params.get('tag'), '98asjd8');
    const vias = parseViaList(m)!;
    assert.deepEqual(vias.map((v) => [v.transport, v.host, v.branch]), [
      ['UDP', '192.0.2.2', '390skdjuw'],
      ['TCP', 'spindle.example.com', 'z9hG4bK9ikj8'],
      ['UDP', '192.168.255.111', 'z9hG4bK30239'],
    ]);
    const contacts = parseContactList(m)!;
    assert.equal(contacts.contacts[0]!.displayName, 'Quoted string ""');
    assert.equal(contacts.contacts[0]!.params.get('q'), '0.33');
    assert.equal(contacts.contacts[0]!.params.get('newparam'), 'newvalue');
    assert.equal(contacts.contacts[0]!.params.get('secondparam'), null);
    assert.equal(m.body.length, 150);
  },
  intmeth() {
    const m = request('rfc4475', 'intmeth');
    assert.equal(m.method, "!interesting-Method0123456789_*+`.%indeed'~");
    assert.equal(parseCSeq(h(m, 'cseq')!)!.method, m.method);
    const uri = parseUri(m.uri)!;
    assert.equal(uri.user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");
    assert.equal(uri.password, "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)");
    assert.equal(uri.host, 'example.com');
    assert.equal(h(m, "extensionHeader-!.%*+_`'~"), '\ufeff大停電');
    assert.equal(parseNameAddr(h(m, 'to')!)!.displayName, 'BEL:\x07 NUL:\x00 DEL:\x7f');
    assert.equal(tagOf(h(m, 'from')!), "_token~1'+`*%!-.");
    assert.equal(topVia(m)!.branch, "z9hG4bK-.!%66*_+`'~");
    assert.equal(h(m, 'max-forwards'), '255');
  },
  esc01() {
    const m = request('rfc4475', 'esc01');
    const ruri = parseUri(m.uri)!;
    assert.equal(unescapeUriPart(ruri.user!), 'sips:user@example.com');
    assert.ok(uriEquals(parseUri(parseNameAddr(h(m, 'to')!)!.uri)!, parseUri('sip:user@example.com')!));
    assert.equal(unescapeUriPart(parseUri(parseNameAddr(h(m, 'from')!)!.uri)!.user!), 'I have spaces');
    const contact = parseUri(parseContactList(m)!.contacts[0]!.uri)!;
    assert.ok(uriEquals(contact, parseUri('sip:caller@host5.example.net;lr;name=value%2541')!));
    assert.ok(!uriEquals(contact, parseUri('sip:caller@host5.example.net;lr;name=valueA')!));
    assert.equal(h(m, 'content-type'), 'application/sdp');
    assert.equal(m.body.length, 150);
  },
  escnull() {
    const m = request('rfc4475', 'escnull');
    assert.equal(m.method, 'REGISTER');
    assert.equal(unescapeUriPart(parseUri(parseNameAddr(h(m, 'to')!)!.uri)!.user!), 'null-\u0000-null');
    const users = parseContactList(m)!.contacts.map((c) => unescapeUriPart(parseUri(c.uri)!.user!));
    assert.deepEqual(users, ['\u0000', '\u0000\u0000']);
    assert.equal(h(m, 'content-length'), '0');
  },
  esc02() {
    const m = request('rfc4475', 'esc02');
    assert.equal(m.method, 'RE%47IST%45R');
    assert.notEqual(m.method, 'REGISTER');
    assert.equal(parseNameAddr(h(m, 'to')!)!.displayName, '%Z%45');
    assert.equal(topVia(m)!.branch, 'z9hG4bK209%fzsnel234');
    // "C%6Fntact" is an unknown header, not a Contact
    assert.equal(parseContactList(m)!.contacts.length, 2);
    assert.equal(h(m, 'c%6fntact'), '<sip:alias2@host2.example.com>');
  },
  lwsdisp() {
    const m = request('rfc4475', 'lwsdisp');
    const from = parseNameAddr(h(m, 'from')!)!;
    assert.equal(from.displayName, 'caller');
    assert.equal(from.uri, 'sip:caller@example.com');
    assert.equal(from.params.get('tag'), '323');
  },
  longreq() {
    const bounded = parseMessage(load('rfc4475', 'longreq'), { datagram: true });
    assert.equal(bounded.ok, false);
    assert.equal(!bounded.ok && bounded.status, 513, 'beyond the default 32 Via values: 513, answerable');
    assert.ok(!bounded.ok && bounded.request);
    const m = request('rfc4475', 'longreq');
    const vias = parseViaList(m)!;
    assert.equal(vias.length, 34);
    assert.equal(vias[0]!.host, 'sip33.example.com');
    assert.equal(vias[33]!.received, '192.0.2.5');
    assert.match(vias[33]!.branch!, /^verylong.*branchvalue$/);
    const to = parseNameAddr(h(m, 'to')!)!;
    assert.match(to.displayName!, /^I have a user name of (extreme){10} proportion$/);
    assert.equal(parseUri(to.uri)!.port, 6000);
    assert.match(tagOf(h(m, 'from')!)!, /^1298(298)+2424$/);
    assert.equal(m.body.length, 150);
  },
  dblreq() {
    const m = request('rfc4475', 'dblreq');
    assert.equal(m.method, 'REGISTER');
    assert.equal(h(m, 'call-id'), 'dblreq.0ha0isndaksdj99sdfafnl3lk233412');
    assert.equal(m.body.length, 0, 'the trailing INVITE is ignored');
    assert.equal(m.headers.count('cseq'), 1);
  },
  semiuri() {
    const m = request('rfc4475', 'semiuri');
    const uri = parseUri(m.uri)!;
    assert.equal(uri.user, 'user;par=u%40example.net');
    assert.equal(uri.host, 'example.com');
    assert.equal(uri.params.size, 0);
    assert.equal(m.headers.list('accept').length, 6);
  },
  transports() {
    const m = request('rfc4475', 'transports');
    assert.deepEqual(parseViaList(m)!.map((v) => v.transport), ['UDP', 'SCTP', 'TLS', 'UNKNOWN', 'TCP']);
    assert.equal(h(m, 'call-id'), 'transports.kijh4akdnaqjkwendsasfdj');
  },
  mpart01() {
    const m = request('rfc4475', 'mpart01');
    assert.equal(m.method, 'MESSAGE');
    assert.equal(m.body.length, 553);
    assert.equal(m.body.subarray(0, 18).toString('latin1'), '--7a9cbec02ceef655');
    assert.equal(topVia(m)!.rport, true);
    assert.equal(topVia(m)!.port, 5070);
  },
  unreason() {
    const m = response('rfc4475', 'unreason');
    assert.equal(m.status, 200);
    assert.match(m.reason, /^= 2\*\*3 \* 5\*\*2 но сто девяносто девять/);
    assert.equal(m.body.length, 154);
    assert.equal(parseCSeq(h(m, 'cseq')!)!.method, 'INVITE');
  },
  noreason() {
    const m = response('rfc4475', 'noreason');
    assert.equal(m.status, 100);
    assert.equal(m.reason, '');
    assert.equal(topVia(m)!.branch, 'z9hG4bK2398ndaoe');
  },
  // ---- RFC 4475 3.1.2 invalid
  badinv01: () => void rejected('rfc4475', 'badinv01', /Via/),
  clerr() {
    const r = rejected('rfc4475', 'clerr', /Content-Length/);
    assert.ok(r.request, 'a 400 can be sent');
  },
  ncl: () => void rejected('rfc4475', 'ncl', /Content-Length/),
  scalar02() {
    const r = rejected('rfc4475', 'scalar02', /CSeq/);
    assert.equal(r.request?.method, 'REGISTER');
  },
  scalarlg() {
    const r = rejected('rfc4475', 'scalarlg', /CSeq/);
    assert.equal(r.request, undefined, 'a response is never answered');
  },
  quotbal: () => tolerated('rfc4475', 'quotbal'),
  ltgtruri: () => void rejected('rfc4475', 'ltgtruri', /Request-URI/),
  lwsruri: () => void rejected('rfc4475', 'lwsruri', /Request-URI/),
  lwsstart() {
    const m = request('rfc4475', 'lwsstart');
    assert.equal(m.uri, 'sip:user@example.com');
  },
  trws() {
    const m = request('rfc4475', 'trws');
    assert.equal(m.uri, 'sip:remote-target@example.com');
    assert.equal(m.version, 'SIP/2.0');
  },
  escruri() {
    const m = request('rfc4475', 'escruri');
    assert.equal(parseUri(m.uri)!.headers.get('Route'), '%3Csip:example.com%3E');
    assert.equal(m.headers.has('route'), false, 'URI headers never become real headers');
  },
  baddate: () => tolerated('rfc4475', 'baddate'),
  regbadct: () => tolerated('rfc4475', 'regbadct'),
  badaspec: () => tolerated('rfc4475', 'badaspec'),
  baddn: () => tolerated('rfc4475', 'baddn'),
  badvers() {
    const r = rejected('rfc4475', 'badvers', /version/i, 505);
    assert.ok(r.request, '505 can be sent');
  },
  mismatch01: () => void rejected('rfc4475', 'mismatch01', /CSeq method INVITE does not match request method OPTIONS/),
  mismatch02: () => void rejected('rfc4475', 'mismatch02', /CSeq/),
  bigcode() {
    const r = rejected('rfc4475', 'bigcode', /status code/);
    assert.equal(r.request, undefined);
  },
  // ---- RFC 4475 3.2 - 3.4
  badbranch() {
    const m = request('rfc4475', 'badbranch');
    assert.equal(topVia(m)!.branch, 'z9hG4bK');
  },
  insuf() {
    const r = rejected('rfc4475', 'insuf', /From, To, Call-ID/);
    assert.equal(r.request, undefined, 'no response can be built');
  },
  unkscm() {
    const m = request('rfc4475', 'unkscm');
    const uri = parseUri(m.uri)!;
    assert.equal(uri.scheme, 'nobodyknowsthisscheme');
    assert.equal(uri.user, 'totallyopaquecontent');
  },
  novelsc() {
    const m = request('rfc4475', 'novelsc');
    assert.equal(parseUri(m.uri)!.scheme, 'soap.beep');
  },
  unksm2() {
    const m = request('rfc4475', 'unksm2');
    assert.equal(parseNameAddr(h(m, 'to')!)!.uri, 'isbn:2983792873');
    assert.equal(parseNameAddr(h(m, 'from')!)!.uri, 'http://www.example.com');
    assert.equal(parseUri(parseContactList(m)!.contacts[0]!.uri)!.scheme, 'name');
  },
  bext01() {
    const m = request('rfc4475', 'bext01');
    assert.deepEqual(m.headers.list('require'), ['nothingSupportsThis', 'nothingSupportsThisEither']);
    assert.equal(m.headers.list('proxy-require').length, 2);
  },
  invut() {
    const m = request('rfc4475', 'invut');
    assert.equal(h(m, 'content-type'), 'application/unknownformat');
    assert.equal(m.body.toString(), '<audio>\r\n <pcmu port="443"/>\r\n</audio>\r\n');
  },
  regaut01() {
    const m = request('rfc4475', 'regaut01');
    const auth = parseAuthHeader(h(m, 'authorization')!)!;
    assert.equal(auth.scheme, 'NoOneKnowsThisScheme');
    assert.equal(auth.params.get('opaque-data'), 'here');
  },
  multi01() {
    const r = rejected('rfc4475', 'multi01', /Call-ID|CSeq|From|To|Max-Forwards/);
    assert.equal(r.request, undefined, 'which Call-ID would a response carry?');
  },
  mcl01: () => void rejected('rfc4475', 'mcl01', /Content-Length/),
  bcast() {
    const m = response('rfc4475', 'bcast');
    assert.equal(m.status, 200);
    assert.equal(parseViaList(m)![1]!.host, '255.255.255.255');
  },
  zeromf() {
    const m = request('rfc4475', 'zeromf');
    assert.equal(h(m, 'max-forwards'), '0');
  },
  cparam01() {
    const c = parseContactList(request('rfc4475', 'cparam01'))!.contacts[0]!;
    assert.equal(c.uri, 'sip:+19725552222@gw1.example.net');
    assert.equal(c.params.get('unknownparam'), null);
  },
  cparam02() {
    const c = parseContactList(request('rfc4475', 'cparam02'))!.contacts[0]!;
    assert.equal(c.params.size, 0);
    assert.equal(parseUri(c.uri)!.params.get('unknownparam'), null);
  },
  regescrt() {
    const c = parseContactList(request('rfc4475', 'regescrt'))!.contacts[0]!;
    assert.equal(unescapeUriPart(parseUri(c.uri)!.headers.get('Route')!), '<sip:sip.example.com>');
  },
  sdp01() {
    const m = request('rfc4475', 'sdp01');
    assert.equal(h(m, 'accept'), 'text/nobodyKnowsThis');
    assert.equal(m.body.length, 150);
  },
  inv2543() {
    const m = request('rfc4475', 'inv2543');
    assert.equal(h(m, 'max-forwards'), undefined);
    assert.equal(topVia(m)!.branch, undefined);
    assert.equal(m.body.length, 105, 'no Content-Length on UDP: body is the rest of the datagram');
  },
  test: () => void rejected('rfc4475', 'test', /SIP-Version|colon/),
  // ---- RFC 5118
  'ipv6-good'() {
    const m = request('rfc5118', 'ipv6-good');
    assert.equal(parseUri(m.uri)!.host, '2001:db8::10');
    assert.equal(topVia(m)!.host, '2001:db8::9:1');
  },
  'ipv6-bad': () => void rejected('rfc5118', 'ipv6-bad', /Request-URI/),
  'port-ambiguous'() {
    const uri = parseUri(request('rfc5118', 'port-ambiguous').uri)!;
    assert.equal(uri.host, '2001:db8::10:5070');
    assert.equal(uri.port, undefined);
  },
  'port-unambiguous'() {
    const uri = parseUri(request('rfc5118', 'port-unambiguous').uri)!;
    assert.equal(uri.host, '2001:db8::10');
    assert.equal(uri.port, 5070);
  },
  'via-received-param-with-delim'() {
    assert.equal(topVia(request('rfc5118', 'via-received-param-with-delim'))!.received, '2001:db8::9:255');
  },
  'via-received-param-no-delim'() {
    assert.equal(topVia(request('rfc5118', 'via-received-param-no-delim'))!.received, '2001:db8::9:255');
  },
  'ipv6-in-sdp'() {
    const m = request('rfc5118', 'ipv6-in-sdp');
    assert.match(m.body.toString(), /c=IN IP6 2001:db8::20\r\n/);
    assert.equal(m.body.length, Number(h(m, 'content-length')));
  },
  'mult-ip-in-header'() {
    const vias = parseViaList(request('rfc5118', 'mult-ip-in-header'))!;
    assert.deepEqual(vias.map((v) => [v.host, v.port]), [['2001:db8::9:1', 6050], ['192.0.2.1', undefined], ['2001:db8::9:255', undefined]]);
    assert.equal(vias[2]!.received, '192.0.2.200');
  },
  'mult-ip-in-sdp'() {
    const m = request('rfc5118', 'mult-ip-in-sdp');
    assert.match(m.body.toString(), /c=IN IP6 2001:db8::1/);
  },
  'ipv4-mapped-ipv6'() {
    const m = request('rfc5118', 'ipv4-mapped-ipv6');
    assert.deepEqual(parseViaList(m)!.map((v) => v.host), ['::ffff:192.0.2.10', '::ffff:192.0.2.2']);
    assert.equal(parseUri(parseContactList(m)!.contacts[0]!.uri)!.host, '::ffff:192.0.2.2');
  },
  'ipv6-bug-abnf-3-colons': () => tolerated('rfc5118', 'ipv6-bug-abnf-3-colons'),
  'ipv6-correct-abnf-2-colons'() {
    assert.equal(parseUri(request('rfc5118', 'ipv6-correct-abnf-2-colons').uri)!.host, '2001:db8::192.0.2.1');
  },
};

/** Either outcome is allowed; a failure must still say what is wrong. */
function tolerated(set: string, name: string): void {
  const r = parseFile(set, name);
  if (!r.ok) assert.ok(r.error.length > 0);
  else assert.ok(r.message.headers.size > 0);
}

for (const set of ['rfc4475', 'rfc5118']) {
  const rows = readIndex(set);
  test(`${set}: index.tsv lists messages and each has a check`, () => {
    assert.ok(rows.length >= 12);
    for (const row of rows) assert.ok(CHECKS[row.name], `no check for ${row.name}`);
  });
  for (const row of rows) {
    test(`${set} ${row.name} (${row.expect})`, () => {
      const check = CHECKS[row.name];
      assert.ok(check);
      check();
      // Whatever the verdict, the invalid and tolerated ones map to the rule of index.tsv.
      const r = parseFile(set, row.name);
      if (row.expect === 'reject') assert.equal(r.ok, false);
      if (row.expect === 'accept' || row.expect === 'answer') assert.equal(r.ok, true);
      if (row.expect === 'drop') assert.ok(!r.ok || r.message.kind === 'response');
    });
  }
}

test('the unconverted RFC 5118 files (bare LF, no closing empty line) do not throw either', () => {
  for (const row of readIndex('rfc5118')) {
    const r = parseMessage(fs.readFileSync(path.join(CONFORMANCE, 'rfc5118', `${row.name}.dat`)), { datagram: true });
    assert.ok(r.ok || r.error.length > 0);
  }
  // bare LF line ends parse to the same headers as the converted message
  const raw = parseMessage(fs.readFileSync(path.join(CONFORMANCE, 'rfc5118', 'ipv6-good.dat')), { datagram: true });
  assert.ok(raw.ok);
  assert.deepEqual(raw.message.headers.names, request('rfc5118', 'ipv6-good').headers.names);
});
