/**
 * The call-back service end to end over real UDP: an application server (a socket in the test)
 * orders calls; scripted phones registered as extensions answer, ring, refuse or hang up; the
 * server's ACK, RESPONSE, SIP legs, ringback, relayed media and records are checked.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../../helpers/server.js';
import { audioSdp, PhoneBook, type IncomingCall, type Phone } from '../../helpers/phone.js';
import { AsPeer } from '../../helpers/as-peer.js';
import { RtpPeer } from '../../helpers/rtp-peer.js';
import { waitFor } from '../../helpers/keep-alive.js';
import { cdrRows } from '../../helpers/cdr-files.js';
import type { SipRequest } from '../../../lib/sip/message.js';
import { encodeRtp } from '../../../lib/media/endpoint/rtp.js';

const USERS = ['101', '102', '103', '104', '105', '106'].map((n): [string, string] => [n, `pw${n}`]);

let srv: TestServer;
let book: PhoneBook;
let as: AsPeer;
let ids = 0;
const peers: RtpPeer[] = [];

before(async () => {
  srv = await startTestServer({
    users: USERS,
    configure: (c) => {
      c.calls.noAnswerTimeout = 2;
      c.callback.defaultCaller = '8005551000';
    },
  });
  book = new PhoneBook(() => srv.port);
  as = await AsPeer.open(srv.server.callback.port);
});

after(async () => {
  as.close();
  for (const p of peers) p.close();
  book.closeAll();
  await srv.stop();
});

function newId(): string {
  return `t${process.pid}-${++ids}`;
}

async function media(): Promise<RtpPeer> {
  const p = await RtpPeer.open();
  peers.push(p);
  return p;
}

function fromUser(inv: SipRequest): string {
  return /<sip:([^@]+)@/.exec(inv.headers.get('from') ?? '')?.[1] ?? '';
}

async function ringAndAnswer(phone: Phone, formats = [0, 101]): Promise<{ inc: IncomingCall; rtp: RtpPeer }> {
  const inc = await phone.incoming();
  const rtp = await media();
  inc.ring();
  rtp.aim(inc.sdp);
  inc.answer(audioSdp(rtp.port, '', formats));
  await inc.waitAck();
  return { inc, rtp };
}

/** Both phones get the server's BYE (answered 200). */
async function byeToBoth(a: Phone, b: Phone, ms = 3000): Promise<void> {
  const [byeA, byeB] = await Promise.all([a.waitRequest('BYE', ms), b.waitRequest('BYE', ms)]);
  a.respond(byeA, 200, 'OK');
  b.respond(byeB, 200, 'OK');
}

function rowsOf(id: string): Array<Record<string, string>> {
  return cdrRows(srv.dataDir).filter((r) => r.route === `callback:${id}`);
}

test('a call-back rings user1, plays it a ringback, calls user2 with what user1 answered, bridges the media and reports the talk time', async () => {
  const [p101, p102] = [await book.get('101'), await book.get('102')];
  const id = newId();
  as.send(`REQUEST: id=${id};user1=101;user2=102`);
  const ack = await as.next('ACK', id);
  assert.equal(ack.params.get('result'), '0');

  const first = await p101.incoming();
  assert.equal(fromUser(first.invite), '8005551000', 'user1 sees callback.defaultCaller');
  assert.match(first.sdp, /m=audio \d+ RTP\/AVP 0 8 101/, 'user1 is offered both G.711 laws and telephone-event');
  const rtp1 = await media();
  rtp1.aim(first.sdp);
  first.answer(audioSdp(rtp1.port, '', [8, 101])); // user1 picks PCMA
  await first.waitAck();
  await waitFor(() => rtp1.packets.length >= 5, 'the ringback tone reaching user1', 3000);
  assert.ok(rtp1.packets.every((p) => p.packet.payloadType === 8), 'the ringback is in the codec user1 answered with');
  assert.ok(rtp1.packets.some((p) => p.packet.payload.some((b) => b !== 0xd5)), 'the ringback is not silence');

  const second = await p102.incoming();
  assert.equal(fromUser(second.invite), '101', 'user2 sees user1 calling (no caller2)');
  assert.match(second.sdp, /m=audio \d+ RTP\/AVP 8 101\r\n/, 'user2 is offered what user1 answered');
  const rtp2 = await media();
  rtp2.aim(second.sdp);
  second.answer(audioSdp(rtp2.port, '', [8, 101]));
  await second.waitAck();
  const bridgedAt = Date.now();

  // Both ways through the relay, once the ringback is gone.
  const mark = (b: number) => new Uint8Array(160).fill(b);
  const before1 = rtp1.packets.length;
  for (let i = 0; i < 50 && !(rtp2.packets.some((p) => p.packet.payload[0] === 0x11) && rtp1.packets.slice(before1).some((p) => p.packet.payload[0] === 0x22)); i++) {
    rtp1.send(8, mark(0x11));
    rtp2.send(8, mark(0x22));
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(rtp2.packets.some((p) => p.packet.payload[0] === 0x11), "user1's audio reaches user2");
  assert.ok(rtp1.packets.slice(before1).some((p) => p.packet.payload[0] === 0x22), "user2's audio reaches user1");

  await new Promise((r) => setTimeout(r, 1100));
  assert.equal((await second.bye()).status, 200);
  await p101.waitRequest('BYE');
  const res = await as.next('RESPONSE', id);
  const talked = (Date.now() - bridgedAt) / 1000;
  assert.equal(res.params.get('result'), '0', 'bridged');
  assert.equal(res.params.get('cause'), '16');
  assert.ok(Math.abs(Number(res.params.get('duration')) - talked) <= 1, `duration ${res.params.get('duration')} vs ${talked.toFixed(2)} s talked`);
  as.send(`ACK: id=${id}`);

  await waitFor(() => rowsOf(id).length === 2, 'both legs in the records');
  const rows = rowsOf(id);
  const leg1 = rows.find((r) => r.callee === '101')!;
  const leg2 = rows.find((r) => r.callee === '102')!;
  assert.equal(leg1.caller, '8005551000');
  assert.equal(leg2.caller, '101');
  for (const r of [leg1, leg2]) {
    assert.notEqual(r.answer_time, '', 'answered');
    assert.match(r.fci, /callTag=2\b/, 'ended by user2 (side b)');
    assert.equal(r.codec, 'PCMA');
  }
});

test('user1 busy: RESPONSE with result 1 and cause 17, user2 never called', async () => {
  const [p103, p104] = [await book.get('103'), await book.get('104')];
  const id = newId();
  as.send(`REQUEST: id=${id};caller1=555;user1=103;user2=104`);
  assert.equal((await as.next('ACK', id)).params.get('result'), '0');
  const inc = await p103.incoming();
  assert.equal(fromUser(inc.invite), '555', 'caller1 is shown to user1');
  inc.reject(486, 'Busy Here');
  const res = await as.next('RESPONSE', id);
  assert.equal(res.params.get('result'), '1');
  assert.equal(res.params.get('cause'), '17');
  assert.equal(res.params.get('duration'), '0');
  as.send(`ACK: id=${id}`);
  assert.ok(await p104.quiet((m) => m.kind === 'request' && m.method === 'INVITE', 300), 'user2 is not called');
  await waitFor(() => rowsOf(id).length === 1, 'the failed leg in the records');
  assert.match(rowsOf(id)[0]!.fci, /callTag=9\b/);
});

test('user2 not answering: CANCEL to user2 after the ring time, BYE to user1, RESPONSE result 2 cause 19', async () => {
  const [p103, p104] = [await book.get('103'), await book.get('104')];
  const id = newId();
  as.send(`REQUEST: id=${id};user1=103;user2=104;caller2=9999`);
  assert.equal((await as.next('ACK', id)).params.get('result'), '0');
  await ringAndAnswer(p103);
  const ringing = await p104.incoming();
  assert.equal(fromUser(ringing.invite), '9999', 'caller2 is shown to user2');
  ringing.ring();
  const cancel = await p104.waitRequest('CANCEL', 5000);
  p104.respond(cancel, 200, 'OK');
  ringing.reject(487, 'Request Terminated');
  await p103.waitRequest('BYE', 3000);
  const res = await as.next('RESPONSE', id, 5000);
  assert.equal(res.params.get('result'), '2');
  assert.equal(res.params.get('cause'), '19');
  as.send(`ACK: id=${id}`);
  await waitFor(() => rowsOf(id).length === 2, 'both legs in the records');
});

test('CANCEL while user1 rings: user1 gets CANCEL, RESPONSE result 3; the records say admin-release', async () => {
  const p105 = await book.get('105');
  const id = newId();
  as.send(`REQUEST: id=${id};user1=105;user2=106`);
  assert.equal((await as.next('ACK', id)).params.get('result'), '0');
  const inc = await p105.incoming();
  inc.ring();
  as.send(`CANCEL: id=${id}`);
  const cancel = await p105.waitRequest('CANCEL');
  p105.respond(cancel, 200, 'OK');
  inc.reject(487, 'Request Terminated');
  const res = await as.next('RESPONSE', id);
  assert.equal(res.params.get('result'), '3');
  assert.equal(res.params.get('duration'), '0');
  as.send(`ACK: id=${id}`);
  await waitFor(() => rowsOf(id).length === 1, 'the record');
  assert.match(rowsOf(id)[0]!.fci, /callTag=8\b/);
});

test('RELEASE while talking: BYE to both, RESPONSE result 0 with the talk time, callTag 8', async () => {
  const [p101, p102] = [await book.get('101'), await book.get('102')];
  const id = newId();
  as.send(`REQUEST: id=${id};user1=101;user2=102`);
  assert.equal((await as.next('ACK', id)).params.get('result'), '0');
  await ringAndAnswer(p101);
  await ringAndAnswer(p102);
  await waitFor(() => srv.logLines.some((l) => l.includes('callback.bridged') && l.includes(id)), 'the bridge');
  as.send(`RELEASE: id=${id}`);
  await byeToBoth(p101, p102);
  const res = await as.next('RESPONSE', id);
  assert.equal(res.params.get('result'), '0');
  assert.equal(res.params.get('duration'), '0');
  as.send(`ACK: id=${id}`);
  await waitFor(() => rowsOf(id).length === 2, 'both legs in the records');
  for (const r of rowsOf(id)) assert.match(r.fci, /callTag=8\b/);
});

test('a retransmitted REQUEST gets the same ACK and makes one call; the RESPONSE is resent until the ACK', async () => {
  const p105 = await book.get('105');
  const id = newId();
  const request = `REQUEST: id=${id};user1=105;user2=106`;
  as.send(request);
  as.send(request);
  as.send(request);
  const acks = [await as.next('ACK', id, 5000, 1), await as.next('ACK', id, 5000, 2), await as.next('ACK', id, 5000, 3)];
  assert.ok(acks.every((a) => a.params.get('result') === '0'));
  const inc = await p105.incoming();
  inc.reject(603, 'Decline');
  assert.ok(await p105.quiet((m) => m.kind === 'request' && m.method === 'INVITE', 300), 'one INVITE, no second call');
  await as.next('RESPONSE', id, 5000, 1);
  const again = await as.next('RESPONSE', id, 5000, 2);
  assert.equal(again.params.get('result'), '1', 'resent unchanged');
  as.send(`ACK: id=${id}`);
  const count = as.all('RESPONSE', id).length;
  // Another request answered proves the ACK was handled first (one socket, in order).
  const fence = newId();
  as.send(`REQUEST: id=${fence};user1=990;user2=991`);
  await as.next('ACK', fence);
  await new Promise((r) => setTimeout(r, 1200));
  assert.equal(as.all('RESPONSE', id).length, count, 'no RESPONSE after the ACK');
});

test('refusals: missing user2, an unknown number, a duplicate id in progress, an unknown id, too large', async () => {
  const p105 = await book.get('105');
  const id = newId();
  as.send(`REQUEST: id=${id};user1=105`);
  const missing = await as.next('ACK', id);
  assert.equal(missing.params.get('result'), '1');
  assert.equal(missing.params.get('reason'), undefined, 'the reason word would make the ACK larger than the REQUEST');

  const unknown = newId();
  as.send(`REQUEST: id=${unknown};caller1=8005551000;user1=105;user2=4242;duration=60`);
  const ack = await as.next('ACK', unknown);
  assert.equal(ack.params.get('result'), '2');
  assert.equal(ack.params.get('reason'), 'unknown-number');

  const busy = newId();
  as.send(`REQUEST: id=${busy};user1=105;user2=106`);
  assert.equal((await as.next('ACK', busy)).params.get('result'), '0');
  const inc = await p105.incoming();
  as.send(`REQUEST: id=${busy};user1=105;user2=101`);
  const dup = await as.next('ACK', busy, 5000, 2);
  assert.equal(dup.params.get('result'), '4');
  inc.reject(486, 'Busy Here');
  await as.next('RESPONSE', busy);
  as.send(`ACK: id=${busy}`);

  const nobody = newId();
  as.send(`CANCEL: id=${nobody};reason=operator-request`);
  const cancelAck = await as.next('ACK', nobody);
  assert.equal(cancelAck.params.get('result'), '6');

  const big = newId();
  as.send(`REQUEST: id=${big};user1=105;user2=106;${'x=1;'.repeat(400)}`);
  const tooBig = await as.next('ACK', big);
  assert.equal(tooBig.params.get('result'), '1', 'a datagram over 1,500 bytes is refused');
});

test('answers are never larger than what asked for them: a tiny bad REQUEST gets nothing back', async () => {
  const before = as.received.length;
  as.send('REQUEST:id=z'); // 12 bytes: even "ACK: id=z;result=1" is larger
  const fence = newId();
  as.send(`REQUEST: id=${fence};user1=990;user2=991`);
  await as.next('ACK', fence);
  assert.equal(as.received.length, before + 1, 'only the fence was answered');
  assert.ok(as.received.every((r) => Buffer.byteLength(r.text) <= 1500));
});

test('a source outside callback.asAddress gets nothing back, and one log line says why', async () => {
  const stranger = await AsPeer.open(srv.server.callback.port, '127.0.0.2');
  try {
    const id = newId();
    stranger.send(`REQUEST: id=${id};user1=105;user2=106`);
    // The AS's own request, sent after, is answered: the stranger's was handled (and dropped) first.
    const fence = newId();
    as.send(`REQUEST: id=${fence};user1=990;user2=991`);
    await as.next('ACK', fence);
    await waitFor(() => srv.logLines.some((l) => l.includes('callback.foreign_source') && l.includes('127.0.0.2')), 'the log line');
    assert.equal(stranger.received.length, 0);
  } finally {
    stranger.close();
  }
});

test('maxActive: a REQUEST beyond it is refused with result 3', async () => {
  const p106 = await book.get('106');
  const back = structuredClone(srv.config);
  const next = structuredClone(srv.config);
  next.callback.maxActive = 1;
  srv.server.applyConfig(next);
  try {
    const id = newId();
    as.send(`REQUEST: id=${id};user1=106;user2=105`);
    assert.equal((await as.next('ACK', id)).params.get('result'), '0');
    const inc = await p106.incoming();
    const over = newId();
    as.send(`REQUEST: id=${over};user1=105;user2=106`);
    const refused = await as.next('ACK', over);
    assert.equal(refused.params.get('result'), '3');
    inc.reject(486, 'Busy Here');
    await as.next('RESPONSE', id);
    as.send(`ACK: id=${id}`);
  } finally {
    srv.server.applyConfig(back);
  }
});

test('a server stopped mid call-back sends its RESPONSE before it goes', async () => {
  const own = await startTestServer({ users: [['201', 'pw201'], ['202', 'pw202']] });
  const ownBook = new PhoneBook(() => own.port);
  const ownAs = await AsPeer.open(own.server.callback.port);
  try {
    const p201 = await ownBook.get('201');
    const p202 = await ownBook.get('202');
    const id = newId();
    ownAs.send(`REQUEST: id=${id};user1=201;user2=202`);
    assert.equal((await ownAs.next('ACK', id)).params.get('result'), '0');
    await ringAndAnswer(p201);
    (await p202.incoming()).ring();
    const stopped = own.stop();
    const res = await ownAs.next('RESPONSE', id);
    assert.equal(res.params.get('result'), '4', 'server-stopped');
    assert.equal(res.params.get('cause'), '41');
    ownAs.send(`ACK: id=${id}`);
    await stopped;
  } finally {
    ownAs.close();
    ownBook.closeAll();
  }
});

test('callback.video: user1 is offered video too, user2 gets what user1 accepted, and video flows both ways', async () => {
  const [p103, p104] = [await book.get('103'), await book.get('104')];
  const back = structuredClone(srv.config);
  const next = structuredClone(srv.config);
  next.callback.video = true;
  srv.server.applyConfig(next);
  const withVideo = (audioPort: number, videoPort: number) =>
    audioSdp(audioPort, '', [0, 101]) + [`m=video ${videoPort} RTP/AVP 97`, 'a=rtpmap:97 VP8/90000', 'a=sendrecv'].join('\r\n') + '\r\n';
  try {
    const id = newId();
    as.send(`REQUEST: id=${id};user1=103;user2=104`);
    assert.equal((await as.next('ACK', id)).params.get('result'), '0');
    const first = await p103.incoming();
    assert.match(first.sdp, /m=video [1-9]\d* RTP\/AVP 96 97/, 'user1 is offered H.264 and VP8');
    const [a1, v1] = [await media(), await media()];
    first.answer(withVideo(a1.port, v1.port));
    await first.waitAck();
    const second = await p104.incoming();
    assert.match(second.sdp, /m=video [1-9]\d* RTP\/AVP 97\r\n/, 'user2 is offered the video user1 accepted');
    const [a2, v2] = [await media(), await media()];
    second.answer(withVideo(a2.port, v2.port));
    await second.waitAck();
    const videoTarget = (text: string) => ({ address: '127.0.0.1', port: Number(/m=video (\d+)/.exec(text)![1]) });
    const t1 = videoTarget(first.sdp);
    const t2 = videoTarget(second.sdp);
    const frame = (b: number) => new Uint8Array(200).fill(b);
    for (let i = 0; i < 50 && !(v2.packets.some((p) => p.packet.payload[0] === 0x33) && v1.packets.some((p) => p.packet.payload[0] === 0x44)); i++) {
      v1.socket.send(encodeVideo(frame(0x33), i), t1.port, t1.address);
      v2.socket.send(encodeVideo(frame(0x44), i), t2.port, t2.address);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(v2.packets.some((p) => p.packet.payload[0] === 0x33), "user1's video reaches user2");
    assert.ok(v1.packets.some((p) => p.packet.payload[0] === 0x44), "user2's video reaches user1");
    as.send(`RELEASE: id=${id}`);
    await byeToBoth(p103, p104);
    await as.next('RESPONSE', id);
    as.send(`ACK: id=${id}`);
    await waitFor(() => rowsOf(id).length === 2, 'both legs in the records');
    for (const r of rowsOf(id)) assert.equal(r.media, 'audio+video');
  } finally {
    srv.server.applyConfig(back);
  }
});

function encodeVideo(payload: Uint8Array, seq: number): Uint8Array {
  return encodeRtp({ marker: false, payloadType: 97, sequenceNumber: seq, timestamp: seq * 3000, ssrc: 0x5678, payload });
}

test("the REQUEST's duration caps the talk time: released after it with duration-limit", async () => {
  const [p101, p102] = [await book.get('101'), await book.get('102')];
  const id = newId();
  as.send(`REQUEST: id=${id};user1=101;user2=102;duration=1`);
  assert.equal((await as.next('ACK', id)).params.get('result'), '0');
  await ringAndAnswer(p101);
  await ringAndAnswer(p102);
  await byeToBoth(p101, p102, 4000);
  const res = await as.next('RESPONSE', id);
  assert.equal(res.params.get('result'), '0');
  assert.equal(res.params.get('duration'), '1');
  as.send(`ACK: id=${id}`);
  await waitFor(() => rowsOf(id).length === 2, 'both legs in the records');
  for (const r of rowsOf(id)) assert.match(r.fci, /callTag=7\b/);
});

test('user1 hangs up while user2 rings: user2 gets CANCEL, RESPONSE result 1', async () => {
  const [p103, p104] = [await book.get('103'), await book.get('104')];
  const id = newId();
  as.send(`REQUEST: id=${id};user1=103;user2=104`);
  assert.equal((await as.next('ACK', id)).params.get('result'), '0');
  const { inc } = await ringAndAnswer(p103);
  const ringing = await p104.incoming();
  ringing.ring();
  assert.equal((await inc.bye()).status, 200);
  const cancel = await p104.waitRequest('CANCEL');
  p104.respond(cancel, 200, 'OK');
  ringing.reject(487, 'Request Terminated');
  const res = await as.next('RESPONSE', id);
  assert.equal(res.params.get('result'), '1');
  assert.equal(res.params.get('cause'), '16');
  as.send(`ACK: id=${id}`);
  await waitFor(() => rowsOf(id).length === 2, 'both legs in the records');
});

test('a CANCEL from another port of the AS gets the RESPONSE there too, and may ACK it', async () => {
  const p105 = await book.get('105');
  const other = await AsPeer.open(srv.server.callback.port);
  try {
    const id = newId();
    as.send(`REQUEST: id=${id};user1=105;user2=106`);
    assert.equal((await as.next('ACK', id)).params.get('result'), '0');
    const inc = await p105.incoming();
    inc.ring();
    other.send(`CANCEL: id=${id};reason=operator`);
    const cancel = await p105.waitRequest('CANCEL');
    p105.respond(cancel, 200, 'OK');
    inc.reject(487, 'Request Terminated');
    const [a, b] = [await as.next('RESPONSE', id), await other.next('RESPONSE', id)];
    assert.equal(a.params.get('result'), '3');
    assert.equal(b.params.get('result'), '3');
    other.send(`ACK: id=${id}`);
    const fence = newId();
    other.send(`REQUEST: id=${fence};user1=990;user2=991`);
    await other.next('ACK', fence);
    const count = as.all('RESPONSE', id).length;
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal(as.all('RESPONSE', id).length, count, 'the ACK from the canceller stops the resending');
  } finally {
    other.close();
  }
});
