/**
 * Relay behaviour with real UDP on 127.0.0.1, run once per engine (relay-node.test.ts,
 * relay-native.test.ts). Phones are dgram sockets; every wait is bounded.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { MediaRelay, type MediaRelayOptions, type RelaySession } from '../../lib/media/relay.js';
import { QUIET_MS } from '../../lib/media/pair-supply.js';
import { ADVERTISE, canBind, mPorts, Phone, PortRanges, sdp, sleep, until } from './helpers.js';

export function relayCases(engine: 'native' | 'node', skip: string | false): void {
  const ranges = new PortRanges(2000);
  const cleanup: Array<() => unknown> = [];
  after(async () => {
    for (const f of cleanup.reverse()) await f();
  });

  async function openRelay(extra: Partial<MediaRelayOptions> = {}, size = 100): Promise<MediaRelay> {
    const relay = await MediaRelay.open({ bind: '127.0.0.1', ...ranges.take(size), engine, inactivityMs: 0, reservePairs: 8, ...extra });
    cleanup.push(() => relay.close());
    assert.equal(relay.engine, engine);
    return relay;
  }

  async function phone(address?: string): Promise<Phone> {
    const p = await Phone.open(address);
    cleanup.push(() => p.close());
    return p;
  }

  /** A relay logger keeping its warn lines. */
  function warnings() {
    const lines: Array<{ event: string; fields: Record<string, unknown> }> = [];
    return {
      warn: (event: string, fields: Record<string, unknown> = {}) => void lines.push({ event, fields }),
      info: () => {},
      debug: () => {},
      noPorts: () => lines.filter((l) => l.event === 'media.no_ports').map((l) => l.fields),
    };
  }

  function mustSession(relay: MediaRelay): RelaySession {
    const s = relay.createSession(`test-${engine}`);
    assert.ok(s, 'session created');
    return s;
  }

  /** One audio call: returns the relay ports A and B send to. */
  async function audioCall(relay: MediaRelay, aPort: number, bPort: number) {
    const s = mustSession(relay);
    const toB = mPorts(s.rewrite('a', sdp([{ media: 'audio', port: aPort }]), ADVERTISE))[0]!;
    const toA = mPorts(s.rewrite('b', sdp([{ media: 'audio', port: bPort }]), ADVERTISE))[0]!;
    return { s, aSendsTo: toA, bSendsTo: toB };
  }

  describe(`relay, ${engine} engine`, { skip }, () => {
    test('audio and video flow both ways and are counted per m= line', async () => {
      const relay = await openRelay();
      const [aAudio, aVideo, bAudio, bVideo] = await Promise.all([phone(), phone(), phone(), phone()]);
      const s = mustSession(relay);
      const offer = s.rewrite('a', sdp([{ media: 'audio', port: aAudio.port }, { media: 'video', port: aVideo.port }]), ADVERTISE);
      const answer = s.rewrite('b', sdp([{ media: 'audio', port: bAudio.port }, { media: 'video', port: bVideo.port }]), ADVERTISE);
      const [bAudioTo, bVideoTo] = mPorts(offer) as [number, number];
      const [aAudioTo, aVideoTo] = mPorts(answer) as [number, number];
      for (let i = 0; i < 5; i++) {
        aAudio.send(aAudioTo, `a-audio-${i}`);
        aVideo.send(aVideoTo, `a-video-${i}`);
        bAudio.send(bAudioTo, `b-audio-${i}`);
      }
      for (let i = 0; i < 3; i++) bVideo.send(bVideoTo, `b-video-${i}`);
      await until(() => bAudio.count('a-audio') === 5 && bVideo.count('a-video') === 5, 'A to B');
      await until(() => aAudio.count('b-audio') === 5 && aVideo.count('b-video') === 3, 'B to A');
      assert.equal(aAudio.count('b-video') + bAudio.count('a-video'), 0, 'streams stay apart');
      await until(() => s.stats()[1]?.bToA === 3, 'stats');
      const [audio, video] = s.stats();
      assert.deepEqual(
        { index: audio!.index, media: audio!.media, aToB: audio!.aToB, bToA: audio!.bToA },
        { index: 0, media: 'audio', aToB: 5, bToA: 5 },
      );
      assert.deepEqual(
        { index: video!.index, media: video!.media, aToB: video!.aToB, bToA: video!.bToA },
        { index: 1, media: 'video', aToB: 5, bToA: 3 },
      );
      assert.equal(audio!.bytesAToB, 5 * 'a-audio-0'.length);
      s.close();
    });

    test('RTCP on the odd port is relayed to the RTCP target of the other side', async () => {
      const relay = await openRelay();
      const [a, aRtcp, b, bRtcp] = await Promise.all([phone(), phone(), phone(), phone()]);
      const s = mustSession(relay);
      const toB = mPorts(s.rewrite('a', sdp([{ media: 'audio', port: a.port, attrs: [`rtcp:${aRtcp.port}`] }]), ADVERTISE))[0]!;
      const toA = mPorts(s.rewrite('b', sdp([{ media: 'audio', port: b.port, attrs: [`rtcp:${bRtcp.port}`] }]), ADVERTISE))[0]!;
      aRtcp.send(toA + 1, 'a-rtcp');
      bRtcp.send(toB + 1, 'b-rtcp');
      await until(() => bRtcp.count('a-rtcp') === 1 && aRtcp.count('b-rtcp') === 1, 'RTCP both ways');
      await until(() => s.stats()[0]?.aToB === 1 && s.stats()[0]?.bToA === 1, 'RTCP counted');
      s.close();
    });

    test('latches onto the real source (NAT) and drops strangers after latching', async () => {
      const relay = await openRelay();
      const [aClaimed, aReal, b, stranger] = await Promise.all([phone(), phone(), phone(), phone()]);
      // A's SDP names one port, but its packets come from another (a NAT mapping).
      const { s, aSendsTo, bSendsTo } = await audioCall(relay, aClaimed.port, b.port);
      aReal.send(aSendsTo, 'a-1');
      await until(() => b.count('a-') === 1, 'first packet of A');
      b.send(bSendsTo, 'b-1');
      await until(() => aReal.count('b-') === 1, 'B reaches the latched source');
      assert.equal(aClaimed.received.length, 0);
      stranger.send(aSendsTo, 'stranger-1');
      stranger.send(aSendsTo, 'stranger-2');
      aReal.send(aSendsTo, 'a-2');
      await until(() => b.count('a-') === 2, 'A after the strangers');
      assert.equal(b.count('stranger'), 0, 'strangers are not forwarded');
      await until(() => s.stats()[0]?.dropped === 2, 'strangers counted as dropped');
      s.close();
    });

    test('with the signalling address known, only it or the SDP address may latch (no RTP bleed)', async () => {
      const relay = await openRelay();
      // A's SDP says 127.0.0.1; its SIP comes from 127.0.0.1 too. A stranger on 127.0.0.2 sprays first.
      const [a, b, stranger] = await Promise.all([phone(), phone(), phone('127.0.0.2')]);
      const s = mustSession(relay);
      const toB = mPorts(s.rewrite('a', sdp([{ media: 'audio', port: a.port }]), ADVERTISE, '127.0.0.1'))[0]!;
      const toA = mPorts(s.rewrite('b', sdp([{ media: 'audio', port: b.port }]), ADVERTISE, '127.0.0.1'))[0]!;
      stranger.send(toA, 'stranger-1');
      await until(() => s.stats()[0]?.dropped === 1, 'the stranger is dropped, not latched');
      assert.equal(b.count('stranger'), 0);
      a.send(toA, 'a-1');
      await until(() => b.count('a-') === 1, 'A latches');
      b.send(toB, 'b-1');
      await until(() => a.count('b-') === 1, 'B reaches A, not the stranger');
      assert.equal(stranger.received.length, 0);
      // Even after A has been silent past the re-latch delay, the stranger cannot take over.
      await sleep(2100);
      stranger.send(toA, 'stranger-2');
      await until(() => s.stats()[0]?.dropped === 2, 'still dropped');
      b.send(toB, 'b-2');
      await until(() => a.count('b-') === 2, 'B still reaches A');
      s.close();
    });

    test('re-latches onto a new source only after a new SDP from that side', async () => {
      const relay = await openRelay();
      const [a1, a2, b] = await Promise.all([phone(), phone(), phone()]);
      const { s, aSendsTo, bSendsTo } = await audioCall(relay, a1.port, b.port);
      a1.send(aSendsTo, 'a1-1');
      await until(() => b.count('a1-') === 1, 'A latched');
      a2.send(aSendsTo, 'a2-early');
      a1.send(aSendsTo, 'a1-2');
      await until(() => b.count('a1-') === 2, 'A again');
      assert.equal(b.count('a2-'), 0, 'a new source is refused before a new SDP');
      // re-INVITE from A with its new address, answered by B: the relay ports stay the same.
      const reoffer = s.rewrite('a', sdp([{ media: 'audio', port: a2.port }]), ADVERTISE);
      const reanswer = s.rewrite('b', sdp([{ media: 'audio', port: b.port }]), ADVERTISE);
      assert.deepEqual([mPorts(reoffer)[0], mPorts(reanswer)[0]], [bSendsTo, aSendsTo]);
      a2.send(aSendsTo, 'a2-1');
      await until(() => b.count('a2-') === 1, 'new source of A accepted');
      b.send(bSendsTo, 'b-1');
      await until(() => a2.count('b-') === 1, 'B reaches the new source');
      assert.equal(a1.count('b-'), 0);
      s.close();
    });

    test('packets are dropped while the other side is unknown or on hold (c=0.0.0.0)', async () => {
      const relay = await openRelay();
      const [a, b] = await Promise.all([phone(), phone()]);
      const s = mustSession(relay);
      const toB = mPorts(s.rewrite('a', sdp([{ media: 'audio', port: a.port }]), ADVERTISE))[0]!;
      b.send(toB, 'early-b'); // B's answer not applied yet: A is known, so this reaches A
      await until(() => a.count('early-b') === 1, 'B to A before the answer');
      const toA = mPorts(s.rewrite('b', sdp([{ media: 'audio', port: b.port }]), ADVERTISE))[0]!;
      s.rewrite('a', sdp([{ media: 'audio', port: a.port, attrs: ['sendonly'] }], '0.0.0.0'), ADVERTISE);
      s.rewrite('b', sdp([{ media: 'audio', port: b.port, attrs: ['recvonly'] }]), ADVERTISE);
      b.send(toB, 'held-b');
      a.send(toA, 'moh-a');
      await until(() => b.count('moh-a') === 1, 'A still reaches B');
      await until(() => (s.stats()[0]?.dropped ?? 0) >= 1, 'packet to held side dropped');
      assert.equal(a.count('held-b'), 0);
      s.close();
    });

    test('a session alone: the first packet before any target is dropped without a crash', async () => {
      const relay = await openRelay();
      const [a, b] = await Promise.all([phone(), phone()]);
      const s = mustSession(relay);
      const toB = mPorts(s.rewrite('a', sdp([{ media: 'audio', port: a.port }]), ADVERTISE))[0]!;
      const toA = toB === 0 ? 0 : mPorts(s.rewrite('b', sdp([{ media: 'audio', port: 0 }]), ADVERTISE))[0]!;
      assert.equal(toA, 0, 'stream rejected by B');
      b.send(toB, 'x'); // port released: nobody listens, nothing to count
      s.rewrite('a', sdp([{ media: 'audio', port: a.port }]), ADVERTISE);
      await sleep(50);
      assert.equal(a.received.length, 0);
      s.close();
    });

    test('close() unlinks the ports at once; they serve another call only after a quiet time', async () => {
      const relay = await openRelay({}, 200);
      const [a, b, c, d] = await Promise.all([phone(), phone(), phone(), phone()]);
      const first = await audioCall(relay, a.port, b.port);
      a.send(first.aSendsTo, 'live');
      await until(() => b.count('live') === 1, 'relayed while the call lives');
      first.s.close();
      assert.equal(relay.sessionCount, 0);
      first.s.close(); // twice is harmless
      a.send(first.aSendsTo, 'stray'); // a late packet of the ended call
      const ports = (x: { aSendsTo: number; bSendsTo: number }) => [x.aSendsTo, x.bSendsTo].sort().join(',');
      const soon = await audioCall(relay, c.port, d.port);
      assert.notEqual(ports(soon), ports(first), 'a call right after gets other ports');
      soon.s.close();
      await sleep(QUIET_MS + 100);
      const later = await audioCall(relay, c.port, d.port);
      assert.equal(ports(later), ports(first), 'the quiet pair is reused, still bound');
      assert.deepEqual(later.s.stats().map((x) => x.dropped + x.aToB + x.bToA), [0], 'its counters start at zero');
      c.send(later.aSendsTo, 'second-call');
      await until(() => d.count('second-call') === 1, 'the new call flows');
      assert.equal(b.count('stray'), 0, 'the late packet reached nobody');
      assert.equal(d.count('stray'), 0);
      later.s.close();
    });

    test('onInactive fires once after inactivityMs without packets, only after an answer', async () => {
      const relay = await openRelay({ inactivityMs: 300 });
      const [a, b] = await Promise.all([phone(), phone()]);
      const offerOnly = mustSession(relay);
      offerOnly.rewrite('a', sdp([{ media: 'audio', port: a.port }]), ADVERTISE);
      let offerOnlyFired = 0;
      offerOnly.onInactive = () => offerOnlyFired++;
      const { s, aSendsTo } = await audioCall(relay, a.port, b.port);
      let fired = 0;
      s.onInactive = () => fired++;
      a.send(aSendsTo, 'a-1');
      await until(() => b.count('a-') === 1, 'a packet');
      await until(() => fired === 1, 'onInactive', 5000);
      await sleep(400);
      assert.equal(fired, 1, 'fires once');
      assert.equal(offerOnlyFired, 0, 'not before an answer');
      s.close();
      offerOnly.close();
    });

    test('createSession returns null when ports or maxSessions run out', async () => {
      const relay = await openRelay({ reservePairs: 4 }, 8); // 4 pairs: two one-stream sessions
      await relay.settled();
      const s1 = relay.createSession('1');
      const s2 = relay.createSession('2');
      assert.ok(s1 && s2);
      assert.equal(relay.createSession('3'), null);
      // No ports left for a second stream: that m= line is disabled, not an error.
      const out = s1.rewrite('a', sdp([{ media: 'audio', port: 4000 }, { media: 'video', port: 4002 }]), ADVERTISE);
      assert.deepEqual(mPorts(out).map((p) => p > 0), [true, false]);
      s2.close();
      await relay.settled();
      assert.ok(relay.createSession('4'), 'ports come back after close');
      const limited = await openRelay({ maxSessions: 1 });
      assert.ok(limited.createSession('1'));
      assert.equal(limited.createSession('2'), null);
    });

    test('a burst of new sessions far faster than the reserve refills: every one gets its ports', async () => {
      const log = warnings();
      // 240 pairs, 100 sessions of one stream (200 pairs): spare pairs for ports other programs hold.
      const relay = await openRelay({ reservePairs: 2, maxSessions: 100, logger: log }, 480);
      // All asked for in one synchronous run: no refill of the reserve can happen in between.
      const opened = Array.from({ length: 100 }, (_, i) => relay.openSession(`burst-${i}`));
      if (engine === 'native') assert.ok(opened.every((s) => s !== null && !(s instanceof Promise)), 'native: bound at once');
      const sessions = await Promise.all(opened);
      const ports = new Set<number>();
      for (const s of sessions) {
        assert.ok(s, 'every call of the burst has a session');
        ports.add(mPorts(s.rewrite('a', sdp([{ media: 'audio', port: 4000 }]), ADVERTISE))[0]!);
        ports.add(mPorts(s.rewrite('b', sdp([{ media: 'audio', port: 4002 }]), ADVERTISE))[0]!);
      }
      assert.equal(ports.size, 200, 'two distinct relay ports per session');
      assert.equal(log.noPorts().length, 0, 'no refusal on the way');
      assert.equal(await relay.openSession('one-too-many'), null);
      assert.equal(await relay.openSession('two-too-many'), null);
      const refusals = log.noPorts();
      assert.equal(refusals.length, 1, 'one warn line a second at most');
      assert.equal(refusals[0]!.limit, 'maxSessions');
      assert.match(String(refusals[0]!.hint), /media\.portMin/);
      for (const s of sessions) s!.close();
      assert.equal(relay.sessionCount, 0);
    });

    test('when the range is used up the refusal names the range; its ports come back', async () => {
      const log = warnings();
      const relay = await openRelay({ reservePairs: 2, maxSessions: 1000, logger: log }, 40); // 20 pairs
      const sessions: RelaySession[] = [];
      for (let i = 0; i < 20; i++) {
        const s = await relay.openSession(`fill-${i}`);
        if (!s) break;
        sessions.push(s);
      }
      assert.ok(sessions.length >= 8 && sessions.length <= 10, `${sessions.length} sessions from 20 pairs`);
      for (let i = 0; i < 20; i++) assert.equal(await relay.openSession(`over-${i}`), null);
      const refusals = log.noPorts();
      assert.equal(refusals.length, 1, 'one warn line a second at most');
      assert.equal(refusals[0]!.limit, 'range');
      assert.match(String(refusals[0]!.hint), /widen the range/);
      sessions.pop()!.close();
      assert.ok(await relay.openSession('after-close'), 'a released pair serves the next call');
      for (const s of sessions) s.close();
    });

    test('close() of the relay closes every session and socket', async () => {
      const relay = await openRelay({}, 20);
      const { aSendsTo } = await audioCall(relay, 9, 11);
      await relay.close();
      assert.equal(relay.sessionCount, 0);
      assert.ok(await canBind(aSendsTo));
      assert.equal(relay.createSession('late'), null);
    });
  });
}
