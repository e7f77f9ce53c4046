/**
 * Numbered events with a bounded backlog: ids increase by 1 from 1, listeners are called in
 * order (an event caused inside a listener waits for the one being delivered), a listener that
 * throws is removed, and `since` serves a client that reconnects.
 */
import type { LiveEvent, SequencedEvent } from './types.js';

export class EventLog {
  // Ids 1..newestId; the last `capacity` of them in a ring (slot (id - 1) % capacity).
  private readonly ring: SequencedEvent[] = [];
  private newestId = 0;
  private listeners: ReadonlyArray<(e: SequencedEvent) => void> = [];
  /** Events waiting for delivery while a listener runs (a listener that causes an event). */
  private readonly queue: SequencedEvent[] = [];
  private delivering = false;
  private readonly capacity: number;

  constructor(
    capacity: number,
    private readonly now: () => number,
    private readonly onListenerError?: (err: unknown) => void,
  ) {
    this.capacity = Math.max(1, Math.floor(capacity));
  }

  /** Numbers the event, keeps it in the backlog and hands it to every listener, in order. */
  emit(event: LiveEvent): SequencedEvent {
    const e: SequencedEvent = { id: ++this.newestId, time: this.now(), event };
    this.ring[(e.id - 1) % this.capacity] = e;
    if (this.listeners.length === 0) return e;
    this.queue.push(e);
    if (this.delivering) return e;
    this.delivering = true;
    try {
      for (let i = 0; i < this.queue.length; i++) {
        const next = this.queue[i]!;
        for (const listener of this.listeners) {
          try {
            listener(next);
          } catch (err) {
            this.listeners = this.listeners.filter((l) => l !== listener);
            this.onListenerError?.(err);
          }
        }
      }
    } finally {
      this.queue.length = 0;
      this.delivering = false;
    }
    return e;
  }

  subscribe(listener: (e: SequencedEvent) => void): () => void {
    this.listeners = [...this.listeners, listener];
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }

  /** The id of the newest event (0 before the first). */
  get lastId(): number {
    return this.newestId;
  }

  /** The events after `lastId` still kept, or null when some are gone (or lastId is unknown). */
  since(lastId: number): SequencedEvent[] | null {
    if (!Number.isInteger(lastId) || lastId > this.newestId) return null;
    const oldest = Math.max(1, this.newestId - this.capacity + 1);
    if (lastId < oldest - 1) return null;
    const out: SequencedEvent[] = [];
    for (let id = lastId + 1; id <= this.newestId; id++) out.push(this.ring[(id - 1) % this.capacity]!);
    return out;
  }
}
