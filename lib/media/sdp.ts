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
