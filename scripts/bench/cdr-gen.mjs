#!/usr/bin/env node
// Writes N realistic CDR rows (default 1,000,000) as one CSV file, deterministic (seeded PRNG):
//   node scripts/bench/cdr-gen.mjs OUT.csv [N]      (CDR_BUILD=build dir, default build/)
import fs from 'node:fs';
import path from 'node:path';

const [out, countArg] = process.argv.slice(2);
if (!out) {
  console.error('usage: cdr-gen.mjs OUT.csv [N]');
  process.exit(2);
}
const count = Number(countArg ?? 1_000_000);
const build = path.resolve(process.env.CDR_BUILD ?? 'build');
const { buildCdrRecord } = await import(path.join(build, 'lib/cdr/record.js'));
const { formatCsvRecord, CSV_HEADER } = await import(path.join(build, 'lib/cdr/csv.js'));
const { mulberry32 } = await import(path.join(build, 'test/helpers/prng.js'));

const rand = mulberry32(2026);
const pick = (list) => list[Math.floor(rand() * list.length)];
const NAMES = ['Alice Martin', 'Bob Dupont', 'Carol', 'Dave O\'Neil', 'Smith, John', 'Zoë Müller', '王伟', 'Reception', 'The "Boss"', ''];
const OUTCOMES = [
  // [weight, status, tag, answered]
  [60, 200, 1, true], [20, 200, 2, true], [7, 486, 9, false], [5, 487, 3, false], [4, 480, 5, false],
  [2, 404, 10, false], [1, 503, 4, false], [1, 200, 12, true],
];
const totalWeight = OUTCOMES.reduce((n, o) => n + o[0], 0);
function outcome() {
  let r = rand() * totalWeight;
  for (const o of OUTCOMES) if ((r -= o[0]) < 0) return o;
  return OUTCOMES[0];
}

const fd = fs.openSync(out, 'w');
let buf = CSV_HEADER + '\n';
let t = Date.UTC(2026, 9, 1);
for (let i = 0; i < count; i++) {
  t += Math.floor(rand() * 5000); // ~one call every 2.5 s
  const caller = String(100 + Math.floor(rand() * 300));
  const external = rand() < 0.3;
  const callee = external ? '0' + String(100000000 + Math.floor(rand() * 899999999)) : String(100 + Math.floor(rand() * 300));
  const [, status, tag, answered] = outcome();
  const answerMs = answered ? t + 1000 + Math.floor(rand() * 20000) : undefined;
  const endMs = answered ? answerMs + Math.floor(rand() * 600_000) : t + Math.floor(rand() * 30000);
  buf += formatCsvRecord(buildCdrRecord({
    callId: `${i.toString(36)}-${Math.floor(rand() * 1e9).toString(36)}@192.0.2.10`,
    caller, callerName: pick(NAMES), callee, dialled: external ? '9' + callee : callee,
    route: external ? pick(['trunk:carrierA', 'trunk:carrierB']) : 'local',
    startMs: t, answerMs, endMs, status, tag, tzOffsetMin: 60,
    callerAddress: `192.0.2.${Math.floor(rand() * 250)}:5060`, calleeAddress: external ? '198.51.100.7:5060' : `192.0.2.${Math.floor(rand() * 250)}:5060`,
    media: rand() < 0.05 ? 'audio+video' : 'audio', codec: pick(['PCMA', 'PCMU', 'G722', 'opus']),
    userAgent: pick(['Yealink SIP-T46U', 'Grandstream GXP2170', 'Linphone/5.2', 'MicroSIP/3.21']), node: 'pbx1',
  }));
  if (buf.length > 1 << 20) {
    fs.writeSync(fd, buf);
    buf = '';
  }
}
fs.writeSync(fd, buf);
fs.closeSync(fd);
