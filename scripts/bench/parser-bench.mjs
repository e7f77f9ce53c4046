#!/usr/bin/env node
// Micro-benchmark of the SIP parser: parse, parse + top Via + CSeq, and serialize, for a
// REGISTER with Authorization and an INVITE with SDP.
//   node scripts/bench/parser-bench.mjs [--build DIR] [--n ITERATIONS]
//   node scripts/bench/parser-bench.mjs --build DIR_A --build DIR_B [--rounds R] [--n ITERATIONS]
// DIR is the tsc output directory (default: build); run `npm run build` (or tsc --outDir DIR) first.
// With several --build directories every case is timed for each build in turn, alternating, for
// R rounds (default 7), and the median (and the best) per build is printed: on a shared, noisy
// machine only such side-by-side figures are comparable. Times are CPU time of this process.
import path from 'node:path';
import { pathToFileURL } from 'node:url';

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const buildDirs = [];
for (let i = 0; i < process.argv.length - 1; i++) if (process.argv[i] === '--build') buildDirs.push(path.resolve(process.argv[i + 1]));
if (buildDirs.length === 0) buildDirs.push(path.resolve('build'));
const n = Number(arg('--n', buildDirs.length > 1 ? '50000' : '200000'));
const rounds = Number(arg('--rounds', buildDirs.length > 1 ? '7' : '1'));

/** Each build is loaded as its own module graph, so the builds share no JIT feedback. */
const builds = [];
for (const dir of buildDirs) {
  const load = (rel) => import(pathToFileURL(path.join(dir, rel)).href);
  const { parseMessage } = await load('lib/sip/parser.js');
  const { serialize } = await load('lib/sip/message.js');
  const { topVia } = await load('lib/sip/headers/via.js');
  const { parseCSeq } = await load('lib/sip/headers/cseq.js');
  builds.push({ dir, label: path.relative(process.cwd(), dir) || dir, parseMessage, serialize, topVia, parseCSeq });
}

const crlf = (lines) => lines.join('\r\n');
const REGISTER = Buffer.from(crlf([
  'REGISTER sip:pbx.example.com SIP/2.0',
  'Via: SIP/2.0/UDP 192.0.2.33:5060;branch=z9hG4bK-524287-1---7d1c3f2a9b;rport',
  'Max-Forwards: 70',
  'Contact: <sip:201@192.0.2.33:5060;rinstance=6f4a1c2b9e;transport=UDP>',
  'To: <sip:201@pbx.example.com>',
  'From: <sip:201@pbx.example.com>;tag=4d3e9a1f',
  'Call-ID: NzQ5YmE4ZjM1NWQ0YjY0ZDg3ZTE2YzU4ZTE3YjA2NzE',
  'CSeq: 2 REGISTER',
  'Expires: 3600',
  'Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE',
  'User-Agent: Zoiper rv2.10.20.6',
  'Authorization: Digest username="201",realm="pbx.example.com",nonce="5f2b3c4d6e7f8091a2b3c4d5e6f70819",uri="sip:pbx.example.com;transport=UDP",response="8b1e2f3a4c5d6e7f8091a2b3c4d5e6f7",cnonce="a1b2c3d4",nc=00000001,qop=auth,algorithm=MD5',
  'Allow-Events: presence, kpml, talk',
  'Content-Length: 0',
  '',
  '',
]));
// A plain REGISTER of about 500 bytes (no credentials yet), the common case at a registrar.
const REGISTER_PLAIN = Buffer.from(crlf([
  'REGISTER sip:pbx.example.com SIP/2.0',
  'Via: SIP/2.0/UDP 192.0.2.33:5060;branch=z9hG4bK-524287-1---7d1c3f2a9b;rport',
  'Max-Forwards: 70',
  'Contact: <sip:201@192.0.2.33:5060;rinstance=6f4a1c2b9e;transport=UDP>',
  'To: <sip:201@pbx.example.com>',
  'From: <sip:201@pbx.example.com>;tag=4d3e9a1f',
  'Call-ID: NzQ5YmE4ZjM1NWQ0YjY0ZDg3ZTE2YzU4ZTE3YjA2NzE',
  'CSeq: 1 REGISTER',
  'Expires: 3600',
  'Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE',
  'User-Agent: Zoiper rv2.10.20.6',
  'Allow-Events: presence, kpml, talk',
  'Content-Length: 0',
  '',
  '',
]));
const sdp = crlf([
  'v=0', 'o=- 3456789012 3456789012 IN IP4 192.0.2.33', 's=-', 'c=IN IP4 192.0.2.33', 't=0 0',
  'm=audio 40000 RTP/AVP 0 8 101', 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:8 PCMA/8000',
  'a=rtpmap:101 telephone-event/8000', 'a=fmtp:101 0-16', 'a=sendrecv', '',
]);
const INVITE = Buffer.from(crlf([
  'INVITE sip:202@pbx.example.com SIP/2.0',
  'Via: SIP/2.0/UDP 192.0.2.33:5060;branch=z9hG4bK-524287-1---a8c2d1e4f5;rport',
  'Max-Forwards: 70',
  'Contact: <sip:201@192.0.2.33:5060;transport=UDP>',
  'To: <sip:202@pbx.example.com>',
  'From: "Alice" <sip:201@pbx.example.com>;tag=9a8b7c6d',
  'Call-ID: ZjE2YTk4YjJkZjQ1NDc3ZmE5YzE3NmE0ZDRmMGI1YjM',
  'CSeq: 1 INVITE',
  'Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE',
  'Content-Type: application/sdp',
  'Supported: replaces, norefersub, extended-refer, timer',
  'User-Agent: Zoiper rv2.10.20.6',
  `Content-Length: ${Buffer.byteLength(sdp)}`,
  '',
  sdp,
]));

/** ns per call of fn over n calls, in CPU time (less disturbed by other processes than wall time). */
function timeOnce(fn) {
  const t0 = process.cpuUsage();
  for (let i = 0; i < n; i++) fn();
  const t = process.cpuUsage(t0);
  return ((t.user + t.system) * 1000) / n;
}

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** fns[k] is the case for builds[k]; all are warmed up, then timed alternately for `rounds` rounds. */
function bench(label, fns) {
  for (const fn of fns) for (let i = 0; i < Math.min(n, 20000); i++) fn(); // warm-up for the JIT
  const times = fns.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < fns.length; k++) {
      const j = (k + r) % fns.length; // alternate which build goes first
      times[j].push(timeOnce(fns[j]));
    }
  }
  let line = label.padEnd(34);
  for (const t of times) {
    const ns = median(t);
    line += fns.length > 1
      ? `${ns.toFixed(0).padStart(8)} ns (best ${Math.min(...t).toFixed(0).padStart(5)})`
      : `${ns.toFixed(0).padStart(8)} ns/op ${Math.round(1e9 / ns).toLocaleString('en-US').padStart(12)} ops/s`;
  }
  console.log(line);
}

let sink = 0;
if (builds.length > 1) console.log(`${''.padEnd(34)}${builds.map((b) => b.label.padStart(24)).join('')}   (median of ${rounds} rounds x ${n})`);
// A machine yardstick, so figures from different hosts can be compared.
const json = '{"method":"REGISTER","cseq":1,"via":["SIP/2.0/UDP 192.0.2.33:5060"],"expires":3600}';
bench('baseline: JSON.parse, 85 bytes', builds.map(() => () => {
  sink += JSON.parse(json).cseq;
}));
for (const [name, bytes] of [['REGISTER', REGISTER_PLAIN], ['REGISTER+Authorization', REGISTER], ['INVITE+SDP', INVITE]]) {
  const parsed = builds.map((b) => {
    const r = b.parseMessage(bytes, { datagram: true });
    if (!r.ok) throw new Error(`${name} does not parse with ${b.label}: ${r.error}`);
    return r.message;
  });
  console.log(`${name}: ${bytes.length} bytes, ${parsed[0].headers.size} headers`);
  bench(`  parse`, builds.map((b) => () => {
    sink += b.parseMessage(bytes, { datagram: true }).ok ? 1 : 0;
  }));
  bench(`  parse + topVia + CSeq`, builds.map((b) => () => {
    const r = b.parseMessage(bytes, { datagram: true });
    if (r.ok) sink += b.topVia(r.message).branch.length + b.parseCSeq(r.message.headers.get('cseq')).seq;
  }));
  bench(`  serialize`, builds.map((b, k) => () => {
    sink += b.serialize(parsed[k]).length;
  }));
}
if (sink === 0) console.log('');
