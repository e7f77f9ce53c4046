/**
 * Turns finished calls and refused attempts into CDR records (docs/CDR.md) and appends them to
 * the daily files as each call ends; with cdr.format db, also queues a copy for the store's cdr
 * table (after the files: the copy never holds up or replaces the file record).
 */
import { buildCdrRecord, type CallSummary, type CallTag, type CdrRecord } from '../cdr/record.js';
import { CdrWriter, type CdrFileFormat } from '../cdr/writer.js';
import type { CdrDbQueue } from '../cdr/db-queue.js';
import type { Call, CallOutcome } from './call.js';

export interface CallRecorderOptions {
  dir: string;
  format: CdrFileFormat;
  failedCalls: boolean;
  sync: boolean;
  node: string;
  onError(err: Error): void;
  /** The copy into the store's cdr table (cdr.format db); absent: files only. */
  db?: CdrDbQueue;
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
  /** `local` unless the attempt was for or from a trunk (`trunk:<name>`). */
  route?: string;
  partyKind?: 'local' | 'outside';
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
      callId: call.callId,
      caller: call.caller.number,
      callerName: call.caller.displayName,
      callee: call.callee.number,
      dialled: call.dialled,
      route: call.route,
      partyKind: call.partyKind,
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
    this.write(buildCdrRecord(summary));
  }

  private write(rec: CdrRecord): void {
    try {
      this.writer.write(rec);
    } finally {
      this.opts.db?.push(rec);
    }
  }

  /** A record built elsewhere (IVR calls): unanswered ones only with cdr.failedCalls. */
  record(summary: CallSummary, answered: boolean): void {
    if (!answered && !this.opts.failedCalls) return;
    this.write(buildCdrRecord({ ...summary, node: this.opts.node }));
  }

  failedAttempt(a: FailedAttempt): void {
    if (!this.opts.failedCalls) return;
    this.write(
      buildCdrRecord({
        callId: a.callId,
        caller: a.caller,
        callerName: a.callerName,
        callee: a.callee,
        dialled: a.dialled,
        route: a.route ?? 'local',
        partyKind: a.partyKind ?? 'local',
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

  /** Records written to the CDR files and failed appends since start (CdrWriter.counts, live). */
  get counts(): { readonly written: number; readonly errors: number } {
    return this.writer.counts;
  }

  /** The copy into the database: counts and records waiting; null without cdr.format db. */
  get db(): CdrDbQueue | null {
    return this.opts.db ?? null;
  }

  /** Closes the files; the database copy gets up to 5 s to write what waits. */
  async close(): Promise<void> {
    this.writer.close();
    await this.opts.db?.close();
  }
}

/** `host:port`, an IPv6 host in brackets: the CDR's address columns. */
export function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

const STATIC_PAYLOADS: Record<string, string> = { '0': 'PCMU', '3': 'GSM', '4': 'G723', '8': 'PCMA', '9': 'G722', '18': 'G729' };

/**
 * Media kinds of the accepted m= lines of an SDP answer and the first audio codec. One pass over
 * the lines with indexOf: this runs for every call that ends.
 */
export function describeMedia(sdp: string | undefined): { kinds: string; codec: string } {
  if (!sdp) return { kinds: '', codec: '' };
  const kinds: string[] = [];
  let audioPt: string | undefined;
  // Lines end at LF; a CR before it is not part of the line (as a split on /\r?\n/ has it).
  for (let start = 0; start <= sdp.length; ) {
    let lf = sdp.indexOf('\n', start);
    const found = lf >= 0;
    if (!found) lf = sdp.length;
    const end = found && lf > start && sdp.charCodeAt(lf - 1) === 13 ? lf - 1 : lf;
    if (sdp.charCodeAt(start) === 109 /* m */ && sdp.charCodeAt(start + 1) === 61 /* = */) {
      const m = mediaLine(sdp.slice(start, end));
      if (m !== null && m.port !== '0') {
        if (!kinds.includes(m.kind)) kinds.push(m.kind);
        if (m.kind === 'audio' && audioPt === undefined) audioPt = m.formats.split(' ')[0];
      }
    }
    start = lf + 1;
  }
  let codec = '';
  if (audioPt !== undefined) {
    const prefix = `a=rtpmap:${audioPt} `;
    let rtpmap: string | undefined;
    for (let start = 0; start <= sdp.length && rtpmap === undefined; ) {
      let lf = sdp.indexOf('\n', start);
      const found = lf >= 0;
      if (!found) lf = sdp.length;
      if (sdp.startsWith(prefix, start)) rtpmap = sdp.slice(start, found && lf > start && sdp.charCodeAt(lf - 1) === 13 ? lf - 1 : lf);
      start = lf + 1;
    }
    codec = rtpmap !== undefined ? rtpmap.slice(prefix.length).split('/')[0]! : (STATIC_PAYLOADS[audioPt] ?? '');
  }
  return { kinds: kinds.join('+'), codec };
}

/** `m=<kind> <port>[/<n>] <proto> <formats>`, as /^m=(\S+) (\d+)(?:\/\d+)? \S+ ?(.*)$/ reads it. */
const MEDIA_LINE = /^m=(\S+) (\d+)(?:\/\d+)? \S+ ?(.*)$/;
function mediaLine(line: string): { kind: string; port: string; formats: string } | null {
  const m = MEDIA_LINE.exec(line);
  return m ? { kind: m[1]!, port: m[2]!, formats: m[3]! } : null;
}
