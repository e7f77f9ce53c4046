/**
 * A new call whose relay ports are still being bound (the Node engine after a burst emptied its
 * reserve) waits for them: it goes on when they come, and a CANCEL or a shutdown meanwhile ends
 * it cleanly. The relay is real; only the moment its ports arrive is held by the test.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { MediaRelay, RelaySession } from '../../lib/media/relay.js';
import { cdrOf } from '../helpers/cdr-files.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { audioSdp, PhoneBook } from '../helpers/phone.js';

let srv: TestServer;
const book = new PhoneBook(() => srv.port);

before(async () => {
  srv = await startTestServer({
    users: [['601', 'pw601'], ['602', 'pw602']],
    configure: (c) => {
      c.auth.algorithms = ['MD5'];
      c.media.relay = 'always';
      c.media.engine = 'node';
    },
  });
});

after(async () => {
  book.closeAll();
  await srv.stop();
});

/**
 * Makes the next session of `server`'s relay arrive only when the test says so; `delivered`
 * settles with what the relay then handed over.
 */
function holdNextSession(server = srv): { asked: Promise<void>; release(): void; delivered: Promise<RelaySession | null> } {
  const relay = (server.server as unknown as { relay: MediaRelay }).relay;
  const real = relay.openSession.bind(relay);
  let asked!: () => void;
  let release!: () => void;
  const askedP = new Promise<void>((r) => (asked = r));
  const gate = new Promise<void>((r) => (release = r));
  const delivered = gate.then(() => real('held'));
  relay.openSession = () => {
    relay.openSession = real;
    asked();
    return delivered;
  };
  return { asked: askedP, release, delivered };
}

/** Lets every promise reaction queued so far run (no I/O, no timer involved). */
const microtasksDone = (): Promise<void> => new Promise((r) => setImmediate(r));

function relaySessions(): number {
  return (srv.server as unknown as { relay: MediaRelay }).relay.sessionCount;
}

test('the INVITE waits for its relay ports, then rings the callee through the relay', async () => {
  const a = await book.get('601');
  const b = await book.get('602');
  const held = holdNextSession();
  const call = await a.invite('602', audioSdp(41000));
  await held.asked;
  assert.equal(await b.quiet((m) => 'method' in m && m.method === 'INVITE', 150), true, 'the callee is not called before the ports are there');
  held.release();
  const inc = await b.incoming();
  assert.doesNotMatch(inc.sdp, /m=audio 41000/, 'the offer points at the relay');
  inc.answer(audioSdp(41010));
  const ok = await call.final();
  assert.equal(ok.status, 200);
  assert.doesNotMatch(ok.body.toString(), /m=audio 41010/, 'the answer points at the relay');
  await inc.waitAck();
  assert.equal((await call.bye()).status, 200);
  await b.answerInDialog(inc.dialog, 'BYE');
  assert.equal(cdrOf(srv.dataDir, call.dialog.callId)?.fci, 'callTag=1;cause=16');
  assert.equal(relaySessions(), 0);
});

test('a CANCEL while the ports are being bound: 487, a caller-cancel record, no session left', async () => {
  const a = await book.get('601');
  const b = await book.get('602');
  const held = holdNextSession();
  const call = await a.invite('602', audioSdp(41020));
  await held.asked;
  call.cancel();
  const cancelOk = await a.waitResponse((r) => r.headers.get('call-id') === call.dialog.callId && /CANCEL/.test(r.headers.get('cseq') ?? ''));
  assert.equal(cancelOk.status, 200);
  const final = await call.final();
  assert.equal(final.status, 487, 'answered at once, the ports still being bound');
  assert.equal(cdrOf(srv.dataDir, call.dialog.callId)?.fci, 'callTag=3;cause=16');
  held.release();
  assert.ok(await held.delivered, 'the ports came after all');
  await microtasksDone();
  assert.equal(relaySessions(), 0, 'the ports that came late went back');
  assert.equal(await b.quiet((m) => 'method' in m && m.method === 'INVITE', 150), true, 'the callee is never called');
});

test('a shutdown while the ports are being bound: the waiting call gets 503 and its record, late ports go back', async () => {
  const own = await startTestServer({
    users: [['611', 'pw611'], ['612', 'pw612']],
    configure: (c) => {
      c.auth.algorithms = ['MD5'];
      c.media.relay = 'always';
      c.media.engine = 'node';
    },
  });
  const ownBook = new PhoneBook(() => own.port);
  try {
    const held = holdNextSession(own);
    const a = await ownBook.get('611');
    await ownBook.get('612');
    const call = await a.invite('612', audioSdp(41040));
    await held.asked;
    await own.stop();
    const final = await call.final();
    assert.equal(final.status, 503, 'refused as the server stops, not left waiting');
    const rec = cdrOf(own.dataDir, call.dialog.callId);
    assert.ok(rec, 'the waiting call has its record');
    assert.equal(rec.status, '503');
    held.release();
    await held.delivered;
    await microtasksDone();
    assert.ok(own.logLines.some((l) => l.includes('"event":"server.stopped"')));
    assert.ok(!own.logLines.some((l) => l.includes('call.admit_failed')), own.logLines.filter((l) => l.includes('admit')).join('\n'));
  } finally {
    ownBook.closeAll();
  }
});
