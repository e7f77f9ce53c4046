/**
 * The native relay engine: loads the C addon built from native/relay (scripts/build-native.mjs)
 * and adapts it to RelayBackend. The addon's relay thread does the forwarding and latching
 * (same rules as backend.ts); counters are read from a Float64Array it shares with us.
 */
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { addonPath, loadAddon } from '../platform/native-addon.js';
import type { RelayBackend } from './backend.js';
import type { RelayTotals } from './relay.js';

export const NATIVE_BUILD_COMMAND = 'node scripts/build-native.mjs';
const ADDON_PATH = join('native', 'relay', 'build', 'Release', 'relay.node');

/** Layout of the shared counters: STAT_FIELDS numbers per socket slot (native/relay/relay.c). */
const STAT_FORWARDED = 0;
const STAT_BYTES = 1;
const STAT_DROPPED = 2;
const STAT_LAST_MS = 3;
const STAT_FIELDS = 4;

type Handle = object;
interface NativeAddon {
  create(maxSlots: number): [Handle, ArrayBuffer];
  openSocket(h: Handle, ip: string, port: number): number;
  link(h: Handle, a: number, b: number): void;
  setTarget(h: Handle, slot: number, ip: string, port: number, signalIp?: string): void;
  resetSocket(h: Handle, slot: number): void;
  closeSocket(h: Handle, slot: number): void;
  now(h: Handle): number;
  destroy(h: Handle): void;
}

export function findNativeAddon(): string | null {
  return addonPath('relay');
}

let cached: NativeAddon | null | undefined;
let loadError = '';

/** The addon, or null when it was not built or cannot be loaded (then loadFailure() says why). */
export function loadNativeAddon(): NativeAddon | null {
  if (cached !== undefined) return cached;
  try {
    cached = loadAddon<NativeAddon>('relay');
    if (cached === null) loadError = `${ADDON_PATH} not found`;
  } catch (err) {
    loadError = `${ADDON_PATH}: ${(err as Error).message}`;
    cached = null;
  }
  return cached;
}

export function loadFailure(): string {
  return loadError;
}

function errnoError(negativeErrno: number, port: number): Error {
  const code = Object.entries(osConstants.errno).find(([, v]) => v === -negativeErrno)?.[0] ?? `errno ${-negativeErrno}`;
  return Object.assign(new Error(`cannot open relay port ${port}: ${code}`), { code });
}

export class NativeBackend implements RelayBackend {
  readonly kind = 'native' as const;
  private readonly handle: Handle;
  private readonly stats: Float64Array;
  private closed = false;
  /** Slots open now: totals() adds up their counters. */
  private readonly open = new Set<number>();
  /**
   * What slots counted before the addon zeroed their counters (reset) or they were closed. The
   * addon keeps no running totals of its own: packets its thread counts on a slot between our
   * read here and the reset are not in the totals (a call's last stray packets, if any).
   */
  private readonly retired: RelayTotals = { packets: 0, bytes: 0, dropped: 0 };

  constructor(
    private readonly addon: NativeAddon,
    private readonly bindAddress: string,
    maxSockets: number,
  ) {
    const [handle, buffer] = addon.create(maxSockets);
    this.handle = handle;
    this.stats = new Float64Array(buffer);
  }

  async openSocket(port: number): Promise<number> {
    return this.openSocketNow(port);
  }

  openSocketNow(port: number): number {
    if (this.closed) throw new Error('relay engine is closed');
    const slot = this.addon.openSocket(this.handle, this.bindAddress, port);
    if (slot < 0) throw errnoError(slot, port);
    this.open.add(slot);
    return slot;
  }

  link(a: number, b: number): void {
    this.addon.link(this.handle, a, b);
  }

  setTarget(slot: number, target: { ip: string; port: number } | null, signalIp = ''): void {
    this.addon.setTarget(this.handle, slot, target?.ip ?? '0.0.0.0', target?.port ?? 0, signalIp);
  }

  forwarded(slot: number): number {
    return this.stats[slot * STAT_FIELDS + STAT_FORWARDED] ?? 0;
  }
  forwardedBytes(slot: number): number {
    return this.stats[slot * STAT_FIELDS + STAT_BYTES] ?? 0;
  }
  dropped(slot: number): number {
    return this.stats[slot * STAT_FIELDS + STAT_DROPPED] ?? 0;
  }
  lastPacketMs(slot: number): number {
    return this.stats[slot * STAT_FIELDS + STAT_LAST_MS] ?? 0;
  }
  nowMs(): number {
    return this.addon.now(this.handle);
  }

  /** Packets and bytes forwarded and packets dropped by every socket since the engine started. */
  totals(): RelayTotals {
    const t = { ...this.retired };
    for (const slot of this.open) {
      t.packets += this.forwarded(slot);
      t.bytes += this.forwardedBytes(slot);
      t.dropped += this.dropped(slot);
    }
    return t;
  }

  private retire(slot: number): void {
    this.retired.packets += this.forwarded(slot);
    this.retired.bytes += this.forwardedBytes(slot);
    this.retired.dropped += this.dropped(slot);
  }

  resetSocket(slot: number): void {
    if (this.open.has(slot)) this.retire(slot);
    this.addon.resetSocket(this.handle, slot);
  }

  closeSocket(slot: number): void {
    if (this.open.delete(slot)) this.retire(slot);
    if (!this.closed) this.addon.closeSocket(this.handle, slot);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.addon.destroy(this.handle);
  }
}
