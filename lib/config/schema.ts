/**
 * Every configuration key: its type, default, bounds and the sentence docs/CONFIG.md shows.
 * The loader validates against this table and a test checks that docs/CONFIG.md names every key,
 * so the table is the single source of truth.
 */

import type { DialClass, DialRule, TrunkConfig } from '../trunks/config.js';
import { addressEntryProblem } from './address-entry.js';
import { CDR_FORMAT_VALUES } from '../cdr/formats.js';

export type KeySpec =
  | { type: 'int'; default: number; min: number; max: number; doc: string }
  | { type: 'string'; default: string; doc: string; pattern?: RegExp; patternHint?: string }
  | { type: 'bool'; default: boolean; doc: string }
  | { type: 'enum'; default: string; values: readonly string[]; doc: string }
  | { type: 'list'; default: string[]; values: readonly string[]; doc: string }
  | { type: 'strings'; default: string[]; doc: string; check?: (entry: string) => string | null; scalarList?: boolean }
  | { type: 'map'; default: Record<string, string>; doc: string; keyPattern: RegExp; valuePattern: RegExp; hint: string }
  /** Keys under one name (`sip.tls.port`), each with its own spec; the value is a mapping of them. */
  | { type: 'group'; keys: Record<string, KeySpec> };

export const SCHEMA = {
  node: {
    name: {
      type: 'string',
      default: '',
      pattern: /^$|^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,30}[A-Za-z0-9])?$/,
      patternHint: 'a short name: 1 to 32 letters, digits, ".", "_" or "-", starting and ending with a letter or digit, such as pbx-1',
      doc: 'This server\'s name among several sharing one database behind a front proxy: written in every CDR\'s node column, shown at start, and added as "node" to every JSON log line when set; empty: the host name (then JSON log lines carry no node). Needs a restart.',
    },
  },
  sip: {
    bind: { type: 'string', default: '0.0.0.0', doc: 'IPv4 address the SIP transports listen on (0.0.0.0 = all).' },
    bind6: {
      type: 'string',
      default: '::',
      doc: 'IPv6 address the SIP transports listen on (:: = all); empty string disables IPv6.',
    },
    port: { type: 'int', default: 5060, min: 1, max: 65535, doc: 'SIP port for UDP and TCP.' },
    transports: {
      type: 'list',
      default: ['udp', 'tcp'],
      values: ['udp', 'tcp', 'tls'],
      doc: 'Transports to open. tls (on sip.tls.port) needs sip.tls.cert and sip.tls.key.',
    },
    tls: {
      type: 'group',
      keys: {
        port: { type: 'int', default: 5061, min: 0, max: 65535, doc: 'SIP over TLS port, when sip.transports includes tls (docs/DEPLOY.md, "SIP over TLS"); 0 picks a free one.' },
        cert: {
          type: 'string',
          default: '',
          doc: 'Certificate file (PEM), followed by its intermediate certificates (a full chain, such as certbot\'s fullchain.pem); a relative path is read from the configuration file\'s folder. Read again on every SIGHUP: new connections get the new certificate, open ones keep theirs.',
        },
        key: { type: 'string', default: '', doc: 'Private key file (PEM) of the certificate, readable by the server\'s user only; read again on every SIGHUP with the certificate.' },
        ca: {
          type: 'string',
          default: '',
          doc: 'Optional file of CA certificates (PEM) from which the chain sent with the certificate is completed, when sip.tls.cert holds the certificate alone; read again on every SIGHUP.',
        },
        handshakeTimeout: { type: 'int', default: 10, min: 1, max: 300, doc: 'Seconds a new TLS connection has to finish its handshake before it is closed.' },
      },
    },
    realm: {
      type: 'string',
      default: 'minisipserver',
      doc: 'Digest realm. Passwords are stored as hashes bound to it: changing it needs new passwords.',
    },
    t1: { type: 'int', default: 500, min: 50, max: 10000, doc: 'RFC 3261 timer T1 (ms): round-trip estimate.' },
    t2: { type: 'int', default: 4000, min: 500, max: 60000, doc: 'RFC 3261 timer T2 (ms): longest non-INVITE retransmit interval.' },
    t4: { type: 'int', default: 5000, min: 500, max: 60000, doc: 'RFC 3261 timer T4 (ms): how long a message may stay in the network.' },
    udpBufferBytes: {
      type: 'int',
      default: 4194304,
      min: 65536,
      max: 268435456,
      doc: 'UDP socket receive/send buffer asked of the kernel (capped by net.core.rmem_max).',
    },
    udpEngine: {
      type: 'enum',
      default: 'auto',
      values: ['auto', 'native', 'node'],
      doc: 'Who does UDP socket I/O. native: a thread of the native addon receives and sends in batches (recvmmsg/sendmmsg), so the kernel\'s share of every datagram runs beside the SIP logic on another core; node: Node.js dgram on the main thread; auto: native when the addon was built (npm ci builds it when a C compiler is present), else node.',
    },
    udpCoalesceUs: {
      type: 'int',
      default: 2000,
      min: 0,
      max: 20000,
      doc: 'With the native engine: after a datagram arrives while the server is idle, how long (µs) to wait for others before handling them together. One wake-up of the SIP logic then serves several datagrams instead of one each, which at a few hundred calls a second cuts the CPU per call by a fifth or more; each message waits at most this long. 0: handle each at once.',
    },
    maxMessageBytes: { type: 'int', default: 65536, min: 1500, max: 1048576, doc: 'Largest SIP message accepted; larger ones get 513.' },
    maxHeaders: { type: 'int', default: 256, min: 16, max: 4096, doc: 'Most header lines in one message.' },
    maxVia: { type: 'int', default: 32, min: 2, max: 256, doc: 'Most Via values in one message.' },
    tcpMaxConnections: { type: 'int', default: 4096, min: 1, max: 1000000, doc: 'Most open TCP and TLS connections together; more are refused.' },
    maxConnectionsPerSource: {
      type: 'int',
      default: 50,
      min: 1,
      max: 1000000,
      doc: 'Most TCP and TLS connections open at once from one source address (connections still in their TLS handshake count); more are refused at once.',
    },
    tcpIdleSeconds: {
      type: 'int',
      default: 600,
      min: 5,
      max: 86400,
      doc: 'A TCP or TLS connection with no traffic for this long is closed (a registered phone refreshes well before).',
    },
    workers: {
      type: 'int',
      default: 1,
      min: 1,
      max: 64,
      doc: 'Server processes sharing the SIP port (SO_REUSEPORT: the kernel keeps each phone on one process), to use more than one core. Above 1: UDP only (sip.transports: [udp]) and the native addon is needed (node scripts/build-native.mjs).',
    },
    userAgent: { type: 'string', default: 'minisipserver', doc: 'Server header value sent in responses (and User-Agent in requests).' },
    advertise: {
      type: 'string',
      default: '',
      doc: 'Address written in Via and Contact of what the server sends; empty: the address the phone used to reach the server (its Request-URI host), else the bound address, else the interface on the phone\'s subnet. Behind a front proxy (docs/CLUSTER.md) set it on each node to that node\'s own address: a phone\'s requests name the proxy.',
    },
  },
  registrar: {
    minExpires: { type: 'int', default: 60, min: 1, max: 86400, doc: 'Shorter registrations get 423 Interval Too Brief.' },
    maxExpires: { type: 'int', default: 3600, min: 60, max: 604800, doc: 'Longer registrations are shortened to this.' },
    defaultExpires: { type: 'int', default: 3600, min: 60, max: 604800, doc: 'Lifetime when the REGISTER names none.' },
    maxContacts: {
      type: 'int',
      default: 5,
      min: 1,
      max: 100,
      doc: 'Bindings per extension; a new one beyond it replaces the oldest.',
    },
    shared: {
      type: 'bool',
      default: false,
      doc: 'Other `serve` nodes register phones into the same SQLite store (several nodes on one machine behind a front proxy, docs/CLUSTER.md): a callee\'s bindings are read from the store at each call, a new registration reaches the store within 50 ms, expired ones are purged there by time only (never a row another node has refreshed), and limits.maxClients counts the registrations of every node. Always so between sip.workers processes and with store.kind mariadb.',
    },
  },
  auth: {
    algorithms: {
      type: 'list',
      default: ['SHA-256', 'MD5'],
      values: ['SHA-256', 'MD5'],
      doc: 'Digest algorithms offered, one challenge each, in this order (most preferred first, RFC 8760). Put MD5 first for clients that only read the first challenge (SIPp, some older desk phones).',
    },
    md5OnlyUserAgents: {
      type: 'strings',
      default: ['baresip', 'sofia-sip'],
      doc: 'Clients whose User-Agent contains one of these (any case) are challenged with MD5 alone: they give up when a challenge names an algorithm they do not know.',
    },
    nonceLifetime: {
      type: 'int',
      default: 300,
      min: 10,
      max: 86400,
      doc: 'Seconds a nonce stays valid; then the client is challenged again with stale=true.',
    },
  },
  limits: {
    maxClients: {
      type: 'int',
      default: 0,
      min: 0,
      max: 100000000,
      doc: 'Most extensions registered at once (0 = unlimited). Beyond it a new registration gets 403.',
    },
    serverTransactions: {
      type: 'int',
      default: 200000,
      min: 100,
      max: 10000000,
      doc: 'Most live server transactions. When full, the oldest answered non-INVITE transaction ends before its Timer J to make room; if none has answered yet, new requests get 503.',
    },
  },
  calls: {
    noAnswerTimeout: {
      type: 'int',
      default: 60,
      min: 5,
      max: 3600,
      doc: 'Seconds a call may ring unanswered; then it is released with cause 19 (no answer).',
    },
    maxDuration: {
      type: 'int',
      default: 14400,
      min: 0,
      max: 604800,
      doc: 'Longest call in seconds, from answer (0 = no limit); then both legs get BYE with cause 16.',
    },
    maxPerExtension: {
      type: 'int',
      default: 8,
      min: 1,
      max: 1000,
      doc: 'Calls one extension may take part in at once (as caller or callee); beyond it 486 Busy Here.',
    },
    maxTotal: {
      type: 'int',
      default: 2000,
      min: 1,
      max: 1000000,
      doc: 'Calls in progress in the whole server; beyond it new INVITEs get 503 Service Unavailable.',
    },
  },
  media: {
    relay: {
      type: 'enum',
      default: 'always',
      values: ['always', 'never'],
      doc: 'always: every media stream (audio, video, others) flows through the server, which rewrites SDP; never: SDP is passed untouched and phones send media to each other.',
    },
    bind: { type: 'string', default: '', doc: 'IPv4 address the relay ports are opened on; empty: the same as sip.bind.' },
    advertise: {
      type: 'string',
      default: '',
      doc: 'Address written into SDP for the relay ports; empty: the address of the server the phone sent its SIP to (the local address that reaches it).',
    },
    portMin: { type: 'int', default: 10000, min: 1024, max: 65534, doc: 'Lowest UDP port of the relay range (RTP even, RTCP odd).' },
    portMax: { type: 'int', default: 30000, min: 1025, max: 65535, doc: 'Highest UDP port of the relay range. 10000-30000 holds 5,000 relayed calls at once (two port pairs each).' },
    engine: {
      type: 'enum',
      default: 'auto',
      values: ['auto', 'native', 'node'],
      doc: 'auto: the native relay when it was built (npm ci builds it when a C compiler is present), else the Node.js relay; native or node force one.',
    },
    requireSrtpOverTls: {
      type: 'bool',
      default: false,
      doc: 'Refuse (488) an offer carrying SDES keys (a=crypto, RTP/SAVP) that did not arrive over TLS: the keys would cross the network readable. Off: such offers are relayed, with a warning in the log.',
    },
    inactivityTimeout: {
      type: 'int',
      default: 60,
      min: 0,
      max: 86400,
      doc: 'Seconds without any media packet in an answered call before it is released with cause 102 (0 = never).',
    },
  },
  cdr: {
    format: {
      type: 'strings',
      default: ['csv'],
      scalarList: true,
      check: (entry: string) => ((CDR_FORMAT_VALUES as readonly string[]).includes(entry) ? null : `"${entry}" is not a CDR format; use csv, cdr, both, db (with a file format) or off`),
      doc: 'Call records written to <data dir>/cdr: daily YYYYMMDD.csv, the binary YYYYMMDD.cdr, both, or none (off). Add db to a file format, e.g. [csv, db], to also write each record into the cdr table of the store (store.kind), where `minisipserver cdr query --store CONFIG` reads the records of every server sharing it (docs/CDR.md); db alone is refused: the files stay the complete record. Needs a restart.',
    },
    failedCalls: { type: 'bool', default: true, doc: 'Also write a record for every call attempt that was not answered.' },
    sync: {
      type: 'bool',
      default: false,
      doc: 'fdatasync after every record: survives a power cut, not only a crash, at some cost in disk writes.',
    },
  },
  ivr: {
    dir: { type: 'string', default: '', doc: 'Folder of the IVR-XML files (*.xml, with prompts in its prompts/ sub-folder); empty: <data dir>/ivr. Files are held in memory and reloaded within 2 s of a change.' },
    numbers: {
      type: 'map',
      default: {},
      keyPattern: /^[0-9*#+]{1,32}$/,
      valuePattern: /^[^/\\\0]{1,200}\.xml$/i,
      hint: 'a dialled number (digits, *, #, +) mapped to an IVR file name in ivr.dir, e.g. { "800": auto_attendant.xml }',
      doc: 'Numbers that run an IVR: dialled number -> file name in ivr.dir, e.g. { "800": auto_attendant.xml }. Checked before extensions.',
    },
    language: {
      type: 'string',
      default: 'en',
      pattern: /^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})?$/,
      patternHint: 'a language tag such as en or zh-CN (the prompts/<language>/ sub-folder)',
      doc: 'Prompts are looked for in prompts/<language>/ first, then in prompts/.',
    },
    maxSessions: { type: 'int', default: 200, min: 1, max: 100000, doc: 'IVR calls at once; beyond it a call to an IVR number gets 486 Busy Here.' },
    timezone: { type: 'string', default: '', doc: 'Time zone of timecheck actions (an IANA name such as Europe/Paris); empty: the server\'s local time zone.' },
  },
  callback: {
    port: {
      type: 'int',
      default: 5080,
      min: 0,
      max: 65535,
      doc: 'UDP port of the call-back service, at the SIP bind address (docs/CALLBACK.md); 0: the service is off and nothing listens. A port held by another program is logged and the server runs without the service. Needs a restart.',
    },
    asAddress: {
      type: 'strings',
      default: ['127.0.0.1'],
      check: addressEntryProblem,
      scalarList: true,
      doc: 'Addresses (IPs or CIDR ranges) the application server may send from; datagrams from others are dropped unanswered. An empty list ([] or "") accepts any source and is logged as a warning: never on a public network.',
    },
    defaultCaller: {
      type: 'string',
      default: '',
      pattern: /^$|^[A-Za-z0-9*#+._-]{1,64}$/,
      patternHint: 'a number (digits, *, #, +) or empty',
      doc: 'Number user1 sees calling when a REQUEST has no caller1; empty: anonymous.',
    },
    maxActive: { type: 'int', default: 50, min: 1, max: 10000, doc: 'Call-backs in progress at once; beyond it a REQUEST is refused (result 3, limit-reached).' },
    video: {
      type: 'bool',
      default: false,
      doc: 'Offer user1 a video stream too (H.264, VP8), so that two video phones get video once bridged. Off by default: user1 is offered video before anyone knows whether user2 has it.',
    },
  },
  admin: {
    listen: {
      type: 'string',
      default: '127.0.0.1:8080',
      pattern: /^$|^(\[[0-9A-Fa-f:.]+\]|[0-9.]+|[A-Za-z0-9.-]+):\d{1,5}$/,
      patternHint: 'host:port such as 127.0.0.1:8080 ([::1]:8080 for IPv6), or "" for off',
      doc: 'HTTP address of the admin API, the event stream and /metrics (docs/ADMIN.md); "" turns it off. Every request needs the bearer token the server writes to <data dir>/admin.token. Needs a restart.',
    },
    metricsToken: {
      type: 'bool',
      default: true,
      doc: 'GET /metrics needs the token too; false serves it without, for a Prometheus scraper on a trusted network.',
    },
  },
  eventChannel: {
    port: {
      type: 'int',
      default: 5080,
      min: 0,
      max: 65535,
      doc: 'TCP port of the WebSocket event channel (miniSIPServer compatible, docs/ADMIN.md), at the SIP bind address; 0: off. TCP, so it does not collide with the call-back service on UDP 5080. Needs a restart.',
    },
    allow: {
      type: 'strings',
      default: ['127.0.0.1'],
      check: addressEntryProblem,
      scalarList: true,
      doc: 'Addresses (IPs or CIDR ranges) allowed to connect to the event channel; others are refused at the handshake.',
    },
  },
  security: {
    maxFailures: {
      type: 'int',
      default: 10,
      min: 0,
      max: 100000,
      doc: 'A source address that fails authentication this many times within security.window is banned (docs/SECURITY.md). A wrong password, an unknown user and a nonce the server never issued count alike, as does a request from a scanner\'s User-Agent. 0: no bans for failures.',
    },
    window: { type: 'int', default: 60, min: 1, max: 86400, doc: 'Seconds over which failures are counted, from a source\'s first failure.' },
    banTime: {
      type: 'int',
      default: 600,
      min: 1,
      max: 31536000,
      doc: 'Seconds a first ban lasts. A source banned again within a day of its last ban is banned twice as long each time, up to security.maxBanTime.',
    },
    maxBanTime: { type: 'int', default: 86400, min: 1, max: 31536000, doc: 'Longest automatic ban, in seconds.' },
    ratePerSecond: {
      type: 'int',
      default: 50,
      min: 0,
      max: 10000000,
      doc: 'SIP messages per second one source address may send (a token bucket; retransmissions the transaction layer absorbs do not count). Beyond it they are dropped unanswered. 0: no rate limit.',
    },
    burst: { type: 'int', default: 100, min: 1, max: 10000000, doc: 'Messages a source may send at once above its rate (the size of its bucket).' },
    sustainedSeconds: {
      type: 'int',
      default: 10,
      min: 0,
      max: 86400,
      doc: 'A source whose messages keep being dropped for the rate this many seconds in a row is banned (reason rate). 0: dropped, never banned.',
    },
    scannerUserAgents: {
      type: 'strings',
      default: ['friendly-scanner', 'sipvicious', 'sipcli', 'VaxSIPUserAgent', 'sundayddr', 'iWar', 'sip-scan', 'SIPBomber', 'siparmyknife'],
      doc: 'Requests whose User-Agent contains one of these (any case) are dropped unanswered and count as failures: the tools that scan the internet for SIP servers and guess passwords. [] turns it off.',
    },
    trusted: {
      type: 'strings',
      default: ['127.0.0.1', '::1'],
      check: addressEntryProblem,
      scalarList: true,
      doc: 'Addresses (IPs or CIDR ranges) never banned or rate-limited: the office network, a proxy in front of the server (which must be here: only a trusted source may send REGISTERs with Path, docs/CLUSTER.md). Trunk peers are trusted too. Loopback is in the default because nothing from the network can send from it (a proxy or a benchmark on the same host does); [] polices it too.',
    },
    tableSize: {
      type: 'int',
      default: 100000,
      min: 10,
      max: 10000000,
      doc: 'Most source addresses tracked in each table (rates, failures, bans in force); beyond it the least recently active give way, so a flood from spoofed sources cannot grow memory.',
    },
  },
  overload: {
    enabled: {
      type: 'bool',
      default: true,
      doc: 'Overload control (docs/SECURITY.md, Overload): above the high-water marks new calls get 503 with Retry-After and new requests from unknown sources are shed, while calls already accepted, in-dialog requests, CANCEL and known phones\' refreshes are served.',
    },
    highDelayMs: {
      type: 'int',
      default: 250,
      min: 5,
      max: 60000,
      doc: 'Delay (ms) at which the server starts refusing new work: how late it handles what it receives (its event loop\'s delay, or how long the oldest datagram received and not yet handled has waited). Passed on three samples in a row (50 ms apart): a shorter pause is not overload.',
    },
    lowDelayMs: {
      type: 'int',
      default: 100,
      min: 1,
      max: 60000,
      doc: 'While the delay is under this (ms), the share of new calls admitted grows back by a twentieth every 50 ms (none to all in a second).',
    },
    highCallsInSetup: {
      type: 'int',
      default: 10000,
      min: 1,
      max: 10000000,
      doc: 'Incoming INVITEs still waiting for their final response (calls ringing or being set up) at which the server counts as overloaded, as for the delay.',
    },
    lowCallsInSetup: {
      type: 'int',
      default: 8000,
      min: 0,
      max: 10000000,
      doc: 'The share of new calls admitted grows back only while the calls being set up are fewer than this (and the delay is under overload.lowDelayMs).',
    },
    retryAfter: { type: 'int', default: 5, min: 1, max: 3600, doc: 'Seconds in the Retry-After of the 503 that refuses a new call while overloaded.' },
  },
  data: {
    dir: { type: 'string', default: './data', doc: 'Data folder: the SQLite store, CDR files.' },
  },
  store: {
    kind: {
      type: 'enum',
      default: 'sqlite',
      values: ['sqlite', 'mariadb'],
      doc: 'Where extensions, registrations and bans are kept. sqlite: a file in data.dir (one machine, nothing to set up); mariadb: a MariaDB database that several servers can share (store.mariadb.*, docs/STORE.md).',
    },
    url: {
      type: 'string',
      default: '',
      doc: 'The MariaDB database as mariadb://user@host:port/database (or mariadb://user@localhost/database?socket=/run/mysqld/mysqld.sock), in place of store.mariadb.host, port, socketPath, user and database. Never with a password in it: put the password in store.mariadb.passwordFile.',
    },
    mariadb: {
      type: 'group',
      keys: {
        host: { type: 'string', default: '127.0.0.1', doc: 'MariaDB server address (store.kind: mariadb).' },
        port: { type: 'int', default: 3306, min: 1, max: 65535, doc: 'MariaDB server TCP port.' },
        socketPath: { type: 'string', default: '', doc: 'Unix socket of a MariaDB server on this machine (such as /run/mysqld/mysqld.sock); used instead of host and port when set.' },
        user: { type: 'string', default: 'minisipserver', doc: 'MariaDB user.' },
        passwordFile: {
          type: 'string',
          default: '',
          doc: 'File holding the MariaDB user\'s password (its first line), readable by the server\'s user only; a relative path is read from the configuration file\'s folder. Empty: no password (unix_socket authentication).',
        },
        database: { type: 'string', default: 'minisipserver', doc: 'MariaDB database; its tables are created and migrated at start (`minisipserver db migrate` does it beforehand).' },
        poolSize: { type: 'int', default: 2, min: 1, max: 64, doc: 'Connections to MariaDB each server process may keep open (its writes and polls take one at a time; another stands in while a broken one is replaced).' },
        pollMs: {
          type: 'int',
          default: 200,
          min: 20,
          max: 10000,
          doc: 'How often each server reads what other servers changed (extensions, registrations, bans): the longest a change made elsewhere takes to be seen here.',
        },
      },
    },
  },
  log: {
    level: { type: 'enum', default: 'info', values: ['debug', 'info', 'warn', 'error'], doc: 'Lowest level written.' },
    format: {
      type: 'enum',
      default: 'auto',
      values: ['auto', 'text', 'json'],
      doc: 'auto: readable text on a terminal, JSON lines otherwise.',
    },
    peerEventsPerSecond: {
      type: 'int',
      default: 20,
      min: 1,
      max: 100000,
      doc: 'Log lines per second about what peers send (bad messages, failed auth, a 200 never acknowledged, bad SDP); the rest are counted.',
    },
  },
} as const satisfies Record<string, Record<string, KeySpec>>;

type Schema = typeof SCHEMA;
type ValueOf<S extends KeySpec> = S extends { type: 'group'; keys: infer Keys }
  ? { -readonly [Key in keyof Keys]: ValueOf<Keys[Key] & KeySpec> }
  : S extends { type: 'int' }
  ? number
  : S extends { type: 'bool' }
    ? boolean
    : S extends { type: 'list' } | { type: 'strings' }
      ? string[]
      : S extends { type: 'map' }
        ? Record<string, string>
        : string;

/**
 * Sections that are not key tables (checked by lib/config/trunks-load.ts): each is compared and
 * replaced as a whole, under its own name (`dialplan`, not `dialplan.KEY`).
 */
export const WHOLE_SECTIONS = ['trunks', 'dialplan', 'classes'] as const;
export type WholeSection = (typeof WHOLE_SECTIONS)[number];

export type Config = {
  -readonly [Section in keyof Schema]: { -readonly [Key in keyof Schema[Section]]: ValueOf<Schema[Section][Key] & KeySpec> };
} & {
  trunks: TrunkConfig[];
  /** In file order: the first matching rule wins. */
  dialplan: DialRule[];
  classes: Record<string, DialClass>;
};

export function defaultConfig(): Config {
  const out: Record<string, unknown> = {};
  for (const [section, keys] of Object.entries(SCHEMA)) {
    const values: Record<string, unknown> = {};
    for (const [key, spec] of Object.entries(keys as Record<string, KeySpec>)) values[key] = defaultValue(spec);
    out[section] = values;
  }
  out['trunks'] = [];
  out['dialplan'] = [];
  out['classes'] = {};
  return out as Config;
}

/** A fresh copy of a key's default (a group's: every sub-key's). */
export function defaultValue(spec: KeySpec): unknown {
  if (spec.type === 'group') return Object.fromEntries(Object.entries(spec.keys).map(([key, s]) => [key, defaultValue(s)]));
  return Array.isArray(spec.default) ? [...spec.default] : typeof spec.default === 'object' ? { ...spec.default } : spec.default;
}
