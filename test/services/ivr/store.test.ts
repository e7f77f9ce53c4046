import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createHook } from 'node:async_hooks';
import { join } from 'node:path';
import { IvrStore, type IvrChange, type IvrStoreOptions } from '../../../lib/services/ivr/store.js';
import type { Finding } from '../../../lib/services/ivr/model.js';
import { keepAlive, waitFor } from '../../helpers/keep-alive.js';

interface Doc {
  readonly file: string;
  readonly text: string;
}

interface LogLine {
  level: string;
  event: string;
  fields: Record<string, unknown>;
}

/**
 * Stands in for the IVR-XML compiler: a line "bad:LINE:COL" is an error there, "warn:LINE:COL" a
 * warning, "throw" makes it throw; anything else compiles to a document holding the text.
 */
function textCompiler(): { compile: IvrStoreOptions<Doc>['compile']; calls: string[] } {
  const calls: string[] = [];
  const compile = (file: string, bytes: Uint8Array): { document?: Doc; findings: Finding[] } => {
    calls.push(file);
    const text = Buffer.from(bytes).toString('utf8');
    if (text === 'throw') throw new Error('compiler bug');
    const findings: Finding[] = [];
    for (const line of text.split('\n')) {
      const m = /^(bad|warn):(\d+):(\d+)$/.exec(line);
      if (m) findings.push({ file, line: Number(m[2]), col: Number(m[3]), severity: m[1] === 'bad' ? 'error' : 'warning', message: `${m[1]} here` });
    }
    if (findings.some((f) => f.severity === 'error')) return { findings };
    return { document: Object.freeze({ file, text }), findings };
  };
  return { compile, calls };
}

interface Setup {
  dir: string;
  store: IvrStore<Doc>;
  calls: string[];
  logs: LogLine[];
  changes: Array<[string, IvrChange]>;
  events(event: string): LogLine[];
  start(): Promise<void>;
}

/** A store on a fresh temp folder holding `files`; closed and removed after the test. */
function setup(t: TestContext, files: Record<string, string> = {}, opts: Partial<IvrStoreOptions<Doc>> & { subdir?: string } = {}): Setup {
  const root = mkdtempSync(join(tmpdir(), 'mss-ivr-store-'));
  const dir = opts.subdir ? join(root, opts.subdir) : root;
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const { compile, calls } = textCompiler();
  const logs: LogLine[] = [];
  const store = new IvrStore<Doc>({ dir, compile, log: (level, event, fields) => logs.push({ level, event, fields }), ...opts });
  const changes: Array<[string, IvrChange]> = [];
  store.onChange((name, change) => changes.push([name, change]));
  t.after(async () => {
    await store.close();
    rmSync(root, { recursive: true, force: true });
  });
  return {
    dir,
    store,
    calls,
    logs,
    changes,
    events: (event) => logs.filter((l) => l.event === event),
    start: () => keepAlive(store.start(), 'store.start()', 20_000),
  };
}

function textOf(s: Setup, name: string): string | undefined {
  return s.store.get(name)?.text;
}

test('loads every *.xml at start: good files served, broken ones absent with the reason', async (t) => {
  const s = setup(t, {
    'a.xml': 'good',
    'b.xml': 'x\nbad:3:7\nbad:9:1',
    'c.xml': 'warn:2:5',
    'Upper.XML': 'upper',
    'notes.txt': 'good',
    '.a.xml.swp': 'good',
  });
  await s.start();

  assert.deepEqual(s.store.files(), ['Upper.XML', 'a.xml', 'c.xml']);
  assert.equal(textOf(s, 'a.xml'), 'good');
  assert.equal(s.store.problem('a.xml'), undefined);
  assert.equal(s.store.get('b.xml'), undefined);
  assert.equal(s.store.problem('b.xml'), `${join(s.dir, 'b.xml')}:3:7: bad here`);
  assert.match(s.store.problem('nope.xml') ?? '', /nope\.xml: no such file$/);
  assert.match(s.store.problem('notes.txt') ?? '', /not an IVR file name/);
  // Files that are not candidates are never read.
  assert.deepEqual([...s.calls].sort(), ['Upper.XML', 'a.xml', 'b.xml', 'c.xml'].map((n) => join(s.dir, n)).sort());

  const invalid = s.events('ivr.file_invalid');
  assert.equal(invalid.length, 1);
  assert.equal(invalid[0]!.level, 'warn');
  assert.deepEqual(invalid[0]!.fields, { file: join(s.dir, 'b.xml'), line: 3, col: 7, message: 'bad here', errors: 2, keptVersion: undefined });
  const loaded = s.events('ivr.file_loaded').map((l) => l.fields);
  assert.equal(loaded.length, 3);
  // Warnings do not block loading, and are named.
  assert.deepEqual(
    loaded.find((f) => f.file === join(s.dir, 'c.xml')),
    { file: join(s.dir, 'c.xml'), version: 1, warnings: 1, warning: `${join(s.dir, 'c.xml')}:2:5: warn here` },
  );
});

test('reloads a file written in place; a reference taken before keeps the old version', async (t) => {
  // No poll within the test: the watch alone must see it.
  const s = setup(t, { 'a.xml': 'v1' }, { pollMs: 60_000 });
  await s.start();
  const running = s.store.get('a.xml');
  assert.equal(running?.text, 'v1');

  writeFileSync(join(s.dir, 'a.xml'), 'v2');
  await waitFor(() => textOf(s, 'a.xml') === 'v2', 'a.xml reloaded after an in-place write');

  assert.equal(running?.text, 'v1');
  assert.notEqual(s.store.get('a.xml'), running);
  assert.deepEqual(s.events('ivr.file_loaded').at(-1)?.fields, { file: join(s.dir, 'a.xml'), version: 2, warnings: 0 });
  assert.deepEqual(s.changes, [['a.xml', 'loaded'], ['a.xml', 'loaded']]);
  assert.equal(s.calls.length, 2);
});

test('reloads a file replaced by rename, the way editors save', async (t) => {
  const s = setup(t, { 'menu.xml': 'v1' }, { pollMs: 60_000 });
  await s.start();

  const temp = join(s.dir, 'menu.xml.tmp~');
  writeFileSync(temp, 'v2');
  renameSync(temp, join(s.dir, 'menu.xml'));
  await waitFor(() => textOf(s, 'menu.xml') === 'v2', 'menu.xml reloaded after rename-over');

  // The temporary file is no candidate: only menu.xml was compiled, once per version.
  assert.deepEqual(s.calls, [join(s.dir, 'menu.xml'), join(s.dir, 'menu.xml')]);
  assert.deepEqual(s.store.files(), ['menu.xml']);
  assert.equal(s.events('ivr.file_removed').length, 0);
});

test('a broken edit keeps the last good version and logs one line; the fix is loaded', async (t) => {
  const s = setup(t, { 'a.xml': 'v1' });
  await s.start();
  const v1 = s.store.get('a.xml');
  const path = join(s.dir, 'a.xml');

  writeFileSync(path, 'oops\n\n\nbad:4:2');
  await waitFor(() => s.store.problem('a.xml') !== undefined, 'the broken edit to be seen');
  assert.equal(s.store.problem('a.xml'), `${path}:4:2: bad here`);
  assert.equal(s.store.get('a.xml'), v1);
  assert.deepEqual(s.store.files(), ['a.xml']);
  const invalid = s.events('ivr.file_invalid');
  assert.equal(invalid.length, 1);
  assert.deepEqual(invalid[0]!.fields, { file: path, line: 4, col: 2, message: 'bad here', errors: 1, keptVersion: 1 });

  // The same broken content written again is not compiled or logged again.
  const reads = s.store.stats().reads;
  writeFileSync(path, 'oops\n\n\nbad:4:2');
  await waitFor(() => s.store.stats().reads > reads, 'the rewrite to be read');
  assert.equal(s.events('ivr.file_invalid').length, 1);
  assert.equal(s.calls.length, 2);

  writeFileSync(path, 'v2 fixed');
  await waitFor(() => textOf(s, 'a.xml') === 'v2 fixed', 'the fix to load');
  assert.equal(s.store.problem('a.xml'), undefined);
  assert.deepEqual(s.events('ivr.file_loaded').at(-1)?.fields, { file: path, version: 2, warnings: 0 });
  assert.deepEqual(s.changes, [['a.xml', 'loaded'], ['a.xml', 'invalid'], ['a.xml', 'loaded']]);
});

test('a deleted file is removed', async (t) => {
  const s = setup(t, { 'a.xml': 'v1', 'b.xml': 'v1' }, { pollMs: 60_000 });
  await s.start();

  unlinkSync(join(s.dir, 'a.xml'));
  await waitFor(() => s.store.get('a.xml') === undefined, 'a.xml to be removed');
  assert.deepEqual(s.store.files(), ['b.xml']);
  assert.match(s.store.problem('a.xml') ?? '', /no such file/);
  assert.deepEqual(s.events('ivr.file_removed').map((l) => l.fields), [{ file: join(s.dir, 'a.xml') }]);
  assert.deepEqual(s.changes.at(-1), ['a.xml', 'removed']);
});

test('a new file is loaded', async (t) => {
  const s = setup(t, { 'a.xml': 'v1' }, { pollMs: 60_000 });
  await s.start();

  writeFileSync(join(s.dir, 'new.xml'), 'hello');
  await waitFor(() => textOf(s, 'new.xml') === 'hello', 'new.xml to load');
  assert.deepEqual(s.store.files(), ['a.xml', 'new.xml']);
  assert.deepEqual(s.changes.at(-1), ['new.xml', 'loaded']);
});

test('500 files load, and a change to one recompiles only that one', async (t) => {
  const files: Record<string, string> = {};
  for (let i = 0; i < 500; i++) files[`f${String(i).padStart(3, '0')}.xml`] = `file ${i}`;
  const s = setup(t, files);
  await s.start();

  assert.equal(s.store.files().length, 500);
  assert.equal(s.calls.length, 500);
  assert.equal(textOf(s, 'f499.xml'), 'file 499');

  writeFileSync(join(s.dir, 'f123.xml'), 'changed');
  await waitFor(() => textOf(s, 'f123.xml') === 'changed', 'f123.xml to reload');
  assert.equal(s.calls.length, 501);
});

test('a rewrite with the same content, or a touch, is read but not recompiled', async (t) => {
  const s = setup(t, { 'a.xml': 'v1' });
  await s.start();
  const doc = s.store.get('a.xml');
  const path = join(s.dir, 'a.xml');
  const { mtime } = statSync(path);
  const logged = s.logs.length;

  // Same content, mtime set back: only ctime tells it was written.
  let reads = s.store.stats().reads;
  writeFileSync(path, 'v1');
  utimesSync(path, mtime, mtime);
  await waitFor(() => s.store.stats().reads > reads, 'the rewrite to be read');
  assert.equal(s.calls.length, 1);
  assert.equal(s.store.get('a.xml'), doc);

  // touch: new mtime, same content.
  reads = s.store.stats().reads;
  utimesSync(path, new Date(), new Date(Date.now() + 5000));
  await waitFor(() => s.store.stats().reads > reads, 'the touch to be read');
  assert.equal(s.calls.length, 1);
  assert.equal(s.store.get('a.xml'), doc);
  assert.equal(s.logs.length, logged);
  assert.deepEqual(s.store.stats(), { reads: reads + 1, compiles: 1 });
});

test('a missing folder is not fatal; it is picked up when it appears, and emptied when it goes', async (t) => {
  const s = setup(t, {}, { subdir: 'ivr', pollMs: 200 });
  await s.start();
  assert.deepEqual(s.store.files(), []);
  assert.deepEqual(s.events('ivr.dir_missing').map((l) => l.level), ['warn']);
  assert.match(s.store.problem('a.xml') ?? '', /the folder .*ivr does not exist/);

  mkdirSync(s.dir);
  writeFileSync(join(s.dir, 'a.xml'), 'v1');
  await waitFor(() => textOf(s, 'a.xml') === 'v1', 'a.xml in the new folder to load');
  // Missing for several polls, logged once.
  assert.equal(s.events('ivr.dir_missing').length, 1);
  assert.equal(s.events('ivr.dir_found').length, 1);

  // The watch follows the new folder too.
  writeFileSync(join(s.dir, 'a.xml'), 'v2');
  await waitFor(() => textOf(s, 'a.xml') === 'v2', 'a.xml to reload');

  rmSync(s.dir, { recursive: true });
  await waitFor(() => s.events('ivr.dir_missing').length === 2, 'the deleted folder to be noticed');
  assert.deepEqual(s.store.files(), []);
  assert.equal(s.events('ivr.file_removed').length, 1);

  mkdirSync(s.dir);
  writeFileSync(join(s.dir, 'b.xml'), 'again');
  await waitFor(() => textOf(s, 'b.xml') === 'again', 'b.xml in the recreated folder to load');
});

test('polling alone picks up a change, a rename-over and a deletion within 2 s', async (t) => {
  const s = setup(t, { 'a.xml': 'v1', 'b.xml': 'v1' }, { watch: false });
  await s.start();

  writeFileSync(join(s.dir, 'a.xml'), 'v2');
  await waitFor(() => textOf(s, 'a.xml') === 'v2', 'a.xml to reload by polling', 2000);

  writeFileSync(join(s.dir, 'tmp'), 'v3');
  renameSync(join(s.dir, 'tmp'), join(s.dir, 'a.xml'));
  await waitFor(() => textOf(s, 'a.xml') === 'v3', 'a.xml to reload after rename-over by polling', 2000);

  unlinkSync(join(s.dir, 'b.xml'));
  await waitFor(() => s.store.get('b.xml') === undefined, 'b.xml to be removed by polling', 2000);
  assert.deepEqual(s.store.files(), ['a.xml']);
});

test('a file written in a burst of chunks is compiled once, after the last chunk', async (t) => {
  const s = setup(t, { 'a.xml': 'v1' }, { debounceMs: 300 });
  await s.start();
  const path = join(s.dir, 'a.xml');

  // The first chunk alone fails to compile, the later partial states compile to other texts:
  // reading any of them would show in the compiler's calls or the log.
  writeFileSync(path, 'bad:1:1');
  for (const chunk of ['x', '\n', 'tail']) {
    await new Promise((r) => setTimeout(r, 5));
    appendFileSync(path, chunk);
  }
  await waitFor(() => textOf(s, 'a.xml') === 'bad:1:1x\ntail', 'a.xml to reload');
  assert.equal(s.calls.length, 2);
  assert.equal(s.events('ivr.file_invalid').length, 0);
});

test('refuses what it cannot use, logged once each, and never crashes', async (t) => {
  const s = setup(t, { 'a.xml': 'good', 'big.xml': 'x'.repeat(65), 'boom.xml': 'throw' }, { maxFileBytes: 64, watch: false, pollMs: 50 });
  mkdirSync(join(s.dir, 'dir.xml'));
  symlinkSync(join(s.dir, 'nowhere'), join(s.dir, 'dangling.xml'));
  symlinkSync(join(s.dir, 'a.xml'), join(s.dir, 'link.xml'));
  const root = process.getuid?.() === 0;
  if (!root) {
    writeFileSync(join(s.dir, 'secret.xml'), 'good');
    chmodSync(join(s.dir, 'secret.xml'), 0);
  }
  await s.start();

  // Symbolic links are followed.
  assert.deepEqual(s.store.files(), ['a.xml', 'link.xml']);
  assert.equal(textOf(s, 'link.xml'), 'good');
  assert.match(s.store.problem('dir.xml') ?? '', /dir\.xml: is a directory/);
  assert.match(s.store.problem('big.xml') ?? '', /big\.xml: too big: 65 bytes \(limit 64\)/);
  assert.match(s.store.problem('dangling.xml') ?? '', /dangling\.xml: symbolic link to nothing/);
  assert.match(s.store.problem('boom.xml') ?? '', /boom\.xml: the compiler failed: compiler bug/);
  assert.equal(s.events('ivr.compile_failed').length, 1);
  if (!root) assert.match(s.store.problem('secret.xml') ?? '', /secret\.xml: cannot read: .*EACCES/);
  const refused = () => s.events('ivr.file_refused').map((l) => l.fields.file as string).sort();
  const expected = ['big.xml', 'dangling.xml', 'dir.xml', ...(root ? [] : ['secret.xml'])].map((n) => join(s.dir, n));
  assert.deepEqual(refused(), expected);

  // Several polls later (a change seen by polling proves one ran), still one line each.
  writeFileSync(join(s.dir, 'a.xml'), 'good 2');
  await waitFor(() => textOf(s, 'a.xml') === 'good 2', 'a.xml to reload');
  const polled = s.store.stats().reads;
  writeFileSync(join(s.dir, 'a.xml'), 'good 3');
  await waitFor(() => s.store.stats().reads > polled, 'another poll');
  assert.deepEqual(refused(), expected);

  // Fixed files load.
  writeFileSync(join(s.dir, 'big.xml'), 'small');
  await waitFor(() => textOf(s, 'big.xml') === 'small', 'big.xml to load once small');
  assert.equal(s.store.problem('big.xml'), undefined);
});

test('files beyond maxFiles are refused; one is taken in when room is made', async (t) => {
  const s = setup(t, { 'a.xml': 'a', 'b.xml': 'b', 'c.xml': 'c', 'd.xml': 'd', 'e.xml': 'e' }, { maxFiles: 3 });
  await s.start();

  assert.deepEqual(s.store.files(), ['a.xml', 'b.xml', 'c.xml']);
  assert.match(s.store.problem('d.xml') ?? '', /not loaded: more than 3 IVR files/);
  assert.equal(s.events('ivr.too_many_files').length, 1);

  unlinkSync(join(s.dir, 'a.xml'));
  await waitFor(() => s.store.files().length === 3 && s.store.get('a.xml') === undefined, 'd.xml to take the place of a.xml', 5000);
  assert.deepEqual(s.store.files(), ['b.xml', 'c.xml', 'd.xml']);
  assert.equal(s.store.problem('d.xml'), undefined);
});

test('close() stops the watch and the poll and leaves nothing running', async (t) => {
  // The store's watch and timers are unref'd, so getActiveResourcesInfo() would not list them:
  // follow every watch handle and timer created while the store runs until it is destroyed.
  const live = new Map<number, string>();
  let recording = true;
  const hook = createHook({
    init(id, type) {
      if (recording && (type === 'FSEVENTWRAP' || type === 'Timeout')) live.set(id, type);
    },
    destroy(id) {
      live.delete(id);
    },
  });
  const s = setup(t, { 'a.xml': 'v1' }, { pollMs: 20 });
  hook.enable();
  t.after(() => hook.disable());
  await s.start();
  assert.ok([...live.values()].includes('FSEVENTWRAP'), 'the folder is watched');
  // A change in flight when closing.
  writeFileSync(join(s.dir, 'a.xml'), 'v2');
  await keepAlive(s.store.close(), 'store.close()');
  recording = false;
  const calls = s.calls.length;
  await waitFor(() => live.size === 0, () => `the store's handles to go, left: ${[...live.values()].join()}`, 1000);

  // Nothing is left to notice later changes (the poll ran every 20 ms).
  writeFileSync(join(s.dir, 'a.xml'), 'v3');
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(s.calls.length, calls);
});
