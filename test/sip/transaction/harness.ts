/** Test rig: a TransactionLayer on a FakeClock whose `send` records every message with its time. */
import { createRequest, createResponse, Headers, type SipMessage, type SipRequest, type SipResponse } from '../../../lib/sip/message.js';
import { FakeClock } from '../../../lib/sip/transaction/clock.js';
import { TransactionLayer, type Destination, type ServerTransaction } from '../../../lib/sip/transaction/layer.js';
import type { TimerConfig } from '../../../lib/sip/transaction/timers.js';

export const UDP: Destination = { transport: 'udp', address: '192.0.2.10', port: 5060 };
export const TCP: Destination = { transport: 'tcp', address: '192.0.2.10', port: 5060, connectionId: 7 };

export interface Sent {
  msg: SipMessage;
  dest: Destination;
  at: number;
}

export interface RequestSeen {
  req: SipRequest;
  tx: ServerTransaction | null;
  source: Destination;
}

export function rig(opts: { timers?: Partial<TimerConfig>; maxServerTransactions?: number; failSend?: () => boolean; onUserError?: (err: unknown) => void } = {}) {
  const clock = new FakeClock();
  const sent: Sent[] = [];
  const requests: RequestSeen[] = [];
  const cancels: { cancel: SipRequest; inviteTx: ServerTransaction | null }[] = [];
  const ackTimeouts: ServerTransaction[] = [];
  const layer = new TransactionLayer({
    clock,
    timers: opts.timers,
    maxServerTransactions: opts.maxServerTransactions,
    ...(opts.onUserError ? { onUserError: opts.onUserError } : {}),
    send(msg, dest) {
      if (opts.failSend?.()) throw new Error('network unreachable');
      sent.push({ msg, dest, at: clock.now() });
    },
    tu: {
      onRequest: (req, tx, source) => requests.push({ req, tx, source }),
      onCancel: (cancel, inviteTx) => cancels.push({ cancel, inviteTx }),
      onAckTimeout: (tx) => ackTimeouts.push(tx),
    },
  });
  /** Times at which messages matching `pred` were sent. */
  const times = (pred: (m: SipMessage) => boolean): number[] => sent.filter((s) => pred(s.msg)).map((s) => s.at);
  return { clock, sent, requests, cancels, ackTimeouts, layer, times };
}

export interface RequestSpec {
  branch?: string;
  sentBy?: string;
  callId?: string;
  cseq?: number;
  toTag?: string;
  fromTag?: string;
  uri?: string;
  routes?: string[];
  /** A whole top Via value, replacing the one built from branch / sentBy. */
  via?: string;
}

export function request(method: string, spec: RequestSpec = {}): SipRequest {
  const h = new Headers();
  const via = spec.via ?? `SIP/2.0/UDP ${spec.sentBy ?? 'client.example.com:5060'};branch=${spec.branch ?? 'z9hG4bKbranch1'}`;
  h.append('Via', `${via}, SIP/2.0/UDP proxy.example.com;branch=z9hG4bKlower`);
  h.append('Max-Forwards', '70');
  for (const r of spec.routes ?? []) h.append('Route', r);
  h.append('From', `"Alice" <sip:alice@example.com>;tag=${spec.fromTag ?? 'fromtag1'}`);
  h.append('To', spec.toTag ? `<sip:bob@example.com>;tag=${spec.toTag}` : '<sip:bob@example.com>');
  h.append('Call-ID', spec.callId ?? 'call-1@client.example.com');
  h.append('CSeq', `${spec.cseq ?? 1} ${method}`);
  h.append('Contact', '<sip:alice@192.0.2.10:5060>');
  return createRequest(method, spec.uri ?? 'sip:bob@example.com', h);
}

/** A response to `req` with a To tag (except for 100). */
export function response(req: SipRequest, status: number, tag = 'totag1'): SipResponse {
  return createResponse(req, status, undefined, status === 100 ? undefined : tag);
}

/** The ACK a UAC sends for a non-2xx final response (same branch as the INVITE). */
export function ackFor(spec: RequestSpec = {}): SipRequest {
  return request('ACK', { toTag: 'totag1', ...spec });
}

export const isRequest = (method: string) => (m: SipMessage) => m.kind === 'request' && m.method === method;
export const isStatus = (status: number) => (m: SipMessage) => m.kind === 'response' && m.status === status;
