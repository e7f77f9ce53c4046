import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseUri, formatUri, uriEquals, unescapeUriPart, type SipUri } from '../../lib/sip/uri.js';

function uri(text: string): SipUri {
  const u = parseUri(text);
  assert.ok(u, `${text} should parse`);
  return u;
}

test('sip URI parts', () => {
  const u = uri('SIP:alice:secret@Atlanta.example.com:5070;transport=TCP;lr?Subject=hi&Priority=urgent');
  assert.equal(u.scheme, 'sip');
  assert.equal(u.user, 'alice');
  assert.equal(u.password, 'secret');
  assert.equal(u.host, 'Atlanta.example.com');
  assert.equal(u.port, 5070);
  assert.deepEqual([...u.params], [['transport', 'TCP'], ['lr', null]]);
  assert.deepEqual([...u.headers], [['Subject', 'hi'], ['Priority', 'urgent']]);
  const host = uri('sips:example.com');
  assert.equal(host.scheme, 'sips');
  assert.equal(host.user, undefined);
  assert.equal(host.port, undefined);
  assert.equal(uri('sip:192.0.2.4:0').port, 0);
});

test('IPv6 references (RFC 5118)', () => {
  const u = uri('sip:user@[2001:db8::10]:5070;transport=udp');
  assert.equal(u.host, '2001:db8::10');
  assert.equal(u.port, 5070);
  assert.equal(uri('sip:[2001:db8::10:5070]').port, undefined);
  assert.equal(uri('sip:[::ffff:192.0.2.2]').host, '::ffff:192.0.2.2');
  assert.equal(parseUri('sip:2001:db8::10'), null, 'an IPv6 address must be bracketed');
  assert.equal(parseUri('sip:user@2001:db8::10'), null);
  assert.equal(parseUri('sip:[2001:db8::10'), null);
  assert.equal(parseUri('sip:[not-hex]'), null);
  assert.equal(formatUri(u), 'sip:user@[2001:db8::10]:5070;transport=udp');
});

test('user part: ";" before "@" belongs to the user, "%00" does not truncate', () => {
  const semi = uri('sip:user;par=u%40example.net@example.com');
  assert.equal(semi.user, 'user;par=u%40example.net');
  assert.equal(semi.params.size, 0);
  assert.equal(unescapeUriPart(semi.user!), 'user;par=u@example.net');
  const nul = uri('sip:null-%00-null@example.com');
  assert.equal(unescapeUriPart(nul.user!), 'null-\0-null');
  assert.equal(unescapeUriPart(nul.user!).length, 11);
});

test('tel and opaque schemes', () => {
  const t = uri('tel:+1-201-555-0123;phone-context=example.com');
  assert.equal(t.scheme, 'tel');
  assert.equal(t.user, '+1-201-555-0123');
  assert.equal(t.host, '');
  assert.equal(t.params.get('phone-context'), 'example.com');
  assert.equal(formatUri(t), 'tel:+1-201-555-0123;phone-context=example.com');
  assert.ok(uriEquals(t, uri('tel:+1.201.555.0123;Phone-Context=EXAMPLE.com')));
  const beep = uri('soap.beep://192.0.2.103:3002');
  assert.deepEqual([beep.scheme, beep.host, beep.user], ['soap.beep', '', '//192.0.2.103:3002']);
  assert.equal(formatUri(beep), 'soap.beep://192.0.2.103:3002');
  assert.equal(uri('http://www.example.com').scheme, 'http');
  assert.equal(uri('nobodyKnowsThisScheme:totallyopaquecontent').scheme, 'nobodyknowsthisscheme');
});

test('bad syntax gives null, never a throw', () => {
  for (const bad of ['', 'sip:', ':x', '1sip:a@b', 'sip:a@', 'sip:@host', 'sip:a b@c', 'sip:a@b:99999', 'sip:a@b:x', 'sip:a@b;', 'sip:a@b;=x',
    'sip:a@b;x=', 'sip:a@b?', 'sip:a@b?x', 'sip:a@b?a=1&', 'sip:a<b@c', 'sip:a@b c', 'tel:', 'tel:12 34', 'foo:a b', 'sip:a@b>']) {
    assert.equal(parseUri(bad), null, JSON.stringify(bad));
  }
  assert.equal(parseUri(undefined as unknown as string), null);
});

test('format round-trips what parse read', () => {
  for (const text of ['sip:alice@atlanta.com', 'sips:bob:pw@biloxi.com:5061;transport=tls;maddr=239.255.255.1;ttl=15',
    'sip:+1-212-555-1212:1234@gateway.com;user=phone', 'sip:alice@atlanta.com?subject=project%20x&priority=urgent',
    'sip:[2001:db8::1];lr', 'tel:7042;phone-context=example.com', 'sip:%61lice@atlanta.com;transport=TCP']) {
    assert.equal(formatUri(uri(text)), text.replace(/;([A-Za-z-]+)/g, (_m, n: string) => `;${n.toLowerCase()}`));
  }
});

test('uriEquals: the RFC 3261 section 19.1.4 examples', () => {
  const equal: [string, string][] = [
    ['sip:%61lice@atlanta.com;transport=TCP', 'sip:alice@AtLanTa.CoM;Transport=tcp'],
    ['sip:carol@chicago.com', 'sip:carol@chicago.com;newparam=5'],
    ['sip:carol@chicago.com', 'sip:carol@chicago.com;security=on'],
    ['sip:carol@chicago.com;newparam=5', 'sip:carol@chicago.com;security=on'],
    ['sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com', 'sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com'],
    ['sip:alice@atlanta.com?subject=project%20x&priority=urgent', 'sip:alice@atlanta.com?priority=urgent&subject=project%20x'],
  ];
  for (const [a, b] of equal) {
    assert.ok(uriEquals(uri(a), uri(b)), `${a} == ${b}`);
    assert.ok(uriEquals(uri(b), uri(a)), `${b} == ${a}`);
  }
  const different: [string, string][] = [
    ['SIP:ALICE@AtLanTa.CoM;Transport=udp', 'sip:alice@AtLanTa.CoM;Transport=UDP'],
    ['sip:bob@biloxi.com', 'sip:bob@biloxi.com:5060'],
    ['sip:bob@biloxi.com', 'sip:bob@biloxi.com;transport=udp'],
    ['sip:bob@biloxi.com', 'sip:bob@biloxi.com:6000;transport=tcp'],
    ['sip:carol@chicago.com', 'sip:carol@chicago.com?Subject=next%20meeting'],
    ['sip:bob@phone21.boxesbybob.com', 'sip:bob@192.0.2.4'],
    ['sip:alice@atlanta.com', 'sips:alice@atlanta.com'],
    ['sip:alice:pw@atlanta.com', 'sip:alice@atlanta.com'],
    ['sip:a@b;maddr=x', 'sip:a@b;maddr=y'],
  ];
  for (const [a, b] of different) {
    assert.ok(!uriEquals(uri(a), uri(b)), `${a} != ${b}`);
    assert.ok(!uriEquals(uri(b), uri(a)), `${b} != ${a}`);
  }
});

test('unescapeUriPart: UTF-8 escapes, invalid % kept literally', () => {
  assert.equal(unescapeUriPart('plain'), 'plain');
  assert.equal(unescapeUriPart('%C3%A9t%C3%A9'), 'été');
  assert.equal(unescapeUriPart('100%'), '100%');
  assert.equal(unescapeUriPart('%zz%4'), '%zz%4');
  assert.equal(unescapeUriPart('%Z%45'), '%ZE');
  assert.equal(unescapeUriPart('%25%34%31'), '%41');
  assert.equal(unescapeUriPart('%ff'), '\ufffd');
});
