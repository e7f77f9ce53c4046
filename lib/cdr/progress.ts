// The `rows, rows/s, file` line on a terminal's stderr for runs longer than a second.

export class Progress {
  private rows = 0;
  private file = '';
  private readonly startedAt: number;
  private lastShown = 0;
  private shown = false;

  constructor(
    private readonly err: NodeJS.WritableStream,
    private readonly enabled: boolean,
    private readonly clock: () => number = Date.now,
    private readonly delayMs = 1000,
  ) {
    this.startedAt = clock();
  }

  setFile(file: string): void {
    this.file = file;
  }

  addRows(n: number): void {
    this.rows += n;
    if (!this.enabled) return;
    const now = this.clock();
    if (now - this.startedAt < this.delayMs || now - this.lastShown < 250) return;
    this.lastShown = now;
    this.shown = true;
    const rate = Math.round(this.rows / ((now - this.startedAt) / 1000));
    this.err.write(`\r${this.rows} rows, ${rate} rows/s, ${this.file}\x1b[K`);
  }

  /** Clears the line, if one was drawn, before normal output continues. */
  done(): void {
    if (this.shown) this.err.write('\r\x1b[K');
    this.shown = false;
  }
}
