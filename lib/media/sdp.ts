/**
 * SDP handling of the media relay: reading where a side wants to receive each stream, and writing
 * the SDP for the other side with the relay's address and ports. No SIP and no sockets here.
 */
import { isIPv4 } from 'node:net';
import { parse, write, type MediaDescription, type SessionDescription } from 'sdp-transform';

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

export function parseSdp(text: string): SessionDescription {
  if (typeof text !== 'string') throw new SdpError('SDP body is not text');
  if (text.length > MAX_SDP_BYTES) throw new SdpError(`SDP body is larger than ${MAX_SDP_BYTES} bytes`);
  if (!/^v=0[ \t]*(\r\n|\r|\n|$)/.test(text.trimStart())) throw new SdpError('SDP does not start with v=0');
  let desc: SessionDescription;
  try {
    desc = parse(text);
  } catch (err) {
    throw new SdpError(`SDP cannot be parsed: ${(err as Error).message}`);
  }
  const media = desc.media ?? [];
  if (media.length > MAX_MEDIA_LINES) throw new SdpError(`SDP has ${media.length} m= lines, at most ${MAX_MEDIA_LINES} are accepted`);
  media.forEach((m, i) => {
    if (typeof m.type !== 'string' || m.type === '' || !Number.isInteger(m.port) || m.port < 0 || m.port > 65535 || !m.protocol) {
      throw new SdpError(`m= line ${i} is malformed`);
    }
    if (m.port === 0) return;
    const c = m.connection ?? desc.connection;
    if (!c) throw new SdpError(`m= line ${i} (${m.type}) has no c= line, neither at media nor at session level`);
    if (c.version !== 4) throw new SdpUnsupportedError(`m= line ${i} (${m.type}): only IPv4 media addresses are relayed (c=IN IP${c.version})`);
    if (!isIPv4(String(c.ip))) throw new SdpUnsupportedError(`m= line ${i} (${m.type}): c= address ${String(c.ip)} is not an IPv4 address`);
    if (m.rtcp) {
      if (!Number.isInteger(m.rtcp.port) || m.rtcp.port < 1 || m.rtcp.port > 65535) throw new SdpError(`m= line ${i}: a=rtcp port is malformed`);
      if (m.rtcp.address !== undefined && !isIPv4(String(m.rtcp.address))) {
        throw new SdpError(`m= line ${i}: a=rtcp address ${String(m.rtcp.address)} is not an IPv4 address`);
      }
    }
  });
  desc.media = media;
  return desc;
}

/** Per m= line: where the sender of this SDP receives the stream, or null for a disabled line (port 0). */
export function streamTargets(desc: SessionDescription): Array<StreamTarget | null> {
  return desc.media.map((m) => {
    if (m.port === 0) return null;
    const ip = String((m.connection ?? desc.connection)!.ip);
    const rtp = ip === NO_ADDRESS ? null : { ip, port: m.port };
    // RFC 3605: a=rtcp gives the RTCP port (and maybe address); without it RTCP is on RTP port + 1
    // (RFC 3550 §11). With rtcp-mux (RFC 5761) RTCP arrives on the RTP port and this target is unused.
    const rtcpIp = m.rtcp?.address !== undefined ? String(m.rtcp.address) : ip;
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
 * (rtcp-mux offers, RFC 5761 §5.1.3); it is not added when absent. ICE attributes are removed:
 * the relay is the only path, so there is nothing to check connectivity for.
 */
export function writeForOtherSide(desc: SessionDescription, relayPorts: readonly number[], advertise: string): string {
  if (desc.connection && String(desc.connection.ip) !== NO_ADDRESS) desc.connection = { version: 4, ip: advertise };
  removeIce(desc);
  desc.media.forEach((m, i) => {
    removeIce(m);
    const originalPort = m.port;
    const relayPort = relayPorts[i] ?? 0;
    m.port = relayPort;
    delete (m as { numPorts?: number }).numPorts;
    if (relayPort === 0) {
      delete m.rtcp;
      return;
    }
    if (m.connection && String(m.connection.ip) !== NO_ADDRESS) m.connection = { version: 4, ip: advertise };
    if (m.rtcp) {
      const rtcpPort = m.rtcp.port === originalPort ? relayPort : relayPort + 1;
      m.rtcp = m.rtcp.address !== undefined ? { port: rtcpPort, netType: 'IN', ipVer: 4, address: advertise } : { port: rtcpPort };
    }
  });
  return write(desc);
}

const ICE_FIELDS = ['candidates', 'iceUfrag', 'icePwd', 'iceOptions', 'icelite', 'endOfCandidates', 'remoteCandidates'] as const;

function removeIce(part: SessionDescription | MediaDescription): void {
  const record = part as unknown as Record<string, unknown>;
  for (const f of ICE_FIELDS) delete record[f];
  // Attributes sdp-transform does not know (e.g. a=ice-pacing) are kept verbatim in `invalid`.
  if (part.invalid) {
    part.invalid = part.invalid.filter((a) => !/^(ice-|candidate:|remote-candidates|end-of-candidates)/.test(String(a.value)));
    if (part.invalid.length === 0) delete part.invalid;
  }
}
