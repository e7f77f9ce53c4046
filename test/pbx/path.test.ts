/**
 * RFC 3327 Path through a front proxy: the test plays the proxy with UDP sockets on 127.0.0.1
 * (in security.trusted), relaying the REGISTER of a phone behind it (a private Contact) with its
 * Path; calls to that phone must go through the proxy with the Path as Route.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { audioSdp, Phone } from '../helpers/phone.js';
import { challengeParams, digestAuthorization, registerText } from '../helpers/sip-peer.js';
import { cdrOf } from '../helpers/cdr-files.js';
import type { SipResponse } from '../../lib/sip/message.js';

const CONTACT = 'sip:101@10.0.0.9:5062';
const open: Phone[] = [];
const servers: TestServer[] = [];

after(async () => {
  for (const p of open) p.close();
  for (const s of servers) await s.stop();
});

async function server(opts: Parameters<typeof startTestServer>[0] = {}): Promise<TestServer> {
  const srv = await startTestServer({
    users: [['100', 'pw100'], ['101', 'pw101']],
    ...opts,
    configure: (c) => {
      c.auth.algorithms = ['MD5'];
      c.media.relay = 'never';
      opts.configure?.(c);
    },
  });
  servers.push(srv);
  return srv;
}

async function socket(user: string, srv: TestServer): Promise<Phone> {
  const p = await Phone.open(user, `pw${user}`, srv.port);
  open.push(p);
  return p;
}

let registrations = 0;

/**
 * REGISTER of user 101 (its phone behind the proxy) sent from `from` to `srv`, with digest; the
 * final response. `requestUri`: as the phone wrote it (a dispatcher may pass it on unchanged).
 */
async function relayRegister(from: Phone, srv: TestServer, extraHeaders: string[], requestUri = `sip:127.0.0.1:${srv.port}`): Promise<SipResponse> {
  const callId = `path-reg-${process.pid}-${from.port}`;
  const cseq = 2 * ++registrations;
  const o = { user: '101', port: srv.port, localPort: from.port, callId, expires: 600, contact: `<${CONTACT}>`, extraHeaders };
  const text = (c: number, authorization?: string): string =>
    registerText({ ...o, cseq: c, ...(authorization ? { authorization } : {}) }).replace(/^REGISTER \S+/, `REGISTER ${requestUri}`);
  from.sendText(text(cseq), srv.port);
  const challenge = await from.waitResponse((r) => r.headers.get('call-id') === callId, 2000);
  assert.equal(challenge.status, 401);
  const authorization = digestAuthorization({
    challenge: challenge.headers.getAll('www-authenticate').find((v) => challengeParams(v).algorithm === 'MD5')!,
    user: '101',
    password: 'pw101',
    method: 'REGISTER',
    uri: requestUri,
  });
  from.sendText(text(cseq + 1, authorization), srv.port);
  return from.waitResponse((r) => r.headers.get('call-id') === callId && /REGISTER/.test(r.headers.get('cseq') ?? ''), 2000);
}

/** Bounded wait for a condition (the binding writer flushes on its own schedule). */
async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('a REGISTER relayed with Path: the 2xx echoes it to a UA that supports path; calls reach the phone through the proxy', async () => {
  const srv = await server({ configure: (c) => (c.node.name = 'pbx-7') });
  // The proxy sends from one socket and names another in its Path: requests must follow the Path.
  const proxyIn = await socket('101', srv);
  const proxyOut = await socket('101', srv);
  const path = `<sip:127.0.0.1:${proxyOut.port};lr>`;

  const plain = await relayRegister(proxyIn, srv, [`Path: ${path}`]);
  assert.equal(plain.status, 200);
  assert.equal(plain.headers.get('path'), undefined, 'no Path in the 2xx to a UA that did not say Supported: path');
  // The phone addressed the proxy's public address, which the proxy left in the Request-URI.
  const refreshed = await relayRegister(proxyIn, srv, [`Path: ${path}`, 'Supported: path'], 'sip:192.0.2.50');
  assert.equal(refreshed.status, 200);
  assert.deepEqual(refreshed.headers.list('path'), [path], 'RFC 3327 section 5.3: the Path stored, in the 2xx');
  assert.deepEqual(srv.server.registrar.lookup('101')[0]?.path, [path]);

  const caller = await socket('100', srv);
  await caller.register();
  const call = await caller.invite('101', audioSdp(41000));
  const invite = await proxyOut.waitRequest('INVITE');
  assert.equal(invite.uri, CONTACT, 'the Request-URI is the registered contact');
  assert.deepEqual(invite.headers.list('route'), [path], 'the Path as a pre-loaded route set');
  assert.equal(await proxyIn.quiet((m) => m.kind === 'request', 100), true, 'nothing goes to the flow the REGISTER came from');
  assert.doesNotMatch(`${invite.headers.get('via')} ${invite.headers.get('contact')}`, /192\.0\.2\.50/, 'the proxy\'s address is not taken for ours');

  // The proxy record-routes and passes the phone's answer on.
  const recordRoute = `<sip:127.0.0.1:${proxyOut.port};lr;ftag=x>`;
  const calleeTag = 'callee1';
  proxyOut.respond(invite, 200, 'OK', { toTag: calleeTag, extra: [`Contact: <${CONTACT}>`, `Record-Route: ${recordRoute}`], body: audioSdp(41010) });
  const ok = await call.final();
  assert.equal(ok.status, 200);
  const ack = await proxyOut.waitRequest('ACK');
  assert.equal(ack.uri, CONTACT, 'the ACK goes to the 2xx Contact');
  assert.deepEqual(ack.headers.list('route'), [recordRoute], 'the dialog routes by the 2xx Record-Route');

  const byeOk = call.bye();
  const bye = await proxyOut.waitRequest('BYE');
  assert.equal(bye.uri, CONTACT);
  assert.deepEqual(bye.headers.list('route'), [recordRoute]);
  proxyOut.respond(bye, 200, 'OK');
  assert.equal((await byeOk).status, 200);

  await until(() => cdrOf(srv.dataDir, call.dialog.callId) !== undefined, 'the CDR line of the call');
  const rec = cdrOf(srv.dataDir, call.dialog.callId)!;
  assert.equal(rec.status, '200');
  assert.equal(rec.node, 'pbx-7', 'node.name in the CDR node column');
  assert.equal(rec.callee_address, `127.0.0.1:${proxyOut.port}`, 'the callee was reached through the proxy');
  const started = srv.logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.event === 'server.started');
  assert.equal(started?.node, 'pbx-7', 'the start line names the node');
});

test('Path from a source outside security.trusted is refused with 403 and logged once; nothing is stored', async () => {
  const srv = await server({ configure: (c) => (c.security.trusted = ['127.0.0.2']) });
  const stranger = await socket('101', srv);
  const path = `<sip:127.0.0.1:${stranger.port};lr>`;
  for (let i = 0; i < 2; i++) {
    const res = await relayRegister(stranger, srv, [`Path: ${path}`, 'Supported: path']);
    assert.equal(res.status, 403);
    assert.match(res.reason, /Path is accepted only from a trusted proxy/);
  }
  assert.deepEqual(srv.server.registrar.lookup('101'), [], 'no binding was made');
  const refusals = srv.logLines.filter((l) => l.includes('"register.path_refused"'));
  assert.equal(refusals.length, 1, 'a proxy left out of security.trusted is logged once, not per REGISTER');
  assert.match(refusals[0]!, /security\.trusted/);
  // The same user without Path registers as usual: the refusal is about Path alone.
  assert.equal((await relayRegister(stranger, srv, [])).status, 200);
  assert.equal(srv.server.registrar.lookup('101')[0]?.path, undefined);
});

test('a Path whose first URI is a strict router, or is not a SIP URI, gets 400 naming the fault', async () => {
  const srv = await server();
  const proxy = await socket('101', srv);
  const strict = await relayRegister(proxy, srv, [`Path: <sip:127.0.0.1:${proxy.port}>`]);
  assert.equal(strict.status, 400);
  assert.match(strict.reason, /no ;lr/);
  const bad = await relayRegister(proxy, srv, ['Path: <http://proxy.example/>']);
  assert.equal(bad.status, 400);
  assert.match(bad.reason, /malformed Path/);
  assert.deepEqual(srv.server.registrar.lookup('101'), []);
});

test('the Path survives a restart (SQLite); a refresh without Path clears it, in memory and in the store', async () => {
  const first = await server();
  const proxy = await socket('101', first);
  const path = [`<sip:127.0.0.1:${proxy.port};lr>`, '<sip:edge.example;lr;transport=udp>'];
  const res = await relayRegister(proxy, first, [`Path: ${path[0]}`, `Path: ${path[1]}`, 'Supported: path']);
  assert.equal(res.status, 200);
  assert.deepEqual(res.headers.list('path'), path, 'several Path values come back in order');
  const dataDir = first.dataDir;
  await first.stop();
  servers.splice(servers.indexOf(first), 1);

  const second = await server({ dataDir });
  assert.deepEqual(second.server.registrar.lookup('101')[0]?.path, path, 'the Path was stored with the binding');
  const caller = await socket('100', second);
  await caller.register();
  // The restarted server knows the proxy only from the stored Path.
  const call = await caller.invite('101', audioSdp(41100));
  const invite = await proxy.waitRequest('INVITE');
  assert.equal(invite.uri, CONTACT);
  assert.deepEqual(invite.headers.list('route'), path, 'both Path values as Route, in order');
  proxy.respond(invite, 486, 'Busy Here', { toTag: 'busy1' });
  assert.equal((await call.final()).status, 486);
  const ack = await proxy.waitRequest('ACK');
  assert.deepEqual(ack.headers.list('route'), path, 'the ACK of a failure follows the INVITE\'s route (RFC 3261 section 17.1.1.3)');

  const refresh = await relayRegister(proxy, second, []);
  assert.equal(refresh.status, 200);
  assert.equal(refresh.headers.get('path'), undefined);
  assert.equal(second.server.registrar.lookup('101')[0]?.path, undefined, 'a REGISTER without Path clears it');
  // Stored cleared too: a third start sees no Path.
  await second.stop();
  servers.splice(servers.indexOf(second), 1);
  const third = await server({ dataDir });
  const b = third.server.registrar.lookup('101')[0];
  assert.ok(b, 'the binding is still there');
  assert.equal(b.path, undefined);
});
