/**
 * The dial plan: which rule a dialled number matches, and the number then sent to the trunk.
 *
 * A `match` made only of digits, `*`, `#` and `+` is a prefix. Anything else is a pattern for the
 * whole number: X any digit, Z 1-9, N 2-9 (any case), `[1-5,8]` a set of characters (ranges of
 * digits, commas optional: `[15-7]` is 1, 5, 6, 7), other digits, `*`, `#`, `+` themselves, and a
 * final `.` one or more characters of anything.
 */
import type { DialRule } from './config.js';

/** A rule that matched, and the number to dial on its trunk (stripped, then prepended). */
export interface DialMatch {
  rule: DialRule;
  analysed: string;
}

const PREFIX = /^[0-9*#+]+$/;
const LITERAL = /^[0-9*#+]$/;
const LETTERS: Record<string, string> = { X: '[0-9]', Z: '[1-9]', N: '[2-9]' };
const ACCEPTED = 'a prefix (digits, *, #, +) or a pattern of digits, *, #, +, X (any digit), Z (1-9), N (2-9), [sets] such as [1-5,8] and a final "." (one or more of anything)';

/** Why `match` is not a prefix or a valid pattern, or null. */
export function patternProblem(match: string): string | null {
  const compiled = compile(match);
  return typeof compiled === 'string' ? compiled : null;
}

export class DialPlan {
  private readonly compiled: ReadonlyArray<{ rule: DialRule; regex: RegExp }>;

  /** Throws when a rule's `match` is invalid (the configuration loader refuses those first). */
  constructor(rules: readonly DialRule[]) {
    this.compiled = rules.map((rule) => {
      const regex = compile(rule.match);
      if (typeof regex === 'string') throw new Error(`dial plan rule at line ${rule.line} (match ${JSON.stringify(rule.match)}): ${regex}`);
      return { rule, regex };
    });
  }

  /** The first rule, in order, that matches `number` (already normalised) and leaves something to dial; null when none. */
  match(number: string): DialMatch | null {
    for (const { rule, regex } of this.compiled) {
      if (rule.strip > number.length || !regex.test(number)) continue;
      const analysed = rule.prepend + number.slice(rule.strip);
      // An empty number cannot be sent to a trunk: the rule does not apply.
      if (analysed !== '') return { rule, analysed };
    }
    return null;
  }
}

/** The RegExp of `match`, or the problem with it. */
function compile(match: string): RegExp | string {
  if (match === '') return `the match is empty; it must be ${ACCEPTED}`;
  if (PREFIX.test(match)) return new RegExp(`^${escape(match)}`);
  let source = '';
  for (let i = 0; i < match.length; i++) {
    const c = match[i]!;
    const at = `${JSON.stringify(c)} at character ${i + 1}`;
    if (LITERAL.test(c)) source += escape(c);
    else if (LETTERS[c.toUpperCase()] !== undefined) source += LETTERS[c.toUpperCase()];
    else if (c === '.') {
      if (i !== match.length - 1) return `${at} (one or more of anything) may only end the pattern`;
      source += '.+';
    } else if (c === '[') {
      const end = match.indexOf(']', i + 1);
      if (end < 0) return `${at} opens a set that is not closed with "]"`;
      const set = compileSet(match.slice(i + 1, end));
      if ('problem' in set) return `the set at character ${i + 1} ${set.problem}`;
      source += set.regex;
      i = end;
    } else if (c === ']') return `${at} closes a set that was not opened with "["`;
    else if (/[A-Za-z]/.test(c)) return `${at} is not a pattern letter (X any digit, Z 1-9, N 2-9)`;
    else return `${at} is not allowed; a match is ${ACCEPTED}`;
  }
  return new RegExp(`^${source}$`);
}

/** The RegExp character class of the inside of `[...]`, or the problem with it. */
function compileSet(inside: string): { regex: string } | { problem: string } {
  let chars = '';
  for (let i = 0; i < inside.length; i++) {
    const c = inside[i]!;
    if (c === ',') continue;
    if (!LITERAL.test(c)) return { problem: `has ${JSON.stringify(c)}; a set holds digits, *, #, + and ranges such as 1-5, separated by commas or not` };
    if (inside[i + 1] !== '-') {
      chars += c;
      continue;
    }
    const to = inside[i + 2];
    if (!/[0-9]/.test(c) || to === undefined || !/[0-9]/.test(to)) return { problem: `has a range "${inside.slice(i, i + 3)}" that is not from one digit to another` };
    if (to < c) return { problem: `has a range "${c}-${to}" that goes backwards; write "${to}-${c}"` };
    for (let d = Number(c); d <= Number(to); d++) chars += String(d);
    i += 2;
  }
  if (chars === '') return { problem: 'is empty' };
  return { regex: `[${escapeInSet(chars)}]` };
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function escapeInSet(chars: string): string {
  return chars.replace(/[\]\\^-]/g, '\\$&');
}
