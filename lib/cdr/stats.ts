// `cdr stats`: totals, answer-seizure ratio, average call duration, billable minutes, busiest
// hour, optionally per group. Memory grows with the number of groups, not of rows.
import { callTagName, type Fci } from './record.js';
import { compileViewFilter, type CdrFilter } from './filter.js';
import { readCdrFiles, type ReadOptions, type RowSource } from './source.js';
import { BufferedOutput } from './output.js';
import { formatCsvLine } from './csv.js';
import { COL, type RowView } from './view.js';
import { statsSplit, type ParallelOptions } from './stats-split.js';

export const STATS_GROUPS = ['cause', 'tag', 'caller', 'callee', 'hour', 'day'] as const;
export type StatsGroup = (typeof STATS_GROUPS)[number];
export type StatsFormat = 'table' | 'csv' | 'json';

class Tally {
  calls = 0;
  answered = 0;
  talkMs = 0;
  billableSec = 0;
  /** Every value added to talkMs and billableSec was a whole number >= 0 (so the sums are exact
   * while below 2^53, and adding them up in another order gives the same result). */
  whole = true;

  add(row: RowView): void {
    this.calls++;
    const answerMs = row.answerMs;
    if (answerMs !== null) {
      this.answered++;
      const talk = Math.max(0, row.endMs - answerMs);
      this.talkMs += talk;
      if (!Number.isInteger(talk)) this.whole = false;
      const billable = row.billable();
      if (Number.isFinite(billable)) {
        this.billableSec += billable;
        if (!(Number.isInteger(billable) && billable >= 0)) this.whole = false;
      }
    }
  }

  data(): TallyData {
    return { calls: this.calls, answered: this.answered, talkMs: this.talkMs, billableSec: this.billableSec, whole: this.whole };
  }

  /**
   * Whether adding `d` (the tally of the records that follow) gives exactly what adding those
   * records one by one would: whole numbers all along, far from the limit of exact integers.
   */
  canMerge(d: TallyData): boolean {
    const exact = (a: number, b: number) => Number.isInteger(a) && a >= 0 && a + b <= 2 ** 52;
    return d.whole && exact(this.talkMs, d.talkMs) && exact(this.billableSec, d.billableSec);
  }

  merge(d: TallyData): void {
    this.calls += d.calls;
    this.answered += d.answered;
    this.talkMs += d.talkMs;
    this.billableSec += d.billableSec;
    this.whole &&= d.whole;
  }

  summary() {
    return {
      calls: this.calls,
      answered: this.answered,
      failed: this.calls - this.answered,
      /** Answered / all, percent. */
      asr: this.calls === 0 ? 0 : round((this.answered / this.calls) * 100, 2),
      /** Mean answer->end of answered calls, seconds. */
      acd: this.answered === 0 ? 0 : round(this.talkMs / this.answered / 1000, 1),
      billableMinutes: round(this.billableSec / 60, 2),
    };
  }
}

type Summary = ReturnType<Tally['summary']>;

interface TallyData {
  calls: number;
  answered: number;
  talkMs: number;
  billableSec: number;
  whole: boolean;
}

/** The aggregates of a part of the input (a worker's share of a file). */
export interface StatsPart {
  total: TallyData;
  /** Calls per hour. */
  hours: [string, number][];
  /** Groups in the order they were first met. */
  groups: [string, TallyData][];
  rows: number;
}

function round(n: number, places: number): number {
  const f = 10 ** places;
  return Math.round(n * f) / f;
}

function groupKey(by: StatsGroup): (row: RowView) => string {
  switch (by) {
    case 'cause': {
      // FCI objects are shared between equal FCI texts (parseFciCached): one key string each.
      const keys = new Map<Fci, string>();
      return (r) => {
        const fci = r.fci();
        let k = keys.get(fci);
        if (k === undefined) {
          k = String(fci.cause ?? '');
          if (keys.size >= 4096) keys.clear();
          keys.set(fci, k);
        }
        return k;
      };
    }
    case 'tag': return (r) => { const t = r.fci().callTag; return t === undefined ? '' : `${t} ${callTagName(t) ?? '?'}`; };
    case 'caller': return (r) => r.text(COL.caller);
    case 'callee': return (r) => r.text(COL.callee);
    case 'hour': return (r) => r.startHour().slice(11, 13);
    case 'day': return (r) => r.startHour().slice(0, 10);
  }
}

/** Numeric keys (cause, tag, hour) sort as numbers, others as text; empty key last. */
function compareKeys(a: string, b: string): number {
  if (a === '' || b === '') return a === b ? 0 : a === '' ? 1 : -1;
  const na = parseInt(a, 10), nb = parseInt(b, 10);
  if (!Number.isNaN(na) && !Number.isNaN(nb) && na !== nb) return na - nb;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * A copy of `s` that does not share memory with the string it was cut from. Keys kept for the
 * whole run must not be slices of a read chunk, or every chunk that produced a key stays in memory.
 */
function detach(s: string): string {
  return Buffer.from(s, 'utf8').toString('utf8');
}

export interface StatsOptions extends ReadOptions {
  files: readonly string[];
  /** Read rows from here instead of `files` (the store's cdr table); `parallel` does not apply. */
  source?: RowSource | undefined;
  filter: CdrFilter;
  by?: StatsGroup;
  format: StatsFormat;
  onRowsRead?: (n: number) => void;
  /** Read the second half of large plain `.csv` files in a worker thread (see stats-split.ts). */
  parallel?: ParallelOptions | undefined;
}

export interface StatsResult {
  total: Summary;
  busiestHour: { hour: string; calls: number } | null;
  groups?: (Summary & { key: string })[];
}

/** Aggregates records one by one (onView); parts aggregated elsewhere can be merged in. */
export class StatsAggregator {
  readonly onView: (row: RowView) => void;
  /** Records read since the last takeRead(). */
  takeRead: () => number;
  /** The aggregates so far, as data. */
  part: () => StatsPart;
  /** Whether merge(p) gives exactly what reading p's records here would have. */
  canMerge: (p: StatsPart) => boolean;
  /** Adds the aggregates of the records that follow those read so far. */
  merge: (p: StatsPart) => void;
  result: () => StatsResult;

  constructor(filter: CdrFilter, by: StatsGroup | undefined) {
    const matches = compileViewFilter(filter);
    const total = new Tally();
    const perHour = new Map<string, number>();
    const key = by ? groupKey(by) : null;
    const groups = new Map<string, Tally>();
    // Records come in time order: count the current hour locally, touch the map on a change.
    let hour = '';
    let hourCalls = 0;
    const countHour = () => {
      if (hourCalls > 0) perHour.set(hour, (perHour.get(hour) ?? 0) + hourCalls);
    };
    let read = 0;
    let rows = 0;
    this.onView = (row: RowView) => {
      read++;
      if (!matches(row)) return;
      total.add(row);
      const rowHour = row.startHour(); // local wall-clock hour of the server
      if (rowHour !== hour) {
        countHour();
        hour = detach(rowHour);
        hourCalls = 0;
      }
      hourCalls++;
      if (key) {
        const k = key(row);
        let tally = groups.get(k);
        if (!tally) groups.set(detach(k), (tally = new Tally()));
        tally.add(row);
      }
    };
    this.takeRead = () => {
      const n = read;
      rows += n;
      read = 0;
      return n;
    };
    this.part = () => {
      this.takeRead();
      countHour();
      hourCalls = 0;
      return { total: total.data(), hours: [...perHour], groups: [...groups].map(([k, t]) => [k, t.data()]), rows };
    };
    this.canMerge = (p) => total.canMerge(p.total) && p.groups.every(([k, d]) => (groups.get(k) ?? new Tally()).canMerge(d));
    this.merge = (p) => {
      total.merge(p.total);
      for (const [h, calls] of p.hours) perHour.set(h, (perHour.get(h) ?? 0) + calls);
      // Keys new here come after the known ones, in the part's order: the order reading them here gives.
      for (const [k, d] of p.groups) {
        let tally = groups.get(k);
        if (!tally) groups.set(k, (tally = new Tally()));
        tally.merge(d);
      }
      read += p.rows;
    };
    this.result = () => {
      countHour();
      hourCalls = 0;
      let busiestHour: StatsResult['busiestHour'] = null;
      for (const [hour, calls] of perHour) {
        if (!busiestHour || calls > busiestHour.calls || (calls === busiestHour.calls && hour < busiestHour.hour)) busiestHour = { hour, calls };
      }
      const result: StatsResult = { total: total.summary(), busiestHour: busiestHour && { hour: busiestHour.hour.replace('T', ' ') + ':00', calls: busiestHour.calls } };
      if (key) {
        result.groups = [...groups.keys()].sort(compareKeys).map((k) => ({ key: k, ...groups.get(k)!.summary() }));
      }
      return result;
    };
  }
}

export async function computeStats(opts: StatsOptions): Promise<StatsResult> {
  const agg = new StatsAggregator(opts.filter, opts.by);
  if (opts.source) {
    for await (const _ of opts.source({ ...opts, onView: agg.onView })) opts.onRowsRead?.(agg.takeRead());
    return agg.result();
  }
  const split = opts.parallel ? statsSplit(opts, agg, opts.parallel) : undefined;
  for await (const _ of readCdrFiles(opts.files, { ...opts, onView: agg.onView, split })) {
    opts.onRowsRead?.(agg.takeRead());
  }
  return agg.result();
}

const GROUP_FIELDS = ['calls', 'answered', 'failed', 'asr', 'acd', 'billableMinutes'] as const;
const CSV_NAMES = ['calls', 'answered', 'failed', 'asr_percent', 'acd_seconds', 'billable_minutes'];

export async function printStats(result: StatsResult, opts: { by?: StatsGroup; format: StatsFormat }, out: NodeJS.WritableStream): Promise<void> {
  const o = new BufferedOutput(out);
  if (opts.format === 'json') {
    await o.write(JSON.stringify(opts.by ? { ...result, by: opts.by } : result, null, 2) + '\n');
  } else if (opts.format === 'csv') {
    if (result.groups) {
      await o.write(formatCsvLine([opts.by!, ...CSV_NAMES]));
      for (const g of result.groups) await o.write(formatCsvLine([g.key, ...GROUP_FIELDS.map((f) => String(g[f]))]));
    } else {
      await o.write(formatCsvLine([...CSV_NAMES, 'busiest_hour', 'busiest_hour_calls']));
      const t = result.total;
      await o.write(formatCsvLine([...GROUP_FIELDS.map((f) => String(t[f])), result.busiestHour?.hour ?? '', String(result.busiestHour?.calls ?? '')]));
    }
  } else {
    const t = result.total;
    const lines: [string, string][] = [
      ['calls', String(t.calls)],
      ['answered', String(t.answered)],
      ['failed', String(t.failed)],
      ['ASR', `${t.asr.toFixed(2)} %`],
      ['ACD', `${t.acd.toFixed(1)} s`],
      ['billable minutes', t.billableMinutes.toFixed(2)],
      ['busiest hour', result.busiestHour ? `${result.busiestHour.hour} (${result.busiestHour.calls} calls)` : '-'],
    ];
    for (const [k, v] of lines) await o.write(`${k.padEnd(18)}${v}\n`);
    if (result.groups) {
      const head = [opts.by!, 'calls', 'answered', 'failed', 'ASR %', 'ACD s', 'bill min'];
      const rows = result.groups.map((g) => [g.key === '' ? '(none)' : g.key, String(g.calls), String(g.answered), String(g.failed), g.asr.toFixed(2), g.acd.toFixed(1), g.billableMinutes.toFixed(2)]);
      const widths = head.map((h, i) => Math.min(40, Math.max(h.length, ...rows.map((r) => r[i]!.length))));
      const fmt = (r: string[]) => r.map((c, i) => (i === 0 ? c.slice(0, widths[i]).padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ') + '\n';
      await o.write('\n' + fmt(head));
      for (const r of rows) await o.write(fmt(r));
    }
  }
  await o.flush();
}
