/**
 * IVR calls end to end over real UDP: a scripted phone calls an IVR number, hears the prompt
 * (RTP from the server), presses keys (RFC 4733, SIP INFO, in-band tones) and is sent on to the
 * extension it dialled; busy takes the `busy` branch; a caller hanging up mid-prompt leaves
 * nothing behind.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestServer, type TestServer } from '../../helpers/server.js';
import { audioSdp, Phone } from '../../helpers/phone.js';
import { waitFor } from '../../helpers/keep-alive.js';
import { toneWav } from '../../helpers/wav.js';
import { cdrRows } from '../../helpers/cdr-files.js';
import { hasSipp, SHARED, startSippUas, tempDir } from '../../e2e/harness.js';
import { RtpPeer } from '../../helpers/rtp-peer.js';
import { dtmfPayload, silencePayload } from '../../../lib/media/endpoint/tones.js';
import { sharedPacer } from '../../../lib/media/endpoint/pacer.js';

const MENU = `<?xml version="1.0" encoding="utf-8"?>
<mssxml version="1">
  <action name="menu" method="collect">
    <voice>welcome.wav</voice>
    <maxdigits>3</maxdigits>
    <timeout>8</timeout>
    <interdigit>3</interdigit>
    <retries>0</retries>
    <match prefix="5" nextaction="dial"/>
    <noinput nextaction="bye"/>
    <nomatch nextaction="bye"/>
  </action>
  <action name="dial" method="callto">
    <destination>\${digits}</destination>
    <monitor-events>
      <monitor-event detection="busy" nextaction="busy"/>
    </monitor-events>
  </action>
  <action name="busy" method="play" nextaction="bye">
    <voice>busy.wav</voice>
  </action>
  <action name="bye" method="hangup"/>
</mssxml>
`;

let srv: TestServer;
const phones: Phone[] = [];

before(async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mss-ivr-'));
  const ivrDir = join(dataDir, 'ivr');
  mkdirSync(join(ivrDir, 'prompts', 'en'), { recursive: true });
  writeFileSync(join(ivrDir, 'menu.xml'), MENU);
  // Long enough that a caller can hang up in the middle of it.
  writeFileSync(join(ivrDir, 'prompts', 'en', 'welcome.wav'), toneWav(3000));
  writeFileSync(join(ivrDir, 'prompts', 'busy.wav'), toneWav(400));
  srv = await startTestServer({
    dataDir,
    users: [['501', 'pw501'], ['502', 'pw502'], ['503', 'pw503'], ['504', 'pw504'], ['505', 'pw505']],
    configure: (c) => {
      c.auth.algorithms = ['MD5'];
      c.media.relay = 'always';
      c.ivr.numbers = { '800': 'menu.xml', '801': 'missing.xml' };
    },
  });
});

after(async () => {
  if (process.env.IVR_DEBUG) for (const l of srv.logLines) if (/ivr.|call./.test(l)) console.error(l);
  for (const p of phones) p.close();
  await srv.stop();
});

/** One registered phone per extension for the whole file (a second would make the server fork to both). */
async function phone(user: string): Promise<Phone> {
  const known = phones.find((p) => p.user === user);
  if (known) return known;
  const p = await Phone.open(user, `pw${user}`, srv.port);
  phones.push(p);
  await p.register();
  return p;
}

/** The caller's media: an RTP socket that keeps what it receives, and sends to the server's address from the answer. */
class CallerMedia extends RtpPeer {
  /** One key as RFC 4733 events: start, updates, and the end packet three times (one event). */
  rfc4733(key: string, pt = 101): void {
    const code = '0123456789*#'.indexOf(key);
    const ts = (this.ts += 1600);
    for (let i = 1; i <= 3; i++) this.send(pt, Uint8Array.of(code, 10, 0, i * 160), { marker: i === 1, timestamp: ts });
    for (let i = 0; i < 3; i++) this.send(pt, Uint8Array.of(code, 0x80 | 10, 0, 640), { timestamp: ts });
  }
  /** One key as tones in the PCMU audio (100 ms of tone, 100 ms of silence). */
  inband(key: string): void {
    const tone = dtmfPayload(key, 'pcmu', { durationMs: 100 });
    const quiet = silencePayload('pcmu', 100);
    for (const chunk of [tone, quiet]) {
      for (let off = 0; off < chunk.length; off += 160) {
        this.ts += 160;
        this.send(0, chunk.subarray(off, off + 160));
      }
    }
  }
}

async function callIvr(caller: Phone, media: CallerMedia, number = '800') {
  const call = await caller.invite(number, audioSdp(media.port));
  const ok = await call.final();
  assert.equal(ok.status, 200, 'the IVR answers');
  const answer = ok.body.toString();
  media.aim(answer);
  return { call, answer };
}

test('the IVR answers with G.711 and telephone-event, and plays its prompt as paced RTP', async () => {
  const caller = await phone('501');
  const media = await CallerMedia.open();
  try {
    const { call, answer } = await callIvr(caller, media);
    assert.match(answer, /m=audio \d+ RTP\/AVP 0 101/);
    assert.match(answer, /a=rtpmap:101 telephone-event\/8000/);
    media.send(0, silencePayload('pcmu', 20)); // latches the relay onto our media
    await waitFor(() => media.packets.length >= 40, 'forty prompt packets', 5000);
    const got = media.packets.slice(0, 40).map((p) => p.packet);
    for (const p of got) assert.equal(p.payloadType, 0);
    for (let i = 1; i < got.length; i++) {
      assert.equal(got[i]!.sequenceNumber, (got[i - 1]!.sequenceNumber + 1) & 0xffff, 'sequence numbers step by one');
      // 160 per 20 ms packet; more only where the server's loop stalled and the pacer skipped slots
      // (the timestamp follows the clock, RFC 3550 section 5.1).
      const step = (got[i]!.timestamp - got[i - 1]!.timestamp) >>> 0;
      assert.ok(step > 0 && step % 160 === 0 && step <= 160 * 50, `timestamps step by 160 (20 ms at 8 kHz), not ${step}`);
    }
    assert.ok(got.some((p) => p.payload.some((b) => b !== 0xff && b !== 0x7f)), 'the prompt is not silence');
    assert.equal((await call.bye()).status, 200);
  } finally {
    media.close();
  }
});

for (const how of ['rfc4733', 'info', 'inband'] as const) {
  test(`keys pressed as ${how} send the caller to the extension dialled; the call is then an ordinary relayed call`, async () => {
    const caller = await phone('501');
    const callee = await phone(how === 'rfc4733' ? '502' : how === 'info' ? '503' : '504');
    const media = await CallerMedia.open();
    try {
      const { call } = await callIvr(caller, media);
      media.send(0, silencePayload('pcmu', 20));
      await waitFor(() => media.packets.length >= 5, 'the prompt starting', 5000);
      for (const key of callee.user) {
        if (how === 'rfc4733') media.rfc4733(key);
        else if (how === 'inband') media.inband(key);
        else caller.sendInDialog(call.dialog, 'INFO', { body: `Signal=${key}\r\nDuration=160\r\n`, extra: ['Content-Type: application/dtmf-relay'] });
      }
      const inc = await callee.incoming(8000);
      assert.match(inc.sdp, /m=audio \d+ RTP\/AVP 0 101\r\n/, 'the callee is offered the codec the caller already uses');
      const calleeMedia = await CallerMedia.open();
      try {
        inc.answer(audioSdp(calleeMedia.port).replace('RTP/AVP 0 8 101', 'RTP/AVP 0 101'));
        await inc.waitAck();
        calleeMedia.aim(inc.sdp);
        // Media now flows caller <-> callee through the relay.
        // Both send every 20 ms as phones do (the relay may take the new target a moment after the ACK).
        const before = calleeMedia.packets.length;
        await waitFor(() => {
          media.send(0, silencePayload('pcmu', 20));
          calleeMedia.send(0, silencePayload('pcmu', 20));
          return calleeMedia.packets.length > before;
        }, 'caller audio at the callee', 3000, 20);
        const heard = media.packets.length;
        await waitFor(() => {
          calleeMedia.send(0, new Uint8Array(160).fill(0x42));
          return media.packets.some((p, i) => i >= heard && p.packet.payload[0] === 0x42);
        }, 'callee audio at the caller', 3000, 20);
        assert.equal((await call.bye()).status, 200);
        const bye = await callee.waitRequest('BYE', 3000);
        callee.respond(bye, 200, 'OK');
      } finally {
        calleeMedia.close();
      }
      await waitFor(() => srv.server.ivr.activeCount === 0, 'the IVR call to end', 3000);
      const rows = cdrRows(srv.dataDir).filter((r) => r.call_id === call.dialog.callId);
      assert.ok(rows.some((r) => r.route === 'ivr:menu.xml' && r.callee === '800'), 'the IVR part is recorded with route ivr:<file>');
      assert.ok(rows.some((r) => r.route === 'local' && r.callee === callee.user && r.answer_time !== ''), 'the onward call is recorded as usual');
    } finally {
      media.close();
    }
  });
}

test('a busy destination takes the busy branch: the busy prompt, then the IVR hangs up', async () => {
  const caller = await phone('501');
  const callee = await phone('502');
  const media = await CallerMedia.open();
  try {
    await callIvr(caller, media);
    media.send(0, silencePayload('pcmu', 20));
    for (const key of '502') media.rfc4733(key);
    const inc = await callee.incoming(8000);
    inc.reject(486, 'Busy Here');
    const bye = await caller.waitRequest('BYE', 8000);
    assert.match(bye.headers.get('reason') ?? '', /cause=16/);
    caller.respond(bye, 200, 'OK');
    await waitFor(() => srv.server.ivr.activeCount === 0, 'the IVR call to end', 3000);
  } finally {
    media.close();
  }
});

test('a caller hanging up mid-prompt leaves no IVR session and no relay session behind', async () => {
  const caller = await phone('501');
  const media = await CallerMedia.open();
  try {
    const { call } = await callIvr(caller, media);
    media.send(0, silencePayload('pcmu', 20));
    await waitFor(() => media.packets.length >= 5, 'the prompt starting', 5000);
    assert.equal(srv.server.ivr.activeCount, 1);
    assert.equal((await call.bye()).status, 200);
    await waitFor(() => srv.server.ivr.activeCount === 0, 'the IVR call to end', 3000);
    const relay = (srv.server as unknown as { relay: { sessionCount: number } }).relay;
    await waitFor(() => relay.sessionCount === 0, 'the relay session to close', 3000);
    assert.equal(sharedPacer().streamCount, 0, 'no prompt stream is left on the pacer');
  } finally {
    media.close();
  }
});

test('a number bound to a missing file answers 404 and says why in the log', async () => {
  const caller = await phone('501');
  const call = await caller.invite('801', audioSdp(40000));
  assert.equal((await call.final()).status, 404);
  assert.ok(srv.logLines.some((l) => l.includes('ivr.number_unusable') && l.includes('missing.xml')));
});

test('a reload binds a new number at once; beyond ivr.maxSessions a caller gets 486', async () => {
  const next = structuredClone(srv.config);
  next.ivr.numbers = { ...next.ivr.numbers, '802': 'menu.xml' };
  next.ivr.maxSessions = 1;
  const result = srv.server.applyConfig(next);
  assert.ok(result.applied.includes('ivr.numbers') && result.applied.includes('ivr.maxSessions'), JSON.stringify(result));
  const caller = await phone('501');
  const media = await CallerMedia.open();
  const second = await CallerMedia.open();
  try {
    const { call } = await callIvr(caller, media, '802');
    const busy = await caller.invite('800', audioSdp(second.port));
    assert.equal((await busy.final()).status, 486, 'one IVR session at most');
    assert.equal((await call.bye()).status, 200);
    await waitFor(() => srv.server.ivr.activeCount === 0, 'the IVR call to end', 3000);
  } finally {
    media.close();
    second.close();
    const back = structuredClone(srv.config);
    back.ivr.maxSessions = 200;
    srv.server.applyConfig(back);
  }
});

test('sipp: keys pressed at the IVR send the call to a SIPp UAS registered as the extension dialled', { skip: !hasSipp() && 'sipp is not installed (apt-get install sip-tester)' }, async (t) => {
  const uas = await startSippUas(['-sf', join(SHARED, 'lab/sipp/uas_call.xml'), '-timeout', '60', '-m', '1'], tempDir('mss-ivr-uas-'));
  t.after(() => uas.stop());
  const registrar = await Phone.open('505', 'pw505', srv.port);
  phones.push(registrar);
  await registrar.register(600, `<sip:505@127.0.0.1:${uas.port}>`);
  const caller = await phone('501');
  const media = await CallerMedia.open();
  try {
    const { call } = await callIvr(caller, media);
    media.send(0, silencePayload('pcmu', 20));
    for (const key of '505') media.rfc4733(key);
    await waitFor(() => cdrRows(srv.dataDir).some((r) => r.call_id === call.dialog.callId && r.route === 'ivr:menu.xml'), 'the handover (the IVR part is recorded)', 8000);
    assert.equal((await call.bye()).status, 200);
    await waitFor(
      () => cdrRows(srv.dataDir).some((r) => r.call_id === call.dialog.callId && r.route === 'local' && r.callee === '505' && r.answer_time !== '' && r.fci.includes('callTag=1')),
      'the answered call to the SIPp UAS, ended by the caller, in the records',
      5000,
    );
  } finally {
    media.close();
  }
});

test('a caller that sends no media is released after media.inactivityTimeout (cause 102)', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mss-ivr-quiet-'));
  mkdirSync(join(dataDir, 'ivr', 'prompts'), { recursive: true });
  writeFileSync(join(dataDir, 'ivr', 'menu.xml'), MENU);
  writeFileSync(join(dataDir, 'ivr', 'prompts', 'welcome.wav'), toneWav(3000));
  writeFileSync(join(dataDir, 'ivr', 'prompts', 'busy.wav'), toneWav(400));
  const quiet = await startTestServer({
    dataDir,
    users: [['501', 'pw501']],
    configure: (c) => {
      c.auth.algorithms = ['MD5'];
      c.media.inactivityTimeout = 1;
      c.ivr.numbers = { '800': 'menu.xml' };
    },
  });
  t.after(() => quiet.stop());
  const caller = await Phone.open('501', 'pw501', quiet.port);
  t.after(() => caller.close());
  await caller.register();
  const call = await caller.invite('800', audioSdp(40002));
  assert.equal((await call.final()).status, 200);
  const bye = await caller.waitRequest('BYE', 5000);
  assert.match(bye.headers.get('reason') ?? '', /cause=102/);
  caller.respond(bye, 200, 'OK');
  await waitFor(() => quiet.server.ivr.activeCount === 0, 'the IVR call to end', 3000);
});
