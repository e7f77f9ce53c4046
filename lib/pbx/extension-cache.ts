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
  private changedSinceTaken = false;

  constructor(
    private readonly store: Store,
    private readonly checkMs = 1000,
    private readonly now: () => number = Date.now,
  ) {
    this.version = store.dataVersion();
  }

  get(number: string): ExtensionRecord | undefined {
    this.checkForChanges();
    const hit = this.records.get(number);
    if (hit) return hit;
    const rec = this.store.getExtension(number);
    if (rec) this.records.set(number, rec);
    return rec;
  }

  /**
   * True once after another process changed the database (checked at most once per checkMs):
   * the registrar then drops the bindings of extensions that no longer exist.
   */
  takeChanged(): boolean {
    this.checkForChanges();
    const changed = this.changedSinceTaken;
    this.changedSinceTaken = false;
    return changed;
  }

  /** Whether an extension exists now (not cached: used for the rare check after a change). */
  exists(number: string): boolean {
    return this.get(number) !== undefined;
  }

  private checkForChanges(): void {
    const t = this.now();
    if (t - this.checkedAt < this.checkMs) return;
    this.checkedAt = t;
    const v = this.store.dataVersion();
    if (v !== this.version) {
      this.version = v;
      this.records.clear();
      this.changedSinceTaken = true;
    }
  }

  /** Forget everything (after this process itself changed extensions). */
  clear(): void {
    this.records.clear();
  }
}
