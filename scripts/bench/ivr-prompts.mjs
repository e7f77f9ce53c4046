#!/usr/bin/env node
// IVR prompt streams: N MediaEndpoints (one socket each, the shared pacer) each play a long
// synthesised prompt to sink sockets on 127.0.0.1; a child process receives them, so that the
// figures of this process are the endpoints' alone.
//   npm run build && node scripts/bench/ivr-prompts.mjs [N ...] [--window=20] [--prompt=30] [--warmup=2]
// (N default 100 200 400, each 1..2000; window 1..60 s; prompt 1..120 s, longer than warmup + window)
// Per N, over the window: this process's CPU (process.cpuUsage: total, and per call), the RTP
// send interval as the receiver sees it (inter-arrival per stream; p50/p99/max over all streams,
// and p99 of |interval - 20 ms|), packets lost (sequence gaps), the pacer's skipped slots and
// late wake-ups, and the event loop delay of both processes. "stalls" counts the 50 ms stretches
// in which a quarter of the streams at once saw an interval off by more than 5 ms: the sender or
// the receiver stopped (GC, scheduling, other load on the machine); each stall costs every stream
// two bad intervals, so a few of them decide the p99. One line per N, then a JSON summary.
// Traffic only on 127.0.0.1.
import { fork } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { join, resolve } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

const STREAMS_PER_SINK_SOCKET = 25;
const STALL_BUCKET_MS = 50;
const STALL_DEVIATION_MS = 5;
const LOOPBACK = '127.0.0.1';
const LOOP_MONITOR_MS = 10;

if (process.argv[2] === '--sink') await runSink(Number(process.argv[3]));
else await runBench();

async function runBench() {
  const args = process.argv.slice(2);
  const option = (name, dflt, min, max) => {
    const a = args.find((x) => x.startsWith(`--${name}=`));
    const v = a ? Number(a.split('=')[1]) : dflt;
    if (!(v >= min && v <= max)) throw new Error(`--${name} must be ${min}..${max}`);
    return v;
  };
  const windowS = option('window', 20, 1, 60);
  const warmupS = option('warmup', 2, 0, 30);
  const promptS = option('prompt', 30, 1, 120);
  if (promptS < warmupS + windowS + 1) throw new Error('--prompt must outlast warmup + window');
  const counts = args.filter((a) => !a.startsWith('--')).map(Number);
  if (counts.length === 0) counts.push(100, 200, 400);
  for (const n of counts) if (!(Number.isInteger(n) && n >= 1 && n <= 2000)) throw new Error('N must be 1..2000');

  const build = resolve(process.env.BUILD ?? 'build');
  const load = (m) => import(pathToFileURL(join(build, 'lib/media/endpoint', m)).href);
  const { MediaEndpoint } = await load('endpoint.js');
  const { encodeG711 } = await load('g711.js');
  const { sineSamples, dbm0ToAmplitude } = await load('tones.js');
  const { sharedPacer } = await load('pacer.js');
  const prompt = encodeG711('pcmu', sineSamples([440, 1300], dbm0ToAmplitude(-12), promptS * 8000));

  const results = [];
  for (const n of counts) {
    const sink = fork(new URL(import.meta.url), ['--sink', String(Math.ceil(n / STREAMS_PER_SINK_SOCKET))], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const [{ ports }] = await once(sink, 'message');
    const endpoints = [];
    for (let i = 0; i < n; i++) {
      endpoints.push(await MediaEndpoint.open({ bind: LOOPBACK, codec: 'pcmu', idle: 'none', remote: { address: LOOPBACK, port: ports[i % ports.length] } }));
    }
    const playbacks = endpoints.map((ep) => ep.play(prompt));
    await sleep(warmupS * 1000);

    sink.send('start');
    await once(sink, 'message');
    const pacer = sharedPacer();
    const before = pacer.stats();
    const loopDelay = monitorEventLoopDelay({ resolution: LOOP_MONITOR_MS });
    loopDelay.enable();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await sleep(windowS * 1000);
    const cpu = process.cpuUsage(cpu0);
    const elapsedS = (performance.now() - t0) / 1000;
    loopDelay.disable();
    const after = pacer.stats();
    const skipped = after.skipped - before.skipped;
    const lateWakeups = after.lateWakeups - before.lateWakeups;
    sink.send('report');
    const [report] = await once(sink, 'message');

    const stillPlaying = (await Promise.all(playbacks.map((p) => Promise.race([p.result, Promise.resolve('playing')])))).filter((r) => r === 'playing').length;
    await Promise.all(endpoints.map((ep) => ep.close()));
    sink.kill();
    await once(sink, 'exit');

    const coreShare = (cpu.user + cpu.system) / 1e6 / elapsedS;
    const r = {
      streams: n,
      windowS: round(elapsedS, 2),
      cpuCoreShare: round(coreShare, 4),
      cpuPerCallCoreShare: round(coreShare / n, 6),
      cpuUserS: round(cpu.user / 1e6, 3),
      cpuSystemS: round(cpu.system / 1e6, 3),
      intervalMs: report.interval,
      deviationP99Ms: report.deviationP99,
      packets: report.packets,
      expectedPackets: Math.round((n * elapsedS * 1000) / 20),
      lost: report.lost,
      streamsHeard: report.streams,
      pacerSkippedSlots: skipped,
      pacerLateWakeups: lateWakeups,
      stalls: report.stalls,
      receiverEventLoopDelayMs: report.loopDelayMs,
      // The histogram holds the time between the monitor's 10 ms ticks: the delay is what exceeds 10 ms.
      eventLoopDelayMs: { p50: lateMs(loopDelay.percentile(50)), p99: lateMs(loopDelay.percentile(99)), max: lateMs(loopDelay.max) },
      promptsStillPlaying: stillPlaying,
    };
    results.push(r);
    console.log(
      `N=${n} cpu=${(coreShare * 100).toFixed(1)}% of a core (${((coreShare / n) * 100).toFixed(3)}%/call) ` +
        `interval p50=${r.intervalMs.p50} p99=${r.intervalMs.p99} max=${r.intervalMs.max} ms |dev| p99=${r.deviationP99Ms} ms ` +
        `packets=${r.packets}/${r.expectedPackets} lost=${r.lost} skipped=${skipped} stalls=${report.stalls} (sender wake-ups >= 5 ms late: ${lateWakeups}) ` +
        `loop delay p99: sender ${r.eventLoopDelayMs.p99} ms, receiver ${report.loopDelayMs.p99} ms`,
    );
  }
  console.log(JSON.stringify({ bench: 'ivr-prompts', node: process.version, results }, null, 2));
}

/** The receiving side, in its own process: inter-arrival times per SSRC, sequence gaps. */
async function runSink(socketCount) {
  const streams = new Map();
  let measuring = false;
  let intervals = new Float64Array(1 << 16);
  let count = 0;
  let packets = 0;
  const deviatedIn = new Map();
  const onMessage = (msg) => {
    const now = performance.now();
    if (msg.length < 12) return;
    const ssrc = msg.readUInt32BE(8);
    const seq = msg.readUInt16BE(2);
    const s = streams.get(ssrc);
    if (!s) {
      streams.set(ssrc, { last: now, seq, lost: 0 });
      return;
    }
    if (measuring) {
      packets++;
      s.lost += (seq - s.seq - 1) & 0xffff;
      if (count === intervals.length) {
        const bigger = new Float64Array(intervals.length * 2);
        bigger.set(intervals);
        intervals = bigger;
      }
      intervals[count++] = now - s.last;
      if (Math.abs(now - s.last - 20) > STALL_DEVIATION_MS) {
        const bucket = Math.floor(now / STALL_BUCKET_MS);
        deviatedIn.set(bucket, (deviatedIn.get(bucket) ?? 0) + 1);
      }
    }
    s.last = now;
    s.seq = seq;
  };
  const sockets = [];
  for (let i = 0; i < socketCount; i++) {
    const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 1 << 22 });
    socket.on('message', onMessage);
    socket.bind(0, LOOPBACK);
    await once(socket, 'listening');
    sockets.push(socket);
  }
  const loopDelay = monitorEventLoopDelay({ resolution: LOOP_MONITOR_MS });
  process.on('message', (m) => {
    if (m === 'start') {
      measuring = true;
      loopDelay.enable();
      for (const s of streams.values()) s.lost = 0;
      process.send({ started: true });
    } else if (m === 'report') {
      measuring = false;
      loopDelay.disable();
      const sorted = intervals.subarray(0, count).sort();
      const deviations = Float64Array.from(sorted, (v) => Math.abs(v - 20)).sort();
      let lost = 0;
      for (const s of streams.values()) lost += s.lost;
      const stalls = [...deviatedIn.values()].filter((n) => n >= streams.size / 4).length;
      process.send({
        streams: streams.size,
        stalls,
        packets,
        lost,
        interval: { p50: round(pct(sorted, 50), 2), p99: round(pct(sorted, 99), 2), max: round(sorted[count - 1] ?? 0, 2) },
        deviationP99: round(pct(deviations, 99), 2),
        loopDelayMs: { p50: lateMs(loopDelay.percentile(50)), p99: lateMs(loopDelay.percentile(99)), max: lateMs(loopDelay.max) },
      });
    }
  });
  process.send({ ports: sockets.map((s) => s.address().port) });
}

function lateMs(ns) {
  return round(Math.max(0, ns / 1e6 - LOOP_MONITOR_MS), 2);
}

function pct(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : 0;
}

function round(v, digits) {
  return Number(v.toFixed(digits));
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}
