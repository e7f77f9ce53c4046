import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node, type Pair } from 'yaml';
import { defaultConfig, defaultValue, SCHEMA, WHOLE_SECTIONS, type Config, type KeySpec, type WholeSection } from './schema.js';
import { loadTrunkSections } from './trunks-load.js';
import { storeConfigProblem } from '../store/mariadb-settings.js';
import { cdrFormatProblem } from '../cdr/formats.js';

/** A configuration problem, with where it is and what to do. */
export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly column: number,
    readonly problem: string,
  ) {
    super(`${file}:${line}:${column}: ${problem}`);
    this.name = 'ConfigError';
  }
}

/**
 * Reads a YAML configuration file, checks every key against the schema, and returns the
 * defaults overlaid with it. Any unknown key, wrong type or out-of-range value is an error that
 * names the file, line and column, and what is accepted there.
 */
export function loadConfigFile(file: string): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, 0, 0, `cannot read the configuration file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  return parseConfigText(text, file);
}

/** `file` names the text in messages; a relative `passwordFile` is read from its folder. */
export function parseConfigText(text: string, file = '<config>'): Config {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const at = (node: { range?: [number, number, number] | null } | null | undefined): [number, number] => {
    const offset = node?.range?.[0] ?? 0;
    const pos = lines.linePos(offset);
    return [pos.line, pos.col];
  };
  const fail = (node: { range?: [number, number, number] | null } | null | undefined, problem: string): never => {
    const [line, col] = at(node);
    throw new ConfigError(file, line, col, problem);
  };

  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const pos = lines.linePos(e.pos[0]);
    throw new ConfigError(file, pos.line, pos.col, `YAML syntax: ${e.message.split('\n')[0]}`);
  }
  const config = defaultConfig() as unknown as Record<string, Record<string, unknown>>;
  const root = doc.contents;
  if (root === null || (isScalar(root) && root.value === null)) return config as unknown as Config;
  if (!isMap(root)) fail(root as Node, 'the configuration must be a mapping of sections (sip:, registrar:, ...)');

  const wholeSections: Partial<Record<WholeSection, Node | null>> = {};
  for (const sectionPair of (root as { items: Pair[] }).items) {
    const sectionName = scalarKey(sectionPair, fail);
    if ((WHOLE_SECTIONS as readonly string[]).includes(sectionName)) {
      wholeSections[sectionName as WholeSection] = sectionPair.value as Node | null;
      continue;
    }
    const sectionSpec = (SCHEMA as Record<string, Record<string, KeySpec>>)[sectionName];
    if (!sectionSpec) {
      fail(sectionPair.key as Node, `unknown section "${sectionName}"; known sections: ${[...Object.keys(SCHEMA), ...WHOLE_SECTIONS].join(', ')}`);
    }
    const sectionNode = sectionPair.value as Node | null;
    if (sectionNode === null || (isScalar(sectionNode) && sectionNode.value === null)) continue;
    if (!isMap(sectionNode)) fail(sectionNode, `"${sectionName}" must be a mapping of keys`);
    for (const pair of (sectionNode as { items: Pair[] }).items) {
      const key = scalarKey(pair, fail);
      const spec = sectionSpec![key];
      if (!spec) {
        fail(pair.key as Node, `unknown key "${sectionName}.${key}"; known keys: ${Object.keys(sectionSpec!).join(', ')}`);
      }
      config[sectionName]![key] = checkValue(`${sectionName}.${key}`, spec!, pair.value as Node | null, fail);
    }
  }
  const result = config as unknown as Config;
  const baseDir = dirname(resolve(file));
  Object.assign(result, loadTrunkSections(wholeSections, { fail, lineOf: (node) => at(node)[0], baseDir }));
  crossCheck(result, doc, fail);
  resolveTlsFiles(result, baseDir);
  const passwordFile = result.store.mariadb.passwordFile;
  if (passwordFile !== '' && !isAbsolute(passwordFile)) result.store.mariadb.passwordFile = resolve(baseDir, passwordFile);
  return result;
}

/** TLS files named by a relative path are read from the configuration file's folder, wherever the server starts. */
function resolveTlsFiles(config: Config, baseDir: string): void {
  const tls = config.sip.tls;
  for (const key of ['cert', 'key', 'ca'] as const) if (tls[key] !== '' && !isAbsolute(tls[key])) tls[key] = resolve(baseDir, tls[key]);
}

type Fail = (node: { range?: [number, number, number] | null } | null | undefined, problem: string) => never;

function scalarKey(pair: Pair, fail: Fail): string {
  if (!isScalar(pair.key) || typeof pair.key.value !== 'string') fail(pair.key as Node, 'keys must be plain names');
  return (pair.key as { value: string }).value;
}

function checkValue(name: string, spec: KeySpec, node: Node | null, fail: Fail): unknown {
  if (spec.type === 'group') {
    const out = defaultValue(spec) as Record<string, unknown>;
    if (node === null || (isScalar(node) && node.value === null)) return out;
    if (!isMap(node)) fail(node, `"${name}" must be a mapping of keys: ${Object.keys(spec.keys).join(', ')}`);
    for (const pair of (node as unknown as { items: Pair[] }).items) {
      const key = scalarKey(pair, fail);
      const sub = spec.keys[key];
      if (!sub) fail(pair.key as Node, `unknown key "${name}.${key}"; known keys: ${Object.keys(spec.keys).join(', ')}`);
      out[key] = checkValue(`${name}.${key}`, sub!, pair.value as Node | null, fail);
    }
    return out;
  }
  if (spec.type === 'map') {
    if (node === null || (isScalar(node) && node.value === null)) return {};
    if (!isMap(node)) fail(node, `"${name}" must be a mapping: ${spec.hint}`);
    const out: Record<string, string> = {};
    for (const pair of (node as unknown as { items: Pair[] }).items) {
      const k = isScalar(pair.key) ? pair.key.value : undefined;
      const key = typeof k === 'number' && Number.isInteger(k) && k >= 0 ? String(k) : k;
      if (typeof key !== 'string' || !spec.keyPattern.test(key)) fail(pair.key as Node, `"${name}" key ${JSON.stringify(key)} is not allowed: ${spec.hint}`);
      const v = isScalar(pair.value) ? (pair.value as { value: unknown }).value : undefined;
      if (typeof v !== 'string' || !spec.valuePattern.test(v)) fail(pair.value as Node, `"${name}.${key as string}" must be ${spec.hint}`);
      out[key as string] = v as string;
    }
    return out;
  }
  if (spec.type === 'strings') {
    // A single value may be written as text: "127.0.0.1", "" (none) or "a, b".
    if (spec.scalarList && isScalar(node) && typeof node.value === 'string') {
      const entries = node.value.split(/[\s,]+/).filter((e) => e !== '');
      for (const e of entries) {
        const problem = spec.check?.(e);
        if (problem) fail(node, `"${name}": ${problem}`);
      }
      return entries;
    }
    if (!isSeq(node)) fail(node, `"${name}" must be a list of text values, e.g. [${spec.default.join(', ')}]`);
    return (node as unknown as { items: Node[] }).items.map((item) => {
      const v = isScalar(item) ? item.value : undefined;
      if (typeof v !== 'string' || v.length === 0) fail(item, `"${name}" entries must be non-empty text`);
      const problem = spec.check?.(v as string);
      if (problem) fail(item, `"${name}": ${problem}`);
      return v as string;
    });
  }
  if (spec.type === 'list') {
    if (!isSeq(node)) fail(node, `"${name}" must be a list, e.g. [${spec.default.join(', ')}]`);
    const out: string[] = [];
    for (const item of (node as unknown as { items: Node[] }).items) {
      const v = isScalar(item) ? item.value : undefined;
      if (typeof v !== 'string' || !spec.values.includes(v)) {
        fail(item, `"${name}" entries must be one of: ${spec.values.join(', ')}`);
      }
      out.push(v as string);
    }
    return out;
  }
  const value = isScalar(node) ? node.value : undefined;
  switch (spec.type) {
    case 'int':
      if (typeof value !== 'number' || !Number.isInteger(value)) fail(node, `"${name}" must be a whole number (default ${spec.default})`);
      if ((value as number) < spec.min || (value as number) > spec.max) {
        fail(node, `"${name}" is ${value as number}; it must be between ${spec.min} and ${spec.max}`);
      }
      return value;
    case 'bool':
      if (typeof value !== 'boolean') fail(node, `"${name}" must be true or false`);
      return value;
    case 'enum':
      if (typeof value !== 'string' || !spec.values.includes(value)) fail(node, `"${name}" must be one of: ${spec.values.join(', ')}`);
      return value;
    case 'string':
      if (typeof value !== 'string') fail(node, `"${name}" must be text (quote it if it looks like a number)`);
      if (spec.pattern && !spec.pattern.test(value as string)) fail(node, `"${name}": ${spec.patternHint ?? 'bad format'}`);
      return value;
  }
}

function crossCheck(config: Config, doc: ReturnType<typeof parseDocument>, fail: Fail): void {
  const nodeOf = (path: string[]) => doc.getIn(path, true) as Node | undefined;
  const r = config.registrar;
  if (r.minExpires > r.maxExpires) fail(nodeOf(['registrar', 'minExpires']), 'registrar.minExpires must not exceed registrar.maxExpires');
  if (r.defaultExpires < r.minExpires || r.defaultExpires > r.maxExpires) {
    fail(nodeOf(['registrar', 'defaultExpires']), 'registrar.defaultExpires must lie between minExpires and maxExpires');
  }
  if (config.sip.transports.length === 0) fail(nodeOf(['sip', 'transports']), 'sip.transports must name at least one transport');
  if (config.sip.transports.includes('tls') && (config.sip.tls.cert === '' || config.sip.tls.key === '')) {
    fail(
      nodeOf(['sip', 'transports']),
      'sip.transports includes tls: set sip.tls.cert and sip.tls.key to the certificate and private key files (PEM); `minisipserver tls self-signed --host NAME` makes a pair for a lab (docs/DEPLOY.md, "SIP over TLS")',
    );
  }
  if (config.auth.algorithms.length === 0) fail(nodeOf(['auth', 'algorithms']), 'auth.algorithms must name at least one algorithm');
  if (new Set(config.auth.algorithms).size !== config.auth.algorithms.length) {
    fail(nodeOf(['auth', 'algorithms']), 'auth.algorithms lists an algorithm twice');
  }
  if (config.sip.t2 < config.sip.t1) fail(nodeOf(['sip', 't2']), 'sip.t2 must be at least sip.t1');
  if (config.sip.workers > 1 && (config.sip.transports.length !== 1 || config.sip.transports[0] !== 'udp')) {
    fail(nodeOf(['sip', 'workers']), 'sip.workers above 1 serves UDP only: also set sip.transports: [udp] (a TCP connection lives in one process)');
  }
  if (config.ivr.timezone !== '' && !validTimeZone(config.ivr.timezone)) {
    fail(nodeOf(['ivr', 'timezone']), `ivr.timezone "${config.ivr.timezone}" is not a time zone this system knows; use an IANA name such as Europe/Paris, or leave it empty for local time`);
  }
  const o = config.overload;
  if (o.lowDelayMs >= o.highDelayMs) fail(nodeOf(['overload', 'lowDelayMs']), 'overload.lowDelayMs must be below overload.highDelayMs');
  if (o.lowCallsInSetup >= o.highCallsInSetup) fail(nodeOf(['overload', 'lowCallsInSetup']), 'overload.lowCallsInSetup must be below overload.highCallsInSetup');
  const m = config.media;
  if (Math.floor((m.portMax - m.portMin + 1) / config.sip.workers) < 4) {
    fail(nodeOf(['media', 'portMax']), 'the media port range must give each of the sip.workers processes at least 4 ports');
  }
  if (m.portMax - m.portMin < 3) {
    fail(nodeOf(['media', 'portMax']), 'media.portMax must be at least media.portMin + 3 (a stream needs an RTP and an RTCP port on each side)');
  }
  const cdrProblem = cdrFormatProblem(config.cdr.format);
  if (cdrProblem) fail(nodeOf(['cdr', 'format']), `cdr.format: ${cdrProblem}`);
  checkStore(config, nodeOf, fail);
}

function checkStore(config: Config, nodeOf: (path: string[]) => Node | undefined, fail: Fail): void {
  const problem = storeConfigProblem(config);
  if (problem) fail(nodeOf(['store', problem.key]) ?? nodeOf(['store']), problem.problem);
}

function validTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-GB', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}
