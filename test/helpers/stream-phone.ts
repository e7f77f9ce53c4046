/**
 * A scripted phone on one TCP or TLS connection: Content-Length framing, requests and responses
 * alike, kept in arrival order and picked by predicate; every wait is bounded.
 */
import net from 'node:net';
import tls from 'node:tls';
import { parseMessage } from '../../lib/sip/parser.js';
import type { SipMessage, SipRequest, SipResponse } from '../../lib/sip/message.js';
import { branch, challengeParams, digestAuthorization } from './sip-peer.js';

/** One side of a dialog as the phone keeps it. */
export interface StreamDialog {
  callId: string;
  localUri: string;
  localTag: string;
  remoteUri: string;
  /** '' until a response with a To tag. */
  remoteTag: string;
  /** Request-URI of requests in the dialog: the peer's Contact once known. */
  target: string;
  cseq: number;
}

let calls = 0;

export class StreamPhone {
  private buffer = Buffer.alloc(0);
  private readonly inbox: SipMessage[] = [];
  private waiters: Array<() => void> = [];
  closed = false;

  constructor(
    readonly socket: net.Socket,
    /** As written in our Via. */
    readonly transport: 'TCP' | 'TLS',
  ) {
    socket.on('data', (d: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, d]);
      for (;;) {
        const end = this.buffer.indexOf('\r\n\r\n');
        if (end < 0) break;
        const length = Number(/content-length:\s*(\d+)/i.exec(this.buffer.subarray(0, end).toString())?.[1] ?? 0);
        if (this.buffer.length < end + 4 + length) break;
        const r = parseMessage(this.buffer.subarray(0, end + 4 + length));
        this.buffer = this.buffer.subarray(end + 4 + length);
        if (r.ok) this.inbox.push(r.message);
      }
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  static tcp(port: number): Promise<StreamPhone> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host: '127.0.0.1' }, () => resolve(new StreamPhone(s, 'TCP')));
      s.once('error', reject);
    });
  }

  /** A TLS connection that trusts `ca` alone (and checks the server's name against it). */
  static tls(port: number, ca: string | Buffer, opts: { localAddress?: string } = {}): Promise<StreamPhone> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({ port, host: '127.0.0.1', ca, ...opts }, () => resolve(new StreamPhone(s, 'TLS')));
      s.once('error', reject);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  get localPort(): number {
    return this.socket.localPort ?? 0;
  }

  send(lines: string[], body = ''): void {
    this.socket.write([...lines, `Content-Length: ${Buffer.byteLength(body)}`, '', ''].join('\r\n') + body);
  }

  /** The next message matching `pred` (removed from the inbox), waiting at most `ms`. */
  async wait(pred: (m: SipMessage) => boolean, ms = 3000, what = 'message'): Promise<SipMessage> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.inbox.findIndex(pred);
      if (i >= 0) return this.inbox.splice(i, 1)[0]!;
      const left = deadline - Date.now();
      if (left <= 0 || this.closed) throw new Error(`${this.transport} phone: no ${what} within ${ms} ms${this.closed ? ' (connection closed)' : ''}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async waitRequest(method: string, ms = 3000): Promise<SipRequest> {
    return (await this.wait((m) => m.kind === 'request' && m.method === method, ms, method)) as SipRequest;
  }

  async waitResponse(pred: (r: SipResponse) => boolean = () => true, ms = 3000): Promise<SipResponse> {
    return (await this.wait((m) => m.kind === 'response' && pred(m), ms, 'response')) as SipResponse;
  }

  /** True once the server has closed the connection; false if it is still open after `ms`. */
  async waitClosed(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, deadline - Date.now());
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.closed;
  }

  /** Answers `req` (copying Via, From, To with `toTag` if it has none, Call-ID, CSeq). */
  respond(req: SipRequest, status: number, reason: string, opts: { toTag?: string; contact?: string; body?: string } = {}): void {
    const h = req.headers;
    const to = h.get('to') ?? '';
    this.send(
      [
        `SIP/2.0 ${status} ${reason}`,
        ...h.getAll('via').map((v) => `Via: ${v}`),
        `From: ${h.get('from')}`,
        `To: ${opts.toTag && !/;tag=/i.test(to) ? `${to};tag=${opts.toTag}` : to}`,
        `Call-ID: ${h.get('call-id')}`,
        `CSeq: ${h.get('cseq')}`,
        ...(opts.contact ? [`Contact: ${opts.contact}`] : []),
        ...(opts.body ? ['Content-Type: application/sdp'] : []),
      ],
      opts.body ?? '',
    );
  }

  /**
   * REGISTER with digest (MD5) on this connection; the final response. `contact` defaults to a
   * private address the server could not reach by itself: only the connection leads back.
   */
  async register(user: string, password: string, serverPort: number, opts: { contact?: string; callId?: string; cseq?: number } = {}): Promise<SipResponse> {
    const callId = opts.callId ?? `reg-${user}-${this.localPort}`;
    const contact = opts.contact ?? `<sip:${user}@192.168.77.7:5060;transport=${this.transport.toLowerCase()}>`;
    const cseq = opts.cseq ?? 1;
    const request = (n: number, auth?: string) => [
      `REGISTER sip:127.0.0.1:${serverPort} SIP/2.0`,
      `Via: SIP/2.0/${this.transport} 127.0.0.1:${this.localPort};branch=${branch()}`,
      'Max-Forwards: 70',
      `From: <sip:${user}@127.0.0.1>;tag=r${n}`,
      `To: <sip:${user}@127.0.0.1>`,
      `Call-ID: ${callId}`,
      `CSeq: ${n} REGISTER`,
      `Contact: ${contact}`,
      'Expires: 600',
      ...(auth ? [`Authorization: ${auth}`] : []),
    ];
    this.send(request(cseq));
    const challenge = await this.waitResponse((r) => r.headers.get('call-id') === callId);
    if (challenge.status !== 401) return challenge;
    const values = challenge.headers.getAll('www-authenticate');
    const chosen = values.find((v) => (challengeParams(v).algorithm ?? 'MD5').toUpperCase() === 'MD5') ?? values[0]!;
    const auth = digestAuthorization({ challenge: chosen, user, password, method: 'REGISTER', uri: `sip:127.0.0.1:${serverPort}` });
    this.send(request(cseq + 1, auth));
    return this.waitResponse((r) => r.headers.get('call-id') === callId);
  }

  /**
   * INVITE to `uri` from `user`, answering the 407 challenge (ACKed) with digest (MD5); resolves
   * once the authenticated INVITE is sent. The final response: waitResponse, then `ack`.
   */
  async invite(user: string, password: string, uri: string, sdp = ''): Promise<StreamDialog> {
    const d: StreamDialog = { callId: `tls-call-${user}-${process.pid}-${++calls}`, localUri: `<sip:${user}@127.0.0.1>`, localTag: `t${calls}`, remoteUri: `<${uri}>`, remoteTag: '', target: uri, cseq: 1 };
    const request = (method: string, cseq: number, br: string, extra: string[] = []) => [
      `${method} ${uri} SIP/2.0`,
      `Via: SIP/2.0/${this.transport} 127.0.0.1:${this.localPort};branch=${br}`,
      'Max-Forwards: 70',
      `From: ${d.localUri};tag=${d.localTag}`,
      `To: ${d.remoteUri}`,
      `Call-ID: ${d.callId}`,
      `CSeq: ${cseq} ${method}`,
      ...extra,
    ];
    const contact = `Contact: <sip:${user}@192.168.77.7:5060;transport=${this.transport.toLowerCase()}>`;
    const first = branch();
    this.send([...request('INVITE', 1, first, [contact, ...(sdp ? ['Content-Type: application/sdp'] : [])])], sdp);
    const challenge = await this.waitResponse((r) => r.headers.get('call-id') === d.callId && r.status >= 200);
    if (challenge.status !== 407) throw new Error(`${this.transport} phone: expected 407, got ${challenge.status} ${challenge.reason}`);
    this.send(request('ACK', 1, first).map((l) => (l.startsWith('To:') ? `To: ${challenge.headers.get('to')}` : l)));
    const chosen = challenge.headers.getAll('proxy-authenticate').find((v) => (challengeParams(v).algorithm ?? 'MD5').toUpperCase() === 'MD5')!;
    const auth = digestAuthorization({ challenge: chosen, user, password, method: 'INVITE', uri });
    d.cseq = 2;
    this.send(request('INVITE', 2, branch(), [contact, `Proxy-Authorization: ${auth}`, ...(sdp ? ['Content-Type: application/sdp'] : [])]), sdp);
    return d;
  }

  /** The final response to the dialog's INVITE; a 2xx fills in the remote tag and target and is ACKed. */
  async final(d: StreamDialog, ms = 5000): Promise<SipResponse> {
    const res = await this.waitResponse((r) => r.headers.get('call-id') === d.callId && r.status >= 200 && /INVITE/.test(r.headers.get('cseq') ?? ''), ms);
    if (res.status >= 300) return res;
    d.remoteTag = /;tag=([^;]+)/.exec(res.headers.get('to') ?? '')?.[1] ?? '';
    d.target = /<([^>]+)>/.exec(res.headers.get('contact') ?? '')?.[1] ?? d.target;
    this.sendInDialog(d, 'ACK', d.cseq);
    return res;
  }

  /** A request in `d` (a new CSeq unless given). */
  sendInDialog(d: StreamDialog, method: string, cseq = ++d.cseq): void {
    this.send([
      `${method} ${d.target} SIP/2.0`,
      `Via: SIP/2.0/${this.transport} 127.0.0.1:${this.localPort};branch=${branch()}`,
      'Max-Forwards: 70',
      `From: ${d.localUri};tag=${d.localTag}`,
      `To: ${d.remoteUri};tag=${d.remoteTag}`,
      `Call-ID: ${d.callId}`,
      `CSeq: ${cseq} ${method}`,
    ]);
  }

  close(): void {
    this.socket.destroy();
  }
}
