/**
 * The SIP details of a B2BUA call that need no call state: building CANCEL and Contact values,
 * reading option tags and Reason headers, choosing the best final response of several forks.
 */
import type { SipRequest, SipResponse } from '../sip/message.js';
import { parseNameAddr } from '../sip/headers/name-addr.js';
import { parseCSeq } from '../sip/headers/cseq.js';
import { parseViaList } from '../sip/headers/via.js';
import { carriesSdesKeys, isSecure, streamSecurityOf, type StreamSecurity } from '../media/sdp.js';
import type { MediaSession } from './media-path.js';
import type { TransportName } from '../sip/transport/types.js';

export const SDP = 'application/sdp';


export function fromTagOf(req: SipRequest): string {
  const from = req.headers.get('from') ?? '';
  return parseNameAddr(from)?.params.get('tag') ?? '';
}

export function isReliable(res: SipResponse): boolean {
  return res.headers.has('rseq') && hasOptionTag(res.headers.list('require'), '100rel');
}

export function hasOptionTag(tags: string[], tag: string): boolean {
  for (const t of tags) if (t.toLowerCase() === tag) return true;
  return false;
}

export function isSdp(msg: SipRequest | SipResponse): boolean {
  const t = msg.headers.get('content-type');
  return t === undefined || t.toLowerCase().startsWith(SDP);
}

export function bracket(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

export function hostPortText(host: string, port: number): string {
  return `${bracket(host)}:${port}`;
}

/**
 * Our Contact on `transport`: a sips: URI in a secure dialog (RFC 3261 sections 8.1.1.8 and
 * 12.1.1), else a sip: URI naming the transport unless it is UDP.
 */
export function contactFor(host: string, port: number, transport: TransportName, user?: string, sips = false): string {
  const target = `${user ? `${user}@` : ''}${hostPortText(host, port)}`;
  if (sips) return `<sips:${target}>`;
  return `<sip:${target}${transport === 'udp' ? '' : `;transport=${transport}`}>`;
}

export function isSipsUri(uri: string): boolean {
  return uri.length > 5 && uri.charCodeAt(4) === 58 && uri.slice(0, 4).toLowerCase() === 'sips';
}

/**
 * RFC 3261 section 12.1.1: the dialog an INVITE creates is secure when its Request-URI, or its
 * top Record-Route (its Contact when there is none), is a sips: URI.
 */
export function createsSecureDialog(invite: SipRequest): boolean {
  if (isSipsUri(invite.uri)) return true;
  const rr = invite.headers.list('record-route')[0];
  const next = parseNameAddr(rr ?? invite.headers.get('contact') ?? '')?.uri;
  return next !== undefined && isSipsUri(next);
}

export function quoteName(name: string): string {
  return `"${name.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

const CAUSE_TEXT: Record<number, string> = {
  1: 'Unallocated number', 16: 'Normal call clearing', 17: 'User busy', 18: 'No user responding',
  19: 'No answer from user', 20: 'Subscriber absent', 21: 'Call rejected', 41: 'Temporary failure',
  57: 'Bearer capability not authorized', 65: 'Bearer capability not implemented',
  79: 'Service or option not implemented', 88: 'Incompatible destination', 102: 'Recovery on timer expiry',
};

/** `Reason: Q.850;cause=N;text="..."` (RFC 3326). */
export function reasonValue(cause: number): string {
  const text = CAUSE_TEXT[cause];
  return `Q.850;cause=${cause}${text ? `;text="${text}"` : ''}`;
}

/**
 * RFC 3261 section 16.7 step 6, simplified for parallel forks of one user: a 6xx wins; then a
 * busy (486) over other failures, as the caller should hear busy if any phone is busy; then the
 * lowest class, 4xx before 5xx; null when no fork answered at all.
 */
export function bestFinal(finals: Array<SipResponse | null>): SipResponse | null {
  const got = finals.filter((r): r is SipResponse => r !== null);
  if (got.length === 0) return null;
  const six = got.find((r) => r.status >= 600);
  if (six) return six;
  const busy = got.find((r) => r.status === 486);
  if (busy) return busy;
  return got.reduce((best, r) => (Math.floor(r.status / 100) < Math.floor(best.status / 100) ? r : best));
}

export function structuredCancel(invite: SipRequest): SipRequest {
  const h = invite.headers;
  const out = { kind: 'request' as const, method: 'CANCEL', uri: invite.uri, version: 'SIP/2.0', headers: h.clone(), body: Buffer.alloc(0) };
  const keep = new Set(['via', 'max-forwards', 'from', 'to', 'call-id', 'route']);
  const names: string[] = [];
  const values: string[] = [];
  for (let i = 0; i < out.headers.names.length; i++) {
    const n = out.headers.names[i]!;
    if (n === 'via') {
      if (names.includes('via')) continue; // only the top Via (section 9.1)
    } else if (!keep.has(n)) continue;
    names.push(n);
    values.push(n === 'via' ? out.headers.values[i]!.split(',')[0]!.trim() : out.headers.values[i]!);
  }
  out.headers.names.length = 0;
  out.headers.values.length = 0;
  out.headers.names.push(...names);
  out.headers.values.push(...values);
  out.headers.append('cseq', `${parseCSeq(h.get('cseq') ?? '')?.seq ?? 1} CANCEL`);
  return out;
}

export function summariseMedia(media: MediaSession): string {
  const kinds: string[] = [];
  for (const s of media.stats()) if (!kinds.includes(s.media)) kinds.push(s.media);
  return kinds.join('+');
}

/** Transports that encrypt SIP (TLS, WebSocket over TLS). */
const SECURE_TRANSPORTS = new Set(['tls', 'wss']);

/** Whether `transport` ('udp', 'tcp', 'tls', or a Via's transport such as WSS) encrypts what it carries. */
export function isTlsTransport(transport: string): boolean {
  return SECURE_TRANSPORTS.has(transport.toLowerCase());
}

/**
 * Whether a request crossed only encrypted hops: it arrived here over TLS (the source endpoint,
 * what the server itself received on: a Via claiming TLS over UDP is not believed) and every Via
 * it carries names TLS or WSS (the hops before the last one, a proxy in front of us).
 */
export function arrivedOverTls(req: SipRequest, source: { transport: string }): boolean {
  if (!isTlsTransport(source.transport)) return false;
  const vias = parseViaList(req);
  return vias !== null && vias.length > 0 && vias.every((v) => isTlsTransport(v.transport));
}

/** The transport a request arrived on, for the log: the source's, and the Via's when it differs ('udp', 'tcp (via TLS)'). */
export function transportText(req: SipRequest, source: { transport: string }): string {
  const t = source.transport.toLowerCase();
  const via = parseViaList(req)?.[0]?.transport.toLowerCase();
  return via && via !== t ? `${t} (Via ${via.toUpperCase()})` : t;
}

/** What the SRTP checks need of an SDP body: its m= lines' protection, or null when it is no SDP the relay could read. */
export function srtpStreams(msg: SipRequest | SipResponse): StreamSecurity[] | null {
  if (msg.body.length === 0 || !isSdp(msg)) return null;
  return streamSecurityOf(msg.body.toString('utf8'));
}

/** An offer that asks for SRTP (an active RTP/SAVP(F) or DTLS-SRTP line): the callee must do SRTP. */
export function offersSrtp(streams: readonly StreamSecurity[] | null): boolean {
  return streams !== null && streams.some((s) => s.port !== 0 && isSecure(s.security));
}

/** SDES keys (a=crypto) in the body: readable to anyone on the path unless it travels over TLS. */
export function hasSdesKeys(streams: readonly StreamSecurity[] | null): boolean {
  return streams !== null && carriesSdesKeys(streams);
}
