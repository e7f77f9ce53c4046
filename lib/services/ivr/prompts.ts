/**
 * Prompt audio for IVR calls: each file read and decoded once, held in memory in the codec a call
 * uses, up to a byte cap (the least recently used go first). `<voice>x.wav</voice>` is
 * `<prompts>/<language>/x.wav` if that exists, else `<prompts>/x.wav`. A name never leaves the
 * prompts folder, whatever a variable put into it.
 */
import { readFile, stat } from 'node:fs/promises';
import { isAbsolute, join, normalize, sep } from 'node:path';
import { parseWav } from '../../media/endpoint/wav.js';
import { promptToCodec, type G711Codec } from '../../media/endpoint/g711.js';

export interface PromptCacheOptions {
  dir: string;
  language: string;
  /** Total bytes of decoded audio held (default 64 MiB). */
  maxBytes?: number;
  log(level: 'warn', event: string, fields: Record<string, unknown>): void;
}

const MAX_PROMPT_FILE_BYTES = 64 * 1024 * 1024;

export class PromptCache {
  private readonly held = new Map<string, Uint8Array>();
  private readonly loading = new Map<string, Promise<Uint8Array | null>>();
  private generation = 0;
  private bytes = 0;
  private readonly maxBytes: number;

  constructor(private readonly opts: PromptCacheOptions) {
    this.maxBytes = opts.maxBytes ?? 64 * 1024 * 1024;
  }

  /** The prompt's audio in `codec`, or null (missing or unplayable: logged). */
  async get(name: string, codec: G711Codec): Promise<Uint8Array | null> {
    if (!safeName(name)) {
      this.opts.log('warn', 'ivr.prompt_refused', { prompt: name, reason: 'a prompt name must be a relative path inside the prompts folder' });
      return null;
    }
    const key = `${codec}\n${name}`;
    const cached = this.held.get(key);
    if (cached) {
      this.held.delete(key);
      this.held.set(key, cached);
      return cached;
    }
    // Calls that ask for the same prompt while it is being read share that one read.
    let loading = this.loading.get(key);
    if (!loading) {
      const p: Promise<Uint8Array | null> = this.load(name, key, codec).finally(() => {
        if (this.loading.get(key) === p) this.loading.delete(key);
      });
      loading = p;
      this.loading.set(key, p);
    }
    return loading;
  }

  private async load(name: string, key: string, codec: G711Codec): Promise<Uint8Array | null> {
    const generation = this.generation;
    const file = await this.locate(name);
    if (!file) {
      this.opts.log('warn', 'ivr.prompt_missing', { prompt: name, dir: this.opts.dir, language: this.opts.language });
      return null;
    }
    let audio: Uint8Array;
    try {
      const info = await stat(file);
      if (info.size > MAX_PROMPT_FILE_BYTES) throw new Error(`larger than ${MAX_PROMPT_FILE_BYTES} bytes`);
      const wav = parseWav(await readFile(file));
      if ('problem' in wav) throw new Error(wav.problem);
      audio = promptToCodec(wav, codec);
    } catch (err) {
      this.opts.log('warn', 'ivr.prompt_unplayable', { prompt: name, file, error: (err as Error).message });
      return null;
    }
    // Read before a clear(): good for the calls that asked, not kept (the file may have changed).
    if (generation === this.generation) this.hold(key, audio);
    return audio;
  }

  /** Forgets everything (prompt files may have changed). */
  clear(): void {
    this.held.clear();
    this.loading.clear();
    this.generation++;
    this.bytes = 0;
  }

  get heldBytes(): number {
    return this.bytes;
  }

  private hold(key: string, audio: Uint8Array): void {
    if (audio.length > this.maxBytes) return;
    const before = this.held.get(key);
    if (before) {
      this.held.delete(key);
      this.bytes -= before.length;
    }
    this.held.set(key, audio);
    this.bytes += audio.length;
    for (const [k, v] of this.held) {
      if (this.bytes <= this.maxBytes) break;
      this.held.delete(k);
      this.bytes -= v.length;
    }
  }

  private async locate(name: string): Promise<string | null> {
    for (const file of [join(this.opts.dir, this.opts.language, name), join(this.opts.dir, name)]) {
      try {
        if ((await stat(file)).isFile()) return file;
      } catch {
        // not there: try the next place
      }
    }
    return null;
  }
}

function safeName(name: string): boolean {
  if (name === '' || name.includes('\0') || isAbsolute(name)) return false;
  const n = normalize(name);
  return n !== '..' && !n.startsWith(`..${sep}`);
}
