/**
 * `minisipserver callback send --wait` against a running server, with two SIPp phones registered
 * as 101 and 102: user1 answers and waits, user2 answers, talks two seconds and hangs up. The
 * command's RESPONSE line carries the talk time; both legs are in the records.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { startTestServer, type TestServer } from '../../helpers/server.js';
import { Phone } from '../../helpers/phone.js';
import { keepAlive, waitFor } from '../../helpers/keep-alive.js';
import { cdrRows } from '../../helpers/cdr-files.js';
import { freeUdpPort, hasSipp, REPO, SHARED, startSippUas, tempDir, type SippUas } from '../../e2e/harness.js';

const skip = !hasSipp() && 'sipp is not installed (apt-get install sip-tester)';
const MAIN = resolve(REPO, 'build/cli/main.js');
const TALK_MS = 2000;

let srv: TestServer;
const cleanups: Array<() => unknown> = [];

before(async () => {
  srv = await startTestServer({ users: [['101', 'pw101'], ['102', 'pw102']] });
});

after(async () => {
  for (const c of cleanups.reverse()) await c();
  await srv.stop();
});

async function sippPhone(number: string, scenario: string, extra: string[]): Promise<SippUas> {
  const uas = await startSippUas(['-sf', scenario, '-mp', String(await freeUdpPort()), '-timeout', '60', '-m', '1', ...extra], tempDir(`mss-cb-sipp-${number}-`));
  cleanups.push(() => uas.stop());
  const registrar = await Phone.open(number, `pw${number}`, srv.port);
  cleanups.push(() => registrar.close());
  await registrar.register(600, `<sip:${number}@127.0.0.1:${uas.port}>`);
  return uas;
}

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return keepAlive(new Promise((res) => child.once('exit', (code) => res({ code, stdout, stderr }))), 'callback send --wait', 30_000);
}

test('callback send --wait: two SIPp phones are bridged, user2 hangs up after 2 s, the RESPONSE says so', { skip }, async () => {
  await sippPhone('101', join(SHARED, 'lab/sipp/uas_call.xml'), []);
  await sippPhone('102', resolve(REPO, 'test/fixtures/sipp/uas_hangup.xml'), ['-d', String(TALK_MS)]);
  const id = `sipp-${process.pid}`;
  const r = await run(['callback', 'send', '--user1', '101', '--user2', '102', '--id', id, '--server', `127.0.0.1:${srv.server.callback.port}`, '--wait', '--json']);
  assert.equal(r.code, 0, `exit 0 (bridged)\n${r.stdout}\n${r.stderr}`);
  const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const ack = events.find((e) => e.event === 'ack');
  const response = events.find((e) => e.event === 'response');
  assert.equal(ack?.result, 0);
  assert.equal(response?.result, 0, 'bridged');
  assert.equal(response?.cause, 16);
  assert.ok(Math.abs(Number(response?.duration) - TALK_MS / 1000) <= 1, `talk time ${String(response?.duration)} s, user2 talked ${TALK_MS / 1000} s`);
  await waitFor(() => cdrRows(srv.dataDir).filter((row) => row.route === `callback:${id}` && row.answer_time !== '').length === 2, 'both answered legs in the records');
  for (const row of cdrRows(srv.dataDir).filter((x) => x.route === `callback:${id}`)) assert.match(row.fci, /callTag=2;cause=16/, 'ended by user2');
});
