// The example IVR files shipped in examples/ivr: they compile without any finding, their prompts
// are there and playable, and their flows do what their comments say (run with IvrSession on a
// scripted channel and a fake clock).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { parseWav } from '../../../lib/media/endpoint/wav.js';
import { loadIvrFile } from '../../../lib/services/ivr/xml.js';
import { IvrSession, type CallToOutcome, type IvrChannel, type IvrEnd } from '../../../lib/services/ivr/session.js';
import { FakeClock } from '../../../lib/sip/transaction/clock.js';
import type { IvrAction, IvrDocument } from '../../../lib/services/ivr/model.js';

const EXAMPLES = 'examples/ivr';
const PROMPTS = 'examples/ivr/prompts';
const OPTS = { promptsDir: PROMPTS, language: 'en' };
const FILES = ['auto_attendant.xml', 'menu.xml'];

function load(name: string): IvrDocument {
  const result = loadIvrFile(path.join(EXAMPLES, name), OPTS);
  assert.deepEqual(result.findings, [], `${name} has findings`);
  assert.ok(result.document, `${name} compiles`);
  return result.document;
}

/** The actions an action can lead to (the paths of the flow table in docs/IVR.md). */
function successors(action: IvrAction): string[] {
  switch (action.method) {
    case 'collect':
      return [...action.matches.map((m) => m.next), action.noMatch, action.noInput].filter((n): n is string => n !== undefined);
    case 'callto':
      return Object.values(action.monitor);
    case 'timecheck':
      return [...action.periods.map((p) => p.next), action.fallback ?? action.next].filter((n): n is string => n !== undefined);
    case 'hangup':
      return [];
    default:
      return action.next === undefined ? [] : [action.next];
  }
}

function reachable(doc: IvrDocument): IvrAction[] {
  const seen = new Set<string>([doc.start]);
  const queue = [doc.start];
  const out: IvrAction[] = [];
  while (queue.length > 0) {
    const action = doc.actions.get(queue.shift()!)!;
    out.push(action);
    for (const next of successors(action)) {
      if (!seen.has(next)) {
        seen.add(next);
        queue.push(next);
      }
    }
  }
  return out;
}

test('examples: both files compile with no finding at all (no error, no warning)', () => {
  assert.deepEqual(fs.readdirSync(EXAMPLES).filter((f) => f.endsWith('.xml')).sort(), [...FILES].sort());
  for (const name of FILES) load(name);
});

test('examples: every prompt exists in prompts/en as 8 kHz mono 16-bit PCM, and every WAV there is used', () => {
  const used = new Set<string>();
  for (const name of FILES) {
    const doc = load(name);
    assert.ok(doc.prompts.size > 0, `${name} uses prompts`);
    for (const prompt of doc.prompts) {
      used.add(prompt);
      const file = path.join(PROMPTS, 'en', prompt);
      assert.ok(fs.existsSync(file), `${file} exists`);
      const wav = parseWav(fs.readFileSync(file));
      assert.ok(!('problem' in wav), `${file}: ${'problem' in wav ? wav.problem : ''}`);
      assert.equal(wav.encoding, 'pcm16', file);
      assert.equal(wav.sampleRate, 8000, file);
      assert.equal(wav.channels, 1, file);
      assert.ok(wav.durationMs > 300 && wav.durationMs < 8000, `${file} lasts ${wav.durationMs} ms`);
    }
    // Every <voice> is a plain name, so the validator checked each one.
    for (const action of doc.actions.values()) {
      if (action.method !== 'play' && action.method !== 'collect') continue;
      for (const voice of action.voices) assert.ok(voice.every((part) => 'text' in part), `${name}: ${action.name} has a fixed prompt name`);
    }
  }
  assert.deepEqual(fs.readdirSync(path.join(PROMPTS, 'en')).sort(), [...used].sort());
});

test('auto attendant: starts with a collect playing the welcome prompt and reaches callto ${digits}', () => {
  const doc = load('auto_attendant.xml');
  const start = doc.actions.get(doc.start)!;
  assert.equal(start.method, 'collect');
  assert.ok(start.method === 'collect');
  assert.deepEqual(start.voices, [[{ text: 'aa_welcome.wav' }]]);
  assert.equal(start.extension, false);
  const callto = reachable(doc).filter((a) => a.method === 'callto');
  assert.ok(callto.length > 0);
  for (const a of callto) {
    assert.ok(a.method === 'callto');
    assert.deepEqual(a.destination, [{ variable: 'digits' }], `${a.name} calls the keys collected`);
    assert.deepEqual(Object.keys(a.monitor).sort(), ['busy', 'fail', 'noanswer', 'reject', 'unreachable'], `${a.name} monitors every failure`);
  }
  // Every action is reachable (the validator would warn otherwise) and the flow has no cycle:
  // the retries are bounded by the file's structure.
  assert.equal(reachable(doc).length, doc.actions.size);
  const visiting = new Set<string>();
  const done = new Set<string>();
  const acyclic = (name: string): void => {
    if (done.has(name)) return;
    assert.ok(!visiting.has(name), `the flow loops through ${name}`);
    visiting.add(name);
    for (const next of successors(doc.actions.get(name)!)) acyclic(next);
    visiting.delete(name);
    done.add(name);
  };
  acyclic(doc.start);
});

test('menu: every branch ends at a callto of an example extension or at a hangup', () => {
  const doc = load('menu.xml');
  const destinations = new Set<string>();
  for (const a of reachable(doc)) {
    if (a.method === 'callto') destinations.add(a.destination.map((p) => ('text' in p ? p.text : `\${${p.variable}}`)).join(''));
    if (a.method === 'collect' || a.method === 'play' || a.method === 'timecheck') assert.ok(successors(a).length > 0, `${a.name} leads somewhere`);
  }
  assert.deepEqual([...destinations].sort(), ['100', '201', '202', '301', '302']);
  const main = doc.actions.get('main')!;
  assert.ok(main.method === 'collect');
  assert.equal(main.extension, true);
  assert.equal(main.maxDigits, 3);
});

// --- the flows, run ---------------------------------------------------------------------------

/** Plays finish at once; transfers take the next scripted outcome. */
class ScriptedChannel implements IvrChannel {
  readonly calls: string[] = [];
  constructor(private readonly outcomes: CallToOutcome[] = []) {}
  play(prompts: string[]): Promise<'done'> {
    this.calls.push(`play ${prompts.join(' ')}`);
    return Promise.resolve('done');
  }
  callTo(destination: string): Promise<CallToOutcome> {
    this.calls.push(`callTo ${destination}`);
    const outcome = this.outcomes.shift();
    assert.ok(outcome, `an outcome for callTo ${destination}`);
    return Promise.resolve(outcome);
  }
  hangup(cause: number): void {
    this.calls.push(`hangup ${cause}`);
  }
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

async function start(name: string, outcomes: CallToOutcome[], now = new Date('2024-01-03T10:00:00Z')) {
  const clock = new FakeClock();
  const channel = new ScriptedChannel(outcomes);
  const session = new IvrSession(load(name), channel, { caller: '1001', called: '800', clock, timeZone: 'UTC', now: () => now, log: () => {} });
  const r = {
    channel,
    end: undefined as IvrEnd | undefined,
    async press(keys: string) {
      for (const key of keys) {
        session.digit(key);
        await settle();
      }
    },
    async wait(ms: number) {
      clock.advance(ms);
      await settle();
    },
  };
  void session.start().then((end) => (r.end = end));
  await settle();
  return r;
}

test('auto attendant run: an extension is called; answered, the IVR ends', async () => {
  const r = await start('auto_attendant.xml', ['connected']);
  await r.press('201#');
  assert.deepEqual(r.channel.calls, ['play aa_welcome.wav', 'callTo 201']);
  assert.equal(r.end?.reason, 'connected');
});

test('auto attendant run: busy, then one more try that fails, then goodbye and hang-up', async () => {
  const r = await start('auto_attendant.xml', ['busy', 'unreachable']);
  await r.press('201#');
  await r.press('999');
  await r.wait(3000);
  assert.deepEqual(r.channel.calls, [
    'play aa_welcome.wav',
    'callTo 201',
    'play ext_busy.wav',
    'play aa_try_again.wav',
    'callTo 999',
    'play ext_not_exist.wav goodbye.wav',
    'hangup 16',
  ]);
  assert.deepEqual(r.end, { reason: 'hangup', cause: 16, action: 'bye' });
});

test('auto attendant run: silence replays the welcome twice, then goodbye', async () => {
  const r = await start('auto_attendant.xml', []);
  for (let i = 0; i < 3; i++) await r.wait(6000);
  assert.deepEqual(r.channel.calls, ['play aa_welcome.wav', 'play aa_welcome.wav', 'play aa_welcome.wav', 'play goodbye.wav', 'hangup 16']);
  assert.equal(r.end?.reason, 'hangup');
});

test('menu run: 1 alone (ended by the inter-digit timeout) is sales; 101 is an extension', async () => {
  const sales = await start('menu.xml', ['noanswer', 'connected']);
  await sales.press('1');
  assert.deepEqual(sales.channel.calls, ['play menu_welcome.wav', 'play menu_main.wav']);
  await sales.wait(3000);
  assert.deepEqual(sales.channel.calls, ['play menu_welcome.wav', 'play menu_main.wav', 'callTo 201', 'callTo 202']);
  assert.equal(sales.end?.reason, 'connected');

  const ext = await start('menu.xml', ['busy']);
  await ext.press('101');
  assert.deepEqual(ext.channel.calls, ['play menu_welcome.wav', 'play menu_main.wav', 'callTo 101', 'hangup 17']);
  assert.equal(ext.end?.reason, 'released');
});

test('menu run: support in office hours offers level 2, * goes back; closed outside', async () => {
  const open = await start('menu.xml', ['connected']);
  await open.press('2#');
  await open.press('*');
  await open.press('9#');
  assert.deepEqual(open.channel.calls, ['play menu_welcome.wav', 'play menu_main.wav', 'play menu_support.wav', 'play menu_main.wav', 'callTo 100']);

  const hw = await start('menu.xml', ['busy', 'noanswer']);
  await hw.press('2#');
  await hw.press('1');
  assert.deepEqual(hw.channel.calls, [
    'play menu_welcome.wav',
    'play menu_main.wav',
    'play menu_support.wav',
    'callTo 301',
    'callTo 100',
    'play unavailable.wav goodbye.wav',
    'hangup 16',
  ]);

  const saturday = await start('menu.xml', [], new Date('2024-01-06T10:00:00Z'));
  await saturday.press('2#');
  const evening = await start('menu.xml', [], new Date('2024-01-03T17:00:00Z'));
  await evening.press('2#');
  for (const r of [saturday, evening]) {
    assert.deepEqual(r.channel.calls, ['play menu_welcome.wav', 'play menu_main.wav', 'play support_closed.wav goodbye.wav', 'hangup 16']);
  }
});
