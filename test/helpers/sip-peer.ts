import dgram from 'node:dgram';
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { parseMessage } from '../../lib/sip/parser.js';
import type { SipResponse } from '../../lib/sip/message.js';

/** A test phone: sends raw SIP text over UDP from 127.0.0.1 and collects parsed responses. */
export class UdpPeer {
  private readonly socket = dgram.createSocket('udp4');
  private readonly inbox: SipResponse[] = [];
  /** Final responses request() passed over since the last drain() (another Call-ID); the first 100. */
  private readonly skipped: SipResponse[] = [];
  private waiters: Array<() => void> = [];
  port = 0;

  static async open(): Promise<UdpPeer> {
    const p = new UdpPeer();
    await new Promise<void>((resolve) => p.socket.bind(0, '127.0.0.1', resolve));
    p.port = p.socket.address().port;
    p.socket.on('message', (data) => {
      const r = parseMessage(data, { datagram: true });
      if (r.ok && r.message.kind === 'response') {
        p.inbox.push(r.message);
        const w = p.waiters;
        p.waiters = [];
        for (const f of w) f();
      }
    });
    return p;
  }

  send(text: string | Buffer, port: number, host = '127.0.0.1'): void {
    this.socket.send(typeof text === 'string' ? Buffer.from(text) : text, port, host);
  }

  /** Next final (or any, with `provisional`) response, waiting at most `ms`. */
  async next(ms = 2000, provisional = false): Promise<SipResponse> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.inbox.findIndex((r) => provisional || r.status >= 200);
      if (i >= 0) return this.inbox.splice(i, 1)[0]!;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no response within ${ms} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /**
   * Sends and waits for the final response with the same Call-ID; other responses (late
   * retransmissions of earlier answers) are discarded. Like any UDP client (RFC 3261 section
   * 17.1.2.2, timer E) the request is sent again after 500 ms, 1 s, 2 s... without an answer: a
   * datagram lost in a burst (a full socket buffer) is no reason to give up.
   */
  async request(text: string, port: number, ms = 2000): Promise<SipResponse> {
    const callId = /^(?:Call-ID|i)\s*:\s*(.*)$/im.exec(text)?.[1]?.trim();
    this.send(text, port);
    const deadline = Date.now() + ms;
    let interval = 500;
    let resendAt = Date.now() + interval;
    for (;;) {
      const now = Date.now();
      if (now >= deadline) throw new Error(`no response within ${ms} ms`);
      if (now >= resendAt) {
        this.send(text, port);
        interval = Math.min(interval * 2, 4000);
        resendAt = now + interval;
      }
      let r: SipResponse;
      try {
        r = await this.next(Math.max(1, Math.min(deadline, resendAt) - Date.now()));
      } catch {
        continue; // no answer yet: send again, or give up at the deadline
      }
      if (callId === undefined || r.headers.get('call-id') === callId) return r;
      if (this.skipped.length < 100) this.skipped.push(r);
    }
  }


  /** Forgets every response received so far. */
  drain(): void {
    this.inbox.length = 0;
    this.skipped.length = 0;
  }

  /** The responses received since drain() that nobody took: passed over by request(), or waiting. */
  get unclaimed(): SipResponse[] {
    return [...this.skipped, ...this.inbox];
  }

  close(): void {
    this.socket.close();
  }
}

export interface RegisterOptions {
  user: string;
  port: number;
  localPort: number;
  callId?: string;
  cseq?: number;
  contact?: string;
  expires?: number | null;
  extraHeaders?: string[];
  authorization?: string;
  transport?: 'UDP' | 'TCP';
}

let branchCounter = 0;
export function branch(): string {
  return `z9hG4bK-test-${process.pid}-${++branchCounter}-${randomBytes(3).toString('hex')}`;
}

export function registerText(o: RegisterOptions): string {
  const lines = [
    `REGISTER sip:127.0.0.1:${o.port} SIP/2.0`,
    `Via: SIP/2.0/${o.transport ?? 'UDP'} 127.0.0.1:${o.localPort};branch=${branch()};rport`,
    'Max-Forwards: 70',
    `From: <sip:${o.user}@127.0.0.1>;tag=f${o.cseq ?? 1}x`,
    `To: <sip:${o.user}@127.0.0.1>`,
    `Call-ID: ${o.callId ?? `cid-${o.user}-${process.pid}`}`,
    `CSeq: ${o.cseq ?? 1} REGISTER`,
  ];
  if (o.contact !== '') lines.push(`Contact: ${o.contact ?? `<sip:${o.user}@127.0.0.1:${o.localPort}>`}`);
  if (o.expires !== null) lines.push(`Expires: ${o.expires ?? 600}`);
  if (o.authorization) lines.push(`Authorization: ${o.authorization}`);
  lines.push(...(o.extraHeaders ?? []));
  lines.push('Content-Length: 0', '', '');
  return lines.join('\r\n');
}

/** Parses the challenge parameters out of a WWW-/Proxy-Authenticate value. */
export function challengeParams(value: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([a-zA-Z]+)=(?:"([^"]*)"|([^,\s]+))/g;
  for (let m = re.exec(value); m; m = re.exec(value)) out[m[1]!.toLowerCase()] = m[2] ?? m[3] ?? '';
  return out;
}

/** A digest Authorization value computed independently of lib/ (RFC 7616 section 3.4.1). */
export function digestAuthorization(o: {
  challenge: string;
  user: string;
  password: string;
  method: string;
  uri: string;
  nc?: string;
  cnonce?: string;
  header?: 'authorization';
}): string {
  const p = challengeParams(o.challenge);
  const alg = (p.algorithm ?? 'MD5').toUpperCase();
  const h = (s: string) => createHash(alg === 'SHA-256' ? 'sha256' : 'md5').update(s).digest('hex');
  const nc = o.nc ?? '00000001';
  const cnonce = o.cnonce ?? randomBytes(6).toString('hex');
  const ha1 = h(`${o.user}:${p.realm}:${o.password}`);
  const ha2 = h(`${o.method}:${o.uri}`);
  const response = h(`${ha1}:${p.nonce}:${nc}:${cnonce}:auth:${ha2}`);
  return (
    `Digest username="${o.user}", realm="${p.realm}", nonce="${p.nonce}", uri="${o.uri}", ` +
    `response="${response}", algorithm=${alg}, cnonce="${cnonce}", qop=auth, nc=${nc}` +
    (p.opaque ? `, opaque="${p.opaque}"` : '')
  );
}

/** Full REGISTER with digest: challenge, answer; returns the final response of the second REGISTER. */
export async function registerWithAuth(
  peer: UdpPeer,
  o: RegisterOptions & { password: string; algorithm?: 'MD5' | 'SHA-256' },
): Promise<{ challenge: SipResponse; final: SipResponse }> {
  const cseq = o.cseq ?? 1;
  const challenge = await peer.request(registerText({ ...o, cseq }), o.port);
  if (challenge.status !== 401) return { challenge, final: challenge };
  const values = challenge.headers.getAll('www-authenticate');
  const chosen = values.find((v) => (o.algorithm ?? 'SHA-256') === (challengeParams(v).algorithm ?? 'MD5').toUpperCase()) ?? values[0]!;
  const authorization = digestAuthorization({
    challenge: chosen,
    user: o.user,
    password: o.password,
    method: 'REGISTER',
    uri: `sip:127.0.0.1:${o.port}`,
  });
  const final = await peer.request(registerText({ ...o, cseq: cseq + 1, authorization }), o.port);
  return { challenge, final };
}

/** A TCP connection that frames responses by Content-Length. */
export class TcpPeer {
  private buffer = Buffer.alloc(0);
  private readonly responses: SipResponse[] = [];
  private waiters: Array<() => void> = [];
  closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d) => {
      this.buffer = Buffer.concat([this.buffer, d]);
      for (;;) {
        const end = this.buffer.indexOf('\r\n\r\n');
        if (end < 0) break;
        const head = this.buffer.subarray(0, end).toString();
        const m = /content-length:\s*(\d+)/i.exec(head);
        const total = end + 4 + (m ? Number(m[1]) : 0);
        if (this.buffer.length < total) break;
        const r = parseMessage(this.buffer.subarray(0, total));
        this.buffer = this.buffer.subarray(total);
        if (r.ok && r.message.kind === 'response') this.responses.push(r.message);
      }
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    });
    socket.on('close', () => {
      this.closed = true;
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    });
    socket.on('error', () => {});
  }

  static connect(port: number): Promise<TcpPeer> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host: '127.0.0.1' }, () => resolve(new TcpPeer(s)));
      s.once('error', reject);
    });
  }

  get localPort(): number {
    return this.socket.localPort ?? 0;
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  async next(ms = 2000): Promise<SipResponse> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.responses.findIndex((r) => r.status >= 200);
      if (i >= 0) return this.responses.splice(i, 1)[0]!;
      if (this.closed) throw new Error('connection closed');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no response within ${ms} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async waitClosed(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.closed;
  }

  close(): void {
    this.socket.destroy();
  }
}
