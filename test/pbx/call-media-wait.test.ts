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

/** Makes the relay's next session arrive only when the test says so. */
function holdNextSession(): { asked: Promise<void>; release(): void } {
  const relay = (srv.server as unknown as { relay: MediaRelay }).relay;
  const real = relay.openSession.bind(relay);
  let asked!: () => void;
  let release!: () => void;
  const askedP = new Promise<void>((r) => (asked = r));
  const gate = new Promise<void>((r) => (release = r));
  relay.openSession = (label: string) => {
    relay.openSession = real;
    asked();
    return gate.then(() => real(label)) as Promise<RelaySession | null>;
  };
  return { asked: askedP, release };
}

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
  held.release();
  const final = await call.final();
  assert.equal(final.status, 487);
  assert.equal(await b.quiet((m) => 'method' in m && m.method === 'INVITE', 150), true, 'the callee is never called');
  assert.equal(cdrOf(srv.dataDir, call.dialog.callId)?.fci, 'callTag=3;cause=16');
  assert.equal(relaySessions(), 0, 'the ports that came late went back');
});

test('a shutdown while the ports are being bound: the server stops, the waiting call is ended and recorded', async () => {
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
    const relay = (own.server as unknown as { relay: MediaRelay }).relay;
    const real = relay.openSession.bind(relay);
    let asked!: () => void;
    const askedP = new Promise<void>((r) => (asked = r));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    relay.openSession = (label: string) => {
      asked();
      return gate.then(() => real(label)) as Promise<RelaySession | null>;
    };
    const a = await ownBook.get('611');
    await ownBook.get('612');
    const call = await a.invite('612', audioSdp(41040));
    await askedP;
    const stopped = own.stop();
    release();
    await stopped;
    const rec = cdrOf(own.dataDir, call.dialog.callId);
    assert.ok(rec, 'the waiting call has its record');
    assert.equal(rec.status, '503');
    assert.ok(own.logLines.some((l) => l.includes('"event":"server.stopped"')));
    assert.ok(!own.logLines.some((l) => l.includes('call.admit_failed')), own.logLines.filter((l) => l.includes('admit')).join('\n'));
  } finally {
    ownBook.closeAll();
  }
});
