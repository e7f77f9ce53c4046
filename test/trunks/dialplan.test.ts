import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DialRule } from '../../lib/trunks/config.js';
import { DialPlan, patternProblem } from '../../lib/trunks/dialplan.js';

function rule(match: string, more: Partial<DialRule> = {}): DialRule {
  return { match, strip: 0, prepend: '', trunk: 'provider', fallback: '', class: '', line: 1, ...more };
}

/** The analysed number `number` gets from a plan of the one rule `match`, or null. */
function analyse(match: string, number: string, more: Partial<DialRule> = {}): string | null {
  return new DialPlan([rule(match, more)]).match(number)?.analysed ?? null;
}

test('a match of digits, *, #, + is a prefix', () => {
  assert.equal(analyse('9', '9'), '9');
  assert.equal(analyse('9', '90301234'), '90301234');
  assert.equal(analyse('9', '80301234'), null);
  assert.equal(analyse('00', '0044123'), '0044123');
  assert.equal(analyse('00', '0144123'), null);
  assert.equal(analyse('*7', '*71'), '*71');
  assert.equal(analyse('+49', '+4930'), '+4930', '+ is a literal, not a RegExp quantifier');
  assert.equal(analyse('+49', '4930'), null);
  assert.equal(analyse('#', '#1'), '#1');
});

test('a pattern matches the whole number: X, Z, N, sets and literals', () => {
  assert.equal(analyse('9XXX', '9123'), '9123');
  assert.equal(analyse('9XXX', '91234'), null, 'no more digits than the pattern has');
  assert.equal(analyse('9XXX', '912'), null);
  assert.equal(analyse('9xxx', '9123'), '9123', 'letters in any case');
  assert.equal(analyse('9ZX', '910'), '910');
  assert.equal(analyse('9ZX', '901'), null);
  assert.equal(analyse('9nX', '921'), '921');
  assert.equal(analyse('9NX', '911'), null);
  assert.equal(analyse('9X', '9*'), null, 'X is a digit only');
  assert.equal(analyse('*X#', '*5#'), '*5#');
  assert.equal(analyse('*X#', '55#'), null, '* is a literal');
  assert.equal(analyse('+X', '+1'), '+1');
});

test('a set holds digits, ranges and commas: [1-5,8] and [15-7]', () => {
  for (const d of '123458') assert.equal(analyse('9[1-5,8]', `9${d}`), `9${d}`, d);
  for (const d of '0679') assert.equal(analyse('9[1-5,8]', `9${d}`), null, d);
  for (const d of '1567') assert.equal(analyse('[15-7]X', `${d}0`), `${d}0`, d);
  for (const d of '0234') assert.equal(analyse('[15-7]X', `${d}0`), null, d);
  assert.equal(analyse('[*#]X', '#1'), '#1');
  assert.equal(analyse('[*#]X', '11'), null);
});

test('a final "." is one or more of anything', () => {
  assert.equal(analyse('900.', '9001'), '9001');
  assert.equal(analyse('900.', '900441234*#'), '900441234*#');
  assert.equal(analyse('900.', '900'), null, 'at least one more');
  assert.equal(analyse('0[1-9]X.', '0301234'), '0301234');
  assert.equal(analyse('0[1-9]X.', '030'), null);
  assert.equal(analyse('0[1-9]X.', '0031234'), null);
  assert.equal(analyse('.', '1'), '1');
});

test('strip, then prepend; a strip longer than the number does not match', () => {
  assert.equal(analyse('9', '90301234', { strip: 1 }), '0301234');
  assert.equal(analyse('9', '90301234', { strip: 1, prepend: '+4930' }), '+49300301234');
  assert.equal(analyse('0ZX.', '0301234', { strip: 1, prepend: '+49' }), '+49301234');
  assert.equal(analyse('9', '9', { strip: 2, prepend: '100' }), null, 'strip more than the length');
  assert.equal(analyse('9', '9', { strip: 1, prepend: '100' }), '100', 'everything stripped, the prepend dialled');
  assert.equal(analyse('9', '9', { strip: 1 }), null, 'nothing left to dial');
});

test('the first matching rule in order wins; a rule that does not apply lets the next one try', () => {
  const emergency = rule('911', { trunk: 'office' });
  const local = rule('9NXXXXXX', { strip: 1, trunk: 'provider', line: 5 });
  const any = rule('9', { strip: 1, trunk: 'fallback', line: 9 });
  const plan = new DialPlan([emergency, local, any]);
  assert.equal(plan.match('911')?.rule, emergency);
  assert.deepEqual(plan.match('92345678'), { rule: local, analysed: '2345678' });
  assert.deepEqual(plan.match('900'), { rule: any, analysed: '00' });
  assert.equal(plan.match('800'), null);
  assert.equal(new DialPlan([rule('99', { strip: 3 }), any]).match('99')?.rule, any);
  assert.equal(new DialPlan([]).match('9'), null);
});

test('patternProblem accepts prefixes and patterns and explains the rest', () => {
  for (const ok of ['9', '00', '*7', '+49', '#', '9XXX', '0[1-9]X.', '9[1-5,8]', '[15-7]', 'nzx', '.', '9[*#]']) {
    assert.equal(patternProblem(ok), null, ok);
  }
  assert.match(patternProblem('')!, /the match is empty/);
  assert.match(patternProblem('9[1-5')!, /"\[" at character 2 opens a set that is not closed with "\]"/);
  assert.match(patternProblem('91]')!, /"\]" at character 3 closes a set that was not opened/);
  assert.match(patternProblem('9.X')!, /"\." at character 2 .*may only end the pattern/);
  assert.match(patternProblem('9..')!, /"\." at character 2/);
  assert.match(patternProblem('9A')!, /"A" at character 2 is not a pattern letter \(X any digit, Z 1-9, N 2-9\)/);
  assert.match(patternProblem('9 1X')!, /" " at character 2 is not allowed/);
  assert.match(patternProblem('9-1X')!, /"-" at character 2 is not allowed/);
  assert.match(patternProblem('9[]')!, /the set at character 2 is empty/);
  assert.match(patternProblem('9[,]')!, /the set at character 2 is empty/);
  assert.match(patternProblem('9[5-1]')!, /range "5-1" that goes backwards; write "1-5"/);
  assert.match(patternProblem('9[1-]')!, /range "1-" that is not from one digit to another/);
  assert.match(patternProblem('9[*-5]')!, /range "\*-5"/);
  assert.match(patternProblem('9[X]')!, /the set at character 2 has "X"/);
  assert.match(patternProblem('9[1[2]')!, /has "\["/);
});

test('a plan refuses a rule whose pattern is invalid', () => {
  assert.throws(() => new DialPlan([rule('9A', { line: 7 })]), /line 7 \(match "9A"\): "A" at character 2/);
});
