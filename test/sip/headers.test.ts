import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseVia, parseViaList, topVia, formatVia } from '../../lib/sip/headers/via.js';
import { parseNameAddr, formatNameAddr, tagOf, parseContactList } from '../../lib/sip/headers/name-addr.js';
import { parseCSeq } from '../../lib/sip/headers/cseq.js';
import { parseAuthHeader } from '../../lib/sip/headers/auth.js';
import { parseReason } from '../../lib/sip/headers/reason.js';
import { parseParams, formatParams, paramText, paramValue } from '../../lib/sip/headers/params.js';
import { Headers, createRequest } from '../../lib/sip/message.js';

test('Via: sent-protocol, sent-by, branch, received, rport', () => {
  const v = parseVia('SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK776asdhds;received=192.0.2.1;rport=5062;ttl=3')!;
  assert.equal(v.protocol, 'SIP/2.0');
  assert.equal(v.transport, 'UDP');
  assert.equal(v.host, 'pc33.atlanta.com');
  assert.equal(v.port, 5066);
  assert.equal(v.branch, 'z9hG4bK776asdhds');
  assert.equal(v.received, '192.0.2.1');
  assert.equal(v.rport, 5062);
  assert.equal(v.params.get('ttl'), '3');
  assert.equal(parseVia('SIP/2.0/tcp h;rport')!.rport, true);
  assert.equal(parseVia('SIP/2.0/tcp h;rport')!.transport, 'TCP');
  const spaced = parseVia('  sip / 2.0 / tls   host.example.com ; branch = z9hG4bKx ; received = 10.0.0.1 ')!;
  assert.deepEqual([spaced.protocol, spaced.transport, spaced.host, spaced.branch, spaced.received], ['SIP/2.0', 'TLS', 'host.example.com', 'z9hG4bKx', '10.0.0.1']);
});

test('Via: IPv6 sent-by and received, with or without brackets (RFC 5118 section 4.5)', () => {
  const a = parseVia('SIP/2.0/UDP [2001:db8::9:1]:5070;received=[2001:db8::9:255];branch=z9hG4bKas3')!;
  assert.equal(a.host, '2001:db8::9:1');
  assert.equal(a.port, 5070);
  assert.equal(a.received, '2001:db8::9:255');
  const b = parseVia('SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKas3')!;
  assert.equal(b.received, '2001:db8::9:255');
  const bare = parseVia('SIP/2.0/UDP 2001:db8::9:1;branch=z9hG4bKx')!;
  assert.equal(bare.host, '2001:db8::9:1');
  assert.equal(bare.port, undefined);
  assert.equal(formatVia(a), 'SIP/2.0/UDP [2001:db8::9:1]:5070;received=[2001:db8::9:255];branch=z9hG4bKas3');
});

test('Via: bad syntax gives null', () => {
  for (const bad of ['', 'SIP/2.0', 'SIP/2.0/UDP', 'SIP/2.0/UDP ', 'SIP 2.0/UDP h', 'SIP/2.0/UDPh', 'SIP/2.0/UDP h;;', 'SIP/2.0/UDP 192.0.2.15;;,;,,',
    'SIP/2.0/UDP h;branch=', 'SIP/2.0/UDP h:99999', 'SIP/2.0/UDP h;rport=x', 'SIP/2.0/UDP h;rport=70000', 'SIP/2.0/UDP h junk', 'SIP/2.0/UDP h;a="unclosed']) {
    assert.equal(parseVia(bad), null, JSON.stringify(bad));
  }
});

test('Via: list, top and format with the fields winning over params', () => {
  const h = new Headers().append('Via', 'SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/TCP b.example.com;branch=z9hG4bK2').append('v', 'SIP/2.0/UDP c;branch=z9hG4bK3');
  const msg = createRequest('OPTIONS', 'sip:x@y', h);
  assert.deepEqual(parseViaList(msg)!.map((v) => v.host), ['a.example.com', 'b.example.com', 'c']);
  assert.equal(topVia(msg)!.branch, 'z9hG4bK1');
  assert.equal(topVia(createRequest('OPTIONS', 'sip:x@y')), null);
  h.append('Via', 'garbage');
  assert.equal(parseViaList(msg), null);

  const v = parseVia('SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKq;rport;x=1')!;
  v.received = '203.0.113.9';
  v.rport = 40000;
  assert.equal(formatVia(v), 'SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKq;rport=40000;x=1;received=203.0.113.9');
  delete v.rport;
  assert.equal(formatVia(v), 'SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKq;x=1;received=203.0.113.9');
  const round = 'SIP/2.0/TLS host.example.com:5061;branch=z9hG4bKabc;rport;alias';
  assert.equal(formatVia(parseVia(round)!), round);
});

test('name-addr: quoted and unquoted display names, bare addr-spec params belong to the header', () => {
  const a = parseNameAddr('"Bob \\"the\\" Builder" <sip:bob@biloxi.com;transport=tcp>;tag=a6c85cf;expires=60')!;
  assert.equal(a.displayName, 'Bob "the" Builder');
  assert.equal(a.uri, 'sip:bob@biloxi.com;transport=tcp');
  assert.deepEqual([...a.params], [['tag', 'a6c85cf'], ['expires', '60']]);
  const b = parseNameAddr('sip:alice@atlanta.com;tag=1928301774')!;
  assert.equal(b.uri, 'sip:alice@atlanta.com');
  assert.equal(b.params.get('tag'), '1928301774');
  assert.equal(b.displayName, undefined);
  const c = parseNameAddr('Anonymous User<sip:c8oqz84zk7z@privacy.org>;Tag=hyh8')!;
  assert.equal(c.displayName, 'Anonymous User');
  assert.equal(c.params.get('tag'), 'hyh8');
  assert.equal(parseNameAddr('<sip:x@y>')!.displayName, undefined);
  assert.equal(parseNameAddr('"" <sip:x@y>')!.displayName, '');
  assert.equal(parseNameAddr('< sip:t.watson@example.org >')!.uri, 'sip:t.watson@example.org');
  assert.equal(parseNameAddr('<urn:service:sos>')!.uri, 'urn:service:sos');
});

test('name-addr: bad syntax gives null', () => {
  for (const bad of ['', '   ', '"Mr. J. User <sip:j.user@example.com>', '"x" sip:a@b', '<sip:a@b', '<>', '<sip:a b@c>', 'sip a@b', 'alice@atlanta.com', '<sip:a@b>;;',
    '<sip:a@b>;tag=', '<sip:a@b> junk', 'x"y <sip:a@b>', '<:x>', '<1x:y>']) {
    assert.equal(parseNameAddr(bad), null, JSON.stringify(bad));
  }
});

test('name-addr: format, tagOf and Contact lists', () => {
  const n = parseNameAddr('sip:a@b;tag=x')!;
  assert.equal(formatNameAddr(n), '<sip:a@b>;tag=x');
  assert.equal(formatNameAddr({ displayName: 'Doe, "J"', uri: 'sip:j@d', params: new Map([['q', '0.5']]) }), '"Doe, \\"J\\"" <sip:j@d>;q=0.5');
  assert.deepEqual(parseNameAddr(formatNameAddr(parseNameAddr('"A \\\\ B" <sip:a@b>;lr')!)), parseNameAddr('"A \\\\ B" <sip:a@b>;lr'));
  assert.equal(tagOf('"A" <sip:a@b;tag=inuri>;tag=outer'), 'outer');
  assert.equal(tagOf('<sip:a@b;tag=inuri>'), undefined);
  assert.equal(tagOf('sip:a@b;tag=bare'), 'bare');
  assert.equal(tagOf('sip:a@b;tag'), undefined);
  assert.equal(tagOf('"broken'), undefined);

  const msg = createRequest('REGISTER', 'sip:r', new Headers()
    .append('Contact', '"A, B" <sip:a@h1>;expires=60, <sip:b@h2;transport=tcp>;q=0.7')
    .append('m', 'sip:c@h3;expires=0'));
  const list = parseContactList(msg)!;
  assert.equal(list.star, false);
  assert.deepEqual(list.contacts.map((c) => c.uri), ['sip:a@h1', 'sip:b@h2;transport=tcp', 'sip:c@h3']);
  assert.equal(list.contacts[0]!.displayName, 'A, B');
  assert.deepEqual(parseContactList(createRequest('REGISTER', 'sip:r', new Headers().append('Contact', '*'))), { star: true, contacts: [] });
  assert.equal(parseContactList(createRequest('REGISTER', 'sip:r', new Headers().append('Contact', '*, <sip:a@b>'))), null);
  assert.equal(parseContactList(createRequest('REGISTER', 'sip:r', new Headers().append('Contact', '*').append('Contact', '*'))), null);
  assert.equal(parseContactList(createRequest('REGISTER', 'sip:r', new Headers().append('Contact', '<sip:a@b'))), null);
  assert.deepEqual(parseContactList(createRequest('OPTIONS', 'sip:r')), { star: false, contacts: [] });
});

test('CSeq', () => {
  assert.deepEqual(parseCSeq('4711 INVITE'), { seq: 4711, method: 'INVITE' });
  assert.deepEqual(parseCSeq('  0009   INVITE '), { seq: 9, method: 'INVITE' });
  assert.deepEqual(parseCSeq('2147483647 ACK'), { seq: 2147483647, method: 'ACK' });
  for (const bad of ['', 'INVITE', '1', '1INVITE', '2147483648 INVITE', '36893488147419103232 REGISTER', '-1 INVITE', '1 INVITE x', '1 INV/ITE', '1.5 INVITE']) {
    assert.equal(parseCSeq(bad), null, JSON.stringify(bad));
  }
});

test('auth: Digest credentials and challenges (RFC 7616)', () => {
  const a = parseAuthHeader('Digest username="bob", realm="biloxi.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="sip:bob@biloxi.com", ' +
    'qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41", algorithm=SHA-256')!;
  assert.equal(a.scheme, 'Digest');
  assert.equal(a.params.get('username'), 'bob');
  assert.equal(a.params.get('uri'), 'sip:bob@biloxi.com');
  assert.equal(a.params.get('qop'), 'auth');
  assert.equal(a.params.get('nc'), '00000001');
  assert.equal(a.params.get('algorithm'), 'SHA-256');
  assert.equal(a.params.size, 10);
  const c = parseAuthHeader('Digest  Realm = "a \\"quoted\\" realm" ,, qop="auth,auth-int",stale=FALSE')!;
  assert.equal(c.params.get('realm'), 'a "quoted" realm');
  assert.equal(c.params.get('qop'), 'auth,auth-int');
  assert.equal(c.params.get('stale'), 'FALSE');
  assert.deepEqual(parseAuthHeader('NoOneKnowsThisScheme opaque-data=here')!.params.get('opaque-data'), 'here');
  assert.equal(parseAuthHeader('Digest uri=sip:a@b, realm=x')!.params.get('uri'), 'sip:a@b');
  const basic = parseAuthHeader('Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==')!;
  assert.equal(basic.token68, 'QWxhZGRpbjpvcGVuIHNlc2FtZQ==');
  assert.equal(basic.params.size, 0);
  assert.equal(parseAuthHeader('Digest realm=')!.token68, 'realm=', 'a lone "name=" is token68 syntax');
  assert.deepEqual(parseAuthHeader('Digest'), { scheme: 'Digest', params: new Map() });
  for (const bad of ['', ' ', 'Digest realm="unclosed', 'Digest realm="a" nonce="b"', 'Digest realm=a, realm=b', 'Digest =x', 'Digest realm="a" x', '"Digest" a=b', 'Basic a b']) {
    assert.equal(parseAuthHeader(bad), null, JSON.stringify(bad));
  }
});

test('Reason (RFC 3326)', () => {
  assert.deepEqual(parseReason('SIP ;cause=200 ;text="Call completed elsewhere"'), { protocol: 'SIP', cause: 200, text: 'Call completed elsewhere' });
  assert.deepEqual(parseReason('Q.850;cause=16;text="Terminated"'), { protocol: 'Q.850', cause: 16, text: 'Terminated' });
  assert.deepEqual(parseReason('SIP'), { protocol: 'SIP' });
  assert.deepEqual(parseReason('SIP;cause=487;foo=bar'), { protocol: 'SIP', cause: 487 });
  for (const bad of ['', ';cause=1', 'SIP;cause=abc', 'SIP;cause', 'SIP;text', 'SIP;cause=99999999999', 'SIP;text="open']) {
    assert.equal(parseReason(bad), null, JSON.stringify(bad));
  }
});

test('params: generic-param list with quoted values, blanks, first occurrence wins', () => {
  const p = new Map<string, string | null>();
  assert.equal(parseParams(' ; A = 1 ;b;c="x;y,z" ;a=2', 0, 29, p), true);
  assert.deepEqual([...p], [['a', '1'], ['b', null], ['c', '"x;y,z"']]);
  assert.equal(formatParams(p), ';a=1;b;c="x;y,z"');
  assert.equal(paramText(p.get('c')), 'x;y,z');
  assert.equal(paramText('"a\\"b"'), 'a"b');
  assert.equal(paramText(null), undefined);
  assert.equal(paramValue('token'), 'token');
  assert.equal(paramValue('two words'), '"two words"');
  assert.equal(paramValue(''), '""');
  for (const bad of [';', ';;a', ';a=', 'a', ';a="x', ';a=b c', ';a b']) {
    assert.equal(parseParams(bad, 0, bad.length, new Map()), false, JSON.stringify(bad));
  }
  assert.equal(parseParams('', 0, 0, new Map()), true);
});

test('the parser\'s non-allocating validators agree with the full parsers', async () => {
  const { isValidVia, parseVia: pv } = await import('../../lib/sip/headers/via.js');
  const { isValidNameAddr, parseNameAddr: pna } = await import('../../lib/sip/headers/name-addr.js');
  const { isValidUri, parseUri: pu } = await import('../../lib/sip/uri.js');
  const vias = ['SIP/2.0/UDP 192.0.2.33:5060;branch=z9hG4bK1;rport', 'SIP/2.0/UDP h;rport=65536', 'SIP/2.0/UDP h;RPORT=5;rport=x',
    'SIP/2.0/UDP h;rport;rport=x', 'SIP / 2.0 / tcp [2001:db8::1]:5070 ;received=[::1]', 'SIP/2.0/UDP 2001:db8::1;branch=x',
    'SIP/2.0/UDP 2001:db8::1:5060', 'SIP/2.0/UDP h:99999', 'SIP/2.0/UDPh', 'SIP/2.0/ UDP h;;', 'SIP/2.0/UDP h;a="b', ' SIP/2.0/UDP h ', ''];
  for (const v of vias) assert.equal(isValidVia(v, 0, v.length), pv(v) !== null, v);
  const nas = ['<sip:a@b>;tag=1', '"A \\" B" <sip:a@b>', 'A B <sip:a@b>;x', 'sip:a@b;tag=1', '<sip:a@b', '"A <sip:a@b>', 'A"B <sip:a@b>',
    '< sip:a@b >', '<x>', 'sip:a b', '<sip:a@b>;', '<sip:a@b>;tag=', '   ', 'tel:+1;tag=2'];
  for (const v of nas) assert.equal(isValidNameAddr(v, 0, v.length), pna(v) !== null, v);
  const uris = ['sip:a@b', 'SIPS:a@b:5061;transport=tls?x=y&z=w', 'sip:a@b?', 'sip:@b', 'sip:a:p@b', 'sip:[::1]', 'sip:[1::2::3]',
    'tel:+1-555;phone-context=x', 'tel:', 'TEL:12;a=b', 'urn:service:sos', 'x:a b', 'sip', ':a', '1sip:a', 'sip:a@b;lr;=x', 'sipx:a@b'];
  for (const u of uris) {
    assert.equal(isValidUri(u, 0, u.length), pu(u) !== null, u);
    assert.equal(isValidUri(`<${u}>`, 1, u.length + 1), pu(u) !== null, u);
  }
});

test('a CR inside a header name is not taken for a hyphen by the name fast path', async () => {
  const { parseMessage: parse } = await import('../../lib/sip/parser.js');
  const msg = 'OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\nFrom: <sip:c@d>;tag=1\r\n' +
    'Call\rID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n';
  const r = parse(Buffer.from(msg), { datagram: true });
  assert.equal(r.ok, false);
});
