import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../../lib/sip/transaction/clock.js';
import {
  IvrSession,
  type CallToOutcome,
  type IvrChannel,
  type IvrEnd,
  type IvrSessionOptions,
} from '../../../lib/services/ivr/session.js';
import type {
  CollectAction,
  DigitMatch,
  IvrAction,
  IvrDocument,
  MonitorDetection,
  Template,
  TimePeriod,
} from '../../../lib/services/ivr/model.js';

// --- document builders: `next` omitted = fall through to the following action, as xml.ts does ---

const AT = { line: 7, col: 3 };
const FILE = '/opt/mss/xml/test.xml';

function tpl(text: string): Template {
  const parts: Array<{ text: string } | { variable: string }> = [];
  const re = /\$\{(\w+)\}/g;
  let last = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m.index > last) parts.push({ text: text.slice(last, m.index) });
    parts.push({ variable: m[1]! });
    last = re.lastIndex;
  }
  if (last < text.length) parts.push({ text: text.slice(last) });
  return parts;
}

const play = (name: string, voices: string[], next?: string): IvrAction => ({ method: 'play', name, at: AT, next, voices: voices.map(tpl) });
const goto = (name: string, next: string): IvrAction => ({ method: 'goto', name, at: AT, next });
const hangup = (name: string): IvrAction => ({ method: 'hangup', name, at: AT, next: undefined });
const set = (name: string, variable: string, value: string, next?: string): IvrAction => ({ method: 'set', name, at: AT, next, variable, value: tpl(value) });
const callto = (name: string, destination: string, monitor: Partial<Record<MonitorDetection, string>> = {}, next?: string): IvrAction => ({
  method: 'callto',
  name,
  at: AT,
  next,
  destination: tpl(destination),
  monitor,
});
const timecheck = (name: string, periods: TimePeriod[], fallback?: string, next?: string): IvrAction => ({ method: 'timecheck', name, at: AT, next, periods, fallback });
const exact = (value: string, next: string): DigitMatch => ({ kind: 'exact', value, next, at: AT });
const prefix = (value: string, next: string): DigitMatch => ({ kind: 'prefix', value, next, at: AT });

function minuteOf(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number);
  return h! * 60 + m!;
}
const period = (days: number[], from: string, to: string, next: string): TimePeriod => ({
  days: new Set(days),
  fromMinute: minuteOf(from),
  toMinute: minuteOf(to),
  next,
  at: AT,
});

type CollectOptions = Partial<Omit<CollectAction, 'method' | 'name' | 'at' | 'voices'>> & { voices?: string[] };
function collect(name: string, opts: CollectOptions = {}): IvrAction {
  const { voices = ['menu.wav'], ...rest } = opts;
  return {
    method: 'collect',
    name,
    at: AT,
    next: undefined,
    voices: voices.map(tpl),
    maxDigits: 1,
    minDigits: 1,
    timeoutMs: 5000,
    interDigitMs: 3000,
    terminator: '#',
    retries: 2,
    matches: [],
    noMatch: undefined,
    noInput: undefined,
    extension: false,
    ...rest,
  };
}

function doc(...actions: IvrAction[]): IvrDocument {
  const linked = actions.map((a, i) => (a.method === 'hangup' || a.next !== undefined ? a : { ...a, next: actions[i + 1]?.name })) as IvrAction[];
  return { file: FILE, start: actions[0]!.name, actions: new Map(linked.map((a) => [a.name, a])), prompts: new Set() };
}

// --- a channel the test drives ---

type Pending =
  | { kind: 'play'; bargeIn: boolean; resolve: (r: 'done' | 'interrupted' | 'hungup') => void; reject: (e: unknown) => void }
  | { kind: 'callTo'; resolve: (r: CallToOutcome) => void; reject: (e: unknown) => void };

class FakeChannel implements IvrChannel {
  readonly calls: string[] = [];
  pending: Pending | undefined;
  throwOn: 'play' | 'callTo' | 'hangup' | undefined;

  play(prompts: string[], opts: { bargeIn: boolean }): Promise<'done' | 'interrupted' | 'hungup'> {
    this.calls.push(`play ${prompts.join(' ')}${opts.bargeIn ? ' (barge-in)' : ''}`);
    if (this.throwOn === 'play') throw new Error('media gone');
    return new Promise((resolve, reject) => (this.pending = { kind: 'play', bargeIn: opts.bargeIn, resolve, reject }));
  }

  callTo(destination: string): Promise<CallToOutcome> {
    this.calls.push(`callTo ${destination}`);
    if (this.throwOn === 'callTo') return Promise.reject(new Error('no route table'));
    return new Promise((resolve, reject) => (this.pending = { kind: 'callTo', resolve, reject }));
  }

  hangup(cause: number): void {
    this.calls.push(`hangup ${cause}`);
    if (this.throwOn === 'hangup') throw new Error('dialog gone');
  }

  take<K extends Pending['kind']>(kind: K): Extract<Pending, { kind: K }> {
    const p = this.pending;
    assert.ok(p && p.kind === kind, `a ${kind} is pending (calls: ${this.calls.join(' | ')})`);
    this.pending = undefined;
    return p as Extract<Pending, { kind: K }>;
  }
}

/** Lets every promise continuation run (a macrotask turn, not a timer: time only moves on FakeClock). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

interface LogLine {
  level: string;
  event: string;
  fields: Record<string, unknown>;
}

async function run(d: IvrDocument, opts: Partial<IvrSessionOptions> = {}) {
  const clock = new FakeClock();
  const channel = new FakeChannel();
  const logs: LogLine[] = [];
  const session = new IvrSession(d, channel, {
    caller: '1001',
    called: '8000',
    clock,
    log: (level, event, fields) => logs.push({ level, event, fields }),
    ...opts,
  });
  const r = {
    clock,
    channel,
    session,
    logs,
    end: undefined as IvrEnd | undefined,
    async played(outcome: 'done' | 'interrupted' | 'hungup' = 'done') {
      channel.take('play').resolve(outcome);
      await settle();
    },
    async called(outcome: CallToOutcome) {
      channel.take('callTo').resolve(outcome);
      await settle();
    },
    /** Keys as a real channel delivers them: a barge-in prompt stops at the first one. */
    async press(keys: string) {
      for (const key of keys) {
        session.digit(key);
        const p = channel.pending;
        if (p?.kind === 'play' && p.bargeIn) {
          channel.pending = undefined;
          p.resolve('interrupted');
        }
        await settle();
      }
    },
    async advance(ms: number) {
      clock.advance(ms);
      await settle();
    },
    events: (event: string) => logs.filter((l) => l.event === event),
  };
  void session.start().then((end) => (r.end = end));
  await settle();
  return r;
}

// --- flow ---

test('flow: each action falls through to the next; past the last one the IVR hangs up with 16', async () => {
  const r = await run(doc(play('a', ['a.wav']), play('b', ['b.wav'])));
  assert.deepEqual(r.channel.calls, ['play a.wav']);
  await r.played();
  assert.deepEqual(r.channel.calls, ['play a.wav', 'play b.wav']);
  assert.equal(r.end, undefined);
  await r.played();
  assert.deepEqual(r.channel.calls, ['play a.wav', 'play b.wav', 'hangup 16']);
  assert.deepEqual(r.end, { reason: 'hangup', cause: 16, action: 'b' });
});

test('flow: goto jumps, nextaction overrides document order, hangup releases with 16', async () => {
  const r = await run(doc(goto('g', 'c'), play('b', ['b.wav']), play('c', ['c.wav'], 'h'), play('d', ['d.wav']), hangup('h')));
  assert.deepEqual(r.channel.calls, ['play c.wav']);
  await r.played();
  assert.deepEqual(r.channel.calls, ['play c.wav', 'hangup 16']);
  assert.deepEqual(r.end, { reason: 'hangup', cause: 16, action: 'h' });
  assert.equal(r.clock.pending, 0);
});

test('flow: set stores the value of the moment; variables reach voices and destinations', async () => {
  const r = await run(
    doc(
      set('s1', 'early', 'e${digits}'),
      set('s2', 'greet', 'hello_${caller}_${called}.wav'),
      play('p', ['${greet}']),
      collect('c', { maxDigits: 2, matches: [prefix('1', 'x')] }),
      play('x', ['${early}.wav', 'you_typed_${digits}.wav']),
      callto('t', '9${digits}${late}'),
      hangup('h'),
      set('never', 'late', 'X'),
    ),
  );
  assert.deepEqual(r.channel.calls, ['play hello_1001_8000.wav']);
  await r.played();
  assert.deepEqual(r.channel.calls.at(-1), 'play menu.wav (barge-in)');
  await r.press('12');
  assert.deepEqual(r.channel.calls.slice(2), ['play e.wav you_typed_12.wav']);
  await r.played();
  assert.deepEqual(r.channel.calls.slice(3), ['callTo 912']);
  await r.called('connected');
  assert.deepEqual(r.end, { reason: 'connected', action: 't' });
  assert.equal(r.channel.calls.length, 4, 'no hangup after connected');
});

test('flow: start() twice gives the same run; invalid keys are ignored', async () => {
  const r = await run(doc(collect('c', { matches: [exact('1', 'one')], retries: 0 }), play('one', ['one.wav'])));
  assert.equal(r.session.start(), r.session.start());
  await r.played();
  r.session.digit('x');
  r.session.digit('12');
  await r.press('1');
  assert.deepEqual(r.channel.calls, ['play menu.wav (barge-in)', 'play one.wav']);
  assert.equal(r.events('ivr.key-ignored').length, 2);
});

test('logs: ivr.action at debug for each step, ivr.end at info', async () => {
  const r = await run(doc(set('s', 'v', 'x'), hangup('h')));
  assert.deepEqual(
    r.events('ivr.action').map((l) => [l.level, l.fields.file, l.fields.action, l.fields.method, l.fields.line]),
    [
      ['debug', FILE, 's', 'set', 7],
      ['debug', FILE, 'h', 'hangup', 7],
    ],
  );
  const end = r.events('ivr.end');
  assert.equal(end.length, 1);
  assert.equal(end[0]!.level, 'info');
  assert.deepEqual([end[0]!.fields.file, end[0]!.fields.reason, end[0]!.fields.action, end[0]!.fields.cause], [FILE, 'hangup', 'h', 16]);
});

// --- collect ---

test('collect: keys pressed during a play are kept and answer the next collect, whose prompt is skipped', async () => {
  const r = await run(doc(play('p', ['intro.wav']), collect('c', { matches: [exact('2', 'two')] }), play('two', ['two.wav'])));
  await r.press('2');
  assert.deepEqual(r.channel.calls, ['play intro.wav'], 'a play without barge-in goes on');
  await r.played();
  assert.deepEqual(r.channel.calls, ['play intro.wav', 'play two.wav']);
});

test('collect: the first key interrupts the prompts (barge-in) and counts', async () => {
  const r = await run(doc(collect('c', { voices: ['m1.wav', 'm2.wav'], matches: [exact('1', 'one')] }), play('one', ['one.wav'])));
  assert.deepEqual(r.channel.calls, ['play m1.wav m2.wav (barge-in)']);
  await r.press('1');
  assert.deepEqual(r.channel.calls, ['play m1.wav m2.wav (barge-in)', 'play one.wav']);
});

test("collect: a key arriving after the channel's 'interrupted' still counts", async () => {
  const r = await run(doc(collect('c', { matches: [exact('1', 'one')] }), play('one', ['one.wav'])));
  await r.played('interrupted');
  assert.equal(r.clock.pending, 1, 'first-key timer running');
  await r.press('1');
  assert.deepEqual(r.channel.calls, ['play menu.wav (barge-in)', 'play one.wav']);
  assert.equal(r.clock.pending, 0);
});

test('collect: the first-key timeout starts when the prompts end', async () => {
  const r = await run(doc(collect('c', { timeoutMs: 5000, retries: 0, noInput: 'ni' }), play('ni', ['ni.wav'])));
  await r.advance(60_000);
  assert.equal(r.clock.pending, 0, 'no timer while the prompt plays');
  await r.played();
  await r.advance(4999);
  assert.deepEqual(r.channel.calls, ['play menu.wav (barge-in)']);
  await r.advance(1);
  assert.deepEqual(r.channel.calls, ['play menu.wav (barge-in)', 'play ni.wav']);
});

test('collect: each key restarts the inter-digit timer; its expiry ends the input', async () => {
  const r = await run(doc(collect('c', { maxDigits: 4, timeoutMs: 5000, interDigitMs: 3000, matches: [exact('123', 'ok')] }), play('ok', ['ok.wav'])));
  await r.played();
  await r.advance(4000);
  await r.press('1');
  await r.advance(2999);
  await r.press('2');
  await r.advance(2999);
  await r.press('3');
  await r.advance(2999);
  assert.deepEqual(r.channel.calls, ['play menu.wav (barge-in)']);
  assert.equal(r.clock.pending, 1);
  await r.advance(1);
  assert.deepEqual(r.channel.calls, ['play menu.wav (barge-in)', 'play ok.wav']);
  assert.equal(r.clock.pending, 0);
});

test('collect: the terminator ends the input and is not stored', async () => {
  const r = await run(doc(collect('c', { maxDigits: 4, matches: [exact('12', 'ok')] }), play('ok', ['got_${digits}.wav'])));
  await r.played();
  await r.press('12#');
  assert.deepEqual(r.channel.calls, ['play menu.wav (barge-in)', 'play got_12.wav']);
  assert.equal(r.clock.pending, 0);
});

test("collect: another terminator; with terminator '' the # is an ordinary key", async () => {
  const star = await run(doc(collect('c', { maxDigits: 4, terminator: '*', matches: [exact('1#', 'ok')] }), play('ok', ['got_${digits}.wav'])));
  await star.played();
  await star.press('1#*');
  assert.deepEqual(star.channel.calls, ['play menu.wav (barge-in)', 'play got_1#.wav']);

  const none = await run(doc(collect('c', { maxDigits: 2, terminator: '', matches: [exact('1#', 'ok')] }), play('ok', ['got_${digits}.wav'])));
  await none.played();
  await none.press('1#');
  assert.deepEqual(none.channel.calls, ['play menu.wav (barge-in)', 'play got_1#.wav']);
});

test('collect: a terminator alone is no input', async () => {
  const r = await run(doc(collect('c', { maxDigits: 4, retries: 0, noInput: 'ni', noMatch: 'nm' }), play('ni', ['ni.wav']), play('nm', ['nm.wav'])));
  await r.played();
  await r.press('#');
  assert.deepEqual(r.channel.calls, ['play menu.wav (barge-in)', 'play ni.wav']);
});

test('collect: fewer than minDigits is a nomatch and ${digits} holds them', async () => {
  const r = await run(
    doc(collect('c', { minDigits: 3, maxDigits: 4, retries: 0, matches: [prefix('1', 'ok')], noMatch: 'nm' }), play('ok', ['ok.wav']), play('nm', ['got_${digits}.wav'])),
  );
  await r.played();
  await r.press('12');
  await r.advance(3000);
  assert.deepEqual(r.channel.calls, ['play menu.wav (barge-in)', 'play got_12.wav']);
});

test('collect: input stops at maxDigits; the extra typed-ahead key answers the next collect', async () => {
  const r = await run(
    doc(
      play('p', ['intro.wav']),
      collect('c1', { maxDigits: 2, matches: [exact('12', 'c2')] }),
      collect('c2', { voices: ['second.wav'], matches: [exact('3', 'ok')] }),
      play('ok', ['ok.wav']),
    ),
  );
  await r.press('123');
  await r.played();
  assert.deepEqual(r.channel.calls, ['play intro.wav', 'play ok.wav']);
});

test('collect: noinput replays the prompts `retries` times, then takes the noinput branch', async () => {
  const r = await run(doc(collect('c', { retries: 2, noInput: 'ni', noMatch: 'nm' }), play('ni', ['ni.wav']), play('nm', ['nm.wav'])));
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(r.channel.calls.at(-1), 'play menu.wav (barge-in)');
    await r.played();
    await r.advance(5000);
  }
  assert.deepEqual(r.channel.calls, ['play menu.wav (barge-in)', 'play menu.wav (barge-in)', 'play menu.wav (barge-in)', 'play ni.wav']);
  assert.deepEqual(
    r.events('ivr.collect').map((l) => [l.fields.result, l.fields.attempt]),
    [
      ['noinput', 1],
      ['noinput', 2],
      ['noinput', 3],
    ],
  );
});

test('collect: noinput and nomatch share the replays; the last failure picks the branch', async () => {
  const r = await run(
    doc(collect('c', { retries: 1, matches: [exact('1', 'ok')], noInput: 'ni', noMatch: 'nm' }), play('ok', ['ok.wav']), play('ni', ['ni.wav']), play('nm', ['nm_${digits}.wav'])),
  );
  await r.played();
  await r.advance(5000);
  await r.press('9');
  assert.deepEqual(r.channel.calls, ['play menu.wav (barge-in)', 'play menu.wav (barge-in)', 'play nm_9.wav']);
});

test('collect: a replay after a success-less attempt can still succeed', async () => {
  const r = await run(doc(collect('c', { retries: 1, matches: [exact('1', 'ok')] }), play('ok', ['ok.wav'])));
  await r.press('7');
  await r.press('1');
  assert.deepEqual(r.channel.calls, ['play menu.wav (barge-in)', 'play menu.wav (barge-in)', 'play ok.wav']);
});

test('collect: without the branch, a failure after the retries hangs up with 16', async () => {
  const r = await run(doc(collect('c', { retries: 0, matches: [exact('1', 'ok')] }), play('ok', ['ok.wav'])));
  await r.press('5');
  assert.deepEqual(r.channel.calls, ['play menu.wav (barge-in)', 'hangup 16']);
  assert.deepEqual(r.end, { reason: 'hangup', cause: 16, action: 'c' });

  const silent = await run(doc(collect('c', { retries: 0, noMatch: 'ok' }), play('ok', ['ok.wav'])));
  await silent.played();
  await silent.advance(5000);
  assert.deepEqual(silent.channel.calls, ['play menu.wav (barge-in)', 'hangup 16']);
  assert.equal(silent.clock.pending, 0);
});

test('collect: matches are tried in document order, exact and prefix alike', async () => {
  const cases: Array<[DigitMatch[], string, string]> = [
    [[prefix('1', 'a'), exact('12', 'b')], '12', 'a'],
    [[exact('12', 'b'), prefix('1', 'a')], '12', 'b'],
    [[exact('12', 'b'), prefix('1', 'a')], '13', 'a'],
    [[exact('1', 'b'), prefix('2', 'a')], '12', 'nm'],
  ];
  for (const [matches, keys, branch] of cases) {
    const r = await run(doc(collect('c', { maxDigits: 2, retries: 0, matches, noMatch: 'nm' }), play('a', ['a.wav']), play('b', ['b.wav']), play('nm', ['nm.wav'])));
    await r.press(keys);
    assert.deepEqual(r.channel.calls, ['play menu.wav (barge-in)', `play ${branch}.wav`], `${keys} -> ${branch}`);
  }
});

test('collect extension: digits no match fits are called; failure releases with its cause', async () => {
  const d = () => doc(collect('c', { maxDigits: 3, minDigits: 1, matches: [exact('0', 'op')], extension: true, noMatch: 'nm' }), play('op', ['op.wav']), play('nm', ['nm.wav']));

  const connected = await run(d());
  await connected.press('201');
  assert.deepEqual(connected.channel.calls, ['play menu.wav (barge-in)', 'callTo 201']);
  await connected.called('connected');
  assert.deepEqual(connected.end, { reason: 'connected', action: 'c' });

  const busy = await run(d());
  await busy.press('202');
  await busy.called('busy');
  assert.deepEqual(busy.channel.calls, ['play menu.wav (barge-in)', 'callTo 202', 'hangup 17']);
  assert.deepEqual(busy.end, { reason: 'released', cause: 17, action: 'c' });

  const match = await run(d());
  await match.press('0');
  await match.advance(3000);
  assert.deepEqual(match.channel.calls, ['play menu.wav (barge-in)', 'play op.wav'], 'a match wins over the extension');
});

test('collect extension: too few digits is a nomatch, not a call', async () => {
  const r = await run(doc(collect('c', { maxDigits: 3, minDigits: 3, retries: 0, extension: true, noMatch: 'nm' }), play('nm', ['nm.wav'])));
  await r.press('20#');
  assert.deepEqual(r.channel.calls, ['play menu.wav (barge-in)', 'play nm.wav']);
});

// --- timecheck ---

async function branchAt(action: IvrAction, iso: string, timeZone?: string): Promise<string> {
  const r = await run(doc(action, play('next', ['next.wav']), hangup('h'), play('open', ['open.wav']), play('closed', ['closed.wav']), play('night', ['night.wav']), play('early', ['early.wav'])), {
    now: () => new Date(iso),
    timeZone,
  });
  assert.equal(r.channel.calls.length, 1, r.channel.calls.join(' | '));
  return r.channel.calls[0]!.replace(/^play (\w+)\.wav$/, '$1');
}

test('timecheck: office hours in Europe/Paris, from inclusive, to exclusive, across DST', async () => {
  const office = timecheck('t', [period([1, 2, 3, 4, 5], '09:00', '18:00', 'open')], 'closed');
  assert.equal(await branchAt(office, '2024-01-08T08:00:00Z', 'Europe/Paris'), 'open', 'Monday 09:00 CET');
  assert.equal(await branchAt(office, '2024-01-08T07:59:59Z', 'Europe/Paris'), 'closed', 'Monday 08:59 CET');
  assert.equal(await branchAt(office, '2024-01-08T16:59:00Z', 'Europe/Paris'), 'open', 'Monday 17:59 CET');
  assert.equal(await branchAt(office, '2024-01-08T17:00:00Z', 'Europe/Paris'), 'closed', 'Monday 18:00 CET');
  assert.equal(await branchAt(office, '2024-01-13T10:00:00Z', 'Europe/Paris'), 'closed', 'Saturday');
  assert.equal(await branchAt(office, '2024-07-08T07:00:00Z', 'Europe/Paris'), 'open', 'Monday 09:00 CEST');
  assert.equal(await branchAt(office, '2024-07-08T16:00:00Z', 'Europe/Paris'), 'closed', 'Monday 18:00 CEST');
});

test('timecheck: the same instant reads differently in UTC', async () => {
  const office = timecheck('t', [period([1, 2, 3, 4, 5], '09:00', '18:00', 'open')], 'closed');
  assert.equal(await branchAt(office, '2024-01-08T08:30:00Z', 'UTC'), 'closed');
  assert.equal(await branchAt(office, '2024-01-08T08:30:00Z', 'Europe/Paris'), 'open');
  assert.equal(await branchAt(office, '2024-01-07T23:30:00Z', 'Europe/Paris'), 'closed', 'Monday 00:30 in Paris is Sunday in UTC');
});

test('timecheck: a period past midnight belongs to the day it starts on', async () => {
  const mondayNight = timecheck('t', [period([1], '22:00', '06:00', 'night')], 'closed');
  assert.equal(await branchAt(mondayNight, '2024-01-08T22:00:00Z', 'UTC'), 'night', 'Monday 22:00');
  assert.equal(await branchAt(mondayNight, '2024-01-09T05:59:00Z', 'UTC'), 'night', 'Tuesday 05:59');
  assert.equal(await branchAt(mondayNight, '2024-01-09T06:00:00Z', 'UTC'), 'closed', 'Tuesday 06:00');
  assert.equal(await branchAt(mondayNight, '2024-01-08T05:00:00Z', 'UTC'), 'closed', "Monday 05:00 is Sunday night's");
  assert.equal(await branchAt(mondayNight, '2024-01-09T22:30:00Z', 'UTC'), 'closed', 'Tuesday 22:30');
  const sundayNight = timecheck('t', [period([7], '22:00', '06:00', 'night')], 'closed');
  assert.equal(await branchAt(sundayNight, '2024-01-08T01:00:00Z', 'UTC'), 'night', 'Monday 01:00 ends Sunday night');
  const allDay = timecheck('t', [period([6, 7], '00:00', '00:00', 'night')], 'closed');
  assert.equal(await branchAt(allDay, '2024-01-13T00:00:00Z', 'UTC'), 'night', 'Saturday 00:00, 00:00-00:00 = all day');
  assert.equal(await branchAt(allDay, '2024-01-14T23:59:00Z', 'UTC'), 'night', 'Sunday 23:59');
  assert.equal(await branchAt(allDay, '2024-01-15T00:00:00Z', 'UTC'), 'closed', 'Monday 00:00');
});

test('timecheck: the first fitting period wins; no fit and no default falls through to next', async () => {
  const overlapping = timecheck('t', [period([1], '08:00', '12:00', 'early'), period([1], '09:00', '18:00', 'open')], 'closed');
  assert.equal(await branchAt(overlapping, '2024-01-08T10:00:00Z', 'UTC'), 'early');
  assert.equal(await branchAt(overlapping, '2024-01-08T13:00:00Z', 'UTC'), 'open');
  const noDefault = timecheck('t', [period([1], '09:00', '18:00', 'open')]);
  assert.equal(await branchAt(noDefault, '2024-01-08T20:00:00Z', 'UTC'), 'next');
});

test("timecheck: without timeZone, the server's local time", async () => {
  const instant = new Date('2024-03-06T14:20:00Z');
  const isoDay = instant.getDay() === 0 ? 7 : instant.getDay();
  const hour = instant.getHours();
  const hh = (h: number) => `${String(h % 24).padStart(2, '0')}:00`;
  const thisHour = timecheck('t', [period([isoDay], hh(hour), hh(hour + 1), 'open')], 'closed');
  assert.equal(await branchAt(thisHour, instant.toISOString()), 'open');
  const nextHour = timecheck('t', [period([isoDay], hh(hour + 1), hh(hour + 2), 'open')], 'closed');
  assert.equal(await branchAt(nextHour, instant.toISOString()), 'closed');
});

// --- callto ---

test('callto: connected ends the IVR without releasing the caller', async () => {
  const r = await run(doc(callto('t', '201'), play('after', ['after.wav'])));
  assert.deepEqual(r.channel.calls, ['callTo 201']);
  await r.called('connected');
  assert.deepEqual(r.channel.calls, ['callTo 201']);
  assert.deepEqual(r.end, { reason: 'connected', action: 't' });
  assert.equal(r.clock.pending, 0);
});

test('callto: a monitored failure continues at its action', async () => {
  const r = await run(doc(callto('t', '201', { busy: 'backup', noanswer: 'vm' }), callto('backup', '100'), play('vm', ['vm.wav'])));
  await r.called('busy');
  assert.deepEqual(r.channel.calls, ['callTo 201', 'callTo 100']);
  await r.called('noanswer');
  assert.deepEqual(r.channel.calls, ['callTo 201', 'callTo 100', 'hangup 19']);
  assert.deepEqual(r.end, { reason: 'released', cause: 19, action: 'backup' });
});

test('callto: an unmonitored failure releases the caller with its cause', async () => {
  const causes: Array<[MonitorDetection, number]> = [
    ['busy', 17],
    ['noanswer', 19],
    ['unreachable', 20],
    ['reject', 21],
    ['fail', 31],
  ];
  for (const [outcome, cause] of causes) {
    const watched: MonitorDetection = outcome === 'busy' ? 'noanswer' : 'busy';
    const r = await run(doc(callto('t', '201', { [watched]: 'other' }), play('other', ['other.wav'])));
    await r.called(outcome);
    assert.deepEqual(r.channel.calls, ['callTo 201', `hangup ${cause}`], outcome);
    assert.deepEqual(r.end, { reason: 'released', cause, action: 't' });
  }
});

test("callto: 'hungup' ends the IVR without a hangup call", async () => {
  const r = await run(doc(callto('t', '201', { busy: 'b' }), play('b', ['b.wav'])));
  await r.called('hungup');
  assert.deepEqual(r.channel.calls, ['callTo 201']);
  assert.deepEqual(r.end, { reason: 'caller-hungup', action: 't' });
});

test('callto: keys pressed before or during the transfer do not reach the menu after it', async () => {
  const r = await run(doc(play('p', ['intro.wav']), callto('t', '201', { busy: 'c' }), collect('c', { matches: [exact('5', 'five')] }), play('five', ['five.wav'])));
  await r.press('5');
  await r.played();
  await r.press('5');
  await r.called('busy');
  assert.deepEqual(r.channel.calls, ['play intro.wav', 'callTo 201', 'play menu.wav (barge-in)']);
});

// --- loop guard ---

test('loop guard: 100 steps without waiting log ivr.loop and hang up with 16', async () => {
  const r = await run(doc(goto('a', 'b'), goto('b', 'a')));
  assert.equal(r.events('ivr.action').length, 100);
  assert.deepEqual(r.channel.calls, ['hangup 16']);
  assert.deepEqual(r.end, { reason: 'loop', cause: 16, action: 'a' });
  const loop = r.events('ivr.loop');
  assert.equal(loop.length, 1);
  assert.deepEqual([loop[0]!.fields.file, loop[0]!.fields.action], [FILE, 'a']);
});

test('loop guard: maxSteps is configurable; a play without prompts does not count as waiting', async () => {
  const r = await run(doc(set('s', 'x', '${x}1'), play('p', []), goto('g', 's')), { maxSteps: 5 });
  assert.deepEqual(r.channel.calls, ['hangup 16']);
  assert.equal(r.events('ivr.action').length, 5, 's p g s p');
  assert.deepEqual(r.end, { reason: 'loop', cause: 16, action: 'g' });
});

test('loop guard: a loop that waits for the caller runs on', async () => {
  const r = await run(doc(play('p', ['hold.wav']), set('s', 'n', '${n}.'), goto('g', 'p')));
  for (let i = 0; i < 150; i++) await r.played();
  assert.equal(r.channel.calls.length, 151);
  assert.equal(r.end, undefined);
  r.session.callerHungUp();
  await settle();
  assert.deepEqual(r.end, { reason: 'caller-hungup', action: 'p' });
});

// --- the caller leaves ---

test('caller hangs up mid-play: the IVR ends, the late play result is ignored', async () => {
  const r = await run(doc(play('p', ['intro.wav']), play('q', ['more.wav'])));
  r.session.callerHungUp();
  await settle();
  assert.deepEqual(r.end, { reason: 'caller-hungup', action: 'p' });
  await r.played();
  r.session.digit('1');
  r.session.callerHungUp();
  await settle();
  assert.deepEqual(r.channel.calls, ['play intro.wav']);
  assert.equal(r.clock.pending, 0);
  assert.equal(r.events('ivr.end').length, 1);
});

test("caller hangs up: the channel's 'hungup' from a play ends the IVR without a hangup call", async () => {
  const r = await run(doc(play('p', ['intro.wav']), play('q', ['more.wav'])));
  await r.played('hungup');
  assert.deepEqual(r.channel.calls, ['play intro.wav']);
  assert.deepEqual(r.end, { reason: 'caller-hungup', action: 'p' });
});

test('caller hangs up mid-collect: timers cleared, later keys and time change nothing', async () => {
  const r = await run(doc(collect('c', { maxDigits: 3, matches: [prefix('1', 'ok')] }), play('ok', ['ok.wav'])));
  await r.played();
  await r.press('1');
  assert.equal(r.clock.pending, 1);
  r.session.callerHungUp();
  await settle();
  assert.equal(r.clock.pending, 0);
  assert.deepEqual(r.end, { reason: 'caller-hungup', action: 'c' });
  await r.press('23');
  await r.advance(60_000);
  assert.deepEqual(r.channel.calls, ['play menu.wav (barge-in)']);
});

test('caller hangs up during the collect prompt: the interrupted result is ignored', async () => {
  const r = await run(doc(collect('c', { matches: [prefix('1', 'ok')] }), play('ok', ['ok.wav'])));
  r.session.callerHungUp();
  await r.played('interrupted');
  await r.advance(60_000);
  assert.deepEqual(r.channel.calls, ['play menu.wav (barge-in)']);
  assert.equal(r.clock.pending, 0);
  assert.deepEqual(r.end, { reason: 'caller-hungup', action: 'c' });
});

test('caller hangs up mid-callto: the late outcome is ignored', async () => {
  const r = await run(doc(callto('t', '201', { busy: 'b' }), play('b', ['b.wav'])));
  r.session.callerHungUp();
  await settle();
  assert.deepEqual(r.end, { reason: 'caller-hungup', action: 't' });
  await r.called('busy');
  assert.deepEqual(r.channel.calls, ['callTo 201']);
  assert.equal(r.clock.pending, 0);
});

test('caller hangs up before start: no channel call at all', async () => {
  const channel = new FakeChannel();
  const session = new IvrSession(doc(play('p', ['intro.wav'])), channel, { caller: '1', called: '2', clock: new FakeClock(), log: () => {} });
  session.callerHungUp();
  assert.deepEqual(await session.start(), { reason: 'caller-hungup', action: undefined });
  assert.deepEqual(channel.calls, []);
});

// --- a failing channel ---

test('a play that throws: logged, the caller released with 41', async () => {
  const channel = new FakeChannel();
  channel.throwOn = 'play';
  const logs: LogLine[] = [];
  const session = new IvrSession(doc(play('p', ['intro.wav']), play('q', ['q.wav'])), channel, {
    caller: '1',
    called: '2',
    clock: new FakeClock(),
    log: (level, event, fields) => logs.push({ level, event, fields }),
  });
  assert.deepEqual(await session.start(), { reason: 'error', cause: 41, action: 'p' });
  assert.deepEqual(channel.calls, ['play intro.wav', 'hangup 41']);
  const error = logs.find((l) => l.event === 'ivr.error');
  assert.equal(error?.level, 'error');
  assert.equal(error?.fields.error, 'media gone');
});

test('a callTo that rejects or throws: the caller released with 41', async () => {
  const rejecting = await run(doc(callto('t', '201', { fail: 'f' }), play('f', ['f.wav'])));
  rejecting.channel.take('callTo').reject(new Error('boom'));
  await settle();
  assert.deepEqual(rejecting.channel.calls, ['callTo 201', 'hangup 41']);
  assert.deepEqual(rejecting.end, { reason: 'error', cause: 41, action: 't' });

  const throwing = await run(doc(play('p', ['intro.wav']), callto('t', '201', { fail: 'f' }), play('f', ['f.wav'])));
  throwing.channel.throwOn = 'callTo';
  await throwing.played();
  assert.deepEqual(throwing.channel.calls, ['play intro.wav', 'callTo 201', 'hangup 41']);
  assert.deepEqual(throwing.end, { reason: 'error', cause: 41, action: 't' });
  assert.equal(throwing.events('ivr.error').length, 1);
});

test('a hangup that throws: logged, the IVR still ends once', async () => {
  const channel = new FakeChannel();
  channel.throwOn = 'hangup';
  const logs: LogLine[] = [];
  const session = new IvrSession(doc(hangup('h')), channel, {
    caller: '1',
    called: '2',
    clock: new FakeClock(),
    log: (level, event, fields) => logs.push({ level, event, fields }),
  });
  assert.deepEqual(await session.start(), { reason: 'hangup', cause: 16, action: 'h' });
  assert.deepEqual(channel.calls, ['hangup 16']);
  assert.equal(logs.filter((l) => l.event === 'ivr.hangup-failed').length, 1);
  assert.equal(logs.filter((l) => l.event === 'ivr.end').length, 1);
});

test('a rejection after the caller left is ignored', async () => {
  const r = await run(doc(play('p', ['intro.wav'])));
  r.session.callerHungUp();
  r.channel.take('play').reject(new Error('late'));
  await settle();
  assert.deepEqual(r.channel.calls, ['play intro.wav']);
  assert.deepEqual(r.end, { reason: 'caller-hungup', action: 'p' });
  assert.equal(r.events('ivr.error').length, 0);
});
