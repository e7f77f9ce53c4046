#!/usr/bin/env node
// The IVR at scale, end to end: N concurrent calls through SIP and the media relay to an IVR that
// plays a long prompt, against `minisipserver serve` running as a separate process.
//
// What it measures, for each N (default 100, 200, 400):
// - N callers (extensions 1000.., each with its own RTP socket, SIP spread over a few sockets)
//   call number 800 with digest authentication (INVITE -> 407 -> ACK -> INVITE with
//   Proxy-Authorization, MD5 -> 200 -> ACK); 800 runs an IVR file that plays a synthesised 60 s
//   prompt (8 kHz PCM16 WAV) and loops back to it (`goto`), so every call stays in the IVR. The
//   server answers each call itself: G.711 + telephone-event, a relay session between the caller
//   and the server's media endpoint (media.relay: always, the default). Each caller sends 3 RTP
//   packets once answered (so the relay latches, symmetric RTP), then only receives.
// - After all N are up and a warm-up, over a fixed window: the server process's CPU from
//   /proc/PID/task/*/stat (utime+stime, and per thread: the main thread, the busiest other one =
//   the native relay thread, the rest), as % of one core and per call; the inter-arrival
//   interval of the RTP packets of every stream at the callers (p50/p99/max over all streams, and
//   p99 of |interval - 20 ms|, which is what the target "send-interval p99 < 5 ms" is read as);
//   packets per second, losses (RTP sequence gaps).
// - Reference, same run, same server, same N: the relay's CPU per relayed packet. N calls from
//   the same callers to extension 7000 (registered by this script, which answers every INVITE),
//   both phones of each call sending 50 packets/s of 172 bytes through the relay (100 relayed
//   packets/s per call), same window. Reported: server CPU per IVR packet sent against server CPU
//   per relayed packet.
// - All calls are hung up (BYE, every 200 checked) after each phase; at the end the server gets
//   SIGTERM and must exit with 0. Before the first phase one IVR call primes the prompt cache (a
//   real server's calls do not all arrive in the same second as the first one).
//
// The receivers: all RTP sockets are in a small C helper (scripts/bench/ivr-rtp.c, compiled with
// gcc into the temp folder), a separate process from the server and from this script (which only
// does SIP). It times every packet with the kernel's receive timestamp (SO_TIMESTAMPNS), so the
// intervals include the server's pacing, the endpoint's send, the relay hop (the native relay
// thread pauses up to 0.5 ms after a busy wake-up to batch) and the loopback, but not the
// receiver's own scheduling; its receive-buffer drops are counted (SO_RXQ_OVFL). Its CPU and
// this script's are printed too. Everything stays on 127.0.0.1; the run is bounded by --deadline.
// In the reference the intervals also carry the helper's own sending (a thread pacing 2N sockets).
//
// How to run (from the repository root, after a build and with gcc installed):
//   npx tsc -p tsconfig.json && node scripts/build-native.mjs      # once
//   node scripts/bench/ivr-calls.mjs                               # N = 100 200 400
//   node scripts/bench/ivr-calls.mjs 400 --window=15 --warmup=3 --no-ref
//   node scripts/bench/ivr-calls.mjs 400 --no-ref --cpu-prof=/tmp/ivr-prof   # profile the server
// Options: N... (1..1000 each), --window=S (default 15), --warmup=S (3), --prompt=S (60),
// --no-ref (skip the relay reference), --cpu-prof=DIR (the server runs with --cpu-prof; the top
// self-time functions of its main thread within the IVR windows are printed at the end),
// --media-relay=never (diagnosis: the endpoint sends to the callers directly, no relay hop, no
// reference), --server-nice=K (diagnosis: the server runs under `nice -n K`), --deadline=S
// (default 900), --keep (keep the temp folder with the server log), env BUILD (compiled tree,
// default build), NODE_FLAGS (extra flags for the server's node).
//
// What to read: `uptime` before and after (the machine is shared: the load matters), then one
// line per N and phase ("ivr N=..." and "ref N=...", and the per-packet comparison of the two):
//   server CPU: % of one core over the window, per call, µs per packet (IVR: packets the callers
//     received; reference: packets relayed, both ways), and by thread: main (JavaScript: the
//     pacer and the endpoints' sends), the busiest other thread (the relay), the rest;
//   interval p50/p99/max and |dev| p99 (|interval - 20 ms|), packets/s, lost;
//   late >25 ms ... in M moments (biggest B): the late packets grouped in time; few moments with
//     about N packets each = stalls all streams share (the sender's thread), not per-stream noise;
//   main thread run-queue wait: how long the server's main thread was ready but had no CPU
//     (/proc/PID/task/PID/schedstat), which is what such stalls are made of on a busy machine.
// Then a JSON summary and the "target" line: at N=400, |dev| p99 < 5 ms and server CPU < 33%.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { hangUp, inDialog, LOOPBACK, offerSdp, placeCall as placeCallAs, pool, register, response, sdpAudioPort, SipSocket, tagOf, uriOf } from './lib/sip-ua.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
const IVR_NUMBER = '800';
const CALLEE = '7000';
const FIRST_CALLER = 1000;
const SIP_SOCKETS_MAX = 8;
const IN_FLIGHT = 40;
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

// ---- options ------------------------------------------------------------------------------------

const args = process.argv.slice(2);
const opt = (name, dflt, min, max) => {
  const a = args.find((x) => x.startsWith(`--${name}=`));
  const v = a ? Number(a.slice(name.length + 3)) : dflt;
  if (!(v >= min && v <= max)) throw new Error(`--${name} must be ${min}..${max}`);
  return v;
};
const windowS = opt('window', 15, 1, 120);
const warmupS = opt('warmup', 3, 0, 60);
const promptS = opt('prompt', 60, 5, 600);
const deadlineS = opt('deadline', 900, 30, 3600);
const relayMode = args.find((a) => a.startsWith('--media-relay='))?.slice('--media-relay='.length) ?? 'always';
if (relayMode !== 'always' && relayMode !== 'never') throw new Error('--media-relay must be always or never');
const withRef = !args.includes('--no-ref') && relayMode === 'always';
const keep = args.includes('--keep');
const serverNice = opt('server-nice', 0, -20, 19);
const profDir = args.find((a) => a.startsWith('--cpu-prof='))?.slice('--cpu-prof='.length);
const known = /^--(window|warmup|prompt|deadline|cpu-prof|media-relay|server-nice)=|^--(no-ref|keep)$/;
for (const a of args) if (a.startsWith('--') && !known.test(a)) throw new Error(`unknown option ${a}`);
const counts = args.filter((a) => !a.startsWith('--')).map(Number);
if (counts.length === 0) counts.push(100, 200, 400);
for (const n of counts) if (!(Number.isInteger(n) && n >= 1 && n <= 1000)) throw new Error('N must be an integer 1..1000');
const maxN = Math.max(...counts);
const build = resolve(ROOT, process.env.BUILD ?? 'build');
const cli = join(build, 'cli/main.js');
if (!existsSync(cli)) throw new Error(`no ${cli}: build first (npx tsc -p tsconfig.json)`);

// ---- bookkeeping: children, deadline, clean-up -------------------------------------------------

const children = new Set();
let work = '';
const startedAt = Date.now();
const deadline = setTimeout(() => {
  console.error(`ivr-calls: global deadline of ${deadlineS} s reached, stopping`);
  for (const c of children) c.kill('SIGKILL');
  process.exit(3);
}, deadlineS * 1000);
deadline.unref();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** The monotonic clock in µs, the one V8's .cpuprofile timestamps use (CLOCK_MONOTONIC). */
const monoUs = () => Number(process.hrtime.bigint() / 1000n);
/** IVR measuring windows, for the profile summary. */
const ivrWindows = [];
const round = (v, d = 2) => Number(v.toFixed(d));
const uptime = () => execFileSync('uptime').toString().trim();

// ---- the prompt, the IVR file, the config, the extensions ---------------------------------------

function wav(seconds) {
  const n = seconds * 8000;
  const buf = Buffer.alloc(44 + 2 * n);
  buf.write('RIFF', 0);
  buf.writeUInt32LE(36 + 2 * n, 4);
  buf.write('WAVEfmt ', 8);
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20); // PCM
  buf.writeUInt16LE(1, 22); // mono
  buf.writeUInt32LE(8000, 24);
  buf.writeUInt32LE(16000, 28);
  buf.writeUInt16LE(2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write('data', 36);
  buf.writeUInt32LE(2 * n, 40);
  // A voice-like signal: two tones whose loudness follows a 3 Hz syllable envelope.
  for (let i = 0; i < n; i++) {
    const t = i / 8000;
    const env = 0.55 + 0.45 * Math.sin(2 * Math.PI * 3 * t);
    const s = env * (0.25 * Math.sin(2 * Math.PI * 220 * t) + 0.12 * Math.sin(2 * Math.PI * 1130 * t));
    buf.writeInt16LE(Math.round(s * 32767), 44 + 2 * i);
  }
  return buf;
}

function prepare() {
  work = mkdtempSync(join(tmpdir(), 'mss-ivr-calls-'));
  const ivrDir = join(work, 'ivr');
  mkdirSync(join(ivrDir, 'prompts'), { recursive: true });
  writeFileSync(join(ivrDir, 'prompts', 'long.wav'), wav(promptS));
  writeFileSync(
    join(ivrDir, 'bench.xml'),
    [
      '<?xml version="1.0" encoding="utf-8"?>',
      '<mssxml version="1">',
      '  <action name="speak" method="play" nextaction="again">',
      '    <voice>long.wav</voice>',
      '  </action>',
      '  <action name="again" method="goto" nextaction="speak"/>',
      '</mssxml>',
      '',
    ].join('\n'),
  );
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
      `  relay: ${relayMode}`,
      '  portMin: 20000',
      '  portMax: 29999',
      'calls:',
      '  maxPerExtension: 1000',
      '  maxTotal: 5000',
      'ivr:',
      `  dir: ${JSON.stringify(ivrDir)}`,
      '  numbers:',
      `    "${IVR_NUMBER}": bench.xml`,
      `  maxSessions: ${maxN + 100}`,
      '',
    ].join('\n'),
  );
  const lines = [`${CALLEE}:pw${CALLEE}:Sink`];
  for (let i = 0; i < maxN; i++) lines.push(`${FIRST_CALLER + i}:pw${FIRST_CALLER + i}`);
  writeFileSync(join(work, 'users.txt'), lines.join('\n') + '\n');
  execFileSync(process.execPath, [cli, 'ext', 'import', join(work, 'users.txt'), '--data-dir', join(work, 'data')], { stdio: ['ignore', 'ignore', 'inherit'] });
  const bin = join(work, 'ivr-rtp');
  execFileSync('gcc', ['-O2', '-pthread', '-o', bin, join(HERE, 'ivr-rtp.c')], { stdio: 'inherit' });
  return bin;
}

// ---- the server process -------------------------------------------------------------------------

async function startServer() {
  const flags = (process.env.NODE_FLAGS ?? '').split(/\s+/).filter(Boolean);
  if (profDir) {
    mkdirSync(profDir, { recursive: true });
    flags.push('--cpu-prof', `--cpu-prof-dir=${profDir}`);
  }
  const logFile = join(work, 'server.log');
  // `nice` execs node: the pid stays the server's.
  const [cmd, pre] = serverNice ? ['nice', ['-n', String(serverNice), process.execPath]] : [process.execPath, []];
  const child = spawn(cmd, [...pre, ...flags, cli, 'serve', '--config', join(work, 'config.yaml'), '--data-dir', join(work, 'data'), '--bind', LOOPBACK, '--sip-port', '0'], {
    cwd: work,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const log = [];
  const keepLog = (d) => {
    log.push(d);
    if (log.length > 2000) log.shift();
  };
  child.stderr.on('data', keepLog);
  const port = await new Promise((resolvePort, reject) => {
    const t = setTimeout(() => reject(new Error('the server did not start within 20 s')), 20000);
    const rl = createInterface({ input: child.stdout });
    rl.on('line', (line) => {
      keepLog(line + '\n');
      const m = /listening on port (\d+)/.exec(line);
      if (m) {
        clearTimeout(t);
        resolvePort(Number(m[1]));
      }
    });
    child.once('exit', (code) => reject(new Error(`the server exited (${code}) before listening: ${log.join('')}`)));
  });
  return { child, port, pid: child.pid, log, logFile };
}

async function stopServer(server) {
  const exited = new Promise((r) => server.child.once('exit', (code, signal) => r({ code, signal })));
  const t0 = Date.now();
  server.child.kill('SIGTERM');
  const result = await Promise.race([exited, sleep(15000).then(() => null)]);
  writeFileSync(server.logFile, server.log.join(''));
  if (!result) {
    server.child.kill('SIGKILL');
    return { exited: false, code: null, ms: Date.now() - t0 };
  }
  children.delete(server.child);
  return { exited: true, code: result.code, signal: result.signal, ms: Date.now() - t0 };
}

/**
 * { tid: { comm, utime, stime, waitNs, slices } } for every thread of `pid`: utime+stime in clock
 * ticks from stat, and from schedstat the time spent runnable but waiting for a CPU (run queue)
 * and the number of times the thread ran.
 */
function threadTimes(pid) {
  const out = new Map();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat;
    let sched = ['0', '0', '0'];
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      sched = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').trim().split(' ');
    } catch {
      if (!stat) continue;
    }
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.set(Number(tid), { comm, utime: Number(f[11]), stime: Number(f[12]), waitNs: Number(sched[1]), slices: Number(sched[2]) });
  }
  return out;
}

/**
 * CPU seconds between two threadTimes() snapshots: the whole process, the main thread (tid = pid)
 * and the other threads by tid, busiest first. In this Node build every thread is called "node"
 * (V8's platform workers, libuv's, and the native addon's relay and SIP I/O threads), so they are
 * told apart by what they do: the busiest one while media flows is the relay thread (the only
 * one whose work grows with the packets), the SIP I/O thread is busy only during call set-up.
 */
function cpuDelta(pid, a, b) {
  const sums = { total: 0, user: 0, system: 0, main: 0, mainUser: 0, mainSystem: 0, others: 0, mainWaitMs: 0, mainSlices: 0 };
  const others = [];
  for (const [tid, t1] of b) {
    const t0 = a.get(tid) ?? { utime: 0, stime: 0, waitNs: 0, slices: 0 };
    const u = (t1.utime - t0.utime) / CLK_TCK;
    const s = (t1.stime - t0.stime) / CLK_TCK;
    const waitMs = round((t1.waitNs - t0.waitNs) / 1e6, 1);
    const slices = t1.slices - t0.slices;
    sums.total += u + s;
    sums.user += u;
    sums.system += s;
    if (tid === pid) [sums.main, sums.mainUser, sums.mainSystem, sums.mainWaitMs, sums.mainSlices] = [u + s, u, s, waitMs, slices];
    else {
      sums.others += u + s;
      if (u + s > 0) others.push({ tid, comm: t1.comm, s: round(u + s, 2), userS: round(u, 2), systemS: round(s, 2), runQueueWaitMs: waitMs, slices });
    }
  }
  others.sort((x, y) => y.s - x.s);
  return { ...sums, busiestOther: others[0] ?? null, otherThreads: others };
}

// ---- the RTP helper -----------------------------------------------------------------------------

class Rtp {
  constructor(bin) {
    this.child = spawn(bin, [], { stdio: ['pipe', 'pipe', 'inherit'] });
    children.add(this.child);
    this.lines = [];
    this.waiters = [];
    createInterface({ input: this.child.stdout }).on('line', (l) => {
      const w = this.waiters.shift();
      if (w) w(l);
      else this.lines.push(l);
    });
  }
  cmd(line) {
    this.child.stdin.write(line + '\n');
    return new Promise((resolveLine, reject) => {
      const t = setTimeout(() => reject(new Error(`ivr-rtp: no answer to ${line}`)), 10000);
      this.waiters.push((l) => {
        clearTimeout(t);
        if (l.startsWith('error')) reject(new Error(`ivr-rtp: ${l} (${line})`));
        else resolveLine(l);
      });
    });
  }
  async open(k) {
    const ports = (await this.cmd(`open ${k}`)).split(' ').slice(1).map(Number);
    if (ports.length !== k) throw new Error('ivr-rtp: wrong port count');
    return ports;
  }
  async report() {
    const line = await this.cmd('stop');
    const r = {};
    for (const kv of line.split(' ').slice(1)) {
      const [k, v] = kv.split('=');
      r[k] = Number(v);
    }
    return r;
  }
  async quit() {
    this.child.stdin.write('quit\n');
    await new Promise((r) => (this.child.exitCode !== null ? r() : this.child.once('exit', r)));
    children.delete(this.child);
  }
}

// ---- SIP (the user agent is in lib/sip-ua.mjs) ---------------------------------------------------

/** One call from extension `user` to `number`; the Call-IDs start with ivrb- (failures are grouped by their text without it). */
const placeCall = (sip, user, number, rtpPort) => placeCallAs(sip, user, number, rtpPort, { callIdPrefix: 'ivrb', userAgent: 'ivr-calls-bench' });

const registerCallee = (sip) => register(sip, CALLEE, `pw${CALLEE}`, { callIdPrefix: 'ivrb' });

// ---- one phase: N calls up, warm-up, window, hang-up ---------------------------------------------

async function phase(kind, n, ctx) {
  const { server, bin, sips, callee } = ctx;
  const rtp = new Rtp(bin);
  const ports = await rtp.open(kind === 'ivr' ? n : 2 * n);
  const sipOf = (i) => sips[i % sips.length];
  const failures = new Map();
  const fail = (why) => failures.set(why, (failures.get(why) ?? 0) + 1);

  // The callee side (reference): every INVITE to 7000 is answered 200 at once with the B phone's
  // socket, found from the caller's number in From; its relay port is where the B phone talks to.
  const talkB = [];
  if (kind === 'ref') {
    callee.onRequest = (msg) => {
      if (msg.method !== 'INVITE') return null;
      const caller = Number(/sip:(\d+)@/.exec(msg.get('from'))?.[1]) - FIRST_CALLER;
      const relayPort = sdpAudioPort(msg.body);
      if (!(caller >= 0 && caller < n) || !relayPort) return response(msg, 488, 'Not Acceptable Here', [], '', 'x');
      talkB.push(rtp.cmd(`talk ${n + caller} ${relayPort}`));
      const body = offerSdp(ports[n + caller]).replace(' 0 8 101', ' 0').replace(/a=rtpmap:8.*\r\n|a=rtpmap:101.*\r\n|a=fmtp:101.*\r\n/g, '');
      return response(msg, 200, 'OK', [`Contact: <sip:${CALLEE}@${LOOPBACK}:${callee.port}>`], body, `b${caller}`);
    };
  }

  const t0 = Date.now();
  const results = await pool(n, IN_FLIGHT, async (i) => {
    const d = await placeCall(sipOf(i), String(FIRST_CALLER + i), kind === 'ivr' ? IVR_NUMBER : CALLEE, ports[i]);
    if (kind === 'ivr') await rtp.cmd(`kick ${i} ${d.remotePort}`);
    else await rtp.cmd(`talk ${i} ${d.remotePort}`);
    return d;
  });
  const setupMs = Date.now() - t0;
  await Promise.all(talkB);
  const dialogs = [];
  for (const r of results) {
    if (r.ok) dialogs.push(r.value);
    else fail(r.error.status ? `${r.error.status}` : r.error.message.replace(/ivrb-\S+/, 'CALL'));
  }
  const byesBefore = sips.reduce((s, x) => s + x.serverByes, 0) + (callee?.serverByes ?? 0);

  await sleep(warmupS * 1000);
  await rtp.cmd('start');
  const before = threadTimes(server.pid);
  const self0 = process.cpuUsage();
  const w0 = performance.now();
  const fromUs = monoUs();
  await sleep(windowS * 1000);
  const after = threadTimes(server.pid);
  if (kind === 'ivr') ivrWindows.push({ n, fromUs, toUs: monoUs() });
  const elapsedS = (performance.now() - w0) / 1000;
  const self = process.cpuUsage(self0);
  const rep = await rtp.report();
  const serverByes = sips.reduce((s, x) => s + x.serverByes, 0) + (callee?.serverByes ?? 0) - byesBefore;

  // Hang up: every BYE must get its 200.
  const byes = await pool(dialogs.length, IN_FLIGHT, (i) => hangUp(dialogs[i]));
  const byeOk = byes.filter((r) => r.ok && r.value === 200).length;
  for (const r of byes) if (!(r.ok && r.value === 200)) fail(`BYE ${r.ok ? r.value : r.error.message.replace(/ivrb-\S+/, 'CALL')}`);
  if (kind === 'ref') callee.onRequest = null;
  await rtp.quit();

  const cpu = cpuDelta(server.pid, before, after);
  const core = cpu.total / elapsedS;
  // Packets the server sent (IVR: the endpoints' prompt packets, as the callers received them)
  // or relayed (reference: both directions), in the window.
  const packets = rep.packets;
  const r = {
    kind,
    n,
    answered: dialogs.length,
    setupMs,
    windowS: round(elapsedS, 2),
    serverCpu: {
      coreShare: round(core, 4),
      perCallCoreShare: round(core / Math.max(1, dialogs.length), 6),
      usPerPacket: round(packets ? (cpu.total * 1e6) / packets : 0, 2),
      userS: round(cpu.user, 2),
      systemS: round(cpu.system, 2),
      mainThreadS: round(cpu.main, 2),
      mainThreadUserS: round(cpu.mainUser, 2),
      mainThreadSystemS: round(cpu.mainSystem, 2),
      // Time the main thread was ready to run but waited for a CPU (other threads, other processes).
      mainThreadRunQueueWaitMs: cpu.mainWaitMs,
      mainThreadSlices: cpu.mainSlices,
      busiestOtherThreadS: round(cpu.busiestOther?.s ?? 0, 2),
      restS: round(cpu.others - (cpu.busiestOther?.s ?? 0), 2),
      otherThreads: cpu.otherThreads,
    },
    packets,
    packetsPerS: round(packets / elapsedS, 0),
    expectedPackets: Math.round(((kind === 'ivr' ? 1 : 2) * dialogs.length * elapsedS * 1000) / 20),
    streams: rep.streams,
    // Packets with audio in them (not comfort silence): in the IVR phase, the prompt playing.
    voicedPackets: rep.voiced,
    lost: rep.lost,
    dup: rep.dup,
    intervalMs: { p50: rep.ivl_p50, p90: rep.ivl_p90, p99: rep.ivl_p99, p999: rep.ivl_p999, max: rep.ivl_max, min: rep.ivl_min },
    deviationMs: { p99: rep.dev_p99, p999: rep.dev_p999 },
    intervalsOver25ms: rep.over25,
    intervalsOver40ms: rep.over40,
    packetsPerStream: { min: rep.min_stream, max: rep.max_stream },
    // Packets more than 25 ms after their stream's previous one, grouped into moments (within 5 ms).
    lateMoments: rep.late_moments,
    lateBiggestMoment: rep.late_biggest,
    receiverRxDrops: rep.rx_errors,
    receiverNoKernelTimestamp: rep.ts_fallback,
    receiverCpuCoreShare: round(rep.cpu_ms / 1000 / elapsedS, 4),
    scriptCpuCoreShare: round((self.user + self.system) / 1e6 / elapsedS, 4),
    serverByesDuringWindow: serverByes,
    byeOk,
    failures: Object.fromEntries(failures),
  };
  console.log(
    `${kind} N=${n}: answered ${r.answered}/${n} (set-up ${(setupMs / 1000).toFixed(1)} s) | server CPU ${(core * 100).toFixed(1)}% of a core, ` +
      `${((core / Math.max(1, r.answered)) * 100).toFixed(3)}%/call, ${r.serverCpu.usPerPacket} us/packet ` +
      `(main thread ${r.serverCpu.mainThreadS} s, busiest other (relay) ${r.serverCpu.busiestOtherThreadS} s, rest ${r.serverCpu.restS} s of ${r.windowS} s) | ` +
      `${r.packetsPerS} packets/s (${packets}/${r.expectedPackets}, lost ${r.lost}, audio ${((100 * r.voicedPackets) / Math.max(1, packets)).toFixed(1)}%) | interval p50 ${r.intervalMs.p50} p99 ${r.intervalMs.p99} max ${r.intervalMs.max} ms, ` +
      `|dev| p99 ${r.deviationMs.p99} ms, late >25 ms ${r.intervalsOver25ms} in ${r.lateMoments} moments (biggest ${r.lateBiggestMoment}) | ` +
      `main thread run-queue wait ${cpu.mainWaitMs} ms in ${cpu.mainSlices} runs | receiver ${(r.receiverCpuCoreShare * 100).toFixed(1)}% (drops ${r.receiverRxDrops}) | BYE 200 ${byeOk}/${dialogs.length}` +
      (failures.size ? ` | failures ${JSON.stringify(r.failures)}` : ''),
  );
  return r;
}

async function idleCpu(server, seconds) {
  const before = threadTimes(server.pid);
  await sleep(seconds * 1000);
  const cpu = cpuDelta(server.pid, before, threadTimes(server.pid));
  return round(cpu.total / seconds, 4);
}

// ---- the cpu profile summary -------------------------------------------------------------------

/**
 * Self time per function of the server's main thread, counted only in the IVR measuring windows
 * (the profile's timestamps and this process's hrtime are both CLOCK_MONOTONIC), so set-up and
 * hang-up do not blur the steady state.
 */
function summariseProfiles(dir, top = 25) {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  const out = [];
  const inWindow = (t) => ivrWindows.some((w) => t >= w.fromUs && t < w.toUs);
  for (const f of files) {
    const p = JSON.parse(readFileSync(join(dir, f), 'utf8'));
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const selfUs = new Map();
    let t = p.startTime;
    for (let i = 0; i < p.samples.length; i++) {
      t += p.timeDeltas[i];
      if (!inWindow(t)) continue;
      const dt = p.timeDeltas[i + 1] ?? 0; // the time until the next sample is this sample's
      selfUs.set(p.samples[i], (selfUs.get(p.samples[i]) ?? 0) + dt);
    }
    const agg = new Map();
    let total = 0;
    let idle = 0;
    for (const [id, us] of selfUs) {
      const cf = byId.get(id).callFrame;
      const name = cf.functionName || '(anonymous)';
      if (name === '(idle)') {
        idle += us;
        continue;
      }
      total += us;
      const where = cf.url ? `${cf.url.replace(/^file:\/\/.*?\/(build|node_modules)\//, '$1/')}:${cf.lineNumber + 1}` : '';
      const key = `${name} ${where}`.trim();
      agg.set(key, (agg.get(key) ?? 0) + us);
    }
    const rows = [...agg].sort((a, b) => b[1] - a[1]).slice(0, top);
    console.log(`\nprofile ${f}, IVR windows only (${ivrWindows.map((w) => `N=${w.n}`).join(', ')}): main thread ${(total / 1e6).toFixed(2)} s busy, ${(idle / 1e6).toFixed(2)} s idle; top self time:`);
    for (const [k, us] of rows) console.log(`  ${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1e3).toFixed(0).padStart(7)} ms  ${k}`);
    out.push({ file: join(dir, f), windows: ivrWindows.map((w) => w.n), busyS: round(total / 1e6), idleS: round(idle / 1e6), top: rows.map(([k, us]) => ({ fn: k, share: round(us / total, 4), ms: round(us / 1e3, 0) })) });
  }
  return out;
}

// ---- main -----------------------------------------------------------------------------------------

async function main() {
  const loadBefore = uptime();
  console.log(`# ${new Date().toISOString()} ${process.version}, ${execFileSync('nproc').toString().trim()} cores; before: ${loadBefore}`);
  console.log(`# N=${counts.join(',')} window ${windowS} s, warm-up ${warmupS} s, prompt ${promptS} s, media.relay ${relayMode}, server nice ${serverNice}, reference ${withRef ? 'on' : 'off'}`);
  const bin = prepare();
  const server = await startServer();
  console.log(`# server pid ${server.pid} on ${LOOPBACK}:${server.port}, folder ${work}`);
  const results = [];
  let stop = null;
  const sips = [];
  let callee = null;
  try {
    for (let k = 0; k < Math.min(SIP_SOCKETS_MAX, Math.ceil(maxN / 50)); k++) sips.push(await SipSocket.open(server.port));
    // A 200 to INVITE that comes again (our ACK lost): ACK it again.
    for (const s of sips) s.onLateOk = (msg) => s.send(inDialog({ sip: s, user: /sip:(\d+)@/.exec(msg.get('from'))?.[1], callId: msg.get('call-id'), fromTag: tagOf(msg.get('from')), toTag: tagOf(msg.get('to')), remoteTarget: uriOf(msg.get('contact')), number: /sip:([^@]+)@/.exec(msg.get('to'))?.[1] }, 'ACK', msg.cseqNum));
    if (withRef) {
      callee = await SipSocket.open(server.port);
      await registerCallee(callee);
    }
    // One call primes the prompt cache (read and converted to G.711 once).
    {
      const rtp = new Rtp(bin);
      const [port] = await rtp.open(1);
      const d = await placeCall(sips[0], String(FIRST_CALLER), IVR_NUMBER, port);
      await sleep(1000);
      if ((await hangUp(d)) !== 200) throw new Error('priming call: BYE not answered 200');
      await rtp.quit();
    }
    const idle = await idleCpu(server, 3);
    console.log(`# server idle: ${(idle * 100).toFixed(2)}% of a core`);
    const ctx = { server, bin, sips, callee };
    for (const n of counts) {
      const ivr = await phase('ivr', n, ctx);
      const ref = withRef ? await phase('ref', n, ctx) : null;
      if (ref) {
        const ratio = ref.serverCpu.usPerPacket ? ivr.serverCpu.usPerPacket / ref.serverCpu.usPerPacket : 0;
        console.log(`N=${n}: server CPU per IVR packet sent ${ivr.serverCpu.usPerPacket} us vs per relayed packet ${ref.serverCpu.usPerPacket} us (x${ratio.toFixed(2)})`);
      }
      results.push({ n, ivr, ref });
      await sleep(1000); // the relay's released pairs go quiet before the next phase
    }
  } finally {
    for (const s of sips) s.close();
    callee?.close();
    stop = await stopServer(server);
  }
  console.log(`# server stop: ${stop.exited ? `exited with ${stop.code ?? stop.signal} after ${stop.ms} ms` : 'did NOT exit within 15 s (killed)'}`);
  const loadAfter = uptime();
  console.log(`# after: ${loadAfter}`);
  let profiles;
  if (profDir) profiles = summariseProfiles(profDir);
  const at400 = results.find((r) => r.n === 400);
  let target;
  if (at400) {
    const dev = at400.ivr.deviationMs.p99;
    const core = at400.ivr.serverCpu.coreShare;
    target = { deviationP99Ms: dev, coreShare: core, intervalOk: dev < 5, cpuOk: core < 1 / 3, holds: dev < 5 && core < 1 / 3 };
    console.log(`target at N=400 (|interval-20ms| p99 < 5 ms, server CPU < 33% of a core): |dev| p99 ${dev} ms ${dev < 5 ? 'ok' : 'MISSED'}, CPU ${(core * 100).toFixed(1)}% ${core < 1 / 3 ? 'ok' : 'MISSED'}`);
  }
  const summary = { bench: 'ivr-calls', date: new Date().toISOString(), node: process.version, mediaRelay: relayMode, serverNice, windowS, warmupS, promptS, loadBefore, loadAfter, serverStop: stop, results, target, profiles, folder: keep ? work : undefined, wallS: round((Date.now() - startedAt) / 1000, 1) };
  console.log(JSON.stringify(summary, null, 2));
  if (!keep) rmSync(work, { recursive: true, force: true });
  const allUp = results.every((r) => r.ivr.answered === r.n && (!r.ref || r.ref.answered === r.n));
  process.exitCode = stop.exited && stop.code === 0 && allUp ? 0 : 1;
}

main().catch((err) => {
  console.error(`ivr-calls: ${err.stack ?? err}`);
  if (work) console.error(`ivr-calls: files kept in ${work}`);
  for (const c of children) c.kill('SIGKILL');
  process.exit(1);
});
