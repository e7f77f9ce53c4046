#!/usr/bin/env node
// CPU per datagram of the two SIP UDP engines (sip.udpEngine), side by side in one run: an echo
// server on 127.0.0.1 (the engine under test, in this process) and a client process sending
// SIP-sized datagrams at a fixed rate and counting the echoes. Prints, per engine and round, the
// main thread's CPU and the whole process's CPU per echoed datagram (the I/O thread included).
//   node scripts/bench/udp-io.mjs [--rate 20000] [--seconds 5] [--rounds 3] [--size 600] [--build DIR]
import { fork } from 'node:child_process';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

if (process.argv[2] === '--client') {
  // Child: sends `count` datagrams to `port` at `rate`/s (in 1 ms slices), counts the echoes.
  const [port, rate, seconds, size] = process.argv.slice(3).map(Number);
  const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
  let echoed = 0;
  s.on('message', () => echoed++);
  s.bind(0, '127.0.0.1', () => {
    const payload = Buffer.alloc(size, 0x41);
    const total = rate * seconds;
    let sent = 0;
    const t0 = Date.now();
    const tick = setInterval(() => {
      const due = Math.min(total, Math.floor(((Date.now() - t0) * rate) / 1000));
      while (sent < due) {
        s.send(payload, port, '127.0.0.1');
        sent++;
      }
      if (sent >= total) {
        clearInterval(tick);
        setTimeout(() => {
          process.send({ sent, echoed });
          s.close();
        }, 500);
      }
    }, 1);
  });
} else {
  const arg = (name, dflt) => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? process.argv[i + 1] : dflt;
  };
  const rate = Number(arg('rate', 20000));
  const seconds = Number(arg('seconds', 5));
  const rounds = Number(arg('rounds', 3));
  const size = Number(arg('size', 600));
  const build = resolve(arg('build', 'build'));
  const { UdpTransport } = await import(pathToFileURL(join(build, 'lib/sip/transport/udp.js')).href);
  const { NativeUdpTransport, nativeUdpAddon } = await import(pathToFileURL(join(build, 'lib/sip/transport/native-udp.js')).href);
  const engines = { node: UdpTransport, ...(nativeUdpAddon() ? { native: NativeUdpTransport } : {}) };
  const ticks = (path) => {
    const f = readFileSync(path, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) * 10; // utime + stime, in ms (USER_HZ 100)
  };
  const mainMs = () => ticks(`/proc/self/task/${process.pid}/stat`);
  const processMs = () => ticks('/proc/self/stat');
  console.log(`echo of ${size}-byte datagrams at ${rate}/s for ${seconds} s, ${rounds} rounds, engines taking turns`);
  console.log('| engine | round | echoed | main thread µs per datagram | whole process µs per datagram |');
  console.log('| --- | --- | --- | --- | --- |');
  for (let r = 1; r <= rounds; r++) {
    for (const [name, Transport] of Object.entries(engines)) {
      let t;
      t = await Transport.open({
        address: '127.0.0.1', port: 0, family: 4, bufferBytes: 4 << 20,
        onMessage: (data, source) => t.send(data, source.address, source.port),
      });
      const child = fork(new URL(import.meta.url).pathname, ['--client', String(t.port), String(rate), String(seconds), String(size)]);
      const m0 = mainMs(), p0 = processMs();
      const result = await new Promise((done) => child.once('message', done));
      const m1 = mainMs(), p1 = processMs();
      await t.close();
      const per = (ms) => ((ms * 1000) / Math.max(1, result.echoed)).toFixed(1);
      console.log(`| ${name} | ${r} | ${result.echoed} of ${result.sent} | ${per(m1 - m0)} | ${per(p1 - p0)} |`);
    }
  }
}
