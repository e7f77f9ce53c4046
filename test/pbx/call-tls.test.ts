/**
 * SIP over TLS through the whole server (docs/DEPLOY.md, "SIP over TLS"): phones register with
 * digest and call each other over TLS, requests to a phone go through the connection it
 * registered over; a sips: callee is reached over TLS only (480 otherwise); SDES keys pass
 * between TLS legs under media.requireSrtpOverTls; SIGHUP puts a new certificate in force for
 * new connections while open ones keep working, and keeps the old one when the new files are
 * broken; a banned source's TLS connections are refused; a missing certificate stops the start.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSelfSigned } from '../../lib/tls/self-signed.js';
import type { Config } from '../../lib/config/schema.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { audioSdp, Phone } from '../helpers/phone.js';
import { StreamPhone } from '../helpers/stream-phone.js';
import { branch, challengeParams, digestAuthorization } from '../helpers/sip-peer.js';
import type { SipResponse } from '../../lib/sip/message.js';
import { waitFor } from '../helpers/keep-alive.js';

const KEY_A = 'a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4';

const dir = mkdtempSync(join(tmpdir(), 'mss-call-tls-'));
let first: Awaited<ReturnType<typeof writeSelfSigned>>;
let srv: TestServer;
let tlsPort: number;
const open: Array<{ close(): void }> = [];

function useTls(c: Config, certDir: string): void {
  c.auth.algorithms = ['MD5'];
  c.sip.transports = ['udp', 'tcp', 'tls'];
  c.sip.tls = { port: 0, cert: join(certDir, 'cert.pem'), key: join(certDir, 'key.pem'), ca: '', handshakeTimeout: 10 };
}

before(async () => {
  // The server reads the pair in live/; `first` keeps the originals.
  first = await writeSelfSigned({ host: '127.0.0.1', days: 2, dir: join(dir, 'first'), force: false });
  mkdirSync(join(dir, 'live'));
  copyFileSync(first.certFile, join(dir, 'live', 'cert.pem'));
  copyFileSync(first.keyFile, join(dir, 'live', 'key.pem'));
  srv = await startTestServer({
    users: ['731', '732', '733', '734', '735'].map((n) => [n, `pw${n}`] as [string, string]),
    configure: (c) => {
      useTls(c, join(dir, 'live'));
      c.media.requireSrtpOverTls = true;
    },
  });
  tlsPort = srv.server.stack.tlsPort;
});

after(async () => {
  for (const p of open) p.close();
  await srv.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function tlsPhone(user: string, opts: { localAddress?: string } = {}): Promise<StreamPhone> {
  const p = await StreamPhone.tls(tlsPort, readFileSync(first.certFile), opts);
  open.push(p);
  const reg = await p.register(user, `pw${user}`, tlsPort);
  assert.equal(reg.status, 200, `${user} registers over TLS`);
  return p;
}

function logEvents(event: string): Array<Record<string, unknown>> {
  return srv.logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((o) => o.event === event);
}

test('the server listens for TLS and logs its certificate, with a warning when it ends within two weeks', () => {
  assert.ok(tlsPort > 0);
  const listening = logEvents('sip.listening').find((e) => e.transport === 'tls');
  assert.equal(listening?.port, tlsPort);
  assert.equal(logEvents('tls.certificate')[0]?.fingerprint, first.fingerprint);
  assert.equal(logEvents('tls.certificate_expiring')[0]?.daysLeft, 1);
});

test('two phones register over TLS with digest and call each other; the INVITE reaches the callee over its own connection', async () => {
  const a = await tlsPhone('731');
  const b = await tlsPhone('732');
  const binding = srv.server.registrar.lookup('732')[0]!;
  assert.equal(binding.transport, 'tls');
  assert.equal(binding.sourcePort, b.localPort);

  const call = await a.invite('731', 'pw731', `sip:732@127.0.0.1:${tlsPort}`, audioSdp(46000));
  const inv = await b.waitRequest('INVITE');
  // The registered Contact names a private address the server cannot reach: only the connection leads there.
  assert.equal(inv.uri, 'sip:732@192.168.77.7:5060;transport=tls');
  assert.match(inv.headers.get('via') ?? '', new RegExp(`^SIP/2\\.0/TLS 127\\.0\\.0\\.1:${tlsPort};`));
  assert.equal(inv.headers.get('contact'), `<sip:731@127.0.0.1:${tlsPort};transport=tls>`);
  b.respond(inv, 200, 'OK', { toTag: 'b732', contact: '<sip:732@192.168.77.7:5060;transport=tls>', body: audioSdp(46010) });
  const ok = await a.final(call);
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get('contact'), `<sip:127.0.0.1:${tlsPort};transport=tls>`);
  await b.waitRequest('ACK');
  a.sendInDialog(call, 'BYE');
  const bye = await b.waitRequest('BYE');
  b.respond(bye, 200, 'OK');
  assert.equal((await a.waitResponse((r) => /BYE/.test(r.headers.get('cseq') ?? ''))).status, 200);
});

test('a sips: call reaches the callee only over TLS: its UDP binding is not rung, and the caller gets a sips: Contact', async () => {
  const b = await tlsPhone('733');
  const udp = await Phone.open('733', 'pw733', srv.port);
  open.push(udp);
  await udp.register();
  const a = await tlsPhone('734');
  const call = await a.invite('734', 'pw734', `sips:733@127.0.0.1:${tlsPort}`, audioSdp(46020));
  const inv = await b.waitRequest('INVITE');
  assert.ok(await udp.quiet((m) => m.kind === 'request' && m.method === 'INVITE', 300), 'the UDP binding of the callee is not rung');
  b.respond(inv, 200, 'OK', { toTag: 'b733', contact: '<sip:733@192.168.77.7:5060;transport=tls>', body: audioSdp(46030) });
  const ok = await a.final(call);
  assert.equal(ok.status, 200);
  // RFC 3261 section 12.1.1: a dialog created by a sips: Request-URI gets a sips: Contact.
  assert.equal(ok.headers.get('contact'), `<sips:127.0.0.1:${tlsPort}>`);
  await b.waitRequest('ACK');
  a.sendInDialog(call, 'BYE');
  b.respond(await b.waitRequest('BYE'), 200, 'OK');
});

/** A UDP phone's INVITE to `uri` (which Phone.invite cannot write: it dials sip: numbers), through the 407; the final response. */
async function udpInvite(phone: Phone, uri: string): Promise<SipResponse> {
  const callId = `udp-sips-${phone.port}-${Date.now()}`;
  const lines = (cseq: number, br: string, method = 'INVITE', extra: string[] = []) => [
    `${method} ${uri} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${phone.port};branch=${br};rport`,
    'Max-Forwards: 70',
    `From: <sip:${phone.user}@127.0.0.1>;tag=u${cseq}`,
    `To: <${uri}>`,
    `Call-ID: ${callId}`,
    `CSeq: ${cseq} ${method}`,
    `Contact: <sip:${phone.user}@127.0.0.1:${phone.port}>`,
    ...extra,
  ];
  const br1 = branch();
  phone.send(lines(1, br1));
  const challenge = await phone.waitResponse((r) => r.headers.get('call-id') === callId && r.status >= 200);
  assert.equal(challenge.status, 407);
  phone.send(lines(1, br1, 'ACK').map((l) => (l.startsWith('To:') ? `To: ${challenge.headers.get('to')}` : l)));
  const chosen = challenge.headers.getAll('proxy-authenticate').find((v) => (challengeParams(v).algorithm ?? 'MD5').toUpperCase() === 'MD5')!;
  const auth = digestAuthorization({ challenge: chosen, user: phone.user, password: phone.password, method: 'INVITE', uri });
  phone.send(lines(2, branch(), 'INVITE', [`Proxy-Authorization: ${auth}`]));
  return phone.waitResponse((r) => r.headers.get('call-id') === callId && r.status >= 200 && /INVITE/.test(r.headers.get('cseq') ?? ''));
}

test('a UDP phone calling a sips: callee registered only over UDP gets 480: the call is not downgraded', async () => {
  const callee = await Phone.open('735', 'pw735', srv.port);
  const caller = await Phone.open('731', 'pw731', srv.port);
  open.push(callee, caller);
  await callee.register();
  await caller.register();
  const res = await udpInvite(caller, `sips:735@127.0.0.1:${tlsPort}`);
  assert.equal(res.status, 480);
  assert.match(res.reason, /sips: call goes over TLS only/);
  assert.ok(await callee.quiet((m) => m.kind === 'request' && m.method === 'INVITE', 300), 'the UDP phone is never called');
});

test('media.requireSrtpOverTls: SDES keys pass between two TLS phones, and are refused towards a phone reached over UDP', async () => {
  const a = await tlsPhone('731');
  const b = await tlsPhone('732');
  const srtp = audioSdp(46050).replace('RTP/AVP', 'RTP/SAVP') + `${KEY_A}\r\n`;
  const call = await a.invite('731', 'pw731', `sip:732@127.0.0.1:${tlsPort}`, srtp);
  const inv = await b.waitRequest('INVITE');
  assert.match(inv.body.toString(), /^a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:/m, 'the keys reach the TLS callee');
  b.respond(inv, 200, 'OK', { toTag: 'bsrtp', contact: '<sip:732@192.168.77.7:5060;transport=tls>', body: srtp.replace('46050', '46060') });
  assert.equal((await a.final(call)).status, 200);
  await b.waitRequest('ACK');
  a.sendInDialog(call, 'BYE');
  b.respond(await b.waitRequest('BYE'), 200, 'OK');

  const udp = await Phone.open('735', 'pw735', srv.port);
  open.push(udp);
  await udp.register();
  const refused = await a.invite('731', 'pw731', `sip:735@127.0.0.1:${tlsPort}`, srtp);
  const res = await a.final(refused);
  assert.equal(res.status, 488, 'the keys came over TLS but would leave over UDP');
  assert.ok(await udp.quiet((m) => m.kind === 'request' && m.method === 'INVITE', 300));
});

test('SIGHUP with a new certificate: new connections get it, an open connection keeps working; broken files keep it in force', async () => {
  const live = join(dir, 'live');
  const old = await tlsPhone('733');
  const renewed = await writeSelfSigned({ host: '127.0.0.1', days: 30, dir: join(dir, 'renewed'), force: false });
  copyFileSync(renewed.certFile, join(live, 'cert.pem'));
  copyFileSync(renewed.keyFile, join(live, 'key.pem'));
  srv.server.reloadFiles(); // what every SIGHUP runs after the configuration (cli/reload.ts)
  assert.equal(logEvents('tls.certificate_reloaded').at(-1)?.fingerprint, renewed.fingerprint);
  const fresh = await StreamPhone.tls(tlsPort, readFileSync(renewed.certFile));
  open.push(fresh);
  assert.equal(peerFingerprint(fresh), renewed.fingerprint);
  assert.equal(peerFingerprint(old), first.fingerprint);
  // The connection opened before the reload still carries SIP both ways.
  assert.equal((await old.register('733', 'pw733', tlsPort, { cseq: 10 })).status, 200);

  // A key that does not belong to the certificate: logged with the file, the renewed certificate stays.
  copyFileSync(first.keyFile, join(live, 'key.pem'));
  srv.server.reloadFiles();
  const failed = logEvents('tls.reload_failed').at(-1)!;
  assert.equal(failed.file, join(live, 'key.pem'));
  assert.match(String(failed.problem), /does not belong to the certificate/);
  assert.equal(failed.kept, renewed.fingerprint);
  const still = await StreamPhone.tls(tlsPort, readFileSync(renewed.certFile));
  open.push(still);
  assert.equal(peerFingerprint(still), renewed.fingerprint);

  // Other file names in the configuration take effect without a restart; another port needs one.
  const next = structuredClone(srv.config);
  next.sip.tls = { ...next.sip.tls, cert: first.certFile, key: first.keyFile };
  assert.deepEqual(srv.server.applyConfig(next), { applied: ['sip.tls'], needsRestart: [] });
  srv.server.reloadFiles();
  const back = await StreamPhone.tls(tlsPort, readFileSync(first.certFile));
  open.push(back);
  assert.equal(peerFingerprint(back), first.fingerprint);
  const moved = structuredClone(srv.config);
  moved.sip.tls.port = tlsPort + 1;
  assert.deepEqual(srv.server.applyConfig(moved), { applied: [], needsRestart: ['sip.tls'] });
});

function peerFingerprint(p: StreamPhone): string | undefined {
  return (p.socket as tls.TLSSocket).getPeerX509Certificate()?.fingerprint256;
}

test('a banned source\'s TLS connections are refused, and the ones it held are closed; other phones keep theirs', async () => {
  const phone = await tlsPhone('734');
  const attacker = await StreamPhone.tls(tlsPort, readFileSync(first.certFile), { localAddress: '127.0.0.2' });
  open.push(attacker);
  srv.server.guard.ban('127.0.0.2', 'auth');
  assert.equal(await attacker.waitClosed(5000), true, 'the connection it held is closed');
  await assert.rejects(StreamPhone.tls(tlsPort, readFileSync(first.certFile), { localAddress: '127.0.0.2' }));
  assert.equal((await phone.register('734', 'pw734', tlsPort, { cseq: 10 })).status, 200);
});

test('a missing certificate file stops the start with the file named and what to do', async () => {
  await assert.rejects(
    startTestServer({ configure: (c) => useTls(c, join(dir, 'nowhere')) }),
    (err: Error) => {
      assert.match(err.message, new RegExp(`${join(dir, 'nowhere', 'cert.pem').replace(/[/.]/g, '\\$&')}: cannot be read \\(ENOENT\\)`));
      assert.match(err.message, /minisipserver tls self-signed --host NAME/);
      return true;
    },
  );
});
