/**
 * Coalesces binding writes so that a registration storm costs a few transactions per second:
 * the last write per (aor, contact) wins, and everything pending is written in one transaction
 * every `flushMs`, when `maxPending` keys are waiting, and on close().
 */
import type { BindingRecord, Store } from './store.js';

type PendingWrite = { kind: 'upsert'; binding: BindingRecord } | { kind: 'delete'; aor: string; contact: string };

export interface BindingWriterOptions {
  /** Pending (aor, contact) keys that trigger an immediate flush; bounds memory. Default 20,000. */
  maxPending?: number;
  /** Told about a failed timed flush (an explicit flush() throws instead). Default: console.error. */
  onError?: (err: unknown, lostWrites: number) => void;
}

function keyOf(aor: string, contact: string): string {
  return `${aor}\u0000${contact}`;
}

export class BindingWriter {
  private pending = new Map<string, PendingWrite>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly maxPending: number;
  private readonly onError: (err: unknown, lostWrites: number) => void;

  constructor(
    private readonly store: Store,
    private readonly flushMs = 50,
    opts: BindingWriterOptions = {},
  ) {
    this.maxPending = Math.max(1, opts.maxPending ?? 20_000);
    this.onError =
      opts.onError ??
      ((err, lost) => console.error(`binding writer: flush failed, ${lost} binding writes not saved:`, err));
  }

  /** Writes waiting for the next flush (distinct (aor, contact) keys). */
  get pendingCount(): number {
    return this.pending.size;
  }

  upsert(b: BindingRecord): void {
    this.enqueue(keyOf(b.aor, b.contact), { kind: 'upsert', binding: b });
  }

  remove(aor: string, contact: string): void {
    this.enqueue(keyOf(aor, contact), { kind: 'delete', aor, contact });
  }

  /** Writes everything pending in one transaction now. Throws if the store fails. */
  flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    const upserts: BindingRecord[] = [];
    const deletes: Array<{ aor: string; contact: string }> = [];
    for (const w of batch.values()) {
      if (w.kind === 'upsert') upserts.push(w.binding);
      else deletes.push({ aor: w.aor, contact: w.contact });
    }
    this.store.saveBindings(upserts, deletes);
  }

  /** Flushes what is pending; later writes are ignored. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.flush();
  }

  private enqueue(key: string, write: PendingWrite): void {
    if (this.closed) return;
    // delete + set moves the key to the end, so the write order of a batch follows the last writes
    this.pending.delete(key);
    this.pending.set(key, write);
    if (this.pending.size >= this.maxPending) {
      this.flushReportingErrors();
    } else if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.flushReportingErrors();
      }, this.flushMs);
      this.timer.unref();
    }
  }

  /**
   * Used where no caller can handle an error (timer, a peer's REGISTER). The batch is dropped
   * rather than retried: the registrar's memory still has the bindings, only their persistence
   * across a restart is lost, and retrying could grow the pending map without bound.
   */
  private flushReportingErrors(): void {
    const size = this.pending.size;
    try {
      this.flush();
    } catch (err) {
      this.onError(err, size);
    }
  }
}
