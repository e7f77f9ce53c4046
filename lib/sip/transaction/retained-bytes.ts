/**
 * Where messages kept for 64*T1 only to be sent again are stored: the final responses of
 * Completed non-INVITE server transactions for Timer J (32 s over UDP; a busy registrar holds
 * about a million of them), and the ACK an ended call's callee gets again should its 2xx come
 * again.
 *
 * Keeping each message as its own Buffer costs a JS object per transaction and, worse, such a
 * Buffer is usually a slice of Node's shared 8 KiB pool: a single kept slice pins the whole pool
 * chunk, including every other short-lived buffer allocated from it. So the bytes are copied into
 * slabs owned by the layer instead, back to back. A transaction keeps the slab and one small
 * integer (offset and length). Slabs are never reused: the transactions of one slab end at about
 * the same time (they all wait for the same Timer J), and then the garbage collector frees it.
 */

const SLAB_SIZE = 32 * 1024;
/** Larger messages are not copied (the caller keeps them as they are). */
const MAX_COPIED = 8 * 1024;

export class RetainedBytes {
  /** The slab the last successful {@link copy} wrote to. */
  slab: Buffer = Buffer.alloc(0);
  private used = 0;

  /**
   * Copies `data` into the current slab (a new one when it is full) and returns its span there,
   * `offset << 16 | length` (offset < 32768, so always a small non-negative integer), or -1 when
   * `data` is empty or too large to be copied.
   */
  copy(data: Buffer): number {
    const len = data.length;
    if (len === 0 || len > MAX_COPIED) return -1;
    if (this.used + len > this.slab.length) {
      this.slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
      this.used = 0;
    }
    const offset = this.used;
    this.slab.set(data, offset);
    this.used = offset + len;
    return (offset << 16) | len;
  }

  /** The bytes at `span` of `slab` (a view, no copy). */
  static view(slab: Buffer, span: number): Buffer {
    const offset = span >>> 16;
    return slab.subarray(offset, offset + (span & 0xffff));
  }

  /** Forgets the current slab (it is freed once its transactions are gone). */
  reset(): void {
    this.slab = Buffer.alloc(0);
    this.used = 0;
  }
}
