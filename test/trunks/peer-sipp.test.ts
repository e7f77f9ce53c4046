/**
 * A peer trunk to a SIPp UAS by IP address (no registration): the prefix of its dial-plan rule
 * sends a phone's call there, SIPp answers and the phone hangs up. A request from the SIPp side's
 * address but another port than the trunk's (and not in `allow`) is a stranger's: challenged.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { audioSdp, Phone, PhoneBook } from '../helpers/phone.js';
import { cdrOf } from '../helpers/cdr-files.js';
import { keepAlive, waitFor } from '../helpers/keep-alive.js';
import { branch } from '../helpers/sip-peer.js';
import { dialRule, trunkConfig } from '../helpers/trunks.js';
import { freeUdpPort, hasSipp, SHARED, tempDir, udpSocketsOf } from '../e2e/harness.js';

const skip = !hasSipp() && 'sipp is not installed (apt-get install sip-tester)';

interface SippUas {
  port: number;
  /** Where SIPp's SDP says its media is (-mp). */
  mediaPort: number;
  /** The exit code, once SIPp is done with its one call (-m 1). */
  exited: Promise<number | null>;
  out: () => string;
  /** What SIPp received and sent (-trace_msg). */
  messages: () => string;
  stop(): Promise<void>;
}

/**
 * SIPp's uas_call.xml for one call (-m 1, -timeout 60) on 127.0.0.1 and a free port, returned
 * once SIPp holds the port; a port taken before SIPp binds it is chosen again.
 */
async function startSippUas(dir: string): Promise<SippUas> {
  for (let attempt = 1; ; attempt++) {
    const port = await freeUdpPort();
    const mediaPort = await freeUdpPort();
    const messageFile = join(dir, `messages-${attempt}.log`);
    const child: ChildProcess = spawn(
      'sipp',
      ['-sf', join(SHARED, 'lab/sipp/uas_call.xml'), '-i', '127.0.0.1', '-p', String(port), '-mp', String(mediaPort), '-m', '1', '-timeout', '60', '-nostdin', '-trace_msg', '-message_file', messageFile],
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
    const running = () => child.exitCode === null && child.signalCode === null;
    const holds = () => udpSocketsOf(child.pid!).some((s) => s.address === '127.0.0.1' && s.port === port);
    const deadline = Date.now() + 10_000;
    while (running() && !holds() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (running() && holds()) {
      return {
        port,
        mediaPort,
        exited,
        out: () => out,
        messages: () => (existsSync(messageFile) ? readFileSync(messageFile, 'utf8') : ''),
        stop: async () => {
          if (running()) child.kill('SIGKILL');
          await exited;
        },
      };
    }
    if (running()) child.kill('SIGKILL');
    await exited;
    if (attempt < 5 && /Unable to bind main socket/.test(out)) continue;
    throw new Error(`SIPp did not start on port ${port}:\n${out.slice(-2000)}`);
  }
}

let sipp: SippUas;
let srv: TestServer;
const book = new PhoneBook(() => srv.port);
let stranger: Phone;

before(async () => {
  if (skip) return;
  sipp = await startSippUas(tempDir('mss-peer-sipp-'));
  srv = await startTestServer({
    users: [['100', 'pw100'], ['101', 'pw101']],
    configure: (c) => {
      c.auth.algorithms = ['MD5', 'SHA-256'];
      c.trunks = [trunkConfig({ name: 'sipp', kind: 'peer', port: sipp.port, did: { '5550100': { kind: 'extensions', numbers: ['100'] } } })];
      c.dialplan = [dialRule({ match: '8', strip: 1, trunk: 'sipp' })];
    },
  });
  stranger = await Phone.open('stranger', '', srv.port);
});

after(async () => {
  if (skip) return;
  book.closeAll();
  stranger?.close();
  await sipp?.stop();
  await srv?.stop();
});

test('from the SIPp side\'s address but another port (not in allow): challenged 407 like any stranger, the DID\'s phone does not ring', { skip }, async () => {
  const p100 = await book.get('100');
  const p101 = await book.get('101');
  assert.notEqual(stranger.port, sipp.port);
  const callId = `not-the-trunk-${branch()}`;
  stranger.send(
    [
      `INVITE sip:5550100@127.0.0.1:${srv.port} SIP/2.0`,
      // It even claims the trunk's port in its Via: the source is what counts.
      `Via: SIP/2.0/UDP 127.0.0.1:${sipp.port};branch=${branch()}`,
      'Max-Forwards: 70',
      `From: <sip:4420123456@127.0.0.1:${sipp.port}>;tag=${branch()}`,
      'To: <sip:5550100@127.0.0.1>',
      `Call-ID: ${callId}`,
      'CSeq: 1 INVITE',
      `Contact: <sip:sipp@127.0.0.1:${sipp.port}>`,
      'Content-Type: application/sdp',
    ],
    audioSdp(42000),
  );
  const res = await stranger.waitResponse((r) => r.headers.get('call-id') === callId && r.status >= 200);
  assert.equal(res.status, 407);
  assert.ok(res.headers.getAll('proxy-authenticate').length > 0);
  // A fence: 101 calls 100 afterwards; the first INVITE 100 gets is that one.
  const fence = await p101.invite('100', audioSdp(42010));
  const inc = await p100.incoming();
  assert.match(inc.invite.headers.get('from') ?? '', /<sip:101@/, 'the DID\'s phone was not rung by the stranger');
  inc.reject(486, 'Busy Here');
  assert.equal((await fence.final()).status, 486);
  assert.ok(!srv.logLines.some((l) => l.includes('"call.from_trunk"')), 'nothing was taken as coming from the trunk');
});

test('a phone dials the rule\'s prefix: the call goes out on the peer trunk to SIPp, which answers; the phone hangs up; SIPp ends with its call successful', { skip }, async () => {
  const p100 = await book.get('100');
  const call = await p100.invite('8123', audioSdp(42020));
  const ok = await call.final(5000);
  assert.equal(ok.status, 200, sipp.out().slice(-2000));
  assert.match(ok.body.toString(), /m=audio \d+ RTP\/AVP 0 101/, 'SIPp\'s answer, through the relay');
  assert.match(ok.body.toString(), /^o=lab-uas /m, 'SIPp\'s answer');
  assert.doesNotMatch(ok.body.toString(), new RegExp(`m=audio ${sipp.mediaPort} `), 'pointing at the relay, not at SIPp\'s media port');
  assert.equal((await call.bye()).status, 200);
  // uas_call.xml: the BYE answered, a 2 s pause, then SIPp's one call (-m 1) is done.
  const code = await keepAlive(sipp.exited, 'SIPp ending after its call', 15_000);
  assert.equal(code, 0, `SIPp: all calls successful\n${sipp.out().slice(-2000)}`);

  // What SIPp received: one INVITE (the stranger's never came), to the analysed number, without credentials.
  const log = sipp.messages();
  const invites = [...log.matchAll(/message received[^\n]*\n+(INVITE [^\n]*)/g)].map((m) => m[1]!.trim());
  assert.deepEqual(invites, [`INVITE sip:123@127.0.0.1:${sipp.port} SIP/2.0`], log.slice(0, 3000));
  const inviteText = log.slice(log.indexOf(invites[0]!));
  const inviteHead = inviteText.slice(0, inviteText.search(/\r?\n\r?\n/));
  assert.match(inviteHead, /^From: [^\n]*<sip:100@127\.0\.0\.1>/im);
  assert.doesNotMatch(inviteHead, /^(Proxy-)?Authorization:/im);
  assert.ok(/message received[^\n]*\n+BYE /.test(log), 'the BYE reached SIPp');

  await waitFor(() => cdrOf(srv.dataDir, call.dialog.callId) !== undefined, 'the record');
  const rec = cdrOf(srv.dataDir, call.dialog.callId)!;
  assert.equal(rec.route, 'trunk:sipp');
  assert.equal(rec.party_kind, 'outside');
  assert.equal(rec.dialled, '8123');
  assert.equal(rec.callee, '123');
  assert.equal(rec.status, '200');
  assert.equal(rec.fci, 'callTag=1;cause=16');
  assert.equal(rec.callee_address, `127.0.0.1:${sipp.port}`);
});
