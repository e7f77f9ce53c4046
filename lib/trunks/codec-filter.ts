/**
 * A trunk's `codecs` setting applied to the offer it is sent: each audio stream keeps only the
 * listed encodings, in the listed order, plus telephone-event and comfort noise (DTMF and
 * silence are not codecs to choose between). Other streams pass untouched.
 */
import { parseSdp } from '../media/sdp.js';

/** RFC 3551 static payload types a phone may list without an rtpmap. */
const STATIC_NAMES: Record<number, string> = { 0: 'PCMU', 3: 'GSM', 4: 'G723', 8: 'PCMA', 9: 'G722', 13: 'CN', 18: 'G729' };
const ALWAYS_KEPT = new Set(['TELEPHONE-EVENT', 'CN']);
const RTPMAP = /^a=rtpmap:(\d+) ([^/\s]+)\//;
const PT_ATTRIBUTE = /^a=(?:rtpmap|fmtp|rtcp-fb):(\d+)/;

/**
 * The offer with each active audio stream narrowed to `codecs` (names any case), or null when an
 * audio stream would be left with none of them. `codecs` empty: the offer as it is.
 */
export function filterOffer(sdp: string, codecs: readonly string[]): string | null {
  if (codecs.length === 0) return sdp;
  const wanted = codecs.map((c) => c.toUpperCase());
  const desc = parseSdp(sdp);
  const keepBySection = new Map<number, Set<number>>();
  const out: string[] = [];
  let section = -1;
  for (let i = 0; i < desc.lines.length; i++) {
    const line = desc.lines[i]!;
    if (line.startsWith('m=')) {
      section++;
      const m = desc.media[section]!;
      if (m.type !== 'audio' || m.port === 0) {
        out.push(line);
        continue;
      }
      const parts = m.tail.trim().split(/\s+/);
      const proto = parts[0] ?? 'RTP/AVP';
      const names = encodingNames(desc.lines, m.line, desc.media[section + 1]?.line ?? desc.lines.length);
      const formats = parts.slice(1).map(Number).filter((n) => Number.isInteger(n));
      const nameOf = (pt: number) => names.get(pt) ?? STATIC_NAMES[pt] ?? '';
      const chosen: number[] = [];
      for (const w of wanted) for (const pt of formats) if (nameOf(pt) === w && !chosen.includes(pt)) chosen.push(pt);
      if (chosen.length === 0) return null;
      for (const pt of formats) if (ALWAYS_KEPT.has(nameOf(pt)) && !chosen.includes(pt)) chosen.push(pt);
      keepBySection.set(section, new Set(chosen));
      out.push(`m=audio ${m.port} ${proto} ${chosen.join(' ')}`);
      continue;
    }
    const keep = keepBySection.get(section);
    if (keep) {
      const pt = PT_ATTRIBUTE.exec(line);
      if (pt && !keep.has(Number(pt[1]))) continue;
    }
    out.push(line);
  }
  return out.join('\r\n') + '\r\n';
}

function encodingNames(lines: readonly string[], from: number, to: number): Map<number, string> {
  const names = new Map<number, string>();
  for (let i = from + 1; i < to; i++) {
    const r = RTPMAP.exec(lines[i]!);
    if (r) names.set(Number(r[1]), r[2]!.toUpperCase());
  }
  return names;
}
