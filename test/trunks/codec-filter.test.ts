import { test } from 'node:test';
import assert from 'node:assert/strict';
import { filterOffer } from '../../lib/trunks/codec-filter.js';

const OFFER = [
  'v=0',
  'o=- 1 1 IN IP4 192.0.2.1',
  's=-',
  'c=IN IP4 192.0.2.1',
  't=0 0',
  'm=audio 4000 RTP/AVP 9 0 8 96 101 13',
  'a=rtpmap:96 opus/48000/2',
  'a=fmtp:96 useinbandfec=1',
  'a=rtpmap:101 telephone-event/8000',
  'a=fmtp:101 0-15',
  'm=video 4002 RTP/AVP 97',
  'a=rtpmap:97 H264/90000',
  'a=fmtp:97 profile-level-id=42e01f',
  '',
].join('\r\n');

test('audio keeps the listed codecs in the listed order, plus telephone-event and CN; their attributes only; video untouched', () => {
  const out = filterOffer(OFFER, ['pcma', 'PCMU'])!;
  assert.match(out, /^m=audio 4000 RTP\/AVP 8 0 101 13\r$/m);
  assert.doesNotMatch(out, /opus|a=fmtp:96/);
  assert.match(out, /a=rtpmap:101 telephone-event\/8000/);
  assert.match(out, /^m=video 4002 RTP\/AVP 97\r$/m);
  assert.match(out, /a=fmtp:97 profile-level-id=42e01f/);
});

test('a codec named by rtpmap (opus) is found by name; an empty list passes the offer as it is', () => {
  assert.match(filterOffer(OFFER, ['OPUS'])!, /^m=audio 4000 RTP\/AVP 96 101 13\r$/m);
  assert.equal(filterOffer(OFFER, []), OFFER);
});

test('no listed codec in an audio stream: null (the call gets 488)', () => {
  assert.equal(filterOffer(OFFER, ['G729']), null);
});

test('a refused audio stream (port 0) is left alone', () => {
  const refused = OFFER.replace('m=audio 4000', 'm=audio 0');
  assert.match(filterOffer(refused, ['G729'])!, /^m=audio 0 RTP\/AVP 9 0 8 96 101 13\r$/m);
});
