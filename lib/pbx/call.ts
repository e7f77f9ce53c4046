/**
 * One B2BUA call: the caller's dialog (A leg, we are its UAS), the callee's dialog (B leg, we
 * are its UAC, forked to every registered contact), the media session between them, and the
 * release: which side ended the call, with which Q.850 cause, told to the other side in a
 * Reason header (RFC 3326) and to the CDR.
 */
import { createRequest, createResponse, Headers, REASON, type SipRequest, type SipResponse } from '../sip/message.js';
import { Dialog, withoutTag } from '../sip/dialog.js';
import { randomToken } from '../sip/random-id.js';
import { parseUri } from '../sip/uri.js';
import { parseNameAddr } from '../sip/headers/name-addr.js';
import { parseCSeq } from '../sip/headers/cseq.js';
import type { ClientTransaction, ServerTransaction } from '../sip/transaction/layer.js';
import { detach, toTag as toTagOf } from '../sip/transaction/message-keys.js';
import type { Endpoint } from '../sip/transport/types.js';
import { CallTag, causeForFinalResponse, DEFAULT_CAUSE, parseReasonCause } from '../cdr/record.js';
import type { Binding } from './registrar.js';
import { contactTarget } from './contact-target.js';
import { ReliableProvisionals } from './reliable-provisionals.js';
import { SdpUnsupportedError } from '../media/sdp.js';
import {
  bestFinal,
  bracket,
  contactFor,
  fromTagOf,
  hasOptionTag,
  hostPortText,
  isReliable,
  isSdp,
  quoteName,
  reasonValue,
  structuredCancel,
  summariseMedia,
  SDP,
} from './call-messages.js';

export { reasonValue } from './call-messages.js';

export type Side = 'a' | 'b';

/** What the call needs of the media relay (lib/media). */
export interface MediaSession {
  /** SDP that `from` sent; returns the SDP for the other side. Throws on unusable SDP. */
  rewrite(from: Side, sdp: string, advertise: string, signalIp?: string): string;
  onInactive: (() => void) | null;
  stats(): Array<{ media: string; aToB: number; bToA: number }>;
  close(): void;
}

/** What a call needs from the server around it. */
export interface CallEnv {
  sendRequest(req: SipRequest, dest: Endpoint, user: {
    onResponse(res: SipResponse): void;
    onTimeout(): void;
  }): ClientTransaction | null;
  /** Sends outside any transaction (ACK to a 2xx, 2xx retransmissions). */
  sendRaw(msg: SipRequest | SipResponse, dest: Endpoint): void;
  /** Our address as `peer` sees it (hint: the host it addressed us with). */
  localHost(peer: string, hint?: string): string;
  mediaHost(peer: string, hint?: string): string;
  /** Our SIP port for Via and Contact (known once the transports are open). */
  sipPort(): number;
  /** Whether our Via asks for rport (not when the SIP port is shared by several processes). */
  viaRport: boolean;
  /** A fresh unguessable dialog tag (naming this process when several share the SIP port). */
  dialogTag(): string;
  t1: number;
  t2: number;
  noAnswerMs: number;
  maxDurationMs: number;
  /** The server's Allow value, sent in our INVITEs and 2xx. */
  allow: string;
  userAgent: string;
  /** Files the dialog so that in-dialog requests find this call; `undefined` call unfiles. */
  fileDialog(callId: string, localTag: string, call: Call | undefined, side: Side): void;
  ended(call: Call, outcome: CallOutcome): void;
  log(level: 'debug' | 'info' | 'warn', event: string, fields: Record<string, unknown>): void;
  /** Whether `level` is written: fields of a disabled event are not even built. */
  logs(level: 'debug' | 'info' | 'warn'): boolean;
}

export interface CallOutcome {
  tag: CallTag;
  cause: number;
  /** Final status of the INVITE towards the caller. */
  status: number;
}

type State = 'ringing' | 'answering' | 'confirmed' | 'ended';

/** One branch of the B leg: the INVITE to one registered contact. */
interface Fork {
  binding: Binding;
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
}

/** An in-dialog request relayed from one leg to the other, waiting for its answer. */
interface PendingRelay {
  from: Side;
  method: string;
  serverTx: ServerTransaction;
  request: SipRequest;
  /** The relayed request carried SDP (an offer): the ACK towards the answerer goes at once. */
  offerSent: boolean;
}

/** What an ended call keeps in place of the caller's INVITE (see Call.forget). */
const FORGOTTEN_INVITE = createRequest('INVITE', 'sip:invalid', new Headers());
/**
 * What an ended call keeps of the INVITE it sent on a fork: enough to ACK and end a dialog that a
 * late 2xx creates (forkDialog reads From, To and CSeq), without the body and the other headers.
 */
function slimInvite(invite: SipRequest): SipRequest {
  const h = new Headers();
  for (const name of ['from', 'to', 'cseq']) {
    const v = invite.headers.get(name);
    if (v !== undefined) h.append(name, v);
  }
  return createRequest('INVITE', invite.uri, h);
}

/** Headers of the caller's INVITE that go on to the callee (others are hop-by-hop or ours). */
const PASSED_INVITE_HEADERS = ['alert-info', 'call-info', 'priority', 'subject', 'organization', 'accept-language'];

export class Call {
  state: State = 'ringing';
  readonly startMs = Date.now();
  answerMs: number | undefined;
  endMs: number | undefined;

  readonly a: Dialog;
  b: Dialog | null = null;
  readonly bCallId: string;
  readonly bTag: string;
  private readonly forks: Fork[] = [];
  private winner: Fork | null = null;
  private noAnswerTimer: NodeJS.Timeout | undefined;
  private durationTimer: NodeJS.Timeout | undefined;
  /** Retransmits our 2xx to A until its ACK (RFC 3261 section 13.3.1.4). */
  private okRetransmit: { timer: NodeJS.Timeout | undefined; response: SipResponse; interval: number; sentAt: number; cseq: number; onAck?: (ack: SipRequest) => void } | null = null;
  /** The ACK we sent for the B leg's 2xx (sent again when the 2xx is retransmitted). */
  private bAck: { cseq: number; request: SipRequest } | null = null;
  /** B's 2xx to our INVITE waiting for A's ACK (late offer: the ACK carries the answer). */
  private bAckWaitsForA = false;
  private pending: PendingRelay | null = null;
  private lastProvisionalStatus = 0;
  answerSdp: string | undefined;
  outcome: CallOutcome | undefined;

  constructor(
    private readonly env: CallEnv,
    public invite: SipRequest,
    readonly inviteTx: ServerTransaction,
    readonly source: Endpoint,
    readonly caller: { number: string; displayName: string },
    readonly callee: { number: string; displayName: string },
    readonly dialled: string,
    private media: MediaSession | null,
  ) {
    const h = invite.headers;
    this.aHint = parseUri(invite.uri)?.host;
    const aHost = env.localHost(source.address, this.aHint);
    const contactUri = parseNameAddr(h.get('contact') ?? '')?.uri ?? '';
    this.a = new Dialog({
      callId: h.get('call-id') ?? '',
      localTag: env.dialogTag(),
      remoteTag: fromTagOf(invite),
      localUri: withoutTag(h.get('to') ?? ''),
      remoteUri: withoutTag(h.get('from') ?? ''),
      localSeq: 0,
      remoteSeq: parseCSeq(h.get('cseq') ?? '')?.seq ?? 0,
      remoteTarget: contactUri || invite.uri,
      // Section 12.1.1: the UAS's route set is the Record-Route list, in order.
      routeSet: h.list('record-route'),
      destination: source,
      contact: contactFor(aHost, env.sipPort(), source.transport),
      sentBy: hostPortText(aHost, env.sipPort()),
      rport: env.viaRport,
    });
    this.aRequires100rel = hasOptionTag(h.list('require'), '100rel');
    this.aReliable = this.aRequires100rel || hasOptionTag(h.list('supported'), '100rel');
    this.reliable = new ReliableProvisionals(inviteTx, env, source.transport === 'tcp', () => this.state === 'ringing');
    this.bCallId = `${randomToken()}@${aHost}`;
    this.bTag = env.dialogTag();
    env.fileDialog(this.a.callId, this.a.localTag, this, 'a');
    if (media) media.onInactive = this.safe(() => this.release('both', CallTag.MediaTimeout));
  }

  /** Where the caller's media offer/answer goes through the relay, or untouched. */
  private rewriteSdp(from: Side, body: Buffer, peer: Endpoint, hint?: string): Buffer {
    if (!this.media || body.length === 0) return body;
    const advertise = this.env.mediaHost(peer.address, hint);
    // Only the sender's own addresses may latch its media: its SDP address, or where its SIP comes from.
    const signalIp = from === 'a' ? this.source.address : this.bSignalIp;
    return Buffer.from(this.media.rewrite(from, body.toString('utf8'), advertise, signalIp), 'utf8');
  }

  /** The host the caller addressed us with (its Request-URI): our address as it sees it. */
  private readonly aHint: string | undefined;

  /** Where the callee's SIP comes from (the phone that answered, or rang last). */
  private bSignalIp = '';

  /**
   * `fn` for a timer or another callback that no request handler surrounds: a fault in it is
   * logged and ends this call, and never reaches the process (which serves every other call).
   */
  private safe(fn: () => void): () => void {
    return () => {
      try {
        fn();
      } catch (err) {
        this.env.log('warn', 'call.internal_error', { callId: this.a.callId, error: (err as Error).stack ?? String(err) });
        try {
          if (this.state !== 'ended') this.release('both', CallTag.AdminRelease, 41);
        } catch {
          // the call is beyond help; the process is not
        }
      }
    };
  }

  // ---- set-up ---------------------------------------------------------------------------------

  /** Sends the INVITE to every contact of the callee in parallel (first 2xx wins). */
  start(contacts: Binding[]): void {
    const inv = this.invite;
    let offer = inv.body;
    if (inv.body.length > 0) {
      try {
        // One rewrite for all forks: every fork is told the same relay ports.
        offer = this.rewriteSdp('a', inv.body, contactTarget(contacts[0]!), contacts[0]!.localAddress);
      } catch (err) {
        if (err instanceof SdpUnsupportedError) {
          // Valid SDP the relay cannot carry (IPv6 media): this call goes with direct media.
          this.env.log('info', 'call.media_direct', { callId: this.a.callId, reason: err.message });
          this.media?.close();
          this.media = null;
        } else {
          this.env.log('warn', 'call.bad_sdp', { callId: this.a.callId, side: 'a', error: (err as Error).message });
          this.failA(488, CallTag.CalleeRejected, 79, 'Not Acceptable Here (unusable SDP offer)');
          return;
        }
      }
    }
    this.env.fileDialog(this.bCallId, this.bTag, this, 'b');
    for (const binding of contacts) this.startFork(binding, offer);
    if (this.state !== 'ringing') return;
    this.noAnswerTimer = setTimeout(this.safe(() => this.noAnswer()), this.env.noAnswerMs);
    this.noAnswerTimer.unref();
  }

  private startFork(binding: Binding, offer: Buffer): void {
    const dest = contactTarget(binding);
    const host = this.env.localHost(dest.address, binding.localAddress);
    const inv = this.invite.headers;
    const callerName = this.caller.displayName;
    const dialog = new Dialog({
      callId: this.bCallId,
      localTag: this.bTag,
      remoteTag: '',
      localUri: `${callerName ? `${quoteName(callerName)} ` : ''}<sip:${this.caller.number}@${bracket(host)}>`,
      remoteUri: `<sip:${this.callee.number}@${bracket(host)}>`,
      localSeq: 0,
      remoteSeq: -1,
      remoteTarget: binding.contact,
      routeSet: [],
      destination: dest,
      contact: contactFor(host, this.env.sipPort(), dest.transport, this.caller.number),
      sentBy: hostPortText(host, this.env.sipPort()),
      rport: this.env.viaRport,
    });
    const extra: Array<[string, string]> = [['allow', this.env.allow], ['user-agent', this.env.userAgent]];
    if (this.aReliable) extra.push(['supported', '100rel']);
    const maxForwards = Number(inv.get('max-forwards') ?? '70');
    for (const name of PASSED_INVITE_HEADERS) for (const v of inv.getAll(name)) extra.push([name, v]);
    const req = dialog.request('INVITE', { body: offer, contentType: offer.length > 0 ? (inv.get('content-type') ?? SDP) : undefined, extra });
    // Section 16.6 step 3 spirit: a B2BUA also decrements Max-Forwards, so loops through trunks end.
    req.headers.set('max-forwards', String(Number.isFinite(maxForwards) && maxForwards > 0 ? Math.min(maxForwards - 1, 70) : 69));
    const fork: Fork = { binding, tx: null, invite: req, state: 'calling', cancelWhenProceeding: false, lastRSeq: -1 };
    this.forks.push(fork);
    fork.tx = this.env.sendRequest(req, dest, {
      onResponse: (res) => this.onForkResponse(fork, res),
      onTimeout: () => this.onForkFinal(fork, null),
    });
    if (!fork.tx) this.onForkFinal(fork, null);
  }

  private onForkResponse(fork: Fork, res: SipResponse): void {
    const status = res.status;
    if (status > 100 && (this.winner === null || this.winner === fork)) this.bSignalIp = fork.binding.sourceAddress;
    if (status < 200) {
      if (fork.state === 'calling') fork.state = 'proceeding';
      if (fork.cancelWhenProceeding) {
        fork.cancelWhenProceeding = false;
        this.cancelFork(fork);
        return;
      }
      if (status === 100) return;
      if (isReliable(res) && !this.prackFork(fork, res)) return;
      if (this.state === 'ringing') this.relayProvisional(res);
      return;
    }
    if (status < 300) {
      this.onFork2xx(fork, res);
      return;
    }
    this.onForkFinal(fork, res);
  }

  private relayProvisional(res: SipResponse): void {
    const out = createResponse(this.invite, res.status, res.reason, this.a.localTag);
    this.addUasHeaders(out);
    let body = res.body;
    if (body.length > 0 && isSdp(res)) {
      try {
        body = this.rewriteSdp('b', body, this.source, this.aHint);
        out.headers.append('content-type', SDP);
        out.body = body;
        this.answerSdp = body.toString('utf8');
      } catch (err) {
        this.env.log('warn', 'call.bad_sdp', { callId: this.a.callId, side: 'b', error: (err as Error).message });
      }
    }
    // Several forks ringing: the caller hears one 180, not one per phone.
    if (out.body.length === 0 && res.status === this.lastProvisionalStatus) return;
    this.lastProvisionalStatus = res.status;
    if (this.aReliable && (isReliable(res) || this.aRequires100rel)) this.reliable.send(out);
    else this.inviteTx.respond(out);
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

  private readonly aReliable: boolean;
  private readonly aRequires100rel: boolean;
  /** Our reliable provisional responses to the caller (RFC 3262), when it supports them. */
  private readonly reliable: ReliableProvisionals;

  /** Contact, Record-Route copy (section 12.1.1) and Allow on a dialog-creating response to A. */
  private addUasHeaders(res: SipResponse): void {
    for (const rr of this.invite.headers.getAll('record-route')) res.headers.append('record-route', rr);
    res.headers.append('contact', this.a.contact);
  }

  private onFork2xx(fork: Fork, res: SipResponse): void {
    const cseq = parseCSeq(res.headers.get('cseq') ?? '')?.seq ?? 1;
    if (this.winner !== null) {
      if (this.winner === fork && this.bAck !== null && this.bAck.cseq === cseq) {
        // Our ACK was lost: the 2xx came again (section 13.2.2.4).
        this.env.sendRaw(this.bAck.request, this.b!.destination);
      } else if (this.winner !== fork) {
        // A second phone answered too: confirm and end its dialog at once (section 13.2.2.4).
        const d = this.forkDialog(fork, res);
        this.env.sendRaw(d.request('ACK', { cseq }), d.destination);
        this.sendBye(d, 200, 'Call completed elsewhere', 'SIP');
      }
      return;
    }
    if (this.state !== 'ringing') {
      // Answered after the caller cancelled or the timer fired: ACK and hang up.
      const d = this.forkDialog(fork, res);
      this.env.sendRaw(d.request('ACK', { cseq }), d.destination);
      this.sendBye(d, this.outcome?.cause ?? 16);
      return;
    }
    this.winner = fork;
    fork.state = 'done';
    this.b = this.forkDialog(fork, res);
    this.clearNoAnswer();
    for (const other of this.forks) if (other !== fork) this.cancelOrDrop(other, 'SIP;cause=200;text="Call completed elsewhere"');

    const out = createResponse(this.invite, 200, res.reason || 'OK', this.a.localTag);
    this.addUasHeaders(out);
    out.headers.append('allow', this.env.allow);
    let answer = res.body;
    if (answer.length > 0 && isSdp(res)) {
      try {
        answer = this.rewriteSdp('b', answer, this.source, this.aHint);
      } catch (err) {
        this.env.log('warn', 'call.bad_sdp', { callId: this.a.callId, side: 'b', error: (err as Error).message });
        this.env.sendRaw(this.b.request('ACK', { cseq }), this.b.destination);
        this.answerMs = Date.now();
        this.release('both', CallTag.CalleeRejected, 79, 488);
        return;
      }
      out.headers.append('content-type', SDP);
      out.body = answer;
      this.answerSdp = answer.toString('utf8');
    }
    this.bAckWaitsForA = this.invite.body.length === 0;
    if (!this.bAckWaitsForA) this.ackB(cseq, Buffer.alloc(0));
    this.bAckCseq = cseq;
    this.state = 'answering';
    this.answerMs = Date.now();
    const send2xx = (): void => {
      if (this.state !== 'answering') return;
      this.inviteTx.respond(out);
      this.retransmit2xx(out, this.a.remoteSeq, (ack) => this.onInitialAck(ack));
    };
    this.reliable.sendFinal(send2xx);
    if (this.env.maxDurationMs > 0) {
      this.durationTimer = setTimeout(this.safe(() => this.release('both', CallTag.DurationLimit)), this.env.maxDurationMs);
      this.durationTimer.unref();
    }
    if (this.env.logs('info')) this.env.log('info', 'call.answered', { callId: this.a.callId, caller: this.caller.number, callee: this.callee.number, contact: fork.binding.contact });
  }

  private bAckCseq = 1;

  private ackB(cseq: number, body: Buffer): void {
    const b = this.b!;
    const ack = b.request('ACK', { cseq, body, contentType: body.length > 0 ? SDP : undefined });
    this.bAck = { cseq, request: ack };
    this.env.sendRaw(ack, b.destination);
  }

  private onInitialAck(ack: SipRequest): void {
    if (this.state === 'answering') this.state = 'confirmed';
    if (this.bAckWaitsForA) {
      this.bAckWaitsForA = false;
      let body = ack.body;
      if (body.length > 0) {
        try {
          body = this.rewriteSdp('a', body, this.b!.destination);
        } catch (err) {
          this.env.log('warn', 'call.bad_sdp', { callId: this.a.callId, side: 'a', error: (err as Error).message });
          this.ackB(this.bAckCseq, Buffer.alloc(0));
          this.release('both', CallTag.CallerBye, 79);
          return;
        }
      }
      this.ackB(this.bAckCseq, body);
    }
  }

  /** The B-leg dialog a fork's response creates (section 12.1.2). */
  private forkDialog(fork: Fork, res: SipResponse): Dialog {
    const contact = parseNameAddr(res.headers.get('contact') ?? '')?.uri;
    const dest = contactTarget(fork.binding);
    const host = this.env.localHost(dest.address, fork.binding.localAddress);
    return new Dialog({
      callId: this.bCallId,
      localTag: this.bTag,
      remoteTag: toTagOf(res) ?? '',
      localUri: withoutTag(fork.invite.headers.get('from') ?? ''),
      remoteUri: withoutTag(fork.invite.headers.get('to') ?? ''),
      localSeq: parseCSeq(fork.invite.headers.get('cseq') ?? '')?.seq ?? 1,
      remoteSeq: -1,
      remoteTarget: contact ?? fork.binding.contact,
      // Section 12.1.2: the UAC's route set is the Record-Route list of the response, reversed.
      routeSet: res.headers.list('record-route').reverse(),
      destination: dest,
      contact: contactFor(host, this.env.sipPort(), dest.transport, this.caller.number),
      sentBy: hostPortText(host, this.env.sipPort()),
      rport: this.env.viaRport,
    });
  }

  private onForkFinal(fork: Fork, res: SipResponse | null): void {
    if (fork.state === 'done') return;
    fork.state = 'done';
    fork.final = res ?? undefined;
    if (this.state !== 'ringing') return;
    if (this.forks.some((f) => f.state !== 'done')) {
      // RFC 3261 section 16.7 step 5: a 6xx ends the search at once.
      if (!res || res.status < 600) return;
      for (const other of this.forks) this.cancelOrDrop(other);
    }
    this.clearNoAnswer();
    const best = bestFinal(this.forks.map((f) => f.final ?? null));
    if (best === null) {
      this.failA(408, CallTag.NoResponse, DEFAULT_CAUSE[CallTag.NoResponse], 'Request Timeout (no answer from the phone)');
      return;
    }
    const status = best.status === 401 || best.status === 407 ? 403 : best.status;
    const tag = best.status === 486 || best.status === 600 ? CallTag.Busy : CallTag.CalleeRejected;
    const cause = causeForFinalResponse(best.status, best.headers.getAll('reason').join(', '));
    this.failA(status, tag, cause, status === best.status ? best.reason : undefined, best);
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
    else if (this.outcome) cancel.headers.append('reason', reasonValue(this.outcome.cause));
    this.env.sendRequest(cancel, fork.tx.destination, { onResponse: () => undefined, onTimeout: () => undefined });
  }

  private noAnswer(): void {
    this.noAnswerTimer = undefined;
    if (this.state !== 'ringing') return;
    this.failA(480, CallTag.NoAnswer, DEFAULT_CAUSE[CallTag.NoAnswer], 'Temporarily Unavailable (no answer)');
  }

  private clearNoAnswer(): void {
    if (this.noAnswerTimer) clearTimeout(this.noAnswerTimer);
    this.noAnswerTimer = undefined;
  }

  /** Ends an unanswered call: final response to A, CANCEL to ringing forks, the record. */
  failA(status: number, tag: CallTag, cause: number, reason?: string, from?: SipResponse): void {
    if (this.state !== 'ringing') return;
    this.outcome = { tag, cause, status };
    // The record first: once the caller hears the answer, the attempt is on disk.
    this.finish();
    for (const fork of this.forks) this.cancelOrDrop(fork);
    const res = createResponse(this.invite, status, reason ?? REASON[status], this.a.localTag);
    res.headers.append('reason', reasonValue(cause));
    if (from) {
      for (const name of ['retry-after', 'warning']) for (const v of from.headers.getAll(name)) res.headers.append(name, v);
    }
    this.inviteTx.respond(res);
    this.forget();
  }

  /**
   * After the record is written and the last messages are out: let go of what only the live
   * call needed. The transactions keep this object reachable for another 64*T1 (a late 2xx must
   * still be ACKed and ended), which at a thousand calls a second is a lot of memory to scan.
   */
  private forget(): void {
    this.invite = FORGOTTEN_INVITE;
    this.answerSdp = undefined;
    this.media = null;
    this.pending = null;
    this.pendingBAck = null;
    for (const f of this.forks) {
      f.final = undefined;
      f.early = undefined;
      f.invite = slimInvite(f.invite);
    }
  }

  /** CANCEL from the caller (the layer has answered it 200): 487 to the INVITE. */
  cancelledByCaller(cancel: SipRequest): void {
    if (this.state !== 'ringing') return;
    const cause = parseReasonCause(cancel.headers.getAll('reason').join(', ')) ?? DEFAULT_CAUSE[CallTag.CallerCancel];
    this.failA(487, CallTag.CallerCancel, cause);
  }

  // ---- in-dialog requests -------------------------------------------------------------------

  /** A request inside one of the call's dialogs (`tx` null for an ACK). */
  onRequest(side: Side, req: SipRequest, tx: ServerTransaction | null): void {
    const dialog = side === 'a' ? this.a : this.b;
    if (req.method === 'ACK') {
      this.onAck(side, req);
      return;
    }
    if (!tx) return;
    if (dialog === null || this.state === 'ended') {
      tx.respond(createResponse(req, 481, undefined));
      return;
    }
    const cseq = parseCSeq(req.headers.get('cseq') ?? '');
    if (!cseq || !dialog.acceptRemoteSeq(cseq.seq)) {
      tx.respond(createResponse(req, 500, 'Server Internal Error (CSeq out of order)'));
      return;
    }
    switch (req.method) {
      case 'BYE':
        // The record is written before anybody hears that the call ended (kill -9 safe).
        if (this.state === 'ringing') {
          // Section 15: a caller may end an early dialog with BYE: like CANCEL.
          this.failA(487, CallTag.CallerCancel, DEFAULT_CAUSE[CallTag.CallerCancel]);
        } else {
          this.release(side === 'a' ? 'b' : 'a', side === 'a' ? CallTag.CallerBye : CallTag.CalleeBye, parseReasonCause(req.headers.getAll('reason').join(', ')) ?? 16);
        }
        tx.respond(createResponse(req, 200));
        return;
      case 'OPTIONS': {
        const res = createResponse(req, 200);
        res.headers.append('allow', this.env.allow);
        tx.respond(res);
        return;
      }
      case 'INVITE':
      case 'UPDATE':
      case 'INFO':
      case 'MESSAGE':
        this.relay(side, req, tx);
        return;
      case 'PRACK':
        if (side === 'a') this.reliable.onPrack(req, tx);
        else tx.respond(createResponse(req, 481, undefined));
        return;
      default: {
        const res = createResponse(req, 405);
        res.headers.append('allow', this.env.allow);
        tx.respond(res);
      }
    }
  }

  private onAck(side: Side, ack: SipRequest): void {
    if (side === 'b') {
      this.onBAck(ack);
      return;
    }
    const pending = this.okRetransmit;
    const cseq = parseCSeq(ack.headers.get('cseq') ?? '')?.seq;
    if (pending === null || cseq !== pending.cseq) return;
    if (pending.timer) clearTimeout(pending.timer);
    this.okRetransmit = null;
    pending.onAck?.(ack);
  }

  /**
   * Section 13.3.1.4: the UAS core retransmits a 2xx to INVITE, T1 doubling up to T2, until the
   * ACK comes; without an ACK after 64*T1 the dialog is ended with BYE.
   */
  private retransmit2xx(res: SipResponse, cseq: number, onAck?: (ack: SipRequest) => void): void {
    const reliable = this.a.destination.transport === 'tcp';
    const state = { timer: undefined as NodeJS.Timeout | undefined, response: res, interval: this.env.t1, sentAt: Date.now(), cseq, onAck };
    this.okRetransmit = state;
    const tick = (): void => {
      if (this.okRetransmit !== state || this.state === 'ended') return;
      if (Date.now() - state.sentAt >= 64 * this.env.t1) {
        this.okRetransmit = null;
        this.env.log('warn', 'call.no_ack', { callId: this.a.callId });
        state.onAck = undefined;
        if (this.bAckWaitsForA) this.ackB(this.bAckCseq, Buffer.alloc(0));
        this.release('both', CallTag.NoResponse, 102);
        return;
      }
      if (!reliable) this.inviteTx.respond(res);
      state.interval = reliable ? 64 * this.env.t1 : Math.min(state.interval * 2, this.env.t2);
      state.timer = setTimeout(safeTick, state.interval);
      state.timer.unref();
    };
    const safeTick = this.safe(tick);
    state.timer = setTimeout(safeTick, reliable ? 64 * this.env.t1 : state.interval);
    state.timer.unref();
  }

  /**
   * re-INVITE, UPDATE, INFO, MESSAGE: sent on as a new request in the other leg's dialog, and
   * its answer brought back. One offer/answer exchange at a time (RFC 3261 section 14.2: 491
   * for a crossing re-INVITE, 500 for an overlapping one from the same side).
   */
  private relay(from: Side, req: SipRequest, tx: ServerTransaction): void {
    const isOffer = req.method === 'INVITE' || req.method === 'UPDATE';
    if (isOffer && (this.pending !== null || this.okRetransmit !== null || this.state !== 'confirmed')) {
      const sameSide = this.pending !== null && this.pending.from === from;
      const res = createResponse(req, sameSide ? 500 : 491);
      if (sameSide) res.headers.append('retry-after', '1');
      tx.respond(res);
      return;
    }
    const to = from === 'a' ? this.b! : this.a;
    let body = req.body;
    if (body.length > 0 && isSdp(req)) {
      try {
        body = this.rewriteSdp(from, body, to.destination);
      } catch (err) {
        this.env.log('warn', 'call.bad_sdp', { callId: this.a.callId, side: from, error: (err as Error).message });
        tx.respond(createResponse(req, 488, 'Not Acceptable Here (unusable SDP)'));
        return;
      }
    }
    const extra: Array<[string, string]> = [];
    for (const name of ['info-package', 'recv-info', 'event', 'subject']) for (const v of req.headers.getAll(name)) extra.push([name, v]);
    if (req.method === 'INVITE') extra.push(['allow', this.env.allow]);
    const out = to.request(req.method, { body, contentType: body.length > 0 ? (req.headers.get('content-type') ?? SDP) : undefined, extra });
    const pending: PendingRelay | null = isOffer ? { from, method: req.method, serverTx: tx, request: req, offerSent: body.length > 0 } : null;
    if (pending) this.pending = pending;
    const sent = this.env.sendRequest(out, to.destination, {
      onResponse: (res) => this.onRelayedResponse(from, req, tx, out, res, pending),
      onTimeout: () => {
        if (pending && this.pending === pending) this.pending = null;
        tx.respond(createResponse(req, 408));
        // Section 12.2.1.2: a timeout on an in-dialog request ends the dialog.
        if (req.method === 'INVITE' || req.method === 'UPDATE') this.release('both', CallTag.NoResponse, 102);
      },
    });
    if (!sent) {
      if (pending) this.pending = null;
      tx.respond(createResponse(req, 503));
    }
  }

  private onRelayedResponse(from: Side, req: SipRequest, tx: ServerTransaction, out: SipRequest, res: SipResponse, pending: PendingRelay | null): void {
    if (res.status < 101 || this.state === 'ended') return;
    const fromDialog = from === 'a' ? this.a : this.b!;
    const toDialog = from === 'a' ? this.b! : this.a;
    const back = createResponse(req, res.status, res.reason, fromDialog.localTag);
    let body = res.body;
    if (body.length > 0 && isSdp(res)) {
      try {
        body = this.rewriteSdp(from === 'a' ? 'b' : 'a', body, fromDialog.destination);
      } catch (err) {
        this.env.log('warn', 'call.bad_sdp', { callId: this.a.callId, error: (err as Error).message });
        body = Buffer.alloc(0);
      }
      if (body.length > 0) {
        back.headers.append('content-type', SDP);
        back.body = body;
      }
    }
    if (res.status >= 200 && res.status < 300 && (req.method === 'INVITE' || req.method === 'UPDATE')) {
      back.headers.append('contact', fromDialog.contact);
      // A target refresh (section 12.2.1.2 / RFC 3311): the peer's new Contact is its target.
      const contact = parseNameAddr(res.headers.get('contact') ?? '')?.uri;
      if (contact) toDialog.remoteTarget = detach(contact);
      const reqContact = parseNameAddr(req.headers.get('contact') ?? '')?.uri;
      if (reqContact) fromDialog.remoteTarget = detach(reqContact);
    }
    if (res.status >= 200 && pending && this.pending === pending) this.pending = null;
    tx.respond(back);
    if (req.method !== 'INVITE' || res.status < 200 || res.status >= 300) return;
    const cseq = parseCSeq(out.headers.get('cseq') ?? '')?.seq ?? 0;
    const remoteSeq = parseCSeq(req.headers.get('cseq') ?? '')?.seq ?? 0;
    const sendAck = (body: Buffer): void => {
      const ack = toDialog.request('ACK', { cseq, body, contentType: body.length > 0 ? SDP : undefined });
      if (toDialog === this.b) this.bAck = { cseq, request: ack };
      this.env.sendRaw(ack, toDialog.destination);
    };
    const offerWasSent = pending?.offerSent ?? true;
    if (offerWasSent) sendAck(Buffer.alloc(0));
    if (from === 'a') {
      this.retransmit2xx(back, remoteSeq, (ack) => {
        if (!offerWasSent) sendAck(this.safeRewrite('a', ack.body, toDialog.destination));
      });
    } else {
      // B re-INVITEd: we answer B as its UAS, and B's ACK matches nothing we retransmit (B leg
      // 2xx retransmission is skipped: B is a registered phone reached over its own flow).
      if (!offerWasSent) this.pendingBAck = (ack) => sendAck(this.safeRewrite('b', ack.body, toDialog.destination));
    }
  }

  private pendingBAck: ((ack: SipRequest) => void) | null = null;

  private safeRewrite(from: Side, body: Buffer, peer: Endpoint): Buffer {
    if (body.length === 0) return body;
    try {
      return this.rewriteSdp(from, body, peer);
    } catch {
      return Buffer.alloc(0);
    }
  }

  /** ACK from B for a 2xx we sent to B's re-INVITE. */
  onBAck(ack: SipRequest): void {
    const f = this.pendingBAck;
    this.pendingBAck = null;
    f?.(ack);
  }

  // ---- release ------------------------------------------------------------------------------

  /**
   * Ends an answered call: BYE with a Reason to `towards` ('both' when the server itself ends
   * it), media closed, the record written.
   */
  release(towards: Side | 'both', tag: CallTag, cause: number = DEFAULT_CAUSE[tag], status = 200): void {
    if (this.state === 'ended') return;
    if (this.state === 'ringing') {
      this.failA(tag === CallTag.ServerShutdown ? 503 : 480, tag, cause);
      return;
    }
    this.outcome = { tag, cause, status };
    if (this.bAckWaitsForA) {
      this.bAckWaitsForA = false;
      this.ackB(this.bAckCseq, Buffer.alloc(0));
    }
    // The record first (kill -9 safe), then the BYEs. Also before A's ACK: section 15 lets
    // the callee's side send BYE once the 2xx is sent.
    this.finish();
    if (towards === 'a' || towards === 'both') this.sendBye(this.a, cause);
    if ((towards === 'b' || towards === 'both') && this.b) this.sendBye(this.b, cause);
    this.forget();
  }

  private sendBye(d: Dialog, cause: number, text?: string, protocol = 'Q.850'): void {
    const bye = d.request('BYE', { extra: [['reason', protocol === 'Q.850' ? reasonValue(cause) : `SIP;cause=${cause};text="${text ?? ''}"`]] });
    this.env.sendRequest(bye, d.destination, { onResponse: () => undefined, onTimeout: () => undefined });
  }

  private finish(): void {
    if (this.state === 'ended') return;
    this.state = 'ended';
    this.endMs = Date.now();
    this.clearNoAnswer();
    if (this.durationTimer) clearTimeout(this.durationTimer);
    if (this.okRetransmit?.timer) clearTimeout(this.okRetransmit.timer);
    this.reliable.stop();
    this.okRetransmit = null;
    this.mediaSummary = this.media ? summariseMedia(this.media) : undefined;
    this.media?.close();
    this.env.fileDialog(this.a.callId, this.a.localTag, undefined, 'a');
    this.env.fileDialog(this.bCallId, this.bTag, undefined, 'b');
    this.env.ended(this, this.outcome ?? { tag: CallTag.AdminRelease, cause: 16, status: 200 });
  }

  mediaSummary: string | undefined;

  /** Where the B leg went (for the record). */
  get calleeAddress(): string {
    const f = this.winner ?? this.forks[0];
    if (!f) return '';
    const e = contactTarget(f.binding);
    return hostPortText(e.address, e.port);
  }
}
