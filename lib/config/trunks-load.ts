/**
 * The `trunks:`, `dialplan:` and `classes:` sections of the configuration file: lists and
 * mappings of entries rather than key tables, so they are read here and not through SCHEMA.
 * Every problem goes through the loader's `fail` (file:line:column, the key, what was found and
 * what is accepted); every value returned has its defaults applied.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { isMap, isScalar, isSeq, type Node, type Pair } from 'yaml';
import { validateExtensionNumber } from '../pbx/extensions.js';
import type { DialClass, DialRule, DidTarget, TrunkConfig } from '../trunks/config.js';
import { patternProblem } from '../trunks/dialplan.js';
import { addressEntryProblem } from './address-entry.js';
import type { WholeSection } from './schema.js';

type Located = { range?: [number, number, number] | null } | null | undefined;
export type Fail = (node: Located, problem: string) => never;

export interface SectionContext {
  fail: Fail;
  /** 1-based line where a node starts. */
  lineOf: (node: Located) => number;
  /** Folder a relative `passwordFile` is read from: the configuration file's. */
  baseDir: string;
}

export interface TrunkSections {
  trunks: TrunkConfig[];
  dialplan: DialRule[];
  classes: Record<string, DialClass>;
}

const NAME = /^[A-Za-z0-9._-]{1,32}$/;
const CLASS_NAME = /^[a-z0-9_-]{1,32}$/;
const NUMBER = /^\+?[0-9*#]{1,32}$/;
const PREPEND = /^[0-9*#+]{0,32}$/;
const CODEC = /^[A-Za-z0-9._-]{1,32}$/;
const ACCOUNT = /^[^\s\p{Cc}]{1,128}$/u;
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;
const URI_PARAM = "[A-Za-z0-9\\-_.!~*'%+`]+(=[A-Za-z0-9\\-_.!~*'()%\\[\\]/:&+$]+)?";
const URI_PARAMS = new RegExp(`^(${URI_PARAM}(;${URI_PARAM})*)?$`);
const IVR_FILE = /^[^/\\\0]{1,200}\.xml$/i;
const MAX_RING_ALL = 32;

const TRUNK_KEYS = [
  'name', 'kind', 'host', 'port', 'transport', 'username', 'password', 'passwordFile', 'authUsername', 'fromUser', 'fromDomain',
  'expires', 'allow', 'maxCalls', 'codecs', 'requestUriParams', 'telUri', 'callerId', 'options', 'stripPlus', 'did',
] as const;
const RULE_KEYS = ['match', 'strip', 'prepend', 'trunk', 'fallback', 'class'] as const;
const CLASS_KEYS = ['restricted'] as const;

/** Reads the three sections (a missing or empty one means none); classes and trunks first, as rules name them. */
export function loadTrunkSections(nodes: Partial<Record<WholeSection, Node | null>>, ctx: SectionContext): TrunkSections {
  const classes = loadClasses(nodes.classes ?? null, ctx);
  const names = new Map<string, number>();
  const trunks = listItems(nodes.trunks ?? null, 'trunks', 'a list of trunks (- name: ..., kind: register | peer, host: ...)', ctx).map((n, i) =>
    loadTrunk(n, i + 1, names, ctx),
  );
  const dialplan = listItems(nodes.dialplan ?? null, 'dialplan', 'a list of rules (- match: "9", strip: 1, trunk: NAME)', ctx).map((n, i) =>
    loadRule(n, i + 1, trunks, classes, ctx),
  );
  return { trunks, dialplan, classes };
}

// ---- trunks ----

/** One trunk; `names` holds the names taken so far, with their lines. */
function loadTrunk(node: Node, index: number, names: Map<string, number>, ctx: SectionContext): TrunkConfig {
  const first = new Entry(`trunks entry ${index}`, node, ctx);
  first.onlyKeys(TRUNK_KEYS);
  const name = first.required('name', 'a name of letters, digits, ".", "_", "-" (at most 32)', (v) => (NAME.test(v) ? null : 'it must be letters, digits, ".", "_", "-" (1 to 32)'));
  const taken = names.get(name);
  if (taken !== undefined) ctx.fail(first.value('name'), `trunk name "${name}" is used twice (first at line ${taken}); each trunk needs its own name`);
  names.set(name, ctx.lineOf(node));
  // Further messages name the trunk.
  const e = new Entry(`trunk "${name}"`, node, ctx);
  const kind = e.oneOf('kind', undefined, ['register', 'peer']) as TrunkConfig['kind'];
  if (kind === 'peer') checkNoAccount(e, ctx);
  const password = readPassword(e, ctx);
  const config: TrunkConfig = {
    name,
    kind,
    host: e.required('host', 'the host name or IP address of the provider or peer', hostProblem),
    port: e.int('port', 5060, 1, 65535),
    transport: e.oneOf('transport', 'udp', ['udp', 'tcp']) as TrunkConfig['transport'],
    username: e.text('username', '', accountProblem),
    password,
    authUsername: e.text('authUsername', '', accountProblem),
    fromUser: e.text('fromUser', '', accountProblem),
    fromDomain: e.text('fromDomain', '', (v) => (v === '' ? null : hostProblem(v))),
    expires: e.int('expires', 600, 10, 86400),
    allow: e.addresses('allow'),
    maxCalls: e.int('maxCalls', 0, 0, 100000),
    codecs: e.texts('codecs', (v) => (CODEC.test(v) ? null : 'an encoding name such as PCMA, PCMU, G722 (letters, digits, ".", "_", "-")')),
    requestUriParams: e.text('requestUriParams', kind === 'register' ? 'user=phone' : '', uriParamsProblem).replace(/^;/, ''),
    telUri: e.bool('telUri', false),
    callerId: e.text('callerId', 'extension', callerIdProblem),
    options: e.int('options', 0, 0, 3600),
    stripPlus: e.bool('stripPlus', true),
    did: loadDid(e, ctx),
  };
  if (config.options > 0 && config.options < 5) ctx.fail(e.value('options'), `${e.label}: "options" is ${config.options}; it must be 0 (no keep-alive) or between 5 and 3600 seconds`);
  if (kind === 'register') checkAccount(e, config, ctx);
  return config;
}

/**
 * `password`, or the content of `passwordFile` (its trailing newline removed); '' when neither is
 * given. Messages never show the password.
 */
function readPassword(e: Entry, ctx: SectionContext): string {
  if (e.has('password') && e.has('passwordFile')) ctx.fail(e.key('passwordFile'), `${e.label}: give either "password" or "passwordFile", not both`);
  if (e.has('password')) {
    const node = e.value('password');
    const password = textOf(node);
    if (password === undefined) return ctx.fail(node, `${e.label}: "password" must be text`);
    const problem = passwordProblem(password);
    if (problem) ctx.fail(node, `${e.label}: "password" ${problem}`);
    return password;
  }
  if (!e.has('passwordFile')) return '';
  const given = e.text('passwordFile', '', (v) => (v === '' ? 'it must be the path of a file holding the password' : null));
  const path = resolve(ctx.baseDir, given);
  let content: string;
  try {
    content = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    return ctx.fail(e.value('passwordFile'), `${e.label}: cannot read "passwordFile" ${path} (${code}); it must be a readable file holding the password (a relative path is read from the configuration file's folder)`);
  }
  const password = content.replace(/\r?\n$/, '');
  const problem = passwordProblem(password);
  if (problem) ctx.fail(e.value('passwordFile'), `${e.label}: the password in ${path} ${problem}`);
  return password;
}

/** A peer trunk has no account (checked before a passwordFile would be read). */
function checkNoAccount(e: Entry, ctx: SectionContext): void {
  for (const key of ['username', 'password', 'passwordFile'] as const) {
    if (e.has(key)) ctx.fail(e.key(key), `${e.label}: "${key}" is for kind register (an account at a provider); a peer trunk has none: remove it, or set kind: register`);
  }
}

/** A register trunk needs its account. */
function checkAccount(e: Entry, config: TrunkConfig, ctx: SectionContext): void {
  if (config.username === '') ctx.fail(e.node, `${e.label}: kind register needs "username" (the account at the provider)`);
  if (config.password === '') ctx.fail(e.node, `${e.label}: kind register needs "password" or "passwordFile" (the account's password)`);
}

/** `did:` dialled number (or `default`) -> extension, list of extensions, or `ivr:FILE.xml`. */
function loadDid(e: Entry, ctx: SectionContext): Record<string, DidTarget> {
  const node = e.value('did');
  const out: Record<string, DidTarget> = {};
  if (isEmpty(node)) return out;
  const hint = 'a mapping of dialled numbers (or "default") to an extension, a list of extensions, or "ivr:FILE.xml", e.g. { "+4930123456": "100", default: "ivr:menu.xml" }';
  if (!isMap(node)) return ctx.fail(node, `${e.label}: "did" must be ${hint}`);
  for (const pair of (node as unknown as { items: Pair[] }).items) {
    const key = textOf(pair.key as Node);
    if (key === undefined || (key !== 'default' && !NUMBER.test(key))) {
      ctx.fail(pair.key as Node, `${e.label}: "did" key ${JSON.stringify(key ?? null)} is not allowed; a key is a number (digits, *, #, an optional leading +; quote it when it has * or #) or "default"`);
    }
    if (out[key!] !== undefined) ctx.fail(pair.key as Node, `${e.label}: "did" number "${key!}" is given twice`);
    out[key!] = didTarget(pair.value as Node | null, `${e.label}: "did.${key!}"`, ctx);
  }
  return out;
}

function didTarget(node: Node | null, name: string, ctx: SectionContext): DidTarget {
  if (isSeq(node)) {
    const items = (node as unknown as { items: Node[] }).items;
    if (items.length === 0 || items.length > MAX_RING_ALL) {
      ctx.fail(node, `${name} lists ${items.length} extensions; a list to ring together has 1 to ${MAX_RING_ALL}`);
    }
    const numbers: string[] = [];
    for (const item of items) {
      const n = extensionNumber(item, name, ctx);
      if (numbers.includes(n)) ctx.fail(item, `${name} lists extension "${n}" twice`);
      numbers.push(n);
    }
    return { kind: 'extensions', numbers };
  }
  const text = textOf(node);
  if (text?.startsWith('ivr:')) {
    const file = text.slice(4);
    if (!IVR_FILE.test(file)) ctx.fail(node, `${name} is ${JSON.stringify(text)}; after "ivr:" comes an IVR file name in ivr.dir ending in .xml, without folders`);
    return { kind: 'ivr', file };
  }
  return { kind: 'extensions', numbers: [extensionNumber(node, name, ctx)] };
}

function extensionNumber(node: Node | null, name: string, ctx: SectionContext): string {
  const text = textOf(node);
  const problem = text === undefined ? 'it is not text' : validateExtensionNumber(text);
  if (problem) ctx.fail(node, `${name} must be an extension number, a list of them, or "ivr:FILE.xml": ${problem}`);
  return text!;
}

// ---- dial plan ----

function loadRule(node: Node, index: number, trunks: readonly TrunkConfig[], classes: Record<string, DialClass>, ctx: SectionContext): DialRule {
  const e = new Entry(`dialplan rule ${index}`, node, ctx);
  e.onlyKeys(RULE_KEYS);
  const names = trunks.map((t) => t.name);
  const known = names.length > 0 ? `the trunks are: ${names.join(', ')}` : 'no trunks are configured (trunks:)';
  const rule: DialRule = {
    match: e.required('match', 'a prefix such as "9" or a pattern such as "0[1-9]X."', patternProblem),
    strip: e.int('strip', 0, 0, 32),
    prepend: e.text('prepend', '', (v) => (PREPEND.test(v) ? null : 'digits, *, #, + (at most 32); quote it, e.g. "+49"')),
    trunk: e.required('trunk', 'the name of a trunk', (v) => (names.includes(v) ? null : `it names no trunk; ${known}`)),
    fallback: '',
    class: '',
    line: ctx.lineOf(node),
  };
  rule.fallback = e.text('fallback', '', (v) =>
    v === '' || (names.includes(v) && v !== rule.trunk) ? null : v === rule.trunk ? `it must be another trunk than "trunk" (${v})` : `it names no trunk; ${known}`,
  );
  const declared = Object.keys(classes);
  rule.class = e.text('class', '', (v) =>
    v === '' || Object.hasOwn(classes, v) ? null : `it is not declared under classes:${declared.length > 0 ? ` (declared: ${declared.join(', ')})` : ' (none are)'}`,
  );
  return rule;
}

// ---- classes ----

function loadClasses(node: Node | null, ctx: SectionContext): Record<string, DialClass> {
  // A Map, then Object.fromEntries: a class named __proto__ stays an ordinary key.
  const out = new Map<string, DialClass>();
  if (isEmpty(node)) return {};
  if (!isMap(node)) return ctx.fail(node, '"classes" must be a mapping of class names to settings, e.g. { international: { restricted: true } }');
  for (const pair of (node as unknown as { items: Pair[] }).items) {
    const name = textOf(pair.key as Node);
    if (name === undefined || !CLASS_NAME.test(name)) {
      ctx.fail(pair.key as Node, `class name ${JSON.stringify(name ?? null)} is not allowed; it must be lower-case letters, digits, "_", "-" (1 to 32)`);
    }
    if (out.has(name!)) ctx.fail(pair.key as Node, `class "${name!}" is declared twice`);
    const value = pair.value as Node | null;
    if (isEmpty(value)) {
      out.set(name!, { restricted: false });
      continue;
    }
    if (!isMap(value)) ctx.fail(value, `class "${name!}" must be a mapping such as { restricted: true }`);
    const e = new Entry(`class "${name!}"`, value!, ctx);
    e.onlyKeys(CLASS_KEYS);
    out.set(name!, { restricted: e.bool('restricted', false) });
  }
  return Object.fromEntries(out);
}

// ---- reading values ----

/** The keys of one mapping entry (a trunk, a rule, a class) and typed readers that apply defaults. */
class Entry {
  private readonly pairs = new Map<string, Pair>();

  constructor(
    readonly label: string,
    readonly node: Node,
    private readonly ctx: SectionContext,
  ) {
    if (!isMap(node)) ctx.fail(node, `${label} must be a mapping of keys (key: value)`);
    for (const pair of (node as unknown as { items: Pair[] }).items) {
      const key = isScalar(pair.key) ? pair.key.value : undefined;
      if (typeof key !== 'string') ctx.fail(pair.key as Node, `${label}: keys must be plain names`);
      this.pairs.set(key as string, pair);
    }
  }

  onlyKeys(known: readonly string[]): void {
    for (const [key, pair] of this.pairs) {
      if (!known.includes(key)) this.ctx.fail(pair.key as Node, `${this.label}: unknown key "${key}"; known keys: ${known.join(', ')}`);
    }
  }

  has(key: string): boolean {
    return this.pairs.has(key);
  }

  key(key: string): Node | null {
    return (this.pairs.get(key)?.key as Node | undefined) ?? null;
  }

  value(key: string): Node | null {
    return (this.pairs.get(key)?.value as Node | undefined) ?? null;
  }

  /** Text that must be given; `check` returns what is wrong with it, or null. */
  required(key: string, what: string, check: (v: string) => string | null): string {
    if (!this.has(key)) this.ctx.fail(this.node, `${this.label} has no "${key}"; it needs ${what}`);
    return this.text(key, '', check);
  }

  /** Text, or a plain YAML number taken as written (leading zeros and + kept); `def` when absent. */
  text(key: string, def: string, check: (v: string) => string | null = () => null): string {
    if (!this.has(key)) return def;
    const node = this.value(key);
    const v = textOf(node);
    if (v === undefined) this.ctx.fail(node, `${this.label}: "${key}" must be text`);
    const problem = check(v!);
    if (problem) this.ctx.fail(node, `${this.label}: "${key}" is ${JSON.stringify(v)}; ${problem}`);
    return v!;
  }

  int(key: string, def: number, min: number, max: number): number {
    if (!this.has(key)) return def;
    const node = this.value(key);
    const v = isScalar(node) ? node.value : undefined;
    if (typeof v !== 'number' || !Number.isInteger(v)) this.ctx.fail(node, `${this.label}: "${key}" must be a whole number (default ${def})`);
    if ((v as number) < min || (v as number) > max) this.ctx.fail(node, `${this.label}: "${key}" is ${v as number}; it must be between ${min} and ${max}`);
    return v as number;
  }

  bool(key: string, def: boolean): boolean {
    if (!this.has(key)) return def;
    const node = this.value(key);
    const v = isScalar(node) ? node.value : undefined;
    if (typeof v !== 'boolean') this.ctx.fail(node, `${this.label}: "${key}" must be true or false (default ${def})`);
    return v as boolean;
  }

  /** One of `values`; `def` undefined makes the key required. */
  oneOf(key: string, def: string | undefined, values: readonly string[]): string {
    if (!this.has(key) && def === undefined) this.ctx.fail(this.node, `${this.label} has no "${key}"; it must be one of: ${values.join(', ')}`);
    const v = this.text(key, def ?? '');
    if (!values.includes(v)) this.ctx.fail(this.value(key), `${this.label}: "${key}" is ${JSON.stringify(v)}; it must be one of: ${values.join(', ')}`);
    return v;
  }

  /** A list of text entries ([] when absent). */
  texts(key: string, check: (v: string) => string | null): string[] {
    if (!this.has(key)) return [];
    const node = this.value(key);
    if (isEmpty(node)) return [];
    if (!isSeq(node)) this.ctx.fail(node, `${this.label}: "${key}" must be a list, e.g. [PCMA, PCMU]`);
    return (node as unknown as { items: Node[] }).items.map((item) => {
      const v = textOf(item);
      const problem = v === undefined ? 'it must be text' : check(v);
      if (problem) this.ctx.fail(item, `${this.label}: "${key}" entry ${JSON.stringify(v ?? null)}: ${problem}`);
      return v!;
    });
  }

  /** IPs and CIDR ranges: a list, or one text value "a, b" ("" = none). */
  addresses(key: string): string[] {
    const node = this.value(key);
    if (isScalar(node) && typeof node.value === 'string') {
      const entries = node.value.split(/[\s,]+/).filter((s) => s !== '');
      for (const entry of entries) {
        const problem = addressEntryProblem(entry);
        if (problem) this.ctx.fail(node, `${this.label}: "${key}": ${problem}`);
      }
      return entries;
    }
    return this.texts(key, addressEntryProblem);
  }
}

/**
 * The text of a scalar; a plain number as it is written (YAML reads 0049 as 49 and +49 as 49,
 * which would change a dialled number). Undefined for anything else.
 */
function textOf(node: Node | null | undefined): string | undefined {
  if (!isScalar(node)) return undefined;
  if (typeof node.value === 'string') return node.value;
  if (typeof node.value === 'number') return node.source ?? String(node.value);
  return undefined;
}

function isEmpty(node: Node | null | undefined): boolean {
  return node === null || node === undefined || (isScalar(node) && node.value === null);
}

/** The items of a list section; [] for an empty one. */
function listItems(node: Node | null, section: string, what: string, ctx: SectionContext): Node[] {
  if (isEmpty(node)) return [];
  if (!isSeq(node)) return ctx.fail(node, `"${section}" must be ${what}`);
  return (node as unknown as { items: Node[] }).items;
}

// ---- checks of single values: null, or what is accepted ----

function hostProblem(v: string): string | null {
  if (isIP(v) !== 0 || HOST_NAME.test(v)) return null;
  if (/^\[.*\]$/.test(v) && isIP(v.slice(1, -1)) === 6) return 'write an IPv6 address without brackets';
  return 'it must be a host name (such as sip.example.com) or an IP address, without port or scheme';
}

function accountProblem(v: string): string | null {
  return ACCOUNT.test(v) ? null : 'it must be 1 to 128 characters without spaces or control characters';
}

function passwordProblem(v: string): string | null {
  if (v.length === 0) return 'is empty';
  if (v.length > 128) return 'is longer than 128 characters';
  return CONTROL_CHARS.test(v) ? 'contains control characters' : null;
}

function uriParamsProblem(v: string): string | null {
  return URI_PARAMS.test(v.replace(/^;/, '')) ? null : 'it must be URI parameters such as "user=phone" or "user=phone;npdi" (name[=value] separated by ";")';
}

function callerIdProblem(v: string): string | null {
  return v === 'extension' || v === 'anonymous' || NUMBER.test(v) ? null : 'it must be "extension", "anonymous" or a number (digits, *, #, an optional leading +)';
}
