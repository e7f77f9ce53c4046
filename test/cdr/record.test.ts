import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildCdrRecord, CallTag, callTagName, parseCallTag, causeForFinalResponse, causeFromSipStatus,
  DEFAULT_CAUSE, formatFci, parseFci, formatTimestamp, parseTimestamp, parseReasonCause, CDR_COLUMNS, ALL_CALL_TAGS,
} from '../../lib/cdr/record.js';

test('timestamps: millisecond precision with the offset, and back', () => {
  const ms = Date.UTC(2026, 10, 26, 8, 15, 2, 123);
  assert.equal(formatTimestamp(ms, 60), '2026-11-26T09:15:02.123+01:00');
  assert.equal(formatTimestamp(ms, -330), '2026-11-26T02:45:02.123-05:30');
  assert.equal(formatTimestamp(ms, 0), '2026-11-26T08:15:02.123+00:00');
  assert.equal(parseTimestamp('2026-11-26T09:15:02.123+01:00'), ms);
  assert.equal(parseTimestamp('2026-11-26T02:45:02.123-05:30'), ms);
  assert.equal(parseTimestamp('2026-11-26T08:15:02.123Z'), ms);
  assert.equal(parseTimestamp('2026-11-26 08:15:02.1234+0000'), ms, 'space separator, extra digits truncated');
  for (let i = 0; i < 200; i++) {
    const t = 1_700_000_000_000 + i * 7_777_777;
    assert.equal(parseTimestamp(formatTimestamp(t)), t, 'local offset round trip');
  }
});

test('timestamps: invalid text is rejected, not guessed', () => {
  for (const bad of ['', '2026-11-26', '2026-11-26T09:15:02', '2026-13-01T00:00:00Z', '2026-02-30T00:00:00Z',
    '2026-11-26T24:00:00Z', '2026-11-26T09:60:00Z', 'x2026-11-26T09:15:02Z', '2026-11-26T09:15:02+25:00']) {
    assert.equal(parseTimestamp(bad), null, bad);
  }
});

test('FCI: format, parse, extra parameters kept', () => {
  assert.equal(formatFci(CallTag.Busy, 17), 'callTag=9;cause=17');
  assert.deepEqual(parseFci('callTag=9;cause=17'), { callTag: 9, cause: 17, params: { callTag: '9', cause: '17' } });
  const extra = parseFci('cause=16; callTag=1;rate=peak;junk');
  assert.equal(extra.cause, 16);
  assert.equal(extra.callTag, 1);
  assert.equal(extra.params.rate, 'peak');
  assert.deepEqual(parseFci(''), { params: {} });
  assert.equal(parseFci('callTag=x').callTag, undefined);
});

test('call tags: every tag has a unique name, a default cause, and parses by name or number', () => {
  const names = new Set(ALL_CALL_TAGS.map((t) => callTagName(t)));
  assert.equal(names.size, ALL_CALL_TAGS.length);
  assert.ok(ALL_CALL_TAGS.length >= 15);
  for (const tag of ALL_CALL_TAGS) {
    assert.equal(parseCallTag(callTagName(tag)!), tag);
    assert.equal(parseCallTag(String(tag)), tag);
    assert.equal(typeof DEFAULT_CAUSE[tag], 'number');
  }
  assert.equal(parseCallTag('BUSY'), CallTag.Busy);
  assert.equal(parseCallTag('nope'), undefined);
  assert.equal(parseCallTag('99'), undefined);
  assert.equal(DEFAULT_CAUSE[CallTag.CallerBye], 16);
  assert.equal(DEFAULT_CAUSE[CallTag.Busy], 17);
  assert.equal(DEFAULT_CAUSE[CallTag.NoAnswer], 19);
  assert.equal(DEFAULT_CAUSE[CallTag.UnknownNumber], 1);
  assert.equal(DEFAULT_CAUSE[CallTag.Unregistered], 20);
});

test('cause of a final 4xx-6xx: a Q.850 Reason keeps its cause, otherwise the status map', () => {
  assert.equal(causeForFinalResponse(486, 'Q.850;cause=34;text="No circuit"'), 34);
  assert.equal(causeForFinalResponse(503, 'SIP;cause=503;text="x", Q.850 ; cause = 42'), 42);
  assert.equal(causeForFinalResponse(486, 'SIP;cause=486'), 17, 'a non-Q.850 reason is ignored');
  assert.equal(causeForFinalResponse(486), 17);
  assert.equal(causeForFinalResponse(404), 1);
  assert.equal(causeForFinalResponse(603), 21);
  assert.equal(causeForFinalResponse(503), 63);
  assert.equal(causeForFinalResponse(200, 'Q.850;cause=34'), causeFromSipStatus(200), 'only failures take the Reason');
  assert.equal(causeFromSipStatus(499), 21);
  assert.equal(causeFromSipStatus(599), 41);
  assert.equal(parseReasonCause(undefined), undefined);
});

test('buildCdrRecord: durations, billable rounding up, empty answer time', () => {
  const answered = buildCdrRecord({
    callId: 'x@y', caller: '101', callee: '200', dialled: '9200', route: 'local', status: 200, tag: CallTag.CallerBye,
    startMs: Date.UTC(2026, 0, 1, 10, 0, 0), answerMs: Date.UTC(2026, 0, 1, 10, 0, 4, 500), endMs: Date.UTC(2026, 0, 1, 10, 1, 4, 501), tzOffsetMin: 60,
  });
  assert.deepEqual(Object.keys(answered), [...CDR_COLUMNS]);
  assert.equal(answered.duration, '64.501');
  assert.equal(answered.billable, '61', '60.001 s rounds up');
  assert.equal(answered.answer_time, '2026-01-01T11:00:04.500+01:00');
  assert.equal(answered.fci, 'callTag=1;cause=16');
  assert.equal(answered.record_type, 'O');
  const failed = buildCdrRecord({
    callId: 'z', caller: '1', callee: '2', dialled: '2', route: 'local', status: 486, tag: CallTag.Busy, cause: 34,
    startMs: 1000, endMs: 3000,
  });
  assert.equal(failed.answer_time, '');
  assert.equal(failed.billable, '0');
  assert.equal(failed.fci, 'callTag=9;cause=34');
  const ids = Array.from({ length: 1000 }, () => buildCdrRecord({ ...failedInput(), startMs: 5000 }).record_id);
  assert.equal(new Set(ids).size, 1000, 'unique within one millisecond');
  const earlier = buildCdrRecord({ ...failedInput(), startMs: 4999 }).record_id;
  assert.ok(earlier < ids[0]!, 'ids sort by start time');
});

function failedInput() {
  return { callId: 'z', caller: '1', callee: '2', dialled: '2', route: 'local', status: 486, tag: CallTag.Busy, startMs: 1000, endMs: 3000 };
}
