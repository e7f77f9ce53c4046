// Row filters of `cdr query` / `cdr stats`, and the parsing of their arguments.
import { parseFciCached, parseTimestamp, type CallTag } from './record.js';
import type { CdrRow } from './row.js';
import { COL, type RowView } from './view.js';

export interface CdrFilter {
  /** Epoch ms, inclusive, compared with the start time. */
  from?: number;
  /** Epoch ms, exclusive. */
  to?: number;
  caller?: string;
  callee?: string;
  /** Glob (`*`, `?`) matched against caller, callee and dialled number. */
  number?: string;
  cause?: number;
  tag?: CallTag;
  /** `486`, or a class such as `4xx`. */
  status?: string;
  /** Seconds, compared with the duration column. */
  minDuration?: number;
  answered?: boolean;
  failed?: boolean;
}

const TIME_ARG_RE = /^(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:\.(\d{1,3}))?)?)?(Z|[+-]\d\d:?\d\d)?$/;

/**
 * `2026-11-26`, `2026-11-26T10:00`, `2026-11-26 10:00:05.250`, with an optional offset (`Z`,
 * `+01:00`); no offset = the local time zone. As an upper bound a bare date means the end of that
 * day. Returns epoch ms, or null if the text is not such a time.
 */
export function parseTimeArg(s: string, bound: 'from' | 'to'): number | null {
  const m = TIME_ARG_RE.exec(s.trim());
  if (!m) return null;
  const [, y, mo, d, h, mi, sec, ms, zone] = m;
  const dateOnly = h === undefined;
  const parts = {
    y: Number(y), mo: Number(mo), d: Number(d), h: Number(h ?? 0), mi: Number(mi ?? 0),
    s: Number(sec ?? 0), ms: Number((ms ?? '0').padEnd(3, '0')),
  };
  let t: number | null;
  if (zone !== undefined) {
    const iso = `${y}-${mo}-${d}T${pad(parts.h)}:${pad(parts.mi)}:${pad(parts.s)}.${String(parts.ms).padStart(3, '0')}${zone}`;
    t = parseTimestamp(iso);
  } else {
    const date = new Date(parts.y, parts.mo - 1, parts.d, parts.h, parts.mi, parts.s, parts.ms);
    const valid = date.getMonth() === parts.mo - 1 && date.getDate() === parts.d && parts.h < 24 && parts.mi < 60 && parts.s < 60;
    t = valid ? date.getTime() : null;
  }
  if (t === null) return null;
  if (dateOnly && bound === 'to') {
    if (zone !== undefined) return t + 86_400_000;
    return new Date(parts.y, parts.mo - 1, parts.d + 1).getTime(); // DST-safe "next midnight"
  }
  return t;
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

export function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

/** `4xx` or `486`, as a test on the status column; null if malformed. */
export function statusMatcher(spec: string): ((status: string) => boolean) | null {
  const s = spec.trim().toLowerCase();
  if (/^[1-6]xx$/.test(s)) return (status) => status.length === 3 && status[0] === s[0];
  if (/^\d{3}$/.test(s)) return (status) => status === s;
  return null;
}

export function compileFilter(f: CdrFilter): (row: CdrRow) => boolean {
  const tests: ((row: CdrRow) => boolean)[] = [];
  if (f.from !== undefined) tests.push((r) => r.startMs >= f.from!);
  if (f.to !== undefined) tests.push((r) => r.startMs < f.to!);
  if (f.caller !== undefined) tests.push((r) => r.rec.caller === f.caller);
  if (f.callee !== undefined) tests.push((r) => r.rec.callee === f.callee);
  if (f.number !== undefined) {
    const re = globToRegExp(f.number);
    tests.push((r) => re.test(r.rec.caller) || re.test(r.rec.callee) || re.test(r.rec.dialled));
  }
  if (f.cause !== undefined) tests.push((r) => parseFciCached(r.rec.fci).cause === f.cause);
  if (f.tag !== undefined) tests.push((r) => parseFciCached(r.rec.fci).callTag === f.tag);
  if (f.status !== undefined) {
    const match = statusMatcher(f.status);
    if (match) tests.push((r) => match(r.rec.status));
  }
  if (f.minDuration !== undefined) tests.push((r) => Number(r.rec.duration) >= f.minDuration!);
  if (f.answered) tests.push((r) => r.answerMs !== null);
  if (f.failed) tests.push((r) => r.answerMs === null);
  if (tests.length === 0) return () => true;
  return (row) => {
    for (const t of tests) if (!t(row)) return false;
    return true;
  };
}

/** compileFilter() for record views (see view.ts): the same tests, reading only what they need. */
export function compileViewFilter(f: CdrFilter): (v: RowView) => boolean {
  const tests: ((v: RowView) => boolean)[] = [];
  if (f.from !== undefined) tests.push((v) => v.startMs >= f.from!);
  if (f.to !== undefined) tests.push((v) => v.startMs < f.to!);
  if (f.caller !== undefined) {
    const value = f.caller, bytes = Buffer.from(value, 'utf8');
    tests.push((v) => v.fieldIs(COL.caller, value, bytes));
  }
  if (f.callee !== undefined) {
    const value = f.callee, bytes = Buffer.from(value, 'utf8');
    tests.push((v) => v.fieldIs(COL.callee, value, bytes));
  }
  if (f.number !== undefined) {
    const re = globToRegExp(f.number);
    tests.push((v) => re.test(v.text(COL.caller)) || re.test(v.text(COL.callee)) || re.test(v.text(COL.dialled)));
  }
  if (f.cause !== undefined) tests.push((v) => v.fci().cause === f.cause);
  if (f.tag !== undefined) tests.push((v) => v.fci().callTag === f.tag);
  if (f.status !== undefined) {
    const match = statusMatcher(f.status);
    if (match) tests.push((v) => match(v.text(COL.status)));
  }
  if (f.minDuration !== undefined) tests.push((v) => Number(v.text(COL.duration)) >= f.minDuration!);
  if (f.answered) tests.push((v) => v.answerMs !== null);
  if (f.failed) tests.push((v) => v.answerMs === null);
  if (tests.length === 0) return () => true;
  if (tests.length === 1) return tests[0]!;
  return (view) => {
    for (const t of tests) if (!t(view)) return false;
    return true;
  };
}
