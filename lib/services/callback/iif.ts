/**
 * The call-back service's text protocol ("IIF", ../shared/spec/callback.md section 4): one message
 * a datagram, `METHOD: name=value;name=value`. Read leniently (an optional space after the colon;
 * `;`, `,` or spaces between parameters; spaces around `=`; names in any case; the aliases of the
 * spec's canonical set), written one way (`METHOD: ` and `;`-joined pairs).
 */

export type IifMethod = 'REQUEST' | 'ACK' | 'RESPONSE' | 'CANCEL' | 'RELEASE';

const METHODS: ReadonlySet<string> = new Set<IifMethod>(['REQUEST', 'ACK', 'RESPONSE', 'CANCEL', 'RELEASE']);

/** A datagram larger than this is refused (one Ethernet MTU: a message is a few dozen bytes). */
export const MAX_DATAGRAM_BYTES = 1500;
/** More parameters than this are refused. */
export const MAX_PARAMETERS = 32;
/** The longest value of any parameter. */
export const MAX_VALUE_CHARS = 64;

/** Canonical parameter name of every accepted spelling (lower case). */
const ALIASES: ReadonlyMap<string, string> = new Map([
  ['id', 'id'],
  ['index', 'id'],
  ['callid', 'id'],
  ['seq', 'id'],
  ['caller1', 'caller1'],
  ['user1', 'user1'],
  ['callee1', 'user1'],
  ['called1', 'user1'],
  ['caller2', 'caller2'],
  ['user2', 'user2'],
  ['callee2', 'user2'],
  ['called2', 'user2'],
  ['duration', 'duration'],
  ['maxduration', 'duration'],
  ['time', 'duration'],
  ['result', 'result'],
  ['cause', 'cause'],
  ['reason', 'reason'],
]);

/** What an id may hold: an opaque token of the AS, echoed back. */
const ID = /^[A-Za-z0-9._:@+-]{1,64}$/;
/** A number as dialled (digits, *, #, +, and the names some dial plans use, e.g. anonymous). */
const NUMBER = /^[A-Za-z0-9*#+._-]{1,64}$/;
const INTEGER = /^[0-9]{1,9}$/;

export type IifError = 'too-large' | 'too-many-parameters' | 'malformed' | 'unknown-method' | 'bad-value';

export interface IifMessage {
  method: IifMethod;
  /** Canonical names to values, in the order they came. */
  params: Map<string, string>;
}

export type IifParse = { ok: true; message: IifMessage } | { ok: false; error: IifError; detail: string; method?: string; id?: string };

/** Reads one datagram. Never throws. */
export function parseIif(datagram: Uint8Array | string): IifParse {
  const size = typeof datagram === 'string' ? Buffer.byteLength(datagram) : datagram.length;
  const text = (typeof datagram === 'string' ? datagram : Buffer.from(datagram.buffer, datagram.byteOffset, Math.min(datagram.length, MAX_DATAGRAM_BYTES * 4)).toString('latin1')).trim();
  const colon = text.indexOf(':');
  const method = colon > 0 ? text.slice(0, colon).trim() : '';
  const body = colon > 0 ? text.slice(colon + 1) : '';
  const known = METHODS.has(method);
  const fail = (error: IifError, detail: string, params?: Map<string, string>): IifParse => {
    const out: IifParse = { ok: false, error, detail };
    if (known) out.method = method;
    // Only an id that passes the rule is given back (the server echoes it in its answer).
    const given = params?.get('id');
    const id = given !== undefined && valueProblem('id', given) === null ? given : idOf(body);
    if (id !== undefined) out.id = id;
    return out;
  };
  if (size > MAX_DATAGRAM_BYTES) return fail('too-large', `${size} bytes (at most ${MAX_DATAGRAM_BYTES})`);
  if (colon <= 0) return { ok: false, error: 'malformed', detail: 'no "METHOD:" at the start' };
  if (!known) return { ok: false, error: 'unknown-method', detail: `method ${JSON.stringify(method.slice(0, 20))} (REQUEST, ACK, RESPONSE, CANCEL or RELEASE, in capitals)` };
  const scanned = scanParameters(body);
  if (typeof scanned === 'string') return fail(scanned.startsWith('more than') ? 'too-many-parameters' : 'malformed', scanned);
  const params = new Map<string, string>();
  for (const [rawName, value] of scanned) {
    const name = ALIASES.get(rawName.toLowerCase());
    if (name === undefined) continue; // a parameter of a later version: ignored
    if (params.has(name)) return fail('malformed', `parameter ${name} given twice`, params);
    params.set(name, value);
  }
  for (const [name, value] of params) {
    const problem = valueProblem(name, value);
    if (problem) return fail('bad-value', problem, params);
  }
  return { ok: true, message: { method: method as IifMethod, params } };
}

/** `METHOD: a=1;b=2`. */
export function formatIif(method: IifMethod, params: ReadonlyArray<readonly [string, string | number]>): string {
  return `${method}: ${params.map(([k, v]) => `${k}=${v}`).join(';')}`;
}

/** Pairs `name=value` separated by `;`, `,` or white space; a message of problems instead. */
function scanParameters(body: string): Array<[string, string]> | string {
  const out: Array<[string, string]> = [];
  const n = body.length;
  let i = 0;
  const isSep = (c: string) => c === ';' || c === ',' || c === ' ' || c === '\t' || c === '\r' || c === '\n';
  while (i < n) {
    while (i < n && isSep(body[i]!)) i++;
    if (i >= n) break;
    const nameStart = i;
    while (i < n && isNameChar(body.charCodeAt(i))) i++;
    const name = body.slice(nameStart, i);
    while (i < n && (body[i] === ' ' || body[i] === '\t')) i++;
    if (name === '' || body[i] !== '=') return `expected name=value at character ${nameStart + 1} of the parameters`;
    i++;
    while (i < n && (body[i] === ' ' || body[i] === '\t')) i++;
    const valueStart = i;
    while (i < n && !isSep(body[i]!) && body[i] !== '=') i++;
    if (body[i] === '=') return `a value may not contain "=" (character ${i + 1} of the parameters)`;
    const value = body.slice(valueStart, i);
    if (value === '') return `parameter ${name} has no value`;
    if (out.length === MAX_PARAMETERS) return `more than ${MAX_PARAMETERS} parameters`;
    out.push([name, value]);
  }
  return out;
}

/** A letter, digit or underscore. */
function isNameChar(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
}

function valueProblem(name: string, value: string): string | null {
  if (value.length > MAX_VALUE_CHARS) return `${name} is longer than ${MAX_VALUE_CHARS} characters`;
  switch (name) {
    case 'id':
      return ID.test(value) ? null : `id ${JSON.stringify(value)}: letters, digits and . _ : @ + - only`;
    case 'caller1':
    case 'caller2':
    case 'user1':
    case 'user2':
      return NUMBER.test(value) ? null : `${name} ${JSON.stringify(value)} is not a number to dial`;
    case 'duration':
    case 'result':
    case 'cause':
      return INTEGER.test(value) ? null : `${name} ${JSON.stringify(value)} is not a whole number`;
    default:
      return /^[A-Za-z0-9._-]+$/.test(value) ? null : `${name} ${JSON.stringify(value)} has characters outside letters, digits and . _ -`;
  }
}

/** The id of a message that failed elsewhere, when one can be read (for an answer naming it). */
function idOf(body: string): string | undefined {
  const m = /(?:^|[;,\s])(?:id|index|callid|seq)\s*=\s*([A-Za-z0-9._:@+-]{1,64})(?=$|[;,\s])/i.exec(body.slice(0, MAX_DATAGRAM_BYTES));
  return m ? m[1] : undefined;
}

/** The parameters of a REQUEST, checked: the numbers to call and the cap on talk time. */
export interface CallBackRequest {
  id: string;
  caller1?: string;
  user1: string;
  caller2?: string;
  user2: string;
  /** Seconds; 0 = no cap of its own. */
  maxDurationS: number;
}

/** The request a REQUEST asks for, or what is missing from it. */
export function callBackRequest(m: IifMessage): { ok: true; request: CallBackRequest } | { ok: false; missing: string } {
  const p = m.params;
  const id = p.get('id');
  const user1 = p.get('user1');
  const user2 = p.get('user2');
  if (id === undefined) return { ok: false, missing: 'id' };
  if (user1 === undefined) return { ok: false, missing: 'user1' };
  if (user2 === undefined) return { ok: false, missing: 'user2' };
  const request: CallBackRequest = { id, user1, user2, maxDurationS: Number(p.get('duration') ?? '0') };
  const caller1 = p.get('caller1');
  const caller2 = p.get('caller2');
  if (caller1 !== undefined) request.caller1 = caller1;
  if (caller2 !== undefined) request.caller2 = caller2;
  return { ok: true, request };
}

/** ACK `result` values (0 = accepted); each goes with its `reason` word. */
export const ACK_RESULTS = {
  accepted: 0,
  'bad-request': 1,
  'unknown-number': 2,
  'limit-reached': 3,
  'duplicate-id': 4,
  unavailable: 5,
  'unknown-id': 6,
} as const;

export type AckReason = Exclude<keyof typeof ACK_RESULTS, 'accepted'>;

/**
 * RESPONSE `result` values: 0 when user1 and user2 were bridged (whatever the talk time), else
 * why not. `cause` (Q.850) says more: 17 busy, 19 no answer, 20 absent, 21 rejected, ...
 */
export const RESPONSE_RESULTS = {
  bridged: 0,
  'user1-failed': 1,
  'user2-failed': 2,
  cancelled: 3,
  'server-stopped': 4,
} as const;

export type ResponseOutcome = keyof typeof RESPONSE_RESULTS;
