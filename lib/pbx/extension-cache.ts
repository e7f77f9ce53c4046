import type { ExtensionRecord, Store } from '../store/store.js';

/**
 * Extension records kept in memory for authentication, so that a REGISTER costs no database
 * query. Changes made by another process (`minisipserver ext ...` on the same data folder) are
 * noticed through SQLite's data_version, checked at most once per `checkMs`.
 * Only existing extensions are cached: a scanner trying random names cannot fill memory.
 */
export class ExtensionCache {
  private readonly records = new Map<string, ExtensionRecord>();
  private version: number;
  private checkedAt = 0;

  constructor(
    private readonly store: Store,
    private readonly checkMs = 1000,
    private readonly now: () => number = Date.now,
  ) {
    this.version = store.dataVersion();
  }

  get(number: string): ExtensionRecord | undefined {
    const t = this.now();
    if (t - this.checkedAt >= this.checkMs) {
      this.checkedAt = t;
      const v = this.store.dataVersion();
      if (v !== this.version) {
        this.version = v;
        this.records.clear();
      }
    }
    const hit = this.records.get(number);
    if (hit) return hit;
    const rec = this.store.getExtension(number);
    if (rec) this.records.set(number, rec);
    return rec;
  }

  /** Forget everything (after this process itself changed extensions). */
  clear(): void {
    this.records.clear();
  }
}
