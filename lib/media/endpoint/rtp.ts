/**
 * RTP fixed header (RFC 3550 §5.1), encoded and decoded. Decoding works on bytes from the network:
 * anything malformed gives null, it never throws.
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   |V=2|P|X|  CC   |M|     PT      |       sequence number         |
 *   |                           timestamp                           |
 *   |           synchronization source (SSRC) identifier            |
 *   |            contributing source (CSRC) identifiers  (CC x)     |
 */

export const RTP_VERSION = 2;
export const RTP_HEADER_BYTES = 12;

/** The fields of the fixed header that a sender chooses per packet. */
export interface RtpHeaderFields {
  marker: boolean;
  /** 0..127 */
  payloadType: number;
  /** 0..65535 */
  sequenceNumber: number;
  /** 0..2^32-1 */
  timestamp: number;
  /** 0..2^32-1 */
  ssrc: number;
}

/** RFC 3550 §5.3.1: a profile-defined 16 bits, then data in whole 32-bit words. */
export interface RtpHeaderExtension {
  profile: number;
  data: Uint8Array;
}

export interface RtpPacket extends RtpHeaderFields {
  csrcs: number[];
  extension: RtpHeaderExtension | null;
  /** Padding octets at the end (RFC 3550 §5.1, P bit), the count octet included; 0 = none. */
  paddingBytes: number;
  /** The payload without padding; a view into the decoded bytes, not a copy. */
  payload: Uint8Array;
}

export interface RtpPacketInit extends RtpHeaderFields {
  csrcs?: number[];
  extension?: RtpHeaderExtension | null;
  /** 0 = none, else 1..255 octets of padding including the count octet. */
  paddingBytes?: number;
  payload: Uint8Array;
}

/**
 * Writes the 12-byte fixed header (no CSRC, extension or padding) at the start of `out`: the
 * hot path of a sender that reuses its packet buffers.
 */
export function writeRtpHeader(out: Uint8Array, h: RtpHeaderFields): void {
  out[0] = RTP_VERSION << 6;
  out[1] = (h.marker ? 0x80 : 0) | (h.payloadType & 0x7f);
  out[2] = (h.sequenceNumber >>> 8) & 0xff;
  out[3] = h.sequenceNumber & 0xff;
  writeU32(out, 4, h.timestamp);
  writeU32(out, 8, h.ssrc);
}

/** A whole packet. Throws RangeError on fields out of range (programming errors, not input). */
export function encodeRtp(p: RtpPacketInit): Uint8Array {
  const csrcs = p.csrcs ?? [];
  const ext = p.extension ?? null;
  const padding = p.paddingBytes ?? 0;
  checkFields(p);
  if (csrcs.length > 15) throw new RangeError(`RTP: at most 15 CSRCs, got ${csrcs.length}`);
  if (ext && (ext.data.length % 4 !== 0 || ext.data.length / 4 > 0xffff || !isUint(ext.profile, 0xffff))) {
    throw new RangeError('RTP: header extension data must be whole 32-bit words (at most 65535) with a 16-bit profile');
  }
  if (!isUint(padding, 255)) throw new RangeError(`RTP: padding must be 0..255 octets, got ${padding}`);
  const headerBytes = RTP_HEADER_BYTES + 4 * csrcs.length + (ext ? 4 + ext.data.length : 0);
  const out = new Uint8Array(headerBytes + p.payload.length + padding);
  writeRtpHeader(out, p);
  out[0] |= (padding > 0 ? 0x20 : 0) | (ext ? 0x10 : 0) | csrcs.length;
  let at = RTP_HEADER_BYTES;
  for (const c of csrcs) {
    writeU32(out, at, c);
    at += 4;
  }
  if (ext) {
    out[at] = ext.profile >>> 8;
    out[at + 1] = ext.profile & 0xff;
    out[at + 2] = (ext.data.length / 4) >>> 8;
    out[at + 3] = (ext.data.length / 4) & 0xff;
    out.set(ext.data, at + 4);
    at += 4 + ext.data.length;
  }
  out.set(p.payload, at);
  if (padding > 0) out[out.length - 1] = padding;
  return out;
}

/**
 * The packet in `bytes`, or null when it is not a valid RTP packet: shorter than its header,
 * version other than 2, CSRC list or extension running past the end, or a padding count of 0
 * or larger than what follows the header (RFC 3550 §5.1, and the checks of §A.1).
 */
export function decodeRtp(bytes: Uint8Array): RtpPacket | null {
  const len = bytes.length;
  if (len < RTP_HEADER_BYTES) return null;
  const b0 = bytes[0]!;
  if (b0 >>> 6 !== RTP_VERSION) return null;
  const cc = b0 & 0x0f;
  let at = RTP_HEADER_BYTES + 4 * cc;
  if (at > len) return null;
  const csrcs: number[] = [];
  for (let i = RTP_HEADER_BYTES; i < at; i += 4) csrcs.push(readU32(bytes, i));
  let extension: RtpHeaderExtension | null = null;
  if (b0 & 0x10) {
    if (at + 4 > len) return null;
    const words = (bytes[at + 2]! << 8) | bytes[at + 3]!;
    const end = at + 4 + 4 * words;
    if (end > len) return null;
    extension = { profile: (bytes[at]! << 8) | bytes[at + 1]!, data: bytes.subarray(at + 4, end) };
    at = end;
  }
  let paddingBytes = 0;
  if (b0 & 0x20) {
    paddingBytes = bytes[len - 1]!;
    if (paddingBytes === 0 || paddingBytes > len - at) return null;
  }
  return {
    marker: (bytes[1]! & 0x80) !== 0,
    payloadType: bytes[1]! & 0x7f,
    sequenceNumber: (bytes[2]! << 8) | bytes[3]!,
    timestamp: readU32(bytes, 4),
    ssrc: readU32(bytes, 8),
    csrcs,
    extension,
    paddingBytes,
    payload: bytes.subarray(at, len - paddingBytes),
  };
}

function checkFields(h: RtpHeaderFields): void {
  if (!isUint(h.payloadType, 127)) throw new RangeError(`RTP: payload type must be 0..127, got ${h.payloadType}`);
  if (!isUint(h.sequenceNumber, 0xffff)) throw new RangeError(`RTP: sequence number must be 0..65535, got ${h.sequenceNumber}`);
  if (!isUint(h.timestamp, 0xffffffff)) throw new RangeError(`RTP: timestamp must be a 32-bit unsigned integer, got ${h.timestamp}`);
  if (!isUint(h.ssrc, 0xffffffff)) throw new RangeError(`RTP: SSRC must be a 32-bit unsigned integer, got ${h.ssrc}`);
}

function isUint(v: number, max: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= max;
}

function writeU32(out: Uint8Array, at: number, v: number): void {
  out[at] = (v >>> 24) & 0xff;
  out[at + 1] = (v >>> 16) & 0xff;
  out[at + 2] = (v >>> 8) & 0xff;
  out[at + 3] = v & 0xff;
}

function readU32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}
