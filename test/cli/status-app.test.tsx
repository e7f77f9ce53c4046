// The `status` screen rendered with ink-testing-library: each pane's frame with a fixed clock,
// live events, the keys (Tab, arrows, /filter, s, Enter, h + y, q), 10,000 extensions as a
// virtual list, reconnecting, a resize. The store is fed directly; the actions are fakes.
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanup, render } from 'ink-testing-library';
import type { Snapshot } from '../../lib/admin/client.js';
import type { CallView, ExtensionView, Summary } from '../../lib/admin/types.js';
import { App, type StatusActions } from '../../cli/status/app.js';
import { LiveStore } from '../../cli/status/state.js';

const T0 = Date.UTC(2026, 0, 5, 12, 0, 0);
const KEYS = { tab: '\t', down: '\u001B[B', up: '\u001B[A', pageDown: '\u001B[6~', end: '\u001B[F', enter: '\r', escape: '\u001B', backspace: '\u007F' };

afterEach(() => cleanup());

function summary(): Summary {
  return {
    version: '0.1.0',
    node: 'pbx1',
    startTime: T0 - 3_600_000,
    uptimeSeconds: 3600,
    extensions: { total: 3, registered: 2 },
    contacts: 2,
    calls: { active: 1, started: 5, answered: 4 },
    callbacks: 1,
    ivr: 1,
    trunks: [],
    process: { cpuPercent: 0, rssBytes: 0 },
  };
}

function ext(number: string, name: string, state: ExtensionView['state'] = 'offline', ua = ''): ExtensionView {
  const contacts = state === 'offline' ? [] : [{ contact: `sip:${number}@192.0.2.10:5060`, address: '192.0.2.10:5060', transport: 'udp' as const, userAgent: ua, expiresAt: T0 + 300_000 }];
  return { number, name, state, contacts };
}

function call(id: string, caller: string, callee: string, over: Partial<CallView> = {}): CallView {
  return {
    id,
    caller,
    callerName: '',
    callee,
    dialled: callee,
    route: 'local',
    state: 'answered',
    startTime: T0 - 65_000,
    answerTime: T0 - 60_000,
    codec: 'PCMU',
    media: 'audio',
    packets: { aToB: 3000, bToA: 2990 },
    ...over,
  };
}

function snapshot(): Snapshot {
  return {
    summary: summary(),
    extensions: [ext('101', 'Alice', 'talking', 'Yealink SIP-T46U'), ext('102', 'Bob', 'online', 'Linphone/5.2'), ext('20', 'Zoe')],
    calls: [call('c1', '101', '102')],
    callbacks: [{ id: 'cb-7', user1: '101', user2: '0171555', state: 'calling2', startTime: T0 - 20_000, answerTime: T0 - 12_000 }],
    ivr: [{ id: 'ivr-1', caller: '102', number: '800', file: 'main-menu.xml', startTime: T0 - 42_000 }],
  };
}

function liveStore(s: Snapshot = snapshot(), clock = () => T0): LiveStore {
  const store = new LiveStore(clock);
  store.load(s);
  store.setConnection({ state: 'live', attempt: 0 });
  return store;
}

interface FakeActions extends StatusActions {
  hungUp: string[];
}

function fakeActions(): FakeActions {
  const hungUp: string[] = [];
  return {
    hungUp,
    hangup: async (id) => {
      hungUp.push(id);
      return true;
    },
  };
}

const strip = (s: string) => s.replace(/\u001B\[[0-9;?]*[A-Za-z]/g, '');

/** Waits (bounded) until the last frame satisfies `ok`; returns it without colours. */
async function frameWhere(r: { lastFrame(): string | undefined }, ok: (f: string) => boolean, what: string, timeoutMs = 3000): Promise<string> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const f = strip(r.lastFrame() ?? '');
    if (ok(f)) return f;
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}; last frame:\n${f}`);
    await new Promise((res) => setTimeout(res, 10));
  }
}

const has = (text: string) => (f: string) => f.includes(text);

function checkSize(frame: string, width: number, height: number): void {
  const lines = frame.split('\n');
  assert.ok(lines.length <= height - 1, `${lines.length} lines for a ${height}-row terminal`);
  for (const l of lines) assert.ok([...l].length <= width, `line wider than ${width}: ${JSON.stringify(l)}`);
}

test('Extensions pane in 80x24: header, counts, rows with state, contacts, User-Agent, address, expiry', async () => {
  const r = render(<App store={liveStore()} actions={fakeActions()} clock={() => T0} width={80} height={24} tickMs={0} refreshMs={0} />);
  const f = await frameWhere(r, has('Alice'), 'the extensions');
  const lines = f.split('\n');
  assert.match(lines[0]!, /^minisipserver 0\.1\.0 on pbx1, up 01:00:00 +● live$/);
  assert.match(lines[1]!, /extensions 2\/3 registered +calls 1 active, 0\/min +call-backs 1 +IVR 1/);
  assert.match(lines[2]!, /Extensions 3 +Calls 1 +Call-backs 1 +IVR 1 +by number$/);
  assert.match(f, /NUMBER +NAME +STATE +CT +USER-AGENT +ADDRESS +EXPIRES/);
  assert.match(f, /^20 +Zoe +offline +0/m);
  assert.match(f, /^101 +Alice +talking +1 Yealink SIP-T4… 192\.0\.2\.10:5060 +5m00s$/m);
  assert.match(f, /^102 +Bob +online +1 Linphone\/5\.2 +192\.0\.2\.10:5060 +5m00s$/m);
  assert.match(lines.at(-1)!, /Tab pane/);
  checkSize(f, 80, 24);
});

test('Calls pane: caller -> callee, state, duration ticking every second, codec, media, packets', async () => {
  let now = T0;
  const store = liveStore(snapshot(), () => now);
  const r = render(<App store={store} actions={fakeActions()} clock={() => now} width={80} height={24} tickMs={20} refreshMs={0} packetsMs={0} />);
  await frameWhere(r, has('Alice'), 'the first frame');
  r.stdin.write(KEYS.tab);
  let f = await frameWhere(r, has('CALLER -> CALLEE'), 'the calls pane');
  assert.match(f, /^101 -> 102 +answered +1:00 PCMU +audio +3000\/2990$/m);
  now = T0 + 5000;
  f = await frameWhere(r, has('1:05'), 'the duration to tick');
  assert.match(f, /^101 -> 102 +answered +1:05 /m);
  assert.match(f, /up 01:00:05/);
  // A call created by an event appears, ringing, and counts in calls per minute.
  store.apply({ id: 1, time: now, event: { type: 'call', action: 'created', call: call('c2', '20', '101', { callerName: 'Zoe', state: 'ringing', startTime: now - 3000, answerTime: null, codec: '', media: '', packets: { aToB: 0, bToA: 0 } }) } });
  f = await frameWhere(r, has('20 Zoe -> 101'), 'the new call');
  assert.match(f, /^20 Zoe -> 101 +ringing +0:03 -/m);
  assert.match(f, /calls 2 active, 1\/min/);
  store.apply({ id: 2, time: now, event: { type: 'call', action: 'ended', call: call('c2', '20', '101'), status: 487, callTag: 2, cause: 16 } });
  await frameWhere(r, (x) => !x.includes('Zoe -> 101'), 'the call to end');
  checkSize(strip(r.lastFrame()!), 80, 24);
});

test('Call-backs and IVR panes', async () => {
  const r = render(<App store={liveStore()} actions={fakeActions()} clock={() => T0} width={80} height={24} tickMs={0} refreshMs={0} />);
  await frameWhere(r, has('Alice'), 'the first frame');
  r.stdin.write(KEYS.tab);
  await frameWhere(r, has('CALLER -> CALLEE'), 'the calls pane');
  r.stdin.write(KEYS.tab);
  let f = await frameWhere(r, has('USER1'), 'the call-backs pane');
  assert.match(f, /^cb-7 +101 +0171555 +calling2 +0:12$/m);
  r.stdin.write(KEYS.tab);
  f = await frameWhere(r, has('FILE'), 'the IVR pane');
  assert.match(f, /^102 +800 +main-menu\.xml +0:42$/m);
  r.stdin.write(KEYS.tab);
  await frameWhere(r, has('USER-AGENT'), 'back to the extensions');
});

test('events change the extensions on screen; reconnecting shows in the header', async () => {
  const store = liveStore();
  const r = render(<App store={store} actions={fakeActions()} clock={() => T0} width={80} height={24} tickMs={0} refreshMs={0} />);
  await frameWhere(r, has('Alice'), 'the first frame');
  store.apply({ id: 1, time: T0, event: { type: 'registration', action: 'added', number: '20', contact: 'sip:20@198.51.100.7:5062', address: '198.51.100.7:5062', transport: 'udp', userAgent: '', expiresAt: 0 } });
  let f = await frameWhere(r, has('198.51.100.7:5062'), 'the registration');
  assert.match(f, /^20 +Zoe +online +1 +198\.51\.100\.7:5062 +-$/m);
  assert.match(f, /extensions 3\/3 registered/);
  store.apply({ id: 2, time: T0, event: { type: 'extension', number: '102', state: 'ringing' } });
  f = await frameWhere(r, has('ringing'), 'the state change');
  assert.match(f, /^102 +Bob +ringing /m);

  store.setConnection({ state: 'reconnecting', attempt: 3, error: 'connection refused' });
  f = await frameWhere(r, has('reconnecting'), 'the reconnecting indicator');
  assert.match(f.split('\n')[0]!, /○ reconnecting \(3\)$/);
  assert.match(f.split('\n')[1]!, /^event stream down \(connection refused\); showing the state before$/);
  store.setConnection({ state: 'live', attempt: 0 });
  await frameWhere(r, has('● live'), 'live again');
});

test('keys: arrows and Enter show the selected row, / filters, s sorts, ? helps', async () => {
  const r = render(<App store={liveStore()} actions={fakeActions()} clock={() => T0} width={80} height={24} tickMs={0} refreshMs={0} />);
  await frameWhere(r, has('Alice'), 'the first frame');
  r.stdin.write(KEYS.down); // 20 -> 101
  await new Promise((res) => setTimeout(res, 20));
  r.stdin.write(KEYS.down); // -> 102
  await new Promise((res) => setTimeout(res, 20));
  r.stdin.write(KEYS.enter);
  let f = await frameWhere(r, has('User-Agent'), 'the details');
  assert.match(f, /^Extension +102$/m);
  assert.match(f, /^Name +Bob$/m);
  assert.match(f, /^ +User-Agent +Linphone\/5\.2$/m);
  r.stdin.write(KEYS.up);
  f = await frameWhere(r, has('Alice'), 'the details to follow the selection');
  assert.match(f, /^Extension +101$/m);
  r.stdin.write(KEYS.escape);
  await frameWhere(r, has('NUMBER'), 'the list again');

  r.stdin.write('/');
  await frameWhere(r, has('Enter keeps it'), 'the filter prompt');
  r.stdin.write('b');
  await new Promise((res) => setTimeout(res, 20));
  r.stdin.write('o');
  f = await frameWhere(r, (x) => x.includes('/bo: 1 ') && !x.includes('Alice'), 'the filter to apply');
  assert.match(f, /^102 +Bob /m);
  r.stdin.write(KEYS.enter);
  await frameWhere(r, has('Tab pane'), 'the filter kept');
  r.stdin.write(KEYS.escape);
  await frameWhere(r, (x) => x.includes('Alice') && x.includes('Zoe'), 'the filter cleared');

  r.stdin.write('s');
  f = await frameWhere(r, has('by state'), 'the next sort');
  const order = f.split('\n').filter((l) => /^(101|102|20) /.test(l)).map((l) => l.split(' ')[0]);
  assert.deepEqual(order, ['101', '102', '20']);

  r.stdin.write('?');
  f = await frameWhere(r, has('Keys'), 'the help');
  assert.match(f, /hang up the selected call/);
  r.stdin.write('?');
  await frameWhere(r, has('NUMBER'), 'the help closed');
});

test('keys: h then n keeps the call, h then y hangs it up through the client, q quits', async () => {
  const actions = fakeActions();
  let quit = 0;
  const r = render(<App store={liveStore()} actions={actions} clock={() => T0} width={80} height={24} tickMs={0} refreshMs={0} onQuit={() => quit++} />);
  await frameWhere(r, has('Alice'), 'the first frame');
  r.stdin.write('h');
  await frameWhere(r, has('Calls pane'), 'the hint to go to the Calls pane');
  r.stdin.write(KEYS.tab);
  await frameWhere(r, has('CALLER -> CALLEE'), 'the calls pane');
  r.stdin.write('h');
  await frameWhere(r, has('Hang up 101 -> 102? (y/n)'), 'the confirmation');
  r.stdin.write('n');
  await frameWhere(r, has('hang-up cancelled'), 'the cancellation');
  assert.deepEqual(actions.hungUp, []);
  r.stdin.write('h');
  await frameWhere(r, has('(y/n)'), 'the confirmation again');
  r.stdin.write('y');
  await frameWhere(r, has('released 101 -> 102'), 'the hang-up');
  assert.deepEqual(actions.hungUp, ['c1']);
  r.stdin.write('q');
  const until = Date.now() + 2000;
  while (quit === 0 && Date.now() < until) await new Promise((res) => setTimeout(res, 10));
  assert.equal(quit, 1);
});

test('10,000 extensions: only the visible rows are rendered; PgDn and End move through them', async () => {
  const s = snapshot();
  s.extensions = Array.from({ length: 10_000 }, (_, i) => ext(String(10000 + i), `User ${i}`, i % 2 === 0 ? 'online' : 'offline', 'Phone'));
  const started = Date.now();
  const r = render(<App store={liveStore(s)} actions={fakeActions()} clock={() => T0} width={80} height={24} tickMs={0} refreshMs={0} />);
  let f = await frameWhere(r, has('10000'), 'the first rows');
  const rowLines = (x: string) => x.split('\n').filter((l) => /^1\d{4} /.test(l));
  assert.equal(rowLines(f).length, 18, '24 rows: 5 lines of chrome, 18 rows, one spare');
  assert.match(f, /extensions 5000\/10000 registered/);
  assert.ok(Date.now() - started < 3000, 'first frame in time');
  r.stdin.write(KEYS.pageDown);
  f = await frameWhere(r, (x) => rowLines(x)[0]?.startsWith('10017') === true, 'a page down');
  r.stdin.write(KEYS.end);
  f = await frameWhere(r, (x) => rowLines(x).at(-1)?.startsWith('19999') === true, 'the end');
  assert.equal(rowLines(f).length, 18);
  checkSize(f, 80, 24);
});

test('follows a resize of the terminal', async () => {
  const r = render(<App store={liveStore()} actions={fakeActions()} clock={() => T0} tickMs={0} refreshMs={0} />);
  let f = await frameWhere(r, has('Alice'), 'the first frame');
  assert.ok(f.split('\n').some((l) => l.length > 80), 'ink-testing-library is 100 columns wide');
  Object.defineProperty(r.stdout, 'columns', { configurable: true, get: () => 60 });
  Object.defineProperty(r.stdout, 'rows', { configurable: true, get: () => 12 });
  r.stdout.emit('resize');
  f = await frameWhere(r, (x) => x.split('\n').length <= 11 && x.includes('Alice'), 'the smaller frame');
  checkSize(f, 60, 12);
  Object.defineProperty(r.stdout, 'columns', { configurable: true, get: () => 30 });
  r.stdout.emit('resize');
  await frameWhere(r, has('terminal too small'), 'the too-small notice');
});
