/**
 * Timer values of RFC 3261 §17 and Table 4 (appendix A), with the RFC 6026 additions L and M.
 */

export interface TimerConfig {
  /** RTT estimate, default 500 ms. */
  T1: number;
  /** Maximum retransmit interval for non-INVITE requests and INVITE responses, default 4 s. */
  T2: number;
  /** Maximum duration a message remains in the network, default 5 s. */
  T4: number;
}

export const DEFAULT_TIMER_CONFIG: Readonly<TimerConfig> = Object.freeze({ T1: 500, T2: 4000, T4: 5000 });

/** Every derived timer duration, in ms, for one kind of transport. 0 means "fires at once". */
export interface TimerDurations {
  readonly T1: number;
  readonly T2: number;
  readonly T4: number;
  /** INVITE client transaction timeout, 64*T1. */
  readonly B: number;
  /** Wait time for response retransmits: at least 32 s unreliable, 0 reliable. */
  readonly D: number;
  /** Non-INVITE client transaction timeout, 64*T1. */
  readonly F: number;
  /** Wait time for ACK receipt, 64*T1. */
  readonly H: number;
  /** Wait time for ACK retransmits: T4 unreliable, 0 reliable. */
  readonly I: number;
  /** Wait time for non-INVITE request retransmits: 64*T1 unreliable, 0 reliable. */
  readonly J: number;
  /** Wait time for response retransmits: T4 unreliable, 0 reliable. */
  readonly K: number;
  /** RFC 6026: wait time for accepted INVITE request retransmits, 64*T1. */
  readonly L: number;
  /** RFC 6026: wait time for retransmission of 2xx to INVITE, 64*T1. */
  readonly M: number;
  /** §17.2.1: an INVITE server transaction sends 100 Trying when the TU is silent this long. */
  readonly trying: number;
  /** Retransmission timers (A, E, G) run only on unreliable transports. */
  readonly retransmit: boolean;
}

/** Fills in defaults and rejects values that would make the timers meaningless. */
export function resolveTimerConfig(partial: Partial<TimerConfig> = {}): TimerConfig {
  const cfg = { ...DEFAULT_TIMER_CONFIG, ...partial };
  for (const k of ['T1', 'T2', 'T4'] as const) {
    if (!Number.isFinite(cfg[k]) || cfg[k] <= 0) throw new RangeError(`timer ${k} must be a positive number of ms`);
  }
  return cfg;
}

export function timerDurations(cfg: TimerConfig, reliable: boolean): TimerDurations {
  const t64 = 64 * cfg.T1;
  return Object.freeze({
    T1: cfg.T1,
    T2: cfg.T2,
    T4: cfg.T4,
    B: t64,
    D: reliable ? 0 : Math.max(32_000, t64),
    F: t64,
    H: t64,
    I: reliable ? 0 : cfg.T4,
    J: reliable ? 0 : t64,
    K: reliable ? 0 : cfg.T4,
    L: t64,
    M: t64,
    trying: 200,
    retransmit: !reliable,
  });
}
