/**
 * A call's outgoing side, with us as UAC: the INVITE sent in parallel to every contact of the
 * callee (forks; the first 2xx wins, the others are cancelled), PRACK for reliable provisional
 * responses, CANCEL, and then the dialog of the phone that answered.
 *
 * States: calling (no final answer yet) -> answered (a fork's 2xx: `dialog` is set), or failed
 * (every fork ended without a 2xx, or the ring timer fired), or cancelled (the owner gave up);
 * ended once the owner releases it. Whatever comes late (a 2xx after a CANCEL, a second phone
 * answering) is confirmed and ended here, so that no phone is left off-hook.
 */
import { createRequest, Headers, serialize, type SipRequest, type SipResponse } from '../../sip/message.js';
import { Dialog, withoutTag } from '../../sip/dialog.js';
import { randomToken } from '../../sip/random-id.js';
import { parseNameAddr } from '../../sip/headers/name-addr.js';
import { parseCSeq } from '../../sip/headers/cseq.js';
import { createResponse } from '../../sip/message.js';
import type { ClientTransaction, ClientTransactionUser, ServerTransaction } from '../../sip/transaction/layer.js';
import { RetainedBytes } from '../../sip/transaction/retained-bytes.js';
import { newBranch, toTag as toTagOf } from '../../sip/transaction/message-keys.js';
import { authorizationFor } from '../../sip/digest-client.js';
import type { ForkTarget } from './fork-target.js';
import { bestFinal, bracket, contactFor, hostPortText, isReliable, isSipsUri, quoteName, reasonValue, SDP, structuredCancel } from '../call-messages.js';
import { answerInDialog, ENDED_OWNER, type BridgedLeg, type DialogUser, type LegEnv, type LegOwner } from './leg.js';
import type { Endpoint } from '../../sip/transport/types.js';

export type OutgoingLegState = 'calling' | 'answered' | 'failed' | 'cancelled' | 'ended';

export interface OutgoingLegOwner extends LegOwner {
  /** A provisional response (above 100) while calling, already PRACKed when it was reliable. */
  onProvisional(res: SipResponse): void;
  /** The first 2xx: `dialog` is set; the owner sends the ACK (`sendAck`), at once or with a late answer. */
  onAnswer(res: SipResponse, cseq: number): void;
  /** Every fork ended without a 2xx: the best final response (RFC 3261 section 16.7), null if none came. */
  onFailure(best: SipResponse | null): void;
  /** Nobody answered within the ring time; the owner cancels the leg. */
  onRingTimeout(): void;
}

const NO_BODY = Buffer.alloc(0);

export interface OutgoingCall {
  caller: { number: string; displayName: string };
  callee: { number: string };
  /** The offer (already pointing at the relay), or empty for a late offer. */
  offer: Buffer;
  contentType: string | undefined;
  /** Headers passed on from the caller's INVITE. */
  extra: Array<[string, string]>;
  /** Max-Forwards of the caller's INVITE (decremented here). */
  maxForwards: number;
  /** Offer 100rel to the callee (the caller supports it). */
  reliableProvisionals: boolean;
  ringTimeoutMs: number;
  /** Host part of our Call-ID. */
  callIdHost: string;
  /** From without its tag; default: the caller's number at our address. */
  fromUri?: string;
  /** To of the INVITE; default: the callee's number at our address. */
  toUri?: string;
  /** An account that answers the target's 401/407 (a trunk's; never the caller's). */
  credentials?: { username: string; password: string };
}

/** One branch of the leg: the INVITE to one target. */
interface Fork {
  target: ForkTarget;
  tx: ClientTransaction | null;
  invite: SipRequest;
  /** 'calling' until a provisional response, then 'proceeding'; 'done' after a final one. */
  state: 'calling' | 'proceeding' | 'done';
  /** A CANCEL is owed as soon as a provisional response allows it (RFC 3261 section 9.1). */
  cancelWhenProceeding: boolean;
  final?: SipResponse;
  /** RSeq of the last reliable provisional response PRACKed (RFC 3262 section 4). */
  lastRSeq: number;
  /** The early dialog PRACKs are sent in. */
  early?: Dialog;
  /** The INVITE was sent again with credentials (one answer per challenge, unless it was stale). */
  authAnswered: boolean;
}

/**
 * What an ended leg keeps of the INVITE it sent on a fork: enough to ACK and end a dialog that a
 * late 2xx creates (forkDialog reads From, To and CSeq), and to send the CANCEL still owed to a
 * fork that had not answered at all when the leg was given up (section 9.1: the INVITE's Via,
 * Call-ID, From, To, CSeq number and Route), without the body and the other headers.
 */
const KEPT_INVITE_HEADERS = ['via', 'max-forwards', 'from', 'to', 'call-id', 'route', 'cseq'];
/** A fork that had its final answer is owed no CANCEL: a late 2xx's dialog is all it may need. */
const DIALOG_HEADERS = ['from', 'to', 'cseq'];

/** Where ended legs' ACKs are kept, back to back (they all end 64*T1 after their call). */
const keptAcks = new RetainedBytes();

/**
 * What answers the winner's 2xx retransmitted after the call: its ACK again (section 13.2.2.4).
 * One small object a call with no closures, as thousands of them wait 64*T1 at a time.
 */
class AckAgain implements ClientTransactionUser {
  private readonly bytes: Buffer;
  private readonly span: number;

  constructor(
    private readonly env: LegEnv,
    private readonly cseq: number,
    ack: Buffer,
    private readonly dest: Endpoint,
  ) {
    const span = keptAcks.copy(ack);
    // A copy of its own when too big for a slab: the serialized ACK is a slice of a shared one.
    this.bytes = span >= 0 ? keptAcks.slab : Buffer.from(ack);
    this.span = span;
  }

  onResponse(res: SipResponse): void {
    if (res.status < 200 || res.status >= 300 || parseCSeq(res.headers.get('cseq') ?? '')?.seq !== this.cseq) return;
    this.env.sendRaw(this.span >= 0 ? RetainedBytes.view(this.bytes, this.span) : this.bytes, this.dest);
  }

  onTimeout(): void {}
}

/** A copy of its own: serialize() writes into a shared slab, which a kept slice would keep whole. */
function ownBytes(data: Buffer): Buffer {
  const own = Buffer.allocUnsafeSlow(data.length);
  data.copy(own);
  return own;
}

function slimInvite(invite: SipRequest, kept: readonly string[]): SipRequest {
  const h = new Headers();
  for (const name of kept) for (const v of invite.headers.getAll(name)) h.append(name, v);
  return createRequest('INVITE', invite.uri, h);
}

export class OutgoingLeg implements DialogUser, BridgedLeg {
  state: OutgoingLegState = 'calling';
  readonly callId: string;
  readonly localTag: string;
  private dialogOrNull: Dialog | null = null;
  owner: OutgoingLegOwner;
  /** Where the callee's SIP comes from (the phone that answered, or rang last). */
  signalIp = '';
  private readonly forks: Fork[] = [];
  private winner: Fork | null = null;
  private ringTimer: NodeJS.Timeout | undefined;
  /** The ACK we sent for the 2xx to our INVITE (sent again when the 2xx is retransmitted). */
  private lastAck: { cseq: number; request: SipRequest | Buffer } | null = null;
  /** The ACK of the callee for our 2xx to its re-INVITE (no retransmission: see answerReInvite). */
  private pendingAck: ((ack: SipRequest) => void) | null = null;
  /** The cause given when the leg was cancelled: a phone answering late is told it with its BYE. */
  private cancelCause: number | undefined;

  constructor(private readonly env: LegEnv, private readonly call: OutgoingCall, owner: OutgoingLegOwner) {
    this.owner = owner;
    this.callId = `${randomToken()}@${call.callIdHost}`;
    this.localTag = env.dialogTag();
  }

  /** The dialog with the phone that answered (state answered or later). */
  get dialog(): Dialog {
    if (this.dialogOrNull === null) throw new Error('the outgoing leg has no dialog yet');
    return this.dialogOrNull;
  }

  get answered(): boolean {
    return this.dialogOrNull !== null;
  }

  get awaitingAck(): boolean {
    return false;
  }

  /** Sends the INVITE to every target in parallel. */
  start(targets: ForkTarget[]): void {
    this.env.fileDialog(this.callId, this.localTag, this);
    for (const target of targets) this.startFork(target);
    // The forks hold the offer now; a body may be a slice that keeps a whole pooled slab alive.
    this.call.offer = NO_BODY;
    this.call.extra = [];
    if (this.state !== 'calling') return;
    this.ringTimer = setTimeout(this.guard(() => {
      this.ringTimer = undefined;
      if (this.state === 'calling') this.owner.onRingTimeout();
    }), this.call.ringTimeoutMs);
    this.ringTimer.unref();
  }

  /** Gives up: CANCEL to ringing forks (section 9.1), with a Reason carrying `cause`. */
  cancel(cause: number | undefined, reason?: string): void {
    if (this.state === 'calling') this.state = 'cancelled';
    this.cancelCause = cause;
    this.clearRingTimer();
    for (const fork of this.forks) this.cancelOrDrop(fork, reason);
  }

  sendAck(cseq: number, body: Buffer): void {
    const d = this.dialog;
    const ack = d.request('ACK', { cseq, body, contentType: body.length > 0 ? SDP : undefined });
    this.lastAck = { cseq, request: ack };
    this.env.sendRaw(ack, d.destination);
  }

  sendRequest(out: SipRequest, user: { onResponse(res: SipResponse): void; onTimeout(): void }): boolean {
    return this.sendInDialog(this.dialog, out, user);
  }

  /**
   * A request in a dialog; a challenge to it is answered once with the leg's account (a
   * carrier may challenge a BYE or re-INVITE as well as the INVITE).
   */
  private sendInDialog(d: Dialog, out: SipRequest, user: { onResponse(res: SipResponse): void; onTimeout(): void }): boolean {
    const credentials = this.call.credentials;
    if (!credentials) return this.env.sendRequest(out, d.destination, user) !== null;
    let answered = false;
    const relay = {
      onResponse: (res: SipResponse) => {
        if ((res.status === 401 || res.status === 407) && !answered) {
          const auth = authorizationFor(res, credentials, out.method, out.uri, out.body);
          if (auth) {
            answered = true;
            const again = reissue(out, ++d.localSeq, d.via(), auth);
            if (this.env.sendRequest(again, d.destination, relay) !== null) return;
          }
        }
        user.onResponse(res);
      },
      onTimeout: () => user.onTimeout(),
    };
    return this.env.sendRequest(out, d.destination, relay) !== null;
  }

  /**
   * Our 2xx to the callee's re-INVITE. The callee's ACK matches nothing we retransmit: a
   * registered phone is reached over its own flow, and the 2xx is not retransmitted.
   */
  answerReInvite(_res: SipResponse, _cseq: number, onAck: (ack: SipRequest) => void): void {
    this.pendingAck = onAck;
  }

  bye(cause: number): void {
    if (this.dialogOrNull) this.sendBye(this.dialogOrNull, reasonValue(cause));
  }

  /** Stops the ring timer; in-dialog requests are no longer delivered. */
  end(): void {
    if (this.state === 'ended') return;
    this.state = 'ended';
    this.clearRingTimer();
    this.env.fileDialog(this.callId, this.localTag, undefined);
  }

  /**
   * After the record: keep only what a late 2xx needs (see slimInvite). The INVITE transaction
   * holds this leg for 64*T1 after a 2xx (RFC 6026 section 7.2), at every call's rate: the ACK
   * is kept as bytes, and an answered fork's INVITE as the three headers its dialog needs.
   */
  forget(): void {
    this.pendingAck = null;
    this.owner = ENDED_OWNER;
    const winner = this.winner;
    const ack = this.lastAck;
    if (ack !== null) {
      const bytes = Buffer.isBuffer(ack.request) ? ack.request : serialize(ack.request);
      if (winner?.tx?.handOver && this.dialogOrNull !== null) {
        // The winner's transaction needs no more of this leg than its ACK (see onFork2xx).
        winner.tx.handOver(new AckAgain(this.env, ack.cseq, bytes, this.dialogOrNull.destination));
        this.lastAck = null;
      } else if (bytes !== ack.request) {
        ack.request = ownBytes(bytes);
      }
    }
    for (const f of this.forks) {
      f.final = undefined;
      f.early = undefined;
      f.invite = slimInvite(f.invite, f.state === 'done' ? DIALOG_HEADERS : KEPT_INVITE_HEADERS);
    }
  }

  /** Where the leg went (for the record): the phone that answered, or the first one called. */
  get calleeAddress(): string {
    const f = this.winner ?? this.forks[0];
    if (!f) return '';
    const e = f.target.destination;
    return hostPortText(e.address, e.port);
  }

  /** A request inside the dialog (`tx` null for an ACK). */
  onRequest(req: SipRequest, tx: ServerTransaction | null): void {
    if (req.method === 'ACK') {
      const f = this.pendingAck;
      this.pendingAck = null;
      f?.(req);
      return;
    }
    if (!tx) return;
    const dialog = this.dialogOrNull;
    if (dialog === null || this.state === 'ended') {
      tx.respond(createResponse(req, 481, undefined));
      return;
    }
    answerInDialog(req, tx, dialog, this.owner, this.env.allow, null);
  }

  /** `fn` for a timer or callback: a fault in it goes to the owner, never to the process. */
  private guard(fn: () => void): () => void {
    return () => {
      try {
        fn();
      } catch (err) {
        this.owner.onInternalError(err);
      }
    };
  }

  private startFork(target: ForkTarget): void {
    const { caller, callee, offer } = this.call;
    const dest = target.destination;
    const host = this.env.localHost(dest.address, target.localAddress);
    const dialog = new Dialog({
      callId: this.callId,
      localTag: this.localTag,
      remoteTag: '',
      localUri: this.call.fromUri ?? `${caller.displayName ? `${quoteName(caller.displayName)} ` : ''}<sip:${caller.number}@${bracket(host)}>`,
      remoteUri: this.call.toUri ?? `<sip:${callee.number}@${bracket(host)}>`,
      localSeq: 0,
      remoteSeq: -1,
      remoteTarget: target.requestUri,
      // A phone registered through a proxy: its Path as the INVITE's Route (RFC 3327 section 5.4).
      routeSet: target.route !== undefined ? [...target.route] : [],
      destination: dest,
      ...this.localParts(host, target),
      rport: this.env.viaRport,
    });
    const extra: Array<[string, string]> = [['allow', this.env.allow], ['user-agent', this.env.userAgent]];
    if (this.call.reliableProvisionals) extra.push(['supported', '100rel']);
    extra.push(...this.call.extra);
    const req = dialog.request('INVITE', { body: offer, contentType: offer.length > 0 ? (this.call.contentType ?? SDP) : undefined, extra });
    // Section 16.6 step 3 spirit: a B2BUA also decrements Max-Forwards, so loops through trunks end.
    const maxForwards = this.call.maxForwards;
    req.headers.set('max-forwards', String(Number.isFinite(maxForwards) && maxForwards > 0 ? Math.min(maxForwards - 1, 70) : 69));
    const fork: Fork = { target, tx: null, invite: req, state: 'calling', cancelWhenProceeding: false, lastRSeq: -1, authAnswered: false };
    this.forks.push(fork);
    this.sendForkInvite(fork);
  }

  private sendForkInvite(fork: Fork): void {
    fork.tx = this.env.sendRequest(fork.invite, fork.target.destination, {
      onResponse: this.guardResponse(fork),
      onTimeout: this.guard(() => this.onForkFinal(fork, null)),
    });
    if (!fork.tx) this.onForkFinal(fork, null);
  }

  /**
   * A trunk's 401/407 to our INVITE: the INVITE again with the account's credentials, the same
   * Call-ID and From tag, the next CSeq (RFC 3261 section 22.2). Once per fork, unless the new
   * challenge only says the nonce was stale.
   */
  private answerChallenge(fork: Fork, res: SipResponse): boolean {
    const credentials = this.call.credentials;
    if (!credentials || this.state !== 'calling' || fork.cancelWhenProceeding) return false;
    if (fork.authAnswered && !isStale(res)) return false;
    const inv = fork.invite;
    const auth = authorizationFor(res, credentials, 'INVITE', inv.uri, inv.body);
    if (!auth) return false;
    fork.authAnswered = true;
    const seq = (parseCSeq(inv.headers.get('cseq') ?? '')?.seq ?? 1) + 1;
    const via = inv.headers.get('via') ?? '';
    fork.invite = reissue(inv, seq, via.replace(/;branch=[^;,\s]*/i, `;branch=${newBranch()}`), auth);
    fork.state = 'calling';
    fork.lastRSeq = -1;
    fork.early = undefined;
    this.sendForkInvite(fork);
    return true;
  }

  private guardResponse(fork: Fork): (res: SipResponse) => void {
    return (res) => {
      try {
        this.onForkResponse(fork, res);
      } catch (err) {
        this.owner.onInternalError(err);
      }
    };
  }

  private onForkResponse(fork: Fork, res: SipResponse): void {
    const status = res.status;
    if (status > 100 && (this.winner === null || this.winner === fork)) this.signalIp = fork.target.signalIp;
    if (status < 200) {
      if (fork.state === 'calling') fork.state = 'proceeding';
      if (fork.cancelWhenProceeding) {
        fork.cancelWhenProceeding = false;
        this.cancelFork(fork);
        return;
      }
      if (status === 100) return;
      if (isReliable(res) && !this.prackFork(fork, res)) return;
      if (this.state === 'calling') this.owner.onProvisional(res);
      return;
    }
    if (status < 300) {
      this.onFork2xx(fork, res);
      return;
    }
    if ((status === 401 || status === 407) && fork.state !== 'done' && this.answerChallenge(fork, res)) return;
    this.onForkFinal(fork, res);
  }

  /**
   * RFC 3262 section 4: a reliable provisional response from the callee is acknowledged with
   * PRACK on its early dialog. Returns false for a retransmission (already acknowledged).
   */
  private prackFork(fork: Fork, res: SipResponse): boolean {
    const rseq = Number(res.headers.get('rseq') ?? '');
    if (!Number.isInteger(rseq) || rseq <= fork.lastRSeq) return false;
    fork.lastRSeq = rseq;
    const d = (fork.early ??= this.forkDialog(fork, res));
    const cseq = parseCSeq(fork.invite.headers.get('cseq') ?? '')?.seq ?? 1;
    const prack = d.request('PRACK', { extra: [['rack', `${rseq} ${cseq} INVITE`]] });
    this.env.sendRequest(prack, d.destination, { onResponse: () => undefined, onTimeout: () => undefined });
    return true;
  }

  private onFork2xx(fork: Fork, res: SipResponse): void {
    const cseq = parseCSeq(res.headers.get('cseq') ?? '')?.seq ?? 1;
    if (this.winner !== null) {
      if (this.winner === fork && this.lastAck !== null && this.lastAck.cseq === cseq) {
        // Our ACK was lost: the 2xx came again (section 13.2.2.4).
        this.env.sendRaw(this.lastAck.request, this.dialog.destination);
      } else if (this.winner !== fork) {
        // A second phone answered too: confirm and end its dialog at once (section 13.2.2.4).
        const d = this.forkDialog(fork, res);
        this.env.sendRaw(d.request('ACK', { cseq }), d.destination);
        this.sendBye(d, 'SIP;cause=200;text="Call completed elsewhere"');
      }
      return;
    }
    if (this.state !== 'calling') {
      // Answered after the leg was given up: ACK and hang up.
      const d = this.forkDialog(fork, res);
      this.env.sendRaw(d.request('ACK', { cseq }), d.destination);
      this.sendBye(d, reasonValue(this.cancelCause ?? 16));
      return;
    }
    this.winner = fork;
    fork.state = 'done';
    this.dialogOrNull = this.forkDialog(fork, res);
    this.state = 'answered';
    this.clearRingTimer();
    for (const other of this.forks) if (other !== fork) this.cancelOrDrop(other, 'SIP;cause=200;text="Call completed elsewhere"');
    this.owner.onAnswer(res, cseq);
  }

  /** Our Contact and Via sent-by towards `target`: a sips: Contact when we call a sips: URI (RFC 3261 section 8.1.1.8). */
  private localParts(host: string, target: ForkTarget): { contact: string; sentBy: string } {
    const transport = target.destination.transport;
    const sips = isSipsUri(target.requestUri);
    return {
      contact: contactFor(host, this.env.sipPort(sips ? 'tls' : transport), transport, this.call.caller.number, sips),
      sentBy: hostPortText(host, this.env.sipPort(transport)),
    };
  }

  /** The dialog a fork's response creates (section 12.1.2). */
  private forkDialog(fork: Fork, res: SipResponse): Dialog {
    const contact = parseNameAddr(res.headers.get('contact') ?? '')?.uri;
    const dest = fork.target.destination;
    const host = this.env.localHost(dest.address, fork.target.localAddress);
    return new Dialog({
      callId: this.callId,
      localTag: this.localTag,
      remoteTag: toTagOf(res) ?? '',
      localUri: withoutTag(fork.invite.headers.get('from') ?? ''),
      remoteUri: withoutTag(fork.invite.headers.get('to') ?? ''),
      localSeq: parseCSeq(fork.invite.headers.get('cseq') ?? '')?.seq ?? 1,
      remoteSeq: -1,
      remoteTarget: contact ?? fork.target.requestUri,
      // Section 12.1.2: the UAC's route set is the Record-Route list of the response, reversed.
      routeSet: res.headers.list('record-route').reverse(),
      destination: dest,
      ...this.localParts(host, fork.target),
      rport: this.env.viaRport,
    });
  }

  private onForkFinal(fork: Fork, res: SipResponse | null): void {
    if (fork.state === 'done') return;
    fork.state = 'done';
    fork.final = res ?? undefined;
    if (this.state !== 'calling') return;
    if (this.forks.some((f) => f.state !== 'done')) {
      // RFC 3261 section 16.7 step 5: a 6xx ends the search at once.
      if (!res || res.status < 600) return;
      for (const other of this.forks) this.cancelOrDrop(other);
    }
    this.state = 'failed';
    this.clearRingTimer();
    this.owner.onFailure(bestFinal(this.forks.map((f) => f.final ?? null)));
  }

  private cancelOrDrop(fork: Fork, reason?: string): void {
    if (fork.state === 'done') return;
    if (fork.state === 'calling') fork.cancelWhenProceeding = true;
    else this.cancelFork(fork, reason);
  }

  /** Section 9.1: CANCEL with the INVITE's Request-URI, Call-ID, To, From, CSeq number and Via. */
  private cancelFork(fork: Fork, reason?: string): void {
    if (fork.state === 'done' || !fork.tx) return;
    const cancel = structuredCancel(fork.invite);
    if (reason) cancel.headers.append('reason', reason);
    else if (this.cancelCause !== undefined) cancel.headers.append('reason', reasonValue(this.cancelCause));
    this.env.sendRequest(cancel, fork.tx.destination, { onResponse: () => undefined, onTimeout: () => undefined });
  }

  private sendBye(d: Dialog, reason: string): void {
    const bye = d.request('BYE', { extra: [['reason', reason]] });
    this.sendInDialog(d, bye, { onResponse: () => undefined, onTimeout: () => undefined });
  }

  private clearRingTimer(): void {
    if (this.ringTimer) clearTimeout(this.ringTimer);
    this.ringTimer = undefined;
  }
}

/** The request again with credentials: a new top Via (branch), the given CSeq number, the Authorization. */
function reissue(req: SipRequest, seq: number, via: string, auth: { name: string; value: string }): SipRequest {
  const h = new Headers();
  let viaDone = false;
  const names = req.headers.names;
  const values = req.headers.values;
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    if (name === 'authorization' || name === 'proxy-authorization') continue;
    if (name === 'via' && !viaDone) {
      viaDone = true;
      h.append('via', via);
    } else if (name === 'cseq') h.append('cseq', `${seq} ${req.method}`);
    else h.append(name, values[i]!);
  }
  h.append(auth.name, auth.value);
  return createRequest(req.method, req.uri, h, req.body);
}

function isStale(res: SipResponse): boolean {
  const name = res.status === 401 ? 'www-authenticate' : 'proxy-authenticate';
  return res.headers.getAll(name).some((v) => /\bstale\s*=\s*"?true"?/i.test(v));
}
