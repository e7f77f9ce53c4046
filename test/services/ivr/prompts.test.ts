import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PromptCache } from '../../../lib/services/ivr/prompts.js';
import { toneWav } from '../../helpers/wav.js';

function wav(ms: number, sampleRate = 8000): Buffer {
  return toneWav(ms, 0, { sampleRate });
}

function setup(): { dir: string; logs: string[]; cache: (maxBytes?: number) => PromptCache } {
  const dir = mkdtempSync(join(tmpdir(), 'mss-prompts-'));
  mkdirSync(join(dir, 'en'));
  const logs: string[] = [];
  return { dir, logs, cache: (maxBytes) => new PromptCache({ dir, language: 'en', ...(maxBytes ? { maxBytes } : {}), log: (_l, event, f) => logs.push(`${event} ${JSON.stringify(f)}`) }) };
}

test('a prompt is read once, in the language folder first, and held in the codec asked for', async () => {
  const { dir, cache } = setup();
  writeFileSync(join(dir, 'en', 'hello.wav'), wav(100));
  writeFileSync(join(dir, 'hello.wav'), wav(200));
  const c = cache();
  const [a, b] = await Promise.all([c.get('hello.wav', 'pcmu'), c.get('hello.wav', 'pcmu')]);
  assert.equal(a!.length, 800, 'the en/ one: 100 ms at 8 kHz, one byte a sample');
  assert.equal(a, b, 'calls asking at once share one read');
  assert.equal(c.heldBytes, 800);
  assert.equal(await c.get('hello.wav', 'pcmu'), a, 'then it comes from memory');
  assert.equal((await c.get('hello.wav', 'pcma'))!.length, 800);
  assert.equal(c.heldBytes, 1600, 'each codec held once');
});

test('the byte cap holds: the least recently used prompt goes first', async () => {
  const { dir, cache } = setup();
  for (const n of ['a', 'b', 'c']) writeFileSync(join(dir, `${n}.wav`), wav(100));
  const c = cache(2000);
  await c.get('a.wav', 'pcmu');
  await c.get('b.wav', 'pcmu');
  await c.get('a.wav', 'pcmu');
  await c.get('c.wav', 'pcmu');
  assert.equal(c.heldBytes, 1600);
  await c.get('a.wav', 'pcmu');
  assert.equal(c.heldBytes, 1600, 'a was used last: b went, a stayed');
});

test('missing, unplayable and escaping prompt names give null and a log line, never a throw', async () => {
  const { dir, logs, cache } = setup();
  writeFileSync(join(dir, 'cd.wav'), wav(100, 44100));
  const c = cache();
  assert.equal(await c.get('none.wav', 'pcmu'), null);
  assert.equal(await c.get('cd.wav', 'pcmu'), null);
  assert.equal(await c.get('../etc/passwd', 'pcmu'), null);
  assert.equal(await c.get('/etc/passwd', 'pcmu'), null);
  assert.ok(logs.some((l) => l.startsWith('ivr.prompt_missing')));
  assert.ok(logs.some((l) => l.startsWith('ivr.prompt_unplayable') && l.includes('44100')));
  assert.equal(logs.filter((l) => l.startsWith('ivr.prompt_refused')).length, 2);
});
