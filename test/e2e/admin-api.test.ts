/**
 * The admin API, its event stream and /metrics on a real `serve` process: SIPp registers
 * extensions, scripted phones call, and what the API answers, streams and releases is checked.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, hasSipp, runSippOnFreePort, SHARED, startServe, tempDir } from './harness.js';
import { audioSdp, Phone } from '../helpers/phone.js';
import { cdrOf } from '../helpers/cdr-files.js';
import type { CallView, ExtensionView, Summary } from '../../lib/admin/types.js';
import { EventStream } from '../helpers/event-stream.js';

const sipp = hasSipp();

test('admin API on a real server: SIPp registrations, a call seen and released through it, the stream replayed, metrics', { skip: !sipp && 'sipp is not installed (apt-get install sip-tester)' }, async (t) => {
  const work = tempDir('mss-e2e-admin-');
  const dataDir = join(work, 'data');
  const users = join(work, 'users');
  assert.equal(spawnSync('bash', [join(SHARED, 'lab/sipp/gen-users.sh'), users, '52', '1000']).status, 0);
  assert.equal(cli(['ext', 'import', join(users, 'users.txt'), '--data-dir', dataDir]).code, 0);
  const config = join(work, 'config.yaml');
  writeFileSync(config, 'auth:\n  algorithms: [MD5, SHA-256]\n');
  const server = await startServe(dataDir, ['--config', config]);
  const closers: Array<() => unknown> = [];
  t.after(async () => {
    for (const c of closers.reverse()) c();
    await server.stop();
  });

  const url = readFileSync(join(dataDir, 'admin.address'), 'utf8').trim();
  const token = readFileSync(join(dataDir, 'admin.token'), 'utf8').trim();
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(statSync(join(dataDir, 'admin.token')).mode & 0o077, 0, 'the token file is private');
  assert.doesNotMatch(server.stdout() + server.stderr(), new RegExp(token), 'the token is never logged');
  const get = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200, path);
    return (await res.json()) as T;
  };

  // Wrong and missing tokens get the same answer.
  const wrong = await fetch(`${url}/api/v1/summary`, { headers: { authorization: 'Bearer nope' } });
  const missing = await fetch(`${url}/api/v1/summary`);
  assert.equal(wrong.status, 401);
  assert.equal(missing.status, 401);
  assert.equal(await wrong.text(), await missing.text());

  const stream = new EventStream(url, token);
  closers.push(() => stream.close());

  // SIPp registers 50 of the 52 users.
  const scenario = join(SHARED, 'lab/sipp/reg_auth.xml');
  const reg = await runSippOnFreePort(
    (port) => ['-sf', scenario, '-key', 'contact_host', '127.0.0.1', '-key', 'contact_port', String(port), '-key', 'expires', '3600', '-m', '50', '-r', '50', '-timeout', '60', '-inf', join(users, 'users.csv'), `127.0.0.1:${server.port}`],
    work,
  );
  assert.equal(reg.successful, 50, reg.out.slice(-1500));
  const summary = await get<Summary>('/api/v1/summary');
  assert.equal(summary.extensions.total, 52);
  assert.equal(summary.extensions.registered, 50);
  const exts = await get<ExtensionView[]>('/api/v1/extensions');
  assert.equal(exts.length, 52);
  const e1000 = exts.find((e) => e.number === '1000')!;
  assert.equal(e1000.state, 'online');
  assert.equal(e1000.contacts.length, 1);
  assert.match(e1000.contacts[0]!.address, /^127\.0\.0\.1:\d+$/);
  assert.equal(exts.find((e) => e.number === '1051')!.state, 'offline');
  await stream.until((e) => e.event.type === 'registration' && e.event.number === '1049' && e.event.action === 'added', 'the stream tells the registration of 1049');

  // A call between two phones: seen ringing, then answered, then released through the API.
  const a = await Phone.open('1050', 'pw1050', server.port);
  const b = await Phone.open('1051', 'pw1051', server.port);
  closers.push(() => a.close(), () => b.close());
  await a.register();
  await b.register();
  const call = await a.invite('1051', audioSdp(42000));
  const inc = await b.incoming();
  inc.ring();
  await stream.until((e) => e.event.type === 'extension' && e.event.number === '1051' && e.event.state === 'ringing', '1051 ringing');
  const ringing = await get<CallView[]>('/api/v1/calls');
  assert.equal(ringing.length, 1);
  assert.equal(ringing[0]!.id, call.dialog.callId);
  assert.equal(ringing[0]!.state, 'ringing');
  inc.answer(audioSdp(42010));
  assert.equal((await call.final()).status, 200);
  await inc.waitAck();
  const seenUpTo = (await stream.until((e) => e.event.type === 'call' && e.event.action === 'answered', 'call answered')).id;
  const answered = await get<CallView[]>('/api/v1/calls');
  assert.equal(answered[0]!.state, 'answered');
  assert.equal(answered[0]!.codec, 'PCMU');

  const del = await fetch(`${url}/api/v1/calls/${encodeURIComponent(call.dialog.callId)}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
  assert.equal(del.status, 204);
  const [byeA, byeB] = await Promise.all([a.waitRequest('BYE'), b.waitRequest('BYE')]);
  a.respond(byeA, 200, 'OK');
  b.respond(byeB, 200, 'OK');
  const ended = await stream.until((e) => e.event.type === 'call' && e.event.action === 'ended', 'call ended');
  assert.equal(ended.event.type === 'call' && ended.event.action === 'ended' ? ended.event.callTag : 0, 8);
  assert.equal(cdrOf(dataDir, call.dialog.callId)?.fci, 'callTag=8;cause=16');
  assert.equal((await get<CallView[]>('/api/v1/calls')).length, 0);

  // A client that reconnects with the last id it saw gets exactly what came after it.
  const again = new EventStream(url, token, seenUpTo);
  closers.push(() => again.close());
  await again.until((e) => e.id === ended.id, 'the replay reaches the end of the call');
  const missed = stream.events.filter((e) => e.id > seenUpTo && e.id <= ended.id);
  assert.ok(missed.length >= 2);
  assert.deepEqual(again.events.filter((e) => e.id <= ended.id), missed);

  // Metrics moved with the traffic.
  const metrics = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
  const registers = Number(/^minisipserver_sip_requests_received_total\{method="REGISTER"\} (\d+)/m.exec(metrics)?.[1] ?? 0);
  assert.ok(registers >= 104, `REGISTERs counted: ${registers}`);
  assert.match(metrics, /^minisipserver_calls_ended_total\{outcome="admin-release"\} 1$/m);

  await server.stop();
  assert.equal(existsSync(join(dataDir, 'admin.address')), false, 'the address file goes with the server');
});
