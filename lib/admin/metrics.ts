/**
 * The Prometheus metrics of a running server (GET /metrics on the admin listener, docs/METRICS.md).
 *
 * Nothing here runs per SIP message or per packet: the SIP stack, the authenticator, the relay
 * engines and the CDR writer keep plain numbers, and the gauges and counters below read them, and
 * the live state's summary, only when scraped (prom-client `collect` callbacks). What happens
 * once per call (answered, ended) comes from the live state's events, through watch().
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ALL_CALL_TAGS, callTagName } from '../cdr/record.js';
import { COUNTED_METHODS, OTHER_METHOD, type MessageCounts, type StackCounters } from '../sip/stack.js';
import type { TransactionStats } from '../sip/transaction/layer.js';
import type { RelayTotals } from '../media/relay.js';
import type { SecurityCounters } from '../security/guard.js';
import type { OverloadCounters } from '../security/overload.js';
import type { LiveSource, SequencedEvent, Summary } from './types.js';

/** Set-up time buckets, seconds: automatic answers (IVR) take milliseconds, people seconds. */
export const SETUP_BUCKETS = [0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120];

/** The parts of a running server the metrics read; each is read only when scraped. */
export interface MetricsSources {
  /** The live state's counts (LiveSource.summary()); called once per scrape. */
  summary(): Summary;
  /** The SIP stack (PbxServer.stack): message counts are switched on by the constructor. */
  stack: {
    countMessages(): MessageCounts;
    readonly counters: StackCounters;
    readonly transactions: { readonly stats: TransactionStats };
  };
  /** The authenticator (its `wrongCredentials` number). */
  auth: { readonly wrongCredentials: number };
  /** The media relay once open, null without one (`media.relay: never`, or before start). */
  relay(): { readonly sessionCount: number; readonly sessionLimit: number; totals(): RelayTotals } | null;
  /** The CDR recorder, null with `cdr.format: off`. */
  cdr: {
    readonly counts: { readonly written: number; readonly errors: number };
    /** The copy into the store's cdr table; null without `db` in cdr.format. */
    readonly db?: { readonly counts: { readonly written: number; readonly dropped: number; readonly refused: number }; readonly waiting: number } | null;
  } | null;
  /** Auto-ban and flood limits (PbxServer.guard); without it the security metrics are left out. */
  security?: {
    readonly counters: SecurityCounters;
    readonly bannedCount: number;
    readonly tableSizes: { rates: number; failures: number };
  };
  /** Overload control (PbxServer.overload); without it the overload metrics are left out. */
  overload?: { readonly counters: OverloadCounters; readonly active: boolean; readonly delayMs: number };
}

/** What one scrape reads from the sources (taken once, shared by every metric of the scrape). */
interface Snapshot {
  summary: Summary;
  relay: { sessions: number; limit: number; totals: RelayTotals };
}

const NO_RELAY_TOTALS: RelayTotals = { packets: 0, bytes: 0, dropped: 0 };
const MISNAMED_DEFAULT_METRICS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];
const RESPONSE_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx', '6xx'] as const;

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly counts: MessageCounts;
  private snap: Snapshot | null = null;
  private readonly endedTotal: Counter<'outcome'>;
  private readonly startedTotal: Counter;
  private readonly answeredTotal: Counter;
  private readonly setupSeconds: Histogram;
  private unsubscribe: (() => void) | null = null;

  constructor(private readonly sources: MetricsSources) {
    const registers = [this.registry];
    this.counts = sources.stack.countMessages();
    // Node's process and event-loop metrics under their standard names (process_*, nodejs_*),
    // as every Node.js exporter and dashboard has them; the job label says whose they are.
    collectDefaultMetrics({ register: this.registry });
    // Gauges named like counters (promtool: "non-counter metrics should not have _total
    // suffix"); each is the sum of the gauge of the same name without _total, by type.
    for (const name of MISNAMED_DEFAULT_METRICS) this.registry.removeSingleMetric(name);

    // ---- extensions and registrations (the live state's counts) ----
    // `aggregator` says how the primary of several sip.workers processes merges the workers'
    // values: a count read from the shared store is the same in every worker (max), the rest add up.
    const gauge = (name: string, help: string, read: (s: Snapshot) => number, aggregator: 'sum' | 'max' = 'sum'): Gauge => {
      const g: Gauge = new Gauge({ name, help, registers, aggregator, collect: () => g.set(read(this.snapshot())) });
      return g;
    };
    gauge('minisipserver_extensions', 'Extensions configured.', (s) => s.summary.extensions.total, 'max');
    gauge('minisipserver_extensions_registered', 'Extensions with at least one registered contact.', (s) => s.summary.extensions.registered, 'max');
    gauge('minisipserver_contacts_registered', 'Registered contacts (bindings) of all extensions.', (s) => s.summary.contacts);

    // ---- calls ----
    gauge('minisipserver_calls_active', 'Calls in progress (ringing or answered).', (s) => s.summary.calls.active);
    this.startedTotal = new Counter({ name: 'minisipserver_calls_started_total', help: 'Calls started (INVITEs accepted for routing).', registers });
    this.answeredTotal = new Counter({ name: 'minisipserver_calls_answered_total', help: 'Calls answered.', registers });
    this.endedTotal = new Counter({
      name: 'minisipserver_calls_ended_total',
      help: 'Calls ended, by outcome (the CDR callTag name: caller-bye, callee-bye, no-answer, busy, ...).',
      labelNames: ['outcome'],
      registers,
    });
    for (const tag of ALL_CALL_TAGS) this.endedTotal.inc({ outcome: callTagName(tag)! }, 0);
    this.setupSeconds = new Histogram({
      name: 'minisipserver_call_setup_seconds',
      help: 'Time from the INVITE received to the answer, for answered calls.',
      buckets: SETUP_BUCKETS,
      registers,
    });
    gauge('minisipserver_callbacks_active', 'Call-backs in progress.', (s) => s.summary.callbacks);
    gauge('minisipserver_ivr_sessions', 'IVR sessions in progress.', (s) => s.summary.ivr);

    // ---- SIP ----
    const stack = sources.stack;
    const counts = this.counts;
    const requests: Counter<'method'> = new Counter({
      name: 'minisipserver_sip_requests_received_total',
      help: 'SIP requests received, retransmissions included, by method (methods outside the known set count as "other").',
      labelNames: ['method'],
      registers,
      collect: () => {
        requests.reset();
        COUNTED_METHODS.forEach((method, i) => requests.inc({ method }, counts.requests[i]!));
        requests.inc({ method: 'other' }, counts.requests[OTHER_METHOD]!);
      },
    });
    const responses: Counter<'class'> = new Counter({
      name: 'minisipserver_sip_responses_sent_total',
      help: 'SIP responses sent, by class (1xx to 6xx); a transaction resending the same response does not count again.',
      labelNames: ['class'],
      registers,
      collect: () => {
        responses.reset();
        RESPONSE_CLASSES.forEach((c, i) => responses.inc({ class: c }, counts.responses[i + 1]!));
      },
    });
    plainCounter(registers, 'minisipserver_sip_parse_errors_total', 'SIP messages received that could not be parsed.', () => stack.counters.parseErrors);
    plainCounter(
      registers,
      'minisipserver_sip_overload_rejections_total',
      'Requests refused with a stateless 503 because the server transaction table was full (limits.serverTransactions).',
      () => stack.transactions.stats.overloadRejections,
    );
    const transactions: Gauge<'kind'> = new Gauge({
      name: 'minisipserver_sip_transactions',
      help: 'SIP transactions in progress, by kind (server, client).',
      labelNames: ['kind'],
      registers,
      collect: () => {
        const t = stack.transactions.stats;
        transactions.set({ kind: 'server' }, t.serverTransactions);
        transactions.set({ kind: 'client' }, t.clientTransactions);
      },
    });
    plainCounter(
      registers,
      'minisipserver_auth_failures_total',
      'Digest authentications refused with 403 for wrong credentials (wrong password or unknown user), REGISTER and INVITE alike.',
      () => sources.auth.wrongCredentials,
    );

    // ---- auto-ban and flood limits (docs/SECURITY.md) ----
    const security = sources.security;
    if (security !== undefined) {
      const c = security.counters;
      const bans: Counter<'reason'> = new Counter({
        name: 'minisipserver_security_bans_total',
        help: 'Source addresses banned, by reason: auth (failed authentications), scanner (scanner User-Agents), rate (sustained excess), manual (`minisipserver ban add`).',
        labelNames: ['reason'],
        registers,
        collect: () => {
          bans.reset();
          for (const reason of ['auth', 'scanner', 'rate', 'manual'] as const) bans.inc({ reason }, c.bans[reason]);
        },
      });
      const dropped: Counter<'reason'> = new Counter({
        name: 'minisipserver_security_dropped_total',
        help: 'SIP messages and TCP connections dropped unanswered, by reason: banned (from a banned source, before parsing), rate (over the source\'s rate), scanner (a scanner\'s User-Agent).',
        labelNames: ['reason'],
        registers,
        collect: () => {
          dropped.reset();
          for (const reason of ['banned', 'rate', 'scanner'] as const) dropped.inc({ reason }, c.dropped[reason]);
        },
      });
      plainCounter(registers, 'minisipserver_security_connections_refused_total', 'TCP connections closed at accept: a banned source, or one over its rate.', () => c.connectionsRefused);
      plainCounter(
        registers,
        'minisipserver_security_auth_failures_total',
        'Failed authentications counted towards bans (wrong password or unknown user, a forged nonce, a scanner\'s request); trusted sources\' are not counted.',
        () => c.failures,
      );
      // Every process holds every ban in force (they share the store): the same count in each.
      const banned: Gauge = new Gauge({
        name: 'minisipserver_security_banned_sources',
        help: 'Source addresses banned now.',
        registers,
        aggregator: 'max',
        collect: () => banned.set(security.bannedCount),
      });
      const tracked: Gauge<'table'> = new Gauge({
        name: 'minisipserver_security_tracked_sources',
        help: 'Source addresses tracked, by table (rates, failures); each is capped at security.tableSize.',
        labelNames: ['table'],
        registers,
        collect: () => {
          const t = security.tableSizes;
          tracked.set({ table: 'rates' }, t.rates);
          tracked.set({ table: 'failures' }, t.failures);
        },
      });
    }

    const overload = sources.overload;
    if (overload !== undefined) {
      const c = overload.counters;
      const active: Gauge = new Gauge({
        name: 'minisipserver_overload_active',
        help: 'Processes refusing new calls for overload now (1 or 0 for one process).',
        registers,
        collect: () => active.set(overload.active ? 1 : 0),
      });
      const delay: Gauge = new Gauge({
        name: 'minisipserver_overload_delay_seconds',
        help: 'How late the server handles what it receives, at the last sample (every 50 ms): its event loop\'s delay, or how long the oldest datagram received and not yet handled had waited (the highest of the processes).',
        registers,
        aggregator: 'max',
        collect: () => delay.set(overload.delayMs / 1000),
      });
      plainCounter(registers, 'minisipserver_overload_rejected_total', 'New calls (and requests from unknown sources over TCP/TLS) answered 503 with Retry-After while overloaded.', () => c.rejected);
      plainCounter(registers, 'minisipserver_overload_shed_total', 'New out-of-dialog UDP requests from unknown sources dropped while overloaded.', () => c.shed);
      plainCounter(registers, 'minisipserver_overload_onsets_total', 'Times the server started refusing new work for overload.', () => c.onsets);
    }

    // ---- media relay ----
    gauge('minisipserver_relay_sessions', 'Media relay sessions open (one per call with relayed media).', (s) => s.relay.sessions);
    gauge('minisipserver_relay_sessions_limit', 'Media relay sessions allowed at once (half the port pairs of the range); 0 without a relay.', (s) => s.relay.limit);
    const relayCounter = (name: string, help: string, read: (t: RelayTotals) => number) =>
      plainCounter(registers, name, help, () => read(this.snapshot().relay.totals));
    relayCounter('minisipserver_relay_forwarded_packets_total', 'RTP and RTCP packets forwarded by the media relay.', (t) => t.packets);
    relayCounter('minisipserver_relay_forwarded_bytes_total', 'Bytes (UDP payload) of the packets forwarded by the media relay.', (t) => t.bytes);
    relayCounter(
      'minisipserver_relay_dropped_packets_total',
      'Packets that reached the media relay and were dropped: strangers after latching, no target yet, hold, send failures, late packets of ended calls.',
      (t) => t.dropped,
    );

    // ---- CDR ----
    plainCounter(registers, 'minisipserver_cdr_records_written_total', 'CDR records written to every file of cdr.format.', () => sources.cdr?.counts.written ?? 0);
    plainCounter(
      registers,
      'minisipserver_cdr_write_errors_total',
      'CDR appends that failed (disk full, permissions): the record is missing from that file.',
      () => sources.cdr?.counts.errors ?? 0,
    );
    const cdrDb = () => sources.cdr?.db ?? null;
    plainCounter(registers, 'minisipserver_cdr_db_records_written_total', 'CDR records written to the cdr table of the store (cdr.format with db).', () => cdrDb()?.counts.written ?? 0);
    plainCounter(
      registers,
      'minisipserver_cdr_db_records_dropped_total',
      'CDR records never written to the cdr table: the queue waiting for the database was full, or the server stopped first (they are in the files).',
      () => cdrDb()?.counts.dropped ?? 0,
    );
    plainCounter(registers, 'minisipserver_cdr_db_records_refused_total', 'CDR records the database refused (a value it cannot hold); they are in the files.', () => cdrDb()?.counts.refused ?? 0);
    const cdrWaiting: Gauge = new Gauge({
      name: 'minisipserver_cdr_db_records_waiting',
      help: 'CDR records waiting to be written to the cdr table (the database is away or slow).',
      registers,
      collect: () => cdrWaiting.set(cdrDb()?.waiting ?? 0),
    });
  }

  /** The Content-Type of render()'s text (the Prometheus text format 0.0.4). */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Every metric in the Prometheus text exposition format: the body of GET /metrics. */
  async render(): Promise<string> {
    this.snap = null;
    return this.registry.metrics();
  }

  /**
   * Counts calls from the live state's events (started, answered with its set-up time, ended by
   * outcome) until close(); a second call replaces the first subscription.
   */
  watch(live: Pick<LiveSource, 'subscribe'>): void {
    this.unsubscribe?.();
    this.unsubscribe = live.subscribe((e) => this.onEvent(e));
  }

  /** A call was answered `setupSeconds` after its INVITE arrived. */
  callAnswered(setupSeconds: number): void {
    this.answeredTotal.inc();
    if (Number.isFinite(setupSeconds) && setupSeconds >= 0) this.setupSeconds.observe(setupSeconds);
  }

  /** A call ended with CDR callTag `callTag` (lib/cdr/record.ts). */
  callEnded(callTag: number): void {
    this.endedTotal.inc({ outcome: callTagName(callTag) ?? 'other' });
  }

  /** A call started. */
  callStarted(): void {
    this.startedTotal.inc();
  }

  /** Stops watching the live state and forgets the metrics. */
  close(): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.registry.clear();
  }

  private onEvent({ event: e }: SequencedEvent): void {
    if (e.type !== 'call') return;
    if (e.action === 'ended') this.callEnded(e.callTag);
    else if (e.action === 'created') this.callStarted();
    else if (e.call.answerTime !== null) this.callAnswered((e.call.answerTime - e.call.startTime) / 1000);
    else this.answeredTotal.inc();
  }

  /**
   * The sources' state for the scrape in progress: read once, kept until the current run of
   * JavaScript is over (the metrics of one scrape are collected together), read afresh after.
   */
  private snapshot(): Snapshot {
    if (this.snap !== null) return this.snap;
    const relay = this.sources.relay();
    const snap: Snapshot = {
      summary: this.sources.summary(),
      relay: relay ? { sessions: relay.sessionCount, limit: relay.sessionLimit, totals: relay.totals() } : { sessions: 0, limit: 0, totals: NO_RELAY_TOTALS },
    };
    this.snap = snap;
    queueMicrotask(() => {
      if (this.snap === snap) this.snap = null;
    });
    return snap;
  }
}

/** A counter without labels whose value is a running total kept elsewhere, read when scraped. */
function plainCounter(registers: Registry[], name: string, help: string, read: () => number): Counter {
  const c: Counter = new Counter({
    name,
    help,
    registers,
    collect: () => {
      c.reset();
      c.inc(read());
    },
  });
  return c;
}
