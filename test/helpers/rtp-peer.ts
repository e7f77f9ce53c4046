/** A phone's media socket in tests: sends RTP where the SDP it was given points, keeps what arrives. */
import dgram from 'node:dgram';
import { decodeRtp, encodeRtp, type RtpPacket } from '../../lib/media/endpoint/rtp.js';

export class RtpPeer {
  readonly packets: Array<{ at: number; packet: RtpPacket }> = [];
  protected seq = 1000;
  protected ts = 5000;
  private target: { address: string; port: number } | null = null;

  constructor(readonly socket: dgram.Socket) {
    socket.on('message', (m) => {
      const packet = decodeRtp(new Uint8Array(m));
      if (packet) this.packets.push({ at: performance.now(), packet: { ...packet, payload: new Uint8Array(packet.payload) } });
    });
  }

  static async open<T extends RtpPeer>(this: new (s: dgram.Socket) => T): Promise<T> {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    return new this(s);
  }

  get port(): number {
    return this.socket.address().port;
  }

  /** Sends to the first audio stream of `sdp` (its c= and m=audio port). */
  aim(sdp: string): void {
    const c = /c=IN IP4 (\S+)/.exec(sdp)![1]!;
    const port = Number(/m=audio (\d+)/.exec(sdp)![1]);
    this.target = { address: c, port };
  }

  send(payloadType: number, payload: Uint8Array, opts: { marker?: boolean; timestamp?: number } = {}): void {
    const bytes = encodeRtp({ marker: opts.marker ?? false, payloadType, sequenceNumber: this.seq++ & 0xffff, timestamp: opts.timestamp ?? this.ts, ssrc: 0x1234, payload });
    this.socket.send(bytes, this.target!.port, this.target!.address);
  }

  close(): void {
    this.socket.close();
  }
}
