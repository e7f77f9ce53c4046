import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { MediaEndpoint, type DigitSource, type MediaEndpointOptions } from '../../../lib/media/endpoint/endpoint.js';
import { decodeG711, encodeG711, SILENCE_BYTE, type G711Codec } from '../../../lib/media/endpoint/g711.js';
import { goertzelPower } from '../../../lib/media/endpoint/goertzel.js';
import { Pacer } from '../../../lib/media/endpoint/pacer.js';
import { decodeRtp, encodeRtp, type RtpPacket } from '../../../lib/media/endpoint/rtp.js';
import { dbm0ToAmplitude, dtmfPayload, silencePayload, sineSamples } from '../../../lib/media/endpoint/tones.js';
import { keepAlive, waitFor } from '../../helpers/keep-alive.js';
import { runUntilExit } from '../../helpers/child-exit.js';

const LOOPBACK = '127.0.0.1';

/** A phone: a UDP socket that records the RTP it receives and sends RTP of its own. */
class Phone {
  readonly packets: RtpPacket[] = [];
  private seq = 1000;
  private readonly ssrc = 0x5eed;
  private constructor(readonly socket: dgram.Socket) {
    socket.on('message', (msg) => {
      const p = decodeRtp(msg);
      if (p) this.packets.push(p);
    });
  }
  static async open(address = LOOPBACK): Promise<Phone> {
    const socket = dgram.createSocket('udp4');
    socket.bind(0, address);
    await once(socket, 'listening');
    return new Phone(socket);
  }
  get port(): number {
    return this.socket.address().port;
  }
  sendRtp(to: MediaEndpoint, fields: { payloadType: number; timestamp: number; marker?: boolean; payload: Uint8Array }): void {
    const bytes = encodeRtp({ marker: false, sequenceNumber: this.seq++ & 0xffff, ssrc: this.ssrc, ...fields });
    this.socket.send(bytes, to.localPort, LOOPBACK);
  }
  /** An RFC 4733 press: start (marker), updates every 20 ms, three end packets. */
  sendPress(to: MediaEndpoint, pt: number, code: number, timestamp: number): number {
    const block = (duration: number, end: boolean) => Uint8Array.from([code, (end ? 0x80 : 0) | 10, duration >> 8, duration & 0xff]);
    let sent = 0;
    for (let d = 160; d <= 800; d += 160, sent++) this.sendRtp(to, { payloadType: pt, timestamp, marker: d === 160, payload: block(d, false) });
    for (let i = 0; i < 3; i++, sent++) this.sendRtp(to, { payloadType: pt, timestamp, payload: block(800, true) });
    return sent;
  }
  /** G.711 audio in 20 ms packets, a few at a time so that no socket buffer overflows. */
  async sendAudio(to: MediaEndpoint, pt: number, bytes: Uint8Array, firstTimestamp: number): Promise<number> {
    let sent = 0;
    for (let at = 0; at < bytes.length; at += 160, sent++) {
      this.sendRtp(to, { payloadType: pt, timestamp: firstTimestamp + at, payload: bytes.subarray(at, at + 160) });
      if (sent % 8 === 7) await new Promise((r) => setImmediate(r));
    }
    return sent;
  }
  close(): void {
    this.socket.close();
  }
}

async function withEndpoint(opts: Partial<MediaEndpointOptions>, body: (ep: MediaEndpoint, phone: Phone) => Promise<void>): Promise<void> {
  const phone = await Phone.open();
  // A pacer of its own that never skips a slot however late the loop wakes (a loaded machine): the
  // tests read exact numbering and prompt bytes; skipping is the pacer's test's business.
  const pacer = new Pacer({ maxBurst: 1_000_000 });
  const ep = await MediaEndpoint.open({ bind: LOOPBACK, codec: 'pcmu', remote: { address: LOOPBACK, port: phone.port }, pacer, ...opts });
  try {
    await body(ep, phone);
  } finally {
    await ep.close();
    phone.close();
  }
}

function digitsOf(ep: MediaEndpoint): Array<[string, DigitSource]> {
  const digits: Array<[string, DigitSource]> = [];
  ep.on('digit', (key, source) => digits.push([key, source]));
  return digits;
}

function isSilent(p: RtpPacket, codec: G711Codec = 'pcmu'): boolean {
  return p.payload.every((b) => b === SILENCE_BYTE[codec]);
}

/** A prompt that is not silence anywhere: a 1 kHz tone. */
function prompt(ms: number, codec: G711Codec = 'pcmu'): Uint8Array {
  return encodeG711(codec, sineSamples([1000], dbm0ToAmplitude(-10), (ms * 8) | 0, 1));
}

function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Every packet continues the one before: same SSRC, sequence +1, timestamp +160 (mod 2^16 / 2^32). */
function assertContinuous(packets: RtpPacket[]): void {
  for (let i = 1; i < packets.length; i++) {
    const [a, b] = [packets[i - 1]!, packets[i]!];
    assert.equal(b.ssrc, a.ssrc, `SSRC of packet ${i}`);
    assert.equal(b.sequenceNumber, (a.sequenceNumber + 1) & 0xffff, `sequence number of packet ${i}`);
    assert.equal(b.timestamp, (a.timestamp + 160) >>> 0, `timestamp of packet ${i}`);
  }
}

test('comfort silence, then a prompt: right payload type, continuous numbering, marker on the first packet of each', async () => {
  await withEndpoint({}, async (ep, phone) => {
    await waitFor(() => phone.packets.length >= 5, 'comfort silence');
    assert.ok(phone.packets.slice(0, 5).every((p) => isSilent(p)), 'silence while idle');
    assert.equal(phone.packets[0]!.marker, true, 'the first packet of the stream');
    assert.ok(phone.packets.slice(1, 5).every((p) => !p.marker));
    const audio = prompt(300);
    const result = await keepAlive(ep.play(audio).result, 'the prompt to end');
    assert.equal(result, 'done');
    await waitFor(() => phone.packets.filter((p) => !isSilent(p)).length >= 15, 'the prompt\'s packets');
    await waitFor(() => isSilent(phone.packets[phone.packets.length - 1]!), 'silence after the prompt');
    const first = phone.packets.findIndex((p) => !isSilent(p));
    const played = phone.packets.slice(first, first + 15);
    assert.deepEqual(concatBytes(played.map((p) => p.payload)), audio, 'the prompt, byte for byte');
    assert.equal(played[0]!.marker, true, 'a talkspurt starts with the prompt');
    assert.ok(played.slice(1).every((p) => !p.marker));
    assert.ok(phone.packets.every((p) => p.payloadType === 0 && p.payload.length === 160));
    assertContinuous(phone.packets);
    const { sent } = ep.stats();
    assert.ok(sent >= phone.packets.length && sent - phone.packets.length <= 2, `${sent} sent, ${phone.packets.length} arrived`);
  });
});

test('prompts play back to back across packet boundaries; the last packet is padded with silence', async () => {
  await withEndpoint({ codec: 'pcma', idle: 'none' }, async (ep, phone) => {
    const parts = [prompt(31.25, 'pcma'), prompt(51.25, 'pcma'), prompt(7.5, 'pcma')]; // 250 + 410 + 60 bytes
    assert.equal(await keepAlive(ep.play(parts).result, 'the prompts'), 'done');
    await waitFor(() => phone.packets.length >= 5, 'five packets');
    assert.equal(phone.packets.length, 5, 'idle: none sends nothing after the prompts');
    const heard = concatBytes(phone.packets.map((p) => p.payload));
    assert.deepEqual(heard.subarray(0, 720), concatBytes(parts));
    assert.ok(heard.subarray(720).every((b) => b === SILENCE_BYTE.pcma), 'padding');
    assert.ok(phone.packets.every((p) => p.payloadType === 8));
    assert.deepEqual(phone.packets.map((p) => p.marker), [true, false, false, false, false]);
    assertContinuous(phone.packets);
  });
});

test('after a gap (idle: none), the next prompt starts a talkspurt and the timestamp follows the clock', async () => {
  await withEndpoint({ idle: 'none' }, async (ep, phone) => {
    await keepAlive(ep.play(prompt(40)).result, 'the first prompt');
    const pause = performance.now();
    await waitFor(() => performance.now() - pause >= 200, '200 ms of nothing sent');
    await keepAlive(ep.play(prompt(40)).result, 'the second prompt');
    await waitFor(() => phone.packets.length >= 4, 'four packets');
    const [, last1, first2, next2] = phone.packets as [RtpPacket, RtpPacket, RtpPacket, RtpPacket];
    assert.equal(first2.marker, true);
    assert.equal(first2.sequenceNumber, (last1.sequenceNumber + 1) & 0xffff, 'sequence numbers count packets');
    const gap = (first2.timestamp - last1.timestamp) >>> 0;
    // At least half the 200 ms gap: the pacer's slots, not the wall clock, set the timestamp, and
    // on a loaded machine a slot late by less than a whole period is not counted as skipped.
    assert.ok(gap >= 160 * 5 && gap % 160 === 0, `the timestamp advanced with the clock over the gap (${gap})`);
    assert.equal(next2.timestamp, (first2.timestamp + 160) >>> 0);
  });
});

test('play results: replaced, stopped, bargeIn by a key, empty, closed', async () => {
  await withEndpoint({}, async (ep) => {
    const digits = digitsOf(ep);
    const first = ep.play(prompt(2000));
    const second = ep.play(prompt(2000));
    assert.equal(await first.result, 'interrupted', 'a new play ends the one before');
    second.stop();
    assert.equal(await second.result, 'interrupted');
    assert.equal(await ep.play([]).result, 'done', 'nothing to play');
    const plain = ep.play(prompt(2000));
    ep.injectDigit('5');
    const bargeIn = ep.play(prompt(2000), { bargeIn: true });
    assert.equal(await plain.result, 'interrupted', 'replaced by the barge-in play, not by the key');
    ep.injectDigit('#', 'info');
    assert.equal(await bargeIn.result, 'interrupted');
    assert.deepEqual(digits, [['5', 'info'], ['#', 'info']]);
    assert.throws(() => ep.injectDigit('x'), RangeError);
    const last = ep.play(prompt(2000));
    const tone = ep.playTone('ringback');
    assert.equal(await last.result, 'interrupted');
    await ep.close();
    assert.equal(await tone.result, 'closed');
    assert.equal(await ep.play(prompt(100)).result, 'closed', 'play after close');
  });
});

test('ringback: 425 Hz from the first packet, until stopped', async () => {
  await withEndpoint({}, async (ep, phone) => {
    await waitFor(() => phone.packets.length >= 2, 'silence first');
    const startAt = phone.packets.length;
    const ring = ep.playTone('ringback');
    // Silence sent just before the tone may still be on its way: the tone starts at its marker.
    const toneStart = () => phone.packets.findIndex((p, i) => i >= startAt && p.marker);
    await waitFor(() => toneStart() >= 0 && phone.packets.length >= toneStart() + 10, 'ten packets of ringback');
    const tone = phone.packets.slice(toneStart(), toneStart() + 10);
    assert.ok(phone.packets.slice(startAt, toneStart()).every((p) => isSilent(p)), 'only silence before the tone');
    const samples = decodeG711('pcmu', concatBytes(tone.map((p) => p.payload)));
    assert.ok(goertzelPower(samples, 425) > 100 * goertzelPower(samples, 1000), '425 Hz, not 1 kHz');
    ring.stop();
    assert.equal(await ring.result, 'interrupted');
    const stoppedAt = phone.packets.length;
    await waitFor(() => phone.packets.length >= stoppedAt + 3, 'packets after stop');
    assert.ok(isSilent(phone.packets[phone.packets.length - 1]!), 'silence again');
  });
});

test('RFC 4733 events: exactly one key per press, repeated end packets included; the same key again counts again', async () => {
  await withEndpoint({ telephoneEventPayloadType: 101 }, async (ep, phone) => {
    const digits = digitsOf(ep);
    let sent = 0;
    const presses: Array<[number, string]> = [[1, '1'], [11, '#'], [1, '1'], [10, '*'], [15, 'D']];
    presses.forEach(([code], i) => (sent += phone.sendPress(ep, 101, code, 10_000 + i * 4000)));
    await waitFor(() => ep.stats().received >= sent, () => `all ${sent} event packets to arrive (${ep.stats().received})`);
    assert.deepEqual(digits, presses.map(([, key]) => [key, 'rfc4733']));
    assert.equal(ep.stats().digits, presses.length);
  });
});

test('in-band DTMF tones in G.711 RTP are keys when no telephone-event type was negotiated', async () => {
  for (const codec of ['pcmu', 'pcma'] as const) {
    await withEndpoint({ codec }, async (ep, phone) => {
      const digits = digitsOf(ep);
      const keys = '159*#0D';
      const audio = concatBytes([...keys].flatMap((k) => [dtmfPayload(k, codec, { durationMs: 80 }), silencePayload(codec, 80)]));
      const sent = await phone.sendAudio(ep, codec === 'pcmu' ? 0 : 8, audio, 5000);
      await waitFor(() => ep.stats().received >= sent, () => `all ${sent} audio packets to arrive (${ep.stats().received})`);
      assert.deepEqual(digits, [...keys].map((k) => [k, 'inband']), codec);
    });
  }
});

test('inband: auto ignores tones when telephone-event was negotiated; always hears them until an RFC 4733 event comes', async () => {
  const tones = (keys: string) => concatBytes([...keys].flatMap((k) => [dtmfPayload(k, 'pcmu', { durationMs: 80 }), silencePayload('pcmu', 80)]));
  await withEndpoint({ telephoneEventPayloadType: 101 }, async (ep, phone) => {
    const digits = digitsOf(ep);
    const sent = await phone.sendAudio(ep, 0, tones('123'), 0);
    await waitFor(() => ep.stats().received >= sent, 'the audio');
    assert.deepEqual(digits, []);
  });
  await withEndpoint({ telephoneEventPayloadType: 101, inband: 'always' }, async (ep, phone) => {
    const digits = digitsOf(ep);
    let sent = await phone.sendAudio(ep, 0, tones('12'), 0);
    await waitFor(() => ep.stats().received >= sent, 'the audio');
    assert.deepEqual(digits, [['1', 'inband'], ['2', 'inband']]);
    // The phone now sends both at once: its events count, the tones no longer.
    const both = tones('34');
    for (let at = 0, pkt = 0; at < both.length; at += 160, pkt++) {
      phone.sendRtp(ep, { payloadType: 0, timestamp: 20_000 + at, payload: both.subarray(at, at + 160) });
      sent++;
      if (pkt === 0) sent += phone.sendPress(ep, 101, 3, 20_000);
      if (pkt === 8) sent += phone.sendPress(ep, 101, 4, 20_000 + 8 * 160);
      if (pkt % 4 === 3) await new Promise((r) => setImmediate(r));
    }
    await waitFor(() => ep.stats().received >= sent, 'the audio and the events');
    assert.deepEqual(digits, [['1', 'inband'], ['2', 'inband'], ['3', 'rfc4733'], ['4', 'rfc4733']]);
  });
});

test('symmetric RTP: packets from other ports or hosts are ignored', async () => {
  await withEndpoint({ telephoneEventPayloadType: 101 }, async (ep, phone) => {
    const digits = digitsOf(ep);
    const otherPort = await Phone.open();
    const otherHost = await Phone.open('127.0.0.2');
    try {
      // Without latching the socket is connected to the remote: the kernel itself drops what
      // anybody else sends (the endpoint sends only once connected).
      await waitFor(() => phone.packets.length >= 1, 'the endpoint sending');
      otherPort.sendPress(ep, 101, 9, 100);
      otherHost.sendPress(ep, 101, 9, 100);
      otherPort.socket.send('not RTP at all', ep.localPort, LOOPBACK);
      phone.socket.send(Uint8Array.from([0x80, 0x00, 1]), ep.localPort, LOOPBACK); // too short for RTP
      const sent = phone.sendPress(ep, 101, 2, 100);
      await waitFor(() => ep.stats().received >= sent && ep.stats().ignored >= 1, 'the phone\'s packets');
      assert.deepEqual(digits, [['2', 'rfc4733']]);
      assert.equal(ep.stats().received, sent, 'nothing of the strangers was taken');
      assert.equal(ep.stats().ignored, 1, 'only the phone\'s short packet was looked at and dropped');
    } finally {
      otherPort.close();
      otherHost.close();
    }
  });
});

test('latch: the first packet from the remote\'s address sets where the endpoint sends; others are then ignored', async () => {
  const phone = await Phone.open();
  const stranger = await Phone.open('127.0.0.2');
  const sdpPortNobodyUses = phone.port === 9 ? 11 : 9;
  const ep = await MediaEndpoint.open({ bind: LOOPBACK, codec: 'pcmu', telephoneEventPayloadType: 101, latch: true, remote: { address: LOOPBACK, port: sdpPortNobodyUses } });
  try {
    const digits = digitsOf(ep);
    const fromStranger = stranger.sendPress(ep, 101, 7, 50);
    await waitFor(() => ep.stats().ignored >= fromStranger, 'the stranger\'s packets: another host may not latch');
    const sent = phone.sendPress(ep, 101, 1, 100); // phone behind NAT: sends from another port than its SDP says
    await waitFor(() => ep.stats().received >= sent, 'the phone\'s packets');
    assert.deepEqual(ep.remote, { address: LOOPBACK, port: phone.port });
    await waitFor(() => phone.packets.length >= 3, 'packets at the latched address');
    const samePortLater = await Phone.open();
    try {
      const late = samePortLater.sendPress(ep, 101, 8, 200);
      await waitFor(() => ep.stats().ignored >= fromStranger + late, 'another port of the same host, after latching');
    } finally {
      samePortLater.close();
    }
    assert.deepEqual(digits, [['1', 'rfc4733']]);
  } finally {
    await ep.close();
    phone.close();
    stranger.close();
  }
});

test('hold (0.0.0.0) sends nothing but still hears the phone; the remote back resumes with a marker', async () => {
  await withEndpoint({ telephoneEventPayloadType: 101 }, async (ep, phone) => {
    const digits = digitsOf(ep);
    await waitFor(() => phone.packets.length >= 2, 'packets');
    ep.setRemote('0.0.0.0', phone.port);
    assert.equal(ep.remote, null);
    const held = phone.packets.length;
    const holdStart = performance.now();
    const sent = phone.sendPress(ep, 101, 3, 100);
    await waitFor(() => ep.stats().received >= sent && performance.now() - holdStart >= 150, 'a pause on hold');
    assert.ok(phone.packets.length <= held + 1, 'nothing sent on hold (one packet may have been on its way)');
    assert.deepEqual(digits, [['3', 'rfc4733']]);
    const before = phone.packets.length;
    ep.setRemote(LOOPBACK, phone.port);
    await waitFor(() => phone.packets.length >= before + 2, 'packets after hold');
    assert.equal(phone.packets[before]!.marker, true);
    assert.throws(() => ep.setRemote('example.com', 5000), RangeError);
    assert.throws(() => ep.setRemote(LOOPBACK, 70000), RangeError);
  });
});

test('inactive: once after inactivityMs without RTP, again only after RTP came back and stopped', async () => {
  await withEndpoint({ inactivityMs: 100 }, async (ep, phone) => {
    let inactive = 0;
    ep.on('inactive', () => inactive++);
    await waitFor(() => inactive === 1, 'the first inactive event');
    const quiet = performance.now();
    await waitFor(() => performance.now() - quiet >= 250, 'more silence');
    assert.equal(inactive, 1, 'reported once');
    const sent = await phone.sendAudio(ep, 0, silencePayload('pcmu', 40), 0);
    await waitFor(() => ep.stats().received >= sent, 'RTP from the phone');
    await waitFor(() => inactive === 2, 'the second inactive event');
  });
});

test('close() frees the socket and the pacer slot; a process with a closed endpoint exits by itself', async () => {
  const pacer = new Pacer();
  const phone = await Phone.open();
  const ep = await MediaEndpoint.open({ bind: LOOPBACK, codec: 'pcmu', pacer, remote: { address: LOOPBACK, port: phone.port } });
  const port = ep.localPort;
  assert.equal(pacer.streamCount, 1);
  await waitFor(() => phone.packets.length >= 1, 'a packet');
  await ep.close();
  assert.equal(ep.closed, true);
  assert.equal(pacer.streamCount, 0);
  const probe = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => probe.once('error', reject).bind(port, LOOPBACK, () => resolve()));
  probe.close(); // the port was free again
  phone.close();
  await ep.close(); // idempotent

  const endpointUrl = new URL('../../../lib/media/endpoint/endpoint.js', import.meta.url).href;
  const script = `import dgram from 'node:dgram';
    import { MediaEndpoint } from ${JSON.stringify(endpointUrl)};
    const sink = dgram.createSocket('udp4');
    await new Promise((r) => sink.bind(0, '127.0.0.1', r));
    let got = 0;
    sink.on('message', () => got++);
    const ep = await MediaEndpoint.open({ bind: '127.0.0.1', codec: 'pcma', telephoneEventPayloadType: 101, inactivityMs: 50 });
    ep.setRemote('127.0.0.1', sink.address().port);
    const result = await ep.play(new Uint8Array(800).fill(0x55)).result;
    ep.playTone('ringback');
    await ep.close();
    sink.close();
    console.log(result, got > 0);`;
  const { code, signal, out } = await runUntilExit(script);
  assert.equal(signal, null, 'the child had to be killed: something kept it alive after close()');
  assert.equal(code, 0);
  assert.equal(out.trim(), 'done true');
});

test('open() validates its options and reports bind errors', async () => {
  await assert.rejects(MediaEndpoint.open({ bind: 'localhost', codec: 'pcmu' }), RangeError);
  await assert.rejects(MediaEndpoint.open({ bind: LOOPBACK, codec: 'g729' as G711Codec }), RangeError);
  await assert.rejects(MediaEndpoint.open({ bind: LOOPBACK, codec: 'pcmu', telephoneEventPayloadType: 0 }), RangeError);
  await assert.rejects(MediaEndpoint.open({ bind: LOOPBACK, codec: 'pcmu', payloadType: 128 }), RangeError);
  const taken = await MediaEndpoint.open({ bind: LOOPBACK, codec: 'pcmu' });
  try {
    await assert.rejects(MediaEndpoint.open({ bind: LOOPBACK, port: taken.localPort, codec: 'pcmu' }), { code: 'EADDRINUSE' });
  } finally {
    await taken.close();
  }
});

test('handedOver: the sequence numbers start below 64 (a phone taking over the relay port later is ahead of them)', async () => {
  for (let i = 0; i < 3; i++) {
    await withEndpoint({ handedOver: true }, async (ep, phone) => {
      await keepAlive(ep.play(prompt(40)).result, 'a prompt');
      await waitFor(() => phone.packets.length >= 2, 'two packets');
      assert.ok(phone.packets[0]!.sequenceNumber < 64, `first sequence number ${phone.packets[0]!.sequenceNumber}`);
    });
  }
});
