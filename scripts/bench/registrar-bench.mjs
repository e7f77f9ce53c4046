#!/usr/bin/env node
// In-process cost of a digest REGISTER through the whole server (parse, transaction, auth,
// registrar, store, serialize) without sockets: N registrations of 1000 users, two requests each.
//   node scripts/bench/registrar-bench.mjs [N] [--build DIR]
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
const bi = args.indexOf('--build');
const build = resolve(bi >= 0 ? args[bi + 1] : 'build');
const N = Number(args.find((a, i) => /^\d+$/.test(a) && args[i - 1] !== '--build') ?? 20000);
const load = (p) => import(pathToFileURL(join(build, p)).href);
const { defaultConfig } = await load('lib/config/schema.js');
const { Logger } = await load('lib/log.js');
const { PbxServer } = await load('lib/pbx/server.js');
const { Extensions } = await load('lib/pbx/extensions.js');

const config = defaultConfig();
config.data.dir = mkdtempSync(join(tmpdir(), 'mss-regbench-'));
config.auth.algorithms = ['MD5', 'SHA-256'];
const server = new PbxServer(config, new Logger({ level: 'error', write: () => {} }));
const ext = new Extensions(server.store, config.sip.realm);
for (let u = 1000; u < 2000; u++) ext.add(String(u), { password: `pw${u}` });

let last = null;
server.stack.send = (msg) => { last = msg; };
const src = { transport: 'udp', address: '127.0.0.1', port: 25072 };
const md5 = (s) => createHash('md5').update(s).digest('hex');
const reg = (u, i, cseq, auth) => Buffer.from(
  `REGISTER sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:25072;branch=z9hG4bK-${i}-${cseq}\r\nMax-Forwards: 70\r\n` +
  `From: <sip:${u}@127.0.0.1>;tag=${i}SIPpTag00${i}\r\nTo: <sip:${u}@127.0.0.1>\r\nCall-ID: ${i}-1234@127.0.0.1\r\nCSeq: ${cseq} REGISTER\r\n` +
  `Contact: <sip:${u}@127.0.0.1:25070>\r\n${auth ? `Authorization: ${auth}\r\n` : ''}Expires: 3600\r\nUser-Agent: lab-sipp\r\nContent-Length: 0\r\n\r\n`);

let clientNs = 0n;
let failures = 0;
const t0 = process.hrtime.bigint();
for (let i = 0; i < N; i++) {
  const u = 1000 + (i % 1000);
  server.stack.receive(reg(u, i, 1), src);
  const c0 = process.hrtime.bigint();
  const ch = last.headers.get('www-authenticate');
  const nonce = /nonce="([^"]+)"/.exec(ch)[1];
  const cnonce = randomBytes(4).toString('hex');
  const ha1 = md5(`${u}:minisipserver:pw${u}`);
  const resp = md5(`${ha1}:${nonce}:00000001:${cnonce}:auth:${md5('REGISTER:sip:127.0.0.1:5060')}`);
  const auth = `Digest username="${u}",realm="minisipserver",uri="sip:127.0.0.1:5060",nonce="${nonce}",response="${resp}",algorithm=MD5,cnonce="${cnonce}",qop=auth,nc=00000001`;
  const req2 = reg(u, i, 2, auth);
  clientNs += process.hrtime.bigint() - c0;
  server.stack.receive(req2, src);
  if (last.status !== 200) failures++;
}
const total = Number(process.hrtime.bigint() - t0 - clientNs) / 1e9;
console.log(`${N} registrations (2 REGISTER each) in ${total.toFixed(3)} s of server work: ${Math.round(N / total)} registrations/s, ${(total / N * 1e6).toFixed(1)} µs each; failures ${failures}`);
await server.stop();
