/**
 * The IVR service of `serve`: the IVR files held in memory (reloaded on change), the numbers bound
 * to them (config `ivr.numbers`, checked before extensions), the prompts, and the IVR calls in
 * progress, at most `ivr.maxSessions` in the IVR part at once.
 */
import { join, resolve } from 'node:path';
import { createResponse, type SipRequest } from '../../sip/message.js';
import type { ServerTransaction } from '../../sip/transaction/layer.js';
import type { Endpoint } from '../../sip/transport/types.js';
import { CallTag, DEFAULT_CAUSE, type CallSummary } from '../../cdr/record.js';
import { reasonValue } from '../../pbx/call-messages.js';
import { normaliseDialled } from '../../pbx/router.js';
import { hostPort } from '../../pbx/call-recorder.js';
import type { IvrDocument } from './model.js';
import { compileIvr } from './xml.js';
import { IvrStore } from './store.js';
import { PromptCache } from './prompts.js';
import { IvrCall, type IvrCallDeps } from './ivr-call.js';

export interface IvrSettings {
  dir: string;
  numbers: Record<string, string>;
  language: string;
  maxSessions: number;
  timezone: string;
}

/**
 * Told of each IVR call: started (its INVITE taken, before the answer), changed (answered, a
 * `callto` ringing or over, joined to its destination: see IvrCall.state and onwardNumber), ended
 * (nothing of it is left). Called synchronously: keep it cheap, never throw.
 */
export interface IvrObserver {
  started(call: IvrCall): void;
  changed(call: IvrCall): void;
  ended(call: IvrCall): void;
}

export interface IvrServiceDeps extends Omit<IvrCallDeps, 'prompts' | 'timeZone' | 'left' | 'ended' | 'record' | 'changed'> {
  /** Writes a record of an answered call, or of an attempt (the recorder decides about those). */
  record(summary: CallSummary, answered: boolean): void;
}

export class IvrService {
  private readonly store: IvrStore<IvrDocument>;
  private readonly prompts: PromptCache;
  private readonly inIvr = new Set<IvrCall>();
  private readonly calls = new Set<IvrCall>();
  private numbers: Map<string, string>;
  private maxSessions: number;
  private accepting = true;
  /** The live state (admin API, event channel); undefined: nobody listens. */
  observer: IvrObserver | undefined = undefined;

  constructor(private readonly deps: IvrServiceDeps, private settings: IvrSettings) {
    const dir = resolve(settings.dir);
    const promptsDir = join(dir, 'prompts');
    this.store = new IvrStore<IvrDocument>({
      dir,
      compile: (file, bytes) => compileIvr(file, bytes, { promptsDir, language: settings.language }),
      log: (level, event, fields) => deps.env.log(level === 'error' ? 'warn' : level, event, fields),
    });
    this.prompts = new PromptCache({ dir: promptsDir, language: settings.language, log: (level, event, fields) => deps.env.log(level, event, fields) });
    // A changed IVR file may come with changed prompts: decode them again when next used.
    this.store.onChange(() => this.prompts.clear());
    this.numbers = new Map(Object.entries(settings.numbers));
    this.maxSessions = settings.maxSessions;
  }

  async start(): Promise<void> {
    await this.store.start();
    for (const [number, file] of this.numbers) this.checkBinding(number, file);
  }

  async close(): Promise<void> {
    await this.store.close();
  }

  /** IVR calls in progress (in the IVR, or sent on from it and still up). */
  get activeCount(): number {
    return this.calls.size;
  }

  /** The IVR calls in progress (in the IVR, or sent on from it and still up), oldest first. */
  list(): IvrCall[] {
    return [...this.calls];
  }

  /** New bindings and limits (SIGHUP); calls in progress keep their file. */
  setBindings(numbers: Record<string, string>, maxSessions: number): void {
    this.numbers = new Map(Object.entries(numbers));
    this.maxSessions = maxSessions;
    for (const [number, file] of this.numbers) this.checkBinding(number, file);
  }

  /** Whether `dialled` is an IVR number. */
  handles(dialled: string): boolean {
    return this.numbers.has(normaliseDialled(dialled));
  }

  /**
   * Runs the IVR bound to `dialled` for this INVITE (the caller is authenticated), or refuses it:
   * 404 when the number's file is missing or invalid (logged with why), 486 beyond maxSessions.
   * `file`: run this IVR file instead (a trunk's DID bound to `ivr:FILE`).
   */
  offer(req: SipRequest, tx: ServerTransaction, source: Endpoint, caller: { number: string; displayName: string }, dialled: string, toTag: string, file?: string): void {
    const number = normaliseDialled(dialled);
    const fileName = file ?? this.numbers.get(number)!;
    const startMs = Date.now();
    const refuse = (status: number, tag: CallTag, reason?: string) => {
      const cause = DEFAULT_CAUSE[tag];
      const res = createResponse(req, status, reason, toTag);
      res.headers.append('reason', reasonValue(cause));
      tx.respond(res);
      this.deps.record(
        {
          callId: req.headers.get('call-id') ?? '',
          caller: caller.number,
          callerName: caller.displayName,
          callee: number,
          dialled,
          route: `ivr:${fileName}`,
          startMs,
          endMs: Date.now(),
          status,
          tag,
          cause,
          callerAddress: hostPort(source.address, source.port),
          userAgent: req.headers.get('user-agent') ?? '',
        },
        false,
      );
    };
    if (!this.accepting) {
      refuse(503, CallTag.ServerShutdown, 'Service Unavailable (shutting down)');
      return;
    }
    const doc = this.store.get(fileName);
    if (!doc) {
      this.deps.env.log('warn', 'ivr.number_unusable', { number, file: fileName, problem: this.store.problem(fileName) ?? 'not loaded' });
      refuse(404, CallTag.UnknownNumber, 'Not Found (the IVR of this number is not available)');
      return;
    }
    if (this.inIvr.size >= this.maxSessions) {
      refuse(486, CallTag.Busy, 'Busy Here (every IVR session is in use)');
      return;
    }
    const call = new IvrCall(
      {
        ...this.deps,
        prompts: this.prompts,
        timeZone: this.settings.timezone || undefined,
        record: (summary) => this.deps.record(summary, summary.answerMs !== undefined),
        left: (c) => this.inIvr.delete(c),
        ended: (c) => {
          this.inIvr.delete(c);
          if (this.calls.delete(c)) this.observer?.ended(c);
        },
        changed: (c) => this.observer?.changed(c),
      },
      doc,
      fileName,
      req,
      tx,
      source,
      caller,
      dialled,
    );
    this.inIvr.add(call);
    this.calls.add(call);
    if (this.deps.env.logs('info')) this.deps.env.log('info', 'ivr.call', { callId: call.callId, caller: caller.number, number, file: fileName });
    this.observer?.started(call);
    void call.begin();
  }

  /** A CANCEL for an INVITE of an IVR call still being answered: 487. */
  cancelled(inviteTx: ServerTransaction, cancel: SipRequest): void {
    for (const call of this.inIvr) if (call.inviteTx === inviteTx) call.cancelledByCaller(cancel);
  }

  /** Shutdown: no new IVR calls; every call in progress is released (cause 41). */
  releaseAll(): number {
    this.accepting = false;
    const n = this.calls.size;
    for (const call of [...this.calls]) call.release(CallTag.ServerShutdown);
    return n;
  }

  private checkBinding(number: string, file: string): void {
    if (!this.store.get(file)) {
      this.deps.env.log('warn', 'ivr.number_unusable', { number, file, problem: this.store.problem(file) ?? 'not loaded', hint: `calls to ${number} get 404 until ${file} in ${this.store.dir} is valid` });
    }
  }
}
