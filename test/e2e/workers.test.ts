import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cdrRows } from '../helpers/cdr-files.js';
import { waitFor } from '../helpers/keep-alive.js';
import { audioSdp, Phone } from '../helpers/phone.js';
import { cli, hasSipp, runSippOnFreePort, SHARED, startServe, startSippUas, tempDir } from './harness.js';
import { addonPath } from '../../lib/platform/native-addon.js';
import { openSqliteStore } from '../../lib/store/sqlite.js';
import { EventStream } from '../helpers/event-stream.js';
import type { CallView, ExtensionView, Summary } from '../../lib/admin/types.js';

const noAddon = addonPath('relay') === null && 'the native addon is not built (node scripts/build-native.mjs)';

function childPids(pid: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readFileSync(`/proc/${d}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')[1] === String(pid);
      } catch {
        return false;
      }
    })
    .map(Number);
}

/**
 * Waits until `count` bindings are in the store the workers share. A registration gets there with
 * its worker's next write batch (50 ms): only then does a call handled by the other worker find it.
 */
async function bindingsShared(dataDir: string, count: number): Promise<void> {
  const store = openSqliteStore(dataDir);
  try {
    await waitFor(() => store.loadBindings(Date.now()).length >= count, `${count} bindings in the shared store`);
  } finally {
    store.close();
  }
}

for (const engine of ['native', 'node'] as const) test(`sip.workers 2 (udpEngine ${engine}): phones spread over two processes register and call each other across them`, { skip: noAddon }, async () => {
  const work = tempDir('mss-e2e-workers-');
  const dataDir = join(work, 'data');
  const users = Array.from({ length: 12 }, (_, i) => String(1200 + i));
  writeFileSync(join(work, 'users.txt'), users.map((u) => `${u}:pw${u}`).join('\n') + '\n');
  assert.equal(cli(['ext', 'import', join(work, 'users.txt'), '--data-dir', dataDir]).code, 0);
  const config = join(work, 'config.yaml');
  writeFileSync(config, `sip:\n  workers: 2\n  transports: [udp]\n  udpEngine: ${engine}\nauth:\n  algorithms: [MD5]\n`);
  const server = await startServe(dataDir, ['--config', config], { relayPorts: 2000 });
  const phones: Phone[] = [];
  try {
    assert.match(server.stdout(), /2 workers/);
    assert.equal(childPids(server.child.pid!).length, 2, 'two worker processes');
    for (const u of users) {
      const p = await Phone.open(u, `pw${u}`, server.port);
      phones.push(p);
      await p.register();
    }
    await bindingsShared(dataDir, users.length);
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const a = phones[i]!;
      const b = phones[i + 6]!;
      const call = await a.invite(b.user, audioSdp(46000 + i * 10));
      const inc = await b.incoming();
      inc.ring();
      await call.provisional(180);
      inc.answer(audioSdp(46100 + i * 10));
      assert.equal((await call.final()).status, 200, `call ${a.user} -> ${b.user}`);
      await inc.waitAck();
      assert.equal((await call.bye()).status, 200);
      await b.answerInDialog(inc.dialog, 'BYE');
      ids.push(call.dialog.callId);
    }
    const rows = cdrRows(dataDir);
    for (const id of ids) assert.equal(rows.find((r) => r.call_id === id)?.fci, 'callTag=1;cause=16');
  } finally {
    for (const p of phones) p.close();
    const t0 = Date.now();
    assert.equal(await server.stop(), 0);
    assert.ok(Date.now() - t0 < 6000);
  }
});

test('sip.workers 2 with SIPp, whose callee answers to our source port rather than our Via', { skip: noAddon || (!hasSipp() && 'sipp is not installed') }, async (t) => {
  const work = tempDir('mss-e2e-workers-sipp-');
  const dataDir = join(work, 'data');
  const usersDir = join(work, 'users');
  assert.equal(spawnSync('bash', [join(SHARED, 'lab/sipp/gen-users.sh'), usersDir, '100', '1000']).status, 0);
  assert.equal(cli(['ext', 'import', join(usersDir, 'users.txt'), '--data-dir', dataDir]).code, 0);
  const config = join(work, 'config.yaml');
  writeFileSync(config, 'sip:\n  workers: 2\n  transports: [udp]\nauth:\n  algorithms: [MD5, SHA-256]\n');
  const server = await startServe(dataDir, ['--config', config], { relayPorts: 2000 });
  t.after(() => server.stop());
  mkdirSync(join(work, 'uas'));
  const uas = await startSippUas(['-sf', join(SHARED, 'lab/sipp/uas_call.xml'), '-timeout', '120'], join(work, 'uas'));
  t.after(() => uas.stop());
  mkdirSync(join(work, 'reg'));
  // One socket per registration and per call (-t un): the sources spread over both workers.
  const many = ['-t', 'un', '-max_socket', '5000'];
  const reg = await runSippOnFreePort(() => ['-sf', join(SHARED, 'lab/sipp/reg_auth.xml'), ...many,
    '-inf', join(usersDir, 'callees.csv'), '-key', 'contact_host', '127.0.0.1', '-key', 'contact_port', String(uas.port), '-key', 'expires', '3600',
    '-m', '50', '-r', '100', '-timeout', '30', `127.0.0.1:${server.port}`], join(work, 'reg'));
  assert.equal(reg.successful, 50, reg.out.slice(-1500));
  await bindingsShared(dataDir, 50);
  mkdirSync(join(work, 'uac'));
  const calls = await runSippOnFreePort(() => ['-sf', join(SHARED, 'lab/sipp/uac_call.xml'), ...many,
    '-inf', join(usersDir, 'calls.csv'), '-m', '200', '-r', '100', '-d', '100', '-timeout', '60', `127.0.0.1:${server.port}`], join(work, 'uac'));
  assert.equal(calls.failed, 0, calls.out.slice(-2000));
  assert.equal(calls.successful, 200);
  const deadline = Date.now() + 3000;
  while (cdrRows(dataDir).length < 200 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.equal(cdrRows(dataDir).length, 200, 'every call recorded once, whichever worker had it');
});

test('sip.workers above 1 with TCP in the transports is refused with the reason', () => {
  const work = tempDir('mss-e2e-workers-bad-');
  const config = join(work, 'config.yaml');
  writeFileSync(config, 'sip:\n  workers: 2\n');
  const r = cli(['serve', '--config', config, '--data-dir', join(work, 'data'), '--sip-port', '0']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /config\.yaml:2:\d+: sip\.workers above 1 serves UDP only/);
});

test('sip.workers 2: the admin API, its event stream and /metrics cover both processes', { skip: noAddon }, async () => {
  const work = tempDir('mss-e2e-workers-admin-');
  const dataDir = join(work, 'data');
  const users = Array.from({ length: 8 }, (_, i) => String(1300 + i));
  writeFileSync(join(work, 'users.txt'), users.map((u) => `${u}:pw${u}`).join('\n') + '\n');
  assert.equal(cli(['ext', 'import', join(work, 'users.txt'), '--data-dir', dataDir]).code, 0);
  const config = join(work, 'config.yaml');
  writeFileSync(config, 'sip:\n  workers: 2\n  transports: [udp]\nauth:\n  algorithms: [MD5]\n');
  const server = await startServe(dataDir, ['--config', config], { relayPorts: 2000 });
  const phones: Phone[] = [];
  let stream: EventStream | null = null;
  try {
    await waitFor(() => existsSync(join(dataDir, 'admin.address')), 'the primary serves the admin API');
    const url = readFileSync(join(dataDir, 'admin.address'), 'utf8').trim();
    const token = readFileSync(join(dataDir, 'admin.token'), 'utf8').trim();
    const get = async <T>(path: string): Promise<T> => {
      const res = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(res.status, 200, path);
      return (await res.json()) as T;
    };
    stream = new EventStream(url, token);
    for (const u of users) {
      const p = await Phone.open(u, `pw${u}`, server.port);
      phones.push(p);
      await p.register();
    }
    await bindingsShared(dataDir, users.length);
    const exts = await get<ExtensionView[]>('/api/v1/extensions');
    assert.deepEqual(exts.map((e) => e.state), users.map(() => 'online'));
    for (const u of users) await stream.until((e) => e.event.type === 'extension' && e.event.number === u && e.event.state === 'online', `${u} online on the stream`);

    // A call from every phone of the first half to one of the second: whichever worker has each, the API sees them all.
    const calls = [];
    for (let i = 0; i < 4; i++) {
      const call = await phones[i]!.invite(users[i + 4]!, audioSdp(46200 + i * 10));
      const inc = await phones[i + 4]!.incoming();
      inc.ring();
      await call.provisional(180);
      calls.push({ call, inc });
    }
    await waitFor(() => stream!.events.filter((e) => e.event.type === 'call' && e.event.action === 'created').length >= 4, 'four calls on the stream');
    const listed = await get<CallView[]>('/api/v1/calls');
    assert.deepEqual(listed.map((c) => c.id).sort(), calls.map((c) => c.call.dialog.callId).sort());
    const summary = await get<Summary>('/api/v1/summary');
    assert.equal(summary.calls.active, 4);
    assert.equal(summary.extensions.registered, users.length);

    // Released through the API, whichever worker holds it.
    for (const { call, inc } of calls) {
      const del = await fetch(`${url}/api/v1/calls/${encodeURIComponent(call.dialog.callId)}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
      assert.equal(del.status, 204);
      assert.equal((await call.final()).status, 480);
      await inc.phone.waitRequest('CANCEL');
    }
    await waitFor(() => stream!.events.filter((e) => e.event.type === 'call' && e.event.action === 'ended').length >= 4, 'four calls ended on the stream');

    // A worker reads the store's registration count once a second: wait for it (bounded).
    const registeredLine = new RegExp(`^minisipserver_extensions_registered ${users.length}$`, 'm');
    let metrics = '';
    for (let i = 0; i < 50 && !registeredLine.test(metrics); i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 100));
      metrics = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
    }
    assert.match(metrics, registeredLine, 'a count from the shared store is not doubled');
    const registers = Number(/^minisipserver_sip_requests_received_total\{method="REGISTER"\} (\d+)/m.exec(metrics)?.[1] ?? 0);
    assert.equal(registers, users.length * 2, 'REGISTERs of both workers added up');
  } finally {
    stream?.close();
    for (const p of phones) p.close();
    assert.equal(await server.stop(), 0);
  }
});
