import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { MediaRelay, SdpError, type RelaySession } from '../../lib/media/relay.js';
import { ADVERTISE, mPorts, PortRanges, sdp } from './helpers.js';
import { mutate } from '../helpers/mutate.js';
import { mulberry32 } from '../helpers/prng.js';

const ranges = new PortRanges(400);
const ADV = '203.0.113.7';
let relay: MediaRelay;

before(async () => {
  relay = await MediaRelay.open({ bind: '127.0.0.1', ...ranges.take(300), engine: 'node', inactivityMs: 0, reservePairs: 24 });
});
after(() => relay.close());
beforeEach(() => relay.settled());

function session(): RelaySession {
  const s = relay.createSession('sdp-test');
  assert.ok(s, 'session created');
  return s;
}

function lines(text: string, prefix: string): string[] {
  return text.split('\r\n').filter((l) => l.startsWith(prefix));
}

describe('SDP rewriting', () => {
  test('audio only: c= and m= point at the relay, direction and codecs pass through', () => {
    const s = session();
    const out = s.rewrite('a', sdp([{ media: 'audio', port: 4000, attrs: ['rtpmap:0 PCMU/8000', 'sendonly'] }], '192.168.1.20'), ADV);
    assert.deepEqual(lines(out, 'c='), [`c=IN IP4 ${ADV}`]);
    const [port] = mPorts(out);
    assert.ok(port! > 0 && port! % 2 === 0, 'even relay port');
    assert.match(out, /^m=audio \d+ RTP\/AVP 0 8$/m);
    assert.match(out, /^a=sendonly$/m);
    assert.match(out, /^a=rtpmap:0 PCMU\/8000$/m);
    assert.match(out, /^o=- 1 1 IN IP4 192\.0\.2\.10$/m);
    s.close();
  });

  test('audio and video get distinct relay ports, and offer and answer use the ports facing the other side', () => {
    const s = session();
    const offer = s.rewrite('a', sdp([{ media: 'audio', port: 4000 }, { media: 'video', port: 4002 }]), ADV);
    const answer = s.rewrite('b', sdp([{ media: 'audio', port: 6000 }, { media: 'video', port: 6002 }]), ADV);
    const ports = [...mPorts(offer), ...mPorts(answer)];
    assert.equal(new Set(ports).size, 4);
    assert.ok(ports.every((p) => p % 2 === 0));
    assert.deepEqual(
      s.stats().map((x) => x.media),
      ['audio', 'video'],
    );
    s.close();
  });

  test('a=rtcp is rewritten to the relay RTCP port and address (RFC 3605)', () => {
    const s = session();
    const out = s.rewrite('a', sdp([{ media: 'audio', port: 4000, attrs: ['rtcp:4005 IN IP4 192.168.1.20'] }]), ADV);
    const [port] = mPorts(out);
    assert.deepEqual(lines(out, 'a=rtcp'), [`a=rtcp:${port! + 1} IN IP4 ${ADV}`]);
    const plain = s.rewrite('a', sdp([{ media: 'audio', port: 4000, attrs: ['rtcp:4009'] }]), ADV);
    assert.deepEqual(lines(plain, 'a=rtcp'), [`a=rtcp:${port! + 1}`]);
    s.close();
  });

  test('rtcp-mux is kept; an a=rtcp naming the RTP port names the relay RTP port (RFC 5761)', () => {
    const s = session();
    const out = s.rewrite('a', sdp([{ media: 'audio', port: 4000, attrs: ['rtcp:4000', 'rtcp-mux'] }]), ADV);
    const [port] = mPorts(out);
    assert.deepEqual(lines(out, 'a=rtcp'), [`a=rtcp:${port}`, 'a=rtcp-mux']);
    s.close();
  });

  test('c= at session level only, at media level only, and at both levels', () => {
    const s = session();
    const sessionOnly = s.rewrite('a', sdp([{ media: 'audio', port: 4000 }], '192.168.1.20'), ADV);
    assert.deepEqual(lines(sessionOnly, 'c='), [`c=IN IP4 ${ADV}`]);
    const mediaOnly = s.rewrite('a', sdp([{ media: 'audio', port: 4000, c: '192.168.1.20' }], null), ADV);
    assert.deepEqual(lines(mediaOnly, 'c='), [`c=IN IP4 ${ADV}`]);
    assert.ok(mediaOnly.indexOf('c=') > mediaOnly.indexOf('m=audio'), 'c= stays at media level');
    const both = s.rewrite('a', sdp([{ media: 'audio', port: 4000, c: '10.0.0.1' }], '192.168.1.20'), ADV);
    assert.deepEqual(lines(both, 'c='), [`c=IN IP4 ${ADV}`, `c=IN IP4 ${ADV}`]);
    s.close();
  });

  test('c=0.0.0.0 (hold) passes through unchanged', () => {
    const s = session();
    const out = s.rewrite('a', sdp([{ media: 'audio', port: 4000, attrs: ['sendonly'] }], '0.0.0.0'), ADV);
    assert.deepEqual(lines(out, 'c='), ['c=IN IP4 0.0.0.0']);
    assert.ok(mPorts(out)[0]! > 0);
    s.close();
  });

  test('ICE attributes are removed at session and media level, the rest is kept', () => {
    const s = session();
    const text = sdp(
      [
        {
          media: 'audio',
          port: 4000,
          attrs: [
            'ice-ufrag:F7gI',
            'ice-pwd:x9cml/YzichV2+XlhiMu8g',
            'candidate:1 1 UDP 2130706431 192.168.1.20 4000 typ host',
            'candidate:2 1 UDP 1694498815 198.51.100.1 4000 typ srflx raddr 192.168.1.20 rport 4000',
            'remote-candidates:1 198.51.100.9 5000',
            'end-of-candidates',
            'ice-pacing:50',
            'ptime:20',
          ],
        },
      ],
      '192.168.1.20',
      ['ice-lite', 'ice-options:trickle'],
    );
    const out = s.rewrite('a', text, ADV);
    assert.doesNotMatch(out, /ice-|candidate/);
    assert.match(out, /^a=ptime:20$/m);
    s.close();
  });

  test('a port 0 line stays port 0 and releases the relay ports of that stream', async () => {
    const s = session();
    const offer = s.rewrite('a', sdp([{ media: 'audio', port: 4000 }, { media: 'video', port: 4002 }]), ADV);
    const answer = s.rewrite('b', sdp([{ media: 'audio', port: 6000 }, { media: 'video', port: 0 }]), ADV);
    assert.equal(mPorts(answer)[1], 0);
    assert.deepEqual(
      s.stats().map((x) => x.index),
      [0],
    );
    const reoffer = s.rewrite('a', sdp([{ media: 'audio', port: 4000 }, { media: 'video', port: 0 }]), ADV);
    assert.deepEqual(mPorts(reoffer), [mPorts(offer)[0], 0]);
    s.close();
  });

  test('a re-offer keeps the ports of existing streams and adds one for a new line', () => {
    const s = session();
    const offer = s.rewrite('a', sdp([{ media: 'audio', port: 4000 }]), ADV);
    const answer = s.rewrite('b', sdp([{ media: 'audio', port: 6000 }]), ADV);
    const reoffer = s.rewrite('b', sdp([{ media: 'audio', port: 6000 }, { media: 'video', port: 6002 }]), ADV);
    const reanswer = s.rewrite('a', sdp([{ media: 'audio', port: 4000 }, { media: 'video', port: 4002 }]), ADV);
    assert.equal(mPorts(reoffer)[0], mPorts(answer)[0]);
    assert.equal(mPorts(reanswer)[0], mPorts(offer)[0]);
    assert.ok(mPorts(reoffer)[1]! > 0 && mPorts(reanswer)[1]! > 0);
    assert.equal(s.stats().length, 2);
    s.close();
  });

  test('m= lines beyond the relayed maximum are disabled', () => {
    const s = session();
    const many = Array.from({ length: 10 }, (_, i) => ({ media: 'audio', port: 4000 + 2 * i }));
    const out = s.rewrite('a', sdp(many), ADV);
    const ports = mPorts(out);
    assert.equal(ports.length, 10);
    assert.ok(ports.slice(0, 8).every((p) => p > 0));
    assert.deepEqual(ports.slice(8), [0, 0]);
    s.close();
  });

  test('malformed SDP and unreconcilable answers throw SdpError', () => {
    const s = session();
    const bad = [
      '',
      'hello world',
      'v=0\r\nm=audio abc RTP/AVP 0\r\n',
      sdp([{ media: 'audio', port: 70000 }]),
      sdp([{ media: 'audio', port: 4000 }], null),
      sdp([{ media: 'audio', port: 4000 }], 'pbx.example.com'),
      sdp([{ media: 'audio', port: 4000 }], null).replace('m=audio 4000 RTP/AVP 0 8', 'm=audio 4000 RTP/AVP 0 8\r\nc=IN IP6 ::1'),
      'x'.repeat(70000),
    ];
    for (const text of bad) assert.throws(() => s.rewrite('a', text, ADV), SdpError, JSON.stringify(text.slice(0, 60)));
    assert.throws(() => s.rewrite('a', sdp([{ media: 'audio', port: 4000 }]), 'not-an-ip'), SdpError);
    s.rewrite('a', sdp([{ media: 'audio', port: 4000 }, { media: 'video', port: 4002 }]), ADV);
    assert.throws(() => s.rewrite('b', sdp([{ media: 'audio', port: 6000 }]), ADV), /offer had 2/);
    s.close();
    assert.throws(() => s.rewrite('a', sdp([{ media: 'audio', port: 4000 }]), ADV), SdpError);
  });

  test('every line the relay does not change passes through as it came, in its place', () => {
    const s = session();
    const text = [
      'v=0', 'o=alice 2890844526 2890844527 IN IP4 192.168.1.20', 's=Talk', 'i=a session',
      'c=IN IP4 192.168.1.20', 'b=AS:256', 't=0 0', 'a=group:BUNDLE 0 1', 'a=x-vendor:anything goes  here',
      'm=audio 4000 RTP/SAVP 111 0', 'b=TIAS:64000', 'a=mid:0', 'a=rtpmap:111 opus/48000/2', 'a=fmtp:111 minptime=10;useinbandfec=1',
      'a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32', 'a=ssrc:1 cname:x', 'a=sendrecv',
      'm=video 4002/2 RTP/AVP 96', 'a=mid:1', 'a=rtpmap:96 VP8/90000', 'a=rtcp-fb:96 nack pli', '',
    ].join('\r\n');
    const out = s.rewrite('a', text, ADV).split('\r\n');
    const changed = (l: string) => /^(c=|m=)/.test(l);
    assert.deepEqual(out.filter((l) => !changed(l)), text.split('\r\n').filter((l) => !changed(l)));
    assert.match(out.find((l) => l.startsWith('m=video'))!, /^m=video \d+ RTP\/AVP 96$/, 'a port count (/2) goes with the port');
    assert.match(out.find((l) => l.startsWith('m=audio'))!, /^m=audio \d+ RTP\/SAVP 111 0$/);
    s.close();
  });

  test('damaged SDP either relays or throws SdpError, never anything else', async () => {
    const rnd = mulberry32(4566);
    const base = sdp([{ media: 'audio', port: 4000, attrs: ['rtcp:4001 IN IP4 127.0.0.1', 'rtpmap:0 PCMU/8000'] }, { media: 'video', port: 4002, c: '127.0.0.2' }]);
    let relayed = 0;
    for (let i = 0; i < 2000; i++) {
      const s = await relay.openSession('sdp-fuzz');
      assert.ok(s, 'session created');
      try {
        const out = s.rewrite('a', mutate(base, rnd).toString('latin1'), ADV);
        assert.equal(typeof out, 'string');
        relayed++;
      } catch (err) {
        assert.ok(err instanceof SdpError, `case ${i}: ${(err as Error).stack}`);
      } finally {
        s.close();
      }
    }
    assert.ok(relayed > 100, `some damaged SDP still relays (${relayed})`);
  });

  test('the advertised address can be any IPv4 the caller chooses', () => {
    const s = session();
    const out = s.rewrite('a', sdp([{ media: 'audio', port: 4000 }]), ADVERTISE);
    assert.deepEqual(lines(out, 'c='), [`c=IN IP4 ${ADVERTISE}`]);
    s.close();
  });
});
