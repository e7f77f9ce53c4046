/**
 * SDP handling of the media relay: reading where a side wants to receive each stream, and writing
 * the SDP for the other side with the relay's address and ports. No SIP and no sockets here.
 *
 * The relay reads and changes four kinds of line (c=, m=, a=rtcp and the ICE attributes) and
 * passes every other line through byte for byte, in its place. A full SDP parser (sdp-transform)
 * read every attribute of every line twice per call and wrote the lines back in its own order:
 * 15-20% of a relayed call's CPU (docs/BENCHMARKS.md), for lines the relay does not look at.
 */
import { isIPv4 } from 'node:net';

export class SdpError extends Error {
  override readonly name = 'SdpError';
}

/** Valid SDP the relay does not carry (IPv6 or host-name media addresses): the call may go without the relay. */
export class SdpUnsupportedError extends SdpError {}

/** Larger bodies are refused before parsing (a SIP body of this size is no SDP anyone sends). */
const MAX_SDP_BYTES = 64 * 1024;
/** m= lines accepted in one SDP; the relay serves fewer (see MAX_STREAMS in relay.ts). */
const MAX_MEDIA_LINES = 32;
const NO_ADDRESS = '0.0.0.0';

export interface Endpoint {
  ip: string;
  port: number;
}

/** Where one side wants to receive one stream; null endpoints mean "do not send" (c=0.0.0.0). */
export interface StreamTarget {
  media: string;
  rtp: Endpoint | null;
  rtcp: Endpoint | null;
}

/** The lines of an SDP with what the relay reads from them; see parseSdp. */
export interface ParsedSdp {
  lines: string[];
  /** The session-level c= address (undefined when none), and its line. */
  connection: { version: number; ip: string; line: number } | undefined;
  media: MediaSection[];
}

interface MediaSection {
  type: string;
  port: number;
  /** Index of the m= line; the section runs to the next m= line. */
  line: number;
  /** What follows the port (and /numPorts) on the m= line: " proto fmt...". */
  tail: string;
  connection: { version: number; ip: string; line: number } | undefined;
  rtcp: { port: number; address: string | undefined; line: number } | undefined;
}

const M_LINE = /^m=(\S+) (\d+)(?:\/\d+)?( \S+.*)$/;
const C_LINE = /^c=IN IP(\d) ([^/\s]+)/;
const RTCP_LINE = /^a=rtcp:(\d+)(?: IN IP(\d) (\S+))?\s*$/;
const ICE_ATTRIBUTE = /^a=(ice-|candidate:|remote-candidates|end-of-candidates)/;

export function parseSdp(text: string): ParsedSdp {
  if (typeof text !== 'string') throw new SdpError('SDP body is not text');
  if (text.length > MAX_SDP_BYTES) throw new SdpError(`SDP body is larger than ${MAX_SDP_BYTES} bytes`);
  if (!/^v=0[ \t]*(\r\n|\r|\n|$)/.test(text.trimStart())) throw new SdpError('SDP does not start with v=0');
  // RFC 4566 §5: "<type>=<value>" lines; others (blank lines, stray text) are not kept.
  const lines = text.trimStart().split(/\r\n|\r|\n/).filter((l) => l.length > 1 && l.charCodeAt(1) === 0x3d);
  const desc: ParsedSdp = { lines, connection: undefined, media: [] };
  let section: MediaSection | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    switch (line.charCodeAt(0)) {
      case 0x6d: { // m=
        if (desc.media.length >= MAX_MEDIA_LINES) throw new SdpError(`SDP has more than ${MAX_MEDIA_LINES} m= lines`);
        const m = M_LINE.exec(line);
        const port = m ? Number(m[2]) : -1;
        if (!m || port > 65535) throw new SdpError(`m= line ${desc.media.length} is malformed`);
        section = { type: m[1]!, port, line: i, tail: m[3]!, connection: undefined, rtcp: undefined };
        desc.media.push(section);
        break;
      }
      case 0x63: { // c=
        const c = C_LINE.exec(line);
        if (!c) throw new SdpError(`c= line "${line.slice(0, 60)}" is malformed`);
        const connection = { version: Number(c[1]), ip: c[2]!, line: i };
        if (section) section.connection = connection;
        else desc.connection = connection;
        break;
      }
      case 0x61: // a=
        if (section && line.startsWith('a=rtcp:')) {
          const r = RTCP_LINE.exec(line);
          const port = r ? Number(r[1]) : 0;
          const at = desc.media.length - 1;
          if (!r || port < 1 || port > 65535) throw new SdpError(`m= line ${at}: a=rtcp port is malformed`);
          if (r[3] !== undefined && !isIPv4(r[3])) throw new SdpError(`m= line ${at}: a=rtcp address ${r[3]} is not an IPv4 address`);
          section.rtcp = { port, address: r[3], line: i };
        }
        break;
    }
  }
  desc.media.forEach((m, i) => {
    if (m.port === 0) return;
    const c = m.connection ?? desc.connection;
    if (!c) throw new SdpError(`m= line ${i} (${m.type}) has no c= line, neither at media nor at session level`);
    if (c.version !== 4) throw new SdpUnsupportedError(`m= line ${i} (${m.type}): only IPv4 media addresses are relayed (c=IN IP${c.version})`);
    if (!isIPv4(c.ip)) throw new SdpUnsupportedError(`m= line ${i} (${m.type}): c= address ${c.ip} is not an IPv4 address`);
  });
  return desc;
}

/** Per m= line: where the sender of this SDP receives the stream, or null for a disabled line (port 0). */
export function streamTargets(desc: ParsedSdp): Array<StreamTarget | null> {
  return desc.media.map((m) => {
    if (m.port === 0) return null;
    const ip = (m.connection ?? desc.connection)!.ip;
    const rtp = ip === NO_ADDRESS ? null : { ip, port: m.port };
    // RFC 3605: a=rtcp gives the RTCP port (and maybe address); without it RTCP is on RTP port + 1
    // (RFC 3550 §11). With rtcp-mux (RFC 5761) RTCP arrives on the RTP port and this target is unused.
    const rtcpIp = m.rtcp?.address ?? ip;
    const rtcpPort = m.rtcp?.port ?? m.port + 1;
    const rtcp = rtcpIp === NO_ADDRESS || rtcpPort > 65535 ? null : { ip: rtcpIp, port: rtcpPort };
    return { media: m.type, rtp, rtcp };
  });
}

/**
 * Writes `desc` for the other side. `relayPorts[i]` is the relay's RTP port facing the other side
 * for m= line i, or 0 to disable the line. The relay's RTCP port is always RTP + 1.
 * c= addresses become `advertise`, except c=0.0.0.0 (hold, RFC 3264 §8.4), which passes through.
 * a=rtcp is rewritten to the relay's RTCP port, or to its RTP port when it named the RTP port
 * (rtcp-mux offers, RFC 5761 §5.1.3); it is not added when absent, and dropped from a disabled
 * line. ICE attributes are removed: the relay is the only path, so there is nothing to check
 * connectivity for. Every other line is kept as it came.
 */
export function writeForOtherSide(desc: ParsedSdp, relayPorts: readonly number[], advertise: string): string {
  const out = desc.lines.slice();
  const relayed = (c: { ip: string; line: number } | undefined) => {
    if (c && c.ip !== NO_ADDRESS) out[c.line] = `c=IN IP4 ${advertise}`;
  };
  relayed(desc.connection);
  desc.media.forEach((m, i) => {
    const relayPort = relayPorts[i] ?? 0;
    out[m.line] = `m=${m.type} ${relayPort}${m.tail}`;
    if (m.rtcp) {
      const rtcpPort = m.rtcp.port === m.port ? relayPort : relayPort + 1;
      out[m.rtcp.line] = relayPort === 0 ? '' : m.rtcp.address !== undefined ? `a=rtcp:${rtcpPort} IN IP4 ${advertise}` : `a=rtcp:${rtcpPort}`;
    }
    if (relayPort !== 0) relayed(m.connection);
  });
  let text = '';
  for (const line of out) if (line !== '' && !ICE_ATTRIBUTE.test(line)) text += line + '\r\n';
  return text;
}

// ---- SRTP (RFC 3711) as the relay sees it ------------------------------------------------------
//
// The relay forwards packets without reading them, so SRTP needs nothing of it: the proto of the
// m= line, the `a=crypto` lines (SDES keys, RFC 4568) and the DTLS-SRTP attributes
// (`a=fingerprint`, `a=setup`, RFC 5763/5764: the DTLS handshake is UDP on the media port, which
// the relay forwards like RTP) pass through writeForOtherSide untouched. What the call engine
// must check is whether the two phones agree on it; these helpers say what each m= line uses.

/** How a stream is protected, read from its m= proto: plain RTP, SRTP keyed by SDES, DTLS-SRTP, or something else (T.38 udptl...). */
export type MediaSecurity = 'rtp' | 'sdes' | 'dtls' | 'other';

/** SDES keys offered as a potential configuration (RFC 5939 `a=acap:N crypto:...`): keys in the clear too. */
const SDES_CAPABILITY = /^a=acap:\d+ crypto:/;

/** One m= line as the SRTP checks see it. */
export interface StreamSecurity {
  media: string;
  /** 0: the line is refused (or disabled). */
  port: number;
  proto: string;
  security: MediaSecurity;
  /** `a=crypto` (and `a=acap:N crypto:`) lines in the section: SDES keys in the clear in this SDP (also on RTP/AVP best-effort offers). */
  crypto: number;
  /** An `a=acfg` line (RFC 5939): an answer that took one of the offer's potential configurations (its a=tcap transports). */
  acfg: boolean;
}

/** The kind of protection an m= proto names (RFC 3551, 4585, 3711, 5124, 5764). */
export function securityOfProto(proto: string): MediaSecurity {
  switch (proto.toUpperCase()) {
    case 'RTP/AVP':
    case 'RTP/AVPF':
      return 'rtp';
    case 'RTP/SAVP':
    case 'RTP/SAVPF':
      return 'sdes';
    case 'UDP/TLS/RTP/SAVP':
    case 'UDP/TLS/RTP/SAVPF':
      return 'dtls';
    default:
      return 'other';
  }
}

/** Whether a stream of this kind is SRTP (keyed by SDES or by DTLS). */
export function isSecure(security: MediaSecurity): boolean {
  return security === 'sdes' || security === 'dtls';
}

/** Per m= line: its proto, what it protects media with, and how many a=crypto lines it carries. */
export function streamSecurity(desc: ParsedSdp): StreamSecurity[] {
  return desc.media.map((m, i) => {
    const proto = m.tail.trim().split(/\s+/)[0] ?? '';
    const end = desc.media[i + 1]?.line ?? desc.lines.length;
    let crypto = 0;
    let acfg = false;
    for (let l = m.line + 1; l < end; l++) {
      const line = desc.lines[l]!;
      if (line.startsWith('a=crypto:') || SDES_CAPABILITY.test(line)) crypto++;
      else if (line.startsWith('a=acfg:')) acfg = true;
    }
    return { media: m.type, port: m.port, proto, security: securityOfProto(proto), crypto, acfg };
  });
}

/** streamSecurity of an SDP text, or null when it is not SDP the relay can read. */
export function streamSecurityOf(text: string): StreamSecurity[] | null {
  try {
    return streamSecurity(parseSdp(text));
  } catch {
    return null;
  }
}

/** Whether an SDP carries SDES keys (an a=crypto line on an active m= line). */
export function carriesSdesKeys(streams: readonly StreamSecurity[]): boolean {
  return streams.some((s) => s.port !== 0 && s.crypto > 0);
}

/**
 * Why `answer` cannot carry the media `offer` asked for, or null when it can. RFC 3264 §6.1: an
 * accepted stream keeps the offer's transport protocol, so an answer of RTP/AVP to RTP/SAVP (or
 * the reverse, or SDES to DTLS) is a protocol error, and the two phones would send packets the
 * other cannot read. Plain RTP/AVP and RTP/AVPF count as the same (phones interwork on them); an
 * answer that says it took a potential configuration of the offer (RFC 5939 capability
 * negotiation, `a=acfg`: RTP/SAVP offered as an `a=tcap` of an RTP/AVP line) may change the proto.
 * When the offer had SRTP, an answer that accepts no audio line while the offer had SRTP audio,
 * or no line at all, also fails: the callee refused the SRTP streams (it does not do SRTP).
 */
export function srtpAnswerProblem(offer: readonly StreamSecurity[], answer: readonly StreamSecurity[]): string | null {
  const n = Math.min(offer.length, answer.length);
  for (let i = 0; i < n; i++) {
    const o = offer[i]!;
    const a = answer[i]!;
    if (o.port === 0 || a.port === 0 || a.acfg) continue;
    if (o.security !== a.security && (isSecure(o.security) || isSecure(a.security))) {
      return `m= line ${i} (${o.media}) was offered ${o.proto} and answered ${a.proto}`;
    }
  }
  if (!offer.some((o) => o.port !== 0 && isSecure(o.security))) return null;
  const accepted = (i: number) => offer[i]!.port !== 0 && (answer[i]?.port ?? 0) !== 0;
  const secureAudio = offer.some((o) => o.port !== 0 && o.media === 'audio' && isSecure(o.security));
  if (secureAudio && !offer.some((o, i) => o.media === 'audio' && accepted(i))) return 'every SRTP audio line of the offer was refused (port 0)';
  if (!offer.some((_, i) => accepted(i))) return 'every line of the SRTP offer was refused (port 0)';
  return null;
}
