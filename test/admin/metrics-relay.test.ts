// The media relay's running totals (MediaRelay.totals(), read by the metrics at scrape time) on
// both engines, with real UDP on 127.0.0.1: forwarded and dropped packets are counted, and the
// totals never go back when a call's ports are reset for the next one.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { MediaRelay, type RelayTotals } from '../../lib/media/relay.js';
import { loadNativeAddon } from '../../lib/media/native.js';
import { claimPorts } from '../helpers/ports.js';
import { waitFor } from '../helpers/keep-alive.js';

const claim = await claimPorts(200);
const cleanup: Array<() => unknown> = [];
after(async () => {
  for (const f of cleanup.reverse()) await f();
  claim.release();
});

async function socket(): Promise<{ s: dgram.Socket; port: number; received: number }> {
  const s = dgram.createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  const out = { s, port: s.address().port, received: 0 };
  s.on('message', () => out.received++);
  cleanup.push(() => s.close());
  return out;
}

function sdp(port: number): string {
  return ['v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', `m=audio ${port} RTP/AVP 0`, ''].join('\r\n');
}

function port(text: string): number {
  return Number(/^m=audio (\d+)/m.exec(text)![1]);
}


const ranges = [
  { portMin: claim.portMin, portMax: claim.portMin + 99 },
  { portMin: claim.portMin + 100, portMax: claim.portMin + 199 },
];

for (const [i, engine] of (['node', 'native'] as const).entries()) {
  const skip = engine === 'native' && loadNativeAddon() === null ? 'the native relay addon is not built' : false;
  test(`relay totals, ${engine} engine: forwarded, dropped, kept across the reset of a call's ports`, { skip }, async () => {
    const relay = await MediaRelay.open({ bind: '127.0.0.1', ...ranges[i]!, engine, inactivityMs: 0, reservePairs: 4 });
    cleanup.push(() => relay.close());
    assert.deepEqual(relay.totals(), { packets: 0, bytes: 0, dropped: 0 });
    const [a, b, stranger] = await Promise.all([socket(), socket(), socket()]);

    const call = async () => {
      const s = relay.createSession(`metrics-${engine}`)!;
      assert.ok(s);
      const bSendsTo = port(s.rewrite('a', sdp(a.port), '127.0.0.1'));
      const aSendsTo = port(s.rewrite('b', sdp(b.port), '127.0.0.1'));
      return { s, aSendsTo, bSendsTo };
    };
    const send = (from: dgram.Socket, to: number, n: number, size: number) => {
      for (let k = 0; k < n; k++) from.send(Buffer.alloc(size, 0x80), to, '127.0.0.1');
    };
    const expectTotals = (want: RelayTotals, what: string) => waitFor(() => {
      const t = relay.totals();
      return t.packets === want.packets && t.bytes === want.bytes && t.dropped === want.dropped;
    }, `${what}: ${JSON.stringify(want)}, have ${JSON.stringify(relay.totals())}`);

    // A call: 5 packets of 100 bytes A -> B, 3 of 60 bytes B -> A; then a stranger on A's port
    // (A has latched it): dropped.
    const first = await call();
    send(a.s, first.aSendsTo, 5, 100);
    await waitFor(() => b.received === 5, 'A -> B');
    send(b.s, first.bSendsTo, 3, 60);
    await waitFor(() => a.received === 3, 'B -> A');
    send(stranger.s, first.aSendsTo, 2, 100);
    await expectTotals({ packets: 8, bytes: 5 * 100 + 3 * 60, dropped: 2 }, 'the first call');

    // The call ends: its ports are reset (counters zeroed) for a later call; the totals stay.
    first.s.close();
    assert.deepEqual(relay.totals(), { packets: 8, bytes: 680, dropped: 2 });
    // A late packet to the released port: dropped (nothing linked), and counted.
    send(a.s, first.aSendsTo, 1, 100);
    await expectTotals({ packets: 8, bytes: 680, dropped: 3 }, 'a late packet');

    // Further calls add to the totals, whichever ports they get.
    for (let n = 0; n < 3; n++) {
      const next = await call();
      const seenByB = b.received;
      send(a.s, next.aSendsTo, 4, 50);
      await waitFor(() => b.received === seenByB + 4, 'A -> B again');
      next.s.close();
    }
    await expectTotals({ packets: 8 + 12, bytes: 680 + 12 * 50, dropped: 3 }, 'three more calls');
  });
}
