/**
 * An attacker for the security tests: a UDP socket bound to a loopback address of its own
 * (127.0.0.2 and up: Linux routes all of 127/8 to lo), so that the server sees a source other
 * than the phones' 127.0.0.1. Guesses passwords as svcrack does (REGISTER, answer the challenge
 * with a wrong password), sends raw requests, and tells an answer from silence with a bounded
 * quiet period.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { parseMessage } from '../../lib/sip/parser.js';
import type { SipResponse } from '../../lib/sip/message.js';
import type { Phone } from '../helpers/phone.js';
import { branch, challengeParams, digestAuthorization, registerText } from '../helpers/sip-peer.js';

let calls = 0;

export class Attacker {
  private readonly socket = dgram.createSocket('udp4');
  private readonly inbox: SipResponse[] = [];
  private waiters: Array<() => void> = [];
  port = 0;
  /** Every response received, in order. */
  readonly received: SipResponse[] = [];

  private constructor(
    readonly address: string,
    readonly serverPort: number,
  ) {}

  static async open(address: string, serverPort: number): Promise<Attacker> {
    const a = new Attacker(address, serverPort);
    await new Promise<void>((resolve, reject) => {
      a.socket.once('error', reject);
      a.socket.bind(0, address, () => resolve());
    });
    a.port = a.socket.address().port;
    a.socket.on('message', (data) => {
      const r = parseMessage(data, { datagram: true });
      if (!r.ok || r.message.kind !== 'response') return;
      a.inbox.push(r.message);
      a.received.push(r.message);
      const w = a.waiters;
      a.waiters = [];
      for (const f of w) f();
    });
    return a;
  }

  send(text: string): void {
    this.socket.send(Buffer.from(text), this.serverPort, '127.0.0.1');
  }

  /** The next response with this Call-ID, or null when none comes within `ms` (silence). */
  async response(callId: string, ms: number): Promise<SipResponse | null> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.inbox.findIndex((r) => r.headers.get('call-id') === callId);
      if (i >= 0) return this.inbox.splice(i, 1)[0]!;
      const left = deadline - Date.now();
      if (left <= 0) return null;
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
   * One svcrack-style guess at `user`'s password: REGISTER, then the answer to its challenge
   * computed with `password`. The final status, or null when the server stayed silent.
   */
  async guess(user: string, password: string, quietMs: number, userAgent = 'attack-script'): Promise<number | null> {
    const callId = `guess-${this.address}-${process.pid}-${++calls}`;
    const o = { user, port: this.serverPort, localPort: this.port, callId, extraHeaders: [`User-Agent: ${userAgent}`] };
    this.send(registerText({ ...o, cseq: 1 }));
    const challenge = await this.response(callId, quietMs);
    if (challenge === null) return null;
    if (challenge.status !== 401) return challenge.status;
    const values = challenge.headers.getAll('www-authenticate');
    const chosen = values.find((v) => (challengeParams(v).algorithm ?? 'MD5').toUpperCase() === 'MD5') ?? values[0]!;
    const authorization = digestAuthorization({ challenge: chosen, user, password, method: 'REGISTER', uri: `sip:127.0.0.1:${this.serverPort}` });
    this.send(registerText({ ...o, cseq: 2, authorization }));
    const final = await this.response(callId, quietMs);
    return final === null ? null : final.status;
  }

  /** An OPTIONS to the server; its status, or null for silence within `quietMs`. */
  async options(quietMs: number, userAgent = 'probe'): Promise<number | null> {
    const callId = `opt-${this.address}-${process.pid}-${++calls}`;
    this.send(optionsText(this.port, this.serverPort, callId, userAgent));
    return (await this.response(callId, quietMs))?.status ?? null;
  }

  /** Sends `n` OPTIONS at once (new transactions each); their Call-IDs. */
  burst(n: number, userAgent = 'flood'): string[] {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const callId = `flood-${this.address}-${process.pid}-${++calls}`;
      ids.push(callId);
      this.send(optionsText(this.port, this.serverPort, callId, userAgent));
    }
    return ids;
  }

  /** Responses received so far whose Call-ID is one of `ids`. */
  answered(ids: readonly string[]): number {
    const set = new Set(ids);
    return this.received.filter((r) => set.has(r.headers.get('call-id') ?? '')).length;
  }

  close(): void {
    this.socket.close();
  }
}

export function optionsText(localPort: number, serverPort: number, callId: string, userAgent: string): string {
  return [
    `OPTIONS sip:127.0.0.1:${serverPort} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${localPort};branch=${branch()};rport`,
    'Max-Forwards: 70',
    `From: <sip:probe@127.0.0.1>;tag=${callId.slice(-8)}`,
    `To: <sip:probe@127.0.0.1>`,
    `Call-ID: ${callId}`,
    'CSeq: 1 OPTIONS',
    `User-Agent: ${userAgent}`,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

/**
 * A TCP connection from `localAddress` to the server: resolves with how it ended ('closed' with
 * no byte received, or 'open' when it is still up after `ms`).
 */
export async function tcpFate(localAddress: string, port: number, ms: number, send?: string): Promise<{ fate: 'closed' | 'open'; bytes: number; socket: net.Socket }> {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress });
  let bytes = 0;
  socket.on('data', (d) => (bytes += d.length));
  socket.on('error', () => {});
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve({ fate: 'open', bytes, socket }), ms);
    socket.once('close', () => {
      clearTimeout(t);
      resolve({ fate: 'closed', bytes, socket });
    });
    if (send !== undefined) socket.once('connect', () => socket.write(send));
  });
}

const refreshes = new WeakMap<Phone, number>();

/**
 * Registers `phone` again on the Call-ID of Phone.register() with higher CSeqs (a phone's
 * refresh; Phone.register() itself always sends CSeq 1 and 2). Throws unless the answer is 200.
 */
export async function refresh(phone: Phone): Promise<void> {
  const n = (refreshes.get(phone) ?? 0) + 1;
  refreshes.set(phone, n);
  const callId = `reg-${phone.user}-${phone.port}`;
  const o = { user: phone.user, port: phone.serverPort, localPort: phone.port, callId, expires: 600 };
  phone.sendText(registerText({ ...o, cseq: 2 * n + 1 }));
  const challenge = await phone.waitResponse((r) => r.headers.get('call-id') === callId, 2000);
  if (challenge.status !== 401) throw new Error(`refresh ${phone.user}: ${challenge.status}`);
  const values = challenge.headers.getAll('www-authenticate');
  const chosen = values.find((v) => (challengeParams(v).algorithm ?? 'MD5').toUpperCase() === 'MD5') ?? values[0]!;
  const authorization = digestAuthorization({ challenge: chosen, user: phone.user, password: phone.password, method: 'REGISTER', uri: `sip:127.0.0.1:${phone.serverPort}` });
  phone.sendText(registerText({ ...o, cseq: 2 * n + 2, authorization }));
  const final = await phone.waitResponse((r) => r.headers.get('call-id') === callId, 2000);
  if (final.status !== 200) throw new Error(`refresh ${phone.user}: ${final.status}`);
}
