import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { symlinkSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cdrRows } from '../helpers/cdr-files.js';
import { waitFor } from '../helpers/keep-alive.js';
import { audioSdp, Phone } from '../helpers/phone.js';
import { cli, hasSipp, REPO, SHARED, startServe, tempDir } from './harness.js';
import { openSqliteStore } from '../../lib/store/sqlite.js';
import { mariaDbSkipReason } from '../helpers/mariadb-server.js';

const noKamailio = spawnSync('kamailio', ['-v'], { encoding: 'utf8' }).error !== undefined && 'kamailio is not installed (Debian: apt-get install kamailio)';
const noSipp = !hasSipp() && 'sipp is not installed (Debian: apt-get install sip-tester)';
/** The scripts need all three (.ci/run installs them). */
const clusterSkip = mariaDbSkipReason || noKamailio || noSipp;

/**
 * Runs a scripts/cluster script to its end (each bounds its own waits; `limitMs` is the last
 * resort) and returns its exit code, its output and the JSON of its `RESULT` line.
 */
async function runScript<T>(script: string, env: Record<string, string>, limitMs: number): Promise<{ code: number | null; out: string; result: T }> {
  const child = spawn('bash', [join(REPO, 'scripts/cluster', script)], { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const code = await new Promise<number | null>((resolve) => {
    const t = setTimeout(() => child.kill('SIGTERM'), limitMs);
    child.on('exit', (c) => {
      clearTimeout(t);
      resolve(c);
    });
  });
  const line = /^RESULT (\{.*\})$/m.exec(out);
  assert.ok(line, `${script} printed no RESULT line:\n${out.slice(-4000)}`);
  return { code, out, result: JSON.parse(line[1]!) as T };
}

/** A node's data folder of its own (CDR files, admin token) whose store file is the shared one. */
function nodeDir(work: string, name: string, sharedDir: string): string {
  const dir = join(work, name);
  mkdirSync(dir);
  symlinkSync(join(sharedDir, 'minisipserver.db'), join(dir, 'minisipserver.db'));
  return dir;
}

test('registrar.shared: two serve nodes on one store call each other\'s phones, each writing its own CDRs', async () => {
  const work = tempDir('mss-e2e-cluster-shared-');
  const shared = join(work, 'store');
  const users = Array.from({ length: 4 }, (_, i) => String(1400 + i));
  writeFileSync(join(work, 'users.txt'), users.map((u) => `${u}:pw${u}`).join('\n') + '\n');
  assert.equal(cli(['ext', 'import', join(work, 'users.txt'), '--data-dir', shared]).code, 0);
  const config = join(work, 'config.yaml');
  writeFileSync(config, 'sip:\n  transports: [udp]\nregistrar:\n  shared: true\nauth:\n  algorithms: [MD5]\n');
  const a = await startServe(nodeDir(work, 'a', shared), ['--config', config], { relayPorts: 500 });
  const b = await startServe(nodeDir(work, 'b', shared), ['--config', config], { relayPorts: 500 });
  const phones: Phone[] = [];
  try {
    // 1400 and 1401 register at node a, 1402 and 1403 at node b.
    for (const [i, u] of users.entries()) {
      const p = await Phone.open(u, `pw${u}`, i < 2 ? a.port : b.port);
      phones.push(p);
      await p.register();
    }
    const store = openSqliteStore(shared);
    try {
      await waitFor(() => store.loadBindings(Date.now()).length >= users.length, 'every binding in the shared store');
    } finally {
      store.close();
    }
    // Each call is made at the caller's node to a phone registered at the other one.
    const ids: Array<{ callId: string; node: string }> = [];
    for (const [from, to] of [[0, 2], [3, 1]] as const) {
      const call = await phones[from]!.invite(users[to]!, audioSdp(46400 + from * 10));
      const inc = await phones[to]!.incoming();
      inc.ring();
      inc.answer(audioSdp(46500 + to * 10));
      assert.equal((await call.final()).status, 200, `${users[from]} -> ${users[to]} across the nodes`);
      await inc.waitAck();
      assert.equal((await call.bye()).status, 200);
      await phones[to]!.answerInDialog(inc.dialog, 'BYE');
      ids.push({ callId: call.dialog.callId, node: from < 2 ? a.dataDir : b.dataDir });
    }
    for (const { callId, node } of ids) {
      await waitFor(() => cdrRows(node).some((r) => r.call_id === callId), `the CDR line of ${callId} at its node`);
      assert.equal(cdrRows(node).find((r) => r.call_id === callId)?.status, '200');
    }
    assert.equal(cdrRows(a.dataDir).length, 1, 'node a wrote the call it handled, and only it');
    assert.equal(cdrRows(b.dataDir).length, 1, 'node b wrote the call it handled, and only it');
  } finally {
    for (const p of phones) p.close();
    assert.equal(await a.stop(), 0);
    assert.equal(await b.stop(), 0);
  }
});

interface DemoResult {
  ok: boolean;
  store: string;
  registered: number;
  phones: number;
  calls: number;
  callsOk: number;
  crossNode: number;
  cdrCalls: number;
  recoveredMs: number | null;
  reregistered: number;
  movedToSurvivor: number;
  endedBeforeKill: number;
  mustHaveCdr: number;
  throughProxy: number;
  failures: string[];
}

test('scripts/cluster/demo.sh, small, on MariaDB: two nodes behind Kamailio, one SIGKILLed under load, nothing lost but its calls in progress', { skip: clusterSkip, timeout: 120_000 }, async () => {
  const work = tempDir('mss-e2e-cluster-demo-');
  const env = { PHONES: '20', CALLS: '10', LOAD_CALLS: '60', RATE: '10', HOLD_MS: '500', WORK: join(work, 'demo'), LAB_SIPP: join(SHARED, 'lab/sipp') };
  const { code, out, result: r } = await runScript<DemoResult>('demo.sh', env, 110_000);
  assert.deepEqual(r.failures, [], out.slice(-4000));
  assert.equal(code, 0, out.slice(-4000));
  assert.equal(r.ok, true);
  assert.equal(r.store, 'mariadb');
  assert.equal(r.registered, 20);
  assert.equal(r.callsOk, r.calls);
  assert.equal(r.cdrCalls, r.callsOk, 'every call before the kill has its CDR line');
  assert.ok(r.crossNode > 0, 'some calls went to a phone registered through the other node');
  assert.ok(r.throughProxy >= r.callsOk, `every callee leg went through Kamailio by the Path (${r.throughProxy} of ${r.callsOk})`);
  assert.ok(r.recoveredMs !== null && r.recoveredMs <= 10_000, `new calls within 10 s of the kill (${r.recoveredMs} ms)`);
  assert.equal(r.reregistered, 20);
  assert.equal(r.movedToSurvivor, 20, 'every phone re-registered through the surviving node');
  assert.ok(r.endedBeforeKill >= r.mustHaveCdr, 'every call that ended before the kill has its CDR line');
});

interface OutageResult {
  ok: boolean;
  outageMs: number;
  ok200: number;
  unavailableWhileAway: number;
  okWhileAway: number;
  noRetryAfter: number;
  timeouts: number;
  other: number;
  recoveredMs: number | null;
  nodes: Record<string, { unavailable: number; available: number }>;
  registersFromPhones: number;
  registersToNodes: number;
  failures: string[];
}

test('scripts/cluster/outage.sh, short: MariaDB stopped under REGISTER load; 503 with Retry-After meanwhile, 200 again without a restart', { skip: clusterSkip, timeout: 120_000 }, async () => {
  const work = tempDir('mss-e2e-cluster-outage-');
  const env = { PHONES: '40', RATE: '20', BEFORE_S: '3', OUTAGE_S: '5', AFTER_S: '9', RECOVER_S: '8', WORK: join(work, 'outage'), LAB_SIPP: join(SHARED, 'lab/sipp') };
  const { code, out, result: r } = await runScript<OutageResult>('outage.sh', env, 110_000);
  assert.deepEqual(r.failures, [], out.slice(-4000));
  assert.equal(code, 0, out.slice(-4000));
  assert.ok(r.outageMs >= 5000, `the database was away ${r.outageMs} ms`);
  assert.ok(r.unavailableWhileAway > 0, '503 while the database was away');
  assert.equal(r.okWhileAway, 0, 'no 200 while the database was away');
  assert.equal(r.noRetryAfter, 0, 'every 503 had Retry-After');
  assert.equal(r.timeouts, 0);
  assert.ok(r.recoveredMs !== null && r.recoveredMs <= 8000, `200 again within 8 s of its return (${r.recoveredMs} ms)`);
  assert.deepEqual(r.nodes, { node1: { unavailable: 1, available: 1 }, node2: { unavailable: 1, available: 1 } }, 'each node reported the outage once and its end once');
  assert.ok(r.registersToNodes <= 2 * r.registersFromPhones, 'Kamailio tried each REGISTER on two nodes at most');
});
