import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../helpers/keep-alive.js';
import { cli, startServe, tempDir } from './harness.js';

const hasBaresip = spawnSync('baresip', ['-h'], { encoding: 'utf8' }).error === undefined;
const MODULES = '/usr/lib/baresip/modules';

/** Runs baresip with one account until `until` matches its output (or `ms` pass); returns the output. */
async function runBaresip(dir: string, account: string, until: RegExp, ms: number): Promise<string> {
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'config'),
    // Port 0: the system picks a free one as baresip binds (a port chosen beforehand may be taken by then).
    [`poll_method epoll`, 'sip_listen 127.0.0.1:0', `net_interface 127.0.0.1`, `module_path ${MODULES}`, 'module_app account.so', ''].join('\n'),
  );
  writeFileSync(join(dir, 'accounts'), `${account}\n`);
  const child = spawn('baresip', ['-4', '-f', dir], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  await new Promise<void>((resolve) => {
    const stop = () => {
      clearInterval(poll);
      clearTimeout(timer);
      resolve();
    };
    const poll = setInterval(() => until.test(out) && stop(), 50);
    const timer = setTimeout(stop, ms);
  });
  child.kill('SIGKILL');
  return out;
}

test('baresip registers to `serve` with its password, and is refused with a wrong one', { skip: !hasBaresip && 'baresip is not installed (apt-get install baresip-core)' }, async (t) => {
  const work = tempDir('mss-baresip-');
  const dataDir = join(work, 'data');
  writeFileSync(join(work, 'users.txt'), '700:right-password\n');
  assert.equal(cli(['ext', 'import', join(work, 'users.txt'), '--data-dir', dataDir]).code, 0);
  const server = await startServe(dataDir);
  t.after(() => server.stop());
  const aor = `<sip:700@127.0.0.1:${server.port};transport=udp>`;

  const good = await runBaresip(join(work, 'good'), `${aor};auth_pass=right-password;regint=300`, /200 OK.*binding|registered successfully/, 10_000);
  assert.match(good, /200 OK \(minisipserver\)/, good);
  // The server's log comes through another pipe than baresip's output: it may be read a little later.
  await waitFor(() => /"event":"register\.register","aor":"700"/.test(server.stderr()), () => `the server's register.register log line in:\n${server.stderr()}`);

  const bad = await runBaresip(join(work, 'bad'), `${aor};auth_pass=wrong-password;regint=300`, /403 Forbidden/, 10_000);
  assert.match(bad, /403 Forbidden/, bad);
});
