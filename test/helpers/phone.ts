import assert from 'node:assert/strict';
/**
 * A scripted SIP phone for tests: one UDP socket on 127.0.0.1, registers with digest, places
 * calls (answering the 407), answers or refuses calls, sends and answers in-dialog requests.
 * Every wait is bounded; messages are kept in arrival order and picked by predicate.
 */
import dgram from 'node:dgram';
import { parseMessage } from '../../lib/sip/parser.js';
import type { SipMessage, SipRequest, SipResponse } from '../../lib/sip/message.js';
import { branch, challengeParams, digestAuthorization, registerText } from './sip-peer.js';

let counter = 0;

export interface Dialog {
  callId: string;
  localTag: string;
  remoteTag: string;
  /** Our From/To header value without tag. */
  localUri: string;
  remoteUri: string;
  remoteTarget: string;
  cseq: number;
}

export class Phone {
  private readonly socket = dgram.createSocket('udp4');
  private readonly inbox: SipMessage[] = [];
  private waiters: Array<() => void> = [];
  port = 0;
  /** When set, every request but ACK is answered 200 at once with this body (and not kept). */
  autoAnswer: ((req: SipRequest) => string) | null = null;

  private constructor(
    readonly user: string,
    readonly password: string,
    readonly serverPort: number,
  ) {}

  static async open(user: string, password: string, serverPort: number): Promise<Phone> {
    const p = new Phone(user, password, serverPort);
    await new Promise<void>((resolve) => p.socket.bind(0, '127.0.0.1', resolve));
    p.port = p.socket.address().port;
    p.socket.on('message', (data) => {
      const r = parseMessage(data, { datagram: true });
      if (!r.ok) return;
      if (p.autoAnswer && r.message.kind === 'request' && r.message.method !== 'ACK') {
        const req = r.message;
        p.respond(req, 200, 'OK', { extra: [`Contact: <sip:${p.user}@127.0.0.1:${p.port}>`], body: p.autoAnswer(req) });
        return;
      }
      p.inbox.push(r.message);
      const w = p.waiters;
      p.waiters = [];
      for (const f of w) f();
    });
    return p;
  }

  private registrations = 0;

  /** Registers this phone's contact from its own socket (digest, MD5); again: a refresh. */
  async register(expires = 600, contact?: string): Promise<void> {
    const callId = `reg-${this.user}-${this.port}`;
    const cseq = 2 * this.registrations++;
    const o = { user: this.user, port: this.serverPort, localPort: this.port, callId, expires, ...(contact ? { contact } : {}) };
    this.sendText(registerText({ ...o, cseq: cseq + 1 }));
    const challenge = await this.waitResponse((r) => r.headers.get('call-id') === callId, 2000);
    if (challenge.status !== 401) throw new Error(`register ${this.user}: ${challenge.status}`);
    const values = challenge.headers.getAll('www-authenticate');
    const chosen = values.find((v) => (challengeParams(v).algorithm ?? 'MD5').toUpperCase() === 'MD5') ?? values[0]!;
    const authorization = digestAuthorization({ challenge: chosen, user: this.user, password: this.password, method: 'REGISTER', uri: `sip:127.0.0.1:${this.serverPort}` });
    this.sendText(registerText({ ...o, cseq: cseq + 2, authorization }));
    const final = await this.waitResponse((r) => r.headers.get('call-id') === callId, 2000);
    if (final.status !== 200) throw new Error(`register ${this.user}: ${final.status}`);
  }

  sendText(text: string, port = this.serverPort): void {
    this.socket.send(Buffer.from(text), port, '127.0.0.1');
  }

  send(lines: string[], body = '', port = this.serverPort): void {
    const head = [...lines.filter((l) => l !== ''), `Content-Length: ${Buffer.byteLength(body)}`, '', ''].join('\r\n');
    this.sendText(head + body, port);
  }

  /** The next message matching `pred` (removed from the inbox), waiting at most `ms`. */
  async wait(pred: (m: SipMessage) => boolean, ms = 3000, what = 'message'): Promise<SipMessage> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.inbox.findIndex(pred);
      if (i >= 0) return this.inbox.splice(i, 1)[0]!;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.user}: no ${what} within ${ms} ms (inbox: ${this.inbox.map(describe).join(', ') || 'empty'})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async waitResponse(pred: (r: SipResponse) => boolean, ms = 3000): Promise<SipResponse> {
    return (await this.wait((m) => m.kind === 'response' && pred(m), ms, 'response')) as SipResponse;
  }

  async waitRequest(method: string, ms = 3000): Promise<SipRequest> {
    return (await this.wait((m) => m.kind === 'request' && m.method === method, ms, method)) as SipRequest;
  }

  /** True when no message matching `pred` arrives within `ms`. */
  async quiet(pred: (m: SipMessage) => boolean, ms: number): Promise<boolean> {
    try {
      await this.wait(pred, ms);
      return false;
    } catch {
      return true;
    }
  }

  // ---- caller side ----------------------------------------------------------------------------

  /**
   * Sends an INVITE to `number` and answers the 407 challenge (after `opts.afterChallenge`, when
   * given, has run). Returns the dialog skeleton (remote tag filled once a response with a To tag
   * arrives, see waitFinal).
   */
  async invite(number: string, sdp = '', extra: string[] = [], opts: { afterChallenge?: () => Promise<void> } = {}): Promise<OutgoingCall> {
    const callId = `call-${this.user}-${process.pid}-${++counter}`;
    const localTag = `t${counter}`;
    const dialog: Dialog = {
      callId,
      localTag,
      remoteTag: '',
      localUri: `<sip:${this.user}@127.0.0.1>`,
      remoteUri: `<sip:${number}@127.0.0.1>`,
      remoteTarget: `sip:${number}@127.0.0.1:${this.serverPort}`,
      cseq: 1,
    };
    const uri = `sip:${number}@127.0.0.1:${this.serverPort}`;
    const build = (cseq: number, br: string, auth?: string): string[] => [
      `INVITE ${uri} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${this.port};branch=${br};rport`,
      'Max-Forwards: 70',
      `From: ${dialog.localUri};tag=${localTag}`,
      `To: ${dialog.remoteUri}`,
      `Call-ID: ${callId}`,
      `CSeq: ${cseq} INVITE`,
      `Contact: <sip:${this.user}@127.0.0.1:${this.port}>`,
      'User-Agent: test-phone',
      ...(auth ? [`Proxy-Authorization: ${auth}`] : []),
      ...(sdp ? ['Content-Type: application/sdp'] : []),
      ...extra,
    ];
    const br1 = branch();
    this.send(build(1, br1), sdp);
    const challenge = await this.waitResponse((r) => r.headers.get('call-id') === callId && r.status >= 200);
    if (challenge.status !== 407) throw new Error(`expected 407, got ${challenge.status}`);
    this.send([
      `ACK ${uri} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${this.port};branch=${br1};rport`,
      'Max-Forwards: 70',
      `From: ${dialog.localUri};tag=${localTag}`,
      `To: ${challenge.headers.get('to')}`,
      `Call-ID: ${callId}`,
      'CSeq: 1 ACK',
    ]);
    const values = challenge.headers.getAll('proxy-authenticate');
    const chosen = values.find((v) => (challengeParams(v).algorithm ?? 'MD5').toUpperCase() === 'MD5') ?? values[0]!;
    const auth = digestAuthorization({ challenge: chosen, user: this.user, password: this.password, method: 'INVITE', uri });
    await opts.afterChallenge?.();
    const br2 = branch();
    dialog.cseq = 2;
    const lines = build(2, br2, auth);
    this.send(lines, sdp);
    return new OutgoingCall(this, dialog, br2, uri, () => this.send(lines, sdp));
  }

  // ---- callee side ----------------------------------------------------------------------------

  /** Waits for an INVITE and returns a handle to answer it. */
  async incoming(ms = 3000): Promise<IncomingCall> {
    const req = await this.waitRequest('INVITE', ms);
    return new IncomingCall(this, req);
  }

  /** Answers a request with a status (copying Via, From, To (+tag), Call-ID, CSeq). */
  respond(req: SipRequest, status: number, reason: string, opts: { toTag?: string; extra?: string[]; body?: string } = {}): void {
    const h = req.headers;
    const lines = [`SIP/2.0 ${status} ${reason}`];
    for (const v of h.getAll('via')) lines.push(`Via: ${v}`);
    lines.push(`From: ${h.get('from')}`);
    const to = h.get('to')!;
    lines.push(`To: ${opts.toTag && !/;tag=/i.test(to) ? `${to};tag=${opts.toTag}` : to}`);
    lines.push(`Call-ID: ${h.get('call-id')}`, `CSeq: ${h.get('cseq')}`);
    if (opts.body) lines.push('Content-Type: application/sdp');
    lines.push(...(opts.extra ?? []));
    this.send(lines, opts.body ?? '', viaPort(h.get('via') ?? ''));
  }

  /** A request inside `d` (BYE, re-INVITE, INFO...). */
  sendInDialog(d: Dialog, method: string, opts: { cseq?: number; body?: string; extra?: string[] } = {}): string {
    const cseq = opts.cseq ?? ++d.cseq;
    const br = branch();
    this.send(
      [
        `${method} ${d.remoteTarget} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${this.port};branch=${br};rport`,
        'Max-Forwards: 70',
        `From: ${d.localUri};tag=${d.localTag}`,
        `To: ${d.remoteUri};tag=${d.remoteTag}`,
        `Call-ID: ${d.callId}`,
        `CSeq: ${cseq} ${method}`,
        `Contact: <sip:${this.user}@127.0.0.1:${this.port}>`,
        ...(opts.body && !(opts.extra ?? []).some((h) => /^content-type:/i.test(h)) ? ['Content-Type: application/sdp'] : []),
        ...(opts.extra ?? []),
      ],
      opts.body ?? '',
      uriPort(d.remoteTarget) ?? this.serverPort,
    );
    return br;
  }

  /** Waits for `method` inside `d` and answers it 200 (with `body` if given). */
  async answerInDialog(d: Dialog, method: string, body = '', ms = 3000): Promise<SipRequest> {
    const req = (await this.wait(
      (m) => m.kind === 'request' && m.method === method && m.headers.get('call-id') === d.callId,
      ms,
      method,
    )) as SipRequest;
    this.respond(req, 200, 'OK', { extra: [`Contact: <sip:${this.user}@127.0.0.1:${this.port}>`], body });
    return req;
  }

  close(): void {
    this.socket.close();
  }
}

export class OutgoingCall {
  constructor(
    readonly phone: Phone,
    readonly dialog: Dialog,
    readonly inviteBranch: string,
    readonly uri: string,
    /** Sends the (authenticated) INVITE again, as a retransmission. */
    readonly retransmitInvite: () => void,
  ) {}

  /** Waits for the final response to the INVITE; for a 2xx, fills the dialog and sends ACK. */
  async final(ms = 5000, ackBody = ''): Promise<SipResponse> {
    const d = this.dialog;
    const res = await this.phone.waitResponse((r) => r.headers.get('call-id') === d.callId && r.status >= 200 && /INVITE/.test(r.headers.get('cseq') ?? ''), ms);
    d.remoteTag = /;tag=([^;]+)/.exec(res.headers.get('to') ?? '')?.[1] ?? '';
    if (res.status < 300) {
      d.remoteTarget = /<([^>]+)>/.exec(res.headers.get('contact') ?? '')?.[1] ?? d.remoteTarget;
      this.ack(ackBody);
    } else {
      this.phone.send([
        `ACK ${this.uri} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${this.phone.port};branch=${this.inviteBranch};rport`,
        'Max-Forwards: 70',
        `From: ${d.localUri};tag=${d.localTag}`,
        `To: ${res.headers.get('to')}`,
        `Call-ID: ${d.callId}`,
        `CSeq: ${d.cseq} ACK`,
      ]);
    }
    return res;
  }

  /** Waits for a provisional response with this status. */
  async provisional(status: number, ms = 3000): Promise<SipResponse> {
    return this.phone.waitResponse((r) => r.headers.get('call-id') === this.dialog.callId && r.status === status, ms);
  }

  ack(body = ''): void {
    const d = this.dialog;
    this.phone.sendInDialog(d, 'ACK', { cseq: d.cseq, body });
  }

  cancel(): void {
    const d = this.dialog;
    this.phone.send([
      `CANCEL ${this.uri} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${this.phone.port};branch=${this.inviteBranch};rport`,
      'Max-Forwards: 70',
      `From: ${d.localUri};tag=${d.localTag}`,
      `To: ${d.remoteUri}`,
      `Call-ID: ${d.callId}`,
      `CSeq: ${d.cseq} CANCEL`,
    ]);
  }

  async bye(ms = 3000): Promise<SipResponse> {
    this.phone.sendInDialog(this.dialog, 'BYE');
    return this.phone.waitResponse((r) => r.headers.get('call-id') === this.dialog.callId && /BYE/.test(r.headers.get('cseq') ?? ''), ms);
  }
}

export class IncomingCall {
  readonly dialog: Dialog;
  readonly tag = `b${++counter}`;

  constructor(
    readonly phone: Phone,
    readonly invite: SipRequest,
  ) {
    const h = invite.headers;
    this.dialog = {
      callId: h.get('call-id')!,
      localTag: this.tag,
      remoteTag: /;tag=([^;]+)/.exec(h.get('from') ?? '')?.[1] ?? '',
      localUri: h.get('to')!,
      remoteUri: h.get('from')!.replace(/;tag=[^;]+/, ''),
      remoteTarget: /<([^>]+)>/.exec(h.get('contact') ?? '')?.[1] ?? '',
      cseq: 0,
    };
  }

  get sdp(): string {
    return this.invite.body.toString();
  }

  ring(status = 180, body = ''): void {
    this.phone.respond(this.invite, status, status === 183 ? 'Session Progress' : 'Ringing', {
      toTag: this.tag,
      extra: [`Contact: <sip:${this.phone.user}@127.0.0.1:${this.phone.port}>`],
      body,
    });
  }

  answer(body = ''): void {
    this.phone.respond(this.invite, 200, 'OK', {
      toTag: this.tag,
      extra: [`Contact: <sip:${this.phone.user}@127.0.0.1:${this.phone.port}>`],
      body,
    });
  }

  reject(status: number, reason: string, extra: string[] = []): void {
    this.phone.respond(this.invite, status, reason, { toTag: this.tag, extra });
  }

  async waitAck(ms = 3000): Promise<SipRequest> {
    return (await this.phone.wait(
      (m) => m.kind === 'request' && m.method === 'ACK' && m.headers.get('call-id') === this.dialog.callId,
      ms,
      'ACK',
    )) as SipRequest;
  }

  async bye(ms = 3000): Promise<SipResponse> {
    this.phone.sendInDialog(this.dialog, 'BYE');
    return this.phone.waitResponse((r) => r.headers.get('call-id') === this.dialog.callId && /BYE/.test(r.headers.get('cseq') ?? ''), ms);
  }
}

/** RFC 3261 section 18.2.2: a response goes to the top Via's port (its rport value when given). */
function viaPort(via: string): number {
  const top = via.split(',')[0]!;
  const rport = /;rport=(\d+)/.exec(top);
  if (rport) return Number(rport[1]);
  const m = /^SIP\/2\.0\/\w+\s+[^:;\s]+:(\d+)/i.exec(top.trim());
  return m ? Number(m[1]) : 5060;
}

/** The port of a sip: URI (the remote target), if it names one. */
function uriPort(uri: string): number | undefined {
  const m = /^sips?:(?:[^@]*@)?[^:;>]+:(\d+)/.exec(uri);
  return m ? Number(m[1]) : undefined;
}

function describe(m: SipMessage): string {
  return m.kind === 'request' ? m.method : `${m.status}(${m.headers.get('cseq')})`;
}

const RTPMAPS: Record<number, string> = { 0: 'PCMU/8000', 8: 'PCMA/8000', 101: 'telephone-event/8000' };

/** An audio offer or answer at 127.0.0.1:`port` with `formats` (default PCMU, PCMA, telephone-event). */
export function audioSdp(port: number, extra = '', formats: number[] = [0, 8, 101]): string {
  return [
    'v=0',
    `o=test ${port} 1 IN IP4 127.0.0.1`,
    's=-',
    'c=IN IP4 127.0.0.1',
    't=0 0',
    `m=audio ${port} RTP/AVP ${formats.join(' ')}`,
    ...formats.map((f) => `a=rtpmap:${f} ${RTPMAPS[f]}`),
    'a=sendrecv',
    extra,
  ]
    .filter((l) => l !== '')
    .join('\r\n') + '\r\n';
}

/** The registered phones of one server: one per extension (password `pw<number>`), or a second on request. */
export class PhoneBook {
  readonly phones: Phone[] = [];

  constructor(private readonly serverPort: () => number) {}

  async get(user: string, opts: { second?: boolean } = {}): Promise<Phone> {
    const known = this.phones.find((p) => p.user === user);
    if (known && !opts.second) return known;
    const p = await Phone.open(user, `pw${user}`, this.serverPort());
    this.phones.push(p);
    await p.register();
    return p;
  }

  closeAll(): void {
    for (const p of this.phones) p.close();
  }
}

/** Two phones registered to the server on `port` (passwords `pw<number>`); the caller closes them. */
export async function registeredPair(port: number, a: string, b: string): Promise<[Phone, Phone]> {
  const pa = await Phone.open(a, `pw${a}`, port);
  const pb = await Phone.open(b, `pw${b}`, port);
  await pa.register();
  await pb.register();
  return [pa, pb];
}

/**
 * `caller` calls `callee` with `offer`, the callee answers with `answer` at once: returns when the
 * caller has the 200 (asserted) and the callee has the ACK.
 */
export async function answeredCall(caller: Phone, callee: Phone, offer: string, answer: string): Promise<{ call: OutgoingCall; inc: IncomingCall }> {
  const call = await caller.invite(callee.user, offer);
  const inc = await callee.incoming();
  inc.answer(answer);
  assert.equal((await call.final()).status, 200, `call ${caller.user} -> ${callee.user} answered`);
  await inc.waitAck();
  return { call, inc };
}
