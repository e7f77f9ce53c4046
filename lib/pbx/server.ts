import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createResponse, type SipRequest, type SipResponse } from '../sip/message.js';
import { NonceService, type DigestAlgorithm } from '../sip/digest.js';
import { SipStack } from '../sip/stack.js';
import type { ServerTransaction } from '../sip/transaction/layer.js';
import type { Endpoint } from '../sip/transport/types.js';
import { openSqliteStore } from '../store/sqlite.js';
import { NONCE_SECRET_KEY, newNonceSecret, type Store } from '../store/store.js';
import { BindingWriter } from '../store/binding-writer.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { configChanges, setConfigValue } from '../config/diff.js';
import { ReloadableLogger } from '../log-reloadable.js';
import { Authenticator } from './authenticator.js';
import { Registrar } from './registrar.js';
import { Extensions } from './extensions.js';
import { ExtensionCache } from './extension-cache.js';
import { LocalAddress } from '../sip/local-address.js';
import { newTag, toTag } from '../sip/transaction/message-keys.js';
import { nodeName } from '../config/node-name.js';
import { join } from 'node:path';
import { CallManager } from './calls.js';
import type { CallEnv } from './call.js';
import { Trunks } from '../trunks/trunks.js';
import { LiveState } from '../admin/live-state.js';
import { EventChannel } from '../admin/event-channel.js';
import { ServerMetrics } from '../admin/metrics.js';
import { AdminServer } from '../admin/http.js';
import { loadOrCreateToken, removeAdminAddress, writeAdminAddress } from '../admin/token.js';
import { packageVersion } from '../version.js';
import { FEED_MS, type PrimaryCommand, type WorkerFeed } from '../admin/workers-live.js';
import type { ExtensionState } from '../admin/types.js';
import { CallRecorder } from './call-recorder.js';
import { CdrDbQueue } from '../cdr/db-queue.js';
import { cdrOutputs } from '../cdr/formats.js';
import { openCdrTable } from '../store/open-cdr-table.js';
import { describeStore } from '../store/open-store.js';
import { Router } from './router.js';
import type { MediaSession } from './media-path.js';
import { MediaRelay } from '../media/relay.js';
import { IvrService } from '../services/ivr/service.js';
import { CallBackService } from '../services/callback/service.js';
import { openFileCount, openFilesLimit } from '../platform/open-files.js';
import { reusePortUdpFd } from '../platform/reuse-port.js';
import { WorkerRouter } from '../sip/worker-router.js';
import { randomToken } from '../sip/random-id.js';
import { SourceGuard } from '../security/guard.js';
import { TlsCertificate } from './tls-certificate.js';
import type { TransportName } from '../sip/transport/types.js';
import { OverloadControl } from '../security/overload.js';
import { parseNameAddr } from '../sip/headers/name-addr.js';
import { parseUri } from '../sip/uri.js';
import {
  ACCEPTED_BODY_TYPES,
  ALLOW_HEADER,
  preCheckRequest,
  SUPPORTED_OPTIONS,
  unsupportedMethodResponse,
} from './request-checks.js';

/** Descriptors kept for the store, logs, CDR files and the rest besides SIP and media sockets. */
const FILES_HEADROOM = 64;

export interface ServerStartInfo {
  port: number;
  /** The SIP over TLS port; 0 without TLS. */
  tlsPort: number;
  /** Extensions created on the very first start, with their passwords (shown once, never logged). */
  createdDefaults: Array<{ number: string; password: string }> | null;
}

/**
 * Composes the SIP stack, the store and the PBX services for `minisipserver serve`, and is the
 * transaction user: every request that the transaction layer accepts lands in `onRequest`.
 */
export class PbxServer {
  readonly store: Store;
  readonly stack: SipStack;
  readonly registrar: Registrar;
  readonly calls: CallManager;
  /** Hands messages between processes sharing the SIP port (sip.workers); null when alone. */
  readonly router: WorkerRouter | null;
  private readonly recorder: CallRecorder | null;
  readonly ivr: IvrService;
  readonly callback: CallBackService;
  readonly trunks: Trunks;
  /** What the admin API, the event channel, the metrics and `status` read. */
  readonly live: LiveState;
  readonly eventChannel: EventChannel;
  /** Auto-ban and flood limits (security.*, docs/SECURITY.md). */
  readonly guard: SourceGuard;
  /** Overload control (overload.*, docs/SECURITY.md). */
  readonly overload: OverloadControl;
  /** Prometheus metrics (GET /metrics); null with the admin listener off. */
  readonly metrics: ServerMetrics | null;
  /** The admin HTTP API (docs/ADMIN.md); null when admin.listen is "" or in a worker (the primary serves it). */
  readonly admin: AdminServer | null = null;
  private adminUrl: string | null = null;
  private readonly numbers: Router;
  private readonly auth: Authenticator;
  private readonly writer: BindingWriter;
  private readonly tagPrefix: string;
  /** The certificate of SIP over TLS; null without TLS. */
  private readonly tlsCertificate: TlsCertificate | null;
  private tagCounter = 0;

  constructor(
    readonly config: Config,
    private readonly logger: Logger,
    /** This process's place among `sip.workers` processes sharing the SIP port; absent: alone. */
    private readonly worker?: { index: number; count: number; token?: Buffer },
    options: {
      /** The store, opened by openStore() (lib/store/open-store.ts); absent: the SQLite file of data.dir. */
      store?: Store;
      /** Test settings: the first retry delay of a failed trunk registration (30 s otherwise). */
      trunkRetryMs?: number;
    } = {},
  ) {
    // A missing or broken certificate stops the start before anything is opened.
    this.tlsCertificate = config.sip.transports.includes('tls') ? new TlsCertificate(() => this.config.sip.tls, logger) : null;
    const tlsCredentials = this.tlsCertificate?.load();
    this.router = worker ? new WorkerRouter(worker.index, worker.token ?? randomBytes(16)) : null;
    const router = this.router;
    mkdirSync(config.data.dir, { recursive: true });
    if (options.store === undefined && config.store.kind !== 'sqlite') {
      throw new Error(`store.kind ${config.store.kind}: open the store with openStore() and pass it to the server`);
    }
    this.store = options.store ?? openSqliteStore(config.data.dir);
    // Other processes or servers write into the same store: the registrar reads it at call time.
    const shared = worker !== undefined || this.store.kind !== 'sqlite' || config.registrar.shared;
    const secret = this.serverSecret();
    const realm = config.sip.realm;
    // Unchanged on a restart (and the same on every node of a cluster): no write then.
    if (this.store.getMeta('realm') !== realm) this.store.setMeta('realm', realm);
    const nonces = new NonceService({ secret, lifetimeMs: config.auth.nonceLifetime * 1000 });
    const extensionCache = new ExtensionCache(this.store);
    const auth = (this.auth = new Authenticator({
      extensions: extensionCache,
      nonces,
      realm,
      secret,
      algorithms: config.auth.algorithms as DigestAlgorithm[],
      md5OnlyUserAgents: config.auth.md5OnlyUserAgents,
      onFailure: (source) => this.guard.authFailed(source.address),
    }));
    // Bindings reach the disk at most once a second each: a crash loses at most that second of
    // refreshes, and phones re-register anyway.
    // Shared with other processes (sip.workers, other servers on MariaDB, or other nodes on one
    // SQLite file: registrar.shared), a new registration must reach the store quickly: they route
    // calls from it.
    this.writer = new BindingWriter(this.store, shared ? 50 : 1000);
    this.store.purgeExpiredBindings(Date.now());
    this.registrar = new Registrar({
      store: this.store,
      writer: this.writer,
      auth,
      logger,
      minExpires: config.registrar.minExpires,
      maxExpires: config.registrar.maxExpires,
      defaultExpires: config.registrar.defaultExpires,
      maxContacts: config.registrar.maxContacts,
      maxClients: config.limits.maxClients,
      shared,
      extensions: extensionCache,
      // RFC 3327 Path only from a front proxy in security.trusted (docs/DEPLOY.md).
      mayInsertPath: (address) => this.guard.trusted(address),
    });
    this.tagPrefix = randomBytes(4).toString('hex');
    const cdrOut = cdrOutputs(config.cdr.format);
    this.recorder =
      cdrOut.files === null
        ? null
        : new CallRecorder({
            dir: join(config.data.dir, 'cdr'),
            format: cdrOut.files,
            failedCalls: config.cdr.failedCalls,
            sync: config.cdr.sync,
            node: nodeName(config),
            onError: (err) => logger.error('cdr.write_failed', { error: err.message, hint: 'check the free space and permissions of the data folder' }),
            ...(cdrOut.db ? { db: new CdrDbQueue({ open: () => openCdrTable(config), where: describeStore(config), logger }) } : {}),
          });
    const sipAddress = new LocalAddress({ configured: config.sip.advertise, bind: config.sip.bind });
    const mediaAddress = new LocalAddress({ configured: config.media.advertise || config.sip.advertise, bind: config.media.bind || config.sip.bind });
    const env: Omit<CallEnv, 'fileDialog' | 'ended'> = {
        sendRequest: (req, dest, user) => {
          try {
            return this.stack.transactions.sendRequest(req, dest, user);
          } catch (err) {
            logger.warn('sip.send_failed', { error: (err as Error).message });
            return null;
          }
        },
        sendRaw: (msg, dest) => {
          if (Buffer.isBuffer(msg)) this.stack.sendData(msg, dest);
          else this.stack.send(msg, dest);
        },
        localHost: (peer, hint) => sipAddress.for(peer, hint),
        mediaHost: (peer, hint) => mediaAddress.for(peer, hint),
        sipPort: (transport) => (transport === 'tls' && this.stack.tlsPort !== 0 ? this.stack.tlsPort : this.stack.dialogPort),
        viaRport: worker === undefined,
        dialogTag: router ? () => router.tag(randomToken()) : randomToken,
        t1: config.sip.t1,
        t2: config.sip.t2,
        noAnswerMs: config.calls.noAnswerTimeout * 1000,
        requireSrtpOverTls: config.media.requireSrtpOverTls,
        maxDurationMs: config.calls.maxDuration * 1000,
        allow: ALLOW_HEADER,
        userAgent: config.sip.userAgent,
        log: (level, event, fields, fromPeer) => (fromPeer === true ? logger.peer(level, event, fields) : logger[level](event, fields)),
        logs: (level) => logger.enabled(level),
    };
    this.trunks = new Trunks(config.trunks, env, options.trunkRetryMs !== undefined ? { retryMinMs: options.trunkRetryMs } : {});
    const trunks = this.trunks;
    const guard = (this.guard = new SourceGuard({
      settings: config.security,
      store: this.store,
      logger,
      // Trunk peers are trusted like security.trusted, whatever port they send from (a TCP
      // endpoint is matched on its address alone).
      isTrustedPeer: (address) => trunks.size > 0 && trunks.fromSource({ transport: 'tcp', address, port: 0 }) !== null,
      // Several processes: the first reports what the others see too (bans by `ban add`, bans ending).
      reportShared: !worker || worker.index === 0,
    }));
    this.overload = new OverloadControl({
      settings: config.overload,
      logger,
      callsInSetup: () => this.stack.transactions.stats.invitesInProgress,
      receiveBacklogMs: () => this.stack.receiveBacklogMs(),
      knownSource: (req, source) => this.knownSource(req, source),
      answersChallenge: (req, withinMs) => this.auth.answersRecentChallenge(req, withinMs),
    });
    const numbers = (this.numbers = new Router({ extensions: extensionCache, registrar: { lookup: (aor) => this.registrar.lookup(aor) }, trunks: this.trunks }));
    numbers.setDialPlan(config.dialplan, config.classes);
    this.calls = new CallManager({
      env,
      auth,
      router: numbers,
      trunks: this.trunks,
      limits: { maxPerExtension: config.calls.maxPerExtension, maxTotal: config.calls.maxTotal },
      recorder: this.recorder,
      newMedia: (label) => this.newMedia(label),
      newTag,
      tls: tlsCredentials !== undefined,
    });

    const relayBind = config.media.bind || config.sip.bind;
    // The server's own media (IVR prompts, ringback) is reached by the relay on loopback when the relay listens everywhere.
    const endpointBind = config.media.relay === 'never' ? relayBind : relayBind === '0.0.0.0' ? '127.0.0.1' : relayBind;
    this.ivr = new IvrService(
      {
        env: this.calls.env,
        route: (number) => numbers.route(number),
        newMedia: (label) => this.newMedia(label),
        endpointBind,
        record: (summary, answered) => this.recorder?.record(summary, answered),
        inactivityMs: config.media.inactivityTimeout * 1000,
      },
      { ...config.ivr, dir: config.ivr.dir || join(config.data.dir, 'ivr') },
    );
    this.calls.ivr = this.ivr;
    this.callback = new CallBackService(
      {
        env: this.calls.env,
        route: (number) => numbers.route(number, { grants: [] }),
        newMedia: (label) => this.newMedia(label),
        endpointBind,
        record: (summary, answered) => this.recorder?.record(summary, answered),
        bind: config.sip.bind || config.sip.bind6 || '0.0.0.0',
        relayOn: config.media.relay !== 'never',
        log: (level, event, fields) => logger[level](event, fields),
        peerLog: (level, event, fields) => logger.peer(level, event, fields),
      },
      // With several processes on the SIP port, the first one alone runs the service.
      { ...config.callback, port: worker && worker.index > 0 ? 0 : config.callback.port },
    );
    this.calls.countAlso(this.callback);
    this.live = new LiveState({
      store: this.store,
      registrar: this.registrar,
      calls: this.calls,
      callback: this.callback,
      ivr: this.ivr,
      trunks: this.trunks,
      version: packageVersion(),
      node: nodeName(config),
      logger,
      // A refresh changes nothing anyone watches, and at thousands a second it would push every
      // change out of the backlog.
      refreshEvents: false,
    }).attach();
    this.eventChannel = new EventChannel(
      {
        live: this.live,
        log: (level, event, fields) => logger[level](event, fields),
        peerLog: (level, event, fields) => logger.peer(level, event, fields),
      },
      {
        bind: config.sip.bind || config.sip.bind6 || '0.0.0.0',
        // With several processes the primary runs the channel over all of them.
        port: worker ? 0 : config.eventChannel.port,
        allow: config.eventChannel.allow,
      },
    );

    this.stack = new SipStack(
      {
        bind4: config.sip.bind,
        bind6: config.sip.bind6,
        port: config.sip.port,
        transports: config.sip.transports as TransportName[],
        ...(tlsCredentials ? { tls: { port: config.sip.tls.port, credentials: tlsCredentials.context, handshakeTimeoutMs: config.sip.tls.handshakeTimeout * 1000 } } : {}),
        udpBufferBytes: config.sip.udpBufferBytes,
        udpEngine: config.sip.udpEngine as 'auto' | 'native' | 'node',
        udpCoalesceUs: config.sip.udpCoalesceUs,
        limits: { maxMessageBytes: config.sip.maxMessageBytes, maxHeaders: config.sip.maxHeaders, maxVia: config.sip.maxVia },
        tcpMaxConnections: config.sip.tcpMaxConnections,
        maxConnectionsPerSource: config.sip.maxConnectionsPerSource,
        tcpIdleMs: config.sip.tcpIdleSeconds * 1000,
        timers: { T1: config.sip.t1, T2: config.sip.t2, T4: config.sip.t4 },
        maxServerTransactions: config.limits.serverTransactions,
        serverHeader: config.sip.userAgent,
        logger,
        ...(router ? { sharedUdp: (address: string, port: number) => reusePortUdpFd(address, port), router } : {}),
        guard,
        overload: this.overload,
      },
      {
        onRequest: (req, tx, source) => this.onRequest(req, tx, source),
        onCancel: (cancel, inviteTx) => this.calls.onCancel(cancel, inviteTx),
      },
      (req, source) => this.statelessAnswer(req, source),
    );
    // A source banned while it holds TCP connections loses them at once.
    guard.onBan = (address) => this.stack.closeConnectionsFrom(address);
    // With several processes the primary serves the metrics, gathered from every worker (feedPrimary).
    this.metrics =
      config.admin.listen === ''
        ? null
        : new ServerMetrics({
            summary: () => this.live.summary(),
            stack: this.stack,
            auth: this.auth,
            relay: () => this.relay,
            cdr: this.recorder,
            security: guard,
            overload: this.overload,
          });
    this.metrics?.watch(this.live);
    if (config.admin.listen !== '' && !worker) {
      try {
        const token = loadOrCreateToken(config.data.dir, (level, event, fields) => logger[level](event, fields));
        this.admin = new AdminServer(
          {
            live: this.live,
            ...(this.metrics ? { metrics: this.metrics } : {}),
            token,
            metricsToken: config.admin.metricsToken,
            log: (level, event, fields) => logger[level](event, fields),
            peerLog: (level, event, fields) => logger.peer(level, event, fields),
            version: packageVersion(),
          },
          { listen: config.admin.listen },
        );
      } catch (err) {
        logger.error('admin.token_failed', { dir: config.data.dir, error: (err as Error).message, hint: 'the server runs without the admin API' });
      }
    }
  }

  /**
   * One of several sip.workers processes: the primary serves the admin API, the event channel and
   * /metrics for all of them, from what each sends it here (lib/admin/workers-live.ts).
   */
  private feedPrimary(): void {
    const send = (msg: WorkerFeed) => {
      if (process.connected) process.send!(msg);
    };
    const snapshot = () => {
      const states: Array<[string, ExtensionState]> = [];
      for (const e of this.live.extensions()) if (e.state !== 'offline') states.push([e.number, e.state]);
      send({ type: 'live-snapshot', summary: this.live.summary(), calls: this.live.calls(), callbacks: this.live.callbacks(), ivr: this.live.ivr(), states });
    };
    this.stopFeed = this.live.subscribe((e) => send({ type: 'live-event', event: e.event }));
    snapshot();
    const timer = setInterval(snapshot, FEED_MS);
    timer.unref();
    const onCommand = (msg: PrimaryCommand) => {
      if (msg?.type === 'live-hello') snapshot();
      else if (msg?.type === 'live-release' && typeof msg.id === 'string') this.live.releaseCall(msg.id);
      else if (msg?.type === 'metrics-request' && this.metrics) {
        this.metrics.registry.getMetricsAsJSON().then(
          (metrics) => send({ type: 'metrics', reqId: msg.reqId, metrics }),
          () => send({ type: 'metrics', reqId: msg.reqId, metrics: [] }),
        );
      }
    };
    process.on('message', onCommand);
    const previous = this.stopFeed;
    this.stopFeed = () => {
      previous();
      clearInterval(timer);
      process.off('message', onCommand);
    };
  }

  private stopFeed: () => void = () => undefined;

  /** The private port of this process (sip.workers), for its siblings. */
  get dialogPort(): number {
    return this.stack.dialogPort;
  }

  async start(): Promise<ServerStartInfo> {
    const extensions = new Extensions(this.store, this.config.sip.realm);
    const createdDefaults = await extensions.ensureDefaults();
    const stale = extensions.staleRealm();
    if (stale.length > 0) {
      this.logger.warn('extensions.realm_changed', {
        count: stale.length,
        hint: 'these extensions were hashed for another realm: set new passwords with `minisipserver ext passwd NUMBER`',
      });
    }
    if (this.config.media.relay !== 'never') {
      const m = this.config.media;
      this.relay = await MediaRelay.open({
        bind: m.bind || this.config.sip.bind,
        ...this.relayPorts(),
        engine: m.engine as 'auto' | 'native' | 'node',
        inactivityMs: m.inactivityTimeout * 1000,
        logger: this.logger,
      });
      const r = this.relayPorts();
      this.logger.info('media.relay_ready', { engine: this.relay.engine, ports: `${r.portMin}-${r.portMax}`, bind: m.bind || this.config.sip.bind });
      this.reportFileLimit(this.relay.sessionLimit);
    }
    const ivrDir = this.config.ivr.dir || join(this.config.data.dir, 'ivr');
    try {
      mkdirSync(join(ivrDir, 'prompts'), { recursive: true });
    } catch (err) {
      this.logger.warn('ivr.dir_failed', { dir: ivrDir, error: (err as Error).message });
    }
    await this.ivr.start();
    try {
      await this.stack.start();
    } catch (err) {
      await this.admin?.close(0);
      await this.ivr.close();
      await this.callback.close(0);
      await this.relay?.close();
      throw err;
    }
    await this.callback.start();
    await this.eventChannel.start();
    if (this.worker && process.send) this.feedPrimary();
    const admin = await this.admin?.start();
    if (admin) {
      this.adminUrl = admin.url;
      try {
        writeAdminAddress(this.config.data.dir, admin.url);
      } catch (err) {
        this.logger.warn('admin.address_failed', { error: (err as Error).message, hint: '`status --data-dir` will not find the server; use --url' });
      }
    }
    // With several processes on the SIP port, the first one alone registers the trunks.
    this.trunks.start({ register: !this.worker || this.worker.index === 0 });
    this.registrar.start();
    this.logger.info('server.started', {
      node: nodeName(this.config),
      port: this.stack.port,
      realm: this.config.sip.realm,
      dataDir: this.config.data.dir,
      store: this.store.kind,
      extensions: this.store.countExtensions(),
      bindings: this.registrar.bindingCount,
    });
    return { port: this.stack.port, tlsPort: this.stack.tlsPort, createdDefaults };
  }

  async stop(): Promise<void> {
    if (this.adminUrl) removeAdminAddress(this.config.data.dir, this.adminUrl);
    const released = this.calls.releaseAll() + this.ivr.releaseAll() + this.callback.releaseAll();
    if (released > 0) {
      this.logger.info('calls.released', { count: released, cause: 41 });
      // Let the BYEs and final responses leave before the sockets close (bounded wait).
      await this.drainClientTransactions(1000);
    }
    // The RESPONSEs of call-backs just ended have gone out: their ACKs are waited for (at most 1 s),
    // while the trunks unregister.
    // The streams see the releases' events before they end.
    await Promise.all([this.callback.close(1000), this.trunks.stop(1000), this.eventChannel.close(), this.admin?.close(500)]);
    this.stopFeed();
    this.live.detach();
    this.metrics?.close();
    await this.stack.stop();
    await this.ivr.close();
    await this.relay?.close();
    await this.recorder?.close();
    this.registrar.stop();
    this.writer.close();
    this.guard.stop();
    this.overload.stop();
    await this.store.close();
    this.logger.info('server.stopped');
  }

  /**
   * Each relayed call holds four sockets (an RTP/RTCP pair towards each phone): says at start how
   * many the open-files limit allows, and warns when that is fewer than the port range would.
   */
  private reportFileLimit(relaySessions: number): void {
    const limit = openFilesLimit();
    if (!limit || limit.soft === Infinity) return;
    const tcp = this.config.sip.transports.some((t) => t !== 'udp') ? this.config.sip.tcpMaxConnections : 0;
    const besidesMedia = (openFileCount() ?? 0) + tcp + FILES_HEADROOM;
    const relayedCalls = Math.max(0, Math.floor((limit.soft - besidesMedia) / 4));
    const fields = { openFiles: limit.soft, hardLimit: limit.hard, relayedCalls, tcpConnections: tcp, rangeAllows: relaySessions };
    if (relayedCalls >= relaySessions) {
      this.logger.info('media.file_limit', fields);
      return;
    }
    this.logger.warn('media.file_limit', {
      ...fields,
      hint: `the open-files limit allows ${relayedCalls} relayed calls at once, the port range ${relaySessions}: raise LimitNOFILE= in the systemd unit (or ulimit -Hn/-n before starting) to at least ${besidesMedia + relaySessions * 4}`,
    });
  }

  /** The relay port range, or this worker's slice of it (workers do not share relay ports). */
  private relayPorts(): { portMin: number; portMax: number } {
    const { portMin, portMax } = this.config.media;
    if (!this.worker) return { portMin, portMax };
    const span = Math.floor((portMax - portMin + 1) / this.worker.count);
    const min = portMin + span * this.worker.index;
    return { portMin: min, portMax: min + span - 1 };
  }

  /** Waits until no client transaction is left waiting for a first answer, at most `ms`. */
  private async drainClientTransactions(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    await new Promise((r) => setTimeout(r, 20));
    while (this.stack.transactions.stats.clientTransactions > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  private relay: MediaRelay | null = null;

  /** A relay session for a new call; null with `media.relay: never`; undefined when no ports are left. */
  private newMedia(label: string): MediaSession | null | undefined | Promise<MediaSession | undefined> {
    if (this.config.media.relay === 'never') return null;
    const session = this.relay?.openSession(label) ?? null;
    if (session instanceof Promise) return session.then((s) => s ?? undefined);
    return session ?? undefined;
  }

  private newTag(): string {
    return `${this.tagPrefix}${(this.tagCounter++).toString(36)}`;
  }

  /**
   * Requests answered without a transaction (RFC 3261 section 8.2.7): OPTIONS to the server, and
   * the challenge to a REGISTER that carries no credentials yet: half of all REGISTERs, which
   * then cost no transaction state. A retransmission simply gets a fresh challenge.
   */
  private statelessAnswer(req: SipRequest, source: Endpoint): SipResponse | null {
    if (req.method === 'OPTIONS' && !hasToTag(req)) return this.answer(req, source);
    if (req.method === 'REGISTER' && !req.headers.has('authorization')) return this.answer(req, source);
    // A new INVITE without credentials: the challenge costs no transaction (the client's ACK
    // to it then matches nothing and is dropped, RFC 3261 section 17.2.3).
    // A trunk's INVITE is never challenged (carriers do not answer challenges): it goes on.
    if (req.method === 'INVITE' && !req.headers.has('proxy-authorization') && !hasToTag(req) && (this.trunks.size === 0 || !this.trunks.fromSource(source))) {
      const toTag = this.newTag();
      return preCheckRequest(req, toTag) ?? this.auth.challenge(req, 'proxy', toTag, false, 'no credentials').response;
    }
    return null;
  }

  /**
   * Overload control serves a new request from a known source: a trusted address or a trunk, or
   * the address a phone registered from (its registration refreshes, keep-alives, presence).
   */
  private knownSource(req: SipRequest, source: Endpoint): boolean {
    if (this.guard.trusted(source.address)) return true;
    const addr = parseNameAddr(req.headers.get(req.method === 'REGISTER' ? 'to' : 'from') ?? '');
    const user = addr === null ? undefined : parseUri(addr.uri)?.user;
    if (user === undefined) return false;
    const bindings = this.registrar.bindingsOf(user);
    return bindings !== undefined && bindings.some((b) => b.sourceAddress === source.address);
  }

  private onRequest(req: SipRequest, tx: ServerTransaction | null, source: Endpoint): void {
    if (!tx || hasToTag(req)) {
      // ACK to a 2xx (no transaction) and every request inside a dialog.
      this.calls.onInDialog(req, tx);
      return;
    }
    if (req.method === 'INVITE') {
      const early = preCheckRequest(req, this.newTag());
      if (early) tx.respond(early);
      else this.calls.onInvite(req, tx, source);
      return;
    }
    tx.respond(this.answer(req, source));
  }

  /** The response to a request, by method. */
  private answer(req: SipRequest, source: Endpoint): SipResponse {
    const toTag = this.newTag();
    const early = preCheckRequest(req, toTag);
    if (early) return early;
    switch (req.method) {
      case 'REGISTER': {
        const result = this.registrar.handle(req, source, toTag);
        if (result.event && result.event.action !== 'refresh') {
          this.logger.info(`register.${result.event.action}`, { aor: result.event.aor, from: `${source.address}:${source.port}` });
        }
        return result.response;
      }
      case 'OPTIONS': {
        const res = createResponse(req, 200, undefined, toTag);
        res.headers.append('Allow', ALLOW_HEADER);
        res.headers.append('Accept', ACCEPTED_BODY_TYPES.join(', '));
        res.headers.append('Supported', SUPPORTED_OPTIONS.join(', '));
        return res;
      }
      default:
        return unsupportedMethodResponse(req, toTag);
    }
  }

  private serverSecret(): Buffer {
    // The store creates it at open (one for every server sharing it); a damaged value is replaced.
    const stored = this.store.getMeta(NONCE_SECRET_KEY);
    if (stored && /^[0-9a-f]{64}$/.test(stored)) return Buffer.from(stored, 'hex');
    const secret = newNonceSecret();
    this.store.setMeta(NONCE_SECRET_KEY, secret);
    return Buffer.from(secret, 'hex');
  }

  /** Every SIGHUP, after applyConfig: the certificate files are read again (a renewal keeps their names). */
  reloadFiles(): void {
    this.tlsCertificate?.reload((c) => this.stack.setTlsCredentials(c.context));
  }

  /**
   * Takes a new configuration (SIGHUP) without dropping registrations or calls. Keys that the
   * running services read on every use are applied; the others keep their old values and are
   * reported as needing a restart.
   */
  applyConfig(next: Config): { applied: string[]; needsRestart: string[] } {
    // Keys that take effect for the next request or call; registrations and calls are kept.
    const live: Record<string, (value: number) => void> = {
      'registrar.minExpires': (v) => this.registrar.setLimits({ minExpires: v }),
      'registrar.maxExpires': (v) => this.registrar.setLimits({ maxExpires: v }),
      'registrar.defaultExpires': (v) => this.registrar.setLimits({ defaultExpires: v }),
      'registrar.maxContacts': (v) => this.registrar.setLimits({ maxContacts: v }),
      'limits.maxClients': (v) => this.registrar.setLimits({ maxClients: v }),
      'calls.maxPerExtension': (v) => this.calls.setLimits({ maxPerExtension: v }),
      'calls.maxTotal': (v) => this.calls.setLimits({ maxTotal: v }),
      'calls.noAnswerTimeout': (v) => this.calls.setLimits({ noAnswerMs: v * 1000 }),
      'calls.maxDuration': (v) => this.calls.setLimits({ maxDurationMs: v * 1000 }),
    };
    const logIsLive = this.logger instanceof ReloadableLogger;
    const applied: string[] = [];
    const needsRestart: string[] = [];
    for (const { key, to } of configChanges(this.config, next)) {
      if (key === 'dialplan' || key === 'classes') {
        setConfigValue(this.config, key, to);
        this.numbers.setDialPlan(this.config.dialplan, this.config.classes);
        applied.push(key);
        continue;
      }
      if (key.startsWith('overload.')) {
        setConfigValue(this.config, key, to);
        this.overload.configure(this.config.overload);
        applied.push(key);
        continue;
      }
      if (key === 'sip.tls' && this.tlsCertificate !== null && sameTlsListener(this.config.sip.tls, to as Config['sip']['tls'])) {
        // Other files: reloadFiles() reads them next.
        setConfigValue(this.config, key, to);
        applied.push(key);
        continue;
      }
      if (key.startsWith('security.')) {
        setConfigValue(this.config, key, to);
        this.guard.configure(this.config.security);
        applied.push(key);
        continue;
      }
      if (key === 'eventChannel.allow') {
        setConfigValue(this.config, key, to);
        this.eventChannel.setAllow(this.config.eventChannel.allow);
        applied.push(key);
        continue;
      }
      if (key.startsWith('callback.') && key !== 'callback.port') {
        setConfigValue(this.config, key, to);
        const { asAddress, defaultCaller, maxActive, video } = this.config.callback;
        this.callback.setSettings({ asAddress, defaultCaller, maxActive, video });
        applied.push(key);
        continue;
      }
      if (key === 'ivr.numbers' || key === 'ivr.maxSessions') {
        const numbers = key === 'ivr.numbers' ? (to as Record<string, string>) : this.config.ivr.numbers;
        const max = key === 'ivr.maxSessions' ? (to as number) : this.config.ivr.maxSessions;
        this.ivr.setBindings(numbers, max);
        setConfigValue(this.config, key, to);
        applied.push(key);
        continue;
      }
      const apply = live[key];
      if (apply !== undefined) apply(to as number);
      else if (!(key.startsWith('log.') && logIsLive)) {
        needsRestart.push(key);
        continue;
      }
      setConfigValue(this.config, key, to);
      applied.push(key);
    }
    if (logIsLive && applied.some((k) => k.startsWith('log.'))) {
      const log = this.config.log;
      (this.logger as ReloadableLogger).reconfigure({
        level: log.level as 'info',
        format: log.format as 'auto',
        peerEventsPerSecond: log.peerEventsPerSecond,
      });
    }
    return { applied, needsRestart };
  }
}


/** Only sip.tls.cert, key and ca differ: the certificate changes without a restart. */
function sameTlsListener(a: Config['sip']['tls'], b: Config['sip']['tls']): boolean {
  return a.port === b.port && a.handshakeTimeout === b.handshakeTimeout;
}

function hasToTag(req: SipRequest): boolean {
  return toTag(req) !== undefined;
}
