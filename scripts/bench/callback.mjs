#!/usr/bin/env node
// The call-back service under load, end to end: C concurrent call-backs bridged and released,
// repeated for a while, against `minisipserver serve` running as a separate process; every
// REQUEST must get one ACK and one RESPONSE; the server's CPU per call-back is recorded, and
// compared with its CPU per plain call between the same phones.
//
// What it does:
// - Starts `serve` on 127.0.0.1 (SIP port 0, read from its "listening on port N" line; the
//   call-back port a free one, found by binding port 0, checked with a probe and retried with
//   another if the server could not take it) with a fresh temp data folder and a config that
//   allows more than C call-backs and calls at once (callback.maxActive, calls.maxPerExtension),
//   log level warn. 2*C extensions (2000, 2001, ...) are imported with `ext import`.
// - This script is both the phones and the application server (AS). Every phone registers with
//   digest authentication (MD5; a few SIP sockets shared by the phones, each phone with its own
//   RTP socket), answers every INVITE with 180 and 200 + SDP (its RTP port; the 200 resent until
//   ACKed) and every BYE with 200. Pair k is phones 2000+2k (user1) and 2001+2k (user2). Without
//   --rtp the phones send no media (they only count what they receive: the ringback, relayed);
//   with --rtp each phone sends 50 PCMU packets/s (172 bytes) to the address in the SDP it got
//   while its dialog is up, so the relay carries media both ways.
// - Phase "callback", for --seconds: C call-backs in progress at all times, one per pair. The AS
//   (one UDP socket) sends `REQUEST: id=ID;user1=A;user2=B` (resent every 500 ms until ACKed,
//   resends counted), expects `ACK: id=ID;result=0`, waits until both phones got the server's ACK
//   to their 200 (user1 first, then user2: the call-back is bridged), holds --hold seconds, sends
//   `RELEASE: id=ID` (resent after 2 s without a RESPONSE), expects one `RESPONSE: id=ID;result=0`
//   (every RESPONSE is ACKed, duplicates counted), waits for the BYE at both phones, and starts the
//   pair's next call-back. No new call-back starts after --seconds; the phase ends when the last
//   one has. Then each id is checked: as many ACKs (all result=0) as REQUESTs sent (1 + resends)
//   and exactly one RESPONSE, result=0; every id that differs is printed.
// - Phase "calls" (the reference; skipped with --no-ref), same server, phones, pairs, C, --hold and
//   --seconds: user1 calls user2 (INVITE -> 407 -> ACK -> INVITE with Proxy-Authorization ->
//   200 -> ACK), both through the relay; after --hold seconds user1 sends BYE (200 expected) and
//   user2 must get the server's BYE; then the pair's next call.
// - Before the phases: one call-back and one call on pair 0 (not measured) check that the set-up
//   works, and the idle CPU of the server is measured over 2 s.
// - At the end the server gets SIGTERM and must exit with 0; the temp folder is removed unless
//   --keep. Every wait has a time limit, every loop a count limit, the whole run --deadline.
//   All traffic is on 127.0.0.1.
//
// How to run (from the repository root, after a build):
//   npx tsc -p tsconfig.json                                # once
//   node scripts/bench/callback.mjs                          # C=50, 60 s per phase
//   node scripts/bench/callback.mjs --concurrency=10 --seconds=10
//   node scripts/bench/callback.mjs --rtp --keep             # with media; keep the server log
// Options: --concurrency=C (default 50; 1..1000), --seconds=S (60; per phase), --hold=S (2; may
// be fractional), --rtp (the phones send media), --no-ref (skip the plain-call phase), --keep
// (keep the temp folder: server.log, config, CDRs), --deadline=S (600; the whole run).
// Environment: BUILD (compiled tree, default build), NODE_FLAGS (extra flags for the server's node).
//
// What to read: `uptime` before and after (the machine may be shared: the load matters), then one
// line per phase:
//   completed/started, failed (by reason), wall time and rate (per second);
//   server CPU: utime+stime of the whole process from /proc/PID/stat over the phase (first
//     REQUEST to the last call-back's end), as % of one core, of which the main thread, and as
//     ms of CPU per call-back (or per call);
//   set-up p50/p99 (REQUEST sent -> user2 got the ACK to its 200; calls: INVITE -> user2 ACKed,
//     including the 407 round), release p50/p99 (RELEASE -> RESPONSE; calls: BYE -> 200);
//   resends: REQUEST, RELEASE, 200 by the phones (all 0 on an idle machine), duplicate RESPONSEs;
//   ids with problems (listed below the line), RTP packets received (and sent with --rtp), this
//     script's own CPU (a busy script slows the server's peers, not the server);
// then "CPU per call-back / CPU per call" (a call-back is two outgoing legs plus a ringback from
// the media endpoint, a call one incoming and one outgoing leg: about x1 to x2 is expected), the
// server's exit, the warnings and errors of its log, and one JSON summary line.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { hangUp, inDialog, LOOPBACK, offerSdp, placeCall, pool, register, response, sdpAudioPort, SipSocket, tagOf, uriOf, userOf } from './lib/sip-ua.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
const FIRST_EXT = 2000;
const SIP_SOCKETS_MAX = 8;
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
/** Limits of the waits of one call-back or call (ms). */
const ACK_RESENDS = 8; // REQUEST resends (500 ms apart) before giving up on its ACK
const ANSWER_WAIT_MS = 15000; // REQUEST -> both phones ACKed
const RELEASE_SENDS = 4; // RELEASE sends (2 s apart) before giving up on the RESPONSE
const RELEASE_GAP_MS = 2000;
const BYE_WAIT_MS = 5000; // RESPONSE -> BYE at both phones
const GRACE_MS = 1500; // after a phase: late duplicate RESPONSEs

// ---- options ------------------------------------------------------------------------------------

const args = process.argv.slice(2);
const opt = (name, dflt, min, max, integer = true) => {
  const a = args.find((x) => x.startsWith(`--${name}=`));
  const v = a ? Number(a.slice(name.length + 3)) : dflt;
  if (!(v >= min && v <= max) || (integer && !Number.isInteger(v))) throw new Error(`--${name} must be ${integer ? 'an integer ' : ''}${min}..${max}`);
  return v;
};
const known = /^--(concurrency|seconds|hold|deadline)=|^--(rtp|no-ref|keep)$/;
for (const a of args) if (!known.test(a)) throw new Error(`unknown option ${a} (--concurrency=C --seconds=S --hold=S --rtp --no-ref --keep --deadline=S)`);
const C = opt('concurrency', 50, 1, 1000);
const seconds = opt('seconds', 60, 1, 3600);
const holdS = opt('hold', 2, 0, 600, false);
const deadlineS = opt('deadline', 600, 10, 7200);
const withRtp = args.includes('--rtp');
const withRef = !args.includes('--no-ref');
const keep = args.includes('--keep');
const build = resolve(ROOT, process.env.BUILD ?? 'build');
const cli = join(build, 'cli/main.js');
if (!existsSync(cli)) throw new Error(`no ${cli}: build first (npx tsc -p tsconfig.json)`);
const { parseIif } = await import(pathToFileURL(join(build, 'lib/services/callback/iif.js')).href);

// ---- bookkeeping: children, deadline, clean-up -------------------------------------------------

const children = new Set();
let work = '';
const startedAt = Date.now();
const deadline = setTimeout(() => {
  console.error(`callback: global deadline of ${deadlineS} s reached, stopping`);
  for (const c of children) c.kill('SIGKILL');
  if (work) console.error(`callback: files kept in ${work}`);
  process.exit(3);
}, deadlineS * 1000);
deadline.unref();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const round = (v, d = 2) => Number(v.toFixed(d));
const uptime = () => execFileSync('uptime').toString().trim();
function percentile(values, p) {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

/** Waiters for a condition on some state: `changed()` after every change wakes those whose condition holds. */
class Watch {
  constructor() {
    this.waiters = new Set();
  }
  changed() {
    for (const w of this.waiters) if (w.pred()) w.settle(true);
  }
  /** Resolves true when `pred()` holds, false after `ms`. */
  until(pred, ms) {
    return untilAny([this], pred, ms);
  }
}

/** Resolves true when `pred()` holds (checked whenever one of `watches` changes), false after `ms`. */
function untilAny(watches, pred, ms) {
  if (pred()) return Promise.resolve(true);
  return new Promise((resolveWait) => {
    const w = {
      pred,
      timer: setTimeout(() => w.settle(false), ms),
      settle(v) {
        clearTimeout(w.timer);
        for (const x of watches) x.waiters.delete(w);
        resolveWait(v);
      },
    };
    for (const x of watches) x.waiters.add(w);
  });
}

// ---- the server ---------------------------------------------------------------------------------

function prepare() {
  work = mkdtempSync(join(tmpdir(), 'mss-callback-'));
  writeFileSync(
    join(work, 'config.yaml'),
    [
      'sip:',
      '  transports: [udp]',
      'auth:',
      '  algorithms: [MD5]',
      'log:',
      '  level: warn',
      '  format: json',
      'media:',
      '  relay: always',
      '  portMin: 30000',
      '  portMax: 39999',
      'calls:',
      '  maxPerExtension: 100',
      `  maxTotal: ${Math.max(2000, 8 * C)}`,
      'callback:',
      `  maxActive: ${Math.min(10000, 2 * C + 10)}`,
      '',
    ].join('\n'),
  );
  const lines = [];
  for (let i = 0; i < 2 * C; i++) lines.push(`${FIRST_EXT + i}:pw${FIRST_EXT + i}`);
  writeFileSync(join(work, 'users.txt'), lines.join('\n') + '\n');
  execFileSync(process.execPath, [cli, 'ext', 'import', join(work, 'users.txt'), '--data-dir', join(work, 'data')], { stdio: ['ignore', 'ignore', 'inherit'] });
}

/** A UDP port free on 127.0.0.1 right now (bound, read, closed). */
async function freeUdpPort() {
  const s = dgram.createSocket('udp4');
  await new Promise((r, reject) => {
    s.once('error', reject);
    s.bind(0, LOOPBACK, r);
  });
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

async function startServer(callbackPort) {
  const flags = (process.env.NODE_FLAGS ?? '').split(/\s+/).filter(Boolean);
  const child = spawn(process.execPath, [...flags, cli, 'serve', '--config', join(work, 'config.yaml'), '--data-dir', join(work, 'data'), '--bind', LOOPBACK, '--sip-port', '0', '--callback-port', String(callbackPort)], {
    cwd: work,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const log = [];
  const keepLog = (line) => {
    log.push(line);
    if (log.length > 5000) log.shift();
  };
  createInterface({ input: child.stderr }).on('line', keepLog);
  const port = await new Promise((resolvePort, reject) => {
    const t = setTimeout(() => reject(new Error('the server did not start within 20 s')), 20000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      keepLog(line);
      const m = /listening on port (\d+)/.exec(line);
      if (m) {
        clearTimeout(t);
        resolvePort(Number(m[1]));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`the server exited (${code}) before listening: ${log.join('\n')}`));
    });
  });
  return { child, port, callbackPort, pid: child.pid, log, logFile: join(work, 'server.log') };
}

async function stopServer(server) {
  const exited = new Promise((r) => (server.child.exitCode !== null || server.child.signalCode !== null ? r({ code: server.child.exitCode, signal: server.child.signalCode }) : server.child.once('exit', (code, signal) => r({ code, signal }))));
  const t0 = Date.now();
  server.child.kill('SIGTERM');
  const result = await Promise.race([exited, sleep(15000).then(() => null)]);
  writeFileSync(server.logFile, server.log.join('\n') + '\n');
  if (!result) {
    server.child.kill('SIGKILL');
    return { exited: false, code: null, ms: Date.now() - t0 };
  }
  children.delete(server.child);
  return { exited: true, code: result.code, signal: result.signal, ms: Date.now() - t0 };
}

/** CPU seconds of the whole process (live and ended threads) and of its main thread. */
function cpuTimes(pid) {
  const read = (path) => {
    const stat = readFileSync(path, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  };
  return { total: read(`/proc/${pid}/stat`), main: read(`/proc/${pid}/task/${pid}/stat`) };
}

// ---- the application server: one UDP socket ----------------------------------------------------

class AppServer {
  static async open(serverPort) {
    const as = new AppServer(serverPort);
    await new Promise((r) => as.socket.bind(0, LOOPBACK, r));
    return as;
  }
  constructor(serverPort) {
    this.serverPort = serverPort;
    this.socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 1 << 20 });
    this.ids = new Map(); // id -> record
    this.strays = []; // messages for ids never sent, or unreadable
    this.socket.on('message', (buf, rinfo) => this.receive(buf, rinfo));
  }
  /** The record of `id`, created on first use. */
  record(id, phase) {
    let r = this.ids.get(id);
    if (!r) {
      r = { id, phase, requests: 0, releases: 0, acks: [], responses: [], watch: new Watch(), note: '' };
      this.ids.set(id, r);
    }
    return r;
  }
  send(text) {
    this.socket.send(text, this.serverPort, LOOPBACK);
  }
  receive(buf, rinfo) {
    const text = buf.toString('latin1');
    if (rinfo.port !== this.serverPort || rinfo.address !== LOOPBACK) {
      this.strays.push(`from ${rinfo.address}:${rinfo.port}: ${text}`);
      return;
    }
    const parsed = parseIif(buf);
    if (!parsed.ok) {
      this.strays.push(`unreadable (${parsed.error}: ${parsed.detail}): ${text}`);
      return;
    }
    const m = parsed.message;
    const id = m.params.get('id');
    const r = id === undefined ? undefined : this.ids.get(id);
    if (!r) {
      this.strays.push(text);
      if (m.method === 'RESPONSE' && id !== undefined) this.send(`ACK: id=${id}`); // the AS must ACK every RESPONSE
      return;
    }
    const now = performance.now();
    if (m.method === 'ACK') r.acks.push({ result: Number(m.params.get('result') ?? NaN), at: now, text });
    else if (m.method === 'RESPONSE') {
      this.send(`ACK: id=${id}`);
      r.responses.push({ result: Number(m.params.get('result') ?? NaN), duration: Number(m.params.get('duration') ?? NaN), cause: Number(m.params.get('cause') ?? NaN), at: now, text });
    } else this.strays.push(text);
    r.watch.changed();
  }
  close() {
    this.socket.close();
  }
}

/** Whether the call-back service listens: a RELEASE for an unknown id must get `ACK: ...;result=6`. */
async function probeCallback(as) {
  const r = as.record(`probe-${randomBytes(3).toString('hex')}`, 'probe');
  for (let k = 0; k < 4 && r.acks.length === 0; k++) {
    // Padded: the server sends no answer larger than the datagram it answers.
    as.send(`RELEASE: id=${r.id};pad=${'x'.repeat(40)}`);
    await r.watch.until(() => r.acks.length > 0, 500);
  }
  return r.acks.length > 0 ? r.acks[0] : null;
}

// ---- the phones ---------------------------------------------------------------------------------

const RTP_PAYLOAD = Buffer.alloc(160, 0xff); // PCMU silence, 20 ms
const rtpStats = { in: 0, out: 0 };
/** call-id -> { phone, role: 'uas'|'uac', ... }: the dialogs of every phone. */
const dialogs = new Map();
/** Media streams the phones send (--rtp): dialog -> stream. */
const streams = new Set();
let rtpTicker = null;

class Phone {
  constructor(index, sip, rtpSocket) {
    this.index = index;
    this.number = String(FIRST_EXT + index);
    this.sip = sip;
    this.rtp = rtpSocket;
    this.rtpPort = rtpSocket.address().port;
    this.counts = { invites: 0, reinvites: 0, acks: 0, byes: 0, cancels: 0, okResends: 0, noAck: 0, strayAcks: 0, strayByes: 0 };
    this.watch = new Watch();
    rtpSocket.on('message', () => rtpStats.in++);
  }

  /** An incoming request (the SIP socket answers it with what this returns, or 200 without a body). */
  onRequest(msg) {
    if (msg.method === 'INVITE') return this.onInvite(msg);
    if (msg.method === 'BYE') {
      const d = dialogs.get(msg.get('call-id'));
      if (d && d.phone === this) {
        this.endDialog(d);
        this.counts.byes++;
      } else this.counts.strayByes++;
      this.watch.changed();
      return null;
    }
    if (msg.method === 'CANCEL') {
      this.counts.cancels++;
      this.watch.changed();
    }
    return null;
  }

  onInvite(msg) {
    const callId = msg.get('call-id');
    const contact = [`Contact: <sip:${this.number}@${LOOPBACK}:${this.sip.port}>`];
    const body = offerSdp(this.rtpPort).replace(' 0 8 101', ' 0 101').replace(/a=rtpmap:8 .*\r\n/, '');
    if (tagOf(msg.get('to'))) {
      // A re-INVITE: the same answer.
      this.counts.reinvites++;
      return response(msg, 200, 'OK', contact, body);
    }
    this.counts.invites++;
    const toTag = randomBytes(5).toString('hex');
    let remotePort = null;
    try {
      remotePort = sdpAudioPort(msg.body);
    } catch {
      remotePort = null;
    }
    this.sip.send(response(msg, 180, 'Ringing', contact, '', toTag));
    const ok = response(msg, 200, 'OK', contact, body, toTag);
    const d = { phone: this, role: 'uas', callId, remotePort, acked: false, timer: null, stream: null };
    dialogs.set(callId, d);
    // The 2xx is resent until the ACK comes (RFC 3261 13.3.1.4): 0.5, 1, 2, 4, 4, ... s, 32 s in all.
    let gap = 500;
    let spent = 0;
    const resend = () => {
      if (d.acked || dialogs.get(callId) !== d) return;
      if (spent >= 32000) {
        this.counts.noAck++;
        return;
      }
      this.sip.send(ok);
      this.counts.okResends++;
      spent += gap;
      gap = Math.min(gap * 2, 4000);
      d.timer = setTimeout(resend, gap);
    };
    d.timer = setTimeout(resend, gap);
    spent = gap;
    this.watch.changed();
    return ok;
  }

  onAck(msg) {
    const d = dialogs.get(msg.get('call-id'));
    if (!d || d.phone !== this || d.role !== 'uas') {
      this.counts.strayAcks++;
      return;
    }
    if (d.acked) return; // the ACK of a resent 200
    d.acked = true;
    clearTimeout(d.timer);
    this.counts.acks++;
    if (withRtp && d.remotePort) this.startStream(d);
    this.watch.changed();
  }

  /** A dialog of ours as the caller (calls phase). */
  addUac(dialog) {
    const d = { phone: this, role: 'uac', callId: dialog.callId, remotePort: dialog.remotePort, acked: true, timer: null, stream: null };
    dialogs.set(dialog.callId, d);
    if (withRtp && d.remotePort) this.startStream(d);
    return d;
  }

  startStream(d) {
    d.stream = { socket: this.rtp, port: d.remotePort, seq: Math.floor(Math.random() * 65536), ts: Math.floor(Math.random() * 2 ** 32), ssrc: randomBytes(4).readUInt32BE(0) };
    streams.add(d.stream);
  }

  endDialog(d) {
    clearTimeout(d.timer);
    if (d.stream) streams.delete(d.stream);
    dialogs.delete(d.callId);
  }
}

function startRtpTicker() {
  if (!withRtp || rtpTicker) return;
  rtpTicker = setInterval(() => {
    for (const s of streams) {
      const h = Buffer.allocUnsafe(12);
      h[0] = 0x80;
      h[1] = 0; // PCMU
      h.writeUInt16BE(s.seq, 2);
      h.writeUInt32BE(s.ts >>> 0, 4);
      h.writeUInt32BE(s.ssrc, 8);
      s.seq = (s.seq + 1) & 0xffff;
      s.ts = (s.ts + 160) % 2 ** 32;
      s.socket.send([h, RTP_PAYLOAD], s.port, LOOPBACK);
      rtpStats.out++;
    }
  }, 20);
}

async function openPhones(serverPort) {
  const sips = [];
  const nSockets = Math.min(SIP_SOCKETS_MAX, Math.ceil((2 * C) / 25));
  for (let k = 0; k < nSockets; k++) sips.push(await SipSocket.open(serverPort));
  const phones = [];
  const byNumber = new Map();
  for (let i = 0; i < 2 * C; i++) {
    const rtp = dgram.createSocket({ type: 'udp4', recvBufferSize: 1 << 18 });
    await new Promise((r) => rtp.bind(0, LOOPBACK, r));
    const p = new Phone(i, sips[i % nSockets], rtp);
    phones.push(p);
    byNumber.set(p.number, p);
  }
  for (const s of sips) {
    s.onRequest = (msg) => {
      const p = byNumber.get(userOf(msg.uri)) ?? dialogs.get(msg.get('call-id'))?.phone;
      return p ? p.onRequest(msg) : null;
    };
    s.onAck = (msg) => (byNumber.get(userOf(msg.uri)) ?? dialogs.get(msg.get('call-id'))?.phone)?.onAck(msg);
    // A 200 to our INVITE that comes again (our ACK lost): ACK it again.
    s.onLateOk = (msg) =>
      s.send(inDialog({ sip: s, user: userOf(msg.get('from')), callId: msg.get('call-id'), fromTag: tagOf(msg.get('from')), toTag: tagOf(msg.get('to')), remoteTarget: uriOf(msg.get('contact')), number: userOf(msg.get('to')) }, 'ACK', msg.cseqNum));
  }
  const regs = await pool(phones.length, 40, (i) => register(phones[i].sip, phones[i].number, `pw${phones[i].number}`, { callIdPrefix: 'cbb' }));
  const bad = regs.filter((r) => !r.ok);
  if (bad.length) throw new Error(`${bad.length} phones did not register: ${bad[0].error.message}`);
  return { sips, phones };
}

// ---- one call-back, one call --------------------------------------------------------------------

/** Failure reasons of a phase. */
function newPhaseStats(kind) {
  return { kind, started: 0, completed: 0, failures: new Map(), setupMs: [], releaseMs: [], requestResends: 0, releaseResends: 0, ids: [] };
}
const fail = (st, why) => st.failures.set(why, (st.failures.get(why) ?? 0) + 1);

let idCounter = 0;

async function oneCallBack(as, a, b, st) {
  const id = `cb${a.index / 2}-${++idCounter}`;
  const r = as.record(id, st.kind);
  st.ids.push(id);
  st.started++;
  const base = { aAcks: a.counts.acks, bAcks: b.counts.acks, aByes: a.counts.byes, bByes: b.counts.byes };
  const request = `REQUEST: id=${id};user1=${a.number};user2=${b.number}`;
  const t0 = performance.now();
  r.requests++;
  as.send(request);
  for (let k = 0; r.acks.length === 0 && k < ACK_RESENDS; k++) {
    if (await r.watch.until(() => r.acks.length > 0, 500)) break;
    r.requests++;
    st.requestResends++;
    as.send(request);
  }
  if (r.acks.length === 0 && !(await r.watch.until(() => r.acks.length > 0, 1000))) {
    fail(st, 'no ACK to REQUEST');
    r.note = 'no ACK';
    return;
  }
  if (r.acks[0].result !== 0) {
    fail(st, `REQUEST refused, result ${r.acks[0].result}`);
    r.note = `refused: ${r.acks[0].text}`;
    await sleep(1000);
    return;
  }
  const bothUp = () => a.counts.acks > base.aAcks && b.counts.acks > base.bAcks;
  const up = await untilAny([r.watch, a.watch, b.watch], () => bothUp() || r.responses.length > 0, ANSWER_WAIT_MS).then(bothUp);
  let ok = true;
  if (!up || r.responses.length > 0) {
    ok = false;
    fail(st, r.responses.length > 0 ? `ended before the bridge: ${r.responses[0].text}` : `not bridged within ${ANSWER_WAIT_MS / 1000} s (user1 ${a.counts.acks > base.aAcks ? 'up' : 'not up'}, user2 ${b.counts.acks > base.bAcks ? 'up' : 'not up'})`);
    r.note = 'not bridged';
  } else st.setupMs.push(performance.now() - t0);
  if (ok && holdS > 0 && (await r.watch.until(() => r.responses.length > 0, holdS * 1000))) {
    ok = false;
    fail(st, `RESPONSE before RELEASE: ${r.responses[0].text}`);
    r.note = 'RESPONSE before RELEASE';
  }
  let t1 = performance.now();
  for (let k = 0; r.responses.length === 0 && k < RELEASE_SENDS; k++) {
    if (k > 0) st.releaseResends++;
    r.releases++;
    if (k === 0) t1 = performance.now();
    as.send(`RELEASE: id=${id}`);
    await r.watch.until(() => r.responses.length > 0, RELEASE_GAP_MS);
  }
  if (r.responses.length === 0) {
    fail(st, 'no RESPONSE');
    r.note = 'no RESPONSE';
    return;
  }
  if (ok) st.releaseMs.push(r.responses[0].at - t1);
  if (r.responses[0].result !== 0) {
    if (ok) fail(st, `RESPONSE result ${r.responses[0].result}`);
    ok = false;
  }
  const byes = () => a.counts.byes > base.aByes && b.counts.byes > base.bByes;
  if (!(await untilAny([a.watch, b.watch], byes, BYE_WAIT_MS))) {
    if (up) {
      ok = false;
      fail(st, `no BYE within ${BYE_WAIT_MS / 1000} s at ${a.counts.byes > base.aByes ? '' : 'user1 '}${b.counts.byes > base.bByes ? '' : 'user2'}`.trim());
    }
  }
  if (ok) st.completed++;
}

async function oneCall(a, b, st) {
  st.started++;
  const base = { bAcks: b.counts.acks, bByes: b.counts.byes };
  const t0 = performance.now();
  let d;
  try {
    d = await placeCall(a.sip, a.number, b.number, a.rtpPort, { callIdPrefix: 'cbb', userAgent: 'callback-bench' });
  } catch (err) {
    fail(st, err.status ? `INVITE ${err.status}` : err.message.replace(/cbb-\S+/, 'CALL').replace(/\d{4} -> \d{4}/, 'A -> B'));
    await sleep(1000);
    return;
  }
  const ud = a.addUac(d);
  let ok = true;
  if (await b.watch.until(() => b.counts.acks > base.bAcks, ANSWER_WAIT_MS)) st.setupMs.push(performance.now() - t0);
  else {
    ok = false;
    fail(st, 'user2 got no ACK');
  }
  await sleep(holdS * 1000);
  const t1 = performance.now();
  let status;
  try {
    status = await hangUp(d);
  } catch (err) {
    status = err.message.replace(/cbb-\S+/, 'CALL');
  }
  a.endDialog(ud);
  if (status !== 200) {
    ok = false;
    fail(st, `BYE ${status}`);
  } else st.releaseMs.push(performance.now() - t1);
  if (!(await b.watch.until(() => b.counts.byes > base.bByes, BYE_WAIT_MS))) {
    ok = false;
    fail(st, 'user2 got no BYE');
  }
  if (ok) st.completed++;
}

/** One phase: every pair runs call-backs (or calls) back to back for `seconds`; the server's CPU over it. */
async function phase(kind, ctx) {
  const { server, as, phones } = ctx;
  const st = newPhaseStats(kind);
  const pairs = Array.from({ length: C }, (_, k) => [phones[2 * k], phones[2 * k + 1]]);
  const maxRounds = Math.ceil(seconds / Math.max(holdS, 0.05)) + 10;
  const phones0 = phones.reduce((s, p) => s + p.counts.okResends, 0);
  const rtp0 = { ...rtpStats };
  const cpu0 = cpuTimes(server.pid);
  const self0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  await Promise.all(
    pairs.map(async ([a, b]) => {
      for (let n = 0; n < maxRounds && performance.now() < end && server.child.exitCode === null && server.child.signalCode === null; n++) {
        if (kind === 'callback') await oneCallBack(as, a, b, st);
        else await oneCall(a, b, st);
      }
    }),
  );
  if (server.child.exitCode !== null || server.child.signalCode !== null) throw new Error(`the server exited (${server.child.exitCode ?? server.child.signalCode}) during the ${kind} phase, after ${st.completed}/${st.started}; failures ${JSON.stringify(Object.fromEntries(st.failures))}`);
  const cpu1 = cpuTimes(server.pid);
  const elapsedS = (performance.now() - t0) / 1000;
  const self = process.cpuUsage(self0);
  if (kind === 'callback') await sleep(GRACE_MS);
  const cpuS = cpu1.total - cpu0.total;
  const perUnit = st.completed ? (cpuS * 1000) / st.completed : 0;
  const problems = kind === 'callback' ? checkIds(as, st.ids) : [];
  const r = {
    kind,
    concurrency: C,
    started: st.started,
    completed: st.completed,
    failures: Object.fromEntries(st.failures),
    wallS: round(elapsedS),
    ratePerS: round(st.completed / elapsedS),
    serverCpu: { coreShare: round(cpuS / elapsedS, 4), mainThreadCoreShare: round((cpu1.main - cpu0.main) / elapsedS, 4), cpuS: round(cpuS, 2), msPerUnit: round(perUnit, 3) },
    setupMs: { p50: round(percentile(st.setupMs, 50), 1), p99: round(percentile(st.setupMs, 99), 1), max: round(Math.max(0, ...st.setupMs), 1) },
    releaseMs: { p50: round(percentile(st.releaseMs, 50), 1), p99: round(percentile(st.releaseMs, 99), 1), max: round(Math.max(0, ...st.releaseMs), 1) },
    resends: { request: st.requestResends, release: st.releaseResends, phone200: phones.reduce((s, p) => s + p.counts.okResends, 0) - phones0 },
    duplicateResponses: kind === 'callback' ? st.ids.reduce((s, id) => s + Math.max(0, as.ids.get(id).responses.length - 1), 0) : 0,
    idsChecked: kind === 'callback' ? st.ids.length : 0,
    idsWithProblems: problems.length,
    problems: problems.slice(0, 50),
    rtp: { received: rtpStats.in - rtp0.in, sent: rtpStats.out - rtp0.out },
    scriptCpuCoreShare: round((self.user + self.system) / 1e6 / elapsedS, 4),
  };
  const unit = kind === 'callback' ? 'call-back' : 'call';
  console.log(
    `${kind} C=${C}: ${r.completed}/${r.started} completed in ${r.wallS} s (${r.ratePerS}/s)` +
      (st.failures.size ? `, failed ${JSON.stringify(r.failures)}` : '') +
      ` | server CPU ${(r.serverCpu.coreShare * 100).toFixed(1)}% of a core (main thread ${(r.serverCpu.mainThreadCoreShare * 100).toFixed(1)}%), ${r.serverCpu.msPerUnit} ms per ${unit}` +
      ` | set-up p50 ${r.setupMs.p50} p99 ${r.setupMs.p99} ms, ${kind === 'callback' ? 'RELEASE->RESPONSE' : 'BYE->200'} p50 ${r.releaseMs.p50} p99 ${r.releaseMs.p99} ms` +
      ` | resent: ${kind === 'callback' ? `REQUEST ${r.resends.request}, RELEASE ${r.resends.release}, ` : ''}phones' 200 ${r.resends.phone200}` +
      (kind === 'callback' ? ` | RESPONSE duplicates ${r.duplicateResponses} | ids checked ${r.idsChecked}, with problems ${r.idsWithProblems}` : '') +
      ` | RTP received ${r.rtp.received}${withRtp ? `, sent ${r.rtp.sent}` : ''} | script CPU ${(r.scriptCpuCoreShare * 100).toFixed(1)}%`,
  );
  for (const p of problems.slice(0, 20)) console.log(`  id ${p.id}: ${p.problem}`);
  if (problems.length > 20) console.log(`  ... and ${problems.length - 20} more ids`);
  return r;
}

/** Every id: as many ACKs as REQUESTs sent, all result 0, and exactly one RESPONSE, result 0. */
function checkIds(as, ids) {
  const out = [];
  for (const id of ids) {
    const r = as.ids.get(id);
    const why = [];
    if (r.acks.length !== r.requests) why.push(`${r.acks.length} ACKs for ${r.requests} REQUESTs`);
    const badAcks = r.acks.filter((x) => x.result !== 0);
    if (badAcks.length) why.push(`ACK ${badAcks.map((x) => JSON.stringify(x.text)).join(', ')}`);
    if (r.responses.length !== 1) why.push(`${r.responses.length} RESPONSEs${r.responses.length ? ` (${r.responses.map((x) => JSON.stringify(x.text)).join(', ')})` : ''}`);
    else if (r.responses[0].result !== 0) why.push(`RESPONSE ${JSON.stringify(r.responses[0].text)}`);
    if (why.length) out.push({ id, problem: why.join('; ') + (r.note ? ` [${r.note}]` : ''), requests: r.requests, releases: r.releases, acks: r.acks.map((x) => x.text), responses: r.responses.map((x) => x.text) });
  }
  return out;
}

// ---- main -----------------------------------------------------------------------------------------

async function main() {
  const loadBefore = uptime();
  console.log(`# ${new Date().toISOString()} ${process.version}, ${execFileSync('nproc').toString().trim()} cores; before: ${loadBefore}`);
  console.log(`# concurrency ${C}, ${seconds} s per phase, hold ${holdS} s, RTP from the phones ${withRtp ? 'on' : 'off'}, reference (plain calls) ${withRef ? 'on' : 'off'}`);
  prepare();
  let server = null;
  let as = null;
  for (let attempt = 1; attempt <= 3 && !as; attempt++) {
    const port = await freeUdpPort();
    server = await startServer(port);
    const probeAs = await AppServer.open(port);
    const ack = await probeCallback(probeAs);
    if (ack && ack.result === 6) {
      as = probeAs;
      break;
    }
    probeAs.close();
    console.log(`# call-back port ${port}: ${ack ? `unexpected answer ${ack.text}` : 'no answer'} (${server.log.filter((l) => l.includes('callback.')).join(' ') || 'nothing in the log'}); trying another port`);
    await stopServer(server);
  }
  if (!as) throw new Error('the call-back service did not answer on any of 3 ports');
  console.log(`# server pid ${server.pid} on ${LOOPBACK}:${server.port}, call-back port ${server.callbackPort}, folder ${work}`);
  const results = {};
  let stop = null;
  let sips = [];
  let phones = [];
  let prime = null;
  let idleCore = 0;
  try {
    ({ sips, phones } = await openPhones(server.port));
    console.log(`# ${phones.length} phones registered over ${sips.length} SIP sockets`);
    startRtpTicker();
    // One call-back and one call first: the set-up works (and the code is warm).
    {
      const stCb = newPhaseStats('prime');
      await oneCallBack(as, phones[0], phones[1], stCb);
      const stCall = newPhaseStats('prime-call');
      if (withRef) await oneCall(phones[0], phones[1], stCall);
      const problems = checkIds(as, stCb.ids);
      prime = { callback: stCb.completed === 1 && problems.length === 0, call: withRef ? stCall.completed === 1 : null, failures: { ...Object.fromEntries(stCb.failures), ...Object.fromEntries(stCall.failures) }, problems };
      console.log(`# priming: call-back ${prime.callback ? 'ok' : 'FAILED'}${withRef ? `, call ${prime.call ? 'ok' : 'FAILED'}` : ''}${stCb.failures.size + stCall.failures.size ? ` ${JSON.stringify(prime.failures)}` : ''}${problems.length ? ` ${JSON.stringify(problems)}` : ''}`);
    }
    if (!prime.callback || prime.call === false) throw new Error('priming failed: see above and the server log (--keep)');
    const c0 = cpuTimes(server.pid);
    await sleep(2000);
    idleCore = round((cpuTimes(server.pid).total - c0.total) / 2, 4);
    console.log(`# server idle: ${(idleCore * 100).toFixed(2)}% of a core`);
    results.callback = await phase('callback', { server, as, phones });
    if (withRef) {
      await sleep(1000);
      results.calls = await phase('calls', { server, as, phones });
      const ratio = results.calls.serverCpu.msPerUnit ? results.callback.serverCpu.msPerUnit / results.calls.serverCpu.msPerUnit : 0;
      results.ratio = round(ratio, 3);
      console.log(`CPU per call-back ${results.callback.serverCpu.msPerUnit} ms / per call ${results.calls.serverCpu.msPerUnit} ms = x${ratio.toFixed(2)}`);
    }
  } catch (err) {
    console.error(`callback: ${err.stack ?? err}`);
    results.error = String(err.message ?? err);
  } finally {
    if (rtpTicker) clearInterval(rtpTicker);
    for (const d of dialogs.values()) clearTimeout(d.timer);
    stop = await stopServer(server);
    for (const s of sips) s.close();
    for (const p of phones) p.rtp.close();
    as.close();
  }
  console.log(`# server stop: ${stop.exited ? `exited with ${stop.code ?? stop.signal} after ${stop.ms} ms` : 'did NOT exit within 15 s (killed)'}`);
  const notable = server.log.filter((l) => /"level":"(warn|error)"|^minisipserver:|Error/.test(l));
  const events = new Map();
  for (const l of notable) {
    const ev = /"event":"([^"]+)"/.exec(l)?.[1] ?? l.slice(0, 120);
    events.set(ev, (events.get(ev) ?? 0) + 1);
  }
  console.log(`# server log: ${notable.length} warn/error lines${events.size ? ` ${JSON.stringify(Object.fromEntries(events))}` : ''}`);
  for (const l of notable.slice(0, 10)) console.log(`#   ${l.slice(0, 400)}`);
  const strays = as.strays.filter((s) => !/^ACK: id=probe-/.test(s));
  if (strays.length) console.log(`# AS: ${strays.length} unexpected messages, e.g. ${JSON.stringify(strays.slice(0, 5))}`);
  const phoneTotals = {};
  for (const p of phones) for (const [k, v] of Object.entries(p.counts)) phoneTotals[k] = (phoneTotals[k] ?? 0) + v;
  console.log(`# phones: ${JSON.stringify(phoneTotals)}`);
  const loadAfter = uptime();
  console.log(`# after: ${loadAfter}`);
  const summary = {
    bench: 'callback',
    date: new Date().toISOString(),
    node: process.version,
    concurrency: C,
    seconds,
    holdS,
    rtp: withRtp,
    loadBefore,
    loadAfter,
    idleCoreShare: idleCore,
    prime,
    callback: results.callback,
    calls: results.calls,
    cpuRatioCallbackToCall: results.ratio,
    error: results.error,
    serverStop: stop,
    serverLogWarnings: Object.fromEntries(events),
    asUnexpected: strays.length,
    phones: phoneTotals,
    folder: keep ? work : undefined,
    wallS: round((Date.now() - startedAt) / 1000, 1),
  };
  console.log(JSON.stringify(summary));
  if (!keep) rmSync(work, { recursive: true, force: true });
  else console.log(`# kept ${work}`);
  const cb = results.callback;
  const good = !results.error && stop.exited && stop.code === 0 && cb && cb.completed === cb.started && cb.idsWithProblems === 0 && (!withRef || (results.calls && results.calls.completed === results.calls.started));
  process.exitCode = good ? 0 : 1;
}

main().catch((err) => {
  console.error(`callback: ${err.stack ?? err}`);
  if (work) console.error(`callback: files kept in ${work}`);
  for (const c of children) c.kill('SIGKILL');
  process.exit(1);
});
