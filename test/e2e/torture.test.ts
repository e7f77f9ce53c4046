import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { SHARED, startServe, tempDir } from './harness.js';

test('RFC 4475 + RFC 5118 torture messages replayed against `serve`: alive throughout, at least 60 of 62 pass', async () => {
  const server = await startServe(join(tempDir('mss-torture-'), 'data'));
  try {
    const runner = spawn(process.execPath, [join(SHARED, 'conformance/run-torture.mjs'), '127.0.0.1', String(server.port), '--set', 'all', '--timeout', '600', '--gap', '10'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    runner.stdout.on('data', (d) => (out += d));
    runner.stderr.on('data', (d) => (out += d));
    const code = await new Promise<number | null>((resolve) => {
      const t = setTimeout(() => runner.kill('SIGKILL'), 150_000);
      runner.on('exit', (c) => {
        clearTimeout(t);
        resolve(c);
      });
    });
    const m = /^(\d+) passed, (\d+) failed$/m.exec(out);
    assert.ok(m, `no summary line:\n${out.slice(-3000)}`);
    const [passed, failed] = [Number(m[1]), Number(m[2])];
    assert.equal(passed + failed, 62);
    assert.ok(passed >= 60, `only ${passed} passed:\n${out}`);
    assert.doesNotMatch(out, /server down/);
    assert.equal(code, failed === 0 ? 0 : 1);
    assert.doesNotMatch(server.stderr(), /handler_error/);
  } finally {
    await server.stop();
  }
});
