// `minisipserver callback send|cancel`: plays the application server of the call-back service
// (lib/services/callback/client.ts) against a running `minisipserver serve`, one line per event.
import type { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import type { Argv, CommandModule } from 'yargs';
import { formatIif, parseIif, type CallBackRequest } from '../lib/services/callback/iif.js';
import {
  CallBackClient,
  ClientClosedError,
  formatHostPort,
  newCallBackId,
  NoAnswerError,
  type CallBackAck,
  type CallBackClientEvents,
  type CallBackResponse,
} from '../lib/services/callback/client.js';
import { parseSubcommand } from './yargs-parse.js';

export interface CallbackIo {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  /** Where SIGINT comes from; default: process. */
  signals?: EventEmitter;
  /** How long the socket stays open after a RESPONSE to acknowledge it again if it is resent; default 1000 ms. */
  lingerMs?: number;
}

/** A parsed `callback` command line, checked by executeCallback. */
export interface CallbackCommandLine {
  command: 'send' | 'cancel';
  args: Record<string, unknown>;
}

const EXIT_OK = 0;
const EXIT_NO = 1;
const EXIT_USAGE = 2;
const EXIT_CODES =
  'Exit codes: send: 0 accepted (with --wait: user1 and user2 were bridged), 1 refused (with --wait: not bridged); ' +
  'cancel: 0 the RESPONSE came, 1 unknown id; both: 2 usage error, no answer from the server, or Ctrl-C twice.';
const DEFAULT_SERVER = '127.0.0.1:5080';
const DEFAULT_PORT = 5080;
const DEFAULT_TIMEOUT_S = 8;
const DEFAULT_LINGER_MS = 1000;

/** Q.850 causes a call-back ends with most often. */
const Q850: ReadonlyMap<number, string> = new Map([
  [1, 'unallocated number'],
  [3, 'no route'],
  [16, 'normal clearing'],
  [17, 'user busy'],
  [18, 'no user responding'],
  [19, 'no answer'],
  [20, 'subscriber absent'],
  [21, 'call rejected'],
  [27, 'destination out of order'],
  [28, 'invalid number format'],
  [31, 'normal unspecified'],
  [34, 'no circuit available'],
  [38, 'network out of order'],
  [41, 'temporary failure'],
  [47, 'resource unavailable'],
  [58, 'bearer capability not available'],
  [88, 'incompatible destination'],
  [102, 'recovery on timer expiry'],
  [127, 'interworking'],
]);

/** E.g. "normal clearing"; "cause 99" for one not in the table. */
export function causeText(cause: number): string {
  return Q850.get(cause) ?? `cause ${cause}`;
}

class UsageError extends Error {}

/** Registers `send` and `cancel` on `y`; `run` receives the parsed command line. */
export function defineCallbackSubcommands(y: Argv, run: (line: CallbackCommandLine) => void | Promise<void>): Argv {
  const common = (v: Argv) =>
    v
      .option('server', { type: 'string', default: DEFAULT_SERVER, describe: 'the call-back port of the server: HOST, HOST:PORT or [IPv6]:PORT (port 5080 when left out)' })
      .option('timeout', { type: 'number', default: DEFAULT_TIMEOUT_S, describe: 'seconds to resend the message for until the server answers' })
      .option('json', { type: 'boolean', default: false, describe: 'print one JSON object per event' })
      .epilog(EXIT_CODES);
  return y
    .command(
      'send',
      'ask the server to call user1, then user2, and bridge them',
      (v) =>
        common(
          v
            .option('user1', { type: 'string', demandOption: true, describe: 'number called first' })
            .option('user2', { type: 'string', demandOption: true, describe: 'number called once user1 answers' })
            .option('caller1', { type: 'string', describe: 'number user1 sees calling (default: callback.defaultCaller)' })
            .option('caller2', { type: 'string', describe: 'number user2 sees calling' })
            .option('max-duration', { type: 'string', describe: 'seconds of talk before the server ends the call (0: no cap)' })
            .option('id', { type: 'string', describe: 'request id (default: a new one)' })
            .option('wait', { type: 'boolean', default: false, describe: 'wait for the RESPONSE at the end of the call-back (Ctrl-C cancels it)' }),
        ),
      (args) => run({ command: 'send', args }),
    )
    .command(
      'cancel',
      'tear down a call-back in progress and print its RESPONSE',
      (v) => common(v.option('id', { type: 'string', demandOption: true, describe: 'id of the REQUEST' })),
      (args) => run({ command: 'cancel', args }),
    );
}

/** Runs `minisipserver callback <argv...>` in-process; resolves to the exit code. */
export async function runCallback(argv: string[], io: CallbackIo): Promise<number> {
  let line: CallbackCommandLine | undefined;
  const define = (y: Argv) =>
    defineCallbackSubcommands(y, (l) => {
      line = l;
    });
  const code = await parseSubcommand(define, { name: 'callback', demand: 'name a callback command: send, cancel', epilog: EXIT_CODES }, argv, io, () => line !== undefined);
  if (code !== null || !line) return code ?? EXIT_USAGE;
  return executeCallback(line, io);
}

interface Options {
  host: string;
  port: number;
  timeoutS: number;
}

/** Checks the command line, runs it, prints the events and returns the exit code. */
export async function executeCallback(line: CallbackCommandLine, io: CallbackIo): Promise<number> {
  const print = new Printer(io, line.args.json === true, `minisipserver callback ${line.command}`);
  let options: Options;
  let order: CallBackRequest | undefined;
  let id: string;
  try {
    options = commonOptions(line.args);
    order = line.command === 'send' ? sendOrder(line.args) : undefined;
    id = order?.id ?? required(line.args, 'id', 'id');
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    print.error(err.message);
    return EXIT_USAGE;
  }
  const server = formatHostPort(options.host, options.port);
  let client: CallBackClient;
  try {
    client = await CallBackClient.open({ host: options.host, port: options.port, timeoutMs: options.timeoutS * 1000, events: print.clientEvents(server) });
  } catch (err) {
    print.error(`cannot reach ${server}: ${(err as Error).message}`);
    return EXIT_USAGE;
  }
  const signals = io.signals ?? process;
  // Ctrl-C is taken over only while a RESPONSE is awaited, and while the socket lingers after it.
  const stopLinger = new AbortController();
  let onSigint: (() => void) | null = null;
  const sigint = () => (onSigint ? onSigint() : stopLinger.abort());
  try {
    if (!order) {
      const outcome = await client.cancel(id);
      return outcome.kind === 'response' ? EXIT_OK : EXIT_NO;
    }
    const ack = await client.request(order);
    if (ack.result !== 0) return EXIT_NO;
    if (line.args.wait !== true) return EXIT_OK;
    signals.on('SIGINT', sigint);
    print.event('waiting', { id }, `waiting for the response of id=${id} (Ctrl-C cancels the call-back)`);
    const stopWaiting = new AbortController();
    let cancelling = false;
    let cancelRefused = false;
    onSigint = () => {
      if (cancelling) return stopWaiting.abort(); // a second Ctrl-C
      cancelling = true;
      client.cancel(id).then(
        (outcome) => {
          if (outcome.kind !== 'ack') return;
          cancelRefused = true; // the server knows the id no more: no RESPONSE will come
          stopWaiting.abort();
        },
        (err: unknown) => {
          if (err instanceof NoAnswerError) print.error(`no answer to CANCEL from ${server} within ${options.timeoutS} s; still waiting for the response (Ctrl-C again stops waiting)`);
          else if (!(err instanceof ClientClosedError)) print.error((err as Error).message);
        },
      );
    };
    try {
      const response = await client.response(id, stopWaiting.signal);
      return response.result === 0 ? EXIT_OK : EXIT_NO;
    } catch (err) {
      if (!stopWaiting.signal.aborted) throw err;
      if (cancelRefused) return EXIT_NO;
      print.error(`interrupted: stopped waiting for the response of id=${id}`);
      return EXIT_USAGE;
    } finally {
      onSigint = null;
    }
  } catch (err) {
    if (err instanceof NoAnswerError) {
      const hint = 'is `minisipserver serve` running with callback.port set, and is this machine\'s address in callback.asAddress?';
      print.error(`no answer from ${server} within ${options.timeoutS} s: ${hint}`);
    } else {
      print.error(`${server}: ${(err as Error).message}`);
    }
    return EXIT_USAGE;
  } finally {
    await client.close({ lingerMs: io.lingerMs ?? DEFAULT_LINGER_MS, signal: stopLinger.signal });
    signals.off('SIGINT', sigint);
  }
}

/** Text lines on stdout and errors on stderr, or one JSON object per line on stdout. */
class Printer {
  constructor(
    private readonly io: CallbackIo,
    private readonly json: boolean,
    private readonly prefix: string,
  ) {}

  event(name: string, fields: Record<string, unknown>, text: string): void {
    this.io.out.write(this.json ? `${JSON.stringify({ event: name, ...fields })}\n` : `${text}\n`);
  }

  error(message: string): void {
    if (this.json) this.io.out.write(`${JSON.stringify({ event: 'error', message })}\n`);
    else this.io.err.write(`${this.prefix}: ${message}\n`);
  }

  clientEvents(server: string): CallBackClientEvents {
    return {
      sent: ({ method, id, attempt }) => {
        const name = method.toLowerCase();
        if (attempt === 1) this.event(name, { id, server }, `${name} id=${id} sent to ${server}`);
        else this.event('retransmit', { method, id, attempt }, `${name} retransmitted (${attempt})`);
      },
      ack: (ack) => this.ack(ack),
      response: (r, repeat) => this.response(r, repeat),
    };
  }

  private ack(ack: CallBackAck): void {
    const fields: Record<string, unknown> = { id: ack.id, result: ack.result };
    if (ack.reason !== undefined) fields.reason = ack.reason;
    const why = ack.reason !== undefined ? ` (${ack.reason})` : '';
    this.event('ack', fields, ack.result === 0 ? `accepted id=${ack.id}` : `refused id=${ack.id} result=${ack.result}${why}`);
  }

  private response(r: CallBackResponse, repeat: boolean): void {
    const fields: Record<string, unknown> = { id: r.id, result: r.result, outcome: r.outcome, duration: r.durationS, cause: r.cause, causeText: r.cause === null ? null : causeText(r.cause) };
    if (repeat) {
      this.event('response', { ...fields, repeat: true }, `response id=${r.id} received again, acknowledged again`);
      return;
    }
    const parts = [r.outcome ?? (r.result === null ? 'without result' : `result ${r.result}`)];
    if (r.result === 0 || r.durationS > 0) parts.push(`talked ${r.durationS} s`);
    if (r.cause !== null) parts.push(Q850.has(r.cause) ? `cause ${r.cause} (${causeText(r.cause)})` : `cause ${r.cause}`);
    this.event('response', fields, `response id=${r.id} ${parts.join(', ')}`);
  }
}

function commonOptions(args: Record<string, unknown>): Options {
  const { host, port } = parseServer(single(args, 'server') === undefined ? DEFAULT_SERVER : String(single(args, 'server')));
  const timeout = single(args, 'timeout') ?? DEFAULT_TIMEOUT_S;
  if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout <= 0 || timeout > 86_400) {
    throw new UsageError(`--timeout: expected seconds above 0 (at most 86400), got ${String(timeout)}`);
  }
  return { host, port, timeoutS: timeout };
}

function sendOrder(args: Record<string, unknown>): CallBackRequest {
  const order: CallBackRequest = {
    id: checked(args, 'id', 'id') ?? newCallBackId(),
    user1: required(args, 'user1', 'user1'),
    user2: required(args, 'user2', 'user2'),
    maxDurationS: Number(checked(args, 'max-duration', 'duration') ?? '0'),
  };
  const caller1 = checked(args, 'caller1', 'caller1');
  const caller2 = checked(args, 'caller2', 'caller2');
  if (caller1 !== undefined) order.caller1 = caller1;
  if (caller2 !== undefined) order.caller2 = caller2;
  return order;
}

function required(args: Record<string, unknown>, flag: string, param: string): string {
  const value = checked(args, flag, param);
  if (value === undefined) throw new UsageError(`--${flag} is required`);
  return value;
}

/** The value of `--flag`, at most once. */
function single(args: Record<string, unknown>, flag: string): unknown {
  const v = args[flag];
  if (Array.isArray(v)) throw new UsageError(`--${flag} given more than once`);
  return v;
}

/** `--flag`'s value when the codec takes it as parameter `param` unchanged (same rules as the server's). */
function checked(args: Record<string, unknown>, flag: string, param: string): string | undefined {
  const raw = single(args, flag);
  if (raw === undefined) return undefined;
  const value = String(raw);
  if (value === '') throw new UsageError(`--${flag} needs a value`);
  const parsed = parseIif(formatIif('REQUEST', [[param, value]]));
  if (parsed.ok && parsed.message.params.get(param) === value) return value;
  if (!parsed.ok && parsed.error === 'bad-value') throw new UsageError(`--${flag}: ${parsed.detail}`);
  throw new UsageError(`--${flag}: ${JSON.stringify(value)} may not hold spaces, ";", "," or "="`);
}

/** HOST, HOST:PORT, [IPv6]:PORT, [IPv6] or a bare IPv6 address; the port defaults to 5080. */
export function parseServer(text: string): { host: string; port: number } {
  const bad = () => new UsageError(`--server ${JSON.stringify(text)}: expected HOST, HOST:PORT or [IPv6]:PORT`);
  let host: string;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::([0-9]+))?$/.exec(text);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2];
    if (isIP(host) !== 6) throw bad();
  } else if (isIP(text) === 6) {
    host = text;
  } else {
    const m = /^([^:]+)(?::([0-9]+))?$/.exec(text);
    if (!m) throw bad();
    host = m[1]!;
    portText = m[2];
    if (isIP(host) !== 4 && !/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(host)) throw bad();
  }
  const port = portText === undefined ? DEFAULT_PORT : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`--server ${JSON.stringify(text)}: port must be 1..65535`);
  return { host, port };
}

/** The `callback` command for the root parser in cli/main.ts (run it with parseAsync). */
export const callbackCommand: CommandModule = {
  command: 'callback',
  describe: 'order a call-back from a running server, as an application server does: callback send|cancel',
  builder: (y) =>
    defineCallbackSubcommands(y, async (line) => {
      process.exitCode = await executeCallback(line, { out: process.stdout, err: process.stderr });
    })
      .demandCommand(1, 'name a callback command: send, cancel')
      .epilog(EXIT_CODES),
  handler: () => undefined,
};
