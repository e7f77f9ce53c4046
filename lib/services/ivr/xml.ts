/**
 * Reads an IVR-XML file (docs/IVR.md) into an IvrDocument, reporting every problem with the line
 * and column of the element it is about. The XML itself is read by fast-xml-parser; this file
 * checks the bytes before it (UTF-8 only, no DOCTYPE) and the IVR rules after it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { parseWav } from '../../media/endpoint/wav.js';
import {
  BUILTIN_VARIABLES,
  IVR_METHODS,
  MONITOR_DETECTIONS,
  type CallToAction,
  type CollectAction,
  type DigitMatch,
  type Finding,
  type IvrAction,
  type IvrDocument,
  type IvrMethod,
  type MonitorDetection,
  type SetAction,
  type SourcePosition,
  type Template,
  type TimeCheckAction,
  type TimePeriod,
} from './model.js';

/** Larger IVR files are refused by loadIvrFile (a real one is a few kB). */
export const MAX_IVR_FILE_BYTES = 8 * 1024 * 1024;
const MAX_PROMPT_BYTES = 64 * 1024 * 1024;
/** How many action names an "actions are: ..." message lists. */
const LISTED_ACTIONS = 20;

export interface CompileOptions {
  /** Folder of the prompt files; `<voice>x.wav</voice>` is `<promptsDir>/<language>/x.wav`, else `<promptsDir>/x.wav`. */
  promptsDir: string;
  language: string;
  /**
   * Reads a prompt file: its bytes, or undefined when there is no such file; throws for other
   * failures (the message is reported). Default: the file system, at most 64 MB.
   */
  readPrompt?: (file: string) => Uint8Array | undefined;
}

export interface CompileResult {
  /** Present only when there is no error (warnings allowed). */
  document?: IvrDocument;
  /** Sorted by line and column. */
  findings: Finding[];
}

/** Reads `file` (at most MAX_IVR_FILE_BYTES) and compiles it; a file that cannot be read is an error at 1:1. */
export function loadIvrFile(file: string, opts: CompileOptions): CompileResult {
  const read = readBounded(file, MAX_IVR_FILE_BYTES);
  if ('problem' in read) return { findings: [{ file, line: 1, col: 1, severity: 'error', message: read.problem }] };
  return compileIvr(file, read.bytes, opts);
}

export function compileIvr(file: string, bytes: Uint8Array, opts: CompileOptions): CompileResult {
  const findings = new FindingList(file);
  const root = readXml(bytes, findings);
  const document = root ? compileDocument(root, path.resolve(file), opts, findings) : undefined;
  const sorted = findings.sorted();
  return document && findings.errors === 0 ? { document, findings: sorted } : { findings: sorted };
}

// ---------------------------------------------------------------------------------------------
// Findings and positions

class FindingList {
  private readonly list: Finding[] = [];
  errors = 0;

  constructor(private readonly file: string) {}

  error(at: SourcePosition, message: string): void {
    this.errors++;
    this.list.push({ file: this.file, line: at.line, col: at.col, severity: 'error', message });
  }

  warning(at: SourcePosition, message: string): void {
    this.list.push({ file: this.file, line: at.line, col: at.col, severity: 'warning', message });
  }

  sorted(): Finding[] {
    return this.list.sort((a, b) => a.line - b.line || a.col - b.col);
  }
}

const START: SourcePosition = { line: 1, col: 1 };

/** Turns string indexes into 1-based line:column; a column counts characters (not UTF-16 units). */
class LineTable {
  private readonly lineStarts: number[] = [0];
  /** Indexes of the second half of each surrogate pair: those take no column of their own. */
  private readonly pairSeconds: number[] = [];

  constructor(text: string) {
    for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) this.lineStarts.push(i + 1);
    for (const m of text.matchAll(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g)) this.pairSeconds.push(m.index + 1);
  }

  position(index: number): SourcePosition {
    const line = countAtMost(this.lineStarts, index);
    const lineStart = this.lineStarts[line - 1]!;
    const pairs = countAtMost(this.pairSeconds, index - 1) - countAtMost(this.pairSeconds, lineStart - 1);
    return { line, col: index - lineStart + 1 - pairs };
  }

  /** The index of a line and UTF-16 column as fast-xml-parser's validator counts them. */
  index(line: number, unitCol: number): number {
    return (this.lineStarts[line - 1] ?? 0) + unitCol - 1;
  }
}

/** How many entries of the ascending `sorted` are <= value. */
function countAtMost(sorted: readonly number[], value: number): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (sorted[mid]! <= value) low = mid + 1;
    else high = mid;
  }
  return low;
}

// ---------------------------------------------------------------------------------------------
// Bytes -> text -> element tree

/** An element with lower-cased names, its direct text trimmed, and where it starts. */
interface XmlElement {
  name: string;
  at: SourcePosition;
  attributes: Map<string, string>;
  children: XmlElement[];
  text: string;
}

function readXml(bytes: Uint8Array, findings: FindingList): XmlElement | undefined {
  const text = decodeUtf8(bytes, findings);
  if (text === undefined) return undefined;
  const lines = new LineTable(text);
  if (text.trim() === '') {
    findings.error(START, 'the file is empty: an IVR-XML file holds one <mssxml> element');
    return undefined;
  }
  const declaration = findMarkupDeclaration(text);
  if (declaration !== undefined) {
    findings.error(lines.position(declaration), '<!DOCTYPE> and other <!...> declarations are not allowed: IVR-XML files have no document type and no entities');
    return undefined;
  }
  const syntax = XMLValidator.validate(text, { allowBooleanAttributes: false });
  if (syntax !== true) {
    const { line, col, msg } = syntax.err;
    const at = col === undefined ? { line: line || 1, col: 1 } : lines.position(lines.index(line, col));
    findings.error(at, `XML syntax: ${msg}`);
    return undefined;
  }
  let nodes: OrderedNode[];
  try {
    nodes = xmlParser().parse(text) as OrderedNode[];
  } catch (err) {
    findings.error(START, `XML syntax: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  }
  const top = nodes.map((n) => toElement(n, lines, findings)).filter((e): e is XmlElement => e !== undefined);
  // The validator misses a second root when the first is self-closing (<mssxml/><mssxml/>).
  if (top.length > 1) {
    findings.error(top[1]!.at, `only one root element is allowed; the first is <${top[0]!.name}> at line ${top[0]!.at.line}`);
    return undefined;
  }
  return top[0];
}

function xmlParser(): XMLParser {
  return new XMLParser({
    preserveOrder: true,
    ignoreAttributes: false,
    attributeNamePrefix: '',
    parseTagValue: false,
    parseAttributeValue: false,
    trimValues: false,
    captureMetaData: true,
    ignoreDeclaration: true,
    ignorePiTags: true,
    // DOCTYPEs are refused before parsing, so only the five XML entities and &#...; remain.
    processEntities: true,
    htmlEntities: false,
  });
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });
const UTF8_LENIENT = new TextDecoder('utf-8');

/** The text of a UTF-8 file (a UTF-8 BOM is dropped), or undefined after reporting why it is not one. */
function decodeUtf8(bytes: Uint8Array, findings: FindingList): string | undefined {
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    findings.error(START, 'the file is UTF-16 (it starts with a UTF-16 byte order mark); IVR-XML files must be UTF-8');
    return undefined;
  }
  checkDeclaredEncoding(UTF8_LENIENT.decode(bytes.subarray(0, 256)), findings);
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    const bad = firstInvalidUtf8(bytes);
    const before = UTF8_LENIENT.decode(bytes.subarray(0, bad));
    const hex = (bytes[bad] ?? 0).toString(16).toUpperCase().padStart(2, '0');
    findings.error(new LineTable(before).position(before.length), `not UTF-8: byte 0x${hex} does not begin a valid UTF-8 character; IVR-XML files must be saved as UTF-8`);
    return undefined;
  }
  const nul = text.indexOf('\u0000');
  if (nul !== -1) {
    findings.error(new LineTable(text).position(nul), 'NUL character: this is not UTF-8 text (UTF-16 without a byte order mark?); IVR-XML files must be UTF-8');
    return undefined;
  }
  return text;
}

function checkDeclaredEncoding(head: string, findings: FindingList): void {
  const declared = /^\uFEFF?<\?xml\s[^>]*?\bencoding\s*=\s*(["'])(.*?)\1/.exec(head)?.[2];
  if (declared !== undefined && !/^utf-?8$/i.test(declared)) {
    findings.error(START, `the XML declaration names encoding "${declared}"; IVR-XML files must be UTF-8 (write encoding="utf-8" and save the file as UTF-8)`);
  }
}

/** Index of the first byte that does not start a well-formed UTF-8 sequence (overlongs and surrogates included). */
function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const lead = b[i]!;
    if (lead < 0x80) {
      i++;
      continue;
    }
    const length = lead >= 0xc2 && lead <= 0xdf ? 2 : lead >= 0xe0 && lead <= 0xef ? 3 : lead >= 0xf0 && lead <= 0xf4 ? 4 : 0;
    if (length === 0) return i;
    let codePoint = lead & (0xff >> (length + 1));
    for (let k = 1; k < length; k++) {
      const next = b[i + k];
      if (next === undefined || (next & 0xc0) !== 0x80) return i;
      codePoint = (codePoint << 6) | (next & 0x3f);
    }
    const overlong = (length === 3 && codePoint < 0x800) || (length === 4 && codePoint < 0x10000);
    if (overlong || (codePoint >= 0xd800 && codePoint <= 0xdfff) || codePoint > 0x10ffff) return i;
    i += length;
  }
  return b.length;
}

/**
 * Index of the first `<!` that is neither a comment nor CDATA (a DOCTYPE, ENTITY...), if any.
 * fast-xml-parser would read a DOCTYPE's entities; refusing it keeps entity expansion out.
 */
function findMarkupDeclaration(text: string): number | undefined {
  let i = text.indexOf('<');
  while (i !== -1) {
    let resume: number;
    if (text.startsWith('<!--', i)) resume = after(text, '-->', i + 4);
    else if (text.startsWith('<![CDATA[', i)) resume = after(text, ']]>', i + 9);
    else if (text.startsWith('<!', i)) return i;
    else if (text.startsWith('<?', i)) resume = after(text, '?>', i + 2);
    else resume = afterTag(text, i + 1);
    if (resume < 0) return undefined; // unterminated: the syntax check reports it
    i = text.indexOf('<', resume);
  }
  return undefined;
}

function after(text: string, terminator: string, from: number): number {
  const at = text.indexOf(terminator, from);
  return at < 0 ? -1 : at + terminator.length;
}

/** The index after the `>` closing a tag, skipping quoted attribute values. */
function afterTag(text: string, from: number): number {
  let quote = '';
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === quote) quote = '';
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === '>') {
      return i + 1;
    }
  }
  return -1;
}

type OrderedNode = Record<string, unknown>;
const META = XMLParser.getMetaDataSymbol() as unknown as symbol;

/** Converts a preserveOrder node; undefined for text. Names are read in lower case (with a warning). */
function toElement(node: OrderedNode, lines: LineTable, findings: FindingList): XmlElement | undefined {
  const rawName = nodeName(node);
  if (rawName === undefined || rawName === '#text') return undefined;
  const meta = (node as Record<symbol, { startIndex?: number } | undefined>)[META];
  const at = lines.position(meta?.startIndex ?? 0);
  const name = lowerName(rawName, at, 'element', findings);
  const attributes = new Map<string, string>();
  const rawAttributes = node[':@'] as Record<string, unknown> | undefined;
  for (const rawAttr in rawAttributes) {
    const attr = lowerName(rawAttr, at, 'attribute', findings);
    if (attributes.has(attr)) findings.error(at, `attribute ${attr} is given twice (names are read in lower case)`);
    attributes.set(attr, String(rawAttributes[rawAttr]));
  }
  const children: XmlElement[] = [];
  let text = '';
  for (const child of (node[rawName] ?? []) as OrderedNode[]) {
    const childText = child['#text'];
    if (typeof childText === 'string') {
      text += childText;
      continue;
    }
    const element = toElement(child, lines, findings);
    if (element) children.push(element);
  }
  return { name, at, attributes, children, text: text.trim() };
}

/** The tag name of a preserveOrder node: its one key besides the attributes. */
function nodeName(node: OrderedNode): string | undefined {
  for (const key in node) if (key !== ':@') return key;
  return undefined;
}

function lowerName(raw: string, at: SourcePosition, kind: 'element' | 'attribute', findings: FindingList): string {
  const lower = raw.toLowerCase();
  if (lower !== raw) {
    const shown = kind === 'element' ? `<${raw}>` : `${raw}=`;
    const read = kind === 'element' ? `<${lower}>` : `${lower}=`;
    findings.warning(at, `${shown}: ${kind} names are lower-case in IVR-XML; read as ${read}`);
  }
  return lower;
}

// ---------------------------------------------------------------------------------------------
// Shapes: which attributes and children an element may have

interface Shape {
  attributes: readonly string[];
  required?: readonly string[];
  /** Allowed children with their [min, max] count. */
  children?: Readonly<Record<string, readonly [number, number]>>;
  text?: boolean;
}

const MANY = Number.POSITIVE_INFINITY;
const ACTION_ATTRIBUTES = ['name', 'method', 'nextaction'];
const TEXT_ONLY: Shape = { attributes: [], text: true };
const BRANCH: Shape = { attributes: ['nextaction'], required: ['nextaction'] };

const NAMED = ['name', 'method'];
const ACTION_SHAPES: Record<IvrMethod, Shape> = {
  play: { attributes: ACTION_ATTRIBUTES, required: NAMED, children: { voice: [1, MANY] } },
  collect: {
    attributes: [...ACTION_ATTRIBUTES, 'extension'],
    required: NAMED,
    children: {
      voice: [0, MANY],
      maxdigits: [0, 1],
      mindigits: [0, 1],
      timeout: [0, 1],
      interdigit: [0, 1],
      terminator: [0, 1],
      retries: [0, 1],
      match: [0, MANY],
      nomatch: [0, 1],
      noinput: [0, 1],
    },
  },
  goto: { attributes: ACTION_ATTRIBUTES, required: [...NAMED, 'nextaction'] },
  hangup: { attributes: NAMED, required: NAMED },
  set: { attributes: [...ACTION_ATTRIBUTES, 'var', 'value'], required: [...NAMED, 'var', 'value'] },
  timecheck: { attributes: ACTION_ATTRIBUTES, required: NAMED, children: { period: [0, MANY], default: [0, 1] } },
  callto: { attributes: ACTION_ATTRIBUTES, required: NAMED, children: { destination: [1, 1], 'monitor-events': [0, 1] } },
};

const SHAPES = {
  match: { attributes: ['digits', 'prefix', 'nextaction'], required: ['nextaction'] },
  period: { attributes: ['days', 'from', 'to', 'nextaction'], required: ['from', 'to', 'nextaction'] },
  monitorEvents: { attributes: [], children: { 'monitor-event': [1, MANY] } },
  monitorEvent: { attributes: ['detection', 'nextaction'], required: ['detection', 'nextaction'] },
} satisfies Record<string, Shape>;

/** Reports every attribute, child or text `el` may not have, and what it lacks. */
function checkShape(el: XmlElement, shape: Shape, label: string, findings: FindingList): void {
  for (const attr of el.attributes.keys()) {
    if (shape.attributes.includes(attr)) continue;
    findings.error(el.at, shape.attributes.length === 0 ? `${label} takes no attributes (found ${attr}=)` : `${label} has no attribute ${attr}=; allowed: ${shape.attributes.join(', ')}`);
  }
  for (const attr of shape.required ?? []) {
    if (!el.attributes.has(attr)) findings.error(el.at, `${label} needs the attribute ${attr}=`);
  }
  if (el.text !== '' && !shape.text) findings.error(el.at, `${label} takes no text (found "${abbreviate(el.text)}")`);
  checkChildren(el, shape.children ?? {}, label, findings);
}

function checkChildren(el: XmlElement, rules: NonNullable<Shape['children']>, label: string, findings: FindingList): void {
  const allowed = Object.keys(rules);
  if (el.children.length === 0 && allowed.length === 0) return;
  const first = new Map<string, XmlElement>();
  const counts = new Map<string, number>();
  for (const child of el.children) {
    const rule = rules[child.name];
    if (!rule) {
      findings.error(child.at, allowed.length === 0 ? `${label} takes no child elements (found <${child.name}>)` : `<${child.name}> is not allowed in ${label}; allowed: ${allowed.map((c) => `<${c}>`).join(', ')}`);
      continue;
    }
    const count = (counts.get(child.name) ?? 0) + 1;
    counts.set(child.name, count);
    if (count === 1) first.set(child.name, child);
    else if (count > rule[1]) findings.error(child.at, `${label} takes only one <${child.name}> (the first is at line ${first.get(child.name)!.at.line})`);
  }
  for (const [name, [min]] of Object.entries(rules)) {
    if ((counts.get(name) ?? 0) >= min) continue;
    findings.error(el.at, min === 1 && rules[name]![1] === 1 ? `${label} needs a <${name}>` : `${label} needs at least ${min === 1 ? 'one' : min} <${name}>`);
  }
}

function abbreviate(text: string): string {
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

function childrenNamed(el: XmlElement, name: string): XmlElement[] {
  return el.children.filter((c) => c.name === name);
}

function firstChild(el: XmlElement, name: string): XmlElement | undefined {
  return el.children.find((c) => c.name === name);
}

// ---------------------------------------------------------------------------------------------
// The document

interface Reference {
  target: string;
  at: SourcePosition;
}

/** What the compilation of one action needs from the rest of the file. */
interface Scope {
  findings: FindingList;
  variables: ReadonlySet<string>;
  references: Reference[];
  prompts: PromptCheck;
}

function compileDocument(root: XmlElement, file: string, opts: CompileOptions, findings: FindingList): IvrDocument | undefined {
  if (root.name !== 'mssxml') {
    findings.error(root.at, `the root element must be <mssxml>, not <${root.name}>`);
    return undefined;
  }
  checkRoot(root, findings);
  const elements = root.children.filter((c) => c.name === 'action');
  if (elements.length === 0) {
    findings.error(root.at, '<mssxml> has no <action>: an IVR needs at least one');
    return undefined;
  }
  const names = indexActionNames(elements, findings);
  const scope: Scope = { findings, variables: knownVariables(elements), references: [], prompts: new PromptCheck(opts) };
  const actions = new Map<string, IvrAction>();
  let allCompiled = true;
  elements.forEach((el, i) => {
    const action = compileAction(el, elements[i + 1]?.attributes.get('name'), scope);
    if (action && !actions.has(action.name)) actions.set(action.name, action);
    else allCompiled = false;
  });
  checkReferences(scope.references, names, findings);
  const start = elements[0]!.attributes.get('name') ?? '';
  if (allCompiled) warnUnreachable(actions, start, findings);
  return { file, start, actions, prompts: scope.prompts.used };
}

function checkRoot(root: XmlElement, findings: FindingList): void {
  checkShape(root, { attributes: ['version'], required: ['version'], children: { action: [0, MANY] } }, '<mssxml>', findings);
  const version = root.attributes.get('version');
  if (version !== undefined && version !== '1') findings.error(root.at, `version "${version}" is not supported: this server reads IVR-XML version 1`);
}

/** Action names in document order; reports missing and duplicate names. */
function indexActionNames(elements: XmlElement[], findings: FindingList): Map<string, SourcePosition> {
  const names = new Map<string, SourcePosition>();
  for (const el of elements) {
    const name = el.attributes.get('name');
    if (name === undefined) continue; // the shape check reports it
    if (name === '') findings.error(el.at, 'an action name cannot be empty');
    else if (names.has(name)) findings.error(el.at, `action name "${name}" is already used by the action at line ${names.get(name)!.line}`);
    else names.set(name, el.at);
  }
  return names;
}

/** The built-in variables and those some `set` action assigns. */
function knownVariables(elements: XmlElement[]): Set<string> {
  const variables = new Set<string>(BUILTIN_VARIABLES);
  for (const el of elements) {
    const variable = el.attributes.get('var');
    if (el.attributes.get('method') === 'set' && variable !== undefined && VARIABLE_NAME.test(variable)) variables.add(variable);
  }
  return variables;
}

function checkReferences(references: Reference[], names: Map<string, SourcePosition>, findings: FindingList): void {
  let listed: string | undefined;
  for (const ref of references) {
    if (names.has(ref.target)) continue;
    listed ??= listNames([...names.keys()]);
    findings.error(ref.at, `nextaction "${ref.target}" names no action; actions are: ${listed}`);
  }
}

function listNames(names: string[]): string {
  if (names.length === 0) return '(none)';
  const shown = names.slice(0, LISTED_ACTIONS).join(', ');
  return names.length > LISTED_ACTIONS ? `${shown} ... (${names.length - LISTED_ACTIONS} more)` : shown;
}

/** Every action the flow can go to from `action`. collect and callto only leave through their branches. */
function successors(action: IvrAction): string[] {
  switch (action.method) {
    case 'collect':
      return [...action.matches.map((m) => m.next), ...optional(action.noMatch), ...optional(action.noInput)];
    case 'callto':
      return Object.values(action.monitor);
    case 'timecheck':
      return [...optional(action.next), ...action.periods.map((p) => p.next), ...optional(action.fallback)];
    default:
      return optional(action.next);
  }
}

function optional(name: string | undefined): string[] {
  return name === undefined ? [] : [name];
}

function warnUnreachable(actions: ReadonlyMap<string, IvrAction>, start: string, findings: FindingList): void {
  const reached = new Set([start]);
  const queue = [start];
  while (queue.length > 0) {
    const action = actions.get(queue.pop()!);
    if (!action) continue;
    for (const next of successors(action)) {
      if (reached.has(next)) continue;
      reached.add(next);
      queue.push(next);
    }
  }
  for (const action of actions.values()) {
    if (!reached.has(action.name)) findings.warning(action.at, `action "${action.name}" is never reached from the first action "${start}"`);
  }
}

// ---------------------------------------------------------------------------------------------
// Actions

/** The action `el` describes, or undefined when it has errors (they are reported). */
function compileAction(el: XmlElement, following: string | undefined, scope: Scope): IvrAction | undefined {
  const { findings } = scope;
  const errorsBefore = findings.errors;
  const name = el.attributes.get('name');
  const method = el.attributes.get('method');
  if (method === undefined || !(IVR_METHODS as readonly string[]).includes(method)) {
    if (name === undefined) findings.error(el.at, '<action> needs the attribute name=');
    findings.error(el.at, methodProblem(method));
    return undefined;
  }
  const m = method as IvrMethod;
  checkShape(el, ACTION_SHAPES[m], `a ${m} action`, findings);
  const nextAttribute = el.attributes.get('nextaction');
  if (nextAttribute !== undefined && ACTION_SHAPES[m].attributes.includes('nextaction')) {
    reference(scope, nextAttribute, el.at);
    if (m in UNUSED_NEXTACTION) findings.warning(el.at, `nextaction= is never used by a ${m} action: ${UNUSED_NEXTACTION[m]}`);
  }
  const next = nextAction(m, nextAttribute, following);
  const base = { name: name ?? '', at: el.at, next };
  const action = compileMethod(m, el, base, scope);
  return action && findings.errors === errorsBefore ? action : undefined;
}

/** Methods that accept nextaction= (the format allows it on every action) but never continue there. */
const UNUSED_NEXTACTION: Partial<Record<IvrMethod, string>> = {
  collect: 'it continues through <match>, <nomatch> and <noinput> only',
  callto: 'a connected call ends the IVR, a monitored event continues at its <monitor-event>, any other failure releases the caller',
};

/**
 * The model's `next` of an action: nextaction=, else the following action. A callto gets no
 * fall-through (it never continues by itself: connected ends the IVR, unmonitored failures release).
 */
function nextAction(method: IvrMethod, attribute: string | undefined, following: string | undefined): string | undefined {
  switch (method) {
    case 'hangup':
      return undefined;
    case 'goto':
    case 'callto':
      return attribute;
    default:
      return attribute ?? following;
  }
}

function methodProblem(method: string | undefined): string {
  const list = IVR_METHODS.join(', ');
  if (method === undefined) return `<action> needs the attribute method= (one of: ${list})`;
  const hint = (IVR_METHODS as readonly string[]).includes(method.toLowerCase()) ? ' (method values are lower-case)' : '';
  return `method "${method}" is not one of: ${list}${hint}`;
}

// Actions are built property by property: a `{ ...base, more }` literal is several times slower
// in V8, which shows on files with tens of thousands of actions.
interface Base {
  name: string;
  at: SourcePosition;
  next: string | undefined;
}

function compileMethod(method: IvrMethod, el: XmlElement, base: Base, scope: Scope): IvrAction | undefined {
  switch (method) {
    case 'play':
      return { name: base.name, at: base.at, next: base.next, method, voices: compileVoices(el, scope) };
    case 'collect':
      return compileCollect(el, base, scope);
    case 'goto':
      return base.next === undefined ? undefined : { name: base.name, at: base.at, next: base.next, method };
    case 'hangup':
      return { name: base.name, at: base.at, next: undefined, method };
    case 'set':
      return compileSet(el, base, scope);
    case 'timecheck':
      return compileTimeCheck(el, base, scope);
    case 'callto':
      return compileCallTo(el, base, scope);
  }
}

function reference(scope: Scope, target: string, at: SourcePosition): string {
  scope.references.push({ target, at });
  return target;
}

/** The `nextaction` of a branch element (`<nomatch>`, `<default>`...) after checking its shape. */
function branch(el: XmlElement | undefined, scope: Scope): string | undefined {
  if (!el) return undefined;
  checkShape(el, BRANCH, `<${el.name}>`, scope.findings);
  const target = el.attributes.get('nextaction');
  return target === undefined ? undefined : reference(scope, target, el.at);
}

function compileVoices(el: XmlElement, scope: Scope): Template[] {
  const voices: Template[] = [];
  for (const voice of childrenNamed(el, 'voice')) {
    checkShape(voice, TEXT_ONLY, '<voice>', scope.findings);
    const template = compileVoice(voice, scope);
    if (template) voices.push(template);
  }
  return voices;
}

function compileVoice(voice: XmlElement, scope: Scope): Template | undefined {
  if (voice.text === '') {
    scope.findings.error(voice.at, '<voice> is empty: name a prompt file');
    return undefined;
  }
  const template = compileTemplate(voice.text, voice.at, '<voice>', scope);
  if (!template) return undefined;
  const folderProblem = promptNameProblem(renderForCheck(template));
  if (folderProblem) {
    scope.findings.error(voice.at, `<voice> "${voice.text}" ${folderProblem}`);
    return undefined;
  }
  if (template.every((part) => 'text' in part)) {
    const problem = scope.prompts.check(voice.text);
    if (problem) scope.findings.error(voice.at, problem);
  }
  return template;
}

// --- collect

const DTMF_KEYS = /^[0-9*#A-D]+$/;

function compileCollect(el: XmlElement, base: Base, scope: Scope): CollectAction | undefined {
  const maxDigits = integerChild(el, 'maxdigits', 1, 32, 1, scope);
  const minDigits = integerChild(el, 'mindigits', 1, 32, 1, scope);
  if (maxDigits !== undefined && minDigits !== undefined && minDigits > maxDigits) {
    scope.findings.error(firstChild(el, 'mindigits')!.at, `<mindigits> ${minDigits} is more than <maxdigits> ${maxDigits}`);
  }
  const timeout = secondsChild(el, 'timeout', 5, scope);
  const interDigit = secondsChild(el, 'interdigit', 3, scope);
  const terminator = terminatorChild(el, scope);
  const retries = integerChild(el, 'retries', 0, 10, 2, scope);
  const extension = booleanAttribute(el, 'extension', scope);
  const matches = compileMatches(el, { maxDigits, minDigits, terminator }, scope);
  const voices = compileVoices(el, scope);
  const noMatch = branch(firstChild(el, 'nomatch'), scope);
  const noInput = branch(firstChild(el, 'noinput'), scope);
  if (maxDigits === undefined || minDigits === undefined || timeout === undefined || interDigit === undefined) return undefined;
  if (terminator === undefined || retries === undefined || extension === undefined) return undefined;
  return {
    name: base.name,
    at: base.at,
    next: base.next,
    method: 'collect',
    voices,
    maxDigits,
    minDigits,
    timeoutMs: Math.round(timeout * 1000),
    interDigitMs: Math.round(interDigit * 1000),
    terminator,
    retries,
    matches,
    noMatch,
    noInput,
    extension,
  };
}

/** The whole number in `<name>`, its default when absent, undefined when wrong (reported). */
function integerChild(el: XmlElement, name: string, min: number, max: number, fallback: number, scope: Scope): number | undefined {
  const child = firstChild(el, name);
  if (!child) return fallback;
  checkShape(child, TEXT_ONLY, `<${name}>`, scope.findings);
  const value = /^\d{1,9}$/.test(child.text) ? Number(child.text) : NaN;
  if (value >= min && value <= max) return value;
  scope.findings.error(child.at, `<${name}> must be a whole number from ${min} to ${max}, not "${abbreviate(child.text)}"`);
  return undefined;
}

function secondsChild(el: XmlElement, name: string, fallback: number, scope: Scope): number | undefined {
  const child = firstChild(el, name);
  if (!child) return fallback;
  checkShape(child, TEXT_ONLY, `<${name}>`, scope.findings);
  const value = /^(\d{1,9}(\.\d*)?|\.\d+)$/.test(child.text) ? Number(child.text) : NaN;
  if (value > 0 && value <= 60) return value;
  scope.findings.error(child.at, `<${name}> must be a number of seconds above 0 and at most 60, not "${abbreviate(child.text)}"`);
  return undefined;
}

function terminatorChild(el: XmlElement, scope: Scope): string | undefined {
  const child = firstChild(el, 'terminator');
  if (!child) return '#';
  checkShape(child, TEXT_ONLY, '<terminator>', scope.findings);
  if (child.text === '' || (child.text.length === 1 && DTMF_KEYS.test(child.text))) return child.text;
  scope.findings.error(child.at, `<terminator> must be one key (0-9, *, #, A-D), or empty for none, not "${abbreviate(child.text)}"`);
  return undefined;
}

function booleanAttribute(el: XmlElement, name: string, scope: Scope): boolean | undefined {
  const value = el.attributes.get(name);
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  scope.findings.error(el.at, `${name}= must be "true" or "false", not "${abbreviate(value)}"`);
  return undefined;
}

interface DigitLimits {
  maxDigits: number | undefined;
  minDigits: number | undefined;
  terminator: string | undefined;
}

function compileMatches(el: XmlElement, limits: DigitLimits, scope: Scope): DigitMatch[] {
  const matches: DigitMatch[] = [];
  for (const matchEl of childrenNamed(el, 'match')) {
    const match = compileMatch(matchEl, limits, scope);
    if (!match) continue;
    if (!checkMatchOrder(match, matches, scope)) continue;
    matches.push(match);
  }
  return matches;
}

function compileMatch(el: XmlElement, limits: DigitLimits, scope: Scope): DigitMatch | undefined {
  const { findings } = scope;
  checkShape(el, SHAPES.match, '<match>', findings);
  const next = el.attributes.get('nextaction');
  if (next !== undefined) reference(scope, next, el.at);
  const digits = el.attributes.get('digits');
  const prefix = el.attributes.get('prefix');
  if ((digits === undefined) === (prefix === undefined)) {
    findings.error(el.at, '<match> needs exactly one of digits="..." (the whole input) or prefix="..." (its beginning)');
    return undefined;
  }
  const kind = digits !== undefined ? 'exact' : 'prefix';
  const value = (digits ?? prefix)!;
  const shown = `<match ${kind === 'exact' ? 'digits' : 'prefix'}="${abbreviate(value)}">`;
  const problem = matchValueProblem(value, kind, limits);
  if (problem) {
    findings.error(el.at, `${shown} ${problem}`);
    return undefined;
  }
  return next === undefined ? undefined : { kind, value, next, at: el.at };
}

function matchValueProblem(value: string, kind: DigitMatch['kind'], { maxDigits, minDigits, terminator }: DigitLimits): string | undefined {
  if (!DTMF_KEYS.test(value)) return 'must be keys 0-9, *, #, A-D';
  if (terminator && value.includes(terminator)) return `can never match: ${terminator} is the terminator key, which ends the input and is not collected`;
  if (maxDigits !== undefined && value.length > maxDigits) return `can never match: ${value.length} keys but <maxdigits> is ${maxDigits}`;
  if (kind === 'exact' && minDigits !== undefined && value.length < minDigits) return `can never match: ${value.length} key${value.length === 1 ? '' : 's'} but <mindigits> is ${minDigits}`;
  return undefined;
}

/** A match the ones before it already take is an error (duplicate) or a warning (shadowed by a prefix). */
function checkMatchOrder(match: DigitMatch, earlier: DigitMatch[], scope: Scope): boolean {
  const attribute = match.kind === 'exact' ? 'digits' : 'prefix';
  const duplicate = earlier.find((m) => m.kind === match.kind && m.value === match.value);
  if (duplicate) {
    scope.findings.error(match.at, `<match ${attribute}="${match.value}"> repeats the <match> at line ${duplicate.at.line}`);
    return false;
  }
  const shadow = earlier.find((m) => m.kind === 'prefix' && match.value.startsWith(m.value));
  if (shadow) scope.findings.warning(match.at, `<match ${attribute}="${match.value}"> is never chosen: the <match prefix="${shadow.value}"> at line ${shadow.at.line} comes first and fits the same keys`);
  return true;
}

// --- set

const VARIABLE_NAME = /^[a-z_][a-z0-9_]*$/;

function compileSet(el: XmlElement, base: Base, scope: Scope): SetAction | undefined {
  const variable = el.attributes.get('var');
  const value = el.attributes.get('value');
  if (variable === undefined || value === undefined) return undefined;
  let ok = true;
  if (!VARIABLE_NAME.test(variable)) {
    scope.findings.error(el.at, `var="${abbreviate(variable)}" is not a variable name: lower-case letters, digits and _, not starting with a digit`);
    ok = false;
  } else if ((BUILTIN_VARIABLES as readonly string[]).includes(variable)) {
    scope.findings.error(el.at, `var="${variable}": ${variable} is a built-in variable and cannot be set`);
    ok = false;
  }
  const template = compileTemplate(value, el.at, 'value=', scope);
  return ok && template ? { name: base.name, at: base.at, next: base.next, method: 'set', variable, value: template } : undefined;
}

// --- timecheck

function compileTimeCheck(el: XmlElement, base: Base, scope: Scope): TimeCheckAction | undefined {
  const periodElements = childrenNamed(el, 'period');
  const fallback = branch(firstChild(el, 'default'), scope);
  if (periodElements.length === 0) scope.findings.warning(el.at, `timecheck action "${base.name}" has no <period>: it always takes ${fallback === undefined ? 'the next action' : '<default>'}`);
  const periods = periodElements.map((p) => compilePeriod(p, scope));
  if (periods.some((p) => p === undefined)) return undefined;
  return { name: base.name, at: base.at, next: base.next, method: 'timecheck', periods: periods as TimePeriod[], fallback };
}

const EVERY_DAY: ReadonlySet<number> = new Set([1, 2, 3, 4, 5, 6, 7]);

function compilePeriod(el: XmlElement, scope: Scope): TimePeriod | undefined {
  const { findings } = scope;
  const errorsBefore = findings.errors;
  checkShape(el, SHAPES.period, '<period>', findings);
  const next = el.attributes.get('nextaction');
  if (next !== undefined) reference(scope, next, el.at);
  const daysText = el.attributes.get('days');
  const days = daysText === undefined ? EVERY_DAY : parseDays(daysText);
  if (typeof days === 'string') findings.error(el.at, `<period days="${abbreviate(daysText!)}">: ${days}`);
  const from = timeAttribute(el, 'from', findings);
  const to = timeAttribute(el, 'to', findings);
  if (from !== undefined && from === to) {
    findings.error(el.at, `<period> from and to are both ${el.attributes.get('from')}: the period is empty (a whole day is from="00:00" to="24:00")`);
  }
  if (findings.errors !== errorsBefore || typeof days === 'string' || from === undefined || to === undefined || next === undefined) return undefined;
  return { days, fromMinute: from, toMinute: to, next, at: el.at };
}

/** ISO weekdays from "1-5,7", or what is wrong with the text. */
function parseDays(text: string): Set<number> | string {
  const days = new Set<number>();
  for (const item of text.split(',')) {
    const range = /^\s*([1-7])(?:\s*-\s*([1-7]))?\s*$/.exec(item);
    if (!range) return 'days are ISO weekday numbers 1 (Monday) to 7 (Sunday), as a list of days and ranges such as "1-5,7"';
    const first = Number(range[1]);
    const last = range[2] === undefined ? first : Number(range[2]);
    if (last < first) return `the range ${first}-${last} goes backwards; write it as ${first === 7 ? '7' : `${first}-7`},${last === 1 ? '1' : `1-${last}`}`;
    for (let d = first; d <= last; d++) days.add(d);
  }
  return days;
}

/** Minutes after midnight of an HH:MM attribute (00:00..24:00); undefined when absent or wrong. */
function timeAttribute(el: XmlElement, name: string, findings: FindingList): number | undefined {
  const text = el.attributes.get(name);
  if (text === undefined) return undefined;
  const hm = /^(\d\d):(\d\d)$/.exec(text);
  const minutes = hm ? Number(hm[1]) * 60 + Number(hm[2]) : NaN;
  if (hm && Number(hm[2]) < 60 && minutes <= 24 * 60) return minutes;
  findings.error(el.at, `<period ${name}="${abbreviate(text)}">: a time is HH:MM from 00:00 to 24:00`);
  return undefined;
}

// --- callto

const DIALABLE = /^[0-9A-Za-z*#+]+$/;

function compileCallTo(el: XmlElement, base: Base, scope: Scope): CallToAction | undefined {
  const destination = compileDestination(firstChild(el, 'destination'), scope);
  const events = firstChild(el, 'monitor-events');
  const monitor = events ? compileMonitor(events, scope) : {};
  return destination && monitor ? { name: base.name, at: base.at, next: base.next, method: 'callto', destination, monitor } : undefined;
}

function compileDestination(el: XmlElement | undefined, scope: Scope): Template | undefined {
  if (!el) return undefined;
  checkShape(el, TEXT_ONLY, '<destination>', scope.findings);
  if (el.text === '') {
    scope.findings.error(el.at, '<destination> is empty: give the number to call');
    return undefined;
  }
  const template = compileTemplate(el.text, el.at, '<destination>', scope);
  if (!template) return undefined;
  if (template.some((part) => 'text' in part && !DIALABLE.test(part.text))) {
    scope.findings.error(el.at, `<destination> "${abbreviate(el.text)}" is not a number to call: only digits, letters, *, # and + (and \${variables})`);
    return undefined;
  }
  return template;
}

function compileMonitor(el: XmlElement, scope: Scope): CallToAction['monitor'] | undefined {
  const { findings } = scope;
  checkShape(el, SHAPES.monitorEvents, '<monitor-events>', findings);
  const monitor: Partial<Record<MonitorDetection, string>> = {};
  const firstAt = new Map<string, SourcePosition>();
  let ok = true;
  for (const event of childrenNamed(el, 'monitor-event')) {
    checkShape(event, SHAPES.monitorEvent, '<monitor-event>', findings);
    const detection = event.attributes.get('detection');
    const next = event.attributes.get('nextaction');
    if (next !== undefined) reference(scope, next, event.at);
    if (detection === undefined || next === undefined) {
      ok = false;
    } else if (!(MONITOR_DETECTIONS as readonly string[]).includes(detection)) {
      findings.error(event.at, `detection="${abbreviate(detection)}" is not one of: ${MONITOR_DETECTIONS.join(', ')}`);
      ok = false;
    } else if (firstAt.has(detection)) {
      findings.error(event.at, `detection="${detection}" is already monitored at line ${firstAt.get(detection)!.line}`);
      ok = false;
    } else {
      firstAt.set(detection, event.at);
      monitor[detection as MonitorDetection] = next;
    }
  }
  return ok ? monitor : undefined;
}

// ---------------------------------------------------------------------------------------------
// Templates and prompts

/** Parses `${name}` references; reports malformed ones and unknown variables. */
function compileTemplate(text: string, at: SourcePosition, what: string, scope: Scope): Template | undefined {
  const parsed = parseTemplate(text);
  if (typeof parsed === 'string') {
    scope.findings.error(at, `${what} "${abbreviate(text)}": ${parsed}`);
    return undefined;
  }
  const unknown = parsed.find((p): p is { variable: string } => 'variable' in p && !scope.variables.has(p.variable));
  if (unknown) {
    const assigned = [...scope.variables].filter((v) => !(BUILTIN_VARIABLES as readonly string[]).includes(v));
    const others = assigned.length === 0 ? 'no set action assigns any' : `set assigns ${assigned.join(', ')}`;
    scope.findings.error(at, `${what} uses the unknown variable \${${unknown.variable}}; known: ${BUILTIN_VARIABLES.join(', ')} (built in); ${others}`);
    return undefined;
  }
  return parsed;
}

/** The parts of a template, or what is malformed. A `$` not followed by `{` is plain text. */
function parseTemplate(text: string): Template | string {
  const parts: Array<{ text: string } | { variable: string }> = [];
  let literal = '';
  let i = 0;
  while (i < text.length) {
    const open = text.indexOf('${', i);
    if (open === -1) {
      literal += text.slice(i);
      break;
    }
    literal += text.slice(i, open);
    const close = text.indexOf('}', open + 2);
    if (close === -1) return '"${" is not closed by "}"';
    const name = text.slice(open + 2, close);
    if (!VARIABLE_NAME.test(name)) return `\${${abbreviate(name)}} is not a variable reference: names are lower-case letters, digits and _`;
    if (literal) parts.push({ text: literal });
    literal = '';
    parts.push({ variable: name });
    i = close + 1;
  }
  if (literal) parts.push({ text: literal });
  return parts;
}

/** The template with each variable as a plain placeholder, for the folder rule. */
function renderForCheck(template: Template): string {
  return template.map((part) => ('text' in part ? part.text : 'v')).join('');
}

/** Why a prompt name could leave the prompts folder, if it could. */
function promptNameProblem(name: string): string | undefined {
  if (name.includes('\u0000')) return 'contains a NUL character';
  if (path.isAbsolute(name) || /^[\\/]/.test(name) || /^[A-Za-z]:/.test(name)) return 'must be a name relative to the prompts folder, not an absolute path';
  if (name.split(/[\\/]/).includes('..')) return 'must stay inside the prompts folder (no ".." in the name)';
  return undefined;
}

/** Finds and checks prompt files once per name. */
class PromptCheck {
  readonly used = new Set<string>();
  private readonly results = new Map<string, string | undefined>();
  private readonly read: (file: string) => Uint8Array | undefined;

  constructor(private readonly opts: CompileOptions) {
    this.read = opts.readPrompt ?? readPromptFile;
  }

  /** What is wrong with the prompt `name`, if anything. */
  check(name: string): string | undefined {
    this.used.add(name);
    if (!this.results.has(name)) this.results.set(name, this.problem(name));
    return this.results.get(name);
  }

  private problem(name: string): string | undefined {
    const candidates = [path.join(this.opts.promptsDir, this.opts.language, name), path.join(this.opts.promptsDir, name)];
    for (const file of candidates) {
      let bytes: Uint8Array | undefined;
      try {
        bytes = this.read(file);
      } catch (err) {
        return `prompt "${name}" (${file}) cannot be read: ${err instanceof Error ? err.message : String(err)}`;
      }
      if (bytes === undefined) continue;
      const wav = parseWav(bytes);
      return 'problem' in wav ? `prompt "${name}" (${file}): ${wav.problem}` : undefined;
    }
    return `prompt "${name}" not found: looked for ${candidates.join(' and ')}`;
  }
}

function readPromptFile(file: string): Uint8Array | undefined {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
  if (!stat.isFile()) throw new Error('not a regular file');
  if (stat.size > MAX_PROMPT_BYTES) throw new Error(`larger than ${MAX_PROMPT_BYTES / 1024 / 1024} MB`);
  return fs.readFileSync(file);
}

/** The bytes of `file` if it holds at most `max` bytes; never reads more than max + 1. */
function readBounded(file: string, max: number): { bytes: Uint8Array } | { problem: string } {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    return { problem: `cannot read the file: ${err instanceof Error ? err.message : String(err)}` };
  }
  try {
    if (!fs.fstatSync(fd).isFile()) return { problem: 'cannot read the file: not a regular file' };
    const buffer = Buffer.alloc(Math.min(max + 1, Math.max(fs.fstatSync(fd).size + 1, 1)));
    let length = 0;
    while (length < buffer.length) {
      const n = fs.readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) break;
      length += n;
    }
    if (length > max) return { problem: `the file is larger than ${max / 1024 / 1024} MB; an IVR-XML file is a few kB` };
    return { bytes: buffer.subarray(0, length) };
  } catch (err) {
    return { problem: `cannot read the file: ${err instanceof Error ? err.message : String(err)}` };
  } finally {
    fs.closeSync(fd);
  }
}
