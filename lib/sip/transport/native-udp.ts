/**
 * A UDP socket served by the native addon's I/O thread (native/relay/sipio.c), for
 * `sip.udpEngine: native`: datagrams arrive in batches, one callback for all that queued up, and
 * sends leave from the I/O thread, so the kernel's send work (on loopback it includes waking the
 * receiver) is done on another core than the SIP logic. Same surface as UdpTransport.
 */
import { isIP } from 'node:net';
import { constants as osConstants } from 'node:os';
import { loadAddon } from '../../platform/native-addon.js';
import type { UdpOptions } from './udp.js';

type Handle = object;
interface SipIoAddon {
  udpSocket(ip: string, port: number, bufferBytes: number, reusePort: boolean): number;
  localPort(fd: number): number;
  sipIoStart(fd: number, onReadable: () => void): Handle;
  sipIoDrain(h: Handle): Buffer | null;
  sipIoSend(h: Handle, records: Buffer, length: number): boolean;
  sipIoStats(h: Handle): [number, number, number];
  sipIoQueuedSince(h: Handle): number;
  sipIoCoalesce(h: Handle, microseconds: number): void;
  sipIoClose(h: Handle): void;
}

let addon: SipIoAddon | null | undefined;
let loadError = '';

/** The addon when it has the SIP I/O functions; null otherwise (then nativeUdpUnavailable() says why). */
export function nativeUdpAddon(): SipIoAddon | null {
  if (addon !== undefined) return addon;
  try {
    const a = loadAddon<Partial<SipIoAddon>>('relay');
    if (a === null) loadError = 'the native addon is not built (node scripts/build-native.mjs, needs g++ and make)';
    else if (typeof a.sipIoQueuedSince !== 'function' || typeof a.sipIoCoalesce !== 'function') loadError = 'the native addon is older than this program: rebuild it (node scripts/build-native.mjs)';
    addon = loadError ? null : (a as SipIoAddon);
  } catch (err) {
    loadError = `the native addon cannot be loaded: ${(err as Error).message}`;
    addon = null;
  }
  return addon;
}

export function nativeUdpUnavailable(): string {
  nativeUdpAddon();
  return loadError;
}

function errnoError(negative: number, what: string): NodeJS.ErrnoException {
  const code = Object.entries(osConstants.errno).find(([, v]) => v === -negative)?.[0] ?? `errno ${-negative}`;
  return Object.assign(new Error(`${what}: ${code}`), { code });
}

// Record layout of both queues (native/relay/sipio.c), little-endian: [u32 length][u16 port]
// [u8 family 4|6][u8 text length][4 bytes IPv4][IPv6 address text][datagram], padded to 4 bytes.
const RX_HEADER = 12;
const DGRAM_MAX = 65536;
/** Longest stretch the main thread spends on received datagrams before timers get their turn. */
const DRAIN_SLICE_MS = 50;
/** process.hrtime (the I/O thread's clock, CLOCK_MONOTONIC) in ms = performance.now() + this. */
const HRTIME_OFFSET_MS = Number(process.hrtime.bigint()) / 1e6 - performance.now();

export interface NativeUdpCounters {
  /** Received datagrams dropped (queue bound reached, or larger than 64 KiB). */
  receiveDropped: number;
  /** Sends dropped because the socket stayed full or the send queue bound was reached. */
  sendDropped: number;
  /** Sends the kernel refused (unreachable network...). */
  sendErrors: number;
}

export class NativeUdpTransport {
  private closed = false;
  /** IPv4 source -> its text, so that a busy peer costs no string building per datagram. */
  private readonly v4Text = new Map<number, string>();
  /** IPv4 destination text -> its 32 bits as the record holds them (-1: not dotted IPv4). */
  private readonly v4Bits = new Map<string, number>();
  /** Sends of this turn of the event loop, handed to the I/O thread together (flush). */
  private stage = Buffer.allocUnsafe(65536);
  private staged = 0;
  private flushQueued = false;
  private readonly flushNow = (): void => this.flush();
  private drainScheduled = false;
  /** A batch taken from the I/O thread but not yet handled to its end, and where to go on. */
  private pending: Buffer | null = null;
  private pendingAt = 0;
  /** When (process.hrtime, ms) the oldest datagram of `pending` was received. */
  private pendingSince = 0;
  /** When (process.hrtime, ms) `pending` was taken from the I/O thread (its newest is older). */
  private pendingTaken = 0;
  private readonly drainNow = (): void => {
    this.drainScheduled = false;
    this.drain();
  };

  private constructor(
    private readonly lib: SipIoAddon,
    private readonly handle: Handle,
    readonly address: string,
    readonly port: number,
    private readonly opts: UdpOptions,
  ) {}

  /**
   * The I/O thread's call (its queue became non-empty). Node runs such calls back to back without
   * letting timers in, so the work itself waits for the check phase of this loop turn.
   */
  private scheduleDrain(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    setImmediate(this.drainNow);
  }

  static open(opts: UdpOptions): Promise<NativeUdpTransport> {
    const lib = nativeUdpAddon();
    if (lib === null) return Promise.reject(new Error(`sip.udpEngine native: ${loadError}`));
    let fd = opts.fd;
    if (fd === undefined && isIP(opts.address) === 0) {
      return Promise.reject(new Error(`${opts.address} is not an IP address (sip.bind and sip.bind6 take addresses, such as 0.0.0.0 or ::)`));
    }
    if (fd === undefined) {
      fd = lib.udpSocket(opts.address, opts.port, opts.bufferBytes, false);
      if (fd < 0) return Promise.reject(errnoError(fd, `bind ${opts.address}:${opts.port}`));
    }
    const port = lib.localPort(fd);
    if (port < 0) return Promise.reject(errnoError(port, 'getsockname'));
    let transport: NativeUdpTransport | null = null;
    const handle = lib.sipIoStart(fd, () => transport?.scheduleDrain());
    if (opts.coalesceUs !== undefined && opts.coalesceUs > 0) lib.sipIoCoalesce(handle, opts.coalesceUs);
    transport = new NativeUdpTransport(lib, handle, opts.address, port, opts);
    return Promise.resolve(transport);
  }

  /**
   * Hands queued datagrams to onMessage, batch after batch, for at most DRAIN_SLICE_MS; then lets
   * timers and other sockets run before going on (the I/O thread does not call again while its
   * queue is not empty, so the rest is scheduled here). A throwing handler loses no other datagram.
   */
  private drain(): void {
    const opts = this.opts;
    const drop = opts.drop;
    const start = performance.now();
    let now = start + HRTIME_OFFSET_MS;
    let checked = 0;
    while (!this.closed) {
      let batch = this.pending;
      let at = this.pendingAt;
      if (batch === null) {
        const since = this.lib.sipIoQueuedSince(this.handle);
        batch = this.lib.sipIoDrain(this.handle);
        at = 0;
        if (batch === null) return;
        now = this.pendingTaken = Number(process.hrtime.bigint()) / 1e6;
        this.pendingSince = since >= 0 ? since : this.pendingTaken;
      }
      // The batch's datagrams arrived between pendingSince and pendingTaken; each is taken to have
      // arrived at the point of that span its place in the batch gives (arrivals spread evenly).
      const since = this.pendingSince;
      const span = this.pendingTaken - since;
      const length = batch.length;
      while (at + RX_HEADER <= batch.length) {
        if (++checked % 16 === 0) {
          const t = performance.now();
          if (t - start > DRAIN_SLICE_MS) {
            this.pending = batch; // the rest of this batch comes first next time
            this.pendingAt = at;
            this.flush();
            this.scheduleDrain();
            return;
          }
          if (t + HRTIME_OFFSET_MS > now) now = t + HRTIME_OFFSET_MS;
        }
        const recordAt = at;
        const len = batch.readUInt32LE(at);
        const port = batch[at + 4]! | (batch[at + 5]! << 8);
        const textLen = batch[at + 7]!;
        const address = batch[at + 6] === 4 ? this.v4Address(batch.readUInt32LE(at + 8), batch, at + 8) : batch.toString('latin1', at + RX_HEADER, at + RX_HEADER + textLen);
        if (drop !== undefined && drop(address)) {
          at += (RX_HEADER + textLen + len + 3) & ~3; // a banned source: not even copied
          continue;
        }
        const begin = at + RX_HEADER + textLen;
        // A datagram of its own: a message keeps parts of its bytes (bodies) for as long as it lives.
        const data = Buffer.allocUnsafe(len);
        batch.copy(data, 0, begin, begin + len);
        at += (RX_HEADER + textLen + len + 3) & ~3;
        const waited = now - (since + (span * recordAt) / length);
        try {
          opts.onMessage(data, { transport: 'udp', address, port }, waited);
        } catch (err) {
          opts.onError?.(err as Error);
        }
      }
      this.pending = null;
      this.flush();
    }
  }

  /**
   * How long (ms) the oldest datagram received and not yet handled has waited, in the I/O
   * thread's queue or in a batch being handled in slices; 0 when none waits. With drains in
   * slices the event loop keeps turning, so its delay does not show this backlog.
   */
  backlogMs(): number {
    const queued = this.lib.sipIoQueuedSince(this.handle);
    let oldest = this.pending !== null ? this.pendingSince : -1;
    if (queued >= 0 && (oldest < 0 || queued < oldest)) oldest = queued;
    return oldest < 0 ? 0 : Number(process.hrtime.bigint()) / 1e6 - oldest;
  }

  private v4Address(key: number, buf: Buffer, at: number): string {
    let text = this.v4Text.get(key);
    if (text === undefined) {
      text = `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
      if (this.v4Text.size >= 4096) this.v4Text.clear(); // bounded: sources are strangers too
      this.v4Text.set(key, text);
    }
    return text;
  }

  send(data: Buffer, address: string, port: number): void {
    if (this.closed || data.length > DGRAM_MAX || !(port > 0 && port < 65536)) return;
    let bits = this.v4Bits.get(address);
    if (bits === undefined) {
      bits = dottedQuadBits(address);
      if (this.v4Bits.size >= 4096) this.v4Bits.clear();
      this.v4Bits.set(address, bits);
    }
    const textLen = bits < 0 ? Buffer.byteLength(address, 'latin1') : 0;
    if (textLen > 63) return; // not an IP address: sipio.c would refuse it
    const need = (RX_HEADER + textLen + data.length + 3) & ~3;
    if (this.staged + need > this.stage.length) {
      if (this.staged > 0) this.flush();
      if (need > this.stage.length) this.stage = Buffer.allocUnsafe(need);
    }
    const b = this.stage;
    const at = this.staged;
    b.writeUInt32LE(data.length, at);
    b[at + 4] = port & 0xff;
    b[at + 5] = port >> 8;
    b[at + 6] = bits < 0 ? 6 : 4;
    b[at + 7] = textLen;
    b.writeUInt32LE(bits < 0 ? 0 : bits, at + 8);
    if (textLen > 0) b.write(address, at + RX_HEADER, textLen, 'latin1');
    data.copy(b, at + RX_HEADER + textLen);
    this.staged = at + need;
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flushNow);
    }
  }

  /** Hands the staged sends to the I/O thread (one call, one wake-up at most). */
  flush(): void {
    this.flushQueued = false;
    if (this.staged === 0 || this.closed) return;
    this.lib.sipIoSend(this.handle, this.stage, this.staged);
    this.staged = 0;
  }

  counters(): NativeUdpCounters {
    const [receiveDropped, sendDropped, sendErrors] = this.lib.sipIoStats(this.handle);
    return { receiveDropped, sendDropped, sendErrors };
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.flush();
      this.closed = true;
      this.lib.sipIoClose(this.handle);
    }
    return Promise.resolve();
  }
}

/** The 4 bytes of a dotted-quad IPv4 address (network order) read as a little-endian uint32; -1 otherwise. */
function dottedQuadBits(address: string): number {
  const parts = address.split('.');
  if (parts.length !== 4) return -1;
  let bits = 0;
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return -1;
    bits |= Number(p) << (8 * i);
  }
  return bits >>> 0;
}
