import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { cdrRows } from '../helpers/cdr-files.js';
import { cli, startServe, tempDir } from './harness.js';
import { audioSdp, Phone, registeredPair, answeredCall } from '../helpers/phone.js';

test('SIGTERM during a call: both legs get BYE with cause 41, the CDR line is written, exit within 5 s', async () => {
  const work = tempDir('mss-e2e-term-');
  const dataDir = join(work, 'data');
  for (const [n, p] of [['801', 'pw801'], ['802', 'pw802']]) assert.equal(cli(['ext', 'add', n!, '--password', p!, '--data-dir', dataDir]).code, 0);
  const server = await startServe(dataDir, [], { relayPorts: 1000 });
  const [a, b] = await registeredPair(server.port, '801', '802');
  try {
    const { call, inc } = await answeredCall(a, b, audioSdp(43000), audioSdp(43010));
    const t0 = Date.now();
    const exited = server.stop();
    const [byeA, byeB] = await Promise.all([a.waitRequest('BYE', 5000), b.waitRequest('BYE', 5000)]);
    assert.match(byeA.headers.get('reason') ?? '', /Q\.850;cause=41/);
    assert.match(byeB.headers.get('reason') ?? '', /Q\.850;cause=41/);
    assert.equal(await exited, 0);
    assert.ok(Date.now() - t0 < 5000, 'exit within 5 s');
    const rows = cdrRows(dataDir);
    const rec = rows.find((r) => r.call_id === call.dialog.callId);
    assert.equal(rec?.fci, 'callTag=13;cause=41');
    assert.ok(rec?.answer_time);
  } finally {
    a.close();
    b.close();
  }
});

test('kill -9 after finished calls loses none of their records', async () => {
  const work = tempDir('mss-e2e-kill-');
  const dataDir = join(work, 'data');
  for (const [n, p] of [['811', 'pw811'], ['812', 'pw812']]) assert.equal(cli(['ext', 'add', n!, '--password', p!, '--data-dir', dataDir]).code, 0);
  const server = await startServe(dataDir, [], { relayPorts: 1000 });
  const a = await Phone.open('811', 'pw811', server.port);
  const b = await Phone.open('812', 'pw812', server.port);
  const ids: string[] = [];
  try {
    await a.register();
    await b.register();
    for (let i = 0; i < 3; i++) {
      const { call, inc } = await answeredCall(a, b, audioSdp(43100 + i * 10), audioSdp(43200 + i * 10));
      assert.equal((await call.bye()).status, 200);
      await b.answerInDialog(inc.dialog, 'BYE');
      ids.push(call.dialog.callId);
    }
    server.child.kill('SIGKILL');
    await new Promise((r) => server.child.once('exit', r));
    const q = cli(['cdr', 'query', join(dataDir, 'cdr'), '--format', 'json']);
    assert.equal(q.code, 0, q.stderr);
    const got = (JSON.parse(q.stdout) as Array<{ call_id: string; fci: string }>).map((r) => r.call_id);
    for (const id of ids) assert.ok(got.includes(id), `record of ${id} survived kill -9`);
  } finally {
    a.close();
    b.close();
  }
});
