/**
 * A table of per-source state keyed by address text, never holding more than `cap` entries: a
 * flood from any number of (spoofed) sources cannot grow it. When full, a new entry takes the
 * place of the oldest one not used since the eviction hand last passed it (the CLOCK or
 * "second chance" policy): a source that keeps sending (or failing) keeps its entry, while the
 * one-off entries of a spoofed flood, each used once, are the ones that go.
 *
 * Every operation is O(1) amortised: one Map lookup, and for an insertion into a full table a
 * walk of the ring that clears at most one `used` flag per entry before it finds a victim. No
 * Map iteration is involved (deleting from the front of a V8 Map and iterating from it again
 * costs a walk over the holes left behind).
 */
export interface TableEntry {
  /** Set on each use; the eviction hand clears it once and evicts the entry the next time round. */
  used: boolean;
  /** Where in the ring the entry's key is (kept by the table). */
  slot: number;
}

export class BoundedTable<E extends TableEntry> {
  private readonly map = new Map<string, E>();
  private ring: string[] = [];
  private hand = 0;
  /** Entries pushed out to make room, since the table was made. */
  evicted = 0;

  constructor(private cap: number) {
    if (!(cap >= 1)) throw new RangeError('a bounded table holds at least one entry');
  }

  get size(): number {
    return this.map.size;
  }

  get capacity(): number {
    return this.cap;
  }

  get(key: string): E | undefined {
    return this.map.get(key);
  }

  /** Files `entry` under `key` (which must not be in the table), evicting one entry when full. */
  insert(key: string, entry: E): void {
    if (this.ring.length < this.cap) {
      entry.slot = this.ring.length;
      this.ring.push(key);
      this.map.set(key, entry);
      return;
    }
    const ring = this.ring;
    const n = ring.length;
    let slot = this.hand;
    // Bounded: after one full turn every flag is cleared, so at most 2n steps.
    for (;;) {
      slot = this.hand;
      this.hand = slot + 1 === n ? 0 : slot + 1;
      const k = ring[slot]!;
      const e = this.map.get(k);
      if (e === undefined || e.slot !== slot) break; // a free slot (its entry was deleted)
      if (e.used) {
        e.used = false;
        continue;
      }
      this.map.delete(k);
      this.evicted++;
      break;
    }
    entry.slot = slot;
    ring[slot] = key;
    this.map.set(key, entry);
  }

  delete(key: string): boolean {
    // The ring keeps the key: its slot is found free (no entry, or another slot's) when the hand
    // comes by.
    return this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
    this.ring = [];
    this.hand = 0;
  }

  /** A new capacity: the table starts empty (a configuration change; the state is soft). */
  resize(cap: number): void {
    if (!(cap >= 1)) throw new RangeError('a bounded table holds at least one entry');
    this.cap = cap;
    this.clear();
  }

  values(): IterableIterator<E> {
    return this.map.values();
  }

  entries(): IterableIterator<[string, E]> {
    return this.map.entries();
  }
}
