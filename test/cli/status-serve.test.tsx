// `minisipserver status` against a real `serve`: the ink screen fed by the real event stream
// (SIPp registers phones, a call rings, is answered and is hung up with h + y), a server restart
// mid-session (another admin port: found again through admin.address), and the CLI's --once and
// --json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { render } from 'ink-testing-library';
import { AdminClient, locateServer, type Snapshot } from '../../lib/admin/client.js';
import { App } from '../../cli/status/app.js';
import { LiveStore } from '../../cli/status/state.js';
import { cli, hasSipp, runSippOnFreePort, SHARED, startServe, tempDir, type RunningServer } from '../e2e/harness.js';
import { audioSdp, Phone } from '../helpers/phone.js';

const strip = (s: string) => s.replace(/\u001B\[[0-9;?]*[A-Za-z]/g, '');

async function frameWhere(r: { lastFrame(): string | undefined }, ok: (f: string) => boolean, what: string, timeoutMs = 10_000): Promise<string> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const f = strip(r.lastFrame() ?? '');
    if (ok(f)) return f;
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}; last frame:\n${f}`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

function runStatus(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['build/cli/main.js', 'status', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`status ${args.join(' ')}: no exit within 20 s`));
    }, 20_000);
    child.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

test('status on a real server: live registrations, a call hung up from the screen, a restart mid-session, --once and --json', { timeout: 120_000 }, async (t) => {
  const work = tempDir('mss-status-serve-');
  const dataDir = join(work, 'data');
  const users = join(work, 'users');
  assert.equal(spawnSync('bash', [join(SHARED, 'lab/sipp/gen-users.sh'), users, '12', '1000']).status, 0);
  assert.equal(cli(['ext', 'import', join(users, 'users.txt'), '--data-dir', dataDir]).code, 0);
  const config = join(work, 'config.yaml');
  writeFileSync(config, 'auth:\n  algorithms: [MD5, SHA-256]\n');
  let server: RunningServer = await startServe(dataDir, ['--config', config]);
  const phones: Phone[] = [];
  const store = new LiveStore();
  const where = locateServer({ dataDir });
  const client = new AdminClient(where.url, where.token);
  const feed = client.watch(
    { snapshot: (s) => store.load(s), event: (e) => store.apply(e), status: (s) => store.setConnection(s) },
    { backoffMs: 50, maxBackoffMs: 400, locate: () => locateServer({ dataDir }) },
  );
  let app: ReturnType<typeof render> | null = null;
  t.after(async () => {
    app?.unmount();
    feed.close();
    await feed.stopped();
    for (const p of phones) p.close();
    await server.stop();
  });

  await feed.start();
  app = render(<App store={store} actions={{ hangup: (id) => client.hangup(id) }} width={80} height={24} tickMs={0} refreshMs={0} packetsMs={0} />);
  let f = await frameWhere(app, (x) => x.includes('● live') && x.includes('extensions 0/12 registered'), 'the first screen');
  assert.match(f, /^1000 +offline +0$/m, 'imported without names');

  // Phones register while the screen is up: SIPp for ten of them (scripted phones without SIPp).
  if (hasSipp()) {
    const reg = await runSippOnFreePort(
      (port) => ['-sf', join(SHARED, 'lab/sipp/reg_auth.xml'), '-key', 'contact_host', '127.0.0.1', '-key', 'contact_port', String(port), '-key', 'expires', '3600', '-m', '10', '-r', '20', '-timeout', '60', '-inf', join(users, 'users.csv'), `127.0.0.1:${server.port}`],
      work,
    );
    assert.equal(reg.successful, 10, reg.out.slice(-1500));
  } else {
    for (let i = 0; i < 10; i++) {
      const p = await Phone.open(String(1000 + i), `pw${1000 + i}`, server.port);
      phones.push(p);
      await p.register(3600);
    }
  }
  f = await frameWhere(app, (x) => x.includes('extensions 10/12 registered'), 'ten registrations');
  assert.match(f, /^1009 +online +1 .*127\.0\.0\.1:\d+ /m);
  assert.match(f, /^1010 +offline +0$/m);

  // A call between the two others: ringing, answered, then hung up from the screen.
  const a = await Phone.open('1010', 'pw1010', server.port);
  const b = await Phone.open('1011', 'pw1011', server.port);
  phones.push(a, b);
  await a.register();
  await b.register();
  const call = await a.invite('1011', audioSdp(42100));
  const inc = await b.incoming();
  inc.ring();
  app.stdin.write('\t');
  f = await frameWhere(app, (x) => /^1010 -> 1011 +ringing /m.test(x), 'the call ringing');
  assert.match(f, /calls 1 active, 1\/min/);
  inc.answer(audioSdp(42110));
  assert.equal((await call.final()).status, 200);
  await inc.waitAck();
  f = await frameWhere(app, (x) => /^1010 -> 1011 +answered +\d+:\d\d PCMU +audio /m.test(x), 'the call answered');

  const json = await runStatus(['--data-dir', dataDir, '--json']);
  assert.equal(json.code, 0, json.stderr);
  const snap = JSON.parse(json.stdout) as Snapshot;
  assert.deepEqual(Object.keys(snap), ['summary', 'extensions', 'calls', 'callbacks', 'ivr']);
  assert.equal(snap.summary.extensions.registered, 12);
  assert.equal(snap.extensions.length, 12);
  assert.equal(snap.calls.length, 1);
  assert.equal(snap.calls[0]!.id, call.dialog.callId);
  const once = await runStatus(['--data-dir', dataDir, '--once']);
  assert.equal(once.code, 0, once.stderr);
  assert.match(once.stdout, /^minisipserver \S+ on \S+, up \d\d:\d\d:\d\d; extensions 12\/12 registered, calls 1 active, call-backs 0, IVR sessions 0$/m);
  assert.match(once.stdout, /^1010 +talking +1 +\S/m);
  assert.match(once.stdout, /^1010 -> 1011 +answered +\d+:\d\d +PCMU +audio +\d+\/\d+$/m);

  app.stdin.write('h');
  await frameWhere(app, (x) => x.includes('Hang up 1010 -> 1011? (y/n)'), 'the confirmation');
  app.stdin.write('y');
  const [byeA, byeB] = await Promise.all([a.waitRequest('BYE', 5000), b.waitRequest('BYE', 5000)]);
  a.respond(byeA, 200, 'OK');
  b.respond(byeB, 200, 'OK');
  f = await frameWhere(app, (x) => x.includes('released 1010 -> 1011') && x.includes('no calls'), 'the call released');

  // The server restarts (another admin port, another start time): the screen says reconnecting,
  // then shows the new process's state.
  const firstUrl = readFileSync(join(dataDir, 'admin.address'), 'utf8').trim();
  assert.equal(await server.stop(), 0);
  f = await frameWhere(app, (x) => x.includes('○ reconnecting'), 'reconnecting');
  server = await startServe(dataDir, ['--config', config]);
  const secondUrl = readFileSync(join(dataDir, 'admin.address'), 'utf8').trim();
  assert.notEqual(secondUrl, firstUrl);
  const fresh = await new AdminClient(secondUrl, where.token).summary();
  f = await frameWhere(
    app,
    (x) => x.includes('● live') && store.summary?.startTime === fresh.startTime && x.includes(`extensions ${fresh.extensions.registered}/12 registered`),
    'live again with the new server state',
    15_000,
  );
  assert.match(f, /up 00:00:\d\d/);
  assert.equal(client.url, secondUrl);
});
