#!/usr/bin/env node
// One relayed stream for ../shared/lab/rtp-reference/measure.sh: what arrives on 127.0.0.1:47001
// leaves for 127.0.0.1:47002, through a MediaRelay session of the given engine.
//   node scripts/bench/relay-one.mjs native|node      (env BUILD: compiled tree, default build)
// 47001 is the RTCP port (RTP + 1) of the first pair, 47000, which faces side A; the blaster is
// side A (latched on its first packet) and the sink is side B, whose SDP gives a=rtcp:47002.
// 47002/47003 are held here while the relay binds, so that the relay skips that pair (as it skips
// any port in use) and the sink can bind 47002 afterwards.
import dgram from 'node:dgram';
import { once } from 'node:events';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const engine = process.argv[2] ?? 'native';
const build = resolve(process.env.BUILD ?? 'build');
const { MediaRelay } = await import(pathToFileURL(join(build, 'lib/media/relay.js')).href);

const blockers = [];
for (const port of [47002, 47003]) {
  const s = dgram.createSocket('udp4');
  s.bind(port, '127.0.0.1');
  await once(s, 'listening');
  blockers.push(s);
}
const relay = await MediaRelay.open({ bind: '127.0.0.1', portMin: 47000, portMax: 47099, engine, inactivityMs: 0, reservePairs: 2 });
await relay.settled();
const session = relay.createSession('bench');
const sdp = (port, rtcp) =>
  ['v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', `m=audio ${port} RTP/AVP 0`, `a=rtcp:${rtcp}`, ''].join('\r\n');
session.rewrite('a', sdp(47200, 47201), '127.0.0.1');
const answer = session.rewrite('b', sdp(47100, 47002), '127.0.0.1');
if (!/^m=audio 47000 /m.test(answer)) {
  console.error(`relay-one: expected the A-facing pair at 47000/47001, got:\n${answer}`);
  process.exit(1);
}
for (const s of blockers) s.close();
console.error(`relay-one: engine=${relay.engine} relaying 127.0.0.1:47001 -> 127.0.0.1:47002`);
const stop = async () => {
  const [st] = session.stats();
  console.error(`relay-one: forwarded=${st?.aToB} dropped=${st?.dropped}`);
  await relay.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
setInterval(() => {}, 1 << 30);
