/**
 * SRTP through the relay's SDP rewrite: the proto, the a=crypto lines (SDES) and the DTLS-SRTP
 * attributes pass untouched, only c=, the m= port and a=rtcp change; what the call engine reads
 * of each m= line (streamSecurity) and when an answer cannot carry the offered SRTP
 * (srtpAnswerProblem); the IVR's choice of audio never takes an SRTP line.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSdp, srtpAnswerProblem, streamSecurity, streamSecurityOf, writeForOtherSide, SdpError } from '../../lib/media/sdp.js';
import { answerSdp, chooseAudio, narrowOffer } from '../../lib/services/ivr/ivr-sdp.js';

const KEY1 = 'a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4';
const KEY2 = 'a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:4';
const KEY3 = 'a=crypto:3 AES_256_CM_HMAC_SHA1_80 inline:IAIPNRo0rHI8y7nIJfYavRGgjhdA4wI5+PVTt9QqZ8XWYQ4BeBUcbnOXmGNq0g==';
const FINGERPRINT = 'a=fingerprint:sha-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:4B:C8:C3:AF:3D:4C:44:9A:22:27:F7:8D';

function sdp(m: string[][], ip = '192.168.1.20'): string {
  return ['v=0', `o=- 1 1 IN IP4 ${ip}`, 's=-', `c=IN IP4 ${ip}`, 't=0 0', ...m.flat(), ''].join('\r\n');
}

function section(text: string, index: number): string[] {
  const all = text.split('\r\n').filter((l) => l !== '');
  const starts = all.map((l, i) => (l.startsWith('m=') ? i : -1)).filter((i) => i >= 0);
  return all.slice(starts[index], starts[index + 1] ?? all.length);
}

test('RTP/SAVP with SDES keys: proto, every a=crypto line in its order and the rest pass; only c=, port and a=rtcp change', () => {
  const offer = sdp([
    ['m=audio 4000 RTP/SAVP 0 8 101', 'a=rtpmap:0 PCMU/8000', KEY1, KEY2, KEY3, 'a=rtcp:4001', 'a=rtpmap:101 telephone-event/8000', 'a=sendrecv'],
  ]);
  const out = writeForOtherSide(parseSdp(offer), [20000], '203.0.113.7');
  assert.deepEqual(section(out, 0), [
    'm=audio 20000 RTP/SAVP 0 8 101',
    'a=rtpmap:0 PCMU/8000',
    KEY1,
    KEY2,
    KEY3,
    'a=rtcp:20001',
    'a=rtpmap:101 telephone-event/8000',
    'a=sendrecv',
  ]);
  assert.match(out, /^c=IN IP4 203\.0\.113\.7$/m);
});

test('RTP/SAVPF and DTLS-SRTP (UDP/TLS/RTP/SAVPF): fingerprint and setup pass through, the relay forwards the DTLS handshake like RTP', () => {
  const offer = sdp([
    ['m=audio 4000 UDP/TLS/RTP/SAVPF 0', FINGERPRINT, 'a=setup:actpass', 'a=rtcp-mux', 'a=ice-ufrag:abcd', 'a=candidate:1 1 UDP 2130706431 192.168.1.20 4000 typ host'],
    ['m=video 4002 RTP/SAVPF 96', 'a=rtpmap:96 VP8/90000', KEY1, 'a=rtcp-fb:96 nack'],
  ]);
  const out = writeForOtherSide(parseSdp(offer), [20000, 20002], '203.0.113.7');
  assert.deepEqual(section(out, 0), ['m=audio 20000 UDP/TLS/RTP/SAVPF 0', FINGERPRINT, 'a=setup:actpass', 'a=rtcp-mux']);
  assert.deepEqual(section(out, 1), ['m=video 20002 RTP/SAVPF 96', 'a=rtpmap:96 VP8/90000', KEY1, 'a=rtcp-fb:96 nack']);
});

test('streamSecurity reads proto, protection and key lines per m= line', () => {
  const s = streamSecurity(parseSdp(sdp([
    ['m=audio 4000 RTP/SAVP 0', KEY1, KEY2],
    ['m=audio 4002 RTP/AVP 0', KEY1],
    ['m=video 0 UDP/TLS/RTP/SAVPF 96'],
    ['m=image 4004 udptl t38'],
  ])));
  assert.deepEqual(s, [
    { media: 'audio', port: 4000, proto: 'RTP/SAVP', security: 'sdes', crypto: 2, acfg: false },
    { media: 'audio', port: 4002, proto: 'RTP/AVP', security: 'rtp', crypto: 1, acfg: false },
    { media: 'video', port: 0, proto: 'UDP/TLS/RTP/SAVPF', security: 'dtls', crypto: 0, acfg: false },
    { media: 'image', port: 4004, proto: 'udptl', security: 'other', crypto: 0, acfg: false },
  ]);
  assert.equal(streamSecurityOf('not sdp'), null);
});

test('srtpAnswerProblem: the answer must keep the offered protection on accepted lines, and accept some SRTP audio', () => {
  const of = (...m: string[][]) => streamSecurityOf(sdp(m))!;
  const savp = of(['m=audio 4000 RTP/SAVP 0', KEY1]);
  assert.equal(srtpAnswerProblem(savp, of(['m=audio 6000 RTP/SAVP 0', KEY1])), null);
  assert.match(srtpAnswerProblem(savp, of(['m=audio 6000 RTP/AVP 0']))!, /offered RTP\/SAVP and answered RTP\/AVP/);
  assert.match(srtpAnswerProblem(savp, of(['m=audio 0 RTP/SAVP 0']))!, /refused/);
  assert.match(srtpAnswerProblem(savp, of(['m=audio 6000 UDP/TLS/RTP/SAVP 0']))!, /answered UDP\/TLS/);
  // Plain RTP answered with SRTP is the same protocol error the other way.
  assert.match(srtpAnswerProblem(of(['m=audio 4000 RTP/AVP 0']), of(['m=audio 6000 RTP/SAVP 0', KEY1]))!, /offered RTP\/AVP and answered RTP\/SAVP/);
  // RFC 5939: SRTP offered as a potential configuration of an RTP/AVP line, taken by the answer.
  const capneg = of(['m=audio 4000 RTP/AVP 0', 'a=tcap:1 RTP/SAVP', 'a=acap:1 crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz', 'a=pcfg:1 t=1 a=1']);
  assert.equal(srtpAnswerProblem(capneg, of(['m=audio 6000 RTP/SAVP 0', KEY1, 'a=acfg:1 t=1 a=1'])), null);
  assert.equal(capneg[0]!.crypto, 1, 'keys offered in a=acap count as keys in the clear');
  // Plain offers: AVP/AVPF interwork, a refused line is the callee's choice.
  assert.equal(srtpAnswerProblem(of(['m=audio 4000 RTP/AVPF 0']), of(['m=audio 6000 RTP/AVP 0'])), null);
  assert.equal(srtpAnswerProblem(of(['m=audio 4000 RTP/AVP 0']), of(['m=audio 0 RTP/AVP 0'])), null);
  // Best effort (RFC 4568 keys on RTP/AVP): answered with or without keys, both work.
  assert.equal(srtpAnswerProblem(of(['m=audio 4000 RTP/AVP 0', KEY1]), of(['m=audio 6000 RTP/AVP 0'])), null);
  // Two audio lines, SRTP and plain: the callee may take the plain one.
  const both = of(['m=audio 4000 RTP/SAVP 0', KEY1], ['m=audio 4002 RTP/AVP 0']);
  assert.equal(srtpAnswerProblem(both, of(['m=audio 0 RTP/SAVP 0'], ['m=audio 6000 RTP/AVP 0'])), null);
  // SRTP audio refused while video is taken: no audio, fails; SRTP video refused alone: fine.
  const av = of(['m=audio 4000 RTP/SAVP 0', KEY1], ['m=video 4002 RTP/SAVP 96', KEY2]);
  assert.match(srtpAnswerProblem(av, of(['m=audio 0 RTP/SAVP 0'], ['m=video 6002 RTP/SAVP 96', KEY2]))!, /audio/);
  assert.equal(srtpAnswerProblem(av, of(['m=audio 6000 RTP/SAVP 0', KEY1], ['m=video 0 RTP/SAVP 96'])), null);
});

test('the IVR never answers an SRTP line: SRTP-only audio throws, SRTP beside plain audio is refused with port 0', () => {
  assert.throws(() => chooseAudio(sdp([['m=audio 4000 RTP/SAVP 0 8', KEY1]])), (err: unknown) => err instanceof SdpError && /SRTP/.test(err.message));
  const mixed = sdp([
    ['m=audio 4000 RTP/SAVP 0', KEY1],
    ['m=audio 4002 RTP/AVP 8', 'a=rtpmap:8 PCMA/8000'],
  ]);
  const choice = chooseAudio(mixed)!;
  assert.equal(choice.index, 1);
  assert.equal(choice.codec, 'pcma');
  const answer = answerSdp(choice, mixed, '127.0.0.1', 30000, 7);
  assert.match(answer, /^m=audio 0 RTP\/SAVP 0$/m);
  assert.match(answer, /^m=audio 30000 RTP\/AVP 8$/m);
  assert.doesNotMatch(answer, /a=crypto/);
  // A best-effort offer (keys on RTP/AVP) is answered plain, and the callee of a callto is offered it plain too.
  const bestEffort = sdp([['m=audio 4000 RTP/AVP 0', KEY1, FINGERPRINT, 'a=setup:actpass', 'a=tcap:1 RTP/SAVP', 'a=acap:1 crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x', 'a=pcfg:1 t=1 a=1', 'a=rtpmap:0 PCMU/8000']]);
  const c2 = chooseAudio(bestEffort)!;
  assert.doesNotMatch(answerSdp(c2, bestEffort, '127.0.0.1', 30000, 8), /a=crypto|a=fingerprint/);
  const onward = narrowOffer(c2, bestEffort);
  assert.doesNotMatch(onward, /a=crypto|a=fingerprint|a=setup|a=tcap|a=acap|a=pcfg/);
  assert.match(onward, /^a=rtpmap:0 PCMU\/8000$/m);
});
