// `minisipserver status` without ink: the store applying snapshots and events, sorting and
// filtering, the visible window, the key handling, and the text of `--once`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Snapshot } from '../../lib/admin/client.js';
import type { CallView, ExtensionView, LiveEvent, SequencedEvent, Summary } from '../../lib/admin/types.js';
import {
  compareNumbers,
  LiveStore,
  moveCursor,
  paneRows,
  resolveCursor,
  rowKey,
  sortName,
  windowTop,
} from '../../cli/status/state.js';
import { fit, formatDuration, formatExpiresIn, formatOnce, formatUptime, layoutColumns, textWidth, COLUMNS } from '../../cli/status/format.js';
import { handleKey, initialUi, type KeyInfo, type PaneView, type UiState } from '../../cli/status/ui.js';

const T0 = Date.UTC(2026, 0, 5, 12, 0, 0);

function summary(over: Partial<Summary> = {}): Summary {
  return {
    version: '0.1.0',
    node: 'pbx1',
    startTime: T0 - 3_600_000,
    uptimeSeconds: 3600,
    extensions: { total: 3, registered: 1 },
    contacts: 1,
    calls: { active: 1, started: 5, answered: 4 },
    process: { cpuPercent: 3.5, rssBytes: 80_000_000 },
    callbacks: 0,
    ivr: 0,
    trunks: [],
    ...over,
  };
}

function ext(number: string, name: string, state: ExtensionView['state'] = 'offline', contacts: ExtensionView['contacts'] = []): ExtensionView {
  return { number, name, state, contacts };
}

function contact(n: string, expiresIn = 300_000): ExtensionView['contacts'][number] {
  return { contact: `sip:${n}@192.0.2.10:5060`, address: '192.0.2.10:5060', transport: 'udp', userAgent: 'Yealink SIP-T46U', expiresAt: T0 + expiresIn };
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
    extensions: [ext('101', 'Alice', 'talking', [contact('101')]), ext('102', 'Bob', 'online', [contact('102', 60_000)]), ext('20', 'Zoe')],
    calls: [call('c1', '101', '102')],
    callbacks: [],
    ivr: [],
  };
}

let seq = 0;
function ev(event: LiveEvent, time = T0): SequencedEvent {
  return { id: ++seq, time, event };
}

test('a snapshot loads; events add, change and remove rows', () => {
  const store = new LiveStore(() => T0);
  store.load(snapshot());
  assert.equal(store.extensions.size, 3);
  assert.equal(store.registeredCount(), 2);
  const v = store.version;

  store.apply(ev({ type: 'registration', action: 'added', number: '20', contact: 'sip:20@198.51.100.7:5062', address: '198.51.100.7:5062', transport: 'udp', userAgent: '', expiresAt: T0 + 60_000 }));
  const zoe = store.extensions.get('20')!;
  assert.equal(zoe.contacts.length, 1);
  assert.equal(zoe.contacts[0]!.expiresAt, T0 + 60_000, 'the event says when it expires');
  assert.equal(zoe.state, 'online');
  assert.equal(store.registeredCount(), 3);
  assert.ok(store.version > v);

  // Extra fields, when the server sends them, are used.
  store.apply(ev({ type: 'registration', action: 'refreshed', number: '20', contact: 'sip:20@198.51.100.7:5062', address: '198.51.100.7:5062', transport: 'udp', userAgent: 'Zoiper', expiresAt: T0 + 120_000 }));
  assert.equal(store.extensions.get('20')!.contacts[0]!.userAgent, 'Zoiper');
  assert.equal(store.extensions.get('20')!.contacts[0]!.expiresAt, T0 + 120_000);

  store.apply(ev({ type: 'registration', action: 'expired', number: '20', contact: 'sip:20@198.51.100.7:5062', address: '198.51.100.7:5062', transport: 'udp', userAgent: '', expiresAt: T0 }));
  assert.equal(store.extensions.get('20')!.contacts.length, 0);
  assert.equal(store.extensions.get('20')!.state, 'offline');

  store.apply(ev({ type: 'extension', number: '102', state: 'ringing' }));
  assert.equal(store.extensions.get('102')!.state, 'ringing');
  // An extension the snapshot did not have (added since).
  store.apply(ev({ type: 'extension', number: '300', state: 'online' }));
  assert.equal(store.extensions.get('300')!.name, '');

  const c2 = call('c2', '102', '20', { state: 'ringing', answerTime: null, codec: '', media: '' });
  store.apply(ev({ type: 'call', action: 'created', call: c2 }));
  assert.equal(store.calls.size, 2);
  store.apply(ev({ type: 'call', action: 'answered', call: { ...c2, state: 'answered', answerTime: T0 } }));
  assert.equal(store.calls.get('c2')!.state, 'answered');
  store.apply(ev({ type: 'call', action: 'ended', call: c2, status: 200, callTag: 1, cause: 16 }));
  assert.equal(store.calls.size, 1);

  store.apply(ev({ type: 'callback', action: 'started', callback: { id: 'cb1', user1: '101', user2: '102', state: 'starting', startTime: T0, answerTime: null } }));
  store.apply(ev({ type: 'callback', action: 'bridged', callback: { id: 'cb1', user1: '101', user2: '102', state: 'bridged', startTime: T0, answerTime: T0 } }));
  assert.equal(store.callbacks.get('cb1')!.state, 'bridged');
  store.apply(ev({ type: 'callback', action: 'ended', callback: { id: 'cb1', user1: '101', user2: '102', state: 'bridged', startTime: T0, answerTime: T0 }, result: 0, cause: 16 }));
  assert.equal(store.callbacks.size, 0);

  store.apply(ev({ type: 'ivr', action: 'started', ivr: { id: 'i1', caller: '101', number: '800', file: 'main.xml', startTime: T0 } }));
  assert.equal(store.ivr.size, 1);
  store.apply(ev({ type: 'ivr', action: 'ended', ivr: { id: 'i1', caller: '101', number: '800', file: 'main.xml', startTime: T0 } }));
  assert.equal(store.ivr.size, 0);
  assert.equal(store.lastEventId, seq);
});

test('a reset (a new snapshot) replaces everything the events built', () => {
  const store = new LiveStore(() => T0);
  store.load(snapshot());
  store.apply(ev({ type: 'call', action: 'created', call: call('c9', '20', '101') }));
  store.apply(ev({ type: 'extension', number: '999', state: 'online' }));
  const next = snapshot();
  next.calls = [];
  next.extensions = next.extensions.slice(0, 1);
  store.load(next);
  assert.deepEqual([...store.extensions.keys()], ['101']);
  assert.equal(store.calls.size, 0);
});

test('calls per minute counts the calls created in the last minute', () => {
  let now = T0;
  const store = new LiveStore(() => now);
  store.load(snapshot());
  assert.equal(store.callsPerMinute(now), 0, 'calls of the snapshot were not seen starting');
  for (let i = 0; i < 5; i++) store.apply(ev({ type: 'call', action: 'created', call: call(`n${i}`, '101', '102') }, T0 + i * 20_000));
  // the same call announced twice counts once
  store.apply(ev({ type: 'call', action: 'created', call: call('n4', '101', '102') }, T0 + 80_000));
  now = T0 + 80_000;
  assert.equal(store.callsPerMinute(now), 3); // at 40, 60, 80 s
  now = T0 + 200_000;
  assert.equal(store.callsPerMinute(now), 0);
});

test('uptime runs on from the summary; packet counters merge into known calls only', () => {
  let now = T0;
  const store = new LiveStore(() => now);
  store.load(snapshot());
  assert.equal(store.uptimeSeconds(T0 + 5000), 3605);
  store.mergePackets([call('c1', '101', '102', { packets: { aToB: 5000, bToA: 4999 } }), call('gone', '1', '2')]);
  assert.deepEqual(store.calls.get('c1')!.packets, { aToB: 5000, bToA: 4999 });
  assert.equal(store.calls.has('gone'), false, 'a poll does not bring back an ended call');
  assert.deepEqual(store.processFigures(), { cpuPercent: 3.5, rssBytes: 80e6 });
  store.setSummary({ ...summary(), process: { cpuPercent: 12.5, rssBytes: 80e6 } });
  assert.deepEqual(store.processFigures(), { cpuPercent: 12.5, rssBytes: 80e6 });
  now += 1;
});

test('numbers sort numerically; sorts cycle; the filter matches numbers and names', () => {
  assert.deepEqual(['100', '20', '3', 'abc', '020'].sort(compareNumbers), ['3', '20', '020', '100', 'abc']);
  const store = new LiveStore(() => T0);
  store.load(snapshot());
  const keys = (sort: number, filter = '') => paneRows(store, 'extensions', sort, filter, T0).map((e) => e.number);
  assert.deepEqual(keys(0), ['20', '101', '102']);
  assert.equal(sortName('extensions', 1), 'state');
  assert.deepEqual(keys(1), ['101', '102', '20']); // talking, online, offline
  assert.deepEqual(keys(2), ['101', '102', '20']); // Alice, Bob, Zoe
  assert.deepEqual(keys(3), ['102', '101', '20']); // expires first; none last
  assert.deepEqual(keys(4), keys(0), 'the sort index wraps');
  assert.deepEqual(keys(0, 'bo'), ['102']);
  assert.deepEqual(keys(0, '10'), ['101', '102']);
  assert.deepEqual(keys(0, 'ZOE'), ['20']);
  assert.deepEqual(paneRows(store, 'calls', 0, '102', T0).map((c) => c.id), ['c1']);
  assert.deepEqual(paneRows(store, 'calls', 0, 'nobody', T0), []);
});

test('10,000 extensions: rows are derived quickly and only a window is shown', () => {
  const store = new LiveStore(() => T0);
  const s = snapshot();
  s.extensions = Array.from({ length: 10_000 }, (_, i) => ext(String(10000 + i), `User ${i}`, i % 3 === 0 ? 'online' : 'offline', i % 3 === 0 ? [contact(String(i))] : []));
  store.load(s);
  // CPU time rather than wall time: other processes share the machine.
  const started = process.cpuUsage();
  const rows = paneRows(store, 'extensions', 1, '', T0);
  const used = process.cpuUsage(started);
  const ms = (used.user + used.system) / 1000;
  assert.equal(rows.length, 10_000);
  assert.ok(ms < 500, `sorting 10,000 took ${ms} ms of CPU`);
  assert.equal(rows[0]!.state, 'online');
  assert.equal(paneRows(store, 'extensions', 0, 'User 999', T0).length, 11);
});

test('the window follows the cursor and never shows blank rows at the end', () => {
  assert.equal(windowTop(100, 0, 10, 0), 0);
  assert.equal(windowTop(100, 9, 10, 0), 0);
  assert.equal(windowTop(100, 10, 10, 0), 1);
  assert.equal(windowTop(100, 50, 10, 45), 45, 'the cursor is visible: the window stays');
  assert.equal(windowTop(100, 40, 10, 45), 40);
  assert.equal(windowTop(100, 99, 10, 95), 90, 'no blank rows below the last');
  assert.equal(windowTop(5, 3, 10, 2), 0, 'fewer rows than lines');
  assert.equal(windowTop(0, 0, 10, 7), 0);
  assert.equal(moveCursor(10, 8, 5), 9);
  assert.equal(moveCursor(10, 2, -5), 0);
  assert.equal(moveCursor(0, 0, 1), 0);
  const keys = ['a', 'b', 'c', 'd'];
  assert.equal(resolveCursor((i) => keys[i]!, 4, 'c', 0), 2, 'the selected row is found where it moved');
  assert.equal(resolveCursor((i) => keys[i]!, 4, 'gone', 9), 3, 'a vanished row: the index, kept within the rows');
  assert.equal(resolveCursor((i) => keys[i]!, 4, null, 1), 1);
});

function paneView(keys: string[], height = 5, call: { id: string; label: string } | null = null): PaneView {
  return { total: keys.length, keyAt: (i) => keys[i]!, height, selectedCall: () => call };
}

function press(ui: UiState, view: PaneView, ...keys: Array<string | KeyInfo>) {
  let state = ui;
  let effect;
  for (const k of keys) {
    const r = typeof k === 'string' ? handleKey(state, k, {}, view) : handleKey(state, '', k, view);
    state = r.state;
    effect = r.effect ?? effect;
  }
  return { state, effect };
}

test('keys: Tab cycles panes, arrows and pages move, / filters, s sorts, ? and Enter open views', () => {
  const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
  const view = paneView(keys);
  let ui = initialUi();
  ui = press(ui, view, { tab: true }).state;
  assert.equal(ui.pane, 'calls');
  ui = press(ui, view, { tab: true }, { tab: true }, { tab: true }).state;
  assert.equal(ui.pane, 'extensions');
  ui = press(ui, view, { tab: true, shift: true }).state;
  assert.equal(ui.pane, 'ivr');
  ui = press(ui, view, { tab: true }).state;

  ui = press(ui, view, { downArrow: true }, { downArrow: true }).state;
  assert.deepEqual(ui.selection.extensions, { key: 'k2', index: 2, top: 0 });
  ui = press(ui, view, { pageDown: true }).state;
  assert.equal(ui.selection.extensions.key, 'k6');
  assert.equal(ui.selection.extensions.top, 4, 'the window moves by the same page');
  ui = press(ui, view, { end: true }).state;
  assert.deepEqual(ui.selection.extensions, { key: 'k19', index: 19, top: 15 });
  ui = press(ui, view, { upArrow: true }, { home: true }).state;
  assert.deepEqual(ui.selection.extensions, { key: 'k0', index: 0, top: 0 });

  ui = press(ui, view, '/', '1', '0', 'x', { backspace: true }).state;
  assert.equal(ui.mode, 'filter');
  assert.equal(ui.filter, '10');
  ui = press(ui, view, 'q').state;
  assert.equal(ui.filter, '10q', 'q is text while typing the filter');
  ui = press(ui, view, { backspace: true }, { return: true }).state;
  assert.equal(ui.mode, 'normal');
  assert.equal(ui.filter, '10');
  ui = press(ui, view, { escape: true }).state;
  assert.equal(ui.filter, '', 'Esc clears the filter');

  ui = press(ui, view, 's').state;
  assert.equal(ui.sort.extensions, 1);
  ui = press(ui, view, 's', 's', 's').state;
  assert.equal(ui.sort.extensions, 0);

  ui = press(ui, view, '?').state;
  assert.equal(ui.mode, 'help');
  ui = press(ui, view, 'q').state;
  assert.equal(ui.mode, 'normal', 'q closes the help without quitting');
  ui = press(ui, view, { return: true }).state;
  assert.equal(ui.mode, 'details');
  ui = press(ui, view, { escape: true }).state;
  assert.equal(ui.mode, 'normal');
  assert.deepEqual(press(ui, view, 'q').effect, { kind: 'quit' });
});

test('keys: h asks before hanging up the selected call; n cancels, y hangs up', () => {
  const view = paneView(['c1'], 5, { id: 'c1', label: '101 -> 102' });
  let ui = initialUi();
  let r = press(ui, view, 'h');
  assert.equal(r.state.mode, 'normal');
  assert.match(r.state.message ?? '', /Calls pane/);
  ui = press(ui, view, { tab: true }).state;
  r = press(ui, view, 'h');
  assert.equal(r.state.mode, 'confirm');
  assert.equal(r.effect, undefined);
  r = press(r.state, view, 'n');
  assert.equal(r.state.mode, 'normal');
  assert.equal(r.effect, undefined);
  r = press(r.state, view, 'h', 'x', 'y');
  assert.deepEqual(r.effect, { kind: 'hangup', id: 'c1', label: '101 -> 102' });
  assert.equal(r.state.mode, 'normal');
  r = press(ui, paneView([], 5, null), 'h');
  assert.equal(r.state.message, 'no call selected');
});

test('text helpers: durations, expiry, fitting, columns', () => {
  assert.equal(formatDuration(5_000), '0:05');
  assert.equal(formatDuration(754_000), '12:34');
  assert.equal(formatDuration(3_723_000), '1:02:03');
  assert.equal(formatUptime(90_061), '1d 01:01:01');
  assert.equal(formatExpiresIn(T0 + 192_000, T0), '3m12s');
  assert.equal(formatExpiresIn(T0 - 1000, T0), '-', 'still there after its time: refreshed without an event');
  assert.equal(formatExpiresIn(null, T0), '-');
  assert.equal(fit('abcdef', 4), 'abc…');
  assert.equal(fit('ab', 4, 'right'), '  ab');
  assert.equal(textWidth('電話'), 4);
  assert.equal(textWidth(fit('電話番号', 5)), 5);
  for (const width of [80, 120, 200, 40]) {
    for (const pane of ['extensions', 'calls', 'callbacks', 'ivr'] as const) {
      const w = layoutColumns(COLUMNS[pane], width);
      const used = w.reduce((a, b) => a + b, 0) + w.length - 1;
      assert.ok(used <= width, `${pane} at ${width}: ${used}`);
      if (width >= 80) assert.equal(used, width, `${pane} fills ${width}`);
    }
  }
});

test('--once text: a header line and each section with its rows', () => {
  const s = snapshot();
  const store = new LiveStore(() => T0);
  store.load(s);
  const text = formatOnce(s, T0, {
    extensions: paneRows(store, 'extensions', 0, '', T0),
    calls: paneRows(store, 'calls', 0, '', T0),
    callbacks: [],
    ivr: [],
  });
  const lines = text.split('\n');
  assert.match(lines[0]!, /^minisipserver 0\.1\.0 on pbx1, up 01:00:00; extensions 2\/3 registered, calls 1 active, call-backs 0, IVR sessions 0$/);
  assert.ok(lines.includes('Extensions (3)'));
  assert.match(text, /^NUMBER +NAME +STATE +CONTACTS +USER-AGENT +ADDRESS +EXPIRES$/m);
  assert.match(text, /^101 +Alice +talking +1 +Yealink SIP-T46U +192\.0\.2\.10:5060 +5m00s$/m);
  assert.match(text, /^20 +Zoe +offline +0$/m);
  assert.match(text, /^101 -> 102 +answered +1:00 +PCMU +audio +3000\/2990$/m);
  assert.ok(lines.includes('Call-backs (0)'));
  assert.ok(lines.includes('IVR (0)'));
  assert.equal(rowKey('calls', s.calls[0]!), 'c1');
});
