/**
 * Keys out of band: RFC 4733 telephone-events in RTP, and the bodies of SIP INFO requests.
 *
 * RFC 4733 §2.3: each event is a 4-byte block: event code, E(nd) bit, R, volume, 16-bit duration.
 * An event is identified by its start, the RTP timestamp of its packets (§2.3.1, §2.5.2.1): the
 * first packet, the updates with growing durations and the (usually three, §2.5.1.4) end packets
 * all carry it, so a key counts once however many of them arrive, in whatever order; a new press
 * of the same key is a new event with a new timestamp and counts again.
 */

/** Event codes 0-15 (RFC 4733 §3.2): 0-9, *, #, A-D. */
export const DTMF_KEYS = '0123456789*#ABCD';

/** The key of an RFC 4733 event code, or null for codes that are not DTMF keys. */
export function eventCodeToKey(code: number): string | null {
  return Number.isInteger(code) && code >= 0 && code < 16 ? DTMF_KEYS[code]! : null;
}

export function isDtmfKey(key: string): boolean {
  return key.length === 1 && DTMF_KEYS.includes(key);
}

/** What the receiver needs of an RTP packet (a decoded RtpPacket fits). */
export interface TelephoneEventPacket {
  ssrc: number;
  timestamp: number;
  marker: boolean;
  payload: Uint8Array;
}

interface SeenEvent {
  start: number;
  code: number;
  ended: boolean;
}

/** Events remembered per source: enough for late duplicates after a few newer presses. */
const REMEMBERED_EVENTS = 16;
const MAX_SEGMENT_DURATION = 0xffff;
const NO_KEYS: readonly string[] = Object.freeze([]);

/** Turns the telephone-event packets of one RTP stream into keys, each press once. */
export class TelephoneEventReceiver {
  private ssrc: number | null = null;
  private seen: SeenEvent[] = [];

  /** The keys of events that start in this packet (usually none, at most one per event block). */
  receive(packet: TelephoneEventPacket): readonly string[] {
    const p = packet.payload;
    if (p.length < 4) return NO_KEYS;
    if (packet.ssrc !== this.ssrc) {
      // A new source (e.g. a B2BUA switched streams) numbers its timestamps afresh.
      this.ssrc = packet.ssrc;
      this.seen = [];
    }
    let keys: string[] | null = null;
    // RFC 4733 §2.5.1.5: several consecutive events may share a packet; the RTP timestamp is the
    // start of the first, each next one starts where the one before ended.
    let start = packet.timestamp;
    for (let at = 0; at + 4 <= p.length; at += 4) {
      const code = p[at]!;
      const ended = (p[at + 1]! & 0x80) !== 0;
      const duration = (p[at + 2]! << 8) | p[at + 3]!;
      if (this.isNewEvent(start, code, ended, packet.marker && at === 0)) {
        const key = eventCodeToKey(code);
        if (key) (keys ??= []).push(key);
      }
      start = (start + duration) >>> 0;
    }
    return keys ?? NO_KEYS;
  }

  private isNewEvent(start: number, code: number, ended: boolean, marker: boolean): boolean {
    const known = this.seen.find((e) => e.start === start);
    if (known) {
      known.ended ||= ended;
      return false;
    }
    const last = this.seen[this.seen.length - 1];
    // RFC 4733 §2.5.1.3, §2.5.2.3: an event longer than the 16-bit duration goes on in segments,
    // each with a new timestamp (the previous one plus its full duration) and no marker bit.
    const continuation = !marker && last !== undefined && !last.ended && last.code === code && ((last.start + MAX_SEGMENT_DURATION) >>> 0) === start;
    this.seen.push({ start, code, ended });
    if (this.seen.length > REMEMBERED_EVENTS) this.seen.shift();
    return !continuation;
  }
}

/**
 * The key in a SIP INFO body, or null: `application/dtmf-relay` ("Signal=5\r\nDuration=160", the
 * de-facto format of Cisco and most phones) or `application/dtmf` ("5"). Signal values may also be
 * event codes 10-15 ("Signal=11" for #). Content-type parameters and case are ignored.
 */
export function parseDtmfInfo(contentType: string, body: string): string | null {
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  if (type === 'application/dtmf-relay') {
    for (const line of body.split(/\r?\n/)) {
      const m = /^\s*signal\s*=\s*(\S+)\s*$/i.exec(line);
      if (m) return signalToKey(m[1]!);
    }
    return null;
  }
  if (type === 'application/dtmf') return signalToKey(body.trim());
  return null;
}

function signalToKey(signal: string): string | null {
  const s = signal.toUpperCase();
  if (isDtmfKey(s)) return s;
  if (/^1[0-5]$/.test(s)) return eventCodeToKey(Number(s));
  return null;
}
