/** Shared pieces of the media relay tests: phones (UDP sockets on 127.0.0.1), SDP text, waiting. */
import dgram from 'node:dgram';
import { once } from 'node:events';
import { claimPorts } from '../helpers/ports.js';

export const LOOPBACK = '127.0.0.1';
export const ADVERTISE = '127.0.0.1';

/** This test file's ports: its relays never meet another file's, nor anybody's bind(0). */
const block = await claimPorts(2400);
let blockNext = block.portMin;

/** Consecutive port ranges inside this test file's own block (see ../helpers/ports.ts). */
export class PortRanges {
  private next: number;
  private readonly end: number;
  constructor(blockSize = 2000) {
    if (blockNext + blockSize > block.portMax + 1) throw new Error('test port block exhausted');
    this.next = blockNext;
    this.end = blockNext + blockSize;
    blockNext += blockSize + (blockSize % 2); // RTP ports stay even
  }
  take(size: number): { portMin: number; portMax: number } {
    if (this.next + size > this.end) throw new Error('test port block exhausted');
    const range = { portMin: this.next, portMax: this.next + size - 1 };
    this.next += size;
    return range;
  }
}

/** A UDP endpoint that records what it receives. */
export class Phone {
  readonly received: string[] = [];
  private constructor(readonly socket: dgram.Socket) {
    socket.on('message', (m) => this.received.push(m.toString()));
  }
  /** `address`: another loopback address (127.0.0.2 ...) plays a different host. */
  static async open(address = LOOPBACK): Promise<Phone> {
    const socket = dgram.createSocket('udp4');
    socket.bind(0, address);
    await once(socket, 'listening');
    return new Phone(socket);
  }
  get port(): number {
    return this.socket.address().port;
  }
  send(port: number, text: string): void {
    this.socket.send(text, port, LOOPBACK);
  }
  count(prefix: string): number {
    return this.received.filter((r) => r.startsWith(prefix)).length;
  }
  close(): void {
    this.socket.close();
  }
}

export interface MediaLine {
  media: string;
  port: number;
  attrs?: string[];
  c?: string;
}

/** An SDP body; `sessionC` null = no session-level c= line. */
export function sdp(lines: MediaLine[], sessionC: string | null = LOOPBACK, sessionAttrs: string[] = []): string {
  const out = ['v=0', 'o=- 1 1 IN IP4 192.0.2.10', 's=-'];
  if (sessionC) out.push(`c=IN IP4 ${sessionC}`);
  out.push('t=0 0', ...sessionAttrs.map((a) => `a=${a}`));
  for (const l of lines) {
    const fmt = l.media === 'audio' ? '0 8' : l.media === 'video' ? '96' : '*';
    const proto = l.media === 'application' ? 'TCP/BFCP' : 'RTP/AVP';
    out.push(`m=${l.media} ${l.port} ${proto} ${fmt}`);
    if (l.c) out.push(`c=IN IP4 ${l.c}`);
    out.push(...(l.attrs ?? []).map((a) => `a=${a}`));
  }
  return out.join('\r\n') + '\r\n';
}

/** The m= ports of an SDP, in order. */
export function mPorts(text: string): number[] {
  return [...text.matchAll(/^m=\S+ (\d+)/gm)].map((m) => Number(m[1]));
}

/** Polls `cond` every 10 ms; fails after `timeoutMs`. */
export async function until(cond: () => boolean, what: string, timeoutMs = 4000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** True when something can be bound on `port` of 127.0.0.1 (then released again). */
export async function canBind(port: number): Promise<boolean> {
  const s = dgram.createSocket('udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(port, LOOPBACK, () => resolve());
    });
    return true;
  } catch {
    return false;
  } finally {
    try {
      s.close();
    } catch {
      // never bound
    }
  }
}
