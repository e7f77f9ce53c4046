import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer } from '../helpers/server.js';
import { openSqliteStore } from '../../lib/store/sqlite.js';
import { Extensions } from '../../lib/pbx/extensions.js';
import { challengeParams, digestAuthorization, registerText, registerWithAuth, UdpPeer } from '../helpers/sip-peer.js';

const USERS: Array<[string, string]> = [
  ['201', 'secret201'],
  ['202', 'secret202'],
  ['203', 'secret203'],
];

test('registrar over UDP', async (t) => {
  const srv = await startTestServer({ users: USERS, configure: (c) => (c.registrar.maxContacts = 2) });
  const peer = await UdpPeer.open();
  t.after(async () => {
    peer.close();
    await srv.stop();
  });
  const base = { port: srv.port, localPort: peer.port };

  await t.test('a REGISTER without credentials is challenged with SHA-256 then MD5, qop=auth', async () => {
    const r = await peer.request(registerText({ ...base, user: '201' }), srv.port);
    assert.equal(r.status, 401);
    const values = r.headers.getAll('www-authenticate');
    assert.equal(values.length, 2);
    const [a, b] = values.map(challengeParams);
    assert.equal(a!.algorithm, 'SHA-256');
    assert.equal(b!.algorithm, 'MD5');
    for (const p of [a!, b!]) {
      assert.equal(p.realm, 'minisipserver');
      assert.equal(p.qop, 'auth');
      assert.ok(p.nonce && p.nonce.length >= 16);
    }
    assert.match(r.headers.get('to') ?? '', /;tag=/);
  });

  await t.test('clients known to give up on SHA-256 challenges (baresip, sofia-sip) get MD5 alone', async () => {
    for (const ua of ['baresip v1.0.0 (x86_64/linux)', 'calls sofia-sip/1.12.11devel']) {
      const r = await peer.request(registerText({ ...base, user: '201', callId: `ua-${ua}`, extraHeaders: [`User-Agent: ${ua}`] }), srv.port);
      assert.equal(r.status, 401);
      assert.deepEqual(r.headers.getAll('www-authenticate').map((v) => challengeParams(v).algorithm), ['MD5']);
    }
    const other = await peer.request(registerText({ ...base, user: '201', callId: 'ua-linphone', extraHeaders: ['User-Agent: Linphone/5.1'] }), srv.port);
    assert.deepEqual(other.headers.getAll('www-authenticate').map((v) => challengeParams(v).algorithm), ['SHA-256', 'MD5']);
  });

  await t.test('a correct answer (SHA-256) registers and the 200 lists the binding with its lifetime', async () => {
    const { final } = await registerWithAuth(peer, { ...base, user: '201', password: 'secret201', algorithm: 'SHA-256', callId: 'c201' });
    assert.equal(final.status, 200);
    const contacts = final.headers.list('contact');
    assert.equal(contacts.length, 1);
    assert.match(contacts[0]!, new RegExp(`^<sip:201@127\\.0\\.0\\.1:${peer.port}>;expires=(600|599)$`));
    assert.equal(srv.server.registrar.lookup('201').length, 1);
  });

  await t.test('a correct answer with MD5 registers too', async () => {
    const { final } = await registerWithAuth(peer, { ...base, user: '202', password: 'secret202', algorithm: 'MD5', callId: 'c202' });
    assert.equal(final.status, 200);
  });

  await t.test('the top Via gets received and rport (RFC 3581)', async () => {
    const r = await peer.request(registerText({ ...base, user: '201' }), srv.port);
    const via = r.headers.get('via') ?? '';
    assert.match(via, new RegExp(`;rport=${peer.port}`));
    assert.match(via, /;received=127\.0\.0\.1/);
  });

  await t.test('a wrong password gets 403, and an unknown user gets the same challenge and the same 403', async () => {
    const known = await registerWithAuth(peer, { ...base, user: '203', password: 'wrong', callId: 'w203' });
    const unknown = await registerWithAuth(peer, { ...base, user: '999', password: 'wrong', callId: 'w999' });
    assert.equal(known.challenge.status, 401);
    assert.equal(unknown.challenge.status, 401);
    const shape = (v: string) => Object.keys(challengeParams(v)).sort().join(',');
    assert.deepEqual(known.challenge.headers.getAll('www-authenticate').map(shape), unknown.challenge.headers.getAll('www-authenticate').map(shape));
    assert.equal(known.final.status, 403);
    assert.equal(unknown.final.status, 403);
    assert.equal(known.final.reason, unknown.final.reason);
    assert.deepEqual(
      known.final.headers.names.filter((n) => n !== 'via' && n !== 'call-id'),
      unknown.final.headers.names.filter((n) => n !== 'via' && n !== 'call-id'),
    );
  });

  await t.test('a replayed nonce-count is refused with a fresh challenge', async () => {
    const first = await peer.request(registerText({ ...base, user: '203', callId: 'r203', cseq: 1 }), srv.port);
    const auth = digestAuthorization({
      challenge: first.headers.getAll('www-authenticate')[0]!,
      user: '203',
      password: 'secret203',
      method: 'REGISTER',
      uri: `sip:127.0.0.1:${srv.port}`,
      nc: '00000001',
      cnonce: 'fixedcnonce',
    });
    const ok = await peer.request(registerText({ ...base, user: '203', callId: 'r203', cseq: 2, authorization: auth }), srv.port);
    assert.equal(ok.status, 200);
    const replay = await peer.request(registerText({ ...base, user: '203', callId: 'r203', cseq: 3, authorization: auth }), srv.port);
    assert.equal(replay.status, 401);
    assert.ok(replay.headers.getAll('www-authenticate').length > 0);
  });

  await t.test('a nonce the server did not issue is answered with a new challenge', async () => {
    const forged = digestAuthorization({
      challenge: 'Digest realm="minisipserver", nonce="AAAAforgedAAAA", qop="auth", algorithm=MD5',
      user: '201',
      password: 'secret201',
      method: 'REGISTER',
      uri: `sip:127.0.0.1:${srv.port}`,
    });
    const r = await peer.request(registerText({ ...base, user: '201', callId: 'f201', authorization: forged }), srv.port);
    assert.equal(r.status, 401);
    assert.doesNotMatch(r.headers.getAll('www-authenticate').join(' '), /stale=true/i);
  });

  await t.test('credentials for another extension than the To are refused', async () => {
    const first = await peer.request(registerText({ ...base, user: '202', callId: 'x202' }), srv.port);
    const auth = digestAuthorization({
      challenge: first.headers.getAll('www-authenticate')[0]!,
      user: '201',
      password: 'secret201',
      method: 'REGISTER',
      uri: `sip:127.0.0.1:${srv.port}`,
    });
    const r = await peer.request(registerText({ ...base, user: '202', callId: 'x202', cseq: 2, authorization: auth }), srv.port);
    assert.equal(r.status, 403);
  });

  await t.test('an Expires below Min-Expires gets 423 with Min-Expires', async () => {
    const { final } = await registerWithAuth(peer, { ...base, user: '202', password: 'secret202', expires: 10, callId: 'e202' });
    assert.equal(final.status, 423);
    assert.equal(final.headers.get('min-expires'), '60');
  });

  await t.test('an Expires above the maximum is shortened', async () => {
    const { final } = await registerWithAuth(peer, { ...base, user: '202', password: 'secret202', expires: 999999999999, callId: 'e202b' });
    assert.equal(final.status, 200);
    assert.ok(final.headers.list('contact').some((c) => /;expires=(3600|3599)$/.test(c)));
  });

  await t.test('several contacts per extension up to the limit; beyond it the oldest is replaced', async () => {
    for (const [i, cid] of ['m1', 'm2', 'm3'].entries()) {
      const { final } = await registerWithAuth(peer, {
        ...base,
        user: '203',
        password: 'secret203',
        callId: cid,
        contact: `<sip:203@127.0.0.1:${40000 + i}>`,
      });
      assert.equal(final.status, 200);
    }
    const contacts = srv.server.registrar.lookup('203').map((b) => b.contact);
    assert.equal(contacts.length, 2);
    assert.ok(contacts.includes('sip:203@127.0.0.1:40002'));
    assert.ok(contacts.includes('sip:203@127.0.0.1:40001'));
  });

  await t.test('Expires: 0 on one contact removes only that binding', async () => {
    const { final } = await registerWithAuth(peer, {
      ...base,
      user: '203',
      password: 'secret203',
      callId: 'm3',
      cseq: 10,
      contact: '<sip:203@127.0.0.1:40002>',
      expires: 0,
    });
    assert.equal(final.status, 200);
    assert.deepEqual(srv.server.registrar.lookup('203').map((b) => b.contact), ['sip:203@127.0.0.1:40001']);
  });

  await t.test('a REGISTER without Contact lists the current bindings and changes nothing', async () => {
    const { final } = await registerWithAuth(peer, { ...base, user: '203', password: 'secret203', contact: '', expires: null, callId: 'q203' });
    assert.equal(final.status, 200);
    assert.equal(final.headers.list('contact').length, 1);
  });

  await t.test('Contact: * needs Expires: 0, then removes every binding', async () => {
    const bad = await registerWithAuth(peer, { ...base, user: '203', password: 'secret203', contact: '*', expires: 60, callId: 's203' });
    assert.equal(bad.final.status, 400);
    const { final } = await registerWithAuth(peer, { ...base, user: '203', password: 'secret203', contact: '*', expires: 0, callId: 's203b' });
    assert.equal(final.status, 200);
    assert.equal(final.headers.list('contact').length, 0);
    assert.equal(srv.server.registrar.lookup('203').length, 0);
  });

  await t.test('a REGISTER is atomic: one refused contact leaves every binding as it was', async () => {
    await registerWithAuth(peer, { ...base, user: '202', password: 'secret202', callId: 'atomic', cseq: 20, contact: '<sip:202@127.0.0.1:41000>' });
    const { final } = await registerWithAuth(peer, {
      ...base,
      user: '202',
      password: 'secret202',
      callId: 'atomic',
      cseq: 7,
      contact: '<sip:202@127.0.0.1:41001>, <sip:202@127.0.0.1:41000>',
    });
    assert.equal(final.status, 500);
    const contacts = srv.server.registrar.lookup('202').map((b) => b.contact);
    assert.ok(!contacts.includes('sip:202@127.0.0.1:41001'), 'the new contact of the refused request was not added');
    assert.ok(contacts.includes('sip:202@127.0.0.1:41000'));
  });

  await t.test('an out-of-order CSeq on the same Call-ID is refused', async () => {
    await registerWithAuth(peer, { ...base, user: '201', password: 'secret201', callId: 'o201', cseq: 20 });
    const { final } = await registerWithAuth(peer, { ...base, user: '201', password: 'secret201', callId: 'o201', cseq: 5 });
    assert.equal(final.status, 500);
  });
});

test('auth.algorithms sets which challenges are sent and in what order; others are refused', async (t) => {
  const srv = await startTestServer({ users: USERS, configure: (c) => (c.auth.algorithms = ['MD5']) });
  const peer = await UdpPeer.open();
  t.after(async () => {
    peer.close();
    await srv.stop();
  });
  const base = { port: srv.port, localPort: peer.port };
  const r = await peer.request(registerText({ ...base, user: '201', callId: 'alg1' }), srv.port);
  assert.deepEqual(r.headers.getAll('www-authenticate').map((v) => challengeParams(v).algorithm), ['MD5']);
  const sha = digestAuthorization({
    challenge: r.headers.getAll('www-authenticate')[0]!.replace('algorithm=MD5', 'algorithm=SHA-256'),
    user: '201',
    password: 'secret201',
    method: 'REGISTER',
    uri: `sip:127.0.0.1:${srv.port}`,
  });
  const refused = await peer.request(registerText({ ...base, user: '201', callId: 'alg1', cseq: 2, authorization: sha }), srv.port);
  assert.equal(refused.status, 401, 'an algorithm that is not offered is answered with a new challenge');
});

test('limits.maxClients refuses new registrations beyond it and keeps existing ones working', async (t) => {
  const srv = await startTestServer({ users: USERS, configure: (c) => (c.limits.maxClients = 1) });
  const peer = await UdpPeer.open();
  t.after(async () => {
    peer.close();
    await srv.stop();
  });
  const base = { port: srv.port, localPort: peer.port };
  assert.equal((await registerWithAuth(peer, { ...base, user: '201', password: 'secret201', callId: 'a' })).final.status, 200);
  const second = await registerWithAuth(peer, { ...base, user: '202', password: 'secret202', callId: 'b' });
  assert.equal(second.final.status, 403);
  assert.match(second.final.reason, /limit of 1 clients reached/);
  const refresh = await registerWithAuth(peer, { ...base, user: '201', password: 'secret201', callId: 'a', cseq: 5 });
  assert.equal(refresh.final.status, 200);
});

test('an extension removed by `ext remove` while the server runs loses its bindings within seconds', async (t) => {
  const srv = await startTestServer({ users: USERS });
  const peer = await UdpPeer.open();
  t.after(async () => {
    peer.close();
    await srv.stop();
  });
  const { final } = await registerWithAuth(peer, { port: srv.port, localPort: peer.port, user: '203', password: 'secret203', callId: 'rm' });
  assert.equal(final.status, 200);
  assert.equal(srv.server.registrar.lookup('203').length, 1);
  const admin = openSqliteStore(srv.dataDir); // what `minisipserver ext remove 203` does
  assert.equal(new Extensions(admin, 'minisipserver').remove('203'), true);
  admin.close();
  const deadline = Date.now() + 5000;
  while (srv.server.registrar.lookup('203').length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.equal(srv.server.registrar.lookup('203').length, 0);
  assert.ok(srv.logLines.some((l) => l.includes('"register.extension_removed"') && l.includes('"aor":"203"')));
  const again = await registerWithAuth(peer, { port: srv.port, localPort: peer.port, user: '203', password: 'secret203', callId: 'rm2' });
  assert.equal(again.final.status, 403, 'and it can no longer register');
});

test('registrations survive a restart of the server', async () => {
  const first = await startTestServer({ users: USERS });
  const peer = await UdpPeer.open();
  try {
    const { final } = await registerWithAuth(peer, { port: first.port, localPort: peer.port, user: '201', password: 'secret201', callId: 'p' });
    assert.equal(final.status, 200);
  } finally {
    await first.stop();
  }
  const second = await startTestServer({ dataDir: first.dataDir });
  try {
    const b = second.server.registrar.lookup('201');
    assert.equal(b.length, 1);
    assert.equal(b[0]!.contact, `sip:201@127.0.0.1:${peer.port}`);
    assert.equal(b[0]!.sourcePort, peer.port);
  } finally {
    peer.close();
    await second.stop();
  }
});

test('the first start creates extensions 100..104 with random passwords, once', async () => {
  const srv = await startTestServer();
  try {
    const numbers = srv.server.store.listExtensions().map((e) => e.number);
    assert.deepEqual(numbers, ['100', '101', '102', '103', '104']);
    assert.deepEqual(srv.createdDefaults?.map((d) => d.number), numbers);
    const passwords = new Set(srv.createdDefaults!.map((d) => d.password));
    assert.equal(passwords.size, 5);
    for (const p of passwords) assert.ok(p.length >= 10);
    assert.ok(!srv.logLines.some((l) => /password/i.test(l)), 'passwords must never be logged');
  } finally {
    await srv.stop();
  }
  const again = await startTestServer({ dataDir: srv.dataDir });
  await again.stop();
  assert.equal(again.createdDefaults, null);
});
