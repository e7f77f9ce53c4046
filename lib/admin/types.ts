/**
 * The live state of a running server as the admin API, the event channel, the metrics and
 * `minisipserver status` see it. These JSON shapes are a public contract (docs/ADMIN.md): add
 * fields, never rename or remove one.
 */

export type ExtensionState = 'offline' | 'online' | 'ringing' | 'talking';

export interface ContactView {
  /** The registered Contact URI. */
  contact: string;
  /** Where its REGISTER came from, host:port. */
  address: string;
  transport: 'udp' | 'tcp' | 'tls';
  userAgent: string;
  /** Epoch ms. */
  expiresAt: number;
}

export interface ExtensionView {
  number: string;
  name: string;
  state: ExtensionState;
  contacts: ContactView[];
}

export interface CallView {
  /** The call's id in this server (the caller's Call-ID); DELETE /api/v1/calls/{id} takes it. */
  id: string;
  caller: string;
  callerName: string;
  callee: string;
  dialled: string;
  /** `local`, `trunk:<name>`. */
  route: string;
  state: 'ringing' | 'answered';
  /** Epoch ms. */
  startTime: number;
  answerTime: number | null;
  /** Codec of the answer (PCMU, ...), '' before it. */
  codec: string;
  /** `audio`, `audio+video`, '' before the answer. */
  media: string;
  /** RTP packets relayed so far, caller -> callee and back (0 without the relay). */
  packets: { aToB: number; bToA: number };
}

export interface CallBackView {
  /** The application server's id. */
  id: string;
  user1: string;
  user2: string;
  state: 'starting' | 'calling1' | 'calling2' | 'bridged';
  /** Epoch ms. */
  startTime: number;
  answerTime: number | null;
}

export interface IvrView {
  /** The caller's Call-ID. */
  id: string;
  caller: string;
  number: string;
  file: string;
  /** Epoch ms. */
  startTime: number;
}

export interface TrunkView {
  name: string;
  kind: 'register' | 'peer';
  up: boolean;
  /** Registration trunks: registering | registered | failing | stopped | idle. */
  registration: string | null;
  lastStatus: number | null;
  activeCalls: number;
}

export interface Summary {
  version: string;
  node: string;
  /** Epoch ms. */
  startTime: number;
  uptimeSeconds: number;
  extensions: { total: number; registered: number };
  contacts: number;
  calls: { active: number; started: number; answered: number };
  callbacks: number;
  ivr: number;
  trunks: TrunkView[];
  /** The server's processes (all workers with sip.workers): CPU since the previous summary, resident memory. */
  process: { cpuPercent: number; rssBytes: number };
}

/** Something that changed. */
export type LiveEvent =
  | {
      type: 'registration';
      action: 'added' | 'refreshed' | 'removed' | 'expired';
      number: string;
      contact: string;
      address: string;
      transport: 'udp' | 'tcp' | 'tls';
      userAgent: string;
      /** Epoch ms (in the past for removed and expired). */
      expiresAt: number;
    }
  | { type: 'extension'; number: string; state: ExtensionState }
  | { type: 'call'; action: 'created' | 'answered'; call: CallView }
  | { type: 'call'; action: 'ended'; call: CallView; status: number; callTag: number; cause: number }
  | { type: 'callback'; action: 'started' | 'calling2' | 'bridged'; callback: CallBackView }
  | { type: 'callback'; action: 'ended'; callback: CallBackView; result: number; cause: number }
  | { type: 'ivr'; action: 'started' | 'ended'; ivr: IvrView };

export interface SequencedEvent {
  /** Increasing by 1 from 1 for the life of the process (the SSE id). */
  id: number;
  /** Epoch ms. */
  time: number;
  event: LiveEvent;
}

/** What the admin API, event channel, metrics and status read. */
export interface LiveSource {
  summary(): Summary;
  extensions(): ExtensionView[];
  calls(): CallView[];
  callbacks(): CallBackView[];
  ivr(): IvrView[];
  /** Releases a call (both legs get BYE/CANCEL, record callTag 8); false when there is no such call. */
  releaseCall(id: string): boolean;
  /** Every event from now on, in order; returns the unsubscribe function. */
  subscribe(listener: (e: SequencedEvent) => void): () => void;
  /** The events after `lastId` still in the backlog, or null when some of them are gone already. */
  since(lastId: number): SequencedEvent[] | null;
}
