// The Prometheus metrics (lib/admin/metrics.ts) of a real server on 127.0.0.1, built from its
// parts and its live state: real REGISTERs, a wrong password, a relayed call with RTP both ways,
// a CDR record; the exposition text parsed here and, when promtool is installed, checked by
// `promtool check metrics`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { ServerMetrics, type MetricsSources } from '../../lib/admin/metrics.js';
import type { CallView, LiveSource, SequencedEvent } from '../../lib/admin/types.js';
import { CallTag } from '../../lib/cdr/record.js';
import type { PbxServer } from '../../lib/pbx/server.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { audioSdp, Phone, PhoneBook } from '../helpers/phone.js';
import { RtpPeer } from '../helpers/rtp-peer.js';
import { branch } from '../helpers/sip-peer.js';

let srv: TestServer;
let metrics: ServerMetrics;
/** summary() calls so far: one per scrape. */
let summaries = 0;
const book = new PhoneBook(() => srv.port);
const closers: Array<() => void> = [];

/** The server's parts, as server.ts hands them to ServerMetrics. */
function sourcesOf(s: PbxServer): MetricsSources {
  return {
    summary: () => {
      summaries++;
      return s.live.summary();
    },
    stack: s.stack,
    auth: s['auth'],
    relay: () => s['relay'],
    cdr: s['recorder'],
  };
}

before(async () => {
  srv = await startTestServer({
    users: [['501', 'pw501'], ['502', 'pw502']],
    configure: (c) => {
      c.auth.algorithms = ['MD5'];
      c.media.relay = 'always';
    },
  });
  metrics = new ServerMetrics(sourcesOf(srv.server));
  metrics.watch(srv.server.live);
});

after(async () => {
  metrics.close();
  book.closeAll();
  for (const c of closers) c();
  await srv.stop();
});

// ---------------------------------------------------------------------------------------------
// The text exposition format, read strictly enough to catch a malformed line.

interface Exposition {
  /** `name{a="x",b="y"}` (labels sorted) -> value. */
  samples: Map<string, number>;
  /** Metric family name -> type. */
  types: Map<string, string>;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function parse(text: string): Exposition {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('# HELP ')) continue;
    const type = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      assert.ok(!types.has(type[1]!), `one TYPE line for ${type[1]}`);
      types.set(type[1]!, type[2]!);
      continue;
    }
    const m = SAMPLE.exec(line);
    assert.ok(m, `a well-formed sample line: ${line}`);
    const value = m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : /^nan$/i.test(m[4]!) ? NaN : Number(m[4]);
    assert.ok(!Number.isNaN(value) || /^nan$/i.test(m[4]!), `a number in: ${line}`);
    const family = m[1]!.replace(/_(bucket|sum|count)$/, '');
    assert.ok(types.has(m[1]!) || types.has(family), `a TYPE for ${m[1]}`);
    const labels = [...(m[3] ?? '').matchAll(LABEL)].map((l) => `${l[1]}="${l[2]}"`).sort();
    samples.set(labels.length > 0 ? `${m[1]}{${labels.join(',')}}` : m[1]!, value);
  }
  return { samples, types };
}

async function scrape(): Promise<Exposition> {
  return parse(await metrics.render());
}

function value(e: Exposition, key: string): number {
  const v = e.samples.get(key);
  assert.notEqual(v, undefined, `${key} is exposed`);
  return v!;
}

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 4000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ---------------------------------------------------------------------------------------------

test('every metric is exposed with its type before any traffic, Node process metrics included', async () => {
  assert.match(metrics.contentType, /^text\/plain; version=0\.0\.4/);
  const calls = summaries;
  const e = await scrape();
  assert.equal(summaries - calls, 1, 'the live state summary is read once per scrape');
  await scrape();
  assert.equal(summaries - calls, 2, 'and afresh for the next');
  const expected: Record<string, string> = {
    minisipserver_extensions: 'gauge',
    minisipserver_extensions_registered: 'gauge',
    minisipserver_contacts_registered: 'gauge',
    minisipserver_calls_active: 'gauge',
    minisipserver_calls_started_total: 'counter',
    minisipserver_calls_answered_total: 'counter',
    minisipserver_calls_ended_total: 'counter',
    minisipserver_call_setup_seconds: 'histogram',
    minisipserver_callbacks_active: 'gauge',
    minisipserver_ivr_sessions: 'gauge',
    minisipserver_sip_requests_received_total: 'counter',
    minisipserver_sip_responses_sent_total: 'counter',
    minisipserver_sip_parse_errors_total: 'counter',
    minisipserver_sip_overload_rejections_total: 'counter',
    minisipserver_sip_transactions: 'gauge',
    minisipserver_auth_failures_total: 'counter',
    minisipserver_relay_sessions: 'gauge',
    minisipserver_relay_sessions_limit: 'gauge',
    minisipserver_relay_forwarded_packets_total: 'counter',
    minisipserver_relay_forwarded_bytes_total: 'counter',
    minisipserver_relay_dropped_packets_total: 'counter',
    minisipserver_cdr_records_written_total: 'counter',
    minisipserver_cdr_write_errors_total: 'counter',
    minisipserver_cdr_db_records_written_total: 'counter',
    minisipserver_cdr_db_records_dropped_total: 'counter',
    minisipserver_cdr_db_records_refused_total: 'counter',
    minisipserver_cdr_db_records_waiting: 'gauge',
    process_cpu_seconds_total: 'counter',
    process_resident_memory_bytes: 'gauge',
    nodejs_eventloop_lag_seconds: 'gauge',
    nodejs_heap_size_used_bytes: 'gauge',
  };
  for (const [name, type] of Object.entries(expected)) assert.equal(e.types.get(name), type, `${name} is a ${type}`);
  for (const name of e.types.keys()) {
    assert.match(name, /^(minisipserver|process|nodejs)_/, `${name}: prefixed`);
    if (e.types.get(name) === 'counter') assert.match(name, /_total$/, `${name}: a counter ends in _total`);
    else assert.doesNotMatch(name, /_total$/, `${name}: only counters end in _total`);
  }
  assert.equal(value(e, 'minisipserver_extensions'), 2);
  assert.equal(value(e, 'minisipserver_relay_sessions_limit'), srv.server['relay']!.sessionLimit);
  assert.equal(value(e, 'minisipserver_sip_requests_received_total{method="other"}'), 0);
  assert.equal(value(e, 'minisipserver_calls_ended_total{outcome="no-answer"}'), 0, 'outcomes start at 0');
  assert.equal(value(e, 'minisipserver_sip_responses_sent_total{class="6xx"}'), 0);
});

test('REGISTERs, a wrong password, an unknown method and garbage move the SIP and auth counters', async () => {
  const before = await scrape();
  await book.get('501');
  await book.get('502');
  const intruder = await Phone.open('501', 'not-the-password', srv.port);
  closers.push(() => intruder.close());
  await assert.rejects(intruder.register(), /register 501: 403/);
  // A method the server does not know, and bytes that are no SIP message.
  intruder.send([
    `FROB sip:127.0.0.1:${srv.port} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${intruder.port};branch=${branch()};rport`,
    'Max-Forwards: 70',
    `From: <sip:501@127.0.0.1>;tag=f1`,
    `To: <sip:127.0.0.1>`,
    `Call-ID: frob-${process.pid}`,
    'CSeq: 1 FROB',
  ]);
  const frob = await intruder.waitResponse((r) => r.headers.get('call-id') === `frob-${process.pid}`);
  assert.ok(frob.status >= 400 && frob.status < 600, 'FROB refused');
  intruder.sendText('this is not SIP\r\n\r\n');

  const d = (e: Exposition, key: string) => value(e, key) - value(before, key);
  await until(async () => d(await scrape(), 'minisipserver_sip_parse_errors_total') === 1, 'the parse error counted');
  const e = await scrape();
  // Two phones and the intruder: each REGISTER once without and once with credentials.
  assert.equal(d(e, 'minisipserver_sip_requests_received_total{method="REGISTER"}'), 6);
  assert.equal(d(e, 'minisipserver_sip_requests_received_total{method="other"}'), 1, 'FROB counts as other');
  assert.equal(d(e, 'minisipserver_sip_requests_received_total{method="INVITE"}'), 0);
  assert.equal(d(e, 'minisipserver_sip_responses_sent_total{class="2xx"}'), 2, 'two 200 OK to REGISTER');
  const refused = 3 /* 401 */ + 1; /* 403 */
  const frobClass = `${Math.floor(frob.status / 100)}xx`;
  assert.equal(d(e, 'minisipserver_sip_responses_sent_total{class="4xx"}'), refused + (frobClass === '4xx' ? 1 : 0));
  assert.equal(d(e, 'minisipserver_auth_failures_total'), 1, 'the wrong password');
  assert.equal(value(e, 'minisipserver_contacts_registered'), 2);
  assert.equal(value(e, 'minisipserver_extensions_registered'), 2);
  assert.ok(value(e, 'minisipserver_sip_transactions{kind="server"}') >= 0);
  assert.equal(value(e, 'minisipserver_sip_transactions{kind="client"}'), srv.server.stack.transactions.stats.clientTransactions);
});

test('a relayed call with RTP both ways: call, relay and CDR counters move, and never go back', async () => {
  const a = await book.get('501');
  const b = await book.get('502');
  const rtpA = await RtpPeer.open();
  const rtpB = await RtpPeer.open();
  closers.push(() => rtpA.close(), () => rtpB.close());
  const before = await scrape();
  const d = (e: Exposition, key: string) => value(e, key) - value(before, key);

  const call = await a.invite('502', audioSdp(rtpA.port));
  const inc = await b.incoming();
  inc.ring();
  await call.provisional(180);
  inc.answer(audioSdp(rtpB.port));
  const ok = await call.final();
  assert.equal(ok.status, 200);
  await inc.waitAck();
  rtpA.aim(ok.body.toString());
  rtpB.aim(inc.sdp);
  const payload = new Uint8Array(160).fill(0xff);
  const count = 20;
  for (let i = 0; i < count; i++) {
    rtpA.send(0, payload);
    rtpB.send(0, payload);
  }
  await until(() => rtpA.packets.length === count && rtpB.packets.length === count, 'the RTP through the relay');

  const during = await scrape();
  assert.equal(d(during, 'minisipserver_calls_started_total'), 1);
  assert.equal(d(during, 'minisipserver_calls_answered_total'), 1);
  assert.equal(d(during, 'minisipserver_call_setup_seconds_count'), 1);
  const setup = d(during, 'minisipserver_call_setup_seconds_sum');
  assert.ok(setup >= 0 && setup < 5, `set-up time ${setup} s`);
  assert.equal(value(during, 'minisipserver_relay_sessions'), 1);
  assert.equal(value(during, 'minisipserver_calls_active'), 1);
  assert.equal(d(during, 'minisipserver_relay_forwarded_packets_total'), 2 * count);
  assert.equal(d(during, 'minisipserver_relay_forwarded_bytes_total'), 2 * count * (12 + 160));
  assert.equal(d(during, 'minisipserver_sip_requests_received_total{method="INVITE"}'), 2, 'the challenged INVITE and the one with credentials');
  assert.equal(d(during, 'minisipserver_sip_requests_received_total{method="ACK"}'), 2, 'ACK to the 407 and to the 200');
  assert.ok(d(during, 'minisipserver_sip_responses_sent_total{class="1xx"}') >= 1, 'the 180 to the caller');
  assert.ok(d(during, 'minisipserver_sip_responses_sent_total{class="2xx"}') >= 1, 'the 200 to the caller');
  assert.equal(d(during, 'minisipserver_sip_responses_sent_total{class="4xx"}'), 1, 'the 407');
  assert.equal(d(during, 'minisipserver_auth_failures_total'), 0);

  assert.equal((await call.bye()).status, 200);
  await until(async () => d(await scrape(), 'minisipserver_cdr_records_written_total') === 1, 'the CDR record written');
  await until(async () => value(await scrape(), 'minisipserver_relay_sessions') === 0, 'the relay session closed');
  const ended = await scrape();
  assert.equal(d(ended, 'minisipserver_cdr_write_errors_total'), 0);
  assert.equal(d(ended, 'minisipserver_sip_requests_received_total{method="BYE"}'), 1);
  assert.equal(d(ended, 'minisipserver_calls_ended_total{outcome="caller-bye"}'), 1);
  assert.equal(value(ended, 'minisipserver_calls_active'), 0);
  // The session's ports were reset for the next call: the totals keep what they counted.
  for (const key of ['minisipserver_relay_forwarded_packets_total', 'minisipserver_relay_forwarded_bytes_total', 'minisipserver_relay_dropped_packets_total']) {
    assert.ok(value(ended, key) >= value(during, key), `${key} does not go back`);
  }
  assert.equal(d(ended, 'minisipserver_relay_forwarded_packets_total'), 2 * count);
});

test('call events from the live state: started, answered with its set-up time, ended by outcome', async () => {
  const listeners = new Set<(e: SequencedEvent) => void>();
  const live: Pick<LiveSource, 'subscribe'> = {
    subscribe(l) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
  };
  let id = 0;
  const emit = (event: SequencedEvent['event']) => {
    for (const l of listeners) l({ id: ++id, time: Date.now(), event });
  };
  const call = (startTime: number, answerTime: number | null): CallView => ({
    id: `c${id}`,
    caller: '501',
    callerName: '',
    callee: '502',
    dialled: '502',
    route: 'local',
    state: answerTime === null ? 'ringing' : 'answered',
    startTime,
    answerTime,
    codec: '',
    media: '',
    packets: { aToB: 0, bToA: 0 },
  });
  // A second instance on the same server, watching the fake live state instead.
  const own = new ServerMetrics(sourcesOf(srv.server));
  const scrapeOwn = async () => parse(await own.render());
  const before = await scrapeOwn();
  const d = (e: Exposition, key: string) => value(e, key) - value(before, key);
  own.watch(live);
  emit({ type: 'call', action: 'created', call: call(1000, null) });
  emit({ type: 'call', action: 'answered', call: call(1000, 3500) });
  emit({ type: 'call', action: 'ended', call: call(1000, 3500), status: 200, callTag: CallTag.CalleeBye, cause: 16 });
  emit({ type: 'call', action: 'created', call: call(5000, null) });
  emit({ type: 'call', action: 'ended', call: call(5000, null), status: 486, callTag: CallTag.Busy, cause: 17 });
  emit({ type: 'call', action: 'ended', call: call(5000, null), status: 500, callTag: 99, cause: 0 });
  emit({ type: 'registration', action: 'added', number: '501', contact: 'sip:x', address: '127.0.0.1:5', transport: 'udp', userAgent: '', expiresAt: 0 });
  const e = await scrapeOwn();
  assert.equal(d(e, 'minisipserver_calls_started_total'), 2);
  assert.equal(d(e, 'minisipserver_calls_answered_total'), 1);
  assert.equal(d(e, 'minisipserver_calls_ended_total{outcome="callee-bye"}'), 1);
  assert.equal(d(e, 'minisipserver_calls_ended_total{outcome="busy"}'), 1);
  assert.equal(value(e, 'minisipserver_calls_ended_total{outcome="other"}'), 1, 'an unknown callTag');
  assert.equal(d(e, 'minisipserver_call_setup_seconds_count'), 1);
  assert.equal(d(e, 'minisipserver_call_setup_seconds_sum'), 2.5);
  assert.equal(d(e, 'minisipserver_call_setup_seconds_bucket{le="2"}'), 0);
  assert.equal(d(e, 'minisipserver_call_setup_seconds_bucket{le="4"}'), 1);
  own.watch(live);
  assert.equal(listeners.size, 1, 'watching again replaces the subscription');
  own.close();
  assert.equal(listeners.size, 0, 'close() unsubscribes');
});

test('promtool check metrics passes on the output', async (t) => {
  const which = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  if (which.error) {
    t.skip('promtool is not installed (Debian package prometheus; .ci/run installs it)');
    return;
  }
  const text = await metrics.render();
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(r.status, 0, `promtool check metrics:\n${r.stdout}${r.stderr}`);
  assert.equal(`${r.stdout}${r.stderr}`.trim(), '', 'no lint findings');
});
