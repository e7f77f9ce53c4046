/**
 * The server's own voice in a call: an RTP endpoint that plays prompts and tones and hears keys,
 * for the IVR (the server answers the call itself). No SIP knowledge here: the caller negotiates
 * the codec and addresses and hands them over.
 *
 * ```ts
 * const ep = await MediaEndpoint.open({ bind: '0.0.0.0', codec: 'pcmu', payloadType: 0, telephoneEventPayloadType: 101 });
 * ep.setRemote(sdpAddress, sdpPort);                  // where it sends (and, strict, who may send)
 * ep.on('digit', (key, source) => ...);               // '0'-'9' '*' '#' 'A'-'D'; 'rfc4733' | 'inband' | 'info'
 * const r = await ep.play([welcome, menu], { bargeIn: true }).result;   // 'done' | 'interrupted' | 'closed'
 * const ring = ep.playTone('ringback'); ...; ring.stop();
 * await ep.close();
 * ```
 *
 * Sending (RFC 3550 §5.1, RFC 3551 §4.1):
 * - one RTP stream per endpoint: random initial sequence number, timestamp and SSRC; sequence +1
 *   per packet, timestamp +160 per 20 ms slot of the shared pacer (it follows the clock across
 *   slots that were skipped or not sent);
 * - while a remote is set the endpoint sends a packet every 20 ms, comfort silence (the codec's
 *   zero, not a CN payload) when no prompt plays (`idle: 'silence'`, the default): NAT bindings
 *   stay open, the phone's jitter buffer keeps its clock, and a relay's inactivity timer in the
 *   path stays satisfied. `idle: 'none'` sends nothing between prompts;
 * - the marker bit is set on the first packet of the stream, on the first packet after a gap in
 *   sending, and on the first packet of every play()/playTone(): each prompt is a talkspurt of
 *   its own for the phone's jitter buffer, even though generated silence came before it;
 * - without a remote (none set yet, or hold: address 0.0.0.0 or port 0) nothing is sent, and a
 *   prompt waits where it is rather than playing into the void.
 *
 * Receiving: RTP is accepted only from the remote address and port (symmetric RTP); with
 * `latch: true` the first packet from the remote's address (any port), or from `signalAddress`,
 * latches the remote onto its real source, as the relay does (see ../backend.ts): after that
 * other sources are ignored unless the latched one has been silent for RELATCH_SILENCE_MS or
 * setRemote() was called again. Strangers and malformed packets are ignored; payload types other
 * than the audio and telephone-event ones (comfort noise, multiplexed RTCP) only show the peer is
 * alive (inactivity).
 *
 * Keys: RFC 4733 events on the telephone-event payload type (each press once); in-band tones on
 * the audio (`inband`: 'auto', the default, listens for tones only when no telephone-event type
 * was negotiated; 'always' also when one was; 'off' never). Once an RFC 4733 event has been seen
 * the in-band detector is switched off for the rest of the call, so a phone sending both does
 * not count a key twice (and the event of a key the detector reported within the last 500 ms is
 * taken as that same press). SIP INFO keys come in through injectDigit().
 */
import dgram from 'node:dgram';
import { randomFillSync } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { isIPv4 } from 'node:net';
import { performance } from 'node:perf_hooks';
import { RELATCH_SILENCE_MS, type RelayLogger } from '../backend.js';
import { isDtmfKey, TelephoneEventReceiver } from './dtmf.js';
import { decodeG711, SILENCE_BYTE, STATIC_PAYLOAD_TYPE, type G711Codec } from './g711.js';
import { DtmfDetector } from './goertzel.js';
import { sharedPacer, type Pacer, type PacerSlot } from './pacer.js';
import { decodeRtp, RTP_HEADER_BYTES, writeRtpHeader, type RtpHeaderFields } from './rtp.js';
import { cachedToneCycle, RINGBACK, type ToneSpec } from './tones.js';

export type { G711Codec } from './g711.js';

export type DigitSource = 'rfc4733' | 'inband' | 'info';
export type PlayResult = 'done' | 'interrupted' | 'closed';
export type InbandDetection = 'auto' | 'always' | 'off';

export interface MediaEndpointOptions {
  /** IPv4 address the socket binds to. */
  bind: string;
  /** 0 (the default) = any free port. */
  port?: number;
  codec: G711Codec;
  /** Default: the static type of the codec (0 PCMU, 8 PCMA). */
  payloadType?: number;
  /** The negotiated telephone-event payload type (RFC 4733), null/absent = none. */
  telephoneEventPayloadType?: number | null;
  /** Where to send; can also be set (or changed) with setRemote(). */
  remote?: { address: string; port: number } | null;
  /** Latch onto the real source of the remote's packets (NAT), see above; default false. */
  latch?: boolean;
  /** With latch: this address (the peer's SIP source) may latch too, besides the remote's. */
  signalAddress?: string;
  /** Default 'auto'. */
  inband?: InbandDetection;
  /** 'inactive' is emitted after this long without any RTP received; 0 (default) = never. */
  inactivityMs?: number;
  /** What is sent when nothing plays; default 'silence'. */
  idle?: 'silence' | 'none';
  /**
   * Start the RTP sequence numbers low (0-63) instead of anywhere in 0-65535 (RFC 3550 section
   * 5.1 asks for a random start against known-plaintext attacks on encrypted media). For a stream
   * another phone's stream replaces on the same relay port (ringback, IVR prompts): receivers that
   * order packets by sequence number across a change of source drop the new phone's packets when
   * its (random) start is below our last number; baresip then stays silent for the whole call.
   * Starting low, the phone's start is above ours in nearly every call.
   */
  handedOver?: boolean;
  /** Default: the process-wide sharedPacer(). */
  pacer?: Pacer;
  logger?: RelayLogger;
}

export interface PlayOptions {
  /** A key (from any source) stops the playback, which then ends with 'interrupted'. */
  bargeIn?: boolean;
}

export interface Playback {
  /** 'done' after the last packet of the prompts was sent, 'interrupted' by stop(), a key (bargeIn) or the next play, 'closed' by close(). */
  readonly result: Promise<PlayResult>;
  /** Ends the playback ('interrupted'); nothing once it has ended. */
  stop(): void;
}

export interface EndpointStats {
  /** RTP packets sent. */
  sent: number;
  /** RTP packets accepted from the remote (any payload type: each shows the peer is alive). */
  received: number;
  /** Datagrams dropped: from strangers, or not RTP. */
  ignored: number;
  /** Keys reported, from every source. */
  digits: number;
}

export interface MediaEndpointEvents {
  digit: [key: string, source: DigitSource];
  /** No RTP received for inactivityMs (once; again only after RTP came back and stopped again). */
  inactive: [];
}

const SAMPLES_PER_PACKET = 160;
const PACKET_BYTES = RTP_HEADER_BYTES + SAMPLES_PER_PACKET;
/** An RFC 4733 event this soon after the in-band detector reported the same key is that same press. */
const SAME_PRESS_MS = 500;

/** What a playback sends: one packet's worth of G.711 bytes at a time. */
interface AudioSource {
  /** Nothing left to send. */
  readonly finished: boolean;
  /** Writes the next packet's bytes into `out` (silence after the end). */
  fill(out: Uint8Array): void;
}

/** Prompts back to back, cut into packets across their boundaries; the last packet is padded with silence. */
class PromptSource implements AudioSource {
  private index = 0;
  private offset = 0;
  private readonly prompts: readonly Uint8Array[];
  constructor(
    prompts: readonly Uint8Array[],
    private readonly silence: number,
  ) {
    this.prompts = prompts.filter((p) => p.length > 0);
  }
  get finished(): boolean {
    return this.index >= this.prompts.length;
  }
  fill(out: Uint8Array): void {
    let at = 0;
    while (at < out.length && this.index < this.prompts.length) {
      const p = this.prompts[this.index]!;
      const n = Math.min(p.length - this.offset, out.length - at);
      out.set(p.subarray(this.offset, this.offset + n), at);
      at += n;
      this.offset += n;
      if (this.offset === p.length) [this.index, this.offset] = [this.index + 1, 0];
    }
    if (at < out.length) out.fill(this.silence, at);
  }
}

/** One tone cadence cycle, repeated until stopped. */
class LoopSource implements AudioSource {
  readonly finished = false;
  private offset = 0;
  constructor(private readonly cycle: Uint8Array) {}
  fill(out: Uint8Array): void {
    let at = 0;
    while (at < out.length) {
      const n = Math.min(this.cycle.length - this.offset, out.length - at);
      out.set(this.cycle.subarray(this.offset, this.offset + n), at);
      at += n;
      this.offset = (this.offset + n) % this.cycle.length;
    }
  }
}

class ActivePlayback implements Playback {
  readonly result: Promise<PlayResult>;
  /** Its first packet is still to be sent (and gets the marker bit). */
  starting = true;
  private settle!: (r: PlayResult) => void;
  private ended = false;

  constructor(
    private readonly owner: MediaEndpoint,
    readonly source: AudioSource,
    readonly bargeIn: boolean,
  ) {
    this.result = new Promise((resolve) => (this.settle = resolve));
  }

  stop(): void {
    this.owner.endPlayback(this, 'interrupted');
  }

  /** @internal Settles the result (the first call only). */
  end(r: PlayResult): void {
    if (this.ended) return;
    this.ended = true;
    this.settle(r);
  }
}

export class MediaEndpoint extends EventEmitter<MediaEndpointEvents> {
  readonly localAddress: string;
  readonly localPort: number;
  /** The payload format; changed only by setFormat(). */
  codec: G711Codec;
  payloadType: number;
  telephoneEventPayloadType: number | null;

  private readonly latch: boolean;
  private readonly signalAddress: string;
  private readonly idle: 'silence' | 'none';
  private readonly inactivityMs: number;
  private readonly logger: RelayLogger | undefined;
  private silence: number;
  private readonly slot: PacerSlot;
  private closing: Promise<void> | null = null;

  /** The remote as the caller gave it (SDP), and where packets go now (the latched source). */
  private sdpRemote: { address: string; port: number } | null = null;
  private target: { address: string; port: number } | null = null;
  /** 'address:port' the socket is connected to (no latching), or null. */
  private connectedKey: string | null = null;
  private connecting = false;
  private latched = false;
  private relatchAllowed = false;
  private lastFromTargetMs = 0;
  /** On hold: nothing is sent; what the remote sends is still heard. */
  private held = false;

  private readonly header: RtpHeaderFields;
  /** Packet buffers used in turn (see nextPacketBuffer). */
  private readonly ring: Buffer[];
  private ringIndex = 0;
  /** The next packet sent starts a talkspurt. */
  private gap = true;
  private current: ActivePlayback | null = null;

  private readonly events = new TelephoneEventReceiver();
  private detector: DtmfDetector | null;
  private decoded = new Int16Array(SAMPLES_PER_PACKET);
  private lastInband: { key: string; atMs: number } | null = null;

  private lastReceivedMs: number;
  private inactiveReported = false;
  private readonly counters: EndpointStats = { sent: 0, received: 0, ignored: 0, digits: 0 };

  /** Binds the socket and joins the pacer; rejects with the bind error (e.g. EADDRINUSE). */
  static async open(opts: MediaEndpointOptions): Promise<MediaEndpoint> {
    checkOptions(opts);
    const socket = dgram.createSocket({ type: 'udp4' });
    await new Promise<void>((resolve, reject) => {
      const onBindError = (err: Error) => {
        socket.close();
        reject(err);
      };
      socket.once('error', onBindError);
      socket.bind(opts.port ?? 0, opts.bind, () => {
        socket.off('error', onBindError);
        resolve();
      });
    });
    return new MediaEndpoint(socket, opts);
  }

  private constructor(
    private readonly socket: dgram.Socket,
    opts: MediaEndpointOptions,
  ) {
    super();
    ({ address: this.localAddress, port: this.localPort } = socket.address());
    this.codec = opts.codec;
    this.payloadType = opts.payloadType ?? STATIC_PAYLOAD_TYPE[opts.codec];
    this.telephoneEventPayloadType = opts.telephoneEventPayloadType ?? null;
    this.latch = opts.latch ?? false;
    this.signalAddress = opts.signalAddress ?? '';
    this.idle = opts.idle ?? 'silence';
    this.inactivityMs = opts.inactivityMs ?? 0;
    this.logger = opts.logger;
    this.silence = SILENCE_BYTE[this.codec];
    const inband = opts.inband ?? 'auto';
    const listen = inband === 'always' || (inband === 'auto' && this.telephoneEventPayloadType === null);
    this.detector = listen ? new DtmfDetector((key) => this.inbandKey(key)) : null;
    if (opts.remote) this.setRemote(opts.remote.address, opts.remote.port);

    const [seq, ts, ssrc] = randomFillSync(new Uint32Array(3)); // RFC 3550 §5.1, §8.1
    this.header = { marker: false, payloadType: this.payloadType, sequenceNumber: opts.handedOver ? seq! & 0x3f : seq! & 0xffff, timestamp: ts!, ssrc: ssrc! };
    const pacer = opts.pacer ?? sharedPacer();
    // More buffers than one wake-up can send for this stream: see nextPacketBuffer().
    this.ring = Array.from({ length: Math.max(8, pacer.maxBurst + 2) }, () => Buffer.alloc(PACKET_BYTES));

    this.lastReceivedMs = performance.now();
    socket.on('message', (msg, rinfo) => this.receive(msg, rinfo));
    // Sends pass no callback, so their failures are not reported at all; what is, is rare.
    socket.on('error', (err) => this.logger?.warn('media.endpoint_socket_error', { port: this.localPort, error: err.message }));
    this.slot = pacer.add({ onSlot: (skipped) => this.onSlot(skipped) });
  }

  /** Where packets go now (after latching: the real source), null = nowhere (none yet, or hold). */
  get remote(): { address: string; port: number } | null {
    return this.target && !this.held ? { ...this.target } : null;
  }

  get closed(): boolean {
    return this.closing !== null;
  }

  /**
   * Where to send, from the remote's SDP; address 0.0.0.0 or port 0 = hold (RFC 3264 §8.4:
   * nothing is sent until the next setRemote; what the remote sends is still heard). With latch,
   * the same address again keeps the latched source but lets a new one take over.
   */
  setRemote(address: string, port: number): void {
    if (!isIPv4(address)) throw new RangeError(`media endpoint: remote address ${address} is not an IPv4 address`);
    if (!(Number.isInteger(port) && port >= 0 && port <= 65535)) throw new RangeError(`media endpoint: bad remote port ${port}`);
    this.held = address === '0.0.0.0' || port === 0;
    if (this.held) return;
    const same = this.sdpRemote?.address === address && this.sdpRemote.port === port;
    this.sdpRemote = { address, port };
    if (this.latch && this.latched && same) {
      this.relatchAllowed = true;
      return;
    }
    this.target = { address, port };
    this.latched = false;
    this.relatchAllowed = false;
    if (!this.latch) this.connectTo(address, port);
  }

  /**
   * Without latching the peer never moves: the socket is connected to it, which spares every
   * send the address lookup of dgram and the kernel's route lookup, and lets the kernel drop what
   * others send. Until the connection is made (one turn of the loop) packets go by address.
   */
  private isConnected(): boolean {
    try {
      this.socket.remoteAddress();
      return true;
    } catch {
      return false;
    }
  }

  private connectTo(address: string, port: number): void {
    const key = `${address}:${port}`;
    if (this.connectedKey === key) return;
    if (this.connectedKey !== null) {
      this.socket.disconnect();
      this.connectedKey = null;
    }
    if (this.connecting) return; // the connection under way is checked against the target when it is made
    this.connecting = true;
    this.socket.connect(port, address, () => {
      this.connecting = false;
      if (this.closed || !this.isConnected()) return;
      const t = this.target;
      const made = `${address}:${port}`;
      if (t && `${t.address}:${t.port}` === made) {
        this.connectedKey = made;
        return;
      }
      this.socket.disconnect();
      if (t) this.connectTo(t.address, t.port);
    });
  }

  /**
   * Plays G.711 bytes in this endpoint's codec (see promptToCodec), the prompts back to back.
   * A playback already running ends ('interrupted'); the new one starts in the next slot. The
   * bytes are read as they are sent (not copied): they must not change while they play.
   */
  play(prompts: Uint8Array | readonly Uint8Array[], opts: PlayOptions = {}): Playback {
    const list = prompts instanceof Uint8Array ? [prompts] : prompts;
    return this.start(new PromptSource(list, this.silence), opts);
  }

  /**
   * Another payload format, for an endpoint whose offer was answered with a codec other than the
   * one it was opened with (the server calls out offering both G.711 laws). Ends what plays.
   */
  setFormat(codec: G711Codec, payloadType?: number, telephoneEventPayloadType?: number | null): void {
    checkOptions({ bind: this.localAddress, codec, ...(payloadType !== undefined ? { payloadType } : {}), telephoneEventPayloadType: telephoneEventPayloadType ?? null });
    if (this.current) this.endPlayback(this.current, 'interrupted');
    this.codec = codec;
    this.payloadType = payloadType ?? STATIC_PAYLOAD_TYPE[codec];
    this.telephoneEventPayloadType = telephoneEventPayloadType ?? null;
    this.silence = SILENCE_BYTE[codec];
    this.header.payloadType = this.payloadType;
  }

  /** Plays a tone cadence (default the ringback tone, tones.ts) until stopped. */
  playTone(tone: 'ringback' | ToneSpec = 'ringback', opts: PlayOptions = {}): Playback {
    const spec = tone === 'ringback' ? RINGBACK : tone;
    return this.start(new LoopSource(cachedToneCycle(spec, this.codec)), opts);
  }

  /** A key that came another way (SIP INFO): reported like the others. Throws on a non-key. */
  injectDigit(key: string, source: DigitSource = 'info'): void {
    if (!isDtmfKey(key)) throw new RangeError(`not a DTMF key: ${JSON.stringify(key)}`);
    if (!this.closed) this.digit(key, source);
  }

  stats(): EndpointStats {
    return { ...this.counters };
  }

  /** Frees the socket, the pacer slot and the playback ('closed'); resolves once the socket is closed. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.slot.remove();
    if (this.current) this.endPlayback(this.current, 'closed');
    this.detector = null;
    this.closing = new Promise((resolve) => this.socket.close(() => resolve()));
    return this.closing;
  }

  /** @internal ActivePlayback.stop() */
  endPlayback(playback: ActivePlayback, result: PlayResult): void {
    if (this.current === playback) this.current = null;
    playback.end(result);
  }

  private start(source: AudioSource, opts: PlayOptions): Playback {
    const playback = new ActivePlayback(this, source, opts.bargeIn ?? false);
    if (this.closed) playback.end('closed');
    else if (source.finished) playback.end('done');
    else {
      if (this.current) this.endPlayback(this.current, 'interrupted');
      this.current = playback;
    }
    return playback;
  }

  private onSlot(skipped: number): void {
    const h = this.header;
    if (skipped > 0) h.timestamp = (h.timestamp + skipped * SAMPLES_PER_PACKET) >>> 0;
    if (this.inactivityMs > 0 && !this.inactiveReported && performance.now() - this.lastReceivedMs >= this.inactivityMs) {
      this.inactiveReported = true;
      this.notify('inactive');
    }
    const target = this.target;
    const playback = this.current;
    if (this.closed || !target || this.held || (!playback && this.idle === 'none')) {
      h.timestamp = (h.timestamp + SAMPLES_PER_PACKET) >>> 0;
      this.gap = true;
      return;
    }
    const packet = this.nextPacketBuffer();
    const payload = packet.subarray(RTP_HEADER_BYTES);
    if (playback) playback.source.fill(payload);
    else payload.fill(this.silence);
    h.marker = this.gap || (playback?.starting ?? false);
    writeRtpHeader(packet, h);
    if (this.connectedKey !== null) this.socket.send(packet);
    else if (!this.connecting) this.socket.send(packet, target.port, target.address);
    else {
      // A send by address while the socket connects may be lost: this slot stays silent.
      h.timestamp = (h.timestamp + SAMPLES_PER_PACKET) >>> 0;
      this.gap = true;
      return;
    }
    this.counters.sent++;
    this.gap = false;
    h.sequenceNumber = (h.sequenceNumber + 1) & 0xffff;
    h.timestamp = (h.timestamp + SAMPLES_PER_PACKET) >>> 0;
    if (playback) {
      playback.starting = false;
      if (playback.source.finished) this.endPlayback(playback, 'done');
    }
  }

  /**
   * A buffer for the next packet. dgram holds a buffer until its send is done: to an IP address
   * that is the next tick (after the pacer's wake-up, whose burst uses distinct buffers of the
   * ring), or later when the socket buffer was full and libuv queued the send. In that case the
   * queue count is above 0, and a fresh buffer is taken instead of reusing one.
   */
  private nextPacketBuffer(): Buffer {
    const i = this.ringIndex;
    this.ringIndex = (i + 1) % this.ring.length;
    if (this.socket.getSendQueueCount() > 0) this.ring[i] = Buffer.alloc(PACKET_BYTES);
    return this.ring[i]!;
  }

  private receive(msg: Buffer, from: dgram.RemoteInfo): void {
    if (this.closed || !this.accepts(from)) {
      this.counters.ignored++;
      return;
    }
    const packet = decodeRtp(msg);
    if (!packet) {
      this.counters.ignored++;
      return;
    }
    this.counters.received++;
    this.lastReceivedMs = performance.now();
    this.inactiveReported = false;
    if (packet.payloadType === this.payloadType) {
      if (!this.detector || packet.payload.length === 0) return;
      if (this.decoded.length < packet.payload.length) this.decoded = new Int16Array(packet.payload.length);
      this.detector.push(decodeG711(this.codec, packet.payload, this.decoded).subarray(0, packet.payload.length));
    } else if (packet.payloadType === this.telephoneEventPayloadType) {
      this.detector = null; // RFC 4733 seen: no in-band detection from now on
      for (const key of this.events.receive(packet)) {
        const inband = this.lastInband;
        this.lastInband = null;
        if (inband?.key === key && this.lastReceivedMs - inband.atMs < SAME_PRESS_MS) continue;
        this.digit(key, 'rfc4733');
      }
    }
  }

  /** Symmetric RTP; with latch, the relay's rules (see the file comment). */
  private accepts(from: dgram.RemoteInfo): boolean {
    const t = this.target;
    const fromTarget = t !== null && from.address === t.address && from.port === t.port;
    if (!this.latch) return fromTarget;
    const now = performance.now();
    if (!(fromTarget && this.latched)) {
      const mayLatch = this.sdpRemote
        ? from.address === this.sdpRemote.address || from.address === this.signalAddress
        : this.signalAddress === '' || from.address === this.signalAddress;
      const locked = this.latched && !this.relatchAllowed && now - this.lastFromTargetMs < RELATCH_SILENCE_MS;
      if (locked || !mayLatch) return false;
      this.target = { address: from.address, port: from.port };
      this.latched = true;
    }
    this.relatchAllowed = false;
    this.lastFromTargetMs = now;
    return true;
  }

  private inbandKey(key: string): void {
    this.lastInband = { key, atMs: performance.now() };
    this.digit(key, 'inband');
  }

  private digit(key: string, source: DigitSource): void {
    this.counters.digits++;
    const playback = this.current;
    if (playback?.bargeIn) this.endPlayback(playback, 'interrupted');
    this.notify('digit', key, source);
  }

  /** Emits; a listener that throws is logged, never breaks the socket handler or the pacer. */
  private notify<K extends keyof MediaEndpointEvents>(event: K, ...args: MediaEndpointEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: MediaEndpointEvents[K]) => boolean)(event, ...args);
    } catch (err) {
      this.logger?.warn('media.endpoint_listener_failed', { event, error: (err as Error)?.message ?? String(err) });
    }
  }
}

function checkOptions(opts: MediaEndpointOptions): void {
  if (!isIPv4(opts.bind)) throw new RangeError(`media endpoint: bind address ${opts.bind} is not an IPv4 address`);
  const port = opts.port ?? 0;
  if (!(Number.isInteger(port) && port >= 0 && port <= 65535)) throw new RangeError(`media endpoint: bad port ${port}`);
  if (opts.codec !== 'pcmu' && opts.codec !== 'pcma') throw new RangeError(`media endpoint: codec must be 'pcmu' or 'pcma', not ${String(opts.codec)}`);
  const pt = (v: number | null | undefined) => v === undefined || v === null || (Number.isInteger(v) && v >= 0 && v <= 127);
  if (!pt(opts.payloadType) || !pt(opts.telephoneEventPayloadType)) throw new RangeError('media endpoint: payload types must be 0..127');
  const audioPt = opts.payloadType ?? STATIC_PAYLOAD_TYPE[opts.codec];
  if (opts.telephoneEventPayloadType === audioPt) throw new RangeError('media endpoint: the telephone-event payload type equals the audio one');
  if (!(opts.inactivityMs === undefined || opts.inactivityMs >= 0)) throw new RangeError('media endpoint: inactivityMs must be >= 0');
  if (opts.inband !== undefined && !['auto', 'always', 'off'].includes(opts.inband)) throw new RangeError(`media endpoint: unknown inband ${String(opts.inband)}`);
}
