/**
 * What the two kinds of leg share: one SIP dialog each, incoming (we are the caller's UAS) or
 * outgoing (we are UAC towards a callee, forking to its contacts). A leg knows SIP, not what it
 * is joined to: its owner (a call's set-up, a bridge, an IVR session) gets its events.
 */
import { createResponse, type SipRequest, type SipResponse } from '../../sip/message.js';
import { parseCSeq } from '../../sip/headers/cseq.js';
import type { Dialog } from '../../sip/dialog.js';
import type { ClientTransaction, ServerTransaction } from '../../sip/transaction/layer.js';
import type { Endpoint, TransportName } from '../../sip/transport/types.js';

/** What a leg needs from the server around it. */
export interface LegEnv {
  sendRequest(req: SipRequest, dest: Endpoint, user: {
    onResponse(res: SipResponse): void;
    onTimeout(): void;
  }): ClientTransaction | null;
  /** Sends outside any transaction (ACK to a 2xx, 2xx retransmissions); a Buffer as it is. */
  sendRaw(msg: SipRequest | SipResponse | Buffer, dest: Endpoint): void;
  /** Our address as `peer` sees it (hint: the host it addressed us with). */
  localHost(peer: string, hint?: string): string;
  /** Our SIP port for Via and Contact on `transport` (default UDP; known once the transports are open). */
  sipPort(transport?: TransportName): number;
  /** Whether our Via asks for rport (not when the SIP port is shared by several processes). */
  viaRport: boolean;
  /** A fresh unguessable dialog tag (naming this process when several share the SIP port). */
  dialogTag(): string;
  t1: number;
  t2: number;
  /** The server's Allow value, sent in our INVITEs and 2xx. */
  allow: string;
  userAgent: string;
  /** Files the dialog so that in-dialog requests reach `leg`; `undefined` unfiles it. */
  fileDialog(callId: string, localTag: string, leg: DialogUser | undefined): void;
  /** `fromPeer`: caused by what a peer sent (a missing ACK, bad SDP...): within the log's budget of such lines a second. */
  log(level: 'debug' | 'info' | 'warn', event: string, fields: Record<string, unknown>, fromPeer?: boolean): void;
  /** Whether `level` is written: fields of a disabled event are not even built. */
  logs(level: 'debug' | 'info' | 'warn'): boolean;
}

/** Whoever a dialog's requests are delivered to (`tx` null for an ACK). */
export interface DialogUser {
  onRequest(req: SipRequest, tx: ServerTransaction | null): void;
}

/** What a leg tells its owner once its dialog is established. */
export interface LegOwner {
  /** BYE from the peer; the leg answers it 200 right after (the record goes first). */
  onBye(req: SipRequest): void;
  /** re-INVITE, UPDATE, INFO or MESSAGE inside the dialog. */
  onDialogRequest(req: SipRequest, tx: ServerTransaction): void;
  /** A fault in a timer or callback of the leg: the owner ends the call. */
  onInternalError(err: unknown): void;
}

/** A leg with a confirmed dialog, as a bridge sees it. */
export interface BridgedLeg {
  readonly dialog: Dialog;
  /** Where the peer's SIP comes from: only its addresses may latch its media. */
  readonly signalIp: string;
  owner: LegOwner;
  /** An offer/answer of ours is not finished yet (our 2xx awaits its ACK). */
  readonly awaitingAck: boolean;
  /** Sends a request in the dialog (re-INVITE, UPDATE, INFO, MESSAGE). */
  sendRequest(out: SipRequest, user: { onResponse(res: SipResponse): void; onTimeout(): void }): boolean;
  /** Our 2xx to the peer's re-INVITE: retransmitted until its ACK where the leg does that. */
  answerReInvite(res: SipResponse, cseq: number, onAck: (ack: SipRequest) => void): void;
  /** ACK for the 2xx the peer sent to our re-INVITE. */
  sendAck(cseq: number, body: Buffer): void;
  bye(cause: number): void;
  /** Stops the leg's timers; its dialog's requests are no longer delivered. */
  end(): void;
  /** After the record: lets go of what only the live leg needed. */
  forget(): void;
}

/**
 * The owner of an ended leg. Its transactions keep it reachable for another 64*T1 (a late 2xx
 * must still be ACKed and ended), and nothing of the call around it needs to stay with it.
 */
export const ENDED_OWNER = {
  onBye(): void {},
  onDialogRequest(): void {},
  onInternalError(): void {},
  onNoAck(): void {},
  onProvisional(): void {},
  onAnswer(): void {},
  onFailure(): void {},
  onRingTimeout(): void {},
};

/**
 * A request (not ACK) inside an established dialog, answered the same way by both kinds of leg:
 * CSeq order checked (RFC 3261 section 12.2.2), BYE and the mid-call requests handed to the
 * owner, OPTIONS answered here, PRACK to `onPrack` (481 when null), anything else 405.
 */
export function answerInDialog(
  req: SipRequest,
  tx: ServerTransaction,
  dialog: Dialog,
  owner: LegOwner,
  allow: string,
  onPrack: ((req: SipRequest, tx: ServerTransaction) => void) | null,
): void {
  const cseq = parseCSeq(req.headers.get('cseq') ?? '');
  if (!cseq || !dialog.acceptRemoteSeq(cseq.seq)) {
    tx.respond(createResponse(req, 500, 'Server Internal Error (CSeq out of order)'));
    return;
  }
  switch (req.method) {
    case 'BYE':
      // The owner writes the record before anybody hears that the call ended (kill -9 safe).
      owner.onBye(req);
      tx.respond(createResponse(req, 200));
      return;
    case 'OPTIONS': {
      const res = createResponse(req, 200);
      res.headers.append('allow', allow);
      tx.respond(res);
      return;
    }
    case 'INVITE':
    case 'UPDATE':
    case 'INFO':
    case 'MESSAGE':
      owner.onDialogRequest(req, tx);
      return;
    case 'PRACK':
      if (onPrack) onPrack(req, tx);
      else tx.respond(createResponse(req, 481, undefined));
      return;
    default: {
      const res = createResponse(req, 405);
      res.headers.append('allow', allow);
      tx.respond(res);
    }
  }
}
