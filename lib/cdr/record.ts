// The CDR record: column list, the FCI field (callTag=/cause=), the release-point enum, the
// Q.850 cause rules and the timestamp format. A record is kept in its text form (one string per
// column) so that every file format round-trips it exactly; buildCdrRecord() makes one from the
// typed facts of a finished call.

export const CDR_COLUMNS = [
  'record_id',
  'record_type',
  'party_kind',
  'call_id',
  'caller',
  'caller_name',
  'callee',
  'dialled',
  'route',
  'start_time',
  'answer_time',
  'end_time',
  'duration',
  'billable',
  'status',
  'fci',
  'caller_address',
  'callee_address',
  'media',
  'codec',
  'user_agent',
  'node',
] as const;

export type CdrColumn = (typeof CDR_COLUMNS)[number];
export type CdrRecord = Record<CdrColumn, string>;

/** Where in the server the call was released. Numbers are part of the public file format. */
export enum CallTag {
  CallerBye = 1,
  CalleeBye = 2,
  CallerCancel = 3,
  CalleeRejected = 4,
  NoAnswer = 5,
  RoutingFailure = 6,
  DurationLimit = 7,
  AdminRelease = 8,
  Busy = 9,
  UnknownNumber = 10,
  Unregistered = 11,
  MediaTimeout = 12,
  ServerShutdown = 13,
  AuthFailure = 14,
  NoResponse = 15,
}

const CALL_TAG_NAMES: Record<CallTag, string> = {
  [CallTag.CallerBye]: 'caller-bye',
  [CallTag.CalleeBye]: 'callee-bye',
  [CallTag.CallerCancel]: 'caller-cancel',
  [CallTag.CalleeRejected]: 'callee-rejected',
  [CallTag.NoAnswer]: 'no-answer',
  [CallTag.RoutingFailure]: 'routing-failure',
  [CallTag.DurationLimit]: 'duration-limit',
  [CallTag.AdminRelease]: 'admin-release',
  [CallTag.Busy]: 'busy',
  [CallTag.UnknownNumber]: 'unknown-number',
  [CallTag.Unregistered]: 'unregistered',
  [CallTag.MediaTimeout]: 'media-timeout',
  [CallTag.ServerShutdown]: 'server-shutdown',
  [CallTag.AuthFailure]: 'auth-failure',
  [CallTag.NoResponse]: 'no-response',
};

/** Q.850 cause written when nothing more specific is known. */
export const DEFAULT_CAUSE: Record<CallTag, number> = {
  [CallTag.CallerBye]: 16,
  [CallTag.CalleeBye]: 16,
  [CallTag.CallerCancel]: 16,
  [CallTag.CalleeRejected]: 21,
  [CallTag.NoAnswer]: 19,
  [CallTag.RoutingFailure]: 3,
  [CallTag.DurationLimit]: 16,
  [CallTag.AdminRelease]: 16,
  [CallTag.Busy]: 17,
  [CallTag.UnknownNumber]: 1,
  [CallTag.Unregistered]: 20,
  [CallTag.MediaTimeout]: 102,
  [CallTag.ServerShutdown]: 41,
  [CallTag.AuthFailure]: 21,
  [CallTag.NoResponse]: 18,
};

export const ALL_CALL_TAGS: readonly CallTag[] = Object.keys(CALL_TAG_NAMES).map(Number) as CallTag[];

export function callTagName(tag: number): string | undefined {
  return CALL_TAG_NAMES[tag as CallTag];
}

/** Accepts a tag name (`busy`, case-insensitive) or number (`9`); undefined if unknown. */
export function parseCallTag(s: string): CallTag | undefined {
  const t = s.trim().toLowerCase();
  if (/^\d+$/.test(t)) {
    const n = Number(t);
    return CALL_TAG_NAMES[n as CallTag] ? (n as CallTag) : undefined;
  }
  for (const tag of ALL_CALL_TAGS) if (CALL_TAG_NAMES[tag] === t) return tag;
  return undefined;
}

// SIP final status -> Q.850 cause, after RFC 3398 section 8.2.6.1 (SIP -> ISUP direction).
const SIP_STATUS_CAUSE: Record<number, number> = {
  400: 41, 401: 21, 402: 21, 403: 21, 404: 1, 405: 63, 406: 79, 407: 21, 408: 102, 410: 22,
  413: 127, 414: 28, 415: 79, 416: 127, 420: 127, 421: 127, 423: 127, 480: 18, 481: 41, 482: 25,
  483: 25, 484: 28, 485: 1, 486: 17, 487: 16, 488: 127, 500: 41, 501: 79, 502: 38, 503: 63,
  504: 102, 505: 127, 513: 127, 600: 17, 603: 21, 604: 1, 606: 58,
};

export function causeFromSipStatus(status: number): number {
  const known = SIP_STATUS_CAUSE[status];
  if (known !== undefined) return known;
  if (status >= 500 && status < 600) return 41;
  return 21;
}

/** The cause of a `Reason: Q.850;cause=N` header value (several reasons may be comma-joined). */
export function parseReasonCause(reason: string | undefined): number | undefined {
  if (!reason) return undefined;
  const m = /\bQ\.850\b[^,]*?\bcause\s*=\s*(\d{1,3})\b/i.exec(reason);
  return m ? Number(m[1]) : undefined;
}

/** The rule for a call failed by a final 4xx-6xx: a Q.850 Reason cause wins, else the status map. */
export function causeForFinalResponse(status: number, reasonHeader?: string): number {
  if (status >= 400 && status <= 699) {
    const fromReason = parseReasonCause(reasonHeader);
    if (fromReason !== undefined) return fromReason;
  }
  return causeFromSipStatus(status);
}

export function formatFci(tag: number, cause: number): string {
  return `callTag=${tag};cause=${cause}`;
}

export interface Fci {
  callTag?: number;
  cause?: number;
  /** Every name=value pair, including unknown ones (kept for forward compatibility). */
  params: Record<string, string>;
}

export function parseFci(s: string): Fci {
  const fci: Fci = { params: {} };
  for (const part of s.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    fci.params[name] = value;
    if (/^\d+$/.test(value)) {
      if (name === 'callTag') fci.callTag = Number(value);
      else if (name === 'cause') fci.cause = Number(value);
    }
  }
  return fci;
}

const fciCache = new Map<string, Fci>();
const FCI_CACHE_MAX = 4096;

/**
 * parseFci for readers going through many records: a file holds few distinct FCI values, so
 * they are parsed once. Treat the result as read-only.
 */
export function parseFciCached(s: string): Fci {
  let fci = fciCache.get(s);
  if (fci === undefined) {
    fci = parseFci(s);
    // The key is copied: a slice of a read chunk would keep the whole chunk in memory.
    if (fciCache.size < FCI_CACHE_MAX) fciCache.set(Buffer.from(s, 'utf8').toString('utf8'), fci);
  }
  return fci;
}

// ---- timestamps -------------------------------------------------------------------------------

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/**
 * The server's UTC offset in minutes (east positive) at instant `ms`. Offsets change only at
 * whole seconds, so the last few seconds asked for are remembered (a call's records ask for the
 * same seconds several times, and the time zone lookup is the costly part).
 */
export function localOffsetMin(ms: number): number {
  const sec = Math.floor(ms / 1000);
  const slot = sec & 3;
  if (offsetSecs[slot] === sec) return offsetMins[slot]!;
  const off = -new Date(ms).getTimezoneOffset();
  offsetSecs[slot] = sec;
  offsetMins[slot] = off;
  return off;
}
const offsetSecs = [NaN, NaN, NaN, NaN];
const offsetMins = [0, 0, 0, 0];

/** `2026-11-26T09:15:02` of the last few (second, offset) formatted, keyed like localOffsetMin's. */
const stampKeys = [NaN, NaN, NaN, NaN];
const stampOffsets = [0, 0, 0, 0];
const stampPrefixes = ['', '', '', ''];
const stampSuffixes = ['', '', '', ''];

/** `2026-11-26T09:15:02.123+01:00`; the offset defaults to the server's local offset at `ms`. */
export function formatTimestamp(ms: number, tzOffsetMin: number = localOffsetMin(ms)): string {
  // As new Date(x) does: the time value truncated to whole milliseconds.
  const local = Math.trunc(ms + tzOffsetMin * 60_000);
  const sec = Math.floor(local / 1000);
  const slot = sec & 3;
  const millis = local - sec * 1000;
  if (stampKeys[slot] !== sec || stampOffsets[slot] !== tzOffsetMin) {
    const d = new Date(sec * 1000);
    const sign = tzOffsetMin < 0 ? '-' : '+';
    const off = Math.abs(tzOffsetMin);
    stampPrefixes[slot] =
      `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}` +
      `T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.`;
    stampSuffixes[slot] = `${sign}${pad(Math.floor(off / 60))}:${pad(off % 60)}`;
    stampKeys[slot] = sec;
    stampOffsets[slot] = tzOffsetMin;
  }
  return stampPrefixes[slot]! + (millis < 10 ? '00' : millis < 100 ? '0' : '') + millis + stampSuffixes[slot]!;
}

const TIMESTAMP_RE = /^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:?\d\d)$/;

/** Epoch ms of an ISO 8601 timestamp that carries its UTC offset (or Z); null if invalid. */
export function parseTimestamp(s: string): number | null {
  if (s.length === 29) {
    const fast = parseCanonicalTimestamp(s);
    if (fast !== undefined) return fast;
  }
  const m = TIMESTAMP_RE.exec(s);
  if (!m) return null;
  const [, y, mo, d, h, mi, sec, frac, zone] = m;
  let offsetMin = 0;
  if (zone !== 'Z') {
    const digits = zone!.replace(':', '');
    offsetMin = (Number(digits.slice(1, 3)) * 60 + Number(digits.slice(3, 5))) * (zone![0] === '-' ? -1 : 1);
    if (Number(digits.slice(1, 3)) > 23 || Number(digits.slice(3, 5)) > 59) return null;
  }
  const ms = frac ? Number(frac.slice(0, 3).padEnd(3, '0')) : 0;
  return toEpoch(Number(y), Number(mo), Number(d), Number(h), Number(mi), Number(sec), ms, offsetMin);
}

/**
 * The format we write, `2026-11-26T09:15:02.123+01:00`, read character by character: the
 * readers call this three times per record, and it is several times faster than the regex.
 * undefined = not in exactly that shape (the caller falls back to the general parser).
 */
function parseCanonicalTimestamp(s: string): number | null | undefined {
  if (s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45 || s.charCodeAt(10) !== 84 || s.charCodeAt(13) !== 58 ||
      s.charCodeAt(16) !== 58 || s.charCodeAt(19) !== 46 || s.charCodeAt(26) !== 58) return undefined;
  const sign = s.charCodeAt(23);
  if (sign !== 43 && sign !== 45) return undefined;
  // Records come in time order, so the date, hour and offset mostly repeat: remember the last.
  let hourStart: number;
  if (s.startsWith(lastHour.prefix) && s.endsWith(lastHour.offset)) {
    hourStart = lastHour.epoch;
  } else {
    const oh = digits(s, 24, 2), om = digits(s, 27, 2);
    if (!(oh <= 23 && om <= 59)) return null;
    const offsetMin = (oh * 60 + om) * (sign === 45 ? -1 : 1);
    const t = toEpoch(digits(s, 0, 4), digits(s, 5, 2), digits(s, 8, 2), digits(s, 11, 2), 0, 0, 0, offsetMin);
    if (t === null || Number.isNaN(t)) return null;
    lastHour = { prefix: s.slice(0, 13), offset: s.slice(23), epoch: t };
    hourStart = t;
  }
  const minute = digits(s, 14, 2), second = digits(s, 17, 2), ms = digits(s, 20, 3);
  if (!(minute <= 59 && second <= 59 && ms >= 0)) return null;
  return hourStart + minute * 60_000 + second * 1000 + ms;
}

let lastHour = { prefix: '\0', offset: '\0', epoch: 0 };

/** The decimal number in s[at, at+len); NaN if any of those characters is not a digit. */
function digits(s: string, at: number, len: number): number {
  let v = 0;
  for (let i = at; i < at + len; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return NaN;
    v = v * 10 + c;
  }
  return v;
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

export function toEpoch(year: number, month: number, day: number, hour: number, minute: number, second: number, ms: number, offsetMin: number): number | null {
  if (!(month >= 1 && month <= 12 && day >= 1 && hour <= 23 && minute <= 59 && second <= 59)) return null;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  if (day > DAYS_IN_MONTH[month - 1]! + (month === 2 && leap ? 1 : 0)) return null;
  return Date.UTC(year, month - 1, day, hour, minute, second, ms) - offsetMin * 60_000;
}

// ---- building a record from a finished call ---------------------------------------------------

export interface CallSummary {
  callId: string;
  caller: string;
  callerName?: string;
  callee: string;
  dialled: string;
  /** `local`, `trunk:<name>`, `ivr:<name>`, ... */
  route: string;
  startMs: number;
  answerMs?: number;
  endMs: number;
  status: number;
  tag: CallTag;
  /** Defaults to DEFAULT_CAUSE[tag]. */
  cause?: number;
  recordType?: 'O' | 'T';
  partyKind?: 'local' | 'outside';
  callerAddress?: string;
  calleeAddress?: string;
  media?: string;
  codec?: string;
  userAgent?: string;
  node?: string;
  /** UTC offset for the timestamps; defaults to the server's local offset. */
  tzOffsetMin?: number;
}

let recordSeq = 0;

/** `<start ms, base36, 9 chars>-<seq, base36, 4 chars>`: sorts by start time, unique per process. */
export function makeRecordId(startMs: number, seq: number): string {
  return `${Math.max(0, Math.floor(startMs)).toString(36).padStart(9, '0')}-${(seq % 36 ** 4).toString(36).padStart(4, '0')}`;
}

export function buildCdrRecord(call: CallSummary): CdrRecord {
  const ts = (ms: number) => formatTimestamp(ms, call.tzOffsetMin ?? localOffsetMin(ms));
  const answered = call.answerMs !== undefined;
  const billable = answered ? Math.max(0, Math.ceil((call.endMs - call.answerMs!) / 1000)) : 0;
  return {
    record_id: makeRecordId(call.startMs, recordSeq++),
    record_type: call.recordType ?? 'O',
    party_kind: call.partyKind ?? 'local',
    call_id: call.callId,
    caller: call.caller,
    caller_name: call.callerName ?? '',
    callee: call.callee,
    dialled: call.dialled,
    route: call.route,
    start_time: ts(call.startMs),
    answer_time: answered ? ts(call.answerMs!) : '',
    end_time: ts(call.endMs),
    duration: (Math.max(0, call.endMs - call.startMs) / 1000).toFixed(3),
    billable: String(billable),
    status: String(call.status),
    fci: formatFci(call.tag, call.cause ?? DEFAULT_CAUSE[call.tag]),
    caller_address: call.callerAddress ?? '',
    callee_address: call.calleeAddress ?? '',
    media: call.media ?? '',
    codec: call.codec ?? '',
    user_agent: call.userAgent ?? '',
    node: call.node ?? '',
  };
}

/** A record with every column empty, to fill from a file whose header lacks some columns. */
export function emptyCdrRecord(): CdrRecord {
  const rec = {} as CdrRecord;
  for (const c of CDR_COLUMNS) rec[c] = '';
  return rec;
}
