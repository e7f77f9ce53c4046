/**
 * SRTP calls through the relay over real UDP (docs/MEDIA.md, "SRTP"): SDES offers and answers
 * pass with their proto and a=crypto lines intact and the relay forwards the (opaque) SRTP
 * packets both ways; a callee that answers RTP/AVP to RTP/SAVP, refuses the line or answers 488
 * gives the caller 488 with cause 88 (the callee is ACKed and sent BYE, the record kept);
 * media.requireSrtpOverTls refuses keys that did not come over TLS; re-INVITEs keep the keys; the
 * IVR, which terminates media itself, refuses an SRTP-only offer.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { audioSdp, Phone, PhoneBook } from '../helpers/phone.js';
import { cdrOf } from '../helpers/cdr-files.js';
import { waitFor } from '../helpers/keep-alive.js';

const KEY_A1 = 'a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4';
const KEY_A2 = 'a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20|1:4';
const KEY_B1 = 'a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4';
const KEY_A3 = 'a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^20|1:4';

let srv: TestServer;
let book: PhoneBook;
const closers: Array<() => void> = [];

const IVR_XML = `<?xml version="1.0" encoding="utf-8"?>
<mssxml version="1">
  <action name="bye" method="hangup"/>
</mssxml>
`;

before(async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mss-srtp-'));
  mkdirSync(join(dataDir, 'ivr'), { recursive: true });
  writeFileSync(join(dataDir, 'ivr', 'bye.xml'), IVR_XML);
  srv = await startTestServer({
    dataDir,
    users: ['701', '702', '703', '704', '705', '706', '707', '708', '709', '710'].map((n) => [n, `pw${n}`] as [string, string]),
    configure: (c) => {
      c.auth.algorithms = ['MD5'];
      c.media.relay = 'always';
      c.ivr.numbers = { '800': 'bye.xml' };
    },
  });
  book = new PhoneBook(() => srv.port);
});

after(async () => {
  for (const c of closers) c();
  book.closeAll();
  await srv.stop();
});

/** An SDES-SRTP audio offer or answer at 127.0.0.1:`port`. */
function srtpSdp(port: number, keys: string[], proto = 'RTP/SAVP', extra: string[] = []): string {
  return [
    'v=0', `o=t ${port} 1 IN IP4 127.0.0.1`, 's=-', 'c=IN IP4 127.0.0.1', 't=0 0',
    `m=audio ${port} ${proto} 0 101`, 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:101 telephone-event/8000', ...keys, ...extra, 'a=sendrecv', '',
  ].join('\r\n');
}

/** The lines of the first m= section of `sdp`, from its m= line on. */
function audioSection(sdp: string): string[] {
  const lines = sdp.split(/\r\n/).filter((l) => l !== '');
  return lines.slice(lines.findIndex((l) => l.startsWith('m=audio')));
}

async function mediaSocket(): Promise<{ socket: dgram.Socket; port: number; got: Buffer[] }> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  const m = { socket, port: socket.address().port, got: [] as Buffer[] };
  socket.on('message', (d) => m.got.push(d));
  closers.push(() => socket.close());
  return m;
}

/** An SRTP-looking packet: an RTP header, an encrypted-looking payload and a 10-byte auth tag. */
function srtpPacket(seq: number): Buffer {
  const head = Buffer.alloc(12);
  head[0] = 0x80;
  head[1] = 0;
  head.writeUInt16BE(seq, 2);
  head.writeUInt32BE(seq * 160, 4);
  head.writeUInt32BE(0xdecafbad, 8);
  return Buffer.concat([head, randomBytes(160), randomBytes(10)]);
}

function sdpPort(sdp: string): number {
  return Number(/m=audio (\d+)/.exec(sdp)![1]);
}

function logEvents(server: TestServer, event: string): Array<Record<string, unknown>> {
  return server.logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.event === event);
}

test('SDES-SRTP call: proto and a=crypto lines pass intact both ways, the relay carries the SRTP packets both ways', async () => {
  const a = await book.get('701');
  const b = await book.get('702');
  const am = await mediaSocket();
  const bm = await mediaSocket();
  const offer = srtpSdp(am.port, [KEY_A1, KEY_A2], 'RTP/SAVP', ['a=rtcp-mux']);
  const call = await a.invite('702', offer);
  const inc = await b.incoming();
  const offered = inc.sdp;
  assert.notEqual(sdpPort(offered), am.port, 'the callee is told the relay port');
  assert.deepEqual(audioSection(offered), [`m=audio ${sdpPort(offered)} RTP/SAVP 0 101`, ...audioSection(offer).slice(1)], 'only the port changed in the m= section');
  inc.answer(srtpSdp(bm.port, [KEY_B1], 'RTP/SAVP', ['a=rtcp-mux']));
  const ok = await call.final();
  assert.equal(ok.status, 200);
  const answered = ok.body.toString();
  assert.deepEqual(audioSection(answered), [`m=audio ${sdpPort(answered)} RTP/SAVP 0 101`, 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:101 telephone-event/8000', KEY_B1, 'a=rtcp-mux', 'a=sendrecv']);
  await inc.waitAck();

  const N = 40;
  const sentA: Buffer[] = [];
  const sentB: Buffer[] = [];
  for (let i = 0; i < N; i++) {
    const pa = srtpPacket(i);
    const pb = srtpPacket(1000 + i);
    sentA.push(pa);
    sentB.push(pb);
    am.socket.send(pa, sdpPort(answered), '127.0.0.1');
    bm.socket.send(pb, sdpPort(offered), '127.0.0.1');
    if (i % 10 === 9) await new Promise((r) => setTimeout(r, 5));
  }
  await waitFor(() => am.got.length >= N && bm.got.length >= N, () => `packets both ways (A got ${am.got.length}, B got ${bm.got.length})`);
  assert.deepEqual(bm.got, sentA, 'A -> B byte for byte');
  assert.deepEqual(am.got, sentB, 'B -> A byte for byte');

  assert.equal((await call.bye()).status, 200);
  await b.answerInDialog(inc.dialog, 'BYE');
  await waitFor(() => cdrOf(srv.dataDir, call.dialog.callId) !== undefined, 'the record');
  assert.equal(cdrOf(srv.dataDir, call.dialog.callId)?.fci, 'callTag=1;cause=16');
  // Keys crossed UDP: one info line for the call (media.requireSrtpOverTls is off).
  const warned = logEvents(srv, 'call.srtp_keys_in_clear').filter((l) => l.callId !== undefined);
  assert.ok(warned.length >= 1);
  assert.equal(warned.filter((l) => l.caller === '701').length, 1, 'one line per call');
  assert.equal(warned[0]!.level, 'info');
});

test('a DTLS-SRTP offer passes with a=fingerprint and a=setup, answered likewise', async () => {
  const a = await book.get('709');
  const b = await book.get('710');
  const fp = 'a=fingerprint:sha-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:4B:C8:C3:AF:3D:4C:44:9A:22:27:F7:8D';
  const call = await a.invite('710', srtpSdp(45000, [], 'UDP/TLS/RTP/SAVP', [fp, 'a=setup:actpass']));
  const inc = await b.incoming();
  assert.match(inc.sdp, /^m=audio \d+ UDP\/TLS\/RTP\/SAVP 0 101$/m);
  assert.ok(inc.sdp.includes(`${fp}\r\na=setup:actpass\r\n`));
  inc.answer(srtpSdp(45010, [], 'UDP/TLS/RTP/SAVP', [fp, 'a=setup:active']));
  const ok = await call.final();
  assert.equal(ok.status, 200);
  assert.match(ok.body.toString(), /a=setup:active/);
  assert.equal((await call.bye()).status, 200);
  await b.answerInDialog(inc.dialog, 'BYE');
});

test('callee answers RTP/AVP to an RTP/SAVP offer: 488 cause 88 to the caller, ACK and BYE to the callee, record callTag 4', async () => {
  const a = await book.get('703');
  const b = await book.get('704');
  const call = await a.invite('704', srtpSdp(44000, [KEY_A1]));
  const inc = await b.incoming();
  inc.answer(audioSdp(44010));
  const res = await call.final();
  assert.equal(res.status, 488);
  assert.match(res.reason, /SRTP/);
  assert.match(res.headers.get('reason') ?? '', /Q\.850;cause=88/);
  await inc.waitAck();
  const bye = await b.waitRequest('BYE');
  assert.equal(bye.headers.get('call-id'), inc.dialog.callId);
  assert.match(bye.headers.get('reason') ?? '', /cause=88/);
  b.respond(bye, 200, 'OK');
  await waitFor(() => cdrOf(srv.dataDir, call.dialog.callId) !== undefined, 'the record');
  const rec = cdrOf(srv.dataDir, call.dialog.callId)!;
  assert.equal(rec.fci, 'callTag=4;cause=88');
  assert.equal(rec.status, '488');
  const line = logEvents(srv, 'call.srtp_mismatch').find((l) => l.caller === '703');
  assert.match(String(line?.problem), /offered RTP\/SAVP and answered RTP\/AVP/);
});

test('callee refuses the SRTP line (port 0): 488 cause 88', async () => {
  const a = await book.get('703');
  const b = await book.get('704');
  const call = await a.invite('704', srtpSdp(44100, [KEY_A1]));
  const inc = await b.incoming();
  inc.answer(srtpSdp(0, []));
  const res = await call.final();
  assert.equal(res.status, 488);
  assert.match(res.headers.get('reason') ?? '', /cause=88/);
  await inc.waitAck();
  b.respond(await b.waitRequest('BYE'), 200, 'OK');
});

test('callee answers 488 to an SRTP offer: the caller gets 488 with cause 88', async () => {
  const a = await book.get('705');
  const b = await book.get('706');
  const call = await a.invite('706', srtpSdp(44200, [KEY_A1]));
  const inc = await b.incoming();
  inc.reject(488, 'Not Acceptable Here');
  const res = await call.final();
  assert.equal(res.status, 488);
  assert.match(res.reason, /SRTP/);
  assert.match(res.headers.get('reason') ?? '', /Q\.850;cause=88/);
  await waitFor(() => cdrOf(srv.dataDir, call.dialog.callId) !== undefined, 'the record');
  assert.equal(cdrOf(srv.dataDir, call.dialog.callId)?.fci, 'callTag=4;cause=88');
});

test('an early answer (183) of RTP/AVP to an SRTP offer: 488 to the caller, CANCEL to the callee', async () => {
  const a = await book.get('705');
  const b = await book.get('706');
  const call = await a.invite('706', srtpSdp(44300, [KEY_A1]));
  const inc = await b.incoming();
  inc.ring(183, audioSdp(44310));
  const res = await call.final();
  assert.equal(res.status, 488);
  assert.match(res.headers.get('reason') ?? '', /cause=88/);
  const cancel = await b.waitRequest('CANCEL');
  b.respond(cancel, 200, 'OK');
  inc.reject(487, 'Request Terminated');
});

test('a plain RTP offer answered with RTP/SAVP is the same protocol error: 488', async () => {
  const a = await book.get('707');
  const b = await book.get('708');
  const call = await a.invite('708', audioSdp(44400));
  const inc = await b.incoming();
  inc.answer(srtpSdp(44410, [KEY_B1]));
  const res = await call.final();
  assert.equal(res.status, 488);
  assert.match(res.headers.get('reason') ?? '', /cause=88/);
  await inc.waitAck();
  b.respond(await b.waitRequest('BYE'), 200, 'OK');
});

test('re-INVITE with new SRTP keys: both offer and answer keep their a=crypto lines and proto', async () => {
  const a = await book.get('707');
  const b = await book.get('708');
  const call = await a.invite('708', srtpSdp(44500, [KEY_A1]));
  const inc = await b.incoming();
  inc.answer(srtpSdp(44510, [KEY_B1]));
  assert.equal((await call.final()).status, 200);
  await inc.waitAck();
  // A re-keys (and puts B on hold) in a re-INVITE.
  a.sendInDialog(call.dialog, 'INVITE', { body: srtpSdp(44500, [KEY_A3, KEY_A2]).replace('a=sendrecv', 'a=sendonly') });
  const reinv = await b.answerInDialog(inc.dialog, 'INVITE', srtpSdp(44510, [KEY_B1]).replace('a=sendrecv', 'a=recvonly'));
  const re = reinv.body.toString();
  assert.match(re, /^m=audio \d+ RTP\/SAVP 0 101$/m);
  assert.ok(re.includes(`${KEY_A3}\r\n${KEY_A2}\r\na=sendonly`), re);
  const ok = await a.waitResponse((r) => r.headers.get('call-id') === call.dialog.callId && /INVITE/.test(r.headers.get('cseq') ?? '') && r.status === 200);
  assert.match(ok.body.toString(), /^m=audio \d+ RTP\/SAVP 0 101$/m);
  assert.ok(ok.body.toString().includes(`${KEY_B1}\r\na=recvonly`));
  call.dialog.cseq = Number(/^(\d+)/.exec(ok.headers.get('cseq')!)![1]);
  call.ack();
  assert.equal((await call.bye()).status, 200);
  await b.answerInDialog(inc.dialog, 'BYE');
});

test('the IVR terminates media itself: an SRTP-only offer gets 488 (cause 88), SRTP beside plain audio gets that line refused', async () => {
  const a = await book.get('701');
  const call = await a.invite('800', srtpSdp(44600, [KEY_A1]));
  const res = await call.final();
  assert.equal(res.status, 488);
  assert.match(res.reason, /SRTP/);
  assert.match(res.headers.get('reason') ?? '', /cause=88/);

  const mixed = srtpSdp(44610, [KEY_A1]) + audioSdp(44612, '', [0]).split('\r\n').filter((l) => /^(m=|a=rtpmap)/.test(l)).join('\r\n') + '\r\n';
  const call2 = await a.invite('800', mixed);
  const ok = await call2.final();
  assert.equal(ok.status, 200);
  const answer = ok.body.toString();
  assert.match(answer, /^m=audio 0 RTP\/SAVP 0 101$/m);
  assert.match(answer, /^m=audio [1-9]\d* RTP\/AVP 0$/m);
  assert.doesNotMatch(answer, /a=crypto/);
  // The IVR file hangs up at once.
  const bye = await a.waitRequest('BYE');
  a.respond(bye, 200, 'OK');
});

test('media.requireSrtpOverTls: an offer with SDES keys over UDP gets 488 with a reason and a log line; plain RTP still calls', async () => {
  const local = await startTestServer({
    users: [['721', 'pw721'], ['722', 'pw722']],
    configure: (c) => {
      c.auth.algorithms = ['MD5'];
      c.media.requireSrtpOverTls = true;
    },
  });
  const a = await Phone.open('721', 'pw721', local.port);
  const b = await Phone.open('722', 'pw722', local.port);
  try {
    await a.register();
    await b.register();
    const call = await a.invite('722', srtpSdp(44700, [KEY_A1]));
    const res = await call.final();
    assert.equal(res.status, 488);
    assert.match(res.reason, /over TLS only/);
    assert.match(res.headers.get('reason') ?? '', /Q\.850;cause=57/);
    assert.ok(await b.quiet((m) => m.kind === 'request' && m.method === 'INVITE', 300), 'the callee is never called');
    const line = logEvents(local, 'call.srtp_refused')[0];
    assert.equal(line?.transport, 'udp');
    assert.match(String(line?.reason), /requireSrtpOverTls/);
    await waitFor(() => cdrOf(local.dataDir, call.dialog.callId) !== undefined, 'the record');
    assert.equal(cdrOf(local.dataDir, call.dialog.callId)?.fci, 'callTag=4;cause=57');

    const plain = await a.invite('722', audioSdp(44710));
    const inc = await b.incoming();
    inc.answer(audioSdp(44720));
    assert.equal((await plain.final()).status, 200);
    await inc.waitAck();
    // Keys in a re-INVITE over UDP are refused the same way, and the call stays up.
    a.sendInDialog(plain.dialog, 'INVITE', { body: srtpSdp(44710, [KEY_A1]) });
    const re = await a.waitResponse((r) => r.headers.get('call-id') === plain.dialog.callId && /INVITE/.test(r.headers.get('cseq') ?? '') && r.status >= 200);
    assert.equal(re.status, 488);
    plain.dialog.cseq = Number(/^(\d+)/.exec(re.headers.get('cseq')!)![1]);
    assert.equal((await plain.bye()).status, 200);
    await b.answerInDialog(inc.dialog, 'BYE');
  } finally {
    a.close();
    b.close();
    await local.stop();
  }
});
