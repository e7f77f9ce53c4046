/**
 * An IVR-XML file once validated: the flow the IVR session runs. Only `xml.ts` builds it, and only
 * from a file without errors, so everything here is known to be consistent (every `next` names an
 * action of the same document, numbers are in range, variables are known).
 *
 * Positions (`at`) point into the source file so that run-time log lines can name the line too.
 */

/** 1-based line and column of an element's `<` in the source file. */
export interface SourcePosition {
  line: number;
  col: number;
}

/**
 * Text that may hold `${name}` references: literal parts and variable names in order, e.g.
 * `9${digits}` = [{ text: '9' }, { variable: 'digits' }].
 */
export type Template = ReadonlyArray<{ text: string } | { variable: string }>;

/** Variables every session has; `set` adds others. */
export const BUILTIN_VARIABLES = ['caller', 'called', 'digits'] as const;

/** Events of `callto` a `<monitor-event detection="...">` can watch. */
export const MONITOR_DETECTIONS = ['busy', 'noanswer', 'unreachable', 'reject', 'fail'] as const;
export type MonitorDetection = (typeof MONITOR_DETECTIONS)[number];

interface ActionBase {
  name: string;
  at: SourcePosition;
  /**
   * Where the flow goes when this action completes without a branch of its own: the action's
   * `nextaction` attribute, else the next action in document order, else undefined (hang up).
   * `collect` and `callto` always end in a branch of their own (a match, noinput/nomatch, a
   * monitored event, or the handover), so their `next` is never taken.
   */
  next: string | undefined;
}

/** Plays prompts one after the other, then continues with `next`. */
export interface PlayAction extends ActionBase {
  method: 'play';
  voices: Template[];
}

export interface DigitMatch {
  /** Exact digits (`digits="1"`) or a prefix (`prefix="2"`). */
  kind: 'exact' | 'prefix';
  value: string;
  next: string;
  at: SourcePosition;
}

/**
 * Plays prompts (interruptible by a key) and collects keys. The collected digits are stored in
 * `${digits}`. Branches: the first `<match>` that fits; else `<nomatch>`; no key at all ->
 * `<noinput>`. Either failure replays the prompts while `retries` allow, then takes its branch
 * (or hangs up when the branch is absent). With `extension="true"` and no `<match>` fitting, the
 * digits are called as a number (like `callto ${digits}`).
 */
export interface CollectAction extends ActionBase {
  method: 'collect';
  voices: Template[];
  /** 1..32; default 1. */
  maxDigits: number;
  /** 1..maxDigits; default 1. */
  minDigits: number;
  /** Seconds to wait for the first key after the prompts end; default 5. */
  timeoutMs: number;
  /** Seconds to wait between keys; default 3. */
  interDigitMs: number;
  /** Key that ends input early (not stored); default '#'; '' = none. */
  terminator: string;
  /** Replays after a noinput or nomatch before its branch is taken; default 2. */
  retries: number;
  matches: DigitMatch[];
  noMatch: string | undefined;
  noInput: string | undefined;
  extension: boolean;
}

export interface GotoAction extends ActionBase {
  method: 'goto';
  next: string;
}

/** Releases the caller with cause 16 (normal clearing). */
export interface HangupAction extends ActionBase {
  method: 'hangup';
  next: undefined;
}

export interface SetAction extends ActionBase {
  method: 'set';
  variable: string;
  value: Template;
}

export interface TimePeriod {
  /** ISO weekdays 1 (Monday) .. 7 (Sunday) the period applies to. */
  days: ReadonlySet<number>;
  /** Minutes after midnight; `from` inclusive, `to` exclusive; from > to wraps past midnight. */
  fromMinute: number;
  toMinute: number;
  next: string;
  at: SourcePosition;
}

/** The first `<period>` containing the current local time wins; else `<default>`. */
export interface TimeCheckAction extends ActionBase {
  method: 'timecheck';
  periods: TimePeriod[];
  /** `<default nextaction>`; without it, falls through to `next`. */
  fallback: string | undefined;
}

/**
 * Sends the caller to `destination` through normal number analysis. Without monitored events the
 * IVR ends when the call is handed over; a monitored event continues at its action.
 */
export interface CallToAction extends ActionBase {
  method: 'callto';
  destination: Template;
  monitor: Partial<Record<MonitorDetection, string>>;
}

export type IvrAction = PlayAction | CollectAction | GotoAction | HangupAction | SetAction | TimeCheckAction | CallToAction;
export type IvrMethod = IvrAction['method'];
export const IVR_METHODS: readonly IvrMethod[] = ['play', 'collect', 'goto', 'hangup', 'set', 'timecheck', 'callto'];

export interface IvrDocument {
  /** Absolute path of the file it came from. */
  file: string;
  /** The first action in document order. */
  start: string;
  actions: ReadonlyMap<string, IvrAction>;
  /** Prompt names used by `<voice>` without variables (relative to the prompts folder). */
  prompts: ReadonlySet<string>;
}

/** One line of `ivr validate`: `FILE:LINE:COL: error|warning: message`. */
export interface Finding {
  file: string;
  line: number;
  col: number;
  severity: 'error' | 'warning';
  message: string;
}
