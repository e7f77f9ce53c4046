import { test } from 'node:test';
import assert from 'node:assert/strict';
import { contactTarget, isPrivate } from '../../lib/pbx/contact-target.js';
import { describeMedia } from '../../lib/pbx/call-recorder.js';
import { dialledNumber, Router } from '../../lib/pbx/router.js';
import { Dialog, withoutTag } from '../../lib/sip/dialog.js';
import { LocalAddress } from '../../lib/sip/local-address.js';
import { parseUri } from '../../lib/sip/uri.js';
import { serialize } from '../../lib/sip/message.js';
import type { Binding } from '../../lib/pbx/registrar.js';

function binding(contact: string, source: [string, number], transport: 'udp' | 'tcp' = 'udp'): Binding {
  return {
    aor: '100', contact, contactHeader: `<${contact}>`, uri: parseUri(contact)!, expiresAt: Date.now() + 60_000, callId: 'c', cseq: 1,
    transport, sourceAddress: source[0], sourcePort: source[1], updatedAt: Date.now(),
  };
}

test('contact target: a private Contact behind NAT is reached through the registration flow', () => {
  assert.deepEqual(contactTarget(binding('sip:100@192.168.1.20:5060', ['203.0.113.9', 40123])), { transport: 'udp', address: '203.0.113.9', port: 40123 });
  assert.deepEqual(contactTarget(binding('sip:100@10.0.0.5', ['198.51.100.1', 5062])), { transport: 'udp', address: '198.51.100.1', port: 5062 });
});

test('contact target: a reachable Contact (public, loopback, or registered on behalf) is used as written', () => {
  assert.deepEqual(contactTarget(binding('sip:100@198.51.100.7:5070', ['198.51.100.8', 5072])), { transport: 'udp', address: '198.51.100.7', port: 5070 });
  assert.deepEqual(contactTarget(binding('sip:100@127.0.0.1:25070', ['127.0.0.1', 25072])), { transport: 'udp', address: '127.0.0.1', port: 25070 });
  // Same LAN as the server: contact and source agree.
  assert.deepEqual(contactTarget(binding('sip:100@192.168.1.20', ['192.168.1.20', 5060])), { transport: 'udp', address: '192.168.1.20', port: 5060 });
});

test('contact target: TCP and host names use the registration flow', () => {
  const b = binding('sip:100@198.51.100.7:5070;transport=tcp', ['198.51.100.7', 40000], 'tcp');
  b.connectionId = 12;
  assert.deepEqual(contactTarget(b), { transport: 'tcp', address: '198.51.100.7', port: 40000, connectionId: 12 });
  assert.deepEqual(contactTarget(binding('sip:100@phone.example', ['198.51.100.7', 5060])), { transport: 'udp', address: '198.51.100.7', port: 5060 });
});

test('private address ranges', () => {
  for (const ip of ['10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.0.1', '100.64.0.1', '169.254.1.1', 'fd00::1', 'fe80::1']) assert.ok(isPrivate(ip), ip);
  for (const ip of ['172.32.0.1', '8.8.8.8', '127.0.0.1', '2001:db8::1', '100.128.0.1']) assert.ok(!isPrivate(ip), ip);
});

test('describeMedia: accepted m= lines and the first audio codec', () => {
  const sdp = 'v=0\r\nm=audio 4000 RTP/AVP 8 0\r\na=rtpmap:8 PCMA/8000\r\nm=video 0 RTP/AVP 96\r\nm=video 4002 RTP/AVP 97\r\na=rtpmap:97 VP8/90000\r\n';
  assert.deepEqual(describeMedia(sdp), { kinds: 'audio+video', codec: 'PCMA' });
  assert.deepEqual(describeMedia('v=0\r\nm=audio 4000 RTP/AVP 18\r\n'), { kinds: 'audio', codec: 'G729' });
  assert.deepEqual(describeMedia(undefined), { kinds: '', codec: '' });
});

test('dialled number: sip user part, tel number, escapes decoded', () => {
  assert.equal(dialledNumber('sip:102@pbx.example;user=phone'), '102');
  assert.equal(dialledNumber('tel:+1-555-0100'), '+1-555-0100');
  assert.equal(dialledNumber('sip:%2A97@pbx'), '*97');
  assert.equal(dialledNumber('not a uri'), '');
});

test('router: extension with contacts, unregistered, not found; visual separators ignored', () => {
  const ext = { number: '200', displayName: 'Alice', realm: 'r', ha1Md5: '', ha1Sha256: '', createdAt: 0, allow: [] };
  const router = new Router({
    extensions: { get: (n) => (n === '200' || n === '201' ? { ...ext, number: n } : undefined) },
    registrar: { lookup: (aor) => (aor === '200' ? [binding('sip:200@127.0.0.1:5070', ['127.0.0.1', 5070])] : []) },
  });
  assert.equal(router.route('200').kind, 'extension');
  assert.equal(router.route('2-0-0').kind, 'extension');
  assert.equal(router.route('201').kind, 'unregistered');
  assert.equal(router.route('299').kind, 'not-found');
});

test('dialog requests: Request-URI is the remote target, tags, CSeq increments, route set, new branch', () => {
  const d = new Dialog({
    callId: 'abc@h', localTag: 'L', remoteTag: 'R', localUri: '<sip:100@h>', remoteUri: '<sip:200@h>', localSeq: 5, remoteSeq: 9,
    remoteTarget: 'sip:200@198.51.100.7:5070', routeSet: ['<sip:proxy.example;lr>'], destination: { transport: 'udp', address: '198.51.100.7', port: 5070 },
    contact: '<sip:192.0.2.1:5060>', sentBy: '192.0.2.1:5060',
  });
  const bye = d.request('BYE');
  const text = serialize(bye).toString();
  assert.match(text, /^BYE sip:200@198\.51\.100\.7:5070 SIP\/2\.0\r\n/);
  assert.match(text, /\r\nFrom: <sip:100@h>;tag=L\r\n/);
  assert.match(text, /\r\nTo: <sip:200@h>;tag=R\r\n/);
  assert.match(text, /\r\nCSeq: 6 BYE\r\n/);
  assert.match(text, /\r\nRoute: <sip:proxy\.example;lr>\r\n/);
  assert.doesNotMatch(text, /Contact:/, 'BYE is not a target refresh');
  const b1 = /branch=([^;\r]+)/.exec(text)![1];
  const reinvite = serialize(d.request('INVITE')).toString();
  assert.match(reinvite, /\r\nCSeq: 7 INVITE\r\n/);
  assert.match(reinvite, /\r\nContact: <sip:192\.0\.2\.1:5060>\r\n/);
  assert.notEqual(/branch=([^;\r]+)/.exec(reinvite)![1], b1);
  assert.match(serialize(d.request('ACK', { cseq: 7 })).toString(), /\r\nCSeq: 7 ACK\r\n/);
  // Section 12.2.2: lower CSeq from the peer is out of order.
  assert.equal(d.acceptRemoteSeq(10), true);
  assert.equal(d.acceptRemoteSeq(3), false);
});

test('withoutTag keeps everything but the tag', () => {
  assert.equal(withoutTag('"A" <sip:a@h>;tag=x;foo=1'), '"A" <sip:a@h>;foo=1');
  assert.equal(withoutTag('sip:a@h;tag=x'), 'sip:a@h');
});

test('local address: configured, then the peer\'s hint, then the bound address, loopback peers get loopback', () => {
  assert.equal(new LocalAddress({ configured: '203.0.113.1', bind: '0.0.0.0' }).for('198.51.100.1', '192.0.2.1'), '203.0.113.1');
  assert.equal(new LocalAddress({ configured: '', bind: '0.0.0.0' }).for('198.51.100.1', '192.0.2.1'), '192.0.2.1');
  assert.equal(new LocalAddress({ configured: '', bind: '0.0.0.0' }).for('198.51.100.1', 'pbx.example'), new LocalAddress({ configured: '', bind: '0.0.0.0' }).for('198.51.100.1'));
  assert.equal(new LocalAddress({ configured: '', bind: '192.0.2.5' }).for('198.51.100.1'), '192.0.2.5');
  assert.equal(new LocalAddress({ configured: '', bind: '0.0.0.0' }).for('127.0.0.1'), '127.0.0.1');
});
