/**
 * One side of a SIP dialog (RFC 3261 section 12): the state both a UAC and a UAS keep once a
 * dialog exists, and the construction of requests inside it (section 12.2.1.1).
 */
import { createRequest, Headers, type SipRequest } from './message.js';
import { detach, newBranch, newTag } from './transaction/message-keys.js';
import type { Destination } from './transaction/types.js';

export interface DialogInit {
  callId: string;
  localTag: string;
  /** '' while a UAC has no answer yet (an early dialog gets it from the first tagged response). */
  remoteTag: string;
  /** Our From (UAC) or To (UAS) value without its tag: `"Name" <sip:100@host>`. */
  localUri: string;
  /** The peer's value without tag. */
  remoteUri: string;
  /** CSeq of the last request we sent in this dialog. */
  localSeq: number;
  /** CSeq of the last request the peer sent; -1 while unknown (section 12.1.2). */
  remoteSeq: number;
  /** The peer's Contact URI: the Request-URI of our requests. */
  remoteTarget: string;
  /** Route header values for our requests, in order (section 12.1.1 / 12.1.2). */
  routeSet: string[];
  /**
   * Where our requests are sent: the transport flow the peer used (its source address, or its
   * TCP connection), so that phones behind NAT are reached (RFC 5626's idea, section 3).
   */
  destination: Destination;
  /** Our Contact value, e.g. `<sip:203.0.113.5:5060>`. */
  contact: string;
  /** host:port written in our Via sent-by. */
  sentBy: string;
  /**
   * Ask for rport in our Via (RFC 3581: the answer goes to our source port). Off when the SIP
   * port is shared by several processes: the answer must reach the sent-by port, ours alone.
   */
  rport?: boolean;
}

/** The dialog's state: the fields of DialogInit, kept up to date as the dialog goes on. */
export interface Dialog extends DialogInit {}

export class Dialog {
  constructor(init: DialogInit) {
    Object.assign(this, init);
    // Values cut from a received message are views on its whole text: a dialog lives as long as
    // its call (and 32 s after), the message need not.
    this.callId = detach(init.callId);
    this.localTag = detach(init.localTag);
    this.remoteTag = detach(init.remoteTag);
    this.localUri = detach(init.localUri);
    this.remoteUri = detach(init.remoteUri);
    this.remoteTarget = detach(init.remoteTarget);
    this.routeSet = init.routeSet.map(detach);
  }

  /**
   * A new request in the dialog (section 12.2.1.1): Request-URI the remote target, To/From with
   * the dialog's tags, the next local CSeq (ACK and CANCEL reuse the INVITE's: pass `cseq`),
   * the route set, our Contact for target-refresh requests, a new Via branch.
   */
  request(method: string, opts: { cseq?: number; body?: Buffer; contentType?: string; extra?: Array<[string, string]> } = {}): SipRequest {
    const h = new Headers();
    h.append('via', this.via());
    h.append('max-forwards', '70');
    h.append('from', withTag(this.localUri, this.localTag));
    h.append('to', this.remoteTag ? withTag(this.remoteUri, this.remoteTag) : this.remoteUri);
    h.append('call-id', this.callId);
    const seq = opts.cseq ?? ++this.localSeq;
    h.append('cseq', `${seq} ${method}`);
    for (const r of this.routeSet) h.append('route', r);
    if (method === 'INVITE' || method === 'UPDATE' || method === 'ACK') h.append('contact', this.contact);
    if (opts.extra) for (const [n, v] of opts.extra) h.append(n, v);
    const body = opts.body ?? EMPTY;
    if (body.length > 0 && opts.contentType) h.append('content-type', opts.contentType);
    return createRequest(method, this.remoteTarget, h, body);
  }

  /** Top Via of a request we originate on this dialog's transport (RFC 3581 rport asked). */
  via(): string {
    return `SIP/2.0/${this.destination.transport.toUpperCase()} ${this.sentBy};branch=${newBranch()}${this.rport === false ? '' : ';rport'}`;
  }

  /**
   * Section 12.2.2: a request whose CSeq is lower than the last one seen from the peer is out of
   * order (answer 500); otherwise the number is remembered.
   */
  acceptRemoteSeq(seq: number): boolean {
    if (this.remoteSeq >= 0 && seq < this.remoteSeq) return false;
    this.remoteSeq = seq;
    return true;
  }
}

const EMPTY = Buffer.alloc(0);

export function withTag(nameAddr: string, tag: string): string {
  return `${nameAddr};tag=${tag}`;
}

/** A From/To value without its tag parameter (kept otherwise as written). */
export function withoutTag(value: string): string {
  const gt = value.lastIndexOf('>');
  const head = gt >= 0 ? value.slice(0, gt + 1) : '';
  const params = gt >= 0 ? value.slice(gt + 1) : value;
  return head + params.replace(/;\s*tag\s*=\s*[^;]*/i, '');
}

/**
 * A fresh Call-ID for a dialog we start (section 8.1.1.4: globally unique): a random
 * per-process prefix and a counter, no crypto call per call.
 */
export function newCallId(host: string): string {
  return `${newTag()}-${host}`;
}
