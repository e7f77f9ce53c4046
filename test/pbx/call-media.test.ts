import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { cdrRows } from '../helpers/cdr-files.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { Phone, registeredPair, answeredCall } from '../helpers/phone.js';
import { cli } from '../e2e/harness.js';

let srv: TestServer;
const closers: Array<() => void> = [];

before(async () => {
  srv = await startTestServer({
    users: [['501', 'pw501'], ['502', 'pw502']],
    configure: (c) => {
      c.auth.algorithms = ['MD5'];
      c.media.relay = 'always';
    },
  });
});

after(async () => {
  for (const c of closers) c();
  await srv.stop();
});

/** A media endpoint: one UDP socket per m= line, counting what arrives and from where. */
async function mediaSocket(): Promise<{ socket: dgram.Socket; port: number; received: number; from: Set<string> }> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  const m = { socket, port: socket.address().port, received: 0, from: new Set<string>() };
  socket.on('message', (_d, rinfo) => {
    m.received++;
    m.from.add(`${rinfo.address}:${rinfo.port}`);
  });
  closers.push(() => socket.close());
  return m;
}

function avSdp(audioPort: number, videoPort: number): string {
  return [
    'v=0', `o=t ${audioPort} 1 IN IP4 127.0.0.1`, 's=-', 'c=IN IP4 127.0.0.1', 't=0 0',
    `m=audio ${audioPort} RTP/AVP 0`, 'a=rtpmap:0 PCMU/8000', 'a=rtcp-mux', 'a=sendrecv',
    `m=video ${videoPort} RTP/AVP 96`, 'a=rtpmap:96 H264/90000', 'a=rtcp-mux', 'a=sendrecv', '',
  ].join('\r\n');
}

function ports(sdp: string): { audio: number; video: number; host: string } {
  return {
    audio: Number(/m=audio (\d+)/.exec(sdp)![1]),
    video: Number(/m=video (\d+)/.exec(sdp)![1]),
    host: /c=IN IP4 (\S+)/.exec(sdp)![1]!,
  };
}

/** A 172-byte RTP packet (12-byte header + 160 bytes of G.711). */
function rtp(seq: number, pt: number): Buffer {
  const b = Buffer.alloc(172);
  b[0] = 0x80;
  b[1] = pt;
  b.writeUInt16BE(seq & 0xffff, 2);
  return b;
}

async function until(cond: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

test('video call: packets cross the relay on the audio and the video m= line, in both directions', async () => {
  const a = await Phone.open('501', 'pw501', srv.port);
  const b = await Phone.open('502', 'pw502', srv.port);
  closers.push(() => a.close(), () => b.close());
  await a.register();
  await b.register();
  const aAudio = await mediaSocket();
  const aVideo = await mediaSocket();
  const bAudio = await mediaSocket();
  const bVideo = await mediaSocket();

  const call = await a.invite('502', avSdp(aAudio.port, aVideo.port));
  const inc = await b.incoming();
  const offered = ports(inc.sdp);
  assert.equal(offered.host, '127.0.0.1');
  assert.notEqual(offered.audio, aAudio.port, 'the callee is told the relay port, not the caller\'s');
  assert.notEqual(offered.video, aVideo.port);
  assert.match(inc.sdp, /m=video \d+ RTP\/AVP 96/);
  inc.answer(avSdp(bAudio.port, bVideo.port));
  const ok = await call.final();
  assert.equal(ok.status, 200);
  const answered = ports(ok.body.toString());
  assert.notEqual(answered.audio, bAudio.port);
  assert.notEqual(answered.video, bVideo.port);
  await inc.waitAck();

  const N = 50;
  for (let i = 0; i < N; i++) {
    aAudio.socket.send(rtp(i, 0), answered.audio, '127.0.0.1');
    aVideo.socket.send(rtp(i, 96), answered.video, '127.0.0.1');
    bAudio.socket.send(rtp(i, 0), offered.audio, '127.0.0.1');
    bVideo.socket.send(rtp(i, 96), offered.video, '127.0.0.1');
    if (i % 10 === 9) await new Promise((r) => setTimeout(r, 5));
  }
  await until(() => [aAudio, aVideo, bAudio, bVideo].every((m) => m.received >= N), 3000);
  assert.equal(bAudio.received, N, 'audio A -> B');
  assert.equal(bVideo.received, N, 'video A -> B');
  assert.equal(aAudio.received, N, 'audio B -> A');
  assert.equal(aVideo.received, N, 'video B -> A');
  // Each side hears the relay, never the other phone directly.
  assert.deepEqual([...bAudio.from], [`127.0.0.1:${offered.audio}`]);
  assert.deepEqual([...aVideo.from], [`127.0.0.1:${answered.video}`]);

  assert.equal((await call.bye()).status, 200);
  await b.answerInDialog(inc.dialog, 'BYE');
  const rows = cdrRows(srv.dataDir);
  const rec = rows.find((r) => r.call_id === call.dialog.callId);
  assert.equal(rec?.media, 'audio+video');
  assert.equal(rec?.fci, 'callTag=1;cause=16');
});

test('a call whose media stops is released after media.inactivityTimeout with callTag 12 / cause 102', async () => {
  const local = await startTestServer({
    users: [['601', 'pw601'], ['602', 'pw602']],
    configure: (c) => {
      c.auth.algorithms = ['MD5'];
      c.media.inactivityTimeout = 1;
    },
  });
  const [a, b] = await registeredPair(local.port, '601', '602');
  try {
    const aAudio = await mediaSocket();
    const bAudio = await mediaSocket();
    const { call, inc } = await answeredCall(a, b, avSdp(aAudio.port, aAudio.port + 2).replace(/m=video[\s\S]*$/, ''), avSdp(bAudio.port, bAudio.port + 2).replace(/m=video[\s\S]*$/, ''));
    const byeA = await a.waitRequest('BYE', 5000);
    const byeB = await b.waitRequest('BYE', 5000);
    assert.match(byeA.headers.get('reason') ?? '', /cause=102/);
    assert.match(byeB.headers.get('reason') ?? '', /cause=102/);
    const rows = cdrRows(local.dataDir);
    assert.equal(rows.find((r) => r.call_id === call.dialog.callId)?.fci, 'callTag=12;cause=102');
  } finally {
    a.close();
    b.close();
    await local.stop();
  }
});

test('cdr.format both: the server writes the call to the daily .csv and .cdr files, and cdr query reads both alike', async () => {
  const local = await startTestServer({
    users: [['611', 'pw611'], ['612', 'pw612']],
    configure: (c) => {
      c.auth.algorithms = ['MD5'];
      c.cdr.format = ['both'];
    },
  });
  const [a, b] = await registeredPair(local.port, '611', '612');
  try {
    const call = await a.invite('612', avSdp(44000, 44002).replace(/m=video[\s\S]*$/, ''));
    const inc = await b.incoming();
    inc.reject(486, 'Busy Here');
    assert.equal((await call.final()).status, 486);
    const dir = join(local.dataDir, 'cdr');
    const files = readdirSync(dir).sort();
    assert.equal(files.length, 2);
    assert.match(files[0]!, /^\d{8}\.cdr$/);
    assert.match(files[1]!, /^\d{8}\.csv$/);
    const query = (file: string) => {
      const r = cli(['cdr', 'query', join(dir, file), '--format', 'json']);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as Array<Record<string, string>>;
    };
    const fromCsv = query(files[1]!);
    const fromCdr = query(files[0]!);
    assert.deepEqual(fromCdr, fromCsv);
    assert.equal(fromCsv.find((r) => r.call_id === call.dialog.callId)?.fci, 'callTag=9;cause=17');
  } finally {
    a.close();
    b.close();
    await local.stop();
  }
});

test('an IPv6 media offer, which the relay does not carry, makes a call with direct media instead of failing', async () => {
  const [a, b] = await registeredPair(srv.port, '501', '502');
  try {
    const v6 = 'v=0\r\no=t 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=audio 48000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n';
    const call = await a.invite('502', v6);
    const inc = await b.incoming();
    assert.equal(inc.sdp, v6, 'the offer reaches the callee untouched');
    inc.answer(v6.replace('48000', '48010'));
    const ok = await call.final();
    assert.equal(ok.status, 200);
    assert.match(ok.body.toString(), /m=audio 48010/);
    await inc.waitAck();
    assert.equal((await call.bye()).status, 200);
    await b.answerInDialog(inc.dialog, 'BYE');
  } finally {
    a.close();
    b.close();
  }
});
