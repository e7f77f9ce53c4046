/**
 * The caller's side of a call: its INVITE's server transaction and the dialog it creates, with
 * us as UAS. Sends what the caller hears (provisional responses, reliably where it supports
 * RFC 3262; the 2xx, retransmitted until the ACK; the failure), and hands the requests of the
 * dialog to its owner.
 *
 * States: offered (INVITE received, no final response yet) -> answering (2xx sent or waiting for
 * the PRACK it must follow) -> confirmed (ACK received); ended from any of them.
 */
import { createRequest, createResponse, Headers, REASON, type SipRequest, type SipResponse } from '../../sip/message.js';
import { Dialog, withoutTag } from '../../sip/dialog.js';
import { parseUri } from '../../sip/uri.js';
import { parseNameAddr } from '../../sip/headers/name-addr.js';
import { parseCSeq } from '../../sip/headers/cseq.js';
import type { ServerTransaction } from '../../sip/transaction/layer.js';
import { isConnectionTransport, type Endpoint } from '../../sip/transport/types.js';
import { ReliableProvisionals } from '../reliable-provisionals.js';
import { contactFor, createsSecureDialog, fromTagOf, hasOptionTag, hostPortText, reasonValue, SDP } from '../call-messages.js';
import { answerInDialog, ENDED_OWNER, type BridgedLeg, type DialogUser, type LegEnv, type LegOwner } from './leg.js';

export type IncomingLegState = 'offered' | 'answering' | 'confirmed' | 'ended';

export interface IncomingLegOwner extends LegOwner {
  /** Our 2xx (to the INVITE or a re-INVITE) got no ACK within 64*T1 (RFC 3261 section 13.3.1.4). */
  onNoAck(): void;
}

/** What an ended leg keeps in place of the caller's INVITE (see forget). */
const FORGOTTEN_INVITE = createRequest('INVITE', 'sip:invalid', new Headers());

interface Pending2xx {
  timer: NodeJS.Timeout | undefined;
  interval: number;
  sentAt: number;
  cseq: number;
  onAck: ((ack: SipRequest) => void) | undefined;
}

export class IncomingLeg implements DialogUser, BridgedLeg {
  state: IncomingLegState = 'offered';
  readonly dialog: Dialog;
  /** The host the caller addressed us with (its Request-URI): our address as it sees it. */
  readonly hint: string | undefined;
  owner: IncomingLegOwner;
  private readonly supportsReliable: boolean;
  private readonly requiresReliable: boolean;
  /** Our reliable provisional responses to the caller (RFC 3262), when it supports them. */
  private readonly reliable: ReliableProvisionals;
  private pending2xx: Pending2xx | null = null;
  private lastProvisionalStatus = 0;

  constructor(
    private readonly env: LegEnv,
    public invite: SipRequest,
    readonly inviteTx: ServerTransaction,
    readonly source: Endpoint,
    owner: IncomingLegOwner,
  ) {
    this.owner = owner;
    const h = invite.headers;
    this.hint = parseUri(invite.uri)?.host;
    const host = env.localHost(source.address, this.hint);
    const contactUri = parseNameAddr(h.get('contact') ?? '')?.uri ?? '';
    const sips = createsSecureDialog(invite);
    this.dialog = new Dialog({
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
      contact: contactFor(host, env.sipPort(sips ? 'tls' : source.transport), source.transport, undefined, sips),
      sentBy: hostPortText(host, env.sipPort(source.transport)),
      rport: env.viaRport,
    });
    this.requiresReliable = hasOptionTag(h.list('require'), '100rel');
    this.supportsReliable = this.requiresReliable || hasOptionTag(h.list('supported'), '100rel');
    this.reliable = new ReliableProvisionals(inviteTx, env, isConnectionTransport(source.transport), () => this.state === 'offered');
    env.fileDialog(this.dialog.callId, this.dialog.localTag, this);
  }

  get signalIp(): string {
    return this.source.address;
  }

  /** Whether the caller takes reliable provisional responses (RFC 3262): the callee is offered them too. */
  get reliableProvisionals(): boolean {
    return this.supportsReliable;
  }

  get awaitingAck(): boolean {
    return this.state === 'answering' || this.pending2xx !== null;
  }

  /**
   * A provisional response to the caller. `peerReliable`: the response it mirrors came reliably,
   * so it goes reliably too where the caller allows. Several forks ringing: the caller hears one
   * 180, not one per phone.
   */
  sendProvisional(status: number, reason: string, sdp: Buffer | null, peerReliable: boolean): void {
    if (this.state !== 'offered') return;
    const out = createResponse(this.invite, status, reason, this.dialog.localTag);
    this.addUasHeaders(out);
    if (sdp !== null && sdp.length > 0) {
      out.headers.append('content-type', SDP);
      out.body = sdp;
    }
    if (out.body.length === 0 && status === this.lastProvisionalStatus) return;
    this.lastProvisionalStatus = status;
    if (this.supportsReliable && (peerReliable || this.requiresReliable)) this.reliable.send(out);
    else this.inviteTx.respond(out);
  }

  /** The 2xx to the INVITE (after the last reliable provisional is PRACKed), retransmitted until the ACK. */
  answer(reason: string, sdp: Buffer, onAck: (ack: SipRequest) => void): void {
    if (this.state !== 'offered') return;
    const out = createResponse(this.invite, 200, reason || 'OK', this.dialog.localTag);
    this.addUasHeaders(out);
    out.headers.append('allow', this.env.allow);
    if (sdp.length > 0) {
      out.headers.append('content-type', SDP);
      out.body = sdp;
    }
    this.state = 'answering';
    const send2xx = (): void => {
      if (this.state !== 'answering') return;
      this.inviteTx.respond(out);
      this.retransmit2xx(out, this.dialog.remoteSeq, (ack) => {
        if (this.state === 'answering') this.state = 'confirmed';
        onAck(ack);
      });
    };
    this.reliable.sendFinal(send2xx);
  }

  /** A final failure response to the INVITE, with a Reason (RFC 3326); the leg ends. */
  reject(status: number, cause: number, reason?: string, from?: SipResponse): void {
    if (this.state !== 'offered') return;
    const res = createResponse(this.invite, status, reason ?? REASON[status], this.dialog.localTag);
    res.headers.append('reason', reasonValue(cause));
    if (from) {
      for (const name of ['retry-after', 'warning']) for (const v of from.headers.getAll(name)) res.headers.append(name, v);
    }
    this.end();
    this.inviteTx.respond(res);
    this.forget();
  }

  bye(cause: number): void {
    const bye = this.dialog.request('BYE', { extra: [['reason', reasonValue(cause)]] });
    this.env.sendRequest(bye, this.dialog.destination, { onResponse: () => undefined, onTimeout: () => undefined });
  }

  sendRequest(out: SipRequest, user: { onResponse(res: SipResponse): void; onTimeout(): void }): boolean {
    return this.env.sendRequest(out, this.dialog.destination, user) !== null;
  }

  answerReInvite(res: SipResponse, cseq: number, onAck: (ack: SipRequest) => void): void {
    this.retransmit2xx(res, cseq, onAck);
  }

  sendAck(cseq: number, body: Buffer): void {
    const ack = this.dialog.request('ACK', { cseq, body, contentType: body.length > 0 ? SDP : undefined });
    this.env.sendRaw(ack, this.dialog.destination);
  }

  /** Stops timers and retransmissions; in-dialog requests are no longer delivered. */
  end(): void {
    if (this.state === 'ended') return;
    this.state = 'ended';
    if (this.pending2xx?.timer) clearTimeout(this.pending2xx.timer);
    this.pending2xx = null;
    this.reliable.stop();
    this.env.fileDialog(this.dialog.callId, this.dialog.localTag, undefined);
  }

  /**
   * After the record is written and the last messages are out: let go of what only the live
   * leg needed (transactions keep this object reachable for another 64*T1).
   */
  forget(): void {
    this.invite = FORGOTTEN_INVITE;
    this.owner = ENDED_OWNER;
  }

  /** Contact, Record-Route copy (section 12.1.1) on a dialog-creating response to the caller. */
  private addUasHeaders(res: SipResponse): void {
    for (const rr of this.invite.headers.getAll('record-route')) res.headers.append('record-route', rr);
    res.headers.append('contact', this.dialog.contact);
  }

  /** A request inside the dialog (`tx` null for an ACK). */
  onRequest(req: SipRequest, tx: ServerTransaction | null): void {
    if (req.method === 'ACK') {
      this.onAck(req);
      return;
    }
    if (!tx) return;
    if (this.state === 'ended') {
      tx.respond(createResponse(req, 481, undefined));
      return;
    }
    answerInDialog(req, tx, this.dialog, this.owner, this.env.allow, (r, t) => this.reliable.onPrack(r, t));
  }

  private onAck(ack: SipRequest): void {
    const pending = this.pending2xx;
    const cseq = parseCSeq(ack.headers.get('cseq') ?? '')?.seq;
    if (pending === null || cseq !== pending.cseq) return;
    if (pending.timer) clearTimeout(pending.timer);
    this.pending2xx = null;
    pending.onAck?.(ack);
  }

  /**
   * Section 13.3.1.4: the UAS core retransmits a 2xx to INVITE, T1 doubling up to T2, until the
   * ACK comes; without an ACK after 64*T1 the dialog is ended (the owner sends the BYE).
   */
  private retransmit2xx(res: SipResponse, cseq: number, onAck: (ack: SipRequest) => void): void {
    const reliable = isConnectionTransport(this.dialog.destination.transport);
    const t1 = this.env.t1;
    const state: Pending2xx = { timer: undefined, interval: t1, sentAt: Date.now(), cseq, onAck };
    this.pending2xx = state;
    const tick = (): void => {
      try {
        if (this.pending2xx !== state || this.state === 'ended') return;
        if (Date.now() - state.sentAt >= 64 * t1) {
          this.pending2xx = null;
          state.onAck = undefined;
          this.env.log('warn', 'call.no_ack', { callId: this.dialog.callId }, true);
          this.owner.onNoAck();
          return;
        }
        if (!reliable) this.inviteTx.respond(res);
        state.interval = reliable ? 64 * t1 : Math.min(state.interval * 2, this.env.t2);
        state.timer = setTimeout(tick, state.interval);
        state.timer.unref();
      } catch (err) {
        this.owner.onInternalError(err);
      }
    };
    state.timer = setTimeout(tick, reliable ? 64 * t1 : state.interval);
    state.timer.unref();
  }
}
