// A lean SIP user agent over UDP on 127.0.0.1, shared by the end-to-end benches that drive
// `minisipserver serve` as a separate process (ivr-calls.mjs, callback.mjs): a message parser,
// client transactions with retransmission, answers to incoming requests, digest authentication
// (MD5), REGISTER, a call with the 407 challenge, in-dialog requests, a small SDP offer.
// Only what the benches need: no TCP, no forking, no PRACK, one audio stream.
import { createHash, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';

export const LOOPBACK = '127.0.0.1';

const COMPACT = { i: 'call-id', v: 'via', f: 'from', t: 'to', m: 'contact', l: 'content-length', c: 'content-type' };

/** A SIP message from one datagram, or null. Header names in lower case, compact forms expanded. */
export function parseSip(buf) {
  const s = buf.toString('latin1');
  const end = s.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const lines = s.slice(0, end).split('\r\n');
  const headers = new Map();
  for (let i = 1; i < lines.length; i++) {
    const c = lines[i].indexOf(':');
    if (c < 0) continue;
    let name = lines[i].slice(0, c).trim().toLowerCase();
    name = COMPACT[name] ?? name;
    const list = headers.get(name) ?? [];
    list.push(lines[i].slice(c + 1).trim());
    headers.set(name, list);
  }
  const first = lines[0];
  const get = (n) => headers.get(n)?.[0] ?? '';
  const body = s.slice(end + 4);
  const cseq = get('cseq');
  const m = /^SIP\/2\.0 (\d{3})/.exec(first);
  if (m) return { kind: 'response', status: Number(m[1]), headers, get, body, cseqNum: parseInt(cseq, 10), cseqMethod: cseq.split(/\s+/)[1] };
  const r = /^([A-Z]+) (\S+) SIP\/2\.0$/.exec(first);
  if (!r) return null;
  return { kind: 'request', method: r[1], uri: r[2], headers, get, body, cseqNum: parseInt(cseq, 10), cseqMethod: cseq.split(/\s+/)[1] };
}

export const tagOf = (v) => /;tag=([^;>\s]+)/.exec(v)?.[1] ?? '';
export const uriOf = (v) => /<([^>]+)>/.exec(v)?.[1] ?? v.split(';')[0].trim();
/** The user part of a SIP URI or name-addr ("1000" of "<sip:1000@host>;tag=x"). */
export const userOf = (v) => /sips?:([^@;>]+)@/.exec(v)?.[1] ?? '';
export const branch = () => `z9hG4bK-bench-${randomBytes(6).toString('hex')}`;

/** The Authorization / Proxy-Authorization value answering a digest challenge (MD5, qop=auth or none). */
export function digest(challenge, user, password, method, uri) {
  const p = {};
  const re = /([a-zA-Z]+)=(?:"([^"]*)"|([^,\s]+))/g;
  for (let m = re.exec(challenge); m; m = re.exec(challenge)) p[m[1].toLowerCase()] = m[2] ?? m[3] ?? '';
  if ((p.algorithm ?? 'MD5').toUpperCase() !== 'MD5') throw new Error(`challenge is not MD5: ${challenge}`);
  const md5 = (s) => createHash('md5').update(s).digest('hex');
  const ha1 = md5(`${user}:${p.realm}:${password}`);
  const ha2 = md5(`${method}:${uri}`);
  let v = `Digest username="${user}", realm="${p.realm}", nonce="${p.nonce}", uri="${uri}", algorithm=MD5`;
  if (p.qop && p.qop.split(',').map((q) => q.trim()).includes('auth')) {
    const cnonce = randomBytes(6).toString('hex');
    v += `, response="${md5(`${ha1}:${p.nonce}:00000001:${cnonce}:auth:${ha2}`)}", qop=auth, nc=00000001, cnonce="${cnonce}"`;
  } else v += `, response="${md5(`${ha1}:${p.nonce}:${ha2}`)}"`;
  if (p.opaque !== undefined) v += `, opaque="${p.opaque}"`;
  return v;
}

/** An audio offer (or answer) at 127.0.0.1:port: PCMU, PCMA, telephone-event, 20 ms. */
export function offerSdp(port) {
  return (
    ['v=0', `o=bench ${port} 1 IN IP4 ${LOOPBACK}`, 's=-', `c=IN IP4 ${LOOPBACK}`, 't=0 0', `m=audio ${port} RTP/AVP 0 8 101`, 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:8 PCMA/8000', 'a=rtpmap:101 telephone-event/8000', 'a=fmtp:101 0-15', 'a=ptime:20', 'a=sendrecv'].join('\r\n') +
    '\r\n'
  );
}

/** The audio port of an SDP body (which must name 127.0.0.1), or null. */
export function sdpAudioPort(body) {
  const m = /^m=audio (\d+) /m.exec(body);
  const c = /^c=IN IP4 (\S+)/m.exec(body);
  if (!m || !c) return null;
  if (c[1] !== LOOPBACK) throw new Error(`SDP names ${c[1]}, not ${LOOPBACK}`);
  return Number(m[1]);
}

/** One UDP socket of SIP; client transactions with retransmission (timer A/E), answers to incoming requests. */
export class SipSocket {
  static async open(serverPort) {
    const s = new SipSocket(serverPort);
    await new Promise((r) => s.socket.bind(0, LOOPBACK, r));
    s.port = s.socket.address().port;
    return s;
  }
  constructor(serverPort) {
    this.serverPort = serverPort;
    this.socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 1 << 21 });
    this.pending = new Map(); // "callid cseq method" -> { resolve, timer, ... }
    this.onRequest = null; // (msg) => response text | null (null: 200 OK without a body)
    this.answered = new Map(); // call-id + cseq -> response text (incoming retransmissions)
    this.onLateOk = null; // (msg) => void: a 200 to INVITE after its transaction (re-ACK)
    this.onAck = null; // (msg) => void: an incoming ACK
    this.serverByes = 0;
    this.socket.on('message', (buf) => this.receive(buf));
  }
  send(text) {
    this.socket.send(Buffer.from(text, 'latin1'), this.serverPort, LOOPBACK);
  }
  receive(buf) {
    const msg = parseSip(buf);
    if (!msg) return;
    if (msg.kind === 'response') {
      const key = `${msg.get('call-id')} ${msg.cseqNum} ${msg.cseqMethod}`;
      const p = this.pending.get(key);
      if (!p) {
        if (msg.status >= 200 && msg.cseqMethod === 'INVITE') this.onLateOk?.(msg);
        return;
      }
      if (msg.status < 200) {
        p.provisional = true; // INVITE: no more retransmissions (RFC 3261 17.1.1.2)
        return;
      }
      this.pending.delete(key);
      clearTimeout(p.timer);
      p.resolve(msg);
      return;
    }
    if (msg.method === 'ACK') {
      this.onAck?.(msg);
      return;
    }
    const key = `${msg.get('call-id')} ${msg.cseqNum} ${msg.method}`;
    let text = this.answered.get(key);
    if (text === undefined) {
      text = this.onRequest?.(msg) ?? response(msg, 200, 'OK', [], '');
      if (msg.method === 'BYE') this.serverByes++;
      this.answered.set(key, text);
      if (this.answered.size > 20000) this.answered.delete(this.answered.keys().next().value);
    }
    this.send(text);
  }
  /** Sends a request and resolves with its final response; retransmits like timer A/E, fails after 16 s. */
  request(text, callId, cseq, method) {
    const key = `${callId} ${cseq} ${method}`;
    return new Promise((resolveRes, reject) => {
      const p = { resolve: resolveRes, provisional: false, timer: null };
      let interval = 500;
      let spent = 0;
      const tick = () => {
        if (spent >= 16000) {
          this.pending.delete(key);
          reject(new Error(`no final response to ${method} ${callId}`));
          return;
        }
        if (!p.provisional) this.send(text);
        p.timer = setTimeout(tick, interval);
        spent += interval;
        interval = Math.min(interval * 2, 4000);
      };
      this.pending.set(key, p);
      tick();
    });
  }
  close() {
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.socket.close();
  }
}

/** A response to `req`; `toTag` is added to To when it has none. */
export function response(req, status, reason, extra, body, toTag) {
  const lines = [`SIP/2.0 ${status} ${reason}`];
  for (const v of req.headers.get('via') ?? []) lines.push(`Via: ${v}`);
  const to = req.get('to');
  lines.push(`From: ${req.get('from')}`, `To: ${toTag && !tagOf(to) ? `${to};tag=${toTag}` : to}`, `Call-ID: ${req.get('call-id')}`, `CSeq: ${req.get('cseq')}`, ...extra);
  if (body) lines.push('Content-Type: application/sdp');
  lines.push(`Content-Length: ${Buffer.byteLength(body)}`, '', '');
  return lines.join('\r\n') + body;
}

/** Registers `user` (digest, MD5) with its Contact at this socket. */
export async function register(sip, user, password, { expires = 3600, callIdPrefix = 'bench' } = {}) {
  const callId = `${callIdPrefix}-reg-${user}-${randomBytes(4).toString('hex')}`;
  const uri = `sip:${LOOPBACK}:${sip.serverPort}`;
  const reg = (cseq, auth) =>
    [
      `REGISTER ${uri} SIP/2.0`,
      `Via: SIP/2.0/UDP ${LOOPBACK}:${sip.port};branch=${branch()};rport`,
      'Max-Forwards: 70',
      `From: <sip:${user}@${LOOPBACK}>;tag=r${cseq}`,
      `To: <sip:${user}@${LOOPBACK}>`,
      `Call-ID: ${callId}`,
      `CSeq: ${cseq} REGISTER`,
      `Contact: <sip:${user}@${LOOPBACK}:${sip.port}>`,
      `Expires: ${expires}`,
      ...(auth ? [`Authorization: ${auth}`] : []),
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
  const challenge = await sip.request(reg(1), callId, 1, 'REGISTER');
  if (challenge.status !== 401) throw new Error(`REGISTER ${user}: ${challenge.status}`);
  const auth = digest(challenge.get('www-authenticate'), user, password, 'REGISTER', uri);
  const final = await sip.request(reg(2, auth), callId, 2, 'REGISTER');
  if (final.status !== 200) throw new Error(`REGISTER ${user}: ${final.status}`);
}

let callCounter = 0;

/**
 * One call from extension `user` to `number` over `sip` (INVITE -> 407 -> ACK -> INVITE with
 * Proxy-Authorization -> 200 -> ACK); resolves with the dialog once answered and ACKed. A final
 * response other than 200 throws an error with `status`.
 */
export async function placeCall(sip, user, number, rtpPort, { password = `pw${user}`, callIdPrefix = 'bench', userAgent = 'minisipserver-bench' } = {}) {
  const callId = `${callIdPrefix}-${process.pid}-${++callCounter}-${randomBytes(4).toString('hex')}@${LOOPBACK}`;
  const fromTag = randomBytes(5).toString('hex');
  const ruri = `sip:${number}@${LOOPBACK}:${sip.serverPort}`;
  const sdp = offerSdp(rtpPort);
  const invite = (cseq, br, auth) =>
    [
      `INVITE ${ruri} SIP/2.0`,
      `Via: SIP/2.0/UDP ${LOOPBACK}:${sip.port};branch=${br};rport`,
      'Max-Forwards: 70',
      `From: <sip:${user}@${LOOPBACK}>;tag=${fromTag}`,
      `To: <sip:${number}@${LOOPBACK}>`,
      `Call-ID: ${callId}`,
      `CSeq: ${cseq} INVITE`,
      `Contact: <sip:${user}@${LOOPBACK}:${sip.port}>`,
      `User-Agent: ${userAgent}`,
      ...(auth ? [`Proxy-Authorization: ${auth}`] : []),
      'Content-Type: application/sdp',
      `Content-Length: ${Buffer.byteLength(sdp)}`,
      '',
      sdp,
    ].join('\r\n');
  const br1 = branch();
  const challenge = await sip.request(invite(1, br1), callId, 1, 'INVITE');
  if (challenge.status !== 407) throw new Error(`INVITE ${user} -> ${number}: ${challenge.status} instead of 407`);
  sip.send(
    [`ACK ${ruri} SIP/2.0`, `Via: SIP/2.0/UDP ${LOOPBACK}:${sip.port};branch=${br1};rport`, 'Max-Forwards: 70', `From: <sip:${user}@${LOOPBACK}>;tag=${fromTag}`, `To: ${challenge.get('to')}`, `Call-ID: ${callId}`, 'CSeq: 1 ACK', 'Content-Length: 0', '', ''].join('\r\n'),
  );
  const auth = digest(challenge.get('proxy-authenticate'), user, password, 'INVITE', ruri);
  const final = await sip.request(invite(2, branch(), auth), callId, 2, 'INVITE');
  const dialog = { sip, user, callId, fromTag, toTag: tagOf(final.get('to')), remoteTarget: uriOf(final.get('contact')) || ruri, number, cseq: 2, status: final.status };
  if (final.status !== 200) throw Object.assign(new Error(`INVITE ${user} -> ${number}: ${final.status}`), { status: final.status });
  dialog.ack = inDialog(dialog, 'ACK', 2);
  sip.send(dialog.ack);
  dialog.remotePort = sdpAudioPort(final.body);
  if (!dialog.remotePort) throw new Error(`INVITE ${user} -> ${number}: no audio in the answer`);
  return dialog;
}

/** A request within dialog `d` (ours: we are the From side). */
export function inDialog(d, method, cseq) {
  return [
    `${method} ${d.remoteTarget} SIP/2.0`,
    `Via: SIP/2.0/UDP ${LOOPBACK}:${d.sip.port};branch=${branch()};rport`,
    'Max-Forwards: 70',
    `From: <sip:${d.user}@${LOOPBACK}>;tag=${d.fromTag}`,
    `To: <sip:${d.number}@${LOOPBACK}>;tag=${d.toTag}`,
    `Call-ID: ${d.callId}`,
    `CSeq: ${cseq} ${method}`,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

/** BYE in dialog `d`; resolves with the final status. */
export async function hangUp(d) {
  const res = await d.sip.request(inDialog(d, 'BYE', 3), d.callId, 3, 'BYE');
  return res.status;
}

/** Runs `fn(i)` for i in 0..n-1, at most `limit` at once; resolves with the settled results. */
export async function pool(n, limit, fn) {
  const out = new Array(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      try {
        out[i] = { ok: true, value: await fn(i) };
      } catch (err) {
        out[i] = { ok: false, error: err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
  return out;
}
