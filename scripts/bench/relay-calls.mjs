#!/usr/bin/env node
// N relayed G.711 calls for scripts/bench/relay.sh: one MediaRelay session per call, phone A of
// call i at 127.0.0.1:(26000+i), phone B at 127.0.0.1:(28000+i), relay ports in 16000-25999.
//   node scripts/bench/relay-calls.mjs native|node N PORTS_FILE      (env BUILD, default build)
// Writes "portA portB" per call to PORTS_FILE (the relay ports phone A and phone B send to), then
// prints "ready" and relays until SIGTERM, when it prints the relay's own counters.
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [engine = 'native', n = '250', portsFile = '/tmp/relay-calls.ports'] = process.argv.slice(2);
const calls = Number(n);
if (!(calls >= 1 && calls <= 2000)) throw new Error('N must be 1..2000');
const build = resolve(process.env.BUILD ?? 'build');
const { MediaRelay } = await import(pathToFileURL(join(build, 'lib/media/relay.js')).href);

const relay = await MediaRelay.open({
  bind: '127.0.0.1', portMin: 16000, portMax: 25999, engine, inactivityMs: 0, maxSessions: calls, reservePairs: 2 * calls + 2,
});
await relay.settled();
const sdp = (port) => ['v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', `m=audio ${port} RTP/AVP 0`, 'a=ptime:20', ''].join('\r\n');
const sessions = [];
const lines = [];
for (let i = 0; i < calls; i++) {
  const s = relay.createSession(`call-${i}`);
  if (!s) throw new Error(`no session for call ${i}`);
  const bSendsTo = /^m=audio (\d+)/m.exec(s.rewrite('a', sdp(26000 + i), '127.0.0.1'))[1];
  const aSendsTo = /^m=audio (\d+)/m.exec(s.rewrite('b', sdp(28000 + i), '127.0.0.1'))[1];
  sessions.push(s);
  lines.push(`${aSendsTo} ${bSendsTo}`);
}
writeFileSync(portsFile, lines.join('\n') + '\n');
console.log(`ready engine=${relay.engine} calls=${calls}`);
const stop = async () => {
  let fwd = 0;
  let dropped = 0;
  for (const s of sessions) for (const st of s.stats()) (fwd += st.aToB + st.bToA), (dropped += st.dropped);
  console.error(`relay-calls: forwarded=${fwd} dropped=${dropped}`);
  await relay.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
setInterval(() => {}, 1 << 30);
