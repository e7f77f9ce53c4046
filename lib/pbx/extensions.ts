/**
 * Extensions (local users) as the `ext` subcommands and the server's first start see them.
 * Passwords are never stored: each record keeps the MD5 and SHA-256 HA1 (RFC 7616 §3.4.2) and
 * the realm they were computed with.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { computeHA1 } from '../sip/digest.js';
import type { ExtensionRecord, Store } from '../store/store.js';

export type ExtensionsErrorKind = 'invalid' | 'not-found' | 'file';

/** 'invalid': bad input from the operator; 'not-found': no such extension; 'file': unreadable import file. */
export class ExtensionsError extends Error {
  constructor(readonly kind: ExtensionsErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ExtensionsError';
  }
}

/** What `list` and `edit` show of an extension (never its HA1). */
export interface ExtensionSummary {
  number: string;
  displayName: string;
  /** Restricted call classes it may dial, sorted. */
  allow: string[];
}

export interface ImportResult {
  added: number;
  replaced: number;
  skipped: number;
  errors: Array<{ line: number; message: string }>;
}

const NUMBER_PATTERN = /^[0-9A-Za-z._+-]{1,32}$/;
const HAS_ALPHANUMERIC = /[0-9A-Za-z]/;
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;
const MAX_PASSWORD_LENGTH = 128;
const MAX_DISPLAY_NAME_LENGTH = 128;
const MAX_IMPORT_BYTES = 64 * 1024 * 1024;
const MAX_REPORTED_ERRORS = 1000;
const CLASS_NAME_PATTERN = /^[a-z0-9_-]{1,32}$/;
const MAX_CLASS_NAME_LENGTH = 32;
const MAX_ALLOWED_CLASSES = 16;

/** No 0/o/O, 1/l/I: a password read aloud or off paper is typed right the first time. */
const PASSWORD_ALPHABET = '23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ';
const GENERATED_PASSWORD_LENGTH = 12;
const DEFAULT_NUMBERS = ['100', '101', '102', '103', '104'];
const DEFAULTS_META_KEY = 'extensions.defaults_created';

/** Error text, or null when `n` is a valid extension number (the user part of its SIP URI). */
export function validateExtensionNumber(n: string): string | null {
  if (typeof n !== 'string' || n.length === 0) return 'the extension number is empty';
  if (n.length > 32) return 'the extension number is longer than 32 characters';
  if (!NUMBER_PATTERN.test(n)) return `"${printable(n)}" may only contain digits, letters and . _ + -`;
  if (!HAS_ALPHANUMERIC.test(n)) return `"${n}" needs at least one digit or letter`;
  return null;
}

/** Error text, or null when the password can be used. */
export function validatePassword(p: string): string | null {
  if (p.length === 0) return 'the password is empty';
  if (p.length > MAX_PASSWORD_LENGTH) return `the password is longer than ${MAX_PASSWORD_LENGTH} characters`;
  if (CONTROL_CHARS.test(p)) return 'the password contains control characters';
  return null;
}

function validateDisplayName(name: string): string | null {
  if (name.length > MAX_DISPLAY_NAME_LENGTH) return `the display name is longer than ${MAX_DISPLAY_NAME_LENGTH} characters`;
  if (CONTROL_CHARS.test(name)) return 'the display name contains control characters';
  return null;
}

/** Error text, or null when `name` can name a call class. */
export function validateClassName(name: string): string | null {
  if (name.length === 0) return 'a class name is empty';
  if (name.length > MAX_CLASS_NAME_LENGTH) return `class name "${printable(name)}" is longer than ${MAX_CLASS_NAME_LENGTH} characters`;
  if (!CLASS_NAME_PATTERN.test(name)) return `"${printable(name)}" is not a class name: use lower-case letters, digits, - and _`;
  return null;
}

/** The granted classes as stored: sorted and unique. Throws ExtensionsError('invalid'). */
export function normalizeAllow(classes: readonly string[]): string[] {
  for (const name of classes) {
    const problem = validateClassName(name);
    if (problem !== null) throw new ExtensionsError('invalid', problem);
  }
  const unique = [...new Set(classes)].sort();
  if (unique.length > MAX_ALLOWED_CLASSES) {
    throw new ExtensionsError('invalid', `${unique.length} classes given: an extension can be granted at most ${MAX_ALLOWED_CLASSES}`);
  }
  return unique;
}

function printable(text: string): string {
  return JSON.stringify(text.slice(0, 40)).slice(1, -1);
}

/** A random password of 12 characters from PASSWORD_ALPHABET, without modulo bias. */
export function generatePassword(): string {
  const limit = 256 - (256 % PASSWORD_ALPHABET.length);
  let out = '';
  while (out.length < GENERATED_PASSWORD_LENGTH) {
    for (const byte of randomBytes(32)) {
      if (byte < limit) out += PASSWORD_ALPHABET[byte % PASSWORD_ALPHABET.length];
      if (out.length === GENERATED_PASSWORD_LENGTH) break;
    }
  }
  return out;
}

export class Extensions {
  constructor(
    private readonly store: Store,
    private readonly realm: string,
  ) {}

  /** Throws ExtensionsError('invalid') on bad input, ExtensionExistsError if the number is taken. */
  add(
    number: string,
    opts: { password?: string; displayName?: string; allow?: readonly string[] },
  ): { number: string; password: string } {
    const password = opts.password ?? generatePassword();
    const displayName = opts.displayName ?? '';
    const problem = validateExtensionNumber(number) ?? validatePassword(password) ?? validateDisplayName(displayName);
    if (problem !== null) throw new ExtensionsError('invalid', problem);
    const allow = normalizeAllow(opts.allow ?? []);
    this.store.addExtension({ ...this.record(number, password, displayName, Date.now()), allow });
    return { number, password };
  }

  /**
   * Changes the display name and/or the granted classes (`allow` replaces the list; [] clears it).
   * Throws ExtensionsError('invalid') on bad input or nothing to change, ('not-found') for an
   * unknown number.
   */
  edit(number: string, changes: { displayName?: string; allow?: readonly string[] }): ExtensionSummary {
    const patch: Partial<ExtensionRecord> = {};
    if (changes.displayName !== undefined) {
      const problem = validateDisplayName(changes.displayName);
      if (problem !== null) throw new ExtensionsError('invalid', problem);
      patch.displayName = changes.displayName;
    }
    if (changes.allow !== undefined) patch.allow = normalizeAllow(changes.allow);
    if (Object.keys(patch).length === 0) throw new ExtensionsError('invalid', 'nothing to change: give a display name or the classes to allow');
    const rec = this.store.updateExtension(number, patch) ? this.store.getExtension(number) : undefined;
    if (rec === undefined) throw new ExtensionsError('not-found', `no extension ${number}`);
    return summary(rec);
  }

  remove(number: string): boolean {
    return this.store.removeExtension(number);
  }

  /** Returns the password set (generated if none given). Throws ExtensionsError('not-found' | 'invalid'). */
  setPassword(number: string, password?: string): string {
    const chosen = password ?? generatePassword();
    const problem = validatePassword(chosen);
    if (problem !== null) throw new ExtensionsError('invalid', problem);
    const ok = this.store.updateExtension(number, {
      realm: this.realm,
      ha1Md5: computeHA1('MD5', number, this.realm, chosen),
      ha1Sha256: computeHA1('SHA-256', number, this.realm, chosen),
    });
    if (!ok) throw new ExtensionsError('not-found', `no extension ${number}`);
    return chosen;
  }

  list(): ExtensionSummary[] {
    return this.store.listExtensions().map(summary);
  }

  /**
   * Imports "number:password[:Display Name]" lines (the users.txt of lab/sipp/gen-users.sh).
   * Lines carry no granted classes: new extensions get none, replaced ones keep theirs.
   * Blank lines and # comments are ignored; a bad line is reported with its 1-based number and
   * skipped; the good ones are written in one transaction. A password cannot contain ':' here.
   * Throws ExtensionsError('file') when the file cannot be read.
   */
  importFile(path: string, opts: { replace?: boolean } = {}): ImportResult {
    const text = readImportFile(path);
    const errors: ImportResult['errors'] = [];
    const report = (line: number, message: string) => {
      if (errors.length < MAX_REPORTED_ERRORS) errors.push({ line, message });
    };
    const seenOnLine = new Map<string, number>();
    const records: ExtensionRecord[] = [];
    const now = Date.now();
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const lineNumber = i + 1;
      const line = (i === 0 ? lines[i]!.replace(/^\uFEFF/, '') : lines[i]!).trim();
      if (line === '' || line.startsWith('#')) continue;
      const parsed = parseImportLine(line);
      if (typeof parsed === 'string') {
        report(lineNumber, parsed);
        continue;
      }
      const earlier = seenOnLine.get(parsed.number);
      if (earlier !== undefined) {
        report(lineNumber, `extension ${parsed.number} already appears on line ${earlier}`);
        continue;
      }
      seenOnLine.set(parsed.number, lineNumber);
      records.push(this.record(parsed.number, parsed.password, parsed.displayName, now));
    }
    const counts = this.store.importExtensions(records, opts.replace ? 'replace' : 'skip-existing');
    return { ...counts, errors };
  }

  /**
   * On the very first start (never done before, no extensions) creates 100..104 with random
   * passwords and returns them so they can be shown once. Otherwise null. Remembered in the
   * meta table, so deleting every extension later does not bring the defaults back. Servers
   * starting together on one empty store: the first to claim the marker creates them, the
   * others get null and read them from the store.
   */
  async ensureDefaults(): Promise<Array<{ number: string; password: string }> | null> {
    if (this.store.getMeta(DEFAULTS_META_KEY) !== undefined) return null;
    if (this.store.countExtensions() > 0) {
      this.store.setMeta(DEFAULTS_META_KEY, 'skipped');
      return null;
    }
    const now = Date.now();
    // Unique per claim: two servers may start in the same millisecond.
    const marker = `${now} ${randomBytes(6).toString('hex')}`;
    if ((await this.store.claimMeta(DEFAULTS_META_KEY, marker)) !== marker) return null;
    const created = DEFAULT_NUMBERS.map((number) => ({ number, password: generatePassword() }));
    this.store.importExtensions(
      created.map((c) => this.record(c.number, c.password, '', now)),
      'skip-existing',
    );
    return created;
  }

  /** Numbers whose HA1 was computed for another realm: they need a new password. */
  staleRealm(): string[] {
    return this.store
      .listExtensions()
      .filter((e) => e.realm !== this.realm)
      .map((e) => e.number);
  }

  private record(number: string, password: string, displayName: string, createdAt: number): ExtensionRecord {
    return {
      number,
      displayName,
      realm: this.realm,
      ha1Md5: computeHA1('MD5', number, this.realm, password),
      ha1Sha256: computeHA1('SHA-256', number, this.realm, password),
      createdAt,
      allow: [],
    };
  }
}

function summary(e: ExtensionRecord): ExtensionSummary {
  return { number: e.number, displayName: e.displayName, allow: e.allow };
}

function readImportFile(path: string): string {
  try {
    const size = statSync(path).size;
    if (size > MAX_IMPORT_BYTES) {
      throw new ExtensionsError('file', `${path}: ${size} bytes is more than the ${MAX_IMPORT_BYTES}-byte limit for an import file`);
    }
    return readFileSync(path, 'utf8');
  } catch (err) {
    if (err instanceof ExtensionsError) throw err;
    const reason = err instanceof Error && 'code' in err ? String((err as NodeJS.ErrnoException).code) : String(err);
    throw new ExtensionsError('file', `cannot read ${path} (${reason})`, { cause: err });
  }
}

/** One trimmed, non-comment line -> its fields, or the error text. */
function parseImportLine(line: string): { number: string; password: string; displayName: string } | string {
  const first = line.indexOf(':');
  if (first < 0) return 'expected "number:password" or "number:password:Display Name"';
  const number = line.slice(0, first).trim();
  const rest = line.slice(first + 1);
  const second = rest.indexOf(':');
  const password = second < 0 ? rest : rest.slice(0, second);
  const displayName = second < 0 ? '' : rest.slice(second + 1).trim();
  return validateExtensionNumber(number) ?? validatePassword(password) ?? validateDisplayName(displayName) ?? { number, password, displayName };
}
