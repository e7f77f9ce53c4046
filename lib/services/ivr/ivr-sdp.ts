/**
 * The SDP of an IVR call. The server answers the caller's offer itself with one audio stream in
 * G.711 (PCMU or PCMA, whichever the caller lists first) plus telephone-event/8000 when offered
 * (RFC 4733); every other m= line is refused with port 0 (RFC 3264 section 6). When the IVR sends
 * the call on, the callee is offered exactly that codec, so the caller's media needs no new
 * negotiation (no re-INVITE) once the two are joined.
 *
 * The server's endpoint speaks plain RTP only: an SRTP audio line (RTP/SAVP(F), DTLS-SRTP) is
 * never chosen. It is refused with port 0 when the offer also has plain RTP audio; an offer with
 * SRTP audio only is refused as a whole (chooseAudio throws, the IVR answers 488).
 */
import { isSecure, parseSdp, SdpError, securityOfProto, streamTargets, type ParsedSdp } from '../../media/sdp.js';
import type { G711Codec } from '../../media/endpoint/g711.js';

export interface AudioChoice {
  /** Index of the audio m= line answered. */
  index: number;
  codec: G711Codec;
  payloadType: number;
  telephoneEvent: number | null;
  /** m= lines of the offer (the answer has as many). */
  lines: number;
}

const RTPMAP = /^a=rtpmap:(\d+) ([^/\s]+)\/(\d+)/;

/**
 * SDES and DTLS-SRTP attributes, and SRTP offered by capability negotiation (RFC 5939 a=tcap,
 * a=acap, a=pcfg): dropped from a plain RTP line the IVR agreed to without them.
 */
const SRTP_ATTRIBUTE = /^a=(crypto|fingerprint|setup|tcap|acap|pcfg):/;

/**
 * The audio stream and codec the IVR answers with, or null when the offer has no G.711 audio.
 * Throws SdpError for SDP it cannot read, and for an offer whose only audio is SRTP.
 */
export function chooseAudio(offer: string): AudioChoice | null {
  const desc = parseSdp(offer);
  let sawSrtpAudio = false;
  for (let index = 0; index < desc.media.length; index++) {
    const m = desc.media[index]!;
    if (m.type !== 'audio' || m.port === 0) continue;
    const security = securityOfProto(m.tail.trim().split(/\s+/)[0] ?? '');
    if (security !== 'rtp') {
      sawSrtpAudio ||= isSecure(security);
      continue;
    }
    const formats = formatsOf(m.tail);
    const maps = rtpmaps(desc, index);
    let telephoneEvent: number | null = null;
    for (const pt of formats) {
      const map = maps.get(pt);
      if (map && map.name.toLowerCase() === 'telephone-event' && map.rate === 8000) {
        telephoneEvent = pt;
        break;
      }
    }
    for (const pt of formats) {
      const map = maps.get(pt);
      const name = map ? map.name.toUpperCase() : pt === 0 ? 'PCMU' : pt === 8 ? 'PCMA' : '';
      const rate = map ? map.rate : 8000;
      if (rate !== 8000) continue;
      if (name === 'PCMU') return { index, codec: 'pcmu', payloadType: pt, telephoneEvent, lines: desc.media.length };
      if (name === 'PCMA') return { index, codec: 'pcma', payloadType: pt, telephoneEvent, lines: desc.media.length };
    }
  }
  if (sawSrtpAudio) throw new SdpError('the offer has SRTP audio only (RTP/SAVP): the server\'s own media is plain RTP');
  return null;
}

/** Where the sender of `sdp` receives the stream at `index` (null: nowhere, e.g. on hold). */
export function audioTarget(sdp: string, index: number): { address: string; port: number } | null {
  const t = streamTargets(parseSdp(sdp))[index];
  return t?.rtp ? { address: t.rtp.ip, port: t.rtp.port } : null;
}

/** Our answer: the chosen audio line at `address`:`port`, the others refused. */
export function answerSdp(choice: AudioChoice, offer: string, address: string, port: number, sessionId: number): string {
  const desc = parseSdp(offer);
  const lines = ['v=0', `o=minisipserver ${sessionId} ${sessionId} IN IP4 ${address}`, 's=minisipserver', `c=IN IP4 ${address}`, 't=0 0'];
  desc.media.forEach((m, i) => {
    const proto = m.tail.trim().split(/\s+/)[0] ?? 'RTP/AVP';
    if (i !== choice.index) {
      lines.push(`m=${m.type} 0 ${m.tail.trim()}`);
      return;
    }
    const pts = [choice.payloadType, ...(choice.telephoneEvent !== null ? [choice.telephoneEvent] : [])];
    lines.push(`m=audio ${port} ${proto} ${pts.join(' ')}`);
    lines.push(`a=rtpmap:${choice.payloadType} ${choice.codec === 'pcmu' ? 'PCMU' : 'PCMA'}/8000`);
    if (choice.telephoneEvent !== null) {
      lines.push(`a=rtpmap:${choice.telephoneEvent} telephone-event/8000`);
      lines.push(`a=fmtp:${choice.telephoneEvent} 0-15`);
    }
    lines.push('a=ptime:20', 'a=sendrecv');
  });
  return lines.join('\r\n') + '\r\n';
}

/**
 * The caller's offer cut down to what the IVR agreed with it: the chosen audio line with only the
 * chosen codec and telephone-event, every other line at port 0. Sent to the destination of a
 * `callto`, so whatever it answers, the caller keeps sending what it already sends.
 */
export function narrowOffer(choice: AudioChoice, offer: string): string {
  const desc = parseSdp(offer);
  const keep = new Set([choice.payloadType, ...(choice.telephoneEvent !== null ? [choice.telephoneEvent] : [])]);
  const out: string[] = [];
  let section = -1;
  for (let i = 0; i < desc.lines.length; i++) {
    const line = desc.lines[i]!;
    if (line.startsWith('m=')) {
      section++;
      const m = desc.media[section]!;
      const formats = formatsOf(m.tail);
      const proto = m.tail.trim().split(/\s+/)[0] ?? 'RTP/AVP';
      if (section === choice.index) out.push(`m=${m.type} ${m.port} ${proto} ${formats.filter((pt) => keep.has(pt)).join(' ')}`);
      else out.push(`m=${m.type} 0 ${m.tail.trim()}`);
      continue;
    }
    if (section === choice.index) {
      const pt = /^a=(?:rtpmap|fmtp|rtcp-fb):(\d+)/.exec(line);
      if (pt && !keep.has(Number(pt[1]))) continue;
      // The IVR answered plain RTP (best-effort SRTP offers carry keys on RTP/AVP): so must the callee.
      if (SRTP_ATTRIBUTE.test(line)) continue;
    } else if (section >= 0 && !line.startsWith('c=')) {
      continue; // a refused line keeps only its m= line (and c=, harmless)
    }
    out.push(line);
  }
  return out.join('\r\n') + '\r\n';
}

function formatsOf(tail: string): number[] {
  return tail
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n >= 0 && n <= 127);
}

function rtpmaps(desc: ParsedSdp, index: number): Map<number, { name: string; rate: number }> {
  const m = desc.media[index]!;
  const end = desc.media[index + 1]?.line ?? desc.lines.length;
  const maps = new Map<number, { name: string; rate: number }>();
  for (let i = m.line + 1; i < end; i++) {
    const r = RTPMAP.exec(desc.lines[i]!);
    if (r) maps.set(Number(r[1]), { name: r[2]!, rate: Number(r[3]) });
  }
  return maps;
}
