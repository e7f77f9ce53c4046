/**
 * Joins two answered legs (side a and side b): requests inside one dialog (re-INVITE, UPDATE,
 * INFO, MESSAGE) go on as new requests in the other, offers and answers through the media relay,
 * and the release: one cause, told to the other side (or both) in a Reason header (RFC 3326) and
 * to the record, which is written before any BYE leaves (kill -9 safe).
 */
import { createResponse, type SipRequest, type SipResponse } from '../sip/message.js';
import { parseNameAddr } from '../sip/headers/name-addr.js';
import { parseCSeq } from '../sip/headers/cseq.js';
import type { ServerTransaction } from '../sip/transaction/layer.js';
import type { Endpoint } from '../sip/transport/types.js';
import { detach } from '../sip/transaction/message-keys.js';
import { CallTag, DEFAULT_CAUSE, parseReasonCause } from '../cdr/record.js';
import { hasSdesKeys, isSdp, isTlsTransport, SDP, srtpStreams } from './call-messages.js';
import type { MediaPath, Side } from './media-path.js';
import type { BridgedLeg } from './legs/leg.js';
import type { IncomingLegOwner } from './legs/incoming-leg.js';
import type { OutgoingLegOwner } from './legs/outgoing-leg.js';

export interface CallOutcome {
  tag: CallTag;
  cause: number;
  /** Final status of the INVITE towards the caller. */
  status: number;
}

export interface BridgeEnv {
  allow: string;
  maxDurationMs: number;
  /** `fromPeer`: caused by what a peer sent (a missing ACK, bad SDP...): within the log's budget of such lines a second. */
  log(level: 'debug' | 'info' | 'warn', event: string, fields: Record<string, unknown>, fromPeer?: boolean): void;
  /** media.requireSrtpOverTls: a re-offer with SDES keys is refused (488) unless both legs are on TLS. */
  requireSrtpOverTls?: boolean;
}

export interface BridgeHooks {
  /** Just before the release: what the owner still owes a leg (a late-offer ACK). */
  beforeRelease?(): void;
  /** The call is over: write the record. Called once, before any BYE is sent. */
  released(outcome: CallOutcome, mediaSummary: string | undefined): void;
}

/** An in-dialog request relayed from one leg to the other, waiting for its answer. */
interface PendingRelay {
  from: Side;
  /** The relayed request carried SDP (an offer): the ACK towards the answerer goes at once. */
  offerSent: boolean;
}

type LegEvents = IncomingLegOwner & OutgoingLegOwner;

export class Bridge {
  private ended = false;
  private durationTimer: NodeJS.Timeout | undefined;
  private pending: PendingRelay | null = null;
  outcome: CallOutcome | undefined;

  constructor(
    private readonly env: BridgeEnv,
    readonly a: BridgedLeg,
    readonly b: BridgedLeg,
    private readonly media: MediaPath,
    private readonly hooks: BridgeHooks,
  ) {
    a.owner = this.eventsOf('a');
    b.owner = this.eventsOf('b');
    media.onInactive = this.guard(() => this.release('both', CallTag.MediaTimeout));
    if (env.maxDurationMs > 0) {
      this.durationTimer = setTimeout(this.guard(() => this.release('both', CallTag.DurationLimit)), env.maxDurationMs);
      this.durationTimer.unref();
    }
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** The SDP `from` sent, for the other leg (through the relay when the call has a session). */
  rewrite(from: Side, body: Buffer, peer: Endpoint): Buffer {
    const leg = from === 'a' ? this.a : this.b;
    return this.media.rewrite(from, body, peer, leg.signalIp);
  }

  /**
   * Ends the call: BYE with a Reason to `towards` ('both' when the server itself ends it), media
   * closed, the record written first.
   */
  release(towards: Side | 'both', tag: CallTag, cause: number = DEFAULT_CAUSE[tag], status = 200): void {
    if (this.ended) return;
    this.ended = true;
    this.outcome = { tag, cause, status };
    this.hooks.beforeRelease?.();
    if (this.durationTimer) clearTimeout(this.durationTimer);
    this.a.end();
    this.b.end();
    this.hooks.released(this.outcome, this.media.close());
    if (towards === 'a' || towards === 'both') this.a.bye(cause);
    if (towards === 'b' || towards === 'both') this.b.bye(cause);
    this.a.forget();
    this.b.forget();
    this.pending = null;
  }

  private eventsOf(side: Side): LegEvents {
    return new BridgeSide(this, side);
  }

  /** BYE from `side`: the other side is told, with the cause the BYE carried. */
  onBye(side: Side, req: SipRequest): void {
    this.release(side === 'a' ? 'b' : 'a', side === 'a' ? CallTag.CallerBye : CallTag.CalleeBye, parseReasonCause(req.headers.getAll('reason').join(', ')) ?? 16);
  }

  onDialogRequest(side: Side, req: SipRequest, tx: ServerTransaction): void {
    this.relay(side, req, tx);
  }

  /**
   * `fn` for a timer or another callback that no request handler surrounds: a fault in it is
   * logged and ends this call, and never reaches the process (which serves every other call).
   */
  private guard(fn: () => void): () => void {
    return () => {
      try {
        fn();
      } catch (err) {
        this.internalError(err);
      }
    };
  }

  internalError(err: unknown): void {
    this.env.log('warn', 'call.internal_error', { callId: this.a.dialog.callId, error: (err as Error).stack ?? String(err) });
    try {
      this.release('both', CallTag.AdminRelease, 41);
    } catch {
      // the call is beyond help; the process is not
    }
  }

  /**
   * re-INVITE, UPDATE, INFO, MESSAGE: sent on as a new request in the other leg's dialog, and
   * its answer brought back. One offer/answer exchange at a time (RFC 3261 section 14.2: 491
   * for a crossing re-INVITE, 500 for an overlapping one from the same side).
   */
  private relay(from: Side, req: SipRequest, tx: ServerTransaction): void {
    const isOffer = req.method === 'INVITE' || req.method === 'UPDATE';
    if (isOffer && (this.pending !== null || this.a.awaitingAck || this.b.awaitingAck)) {
      const sameSide = this.pending !== null && this.pending.from === from;
      const res = createResponse(req, sameSide ? 500 : 491);
      if (sameSide) res.headers.append('retry-after', '1');
      tx.respond(res);
      return;
    }
    const to = from === 'a' ? this.b : this.a;
    let body = req.body;
    if (body.length > 0 && isSdp(req)) {
      // SRTP in a re-offer passes as in the first offer (proto, a=crypto, a=fingerprint kept).
      if (this.env.requireSrtpOverTls && !this.keysMayTravel(from, req)) {
        tx.respond(createResponse(req, 488, 'Not Acceptable Here (SRTP keys (a=crypto) are accepted over TLS only)'));
        return;
      }
      try {
        body = this.rewrite(from, body, to.dialog.destination);
      } catch (err) {
        this.env.log('warn', 'call.bad_sdp', { callId: this.a.dialog.callId, side: from, error: (err as Error).message }, true);
        tx.respond(createResponse(req, 488, 'Not Acceptable Here (unusable SDP)'));
        return;
      }
    }
    const extra: Array<[string, string]> = [];
    for (const name of ['info-package', 'recv-info', 'event', 'subject']) for (const v of req.headers.getAll(name)) extra.push([name, v]);
    if (req.method === 'INVITE') extra.push(['allow', this.env.allow]);
    const out = to.dialog.request(req.method, { body, contentType: body.length > 0 ? (req.headers.get('content-type') ?? SDP) : undefined, extra });
    const pending: PendingRelay | null = isOffer ? { from, offerSent: body.length > 0 } : null;
    if (pending) this.pending = pending;
    const sent = to.sendRequest(out, {
      onResponse: this.guardResponse((res) => this.onRelayedResponse(from, req, tx, out, res, pending)),
      onTimeout: this.guard(() => {
        if (pending && this.pending === pending) this.pending = null;
        tx.respond(createResponse(req, 408));
        // Section 12.2.1.2: a timeout on an in-dialog request ends the dialog.
        if (req.method === 'INVITE' || req.method === 'UPDATE') this.release('both', CallTag.NoResponse, 102);
      }),
    });
    if (!sent) {
      if (pending) this.pending = null;
      tx.respond(createResponse(req, 503));
    }
  }

  /** SDES keys in `req` may cross both legs: each is on TLS (media.requireSrtpOverTls), or there are none. */
  private keysMayTravel(from: Side, req: SipRequest): boolean {
    if (!hasSdesKeys(srtpStreams(req))) return true;
    if (isTlsTransport(this.a.dialog.destination.transport) && isTlsTransport(this.b.dialog.destination.transport)) return true;
    this.env.log('info', 'call.srtp_refused', { callId: this.a.dialog.callId, side: from, method: req.method, reason: 'the re-offer carries SDES keys (a=crypto) and a leg is not on TLS (media.requireSrtpOverTls)' });
    return false;
  }

  private guardResponse(fn: (res: SipResponse) => void): (res: SipResponse) => void {
    return (res) => {
      try {
        fn(res);
      } catch (err) {
        this.internalError(err);
      }
    };
  }

  private onRelayedResponse(from: Side, req: SipRequest, tx: ServerTransaction, out: SipRequest, res: SipResponse, pending: PendingRelay | null): void {
    if (res.status < 101 || this.ended) return;
    const fromLeg = from === 'a' ? this.a : this.b;
    const toLeg = from === 'a' ? this.b : this.a;
    const back = createResponse(req, res.status, res.reason, fromLeg.dialog.localTag);
    let body = res.body;
    if (body.length > 0 && isSdp(res)) {
      body = this.safeRewrite(from === 'a' ? 'b' : 'a', body, fromLeg.dialog.destination);
      if (body.length > 0) {
        back.headers.append('content-type', SDP);
        back.body = body;
      }
    }
    if (res.status >= 200 && res.status < 300 && (req.method === 'INVITE' || req.method === 'UPDATE')) {
      back.headers.append('contact', fromLeg.dialog.contact);
      // A target refresh (section 12.2.1.2 / RFC 3311): the peer's new Contact is its target.
      const contact = parseNameAddr(res.headers.get('contact') ?? '')?.uri;
      if (contact) toLeg.dialog.remoteTarget = detach(contact);
      const reqContact = parseNameAddr(req.headers.get('contact') ?? '')?.uri;
      if (reqContact) fromLeg.dialog.remoteTarget = detach(reqContact);
    }
    if (res.status >= 200 && pending && this.pending === pending) this.pending = null;
    tx.respond(back);
    if (req.method !== 'INVITE' || res.status < 200 || res.status >= 300) return;
    const cseq = parseCSeq(out.headers.get('cseq') ?? '')?.seq ?? 0;
    const remoteSeq = parseCSeq(req.headers.get('cseq') ?? '')?.seq ?? 0;
    const offerWasSent = pending?.offerSent ?? true;
    if (offerWasSent) toLeg.sendAck(cseq, Buffer.alloc(0));
    fromLeg.answerReInvite(back, remoteSeq, (ack) => {
      // A re-INVITE without an offer: the answer comes in the ACK.
      if (!offerWasSent) toLeg.sendAck(cseq, this.safeRewrite(from, ack.body, toLeg.dialog.destination));
    });
  }

  private safeRewrite(from: Side, body: Buffer, peer: Endpoint): Buffer {
    if (body.length === 0) return body;
    try {
      return this.rewrite(from, body, peer);
    } catch (err) {
      this.env.log('warn', 'call.bad_sdp', { callId: this.a.dialog.callId, side: from, error: (err as Error).message }, true);
      return Buffer.alloc(0);
    }
  }
}

/** One side of a bridge as its leg's owner (one small object a leg, methods on the prototype). */
class BridgeSide implements LegEvents {
  constructor(private readonly bridge: Bridge, private readonly side: Side) {}
  onBye(req: SipRequest): void {
    this.bridge.onBye(this.side, req);
  }
  onDialogRequest(req: SipRequest, tx: ServerTransaction): void {
    this.bridge.onDialogRequest(this.side, req, tx);
  }
  onInternalError(err: unknown): void {
    this.bridge.internalError(err);
  }
  onNoAck(): void {
    this.bridge.release('both', CallTag.NoResponse, 102);
  }
  // Set-up events do not reach an answered leg.
  onProvisional(): void {}
  onAnswer(): void {}
  onFailure(): void {}
  onRingTimeout(): void {}
}
