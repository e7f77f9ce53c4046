import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { audioSdp, Phone } from '../helpers/phone.js';
import { parse } from 'csv-parse/sync';

let srv: TestServer;
const phones: Phone[] = [];

before(async () => {
  srv = await startTestServer({
    users: [['201', 'pw201'], ['202', 'pw202'], ['203', 'pw203'], ['204', 'pw204']],
    configure: (c) => {
      c.media.relay = 'never';
      c.auth.algorithms = ['MD5', 'SHA-256'];
      c.calls.noAnswerTimeout = 5;
    },
  });
});

after(async () => {
  for (const p of phones) p.close();
  await srv.stop();
});

async function phone(user: string, register = true): Promise<Phone> {
  const p = await Phone.open(user, `pw${user}`, srv.port);
  phones.push(p);
  if (register) await p.register();
  return p;
}

function cdrLines(): Array<Record<string, string>> {
  const dir = join(srv.dataDir, 'cdr');
  if (!existsSync(dir)) return [];
  const out: Array<Record<string, string>> = [];
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.csv'))) {
    out.push(...(parse(readFileSync(join(dir, f), 'utf8'), { columns: true }) as Array<Record<string, string>>));
  }
  return out;
}

function cdrFor(callId: string): Record<string, string> | undefined {
  return cdrLines().find((r) => r.call_id === callId);
}

test('a call between two extensions: ringing, answer, ACK, BYE from the caller, CDR line', async () => {
  const a = await phone('201');
  const b = await phone('202');
  const call = await a.invite('202', audioSdp(40000));
  const inc = await b.incoming();
  assert.equal(inc.invite.headers.get('from')?.includes('sip:201@'), true, 'caller id is the caller');
  assert.notEqual(inc.dialog.callId, call.dialog.callId, 'the B leg has its own Call-ID');
  assert.match(inc.sdp, /m=audio 40000/, 'relay off: SDP passes untouched');
  inc.ring();
  const ringing = await call.provisional(180);
  assert.ok(/;tag=/.test(ringing.headers.get('to') ?? ''));
  inc.answer(audioSdp(40010));
  const ok = await call.final();
  assert.equal(ok.status, 200);
  assert.match(ok.body.toString(), /m=audio 40010/);
  await inc.waitAck();
  const byeOk = await call.bye();
  assert.equal(byeOk.status, 200);
  const bye = await b.answerInDialog(inc.dialog, 'BYE');
  assert.match(bye.headers.get('reason') ?? '', /Q\.850;cause=16/);
  const rec = cdrFor(call.dialog.callId);
  assert.ok(rec, 'CDR line written when the call ended');
  assert.equal(rec.caller, '201');
  assert.equal(rec.callee, '202');
  assert.equal(rec.status, '200');
  assert.equal(rec.fci, 'callTag=1;cause=16');
  assert.ok(rec.answer_time.length > 0);
  assert.equal(rec.media, 'audio');
  assert.equal(rec.codec, 'PCMU');
});

test('BYE from the callee releases the caller with callTag 2', async () => {
  const a = await phone('203');
  const b = await phone('204');
  const call = await a.invite('204', audioSdp(40020));
  const inc = await b.incoming();
  inc.answer(audioSdp(40030));
  assert.equal((await call.final()).status, 200);
  await inc.waitAck();
  assert.equal((await inc.bye()).status, 200);
  await a.answerInDialog(call.dialog, 'BYE');
  assert.equal(cdrFor(call.dialog.callId)?.fci, 'callTag=2;cause=16');
});
