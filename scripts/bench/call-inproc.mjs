#!/usr/bin/env node
// JavaScript CPU of one call through the server, without the kernel: a real PbxServer (store,
// registrar, authenticator, CallManager, CSV CDR) in this process, whose outgoing datagrams are
// captured instead of sent, driven by a scripted caller and callee that feed it the datagrams
// SIPp's uac_call.xml / uas_call.xml would send (INVITE, 407, ACK, INVITE with credentials,
// 180, 200, ACK, BYE, 200: the 16 messages of a call in and out of the B2BUA).
//
// The result (µs of process CPU per call, user and system, over all threads) includes the
// scripted phones' own work (building their messages, reading the server's): it is for
// comparing two builds of the server, not an absolute figure. Much less noisy than a run with
// SIPp, as no other process and no socket is involved; use scripts/bench/call-cpu.sh for that.
//
//   node scripts/bench/call-inproc.mjs [CALLS] [ROUNDS]      # build/ (BUILD=build-x for another tree)
//   node --cpu-prof scripts/bench/call-inproc.mjs           # a clean profile of the server's JS
//   MEDIA_RELAY=always node scripts/bench/call-inproc.mjs   # with the media relay set up for every call
//   node --expose-gc scripts/bench/call-inproc.mjs 10000 1  # also the heap the ended calls still hold
import { mkdtempSync, rmSync } from 'node:fs';
import { hash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const build = pathToFileURL(resolve(process.env.BUILD ?? 'build')).href;
const { defaultConfig } = await import(`${build}/lib/config/schema.js`);
const { Logger } = await import(`${build}/lib/log.js`);
const { PbxServer } = await import(`${build}/lib/pbx/server.js`);
const { Extensions } = await import(`${build}/lib/pbx/extensions.js`);

const calls = Number(process.argv[2] ?? 20000);
const rounds = Number(process.argv[3] ?? 5);
const pairs = 100;

const config = defaultConfig();
config.sip.bind = '127.0.0.1';
config.sip.bind6 = '';
config.sip.port = 0;
config.data.dir = mkdtempSync(join(tmpdir(), 'mss-inproc-'));
config.auth.algorithms = ['MD5', 'SHA-256'];
// MEDIA_RELAY=always: every call also sets up a relay session (two port pairs, both SDPs rewritten).
config.media.relay = process.env.MEDIA_RELAY ?? 'never';
config.media.bind = '127.0.0.1';
config.calls.maxTotal = 100000;
config.calls.maxPerExtension = 1000;
config.cdr.format = ['csv'];
const logger = new Logger({ format: 'json', level: 'warn', write: () => undefined });
const server = new PbxServer(config, logger);
const ext = new Extensions(server.store, config.sip.realm);
for (let i = 0; i < 2 * pairs; i++) ext.add(String(1000 + i), { password: `pw${1000 + i}` });
await server.start();
const stack = server.stack;
const port = stack.port;

/** What the server sent since the last take(), as text. */
let out = [];
stack.sendData = function (data, dest) {
  this.counters.sent++;
  out.push({ text: data.toString('latin1'), port: dest.port });
};
function take() {
  const o = out;
  out = [];
  return o;
}
const A_PORT = 5061;
const B_PORT = 5062;
const A = { transport: 'udp', address: '127.0.0.1', port: A_PORT };
const B = { transport: 'udp', address: '127.0.0.1', port: B_PORT };
function feed(text, from) {
  stack.receive(Buffer.from(text, 'latin1'), from);
}
function header(msg, name) {
  const i = msg.indexOf(`\r\n${name}: `);
  if (i < 0) return '';
  const s = i + name.length + 4;
  return msg.slice(s, msg.indexOf('\r\n', s));
}
function firstTo(list, port, startsWith) {
  const m = list.find((x) => x.port === port && x.text.startsWith(startsWith));
  if (!m) throw new Error(`expected ${startsWith} to port ${port}; got ${list.map((x) => `${x.port} ${x.text.slice(0, 30)}`).join(' | ')}`);
  return m.text;
}
const md5 = (s) => hash('md5', s, 'hex');

// The callees register with B_PORT as their contact.
for (let i = 0; i < pairs; i++) {
  const user = String(1000 + pairs + i);
  const reg = (cseq, auth) =>
    `REGISTER sip:127.0.0.1:${port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${B_PORT};branch=z9hG4bK-r${i}-${cseq}\r\nMax-Forwards: 70\r\n` +
    `From: <sip:${user}@127.0.0.1>;tag=r${i}\r\nTo: <sip:${user}@127.0.0.1>\r\nCall-ID: reg${i}\r\nCSeq: ${cseq} REGISTER\r\n` +
    `Contact: <sip:${user}@127.0.0.1:${B_PORT}>\r\nExpires: 3600\r\n${auth ? `Authorization: ${auth}\r\n` : ''}Content-Length: 0\r\n\r\n`;
  feed(reg(1), B);
  const ch = take()[0].text;
  const nonce = /nonce="([^"]+)"/.exec(ch)[1];
  const realm = /realm="([^"]+)"/.exec(ch)[1];
  const uri = `sip:127.0.0.1:${port}`;
  const resp = md5(`${md5(`${user}:${realm}:pw${user}`)}:${nonce}:00000001:c0:auth:${md5(`REGISTER:${uri}`)}`);
  feed(reg(2, `Digest username="${user}",realm="${realm}",nonce="${nonce}",uri="${uri}",response="${resp}",algorithm=MD5,cnonce="c0",qop=auth,nc=00000001`), B);
  const ok = take()[0].text;
  if (!ok.startsWith('SIP/2.0 200')) throw new Error(`register: ${ok.slice(0, 40)}`);
}

const SDP_A =
  'v=0\r\no=lab 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 8 101\r\n' +
  'a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n';
const SDP_B =
  'v=0\r\no=lab-uas 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6002 RTP/AVP 0 101\r\n' +
  'a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n';

let n = 0;
/** One whole call, as SIPp's scenarios make it. Returns the number of datagrams exchanged. */
function oneCall() {
  const k = n++;
  const caller = String(1000 + (k % pairs));
  const callee = String(1000 + pairs + (k % pairs));
  const callId = `${k}-bench@127.0.0.1`;
  const fromTag = `${k}SIPpTag09`;
  const ruri = `sip:${callee}@127.0.0.1:${port}`;
  const invite = (branch, cseq, auth) =>
    `INVITE ${ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${A_PORT};branch=${branch}\r\nMax-Forwards: 70\r\n` +
    `From: <sip:${caller}@127.0.0.1>;tag=${fromTag}\r\nTo: <sip:${callee}@127.0.0.1>\r\nCall-ID: ${callId}\r\nCSeq: ${cseq} INVITE\r\n` +
    `Contact: <sip:${caller}@127.0.0.1:${A_PORT}>\r\n${auth ? `Proxy-Authorization: ${auth}\r\n` : ''}User-Agent: lab-sipp\r\n` +
    `Content-Type: application/sdp\r\nContent-Length: ${SDP_A.length}\r\n\r\n${SDP_A}`;
  const b1 = `z9hG4bK-a${k}-1`;
  feed(invite(b1, 1), A);
  const ch = firstTo(take(), A_PORT, 'SIP/2.0 407');
  const to407 = header(ch, 'To');
  feed(
    `ACK ${ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${A_PORT};branch=${b1}\r\nMax-Forwards: 70\r\nFrom: <sip:${caller}@127.0.0.1>;tag=${fromTag}\r\n` +
      `To: ${to407}\r\nCall-ID: ${callId}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n`,
    A,
  );
  const nonce = /nonce="([^"]+)"/.exec(ch)[1];
  const realm = /realm="([^"]+)"/.exec(ch)[1];
  const resp = md5(`${md5(`${caller}:${realm}:pw${caller}`)}:${nonce}:${md5(`INVITE:${ruri}`)}`);
  const auth = `Digest username="${caller}",realm="${realm}",uri="${ruri}",nonce="${nonce}",response="${resp}",algorithm=MD5`;
  feed(invite(`z9hG4bK-a${k}-2`, 2, auth), A);
  const toB = firstTo(take(), B_PORT, 'INVITE ');
  // The callee: 180 and 200 with the INVITE's Via, From, To (+ tag), Call-ID, CSeq.
  const bVia = header(toB, 'Via');
  const bFrom = header(toB, 'From');
  const bTo = `${header(toB, 'To')};tag=${k}SIPpTag01`;
  const bCallId = header(toB, 'Call-ID');
  const bCseq = header(toB, 'CSeq');
  const common = `Via: ${bVia}\r\nFrom: ${bFrom}\r\nTo: ${bTo}\r\nCall-ID: ${bCallId}\r\nCSeq: ${bCseq}\r\nContact: <sip:127.0.0.1:${B_PORT};transport=UDP>\r\n`;
  feed(`SIP/2.0 180 Ringing\r\n${common}Content-Length: 0\r\n\r\n`, B);
  feed(`SIP/2.0 200 OK\r\n${common}User-Agent: lab-sipp-uas\r\nContent-Type: application/sdp\r\nContent-Length: ${SDP_B.length}\r\n\r\n${SDP_B}`, B);
  const sent = take();
  const ok = firstTo(sent, A_PORT, 'SIP/2.0 200');
  firstTo(sent, B_PORT, 'ACK ');
  const aTo = header(ok, 'To');
  const target = /<([^>]+)>/.exec(header(ok, 'Contact'))[1];
  const inDialog = (method, cseq, branch) =>
    `${method} ${target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${A_PORT};branch=${branch}\r\nMax-Forwards: 70\r\n` +
    `From: <sip:${caller}@127.0.0.1>;tag=${fromTag}\r\nTo: ${aTo}\r\nCall-ID: ${callId}\r\nCSeq: ${cseq} ${method}\r\n` +
    `Contact: <sip:${caller}@127.0.0.1:${A_PORT}>\r\nContent-Length: 0\r\n\r\n`;
  feed(inDialog('ACK', 2, `z9hG4bK-a${k}-3`), A);
  feed(inDialog('BYE', 3, `z9hG4bK-a${k}-4`), A);
  const bye = firstTo(take(), B_PORT, 'BYE ');
  feed(
    `SIP/2.0 200 OK\r\nVia: ${header(bye, 'Via')}\r\nFrom: ${header(bye, 'From')}\r\nTo: ${header(bye, 'To')}\r\nCall-ID: ${header(bye, 'Call-ID')}\r\n` +
      `CSeq: ${header(bye, 'CSeq')}\r\nContact: <sip:127.0.0.1:${B_PORT};transport=UDP>\r\nContent-Length: 0\r\n\r\n`,
    B,
  );
  take();
}

const tick = () => new Promise((r) => setImmediate(r));
for (let i = 0; i < 2000; i++) oneCall(); // warm-up
const results = [];
for (let r = 0; r < rounds; r++) {
  await tick();
  const u0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < calls; i++) {
    oneCall();
    // Let timers and the CDR writer run now and then, as they would between datagrams.
    if (i % 50 === 49) await tick();
  }
  const u = process.cpuUsage(u0);
  const wall = performance.now() - t0;
  results.push({ user: u.user / calls, system: u.system / calls, wall: (wall * 1000) / calls });
  const x = results.at(-1);
  console.log(`round ${r + 1}: ${calls} calls, µs per call: user ${x.user.toFixed(1)} sys ${x.system.toFixed(1)} wall ${x.wall.toFixed(1)}`);
}
if (typeof globalThis.gc === 'function') {
  // node --expose-gc: what the ended calls still hold (their transactions live 64*T1 = 32 s).
  globalThis.gc();
  const heap = process.memoryUsage();
  const ended = calls * rounds + 2000;
  console.log(`after ${ended} ended calls: heap used ${(heap.heapUsed / 1e6).toFixed(1)} MB (${Math.round(heap.heapUsed / ended)} bytes a call), external ${(heap.external / 1e6).toFixed(1)} MB`);
}
const best = results.reduce((a, b) => (a.user + a.system <= b.user + b.system ? a : b));
console.log(`best: user ${best.user.toFixed(1)} sys ${best.system.toFixed(1)} µs per call (server stats: ${JSON.stringify(server.calls.stats)})`);
await server.stop();
rmSync(config.data.dir, { recursive: true, force: true });
process.exit(0);
