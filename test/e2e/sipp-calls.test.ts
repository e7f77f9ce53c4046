import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cdrRows } from '../helpers/cdr-files.js';
import { cli, hasSipp, runSippOnFreePort, SHARED, startServe, startSippUas, tempDir } from './harness.js';

const sipp = hasSipp();
const CALLS = 1000;

test(`sipp: ${CALLS} calls uac_call -> server -> uas_call, 0 failures, ${CALLS} CDR lines with callTag and cause`, { skip: !sipp && 'sipp is not installed (apt-get install sip-tester)' }, async (t) => {
  const work = tempDir('mss-e2e-calls-');
  const dataDir = join(work, 'data');
  const users = join(work, 'users');
  const gen = spawnSync('bash', [join(SHARED, 'lab/sipp/gen-users.sh'), users, '200', '1000'], { encoding: 'utf8' });
  assert.equal(gen.status, 0, gen.stderr);
  assert.equal(cli(['ext', 'import', join(users, 'users.txt'), '--data-dir', dataDir]).code, 0);

  // SIPp answers only the first challenge, MD5 only: offer MD5 first.
  const config = join(work, 'config.yaml');
  writeFileSync(config, 'auth:\n  algorithms: [MD5, SHA-256]\nmedia:\n  bind: 127.0.0.1\n');
  const server = await startServe(dataDir, ['--config', config], { relayPorts: 4000 });
  t.after(() => server.stop());

  // The callee side: one SIPp UAS answering every call, its users registered with its address.
  const uasDir = join(work, 'uas');
  mkdirSync(uasDir);
  const uas = await startSippUas(['-sf', join(SHARED, 'lab/sipp/uas_call.xml'), '-timeout', '300', '-trace_stat', '-stf', 'stat.csv', '-fd', '1'], uasDir);
  t.after(() => uas.stop());
  const regDir = join(work, 'reg');
  mkdirSync(regDir);
  const reg = await runSippOnFreePort(
    () => ['-sf', join(SHARED, 'lab/sipp/reg_auth.xml'), '-inf', join(users, 'callees.csv'),
      '-key', 'contact_host', '127.0.0.1', '-key', 'contact_port', String(uas.port), '-key', 'expires', '3600',
      '-m', '100', '-r', '100', '-timeout', '60', `127.0.0.1:${server.port}`],
    regDir,
  );
  assert.equal(reg.successful, 100, reg.out.slice(-2000));

  const uacDir = join(work, 'uac');
  mkdirSync(uacDir);
  const res = await runSippOnFreePort(
    () => ['-sf', join(SHARED, 'lab/sipp/uac_call.xml'), '-inf', join(users, 'calls.csv'),
      '-m', String(CALLS), '-r', '200', '-l', '400', '-d', '200', '-timeout', '120', '-max_recv_loops', '1000', `127.0.0.1:${server.port}`],
    uacDir,
    180_000,
  );
  assert.equal(res.failed, 0, res.out.slice(-3000));
  assert.equal(res.successful, CALLS, res.out.slice(-3000));

  // Every call left one line, written when it ended (caller BYE: callTag 1, cause 16).
  const deadline = Date.now() + 5000;
  let rows: Array<Record<string, string>> = [];
  while (Date.now() < deadline) {
    rows = cdrRows(dataDir);
    if (rows.length >= CALLS) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(rows.length, CALLS);
  assert.ok(rows.every((r) => r.fci === 'callTag=1;cause=16' && r.status === '200' && r.answer_time !== ''), 'every record: caller BYE, cause 16, answered');
  assert.equal(new Set(rows.map((r) => r.call_id)).size, CALLS, 'one line per call');
  assert.doesNotMatch(server.stderr(), /handler_error/);
});
