/**
 * The live state against a real server over real UDP: registrations, calls between scripted
 * phones (with RTP through the relay), the administrator's release of answered and ringing calls,
 * an expiring registration, a call-back and an IVR call, each seen as snapshots and as the event
 * sequence; and the backlog and listener rules on their own.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { audioSdp, Phone, PhoneBook, type IncomingCall } from '../helpers/phone.js';
import { RtpPeer } from '../helpers/rtp-peer.js';
import { waitFor } from '../helpers/keep-alive.js';
import { cdrOf } from '../helpers/cdr-files.js';
import { AsPeer } from '../helpers/as-peer.js';
import { toneWav } from '../helpers/wav.js';
import { challengeParams, digestAuthorization, registerText } from '../helpers/sip-peer.js';
import { LiveState, type LiveStateDeps } from '../../lib/admin/live-state.js';
import type { LiveEvent, SequencedEvent } from '../../lib/admin/types.js';

const USERS = ['201', '202', '203', '204', '205', '206', '207', '208', '209', '210'].map((n): [string, string] => [n, `pw${n}`]);

const IVR = `<?xml version="1.0" encoding="utf-8"?>
<mssxml version="1">
  <action name="hello" method="play" nextaction="bye">
    <voice>hello.wav</voice>
  </action>
  <action name="bye" method="hangup"/>
</mssxml>
`;

let srv: TestServer;
let book: PhoneBook;
let live: LiveState;
const events: SequencedEvent[] = [];
const closers: Array<() => void> = [];

before(async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mss-live-'));
  mkdirSync(join(dataDir, 'ivr', 'prompts'), { recursive: true });
  writeFileSync(join(dataDir, 'ivr', 'hello.xml'), IVR);
  writeFileSync(join(dataDir, 'ivr', 'prompts', 'hello.wav'), toneWav(10_000));
  srv = await startTestServer({
    dataDir,
    users: USERS,
    configure: (c) => {
      c.auth.algorithms = ['MD5'];
      c.media.relay = 'always';
      c.registrar.minExpires = 1;
      c.ivr.numbers = { '700': 'hello.xml' };
    },
  });
  const s = srv.server;
  live = new LiveState({ store: s.store, registrar: s.registrar, calls: s.calls, callback: s.callback, ivr: s.ivr, trunks: s.trunks, version: '9.9.9', node: 'test-node' }).attach();
  live.subscribe((e) => events.push(e));
  book = new PhoneBook(() => srv.port);
});

after(async () => {
  live.detach();
  for (const c of closers) c();
  book.closeAll();
  await srv.stop();
});

async function rtpPeer(): Promise<RtpPeer> {
  const p = await RtpPeer.open();
  closers.push(() => p.close());
  return p;
}

/** A refresh (or with expires 0, the removal) of `phone`'s registration (its register() used CSeq 1 and 2 of the same Call-ID). */
async function refresh(phone: Phone, cseq: number, expires = 600): Promise<void> {
  const callId = `reg-${phone.user}-${phone.port}`;
  const o = { user: phone.user, port: srv.port, localPort: phone.port, callId, expires };
  phone.sendText(registerText({ ...o, cseq }));
  const challenge = await phone.waitResponse((r) => r.headers.get('call-id') === callId);
  assert.equal(challenge.status, 401);
  const chosen = challenge.headers.getAll('www-authenticate').find((v) => (challengeParams(v).algorithm ?? 'MD5').toUpperCase() === 'MD5')!;
  const authorization = digestAuthorization({ challenge: chosen, user: phone.user, password: phone.password, method: 'REGISTER', uri: `sip:127.0.0.1:${srv.port}` });
  phone.sendText(registerText({ ...o, cseq: cseq + 1, authorization }));
  assert.equal((await phone.waitResponse((r) => r.headers.get('call-id') === callId)).status, 200);
}

/** An event as a short line: what the sequence assertions compare. */
function line(e: LiveEvent): string {
  switch (e.type) {
    case 'registration':
      return `registration ${e.action} ${e.number}`;
    case 'extension':
      return `extension ${e.number} ${e.state}`;
    case 'call':
      return e.action === 'ended' ? `call ended ${e.call.caller}->${e.call.callee} status=${e.status} callTag=${e.callTag} cause=${e.cause}` : `call ${e.action} ${e.call.caller}->${e.call.callee}`;
    case 'callback':
      return e.action === 'ended' ? `callback ended ${e.callback.id} result=${e.result} cause=${e.cause}` : `callback ${e.action} ${e.callback.id} ${e.callback.state}`;
    case 'ivr':
      return `ivr ${e.action} ${e.ivr.caller}->${e.ivr.number}`;
  }
}

/** Event lines after id `mark` (refreshes left out), optionally only those naming one of `numbers`. */
function linesSince(mark: number, numbers?: string[]): string[] {
  return events
    .filter((e) => e.id > mark && !(e.event.type === 'registration' && e.event.action === 'refreshed'))
    .map((e) => line(e.event))
    .filter((l) => !numbers || numbers.some((n) => l.includes(n)));
}

/** Waits (bounded) until the lines after `mark` include `last`, then returns them. */
async function until(mark: number, last: string, numbers?: string[], ms = 5000): Promise<string[]> {
  await waitFor(() => linesSince(mark, numbers).includes(last), () => `"${last}" (so far: ${JSON.stringify(linesSince(mark, numbers))})`, ms);
  return linesSince(mark, numbers);
}

test('registrations, a call answered with media through the relay and hung up: snapshots and the event sequence', async () => {
  const mark = live.lastId;
  const p201 = await book.get('201');
  const p202 = await book.get('202');
  assert.deepEqual(linesSince(mark), [
    'registration added 201',
    'extension 201 online',
    'registration added 202',
    'extension 202 online',
  ]);
  const added = events.find((e) => e.id > mark && e.event.type === 'registration')!;
  assert.ok(added.time > 0 && added.id === mark + 1);
  const { expiresAt, ...rest } = added.event as Extract<typeof added.event, { type: 'registration' }>;
  assert.deepEqual(rest, { type: 'registration', action: 'added', number: '201', contact: `sip:201@127.0.0.1:${p201.port}`, address: `127.0.0.1:${p201.port}`, transport: 'udp', userAgent: '' });
  assert.ok(expiresAt > Date.now(), 'the registration event says when it expires');

  // A refresh: the binding's event, no change of state.
  const beforeRefresh = live.lastId;
  await refresh(p201, 3);
  const refreshed = events.filter((e) => e.id > beforeRefresh).map((e) => e.event);
  assert.deepEqual(refreshed.map((e) => (e.type === 'registration' ? e.action : e.type)), ['refreshed']);

  const exts = live.extensions();
  const numbers = exts.map((e) => e.number);
  for (const [n] of USERS) assert.ok(numbers.includes(n), `extension ${n} listed`);
  assert.deepEqual(numbers, [...numbers].sort(), 'in number order');
  const e201 = exts.find((e) => e.number === '201')!;
  assert.equal(e201.state, 'online');
  assert.equal(e201.contacts.length, 1);
  const c = e201.contacts[0]!;
  assert.equal(c.contact, `sip:201@127.0.0.1:${p201.port}`);
  assert.equal(c.address, `127.0.0.1:${p201.port}`);
  assert.equal(c.transport, 'udp');
  assert.equal(c.userAgent, '');
  assert.ok(c.expiresAt > Date.now() + 500_000 && c.expiresAt <= Date.now() + 600_000, 'expires in 600 s');
  assert.equal(exts.find((e) => e.number === '210')!.state, 'offline');
  assert.deepEqual(exts.find((e) => e.number === '210')!.contacts, []);

  const sum = live.summary();
  assert.equal(sum.version, '9.9.9');
  assert.equal(sum.node, 'test-node');
  assert.equal(sum.extensions.total, exts.length);
  assert.ok(sum.extensions.registered >= 2);
  assert.ok(sum.contacts >= 2);
  assert.deepEqual(sum.trunks, []);

  // The call.
  const callMark = live.lastId;
  const rtpA = await rtpPeer();
  const rtpB = await rtpPeer();
  const call = await p201.invite('202', audioSdp(rtpA.port, '', [0, 101]));
  const inc = await p202.incoming();
  inc.ring();
  await until(callMark, 'extension 202 ringing');
  const ringing = live.calls();
  assert.equal(ringing.length, 1);
  assert.equal(ringing[0]!.id, call.dialog.callId);
  assert.equal(ringing[0]!.state, 'ringing');
  assert.equal(ringing[0]!.route, 'local');
  assert.equal(ringing[0]!.answerTime, null);
  assert.equal(ringing[0]!.codec, '');
  assert.equal(live.extensions().find((e) => e.number === '201')!.state, 'ringing');

  inc.answer(audioSdp(rtpB.port, '', [0, 101]));
  const ok = await call.final();
  assert.equal(ok.status, 200);
  await inc.waitAck();
  await until(callMark, 'extension 202 talking');
  rtpA.aim(ok.body.toString());
  rtpB.aim(inc.sdp);
  for (let i = 0; i < 5; i++) {
    rtpA.send(0, new Uint8Array(160));
    rtpB.send(0, new Uint8Array(160));
  }
  await waitFor(() => {
    const p = live.calls()[0]?.packets;
    return p !== undefined && p.aToB >= 5 && p.bToA >= 5;
  }, () => `5 packets each way in calls() (${JSON.stringify(live.calls()[0]?.packets)})`);
  const talking = live.calls()[0]!;
  assert.equal(talking.state, 'answered');
  assert.equal(talking.codec, 'PCMU');
  assert.equal(talking.media, 'audio');
  assert.ok(talking.answerTime !== null && talking.answerTime >= talking.startTime);
  assert.deepEqual(
    live.extensions().filter((e) => e.number === '201' || e.number === '202').map((e) => e.state),
    ['talking', 'talking'],
  );
  const during = live.summary().calls;
  assert.equal(during.active, 1);

  assert.equal((await call.bye()).status, 200);
  await p202.answerInDialog(inc.dialog, 'BYE');
  const seq = await until(callMark, 'extension 202 online');
  assert.deepEqual(seq, [
    'call created 201->202',
    'extension 201 ringing',
    'extension 202 ringing',
    'call answered 201->202',
    'extension 201 talking',
    'extension 202 talking',
    'call ended 201->202 status=200 callTag=1 cause=16',
    'extension 201 online',
    'extension 202 online',
  ]);
  const ended = events.find((e) => e.id > callMark && e.event.type === 'call' && e.event.action === 'ended')!.event;
  assert.ok(ended.type === 'call');
  assert.equal(ended.call.state, 'answered');
  assert.equal(ended.call.codec, 'PCMU');
  assert.ok(ended.call.packets.aToB >= 5 && ended.call.packets.bToA >= 5, 'the last packet counts');
  assert.deepEqual(live.calls(), []);
  assert.equal(live.summary().calls.active, 0);
  assert.ok(live.summary().calls.answered >= 1);
});

test('releaseCall of an answered call: BYE to both phones, callTag 8 in the event and the record', async () => {
  const p203 = await book.get('203');
  const p204 = await book.get('204');
  const mark = live.lastId;
  const call = await p203.invite('204', audioSdp((await rtpPeer()).port, '', [0]));
  const inc = await p204.incoming();
  inc.answer(audioSdp((await rtpPeer()).port, '', [0]));
  assert.equal((await call.final()).status, 200);
  await inc.waitAck();
  await until(mark, 'extension 204 talking');

  assert.equal(live.releaseCall('no-such-call'), false);
  assert.equal(live.releaseCall(call.dialog.callId), true);
  const [byeA, byeB] = await Promise.all([p203.waitRequest('BYE'), p204.waitRequest('BYE')]);
  assert.match(byeA.headers.get('reason') ?? '', /cause=16/);
  p203.respond(byeA, 200, 'OK');
  p204.respond(byeB, 200, 'OK');
  const seq = await until(mark, 'extension 204 online');
  assert.deepEqual(seq.slice(-3), ['call ended 203->204 status=200 callTag=8 cause=16', 'extension 203 online', 'extension 204 online']);
  await waitFor(() => cdrOf(srv.dataDir, call.dialog.callId) !== undefined, 'the record of the released call');
  assert.equal(cdrOf(srv.dataDir, call.dialog.callId)!.fci, 'callTag=8;cause=16');
  assert.equal(live.releaseCall(call.dialog.callId), false, 'gone already');
});

test('releaseCall of a ringing call: CANCEL to the callee, 480 to the caller, callTag 8', async () => {
  const p205 = await book.get('205');
  const p206 = await book.get('206');
  const mark = live.lastId;
  const call = await p205.invite('206', audioSdp((await rtpPeer()).port, '', [0]));
  const inc: IncomingCall = await p206.incoming();
  inc.ring();
  await until(mark, 'extension 206 ringing');
  assert.equal(live.releaseCall(call.dialog.callId), true);
  const cancel = await p206.waitRequest('CANCEL');
  p206.respond(cancel, 200, 'OK');
  inc.reject(487, 'Request Terminated');
  const final = await call.final();
  assert.equal(final.status, 480);
  const seq = await until(mark, 'extension 206 online');
  assert.deepEqual(seq, [
    'call created 205->206',
    'extension 205 ringing',
    'extension 206 ringing',
    'call ended 205->206 status=480 callTag=8 cause=16',
    'extension 205 online',
    'extension 206 online',
  ]);
  await waitFor(() => cdrOf(srv.dataDir, call.dialog.callId) !== undefined, 'the record of the released attempt');
  assert.equal(cdrOf(srv.dataDir, call.dialog.callId)!.fci, 'callTag=8;cause=16');
});

test('a registration that is not refreshed expires: its event, then the extension goes offline', async () => {
  const p207 = await Phone.open('207', 'pw207', srv.port);
  closers.push(() => p207.close());
  const mark = live.lastId;
  await p207.register(1);
  assert.equal(live.extensions().find((e) => e.number === '207')!.state, 'online');
  const seq = await until(mark, 'extension 207 offline', ['207'], 5000);
  assert.deepEqual(seq, ['registration added 207', 'extension 207 online', 'registration expired 207', 'extension 207 offline']);
  assert.equal(live.extensions().find((e) => e.number === '207')!.state, 'offline');

  // Registered again, then unregistered (Expires: 0).
  const again = live.lastId;
  await p207.register(600);
  await refresh(p207, 5, 0); // its two register() calls used CSeq 1 to 4
  assert.deepEqual(linesSince(again), ['registration added 207', 'extension 207 online', 'registration removed 207', 'extension 207 offline']);
  assert.deepEqual(live.extensions().find((e) => e.number === '207')!.contacts, []);
});

test('a call-back: started while user1 rings, calling2, bridged, ended when the AS cancels it', async () => {
  const p208 = await book.get('208');
  const p209 = await book.get('209');
  const as = await AsPeer.open(srv.server.callback.port);
  closers.push(() => as.close());
  const mark = live.lastId;
  const id = `live-${process.pid}`;
  as.send(`REQUEST: id=${id};user1=208;user2=209`);
  assert.equal((await as.next('ACK', id)).params.get('result'), '0');

  const first = await p208.incoming();
  const rtp1 = await rtpPeer();
  first.answer(audioSdp(rtp1.port, '', [0, 101]));
  await first.waitAck();
  const second = await p209.incoming();
  await until(mark, 'extension 209 ringing', ['callback', '208', '209']);
  assert.deepEqual(live.callbacks().map((c) => [c.id, c.user1, c.user2, c.state, c.answerTime]), [[id, '208', '209', 'calling2', null]]);
  const rtp2 = await rtpPeer();
  second.answer(audioSdp(rtp2.port, '', [0, 101]));
  await second.waitAck();
  await until(mark, `callback bridged ${id} bridged`, ['callback', '208', '209']);
  const view = live.callbacks()[0]!;
  assert.equal(view.state, 'bridged');
  assert.ok(view.answerTime !== null && view.answerTime >= view.startTime);
  assert.equal(live.summary().callbacks, 1);

  as.send(`CANCEL: id=${id}`);
  const [bye1, bye2] = await Promise.all([p208.waitRequest('BYE'), p209.waitRequest('BYE')]);
  p208.respond(bye1, 200, 'OK');
  p209.respond(bye2, 200, 'OK');
  const seq = await until(mark, 'extension 209 online', ['callback', '208', '209']);
  assert.deepEqual(seq, [
    `callback started ${id} calling1`,
    'extension 208 ringing',
    `callback calling2 ${id} calling2`,
    'extension 208 talking',
    'extension 209 ringing',
    `callback bridged ${id} bridged`,
    'extension 209 talking',
    `callback ended ${id} result=0 cause=16`,
    'extension 208 online',
    'extension 209 online',
  ]);
  assert.deepEqual(live.callbacks(), []);
  await as.next('RESPONSE', id);
  as.send(`ACK: id=${id}`);
});

test('an IVR call: started, the caller talking while the IVR plays, ended when the caller hangs up', async () => {
  const p210 = await book.get('210');
  const mark = live.lastId;
  const rtp = await rtpPeer();
  const call = await p210.invite('700', audioSdp(rtp.port, '', [0, 101]));
  assert.equal((await call.final()).status, 200);
  await until(mark, 'extension 210 talking', ['210']);
  const views = live.ivr();
  assert.equal(views.length, 1);
  assert.deepEqual({ ...views[0]!, startTime: 0 }, { id: call.dialog.callId, caller: '210', number: '700', file: 'hello.xml', startTime: 0 });
  assert.equal(live.summary().ivr, 1);
  assert.deepEqual(live.calls(), [], 'IVR calls are not calls between phones');
  assert.equal((await call.bye()).status, 200);
  const seq = await until(mark, 'extension 210 online', ['210']);
  assert.deepEqual(seq, ['ivr started 210->700', 'extension 210 ringing', 'extension 210 talking', 'ivr ended 210->700', 'extension 210 online']);
  assert.deepEqual(live.ivr(), []);
});

// ---- the backlog and the listeners, without a server ---------------------------------------------

function bareState(backlog: number): LiveState {
  const deps: LiveStateDeps = {
    store: { listExtensions: () => [], getExtension: () => undefined, dataVersion: () => 1 },
    registrar: { observer: undefined, bindingsOf: () => undefined, allBindings: () => [], registeredCount: 0, bindingCount: 0 },
    calls: { observer: undefined, list: () => [], release: () => false, stats: { active: 0, started: 0, answered: 0 } },
    version: 'v',
    node: 'n',
    backlog,
  };
  return new LiveState(deps);
}

const ext = (n: number): LiveEvent => ({ type: 'extension', number: String(n), state: 'online' });

test('since(): the events after an id, [] when up to date, null when some are gone or the id is unknown', () => {
  const s = bareState(5);
  assert.deepEqual(s.since(0), [], 'nothing yet');
  assert.equal(s.since(1), null, 'an id never given');
  for (let i = 1; i <= 3; i++) s.emit(ext(i));
  assert.deepEqual(s.since(0)!.map((e) => e.id), [1, 2, 3]);
  assert.deepEqual(s.since(2)!.map((e) => e.id), [3]);
  for (let i = 4; i <= 12; i++) s.emit(ext(i));
  assert.equal(s.lastId, 12);
  assert.deepEqual(s.since(7)!.map((e) => e.id), [8, 9, 10, 11, 12], 'the oldest kept is 8');
  assert.deepEqual(s.since(7)!.map((e) => (e.event.type === 'extension' ? e.event.number : '')), ['8', '9', '10', '11', '12']);
  assert.deepEqual(s.since(10)!.map((e) => e.id), [11, 12]);
  assert.equal(s.since(6), null, 'event 7 is gone: a gap');
  assert.equal(s.since(0), null);
  assert.deepEqual(s.since(12), []);
  assert.equal(s.since(13), null);
  assert.equal(s.since(-1), null);
  assert.equal(s.since(1.5), null);
  const e = s.since(11)![0]!;
  assert.ok(e.time > 0);
});

test('listeners: called in order; one that throws is removed and nobody else notices; unsubscribe', () => {
  const s = bareState(100);
  const seen: string[] = [];
  s.subscribe((e) => seen.push(`a${e.id}`));
  s.subscribe(() => {
    throw new Error('broken client');
  });
  const off = s.subscribe((e) => seen.push(`c${e.id}`));
  s.emit(ext(1));
  s.emit(ext(2));
  off();
  s.emit(ext(3));
  assert.deepEqual(seen, ['a1', 'c1', 'a2', 'c2', 'a3']);
});

test('an event caused by a listener reaches every listener after the one being delivered', () => {
  const s = bareState(100);
  const seen: string[] = [];
  s.subscribe((e) => {
    seen.push(`a${e.id}`);
    if (e.id === 1) s.emit(ext(2));
  });
  s.subscribe((e) => seen.push(`b${e.id}`));
  s.emit(ext(1));
  assert.deepEqual(seen, ['a1', 'b1', 'a2', 'b2']);
  assert.deepEqual(s.since(0)!.map((e) => e.id), [1, 2]);
});

test('10,000 extensions: one list query, kept until the store data version changes; the snapshot stays fast', () => {
  let lists = 0;
  let gets = 0;
  let version = 1;
  let t = 1_000_000;
  const records = Array.from({ length: 10_000 }, (_, i) => ({ number: String(100000 + i), displayName: `User ${i}`, realm: 'r', ha1Md5: '', ha1Sha256: '', createdAt: 0, allow: [] }));
  const now = Date.now();
  const binding = (aor: string) => ({ aor, contact: `sip:${aor}@10.0.0.1:5060`, contactHeader: '', expiresAt: now + 60_000, callId: 'c', cseq: 1, transport: 'udp' as const, sourceAddress: '10.0.0.1', sourcePort: 5060, updatedAt: now, uri: { scheme: 'sip', user: aor, host: '10.0.0.1', port: 5060, params: new Map(), headers: new Map() } });
  const bound = new Map(records.filter((_, i) => i % 2 === 0).map((r) => [r.number, [binding(r.number)]]));
  const s = new LiveState({
    store: {
      listExtensions: () => (lists++, records),
      getExtension: () => (gets++, undefined),
      dataVersion: () => version,
    },
    registrar: { observer: undefined, bindingsOf: (aor) => bound.get(aor) as never, allBindings: () => [], registeredCount: bound.size, bindingCount: bound.size },
    calls: { observer: undefined, list: () => [], release: () => false, stats: { active: 0, started: 0, answered: 0 } },
    version: 'v',
    node: 'n',
    now: () => t,
  });
  // CPU time rather than wall time: other processes share the machine.
  const started = process.cpuUsage();
  const first = s.extensions();
  const second = s.extensions();
  const used = process.cpuUsage(started);
  const ms = (used.user + used.system) / 1000;
  assert.equal(first.length, 10_000);
  assert.equal(second[0]!.state, 'online');
  assert.equal(second[1]!.state, 'offline');
  assert.equal(second[0]!.contacts[0]!.address, '10.0.0.1:5060');
  assert.equal(lists, 1, 'one listExtensions for both snapshots');
  assert.equal(gets, 0, 'no per-extension query');
  assert.ok(ms < 500, `two snapshots of 10,000 extensions took ${ms.toFixed(1)} ms of CPU`);
  assert.equal(s.summary().extensions.total, 10_000);
  t += 5000;
  s.extensions();
  assert.equal(lists, 1, 'the data version has not changed: no new query');
  version = 2;
  s.extensions();
  assert.equal(lists, 1, 'the version is read at most once a second');
  t += 1000;
  s.extensions();
  assert.equal(lists, 2, 'another process changed the store: read again');
  s.extensions();
  assert.equal(lists, 2);
});
