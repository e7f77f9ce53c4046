import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, hasSipp, runSippOnFreePort, SHARED, startServe, tempDir } from './harness.js';

const sipp = hasSipp();

test('sipp: 500 users imported with `ext import` register with digest auth; wrong passwords are all refused', { skip: !sipp && 'sipp is not installed (apt-get install sip-tester)' }, async (t) => {
  const work = tempDir('mss-e2e-reg-');
  const dataDir = join(work, 'data');
  const users = join(work, 'users');
  const gen = spawnSync('bash', [join(SHARED, 'lab/sipp/gen-users.sh'), users, '500', '1000'], { encoding: 'utf8' });
  assert.equal(gen.status, 0, gen.stderr);

  const imp = cli(['ext', 'import', join(users, 'users.txt'), '--data-dir', dataDir]);
  assert.equal(imp.code, 0, imp.stderr);
  assert.match(imp.stdout, /500/);

  // SIPp answers only the first challenge and only knows MD5: offer MD5 first.
  const config = join(work, 'config.yaml');
  writeFileSync(config, 'auth:\n  algorithms: [MD5, SHA-256]\n');
  const server = await startServe(dataDir, ['--config', config]);
  t.after(() => server.stop());
  const scenario = join(SHARED, 'lab/sipp/reg_auth.xml');
  const common = (localPort: number) => ['-sf', scenario, '-key', 'contact_host', '127.0.0.1', '-key', 'contact_port', String(localPort),
    '-key', 'expires', '3600', '-m', '500', '-r', '250', '-timeout', '60', '-max_recv_loops', '1000', `127.0.0.1:${server.port}`];

  const good = await runSippOnFreePort((port) => [...common(port), '-inf', join(users, 'users.csv')], work);
  assert.equal(good.successful, 500, good.out.slice(-2000));
  assert.equal(good.failed, 0);
  assert.equal(good.code, 0);

  // The same users with a wrong password: every registration must fail.
  const wrong = readFileSync(join(users, 'users.csv'), 'utf8').replace(/;pw(\d+)$/gm, ';nope$1');
  writeFileSync(join(users, 'wrong.csv'), wrong);
  const bad = await runSippOnFreePort((port) => [...common(port), '-inf', join(users, 'wrong.csv')], work);
  assert.equal(bad.successful, 0);
  assert.equal(bad.failed, 500);

  const list = cli(['ext', 'list', '--data-dir', dataDir, '--json']);
  assert.equal(list.code, 0);
  assert.equal((JSON.parse(list.stdout) as unknown[]).length, 500);
  assert.doesNotMatch(server.stderr(), /handler_error/);
});
