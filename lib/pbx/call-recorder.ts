/**
 * Turns finished calls and refused attempts into CDR records (docs/CDR.md) and appends them to
 * the daily files as each call ends.
 */
import { buildCdrRecord, type CallSummary, type CallTag } from '../cdr/record.js';
import { CdrWriter, type CdrFileFormat } from '../cdr/writer.js';
import type { Call, CallOutcome } from './call.js';

export interface CallRecorderOptions {
  dir: string;
  format: CdrFileFormat;
  failedCalls: boolean;
  sync: boolean;
  node: string;
  onError(err: Error): void;
}

export interface FailedAttempt {
  callId: string;
  caller: string;
  callerName: string;
  callee: string;
  dialled: string;
  startMs: number;
  endMs: number;
  status: number;
  tag: CallTag;
  cause: number;
  callerAddress: string;
  userAgent: string;
}

export class CallRecorder {
  private readonly writer: CdrWriter;

  constructor(private readonly opts: CallRecorderOptions) {
    this.writer = new CdrWriter({ dir: opts.dir, format: opts.format, sync: opts.sync, onError: opts.onError });
  }

  callEnded(call: Call, outcome: CallOutcome): void {
    const answered = call.answerMs !== undefined;
    if (!answered && !this.opts.failedCalls) return;
    const media = describeMedia(call.answerSdp);
    const summary: CallSummary = {
      callId: call.a.callId,
      caller: call.caller.number,
      callerName: call.caller.displayName,
      callee: call.callee.number,
      dialled: call.dialled,
      route: 'local',
      startMs: call.startMs,
      endMs: call.endMs ?? Date.now(),
      status: answered ? 200 : outcome.status,
      tag: outcome.tag,
      cause: outcome.cause,
      callerAddress: hostPort(call.source.address, call.source.port),
      calleeAddress: call.calleeAddress,
      media: call.mediaSummary || media.kinds,
      codec: media.codec,
      userAgent: call.invite.headers.get('user-agent') ?? '',
      node: this.opts.node,
    };
    if (answered) summary.answerMs = call.answerMs;
    this.writer.write(buildCdrRecord(summary));
  }

  failedAttempt(a: FailedAttempt): void {
    if (!this.opts.failedCalls) return;
    this.writer.write(
      buildCdrRecord({
        callId: a.callId,
        caller: a.caller,
        callerName: a.callerName,
        callee: a.callee,
        dialled: a.dialled,
        route: 'local',
        startMs: a.startMs,
        endMs: a.endMs,
        status: a.status,
        tag: a.tag,
        cause: a.cause,
        callerAddress: a.callerAddress,
        userAgent: a.userAgent,
        node: this.opts.node,
      }),
    );
  }

  close(): void {
    this.writer.close();
  }
}

function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

const STATIC_PAYLOADS: Record<string, string> = { '0': 'PCMU', '3': 'GSM', '4': 'G723', '8': 'PCMA', '9': 'G722', '18': 'G729' };

/** Media kinds of the accepted m= lines of an SDP answer and the first audio codec. */
export function describeMedia(sdp: string | undefined): { kinds: string; codec: string } {
  if (!sdp) return { kinds: '', codec: '' };
  const kinds: string[] = [];
  let codec = '';
  const lines = sdp.split(/\r?\n/);
  let audioPt: string | undefined;
  for (const line of lines) {
    const m = /^m=(\S+) (\d+)(?:\/\d+)? \S+ ?(.*)$/.exec(line);
    if (!m) continue;
    if (m[2] === '0') continue;
    if (!kinds.includes(m[1]!)) kinds.push(m[1]!);
    if (m[1] === 'audio' && audioPt === undefined) audioPt = m[3]!.split(' ')[0];
  }
  if (audioPt !== undefined) {
    const rtpmap = lines.find((l) => l.startsWith(`a=rtpmap:${audioPt} `));
    codec = rtpmap ? rtpmap.slice(`a=rtpmap:${audioPt} `.length).split('/')[0]! : (STATIC_PAYLOADS[audioPt] ?? '');
  }
  return { kinds: kinds.join('+'), codec };
}
