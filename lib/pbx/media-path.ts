/**
 * A call's media through the relay: the SDP each side sends is rewritten to point at the relay
 * ports facing the other side. Without a relay session (relay off, or media the relay cannot
 * carry) SDP passes untouched.
 */
import type { Endpoint } from '../sip/transport/types.js';
import { summariseMedia } from './call-messages.js';

export type Side = 'a' | 'b';

/** What a call needs of the media relay (lib/media). */
export interface MediaSession {
  /** SDP that `from` sent; returns the SDP for the other side. Throws on unusable SDP. */
  rewrite(from: Side, sdp: string, advertise: string, signalIp?: string): string;
  onInactive: (() => void) | null;
  stats(): Array<{ media: string; aToB: number; bToA: number }>;
  close(): void;
}

export class MediaPath {
  constructor(
    private session: MediaSession | null,
    /** Our media address as `peer` sees it (hint: the host it addressed us with). */
    private readonly mediaHost: (peer: string, hint?: string) => string,
  ) {}

  get relayed(): boolean {
    return this.session !== null;
  }

  /** Called when no media has flowed for the relay's inactivity time. */
  set onInactive(fn: (() => void) | null) {
    if (this.session) this.session.onInactive = fn;
  }

  /**
   * The SDP `from` sent, as the other side must see it. `peer` is where it goes (our address as
   * that peer sees it is advertised); only `signalIp` (the sender's own SIP address) or its SDP
   * address may latch its media.
   */
  rewrite(from: Side, body: Buffer, peer: Endpoint, signalIp: string, hint?: string): Buffer {
    if (!this.session || body.length === 0) return body;
    const advertise = this.mediaHost(peer.address, hint);
    return Buffer.from(this.session.rewrite(from, body.toString('utf8'), advertise, signalIp), 'utf8');
  }

  /** Media the relay cannot carry (IPv6): the call goes on with direct media. */
  goDirect(): void {
    this.session?.close();
    this.session = null;
  }

  /** Closes the relay session; returns what it carried ('audio+video'), for the record. */
  close(): string | undefined {
    const s = this.session;
    if (!s) return undefined;
    this.session = null;
    const summary = summariseMedia(s);
    s.close();
    return summary;
  }
}
