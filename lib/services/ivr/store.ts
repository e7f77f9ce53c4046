/**
 * The IVR-XML files of one folder (config `ivr.dir`), compiled and held in memory (spec ivr-xml.md
 * §5). Every `*.xml` directly in the folder is loaded at start and kept in step with the disk: an
 * fs.watch on the folder reacts within ~100 ms, and a poll of every file's identity (inode, size,
 * mtime, ctime) catches what the watch misses (network and container filesystems lose events).
 *
 * A version with errors is never used: `get()` keeps returning the last good document. Documents
 * are immutable and replaced, never changed, so a call that took a reference keeps running on the
 * version it started with while later calls get the new one.
 *
 * Candidates are `*.xml` (any case) directly in the folder, not hidden (`.name.xml`: editor locks
 * and swap files). Symbolic links are followed; a change to a link's target outside the folder is
 * seen by the poll only. A file is read again when its identity changes, but compiled only when
 * its bytes differ from the last compiled ones (a touch costs a read, not a compile).
 *
 * The compiler is passed in (`compile`), so this file knows nothing of IVR-XML itself.
 */
import { createHash } from 'node:crypto';
import { constants, watch, type FSWatcher, type Stats } from 'node:fs';
import { lstat, open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Finding } from './model.js';

export type IvrStoreLogLevel = 'info' | 'warn' | 'error';

export interface IvrCompileResult<Doc> {
  /** Present only when the file compiled; ignored when `findings` holds an error. */
  document?: Doc;
  findings: Finding[];
}

/** What happened to a file: a new good version, a new version refused (the old one stays), gone. */
export type IvrChange = 'loaded' | 'invalid' | 'removed';

export interface IvrStoreOptions<Doc> {
  /** Absolute path of the folder. It may be missing at start: it is picked up when it appears. */
  dir: string;
  /** Gets the absolute path of the file (for findings and the document) and its bytes. */
  compile(file: string, bytes: Uint8Array): IvrCompileResult<Doc>;
  log(level: IvrStoreLogLevel, event: string, fields: Record<string, unknown>): void;
  /** How often every file is checked, whatever the watch reports. Default 1000. */
  pollMs?: number;
  /** Quiet time after a file's last change before it is read (editors write in chunks). Default 100. */
  debounceMs?: number;
  /** Bigger files are refused. Default 8 MiB. */
  maxFileBytes?: number;
  /** Files beyond this many are refused (the ones already loaded stay). Default 1000. */
  maxFiles?: number;
  /** false: poll only, no fs.watch. Default true. */
  watch?: boolean;
}

interface Entry<Doc> {
  /** Identity of the file when last examined; unchanged = nothing to read. */
  stamp: string | undefined;
  /** sha256 of the bytes last compiled, and their problem (undefined: they were good). */
  digest: string | undefined;
  compiledProblem: string | undefined;
  good: { doc: Doc; version: number } | undefined;
  /** Why the file as it is now on disk is not what get() serves. */
  problem: string | undefined;
}

type Probe = { kind: 'gone' } | { kind: 'file'; stamp: string } | { kind: 'refused'; stamp: string | undefined; reason: string };
type Read = { kind: 'gone' } | { kind: 'bytes'; stamp: string; bytes: Uint8Array } | { kind: 'refused'; stamp: string | undefined; reason: string };

const MIB = 1024 * 1024;
const READ_CHUNK = 64 * 1024;
/** Files examined at once: keeps the libuv thread pool free for others (DNS, sqlite). */
const PARALLEL = 8;

/** A name the store considers: `*.xml` (any case) directly in the folder, not hidden (editor locks, swap files). */
export function isIvrFileName(name: string): boolean {
  return name.toLowerCase().endsWith('.xml') && !name.startsWith('.') && !name.includes('/') && !name.includes('\\');
}

export class IvrStore<Doc> {
  readonly dir: string;
  private readonly compile: IvrStoreOptions<Doc>['compile'];
  private readonly log: IvrStoreOptions<Doc>['log'];
  private readonly pollMs: number;
  private readonly debounceMs: number;
  private readonly maxFileBytes: number;
  private readonly maxFiles: number;
  private readonly useWatch: boolean;

  private readonly entries = new Map<string, Entry<Doc>>();
  /** Files refused because of maxFiles. */
  private readonly overflow = new Set<string>();
  private readonly listeners = new Set<(fileName: string, change: IvrChange) => void>();
  private readonly pending = new Map<string, { timer: NodeJS.Timeout; since: number }>();
  /** Per file: the check running now, and whether another must follow it. */
  private readonly running = new Map<string, Promise<void>>();
  private readonly rerun = new Set<string>();
  private scanning: Promise<void> | undefined;
  private rescan = false;
  private pollTimer: NodeJS.Timeout | undefined;
  private watcher: FSWatcher | undefined;
  /** Inode of the folder being watched, or whose watch failed (not retried until the folder is replaced). */
  private watchedIno: number | undefined;
  private dirState = '';
  private started = false;
  private closed = false;
  private counters = { reads: 0, compiles: 0 };

  constructor(opts: IvrStoreOptions<Doc>) {
    this.dir = opts.dir;
    this.compile = opts.compile;
    this.log = opts.log;
    this.pollMs = Math.max(10, opts.pollMs ?? 1000);
    this.debounceMs = Math.max(0, opts.debounceMs ?? 100);
    this.maxFileBytes = Math.max(1, opts.maxFileBytes ?? 8 * MIB);
    this.maxFiles = Math.max(1, opts.maxFiles ?? 1000);
    this.useWatch = opts.watch ?? true;
  }

  /** Loads every file (resolves when all are compiled), then watches the folder. */
  async start(): Promise<void> {
    if (this.closed) throw new Error('IvrStore: start() after close()');
    if (this.started) return;
    this.started = true;
    await this.scan(true);
    this.schedulePoll();
  }

  /** The last good version of `fileName` (relative to the folder, e.g. "auto_attendant.xml"). */
  get(fileName: string): Doc | undefined {
    return this.entries.get(fileName)?.good?.doc;
  }

  /**
   * Why `fileName` is not served as it is on disk ("FILE:LINE:COL: message" for a compile error),
   * or undefined when its current content is what get() returns. Also set while an older good
   * version is still served after a broken edit.
   */
  problem(fileName: string): string | undefined {
    const path = join(this.dir, fileName);
    if (!isIvrFileName(fileName)) return `${fileName}: not an IVR file name (a *.xml file directly in ${this.dir})`;
    if (this.overflow.has(fileName)) return `${path}: not loaded: more than ${this.maxFiles} IVR files in ${this.dir}`;
    const entry = this.entries.get(fileName);
    if (entry?.problem !== undefined) return entry.problem;
    if (entry?.good) return undefined;
    if (entry) return `${path}: not read yet`;
    if (this.dirState === 'missing') return `${path}: the folder ${this.dir} does not exist`;
    return `${path}: no such file`;
  }

  /** Names of the files that have a good version, sorted. */
  files(): string[] {
    return [...this.entries].filter(([, e]) => e.good).map(([name]) => name).sort();
  }

  /** Called after a file changed; returns a function that removes the listener. */
  onChange(listener: (fileName: string, change: IvrChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Files read to the end and compiler runs, since start (for status pages and tests). */
  stats(): { reads: number; compiles: number } {
    return { ...this.counters };
  }

  /** Stops watching and polling; resolves when no file operation of the store is left running. */
  async close(): Promise<void> {
    this.closed = true;
    this.stopWatch();
    clearTimeout(this.pollTimer);
    this.pollTimer = undefined;
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    while (this.scanning || this.running.size > 0) {
      await Promise.allSettled([this.scanning, ...this.running.values()]);
    }
  }

  private schedulePoll(): void {
    if (this.closed) return;
    this.pollTimer = setTimeout(() => {
      this.pollTimer = undefined;
      void this.scan(false).finally(() => this.schedulePoll());
    }, this.pollMs);
    this.pollTimer.unref();
  }

  /** Lists the folder and checks every file: at once when `now`, else after the debounce. */
  private scan(now: boolean): Promise<void> {
    if (this.scanning) {
      this.rescan = true;
      return this.scanning;
    }
    const run = async (): Promise<void> => {
      try {
        do {
          this.rescan = false;
          await this.scanOnce(now);
        } while (this.rescan && !this.closed);
      } catch (err) {
        this.log('error', 'ivr.internal_error', { dir: this.dir, error: errorText(err) });
      } finally {
        this.scanning = undefined;
      }
    };
    this.scanning = run();
    return this.scanning;
  }

  private async scanOnce(now: boolean): Promise<void> {
    const names = await this.listDir();
    if (names === undefined || this.closed) return;
    await this.ensureWatch();
    const listed = new Set(names);
    const check = async (name: string): Promise<void> => {
      if (now) return this.check(name);
      const probe = await probeFile(join(this.dir, name));
      const entry = this.entries.get(name);
      const stamp = probe.kind === 'gone' ? undefined : probe.stamp;
      // A refusal without a stamp (a transient error) is retried on every poll.
      if (!entry || entry.stamp === undefined || entry.stamp !== stamp) this.checkSoon(name);
    };
    const gone = [...this.entries.keys()].filter((name) => !listed.has(name));
    for (const name of this.overflow) if (!listed.has(name)) this.overflow.delete(name);
    // Admitted here, in name order, so that maxFiles takes the same files on every start.
    for (const name of names) if (!this.entries.has(name)) this.admit(name);
    const known = names.filter((n) => this.entries.has(n));
    await eachLimited([...gone, ...known], PARALLEL, check);
  }

  /** The candidate names in the folder, sorted; undefined when it cannot be listed (logged once). */
  private async listDir(): Promise<string[] | undefined> {
    let names: string[];
    try {
      const st = await stat(this.dir);
      if (!st.isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
      names = await readdir(this.dir);
    } catch (err) {
      const code = errorCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        this.setDirState('missing', 'warn', 'ivr.dir_missing', { dir: this.dir, error: code });
        this.stopWatch();
        // The folder is gone, so are its files.
        for (const name of [...this.entries.keys()]) this.remove(name);
        this.overflow.clear();
      } else {
        // Unreadable (permissions): what was loaded keeps serving.
        this.setDirState(`unreadable:${code}`, 'error', 'ivr.dir_unreadable', { dir: this.dir, error: errorText(err) });
      }
      return undefined;
    }
    if (this.dirState !== '' && this.dirState !== 'ok') this.log('info', 'ivr.dir_found', { dir: this.dir });
    this.dirState = 'ok';
    return names.filter(isIvrFileName).sort();
  }

  private setDirState(state: string, level: IvrStoreLogLevel, event: string, fields: Record<string, unknown>): void {
    if (this.dirState === state) return;
    this.dirState = state;
    this.log(level, event, fields);
  }

  private async ensureWatch(): Promise<void> {
    if (!this.useWatch || this.closed) return;
    const ino = await stat(this.dir).then(
      (st) => st.ino,
      () => undefined,
    );
    // Gone again (the next poll sees it), or already watched (or failed) on this very folder.
    if (ino === undefined || ino === this.watchedIno || this.closed) return;
    // The folder was replaced (or is new): a watch on the old inode would report nothing.
    this.stopWatch();
    this.watchedIno = ino;
    try {
      const w = watch(this.dir, { persistent: false }, (_event, name) => this.onWatchEvent(name));
      w.on('error', (err) => this.watchFailed(w, err));
      this.watcher = w;
    } catch (err) {
      this.log('warn', 'ivr.watch_failed', { dir: this.dir, error: errorText(err), fallback: 'poll' });
    }
  }

  private onWatchEvent(name: string | Buffer | null): void {
    if (this.closed) return;
    const fileName = typeof name === 'string' ? name : name?.toString();
    // Some platforms report no name: look at everything.
    if (fileName === undefined) return void this.scan(false);
    if (isIvrFileName(fileName)) this.checkSoon(fileName);
  }

  private watchFailed(w: FSWatcher, err: unknown): void {
    // watchedIno stays: polling only, until the folder is replaced.
    if (this.watcher === w) this.stopWatch(false);
    this.log('warn', 'ivr.watch_failed', { dir: this.dir, error: errorText(err), fallback: 'poll' });
  }

  private stopWatch(forget = true): void {
    this.watcher?.close();
    this.watcher = undefined;
    if (forget) this.watchedIno = undefined;
  }

  /**
   * Checks `name` once it has been quiet for debounceMs; a file that never stops changing is still
   * checked after pollMs.
   */
  private checkSoon(name: string): void {
    if (this.closed) return;
    const now = Date.now();
    const old = this.pending.get(name);
    if (old && now - old.since >= this.pollMs) return;
    clearTimeout(old?.timer);
    const timer = setTimeout(() => {
      this.pending.delete(name);
      void this.check(name);
    }, this.debounceMs);
    timer.unref();
    this.pending.set(name, { timer, since: old?.since ?? now });
  }

  /** Brings `name` up to date; checks of one file never overlap (a second one follows the first). */
  private check(name: string): Promise<void> {
    const current = this.running.get(name);
    if (current) {
      this.rerun.add(name);
      return current;
    }
    const run = async (): Promise<void> => {
      try {
        do {
          this.rerun.delete(name);
          await this.refresh(name);
        } while (this.rerun.has(name) && !this.closed);
      } catch (err) {
        this.log('error', 'ivr.internal_error', { file: join(this.dir, name), error: errorText(err) });
      } finally {
        this.running.delete(name);
        this.rerun.delete(name);
      }
    };
    const p = run();
    this.running.set(name, p);
    return p;
  }

  private async refresh(name: string): Promise<void> {
    const path = join(this.dir, name);
    const probe = await probeFile(path);
    if (probe.kind === 'gone') return this.remove(name);
    const entry = this.entries.get(name) ?? (this.admit(name) ? this.entries.get(name) : undefined);
    if (!entry) return;
    if (probe.stamp !== undefined && probe.stamp === entry.stamp) return;
    entry.stamp = probe.stamp;
    if (probe.kind === 'refused') return this.refuse(name, entry, probe.reason);

    const read = await readBounded(path, this.maxFileBytes);
    if (read.kind === 'gone') return this.remove(name);
    entry.stamp = read.stamp;
    if (read.kind === 'refused') return this.refuse(name, entry, read.reason);
    this.counters.reads++;
    const digest = createHash('sha256').update(read.bytes).digest('hex');
    if (digest === entry.digest) {
      // Touched or rewritten with the same content: nothing to compile, nothing to log.
      entry.problem = entry.compiledProblem;
      return;
    }
    entry.digest = digest;
    this.compileInto(name, path, entry, read.bytes);
  }

  /** Makes room for `name` (an entry with nothing loaded yet) unless maxFiles are there already. */
  private admit(name: string): boolean {
    if (this.entries.has(name)) return true;
    if (this.entries.size < this.maxFiles) {
      this.overflow.delete(name);
      this.entries.set(name, { stamp: undefined, digest: undefined, compiledProblem: undefined, good: undefined, problem: undefined });
      return true;
    }
    if (this.overflow.has(name)) return false;
    if (this.overflow.size === 0) this.log('warn', 'ivr.too_many_files', { dir: this.dir, max: this.maxFiles, refused: name });
    this.overflow.add(name);
    return false;
  }

  private compileInto(name: string, path: string, entry: Entry<Doc>, bytes: Uint8Array): void {
    let result: IvrCompileResult<Doc>;
    try {
      this.counters.compiles++;
      result = this.compile(path, bytes);
    } catch (err) {
      entry.compiledProblem = entry.problem = `${path}: the compiler failed: ${errorText(err)}`;
      this.log('error', 'ivr.compile_failed', { file: path, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
      this.notify(name, 'invalid');
      return;
    }
    const errors = result.findings.filter((f) => f.severity === 'error');
    if (errors.length > 0 || result.document === undefined) {
      const first = errors[0];
      entry.compiledProblem = entry.problem = first ? formatFinding(first) : `${path}: the compiler returned no document`;
      this.log('warn', 'ivr.file_invalid', {
        file: path,
        line: first?.line,
        col: first?.col,
        message: first?.message ?? 'no document',
        errors: errors.length,
        keptVersion: entry.good?.version,
      });
      this.notify(name, 'invalid');
      return;
    }
    const warnings = result.findings.filter((f) => f.severity !== 'error');
    const version = (entry.good?.version ?? 0) + 1;
    entry.good = { doc: result.document, version };
    entry.compiledProblem = entry.problem = undefined;
    this.log('info', 'ivr.file_loaded', {
      file: path,
      version,
      warnings: warnings.length,
      ...(warnings[0] ? { warning: formatFinding(warnings[0]) } : {}),
    });
    this.notify(name, 'loaded');
  }

  /** The file as it is cannot be read; a good version, if any, keeps serving. Logged once per reason. */
  private refuse(name: string, entry: Entry<Doc>, reason: string): void {
    const problem = `${join(this.dir, name)}: ${reason}`;
    if (entry.problem === problem) return;
    entry.problem = problem;
    this.log('warn', 'ivr.file_refused', { file: join(this.dir, name), reason, keptVersion: entry.good?.version });
    this.notify(name, 'invalid');
  }

  private remove(name: string): void {
    this.overflow.delete(name);
    const entry = this.entries.get(name);
    if (!entry) return;
    this.entries.delete(name);
    // One that vanished before it was ever read was never announced either.
    if (!entry.good && entry.problem === undefined) return;
    this.log('info', 'ivr.file_removed', { file: join(this.dir, name) });
    this.notify(name, 'removed');
  }

  private notify(name: string, change: IvrChange): void {
    for (const listener of this.listeners) {
      try {
        listener(name, change);
      } catch (err) {
        this.log('error', 'ivr.listener_failed', { file: join(this.dir, name), error: errorText(err) });
      }
    }
  }
}

/** What the path is now, following symbolic links. */
async function probeFile(path: string): Promise<Probe> {
  let st: Stats;
  try {
    st = await stat(path);
  } catch (err) {
    const code = errorCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') {
      // The name may still be there as a link to nothing.
      const link = await lstat(path).catch(() => undefined);
      if (link?.isSymbolicLink()) {
        return { kind: 'refused', stamp: stampOf(link), reason: code === 'ELOOP' ? 'symbolic link loop' : 'symbolic link to nothing' };
      }
      return { kind: 'gone' };
    }
    return { kind: 'refused', stamp: undefined, reason: `cannot read: ${errorText(err)}` };
  }
  if (st.isFile()) return { kind: 'file', stamp: stampOf(st) };
  return { kind: 'refused', stamp: stampOf(st), reason: st.isDirectory() ? 'is a directory, not a file' : 'not a regular file' };
}

/** Reads at most maxBytes in chunks (never one long blocking read); bigger is refused. */
async function readBounded(path: string, maxBytes: number): Promise<Read> {
  let handle;
  try {
    // O_NONBLOCK: a FIFO put in the folder must not hold a pool thread forever (no effect on files).
    handle = await open(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return { kind: 'gone' };
    return { kind: 'refused', stamp: undefined, reason: `cannot read: ${errorText(err)}` };
  }
  try {
    const st = await handle.stat();
    const stamp = stampOf(st);
    if (!st.isFile()) return { kind: 'refused', stamp, reason: 'not a regular file' };
    const tooBig = (size: number): Read => ({ kind: 'refused', stamp, reason: `too big: ${size} bytes (limit ${maxBytes})` });
    if (st.size > maxBytes) return tooBig(st.size);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(READ_CHUNK, st.size + 1));
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, total);
      if (bytesRead === 0) break;
      chunks.push(chunk.subarray(0, bytesRead));
      total += bytesRead;
      // It grew while being read.
      if (total > maxBytes) return tooBig(total);
    }
    return { kind: 'bytes', stamp, bytes: Buffer.concat(chunks, total) };
  } catch (err) {
    return { kind: 'refused', stamp: undefined, reason: `cannot read: ${errorText(err)}` };
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/** ctime too: it changes on every write even where mtime is coarse or was set back. */
function stampOf(st: Stats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.mode}`;
}

function formatFinding(f: Finding): string {
  return `${f.file}:${f.line}:${f.col}: ${f.message}`;
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
