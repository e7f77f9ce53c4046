/**
 * What the relay needs from an engine: UDP sockets in linked pairs (what arrives on one leaves
 * from the other), per-socket targets with symmetric latching, and per-socket counters.
 * Two implementations: node-backend.ts (dgram) and native.ts (the C addon in native/relay).
 *
 * Latching rules, the same in both engines (one socket = one side, stream and component):
 * - the target is first the address from that side's SDP (setTarget); the first packet that
 *   arrives on the socket latches the target onto its real source (symmetric RTP, for NAT);
 * - once latched, packets from other sources are dropped and counted, unless a new SDP from that
 *   side was applied since (re-INVITE), or the latched source has been silent for
 *   RELATCH_SILENCE_MS (a NAT binding that changed);
 * - with a signalling address given, only packets from it or from the SDP address may latch (a
 *   stranger spraying relay ports cannot take a stream over: "RTP bleed");
 * - a null target (c=0.0.0.0 or port 0) holds the socket: nothing is sent to that side (what it
 *   sends, e.g. music on hold, is still relayed);
 * - a packet is dropped when the linked socket has no target yet.
 */
export const RELATCH_SILENCE_MS = 2000;

export interface RelayBackend {
  readonly kind: 'native' | 'node';
  /** Binds a UDP socket on the relay address; rejects with an error whose `code` is e.g. EADDRINUSE. */
  openSocket(port: number): Promise<number>;
  /** The same, bound on this thread at once (engines that can: native); throws like openSocket. */
  openSocketNow?(port: number): number;
  /** Packets arriving on `a` are sent from `b` to b's target, and the other way round. */
  link(a: number, b: number): void;
  /**
   * The SDP target of the side socket `slot` faces; null = hold. `signalIp`: the address that
   * side's SIP comes from, allowed to latch besides the SDP address ('' = any source may latch).
   */
  setTarget(slot: number, target: { ip: string; port: number } | null, signalIp?: string): void;
  /** Packets and bytes that arrived on `slot` and were forwarded. */
  forwarded(slot: number): number;
  forwardedBytes(slot: number): number;
  /** Packets that arrived on `slot` and were dropped (strangers, no target, hold, send failures). */
  dropped(slot: number): number;
  /** Time (nowMs clock) of the last packet accepted on `slot` from its latched source; 0 = none. */
  lastPacketMs(slot: number): number;
  nowMs(): number;
  /** Keeps the socket bound for another call: unlinked, no target, counters zeroed. */
  resetSocket(slot: number): void;
  closeSocket(slot: number): void;
  close(): Promise<void>;
}

export interface RelayLogger {
  warn(event: string, fields?: Record<string, unknown>): void;
  info(event: string, fields?: Record<string, unknown>): void;
  debug(event: string, fields?: Record<string, unknown>): void;
}
