#!/usr/bin/env node
// Where the CPU of one call goes, by part of the server: runs scripts/bench/call-inproc.mjs under
// V8's sampling profiler and charges every sample to the part of the code it was taken in (a
// sample in Node's or V8's own code, e.g. a write() or a hash, goes to the nearest caller of the
// project's), then scales the shares to the µs per call that call-inproc.mjs measured. The
// scripted phones' own work is listed apart and left out of the server's total.
//
//   node scripts/bench/call-split.mjs [CALLS] [ROUNDS]         # relay off
//   MEDIA_RELAY=always node scripts/bench/call-split.mjs        # a relay session for every call
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const calls = process.argv[2] ?? '20000';
const rounds = process.argv[3] ?? '3';
const dir = mkdtempSync(join(tmpdir(), 'mss-split-'));
const run = spawnSync(
  process.execPath,
  ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--cpu-prof-interval', '100', 'scripts/bench/call-inproc.mjs', calls, rounds],
  { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
);
process.stdout.write(run.stdout);
const best = /best: user ([\d.]+) sys ([\d.]+)/.exec(run.stdout);
if (run.status !== 0 || !best) {
  console.error('call-inproc.mjs failed');
  process.exit(1);
}
const perCall = Number(best[1]) + Number(best[2]);

/** The part a frame's script belongs to, or null for code that is not ours (Node, V8). */
const PARTS = [
  [/bench\/call-inproc\.mjs/, 'scripted phones (not the server)'],
  [/lib\/sip\/(parser|uri)\.js|lib\/sip\/headers\//, 'SIP parsing'],
  [/lib\/sip\/message\.js/, 'SIP messages: building, serializing'],
  [/lib\/sip\/transaction\//, 'transactions'],
  [/lib\/sip\/(stack|transport\/)|lib\/sip\/[^/]*udp/, 'transport'],
  [/lib\/sip\/digest\.js|lib\/pbx\/authenticator\.js/, 'digest authentication'],
  [/lib\/sip\/dialog\.js|lib\/pbx\/(call|calls|router|reliable-provisionals|bridge|media-path)\.js|lib\/pbx\/legs\//, 'call logic and dialogs'],
  [/lib\/media\/sdp\.js|node_modules\/sdp-transform/, 'SDP parse and rewrite'],
  [/lib\/media\//, 'relay sessions and ports'],
  [/lib\/cdr\/|lib\/pbx\/call-recorder\.js|node_modules\/csv-stringify/, 'CDR line'],
  [/lib\/pbx\/registrar\.js|lib\/store\//, 'registrar and store'],
  [/lib\/|cli\//, 'other server code'],
];

function partOf(url) {
  for (const [re, name] of PARTS) if (re.test(url)) return name;
  return null;
}

const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
const profile = JSON.parse(readFileSync(join(dir, file), 'utf8'));
rmSync(dir, { recursive: true, force: true });
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const charged = new Map();
let total = 0;
for (const id of profile.samples) {
  const node = byId.get(id);
  const name = node.callFrame.functionName;
  if (name === '(idle)' || name === '(program)' || name === '(root)') continue;
  let part = name === '(garbage collector)' ? 'garbage collection' : null;
  for (let x = id; part === null && x !== undefined; x = parent.get(x)) part = partOf(byId.get(x).callFrame.url);
  part ??= 'Node and V8 (no caller of ours)';
  charged.set(part, (charged.get(part) ?? 0) + 1);
  total++;
}
const phones = charged.get(PARTS[0][1]) ?? 0;
const server = total - phones;
// call-inproc's figure is process CPU: the phones' share of the samples comes off it.
const serverPerCall = (perCall * server) / total;
console.log(`\n| part | share of the server's samples | µs per call |`);
console.log('| --- | ---: | ---: |');
for (const [part, n] of [...charged.entries()].sort((a, b) => b[1] - a[1])) {
  if (part === PARTS[0][1]) continue;
  console.log(`| ${part} | ${((100 * n) / server).toFixed(1)}% | ${((serverPerCall * n) / server).toFixed(1)} |`);
}
console.log(`| **server, all parts** | 100% | **${serverPerCall.toFixed(1)}** |`);
console.log(`(scripted phones: ${((100 * phones) / total).toFixed(1)}% of all samples, ${((perCall * phones) / total).toFixed(1)} µs per call, left out)`);
