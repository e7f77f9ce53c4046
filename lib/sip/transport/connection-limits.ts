/** Why a new connection is refused. */
export type ConnectionRefusal = 'banned' | 'total' | 'per-source';

export interface ConnectionLimitSettings {
  /** Most connections open at once, all listeners together. */
  maxTotal: number;
  /** Most connections open at once from one source address. */
  maxPerSource: number;
  /** Asked first with the peer's address: false refuses it (a banned source). */
  admit?: (address: string) => boolean;
}

/**
 * The TCP and TLS connections of every listener (both transports, both address families)
 * counted together, in all and per source address. A connection counts from its accept, so
 * connections still in their TLS handshake meet the same limits as established ones.
 */
export class ConnectionLimits {
  private readonly perSource = new Map<string, number>();
  private open = 0;

  constructor(private readonly settings: ConnectionLimitSettings) {}

  get count(): number {
    return this.open;
  }

  /** Counts a new connection from `address`; or, counting nothing, says why it is refused. */
  tryOpen(address: string): ConnectionRefusal | null {
    const { admit, maxTotal, maxPerSource } = this.settings;
    if (admit !== undefined && !admit(address)) return 'banned';
    if (this.open >= maxTotal) return 'total';
    const fromSource = this.perSource.get(address) ?? 0;
    if (fromSource >= maxPerSource) return 'per-source';
    this.perSource.set(address, fromSource + 1);
    this.open++;
    return null;
  }

  /** A connection counted by tryOpen has closed. */
  closed(address: string): void {
    const fromSource = this.perSource.get(address);
    if (fromSource === undefined) return;
    if (fromSource <= 1) this.perSource.delete(address);
    else this.perSource.set(address, fromSource - 1);
    this.open--;
  }
}
