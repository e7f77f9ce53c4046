/**
 * Overload control (`overload.*`, docs/SECURITY.md): the server watches its own load: how late it
 * handles what it receives (the delay of its event loop, i.e. how late a 50 ms timer fires, or
 * how long the oldest datagram received and not yet handled has waited, whichever is longer)
 * and the calls being set up (INVITE server transactions without a final response yet). Above a
 * high-water mark it refuses new work cheaply, so that the calls it has already accepted finish:
 *
 *  - new INVITEs get a stateless 503 with Retry-After (RFC 3261 section 21.5.4): not all of them,
 *    but as many as it takes. The share admitted is cut by a quarter on each sample over the
 *    mark and grows back by a twentieth on each sample under the low-water mark, so that the
 *    server keeps working at what it can do rather than switching between all and nothing (the
 *    "loss-based" control of RFC 7415). A pause (garbage collection, a burst of timers, another
 *    process taking the CPU for a moment) is not overload: the mark must be passed on three
 *    samples in a row, i.e. for 100 ms;
 *  - another new out-of-dialog request from a source the server does not know (not a registered
 *    phone's address, not trusted, not a trunk) is shed: dropped over UDP (the client's
 *    retransmissions try again later), a 503 over TCP/TLS (a stream client does not retransmit,
 *    and would only wait 32 s for nothing);
 *  - requests inside a dialog (ACK, BYE, re-INVITE), CANCEL, and known phones' requests
 *    (registration refreshes, OPTIONS keep-alives) are served as always; so are a new request
 *    that answers a challenge sent in the last 32 s (the second INVITE of a call admitted once
 *    already) and a retransmission of a request being handled (the stack leaves it to its
 *    transaction).
 *
 * Between samples, a new request that waited `highDelayMs` or more in the receive queue before
 * the server got to it (the native UDP engine tells each datagram's wait) is treated the same at
 * once, whatever the share: the client's first retransmission (T1, 500 ms) is near, and refusing
 * the new work in a late stretch of the queue drains it in a fraction of the time serving it would
 * take, so that what was admitted is answered before the clients retransmit it.
 *
 * The stack reads `active` and `lateMs` for every request (two field reads while not overloaded);
 * the rest runs only while overloaded.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from '../log.js';
import type { SipRequest } from '../sip/message.js';
import type { Endpoint } from '../sip/transport/types.js';

/** The `overload` section of the configuration. */
export interface OverloadSettings {
  enabled: boolean;
  highDelayMs: number;
  lowDelayMs: number;
  highCallsInSetup: number;
  lowCallsInSetup: number;
  retryAfter: number;
}

export type OverloadVerdict = 'serve' | 'reject' | 'shed';

/** Plain numbers bumped where things happen, read by the metrics when scraped. */
export interface OverloadCounters {
  /** New INVITEs (and stream requests from unknown sources) answered 503. */
  rejected: number;
  /** New out-of-dialog UDP requests from unknown sources dropped. */
  shed: number;
  /** Times the server started refusing. */
  onsets: number;
}

export interface OverloadOptions {
  settings: OverloadSettings;
  logger: Logger;
  /** INVITE server transactions waiting for their final response. */
  callsInSetup: () => number;
  /**
   * How long (ms) the oldest message received and not yet handled has waited; null when that
   * cannot be seen (then the time the event loop has been busy without a pause stands in).
   */
  receiveBacklogMs?: () => number | null;
  /** A registered phone's address, a trusted address or a trunk: its requests are served. */
  knownSource: (req: SipRequest, source: Endpoint) => boolean;
  /**
   * The request answers a challenge this server sent within `withinMs` (its credentials carry a
   * nonce issued that recently): the second half of an attempt admitted once already.
   */
  answersChallenge?: (req: SipRequest, withinMs: number) => boolean;
  /** Starts the sampling timer (default true); tests feed sample() themselves. */
  timer?: boolean;
  now?: () => number;
}

export const SAMPLE_MS = 50;
/** The share of new calls admitted is multiplied by this on each overloaded sample... */
const DECREASE = 0.75;
/** ...and grows by this on each calm one (from none to all in a second). */
const INCREASE = 0.05;
/** Samples in a row over the delay's high-water mark that make overload. */
const SUSTAINED_SAMPLES = 3;
/**
 * A request answering a challenge sent this recently (64*T1, the longest a client's transaction
 * lives) continues an attempt that was admitted: it is served whatever the share. Refusing it
 * would waste the challenge already sent, and with the share applied to both INVITEs of a
 * challenged call only share^2 of the calls would get through.
 */
const CHALLENGE_ANSWER_MS = 32_000;
/** Below this share nothing is admitted (a few calls a second would only add retransmissions). */
const MIN_ADMIT = 0.05;
/** Event-loop utilization over a sample at which the loop counts as busy without a pause. */
const SATURATED = 0.98;
/**
 * An episode, as the log reports it, ends only after this long admitting everything: a load that
 * hovers around the mark is one episode in the log, not one line per sample.
 */
const EPISODE_END_MS = 10_000;

interface Episode {
  start: number;
  /** When all new work was last admitted again. */
  lastActive: number;
  rejected: number;
  shed: number;
  onsets: number;
  peakDelayMs: number;
  lowestAdmit: number;
  reason: string;
}

export class OverloadControl {
  /** Refusing some new work now (admitting less than all). Read by the stack for every request. */
  active = false;
  readonly counters: OverloadCounters = { rejected: 0, shed: 0, onsets: 0 };
  /** How late the server handled what it received, at the last sample (ms). */
  delayMs = 0;
  /** The share of new calls admitted now, 0 to 1. */
  admit = 1;
  /** A new request that waited this long (ms) in the receive queue is refused whatever the share. */
  lateMs = Infinity;

  private settings!: OverloadSettings;
  private readonly logger: Logger;
  private readonly callsInSetup: () => number;
  private readonly knownSource: OverloadOptions['knownSource'];
  private readonly answersChallenge: NonNullable<OverloadOptions['answersChallenge']>;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private lastSampleAt = 0;
  /** Samples in a row over the delay's high-water mark, up to now. */
  private highRun = 0;
  /** Admission credit: each new call adds the admitted share; a whole one lets a call in. */
  private credit = 0;
  private retryAfterValue = '5';
  private episode: Episode | null = null;

  constructor(opts: OverloadOptions) {
    this.logger = opts.logger;
    this.callsInSetup = opts.callsInSetup;
    this.knownSource = opts.knownSource;
    this.answersChallenge = opts.answersChallenge ?? (() => false);
    this.now = opts.now ?? (() => performance.now());
    this.configure(opts.settings);
    if (opts.timer !== false) {
      const backlog = opts.receiveBacklogMs ?? (() => null);
      let elu = performance.eventLoopUtilization();
      let busyMs = 0;
      this.lastSampleAt = this.now();
      this.timer = setInterval(() => {
        const t = this.now();
        const elapsed = t - this.lastSampleAt;
        this.lastSampleAt = t;
        // How much later than asked this timer fired: what any message waited behind the work.
        const lag = elapsed - SAMPLE_MS;
        let waited = backlog();
        if (waited === null) {
          // Without a queue to look at (Node's dgram reads a few datagrams per turn and leaves the
          // rest in the kernel), a loop busy without a pause for this long has a backlog as old.
          const now = performance.eventLoopUtilization();
          busyMs = performance.eventLoopUtilization(now, elu).utilization >= SATURATED ? busyMs + elapsed : 0;
          elu = now;
          waited = busyMs;
        }
        this.sample(Math.max(0, lag, waited), this.callsInSetup());
      }, SAMPLE_MS);
      this.timer.unref();
    }
  }

  /** Takes new settings (a configuration reload). */
  configure(s: OverloadSettings): void {
    this.settings = { ...s };
    this.retryAfterValue = String(s.retryAfter);
    this.lateMs = s.enabled ? s.highDelayMs : Infinity;
    if (!s.enabled && this.active) this.setAdmit(1, this.now());
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The Retry-After value of a 503 (seconds). */
  get retryAfter(): string {
    return this.retryAfterValue;
  }

  /** One measurement: how late received messages are handled (ms), and the calls being set up. */
  sample(delayMs: number, callsInSetup: number): void {
    const s = this.settings;
    const t = this.now();
    this.delayMs = delayMs;
    if (!s.enabled) return;
    this.highRun = delayMs >= s.highDelayMs ? this.highRun + 1 : 0;
    const sustained = this.highRun >= SUSTAINED_SAMPLES;
    const e = this.episode;
    if (e !== null && e.peakDelayMs < delayMs) e.peakDelayMs = delayMs;
    if (sustained || callsInSetup >= s.highCallsInSetup) {
      const reason = sustained ? 'delay' : 'calls in setup';
      const next = this.admit * DECREASE;
      this.setAdmit(next < MIN_ADMIT ? 0 : next, t, reason, delayMs, callsInSetup);
    } else if (this.active && delayMs < s.lowDelayMs && callsInSetup < s.lowCallsInSetup) {
      this.setAdmit(Math.min(1, Math.round(((this.admit < MIN_ADMIT ? MIN_ADMIT : this.admit) + INCREASE) * 1000) / 1000), t);
    } else if (!this.active) {
      this.maybeEndEpisode(t);
    }
  }

  /**
   * While active, or for a request that waited `lateMs` or more (`late`): what becomes of a
   * request that starts something new (no To tag; not ACK or CANCEL, which the caller serves).
   * Counted here.
   */
  verdict(req: SipRequest, source: Endpoint, late = false): OverloadVerdict {
    if (this.answersChallenge(req, CHALLENGE_ANSWER_MS)) return 'serve';
    if (late) this.noteLate();
    if (req.method === 'INVITE') {
      if (late) return this.refuse();
      const credit = this.credit + this.admit;
      if (credit >= 1) {
        this.credit = credit - 1;
        return 'serve';
      }
      this.credit = credit;
      return this.refuse();
    }
    if (this.knownSource(req, source)) return 'serve';
    if (source.transport !== 'udp') return this.refuse();
    this.counters.shed++;
    if (this.episode !== null) this.episode.shed++;
    return 'shed';
  }

  private refuse(): 'reject' {
    this.counters.rejected++;
    if (this.episode !== null) this.episode.rejected++;
    return 'reject';
  }

  /** A late request is being refused: an episode (and its log line) starts or goes on. */
  private noteLate(): void {
    const t = this.now();
    let e = this.episode;
    if (e === null) {
      this.counters.onsets++;
      e = this.startEpisode(t, 'receive queue', this.lateMs, 0, this.admit);
      e.onsets++;
    }
    e.lastActive = t;
  }

  private startEpisode(t: number, reason: string, delayMs: number, callsInSetup: number, admit: number): Episode {
    const e: Episode = { start: t, lastActive: t, rejected: 0, shed: 0, onsets: 0, peakDelayMs: delayMs, lowestAdmit: admit, reason };
    this.episode = e;
    this.logger.warn('overload.started', {
      reason,
      delayMs: Math.round(delayMs),
      callsInSetup,
      hint: 'some new calls get 503 with Retry-After, new requests from unknown sources are shed; see docs/SECURITY.md, Overload',
    });
    return e;
  }

  private setAdmit(admit: number, t: number, reason?: string, delayMs = 0, callsInSetup = 0): void {
    const wasActive = this.active;
    this.admit = admit;
    this.active = admit < 1;
    if (!this.active) {
      this.credit = 0;
      if (this.episode !== null) this.episode.lastActive = t;
      return;
    }
    if (wasActive) {
      if (this.episode !== null && this.episode.lowestAdmit > admit) this.episode.lowestAdmit = admit;
      return;
    }
    this.counters.onsets++;
    const e = this.episode ?? this.startEpisode(t, reason ?? 'delay', delayMs, callsInSetup, admit);
    e.onsets++;
    if (e.lowestAdmit > admit) e.lowestAdmit = admit;
  }

  private maybeEndEpisode(t: number): void {
    const e = this.episode;
    if (e === null || t - e.lastActive < EPISODE_END_MS) return;
    this.episode = null;
    this.logger.info('overload.ended', {
      seconds: Math.round((e.lastActive - e.start) / 100) / 10,
      reason: e.reason,
      rejected: e.rejected,
      shed: e.shed,
      onsets: e.onsets,
      peakDelayMs: Math.round(e.peakDelayMs),
      lowestAdmittedShare: Math.round(e.lowestAdmit * 100) / 100,
    });
  }
}
