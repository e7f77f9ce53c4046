/**
 * The IVR interpreter: runs one validated {@link IvrDocument} for one caller against an abstract
 * {@link IvrChannel} (prompts, transfer, release). SIP and RTP live behind the channel; keys and
 * the caller's hang-up arrive through {@link IvrSession.digit} and {@link IvrSession.callerHungUp}.
 * Every timer goes through the injected {@link Clock}.
 *
 * Semantics:
 * - Flow: start at `doc.start`; an action that completes without a branch of its own continues at
 *   its `next`; `next` undefined hangs up with cause 16. `goto` jumps; `hangup` releases with 16.
 * - Variables: `${caller}`, `${called}`, `${digits}` (the last collect's digits, '' before any
 *   collect) and those of `set`. A template is substituted when its action runs (so `set` stores
 *   the value of the moment). An unset variable reads as ''.
 * - Keys: keys pressed while no collect is reading keys are kept in a type-ahead buffer that the
 *   next collect reads first (also keys left over when a collect ends at maxDigits). Keys pressed
 *   while a `callto` rings are dropped, and the buffer is emptied when a `callto` starts: keys
 *   typed before a transfer are not meant for whatever menu follows a failed one.
 * - `play`: the prompts back to back without barge-in, then `next`. No prompts = no channel call.
 * - `collect`, one attempt: if the type-ahead buffer holds keys the prompts are skipped, else they
 *   play with barge-in. Then keys are read (buffered ones first): the first-key timer
 *   (`timeoutMs`) runs until the first key, each key (re)starts the inter-digit timer
 *   (`interDigitMs`). Input ends at `maxDigits` keys, at the terminator (not stored) or when a
 *   timer expires. No digits -> noinput; fewer than `minDigits` -> nomatch; else the first
 *   `<match>` in order (exact: equal, prefix: starts with) wins; else with `extension` the digits
 *   are called like a `callto` without monitors; else nomatch. `${digits}` is stored on success
 *   and on nomatch, not on noinput. noinput and nomatch share one replay budget per entry into the
 *   action: up to `retries` replays (prompts again), then the branch of the last failure, or a
 *   hang-up with 16 when that branch is absent.
 * - `timecheck`: local weekday (ISO 1..7) and minute of the day in `timeZone` (default: the
 *   server's). The first period containing now wins, else `fallback`, else `next`. A period with
 *   from > to wraps past midnight and belongs to the day it starts on: Monday 22:00-06:00 covers
 *   Monday 22:00 .. Tuesday 05:59. from = to is a full 24 h from `from` on each listed day (so
 *   00:00-00:00 is the whole day).
 * - `callto`: 'connected' ends the IVR (the call is now an ordinary bridged call); a failure with
 *   a monitor entry continues there; an unmonitored failure releases the caller with busy 17,
 *   noanswer 19, unreachable 20, reject 21, fail 31 (end reason 'released').
 * - Loop guard: actions run without waiting for the caller or the network are counted; the
 *   counter restarts whenever the session waits (a channel play or callTo, a collect). Running
 *   more than `maxSteps` (default 100) such actions in a row logs 'ivr.loop' and hangs up with 16
 *   (normal clearing: the caller did nothing wrong, the script is at fault, and the log says so).
 * - The caller hanging up (callerHungUp, or 'hungup' from the channel) ends everything at once:
 *   timers cleared, later play/callTo results and keys ignored, no channel call any more.
 * - A channel method that throws or rejects is logged ('ivr.error') and the caller released with
 *   41 (temporary failure), end reason 'error'.
 */
import type { LogLevel } from '../../log.js';
import type { Clock, TimerHandle } from '../../sip/transaction/clock.js';
import type {
  CallToAction,
  CollectAction,
  DigitMatch,
  IvrAction,
  IvrDocument,
  MonitorDetection,
  PlayAction,
  SetAction,
  Template,
  TimeCheckAction,
  TimePeriod,
} from './model.js';

/** How a transfer ended: 'connected', one of the monitorable failures, or the caller left. */
export type CallToOutcome = 'connected' | MonitorDetection | 'hungup';

export interface IvrChannel {
  /**
   * Plays prompts (names as written in `<voice>`, variables already substituted) back to back.
   * With bargeIn, the first key pressed stops the playing ('interrupted'). 'hungup' if the caller
   * left. Keys pressed meanwhile are still delivered to {@link IvrSession.digit}.
   */
  play(prompts: string[], opts: { bargeIn: boolean }): Promise<'done' | 'interrupted' | 'hungup'>;
  /**
   * Hands the caller to `destination` (number analysis, ringback to the caller meanwhile).
   * 'connected' = the destination answered and the call is now an ordinary bridged call: the IVR
   * ends. Other outcomes: the destination failed that way; the caller is still with the IVR.
   */
  callTo(destination: string): Promise<CallToOutcome>;
  /** Releases the caller with this Q.850 cause. */
  hangup(cause: number): void;
}

export type IvrEndReason =
  /** The flow hung up: a `hangup` action, the end of the flow, a collect failure without branch. */
  | 'hangup'
  /** A `callto` was answered; the call goes on without the IVR. */
  | 'connected'
  | 'caller-hungup'
  /** The loop guard stopped the flow. */
  | 'loop'
  /** An unmonitored `callto` failure released the caller with the matching cause. */
  | 'released'
  /** A channel method failed; the caller was released with 41. */
  | 'error';

export interface IvrEnd {
  reason: IvrEndReason;
  /** The Q.850 cause the IVR released the caller with (absent for 'connected' and 'caller-hungup'). */
  cause?: number;
  /** The action the flow was at when it ended. */
  action?: string;
}

export type IvrLog = (level: LogLevel, event: string, fields: Record<string, unknown>) => void;

export interface IvrSessionOptions {
  caller: string;
  called: string;
  clock: Clock;
  /** IANA zone for `timecheck`; default: the server's zone. */
  timeZone?: string;
  /** Wall-clock time for `timecheck`; default: `new Date()`. */
  now?: () => Date;
  /** Actions run in a row without waiting before the loop guard trips; default 100. */
  maxSteps?: number;
  log: IvrLog;
}

export const CAUSE_NORMAL_CLEARING = 16;
export const CAUSE_TEMPORARY_FAILURE = 41;

/** Q.850 cause released to the caller for a `callto` failure nobody monitors. */
export const CALLTO_FAILURE_CAUSE: Readonly<Record<MonitorDetection, number>> = {
  busy: 17,
  noanswer: 19,
  unreachable: 20,
  reject: 21,
  fail: 31,
};

const DEFAULT_MAX_STEPS = 100;
const KEY = /^[0-9*#A-D]$/;

/** Returned by the steps once the session is over: nothing more may happen. */
const STOP = Symbol('stop');
type Next = { to: string | undefined } | typeof STOP;

/** A collect reading keys. */
interface KeyInput {
  action: CollectAction;
  digits: string;
  timer: TimerHandle | undefined;
  resolve: (digits: string | typeof STOP) => void;
}

type CollectFailure = 'noinput' | 'nomatch';

export class IvrSession {
  private readonly clock: Clock;
  private readonly log: IvrLog;
  private readonly now: () => Date;
  private readonly timeZone: string | undefined;
  private readonly maxSteps: number;
  private readonly variables = new Map<string, string>();
  private readonly typeAhead: string[] = [];
  private input: KeyInput | undefined;
  private transferring = false;
  private stepsSinceWait = 0;
  private current: IvrAction | undefined;
  private running: Promise<IvrEnd> | undefined;
  private result: IvrEnd | undefined;
  private readonly ended: Promise<IvrEnd>;
  private resolveEnded!: (end: IvrEnd) => void;

  constructor(
    private readonly doc: IvrDocument,
    private readonly channel: IvrChannel,
    opts: IvrSessionOptions,
  ) {
    this.clock = opts.clock;
    this.log = opts.log;
    this.now = opts.now ?? (() => new Date());
    this.timeZone = opts.timeZone;
    this.maxSteps = opts.maxSteps ?? DEFAULT_MAX_STEPS;
    this.variables.set('caller', opts.caller);
    this.variables.set('called', opts.called);
    this.variables.set('digits', '');
    this.ended = new Promise((resolve) => (this.resolveEnded = resolve));
  }

  /** Runs the flow; resolves when the IVR is over. Calling it again returns the same promise. */
  start(): Promise<IvrEnd> {
    if (this.running) return this.running;
    this.running = this.ended;
    if (!this.result) void this.run();
    return this.running;
  }

  /** A key from the caller (RFC 4733, SIP INFO or in-band): '0'-'9', '*', '#', 'A'-'D'. */
  digit(key: string): void {
    if (this.result) return;
    const k = key.toUpperCase();
    if (!KEY.test(k)) {
      this.log('debug', 'ivr.key-ignored', { file: this.doc.file, key });
      return;
    }
    if (this.input) this.feed(this.input, k);
    else if (!this.transferring) this.typeAhead.push(k);
  }

  /** The caller left: stop at once. */
  callerHungUp(): void {
    if (this.result) return;
    this.finish({ reason: 'caller-hungup', action: this.current?.name });
  }

  // --- the flow -----------------------------------------------------------------------------

  private async run(): Promise<void> {
    try {
      await this.walk();
    } catch (err) {
      if (this.result) {
        this.log('debug', 'ivr.error-after-end', { file: this.doc.file, error: errorText(err) });
        return;
      }
      this.log('error', 'ivr.error', { file: this.doc.file, action: this.current?.name, error: errorText(err) });
      this.release(CAUSE_TEMPORARY_FAILURE, 'error');
    }
  }

  private async walk(): Promise<void> {
    let name: string = this.doc.start;
    while (!this.result) {
      const action = this.doc.actions.get(name);
      if (!action) throw new Error(`no action named ${JSON.stringify(name)}`);
      this.current = action;
      if (++this.stepsSinceWait > this.maxSteps) {
        this.log('warn', 'ivr.loop', { file: this.doc.file, action: action.name, line: action.at.line, steps: this.maxSteps });
        this.release(CAUSE_NORMAL_CLEARING, 'loop');
        return;
      }
      this.log('debug', 'ivr.action', { file: this.doc.file, action: action.name, method: action.method, line: action.at.line });
      const next = await this.execute(action);
      if (next === STOP || this.result) return;
      if (next.to === undefined) {
        this.release(CAUSE_NORMAL_CLEARING, 'hangup');
        return;
      }
      name = next.to;
    }
  }

  private execute(action: IvrAction): Promise<Next> | Next {
    switch (action.method) {
      case 'play':
        return this.runPlay(action);
      case 'collect':
        return this.runCollect(action);
      case 'goto':
        return { to: action.next };
      case 'hangup':
        this.release(CAUSE_NORMAL_CLEARING, 'hangup');
        return STOP;
      case 'set':
        return this.runSet(action);
      case 'timecheck':
        return this.runTimeCheck(action);
      case 'callto':
        return this.transfer(this.render(action.destination), action.monitor);
    }
  }

  private async runPlay(action: PlayAction): Promise<Next> {
    const played = await this.play(this.renderAll(action.voices), false);
    return played === STOP ? STOP : { to: action.next };
  }

  private runSet(action: SetAction): Next {
    this.variables.set(action.variable, this.render(action.value));
    return { to: action.next };
  }

  private runTimeCheck(action: TimeCheckAction): Next {
    const { weekday, minute } = localWeekMinute(this.now(), this.timeZone);
    const period = action.periods.find((p) => periodContains(p, weekday, minute));
    return { to: period?.next ?? action.fallback ?? action.next };
  }

  // --- collect ------------------------------------------------------------------------------

  private async runCollect(action: CollectAction): Promise<Next> {
    for (let replays = 0; ; replays++) {
      const digits = await this.collectAttempt(action);
      if (digits === STOP) return STOP;
      let failure: CollectFailure = 'noinput';
      if (digits.length > 0) {
        this.variables.set('digits', digits);
        if (digits.length >= action.minDigits) {
          const match = action.matches.find((m) => fits(m, digits));
          if (match) return { to: match.next };
          if (action.extension) return this.transfer(digits, {});
        }
        failure = 'nomatch';
      }
      this.log('debug', 'ivr.collect', { file: this.doc.file, action: action.name, result: failure, keys: digits.length, attempt: replays + 1 });
      if (replays < action.retries) continue;
      return { to: failure === 'noinput' ? action.noInput : action.noMatch };
    }
  }

  /** One pass: the prompts (unless keys were typed ahead), then the keys. */
  private async collectAttempt(action: CollectAction): Promise<string | typeof STOP> {
    this.stepsSinceWait = 0;
    if (this.typeAhead.length === 0) {
      const played = await this.play(this.renderAll(action.voices), true);
      if (played === STOP) return STOP;
    }
    return this.readKeys(action);
  }

  private readKeys(action: CollectAction): Promise<string | typeof STOP> {
    return new Promise((resolve) => {
      const input: KeyInput = { action, digits: '', timer: undefined, resolve };
      this.input = input;
      while (this.input === input && this.typeAhead.length > 0) this.feed(input, this.typeAhead.shift()!);
      if (this.input === input && input.timer === undefined) this.armTimer(input, action.timeoutMs);
    });
  }

  private feed(input: KeyInput, key: string): void {
    if (key === input.action.terminator) return this.endInput(input, input.digits);
    input.digits += key;
    if (input.digits.length >= input.action.maxDigits) return this.endInput(input, input.digits);
    this.armTimer(input, input.action.interDigitMs);
  }

  private armTimer(input: KeyInput, ms: number): void {
    if (input.timer !== undefined) this.clock.clearTimer(input.timer);
    input.timer = this.clock.setTimer(ms, () => {
      input.timer = undefined;
      this.endInput(input, input.digits);
    });
  }

  private endInput(input: KeyInput, digits: string | typeof STOP): void {
    if (input.timer !== undefined) this.clock.clearTimer(input.timer);
    input.timer = undefined;
    if (this.input === input) this.input = undefined;
    input.resolve(digits);
  }

  // --- channel calls ------------------------------------------------------------------------

  private async play(prompts: string[], bargeIn: boolean): Promise<'done' | 'interrupted' | typeof STOP> {
    if (prompts.length === 0) return 'done';
    this.stepsSinceWait = 0;
    const outcome = await this.channel.play(prompts, { bargeIn });
    if (this.result) return STOP;
    if (outcome === 'hungup') {
      this.finish({ reason: 'caller-hungup', action: this.current?.name });
      return STOP;
    }
    return outcome;
  }

  /** `callto`, or a collect with `extension`: hands the caller over, branches on a failure. */
  private async transfer(destination: string, monitor: CallToAction['monitor']): Promise<Next> {
    this.stepsSinceWait = 0;
    this.typeAhead.length = 0;
    this.transferring = true;
    let outcome: CallToOutcome;
    try {
      outcome = await this.channel.callTo(destination);
    } finally {
      this.transferring = false;
    }
    if (this.result) return STOP;
    this.log('debug', 'ivr.callto', { file: this.doc.file, action: this.current?.name, destination, outcome });
    if (outcome === 'hungup') {
      this.finish({ reason: 'caller-hungup', action: this.current?.name });
      return STOP;
    }
    if (outcome === 'connected') {
      this.finish({ reason: 'connected', action: this.current?.name });
      return STOP;
    }
    const branch = monitor[outcome];
    if (branch !== undefined) return { to: branch };
    this.release(CALLTO_FAILURE_CAUSE[outcome] ?? CALLTO_FAILURE_CAUSE.fail, 'released');
    return STOP;
  }

  // --- the end ------------------------------------------------------------------------------

  /** Ends the session and releases the caller. The session is over before the channel hears of it. */
  private release(cause: number, reason: IvrEndReason): void {
    this.finish({ reason, cause, action: this.current?.name }, () => this.channel.hangup(cause));
  }

  private finish(end: IvrEnd, releaseCaller?: () => void): void {
    if (this.result) return;
    this.result = end;
    this.typeAhead.length = 0;
    if (this.input) this.endInput(this.input, STOP);
    if (releaseCaller) {
      try {
        releaseCaller();
      } catch (err) {
        this.log('warn', 'ivr.hangup-failed', { file: this.doc.file, action: end.action, error: errorText(err) });
      }
    }
    this.log('info', 'ivr.end', { file: this.doc.file, reason: end.reason, action: end.action, cause: end.cause });
    this.resolveEnded(end);
  }

  // --- templates ----------------------------------------------------------------------------

  private render(template: Template): string {
    return template.map((part) => ('text' in part ? part.text : (this.variables.get(part.variable) ?? ''))).join('');
  }

  private renderAll(templates: Template[]): string[] {
    return templates.map((t) => this.render(t));
  }
}

function fits(match: DigitMatch, digits: string): boolean {
  return match.kind === 'exact' ? digits === match.value : digits.startsWith(match.value);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// --- local time -----------------------------------------------------------------------------

const ISO_WEEKDAY: Readonly<Record<string, number>> = { Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6, Sun: 7 };
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string | undefined): Intl.DateTimeFormat {
  const key = timeZone ?? '';
  let f = formatters.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    formatters.set(key, f);
  }
  return f;
}

/** ISO weekday (1 = Monday .. 7 = Sunday) and minutes since midnight of `date` in `timeZone`. */
export function localWeekMinute(date: Date, timeZone?: string): { weekday: number; minute: number } {
  const parts = formatterFor(timeZone).formatToParts(date);
  const part = (type: Intl.DateTimeFormatPartTypes) => parts.find((p) => p.type === type)?.value ?? '';
  const weekday = ISO_WEEKDAY[part('weekday')];
  if (weekday === undefined) throw new Error(`cannot read the weekday of ${date.toISOString()}`);
  return { weekday, minute: (Number(part('hour')) % 24) * 60 + Number(part('minute')) };
}

/** Whether local `weekday`/`minute` falls in the period (a wrapping period belongs to its start day). */
export function periodContains(period: TimePeriod, weekday: number, minute: number): boolean {
  const { days, fromMinute: from, toMinute: to } = period;
  if (from < to) return days.has(weekday) && minute >= from && minute < to;
  const dayBefore = weekday === 1 ? 7 : weekday - 1;
  return (days.has(weekday) && minute >= from) || (days.has(dayBefore) && minute < to);
}
