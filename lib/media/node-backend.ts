/** The pure Node.js relay engine: one dgram socket per port. See backend.ts for the rules. */
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { RELATCH_SILENCE_MS, type RelayBackend, type RelayLogger } from './backend.js';
import type { RelayTotals } from './relay.js';

const RECV_BUFFER_BYTES = 1 << 20;

class SocketState {
  peer: SocketState | null = null;
  sdpIp = '';
  sdpPort = 0;
  targetIp = '';
  targetPort = 0;
  hold = false;
  latched = false;
  relatchAllowed = false;
  lastLatchedMs = 0;
  forwarded = 0;
  bytes = 0;
  dropped = 0;
  lastPacketMs = 0;
  /** The side's signalling address ('' = any source may latch), see backend.ts. */
  signalIp = '';
  constructor(readonly socket: dgram.Socket) {}

  mayLatch(address: string): boolean {
    return this.signalIp === '' || address === this.signalIp || (this.sdpIp !== '' && address === this.sdpIp);
  }
}

export class NodeBackend implements RelayBackend {
  readonly kind = 'node' as const;
  private readonly sockets = new Map<number, SocketState>();
  private nextSlot = 0;
  /** What sockets counted before their counters were zeroed (reset) or they were closed. */
  private readonly retired: RelayTotals = { packets: 0, bytes: 0, dropped: 0 };

  constructor(
    private readonly bindAddress: string,
    private readonly logger?: RelayLogger,
  ) {}

  openSocket(port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: RECV_BUFFER_BYTES });
      const onBindError = (err: Error) => {
        socket.close();
        reject(err);
      };
      socket.once('error', onBindError);
      socket.bind(port, this.bindAddress, () => {
        socket.off('error', onBindError);
        const slot = this.nextSlot++;
        const state = new SocketState(socket);
        this.sockets.set(slot, state);
        socket.on('error', (err) => this.logger?.warn('media.socket_error', { port, error: err.message }));
        socket.on('message', (msg, rinfo) => this.relay(state, msg, rinfo));
        resolve(slot);
      });
    });
  }

  private relay(state: SocketState, msg: Buffer, from: dgram.RemoteInfo): void {
    const now = performance.now();
    if (!(state.latched && from.port === state.targetPort && from.address === state.targetIp)) {
      if ((state.latched && !state.relatchAllowed && now - state.lastLatchedMs < RELATCH_SILENCE_MS) || !state.mayLatch(from.address)) {
        state.dropped++;
        return;
      }
      state.targetIp = from.address;
      state.targetPort = from.port;
      state.latched = true;
    }
    state.relatchAllowed = false;
    state.lastLatchedMs = now;
    state.lastPacketMs = now;
    const out = state.peer;
    if (!out || out.hold || out.targetPort === 0) {
      state.dropped++;
      return;
    }
    out.socket.send(msg, out.targetPort, out.targetIp);
    state.forwarded++;
    state.bytes += msg.length;
  }

  link(a: number, b: number): void {
    const sa = this.mustGet(a);
    const sb = this.mustGet(b);
    sa.peer = sb;
    sb.peer = sa;
  }

  setTarget(slot: number, target: { ip: string; port: number } | null, signalIp = ''): void {
    const s = this.mustGet(slot);
    s.signalIp = signalIp;
    if (!target || target.port === 0 || target.ip === '0.0.0.0') {
      s.hold = true;
      s.latched = false;
      s.targetPort = 0;
      s.sdpIp = '';
      s.sdpPort = 0;
      return;
    }
    s.hold = false;
    if (s.latched && s.sdpIp === target.ip && s.sdpPort === target.port) {
      // Same SDP address again (e.g. a session refresh): keep the latched source, which is the
      // real one behind NAT, but let the next source take over if it differs.
      s.relatchAllowed = true;
    } else {
      s.targetIp = target.ip;
      s.targetPort = target.port;
      s.latched = false;
      s.relatchAllowed = false;
    }
    s.sdpIp = target.ip;
    s.sdpPort = target.port;
  }

  forwarded(slot: number): number {
    return this.sockets.get(slot)?.forwarded ?? 0;
  }
  forwardedBytes(slot: number): number {
    return this.sockets.get(slot)?.bytes ?? 0;
  }
  dropped(slot: number): number {
    return this.sockets.get(slot)?.dropped ?? 0;
  }
  lastPacketMs(slot: number): number {
    return this.sockets.get(slot)?.lastPacketMs ?? 0;
  }
  nowMs(): number {
    return performance.now();
  }

  /** Packets and bytes forwarded and packets dropped by every socket since the engine started. */
  totals(): RelayTotals {
    const t = { ...this.retired };
    for (const s of this.sockets.values()) {
      t.packets += s.forwarded;
      t.bytes += s.bytes;
      t.dropped += s.dropped;
    }
    return t;
  }

  private retire(s: SocketState): void {
    this.retired.packets += s.forwarded;
    this.retired.bytes += s.bytes;
    this.retired.dropped += s.dropped;
  }

  resetSocket(slot: number): void {
    const old = this.mustGet(slot);
    this.retire(old);
    if (old.peer?.peer === old) old.peer.peer = null;
    old.peer = null;
    const fresh = new SocketState(old.socket);
    this.sockets.set(slot, fresh);
    old.socket.removeAllListeners('message');
    old.socket.on('message', (msg, rinfo) => this.relay(fresh, msg, rinfo));
  }

  closeSocket(slot: number): void {
    const s = this.sockets.get(slot);
    if (!s) return;
    this.retire(s);
    this.sockets.delete(slot);
    if (s.peer?.peer === s) s.peer.peer = null;
    s.peer = null;
    try {
      s.socket.close();
    } catch {
      // already closed
    }
  }

  async close(): Promise<void> {
    for (const slot of [...this.sockets.keys()]) this.closeSocket(slot);
  }

  private mustGet(slot: number): SocketState {
    const s = this.sockets.get(slot);
    if (!s) throw new Error(`relay socket ${slot} is not open`);
    return s;
  }
}
