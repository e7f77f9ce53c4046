import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequest, Headers } from '../../../lib/sip/message.js';
import {
  cseqMethod,
  cseqNumber,
  detach,
  internMethod,
  fromTag,
  newBranch,
  newTag,
  tagOf,
  topVia,
  toTag,
  viaBranch,
  viaSentBy,
} from '../../../lib/sip/transaction/message-keys.js';

function msg(...pairs: [string, string][]) {
  const h = new Headers();
  for (const [n, v] of pairs) h.append(n, v);
  return createRequest('INVITE', 'sip:x@example.com', h);
}

test('topVia is the first element of the first Via line (compact form too), commas in quotes ignored', () => {
  assert.equal(topVia(msg(['v', 'SIP/2.0/UDP a.example.com;branch=z9hG4bK1 , SIP/2.0/TCP b'])), 'SIP/2.0/UDP a.example.com;branch=z9hG4bK1');
  assert.equal(topVia(msg(['Via', 'SIP/2.0/UDP a;x="1,2";branch=z9hG4bKq, SIP/2.0/UDP b'])), 'SIP/2.0/UDP a;x="1,2";branch=z9hG4bKq');
  assert.equal(topVia(msg(['To', '<sip:b@x>'])), undefined);
});

test('viaBranch and viaSentBy read the branch parameter and the lower-cased sent-by', () => {
  const via = 'SIP / 2.0 / UDP   [2001:DB8::1]:5070 ; rport ; BRANCH = z9hG4bKabc ;received=1.2.3.4';
  assert.equal(viaBranch(via), 'z9hG4bKabc');
  assert.equal(viaSentBy(via), '[2001:db8::1]:5070');
  assert.equal(viaSentBy('SIP/2.0/TCP Host.Example.com'), 'host.example.com');
  assert.equal(viaBranch('SIP/2.0/UDP h;rport'), undefined);
  assert.equal(viaSentBy('garbage'), undefined);
  assert.equal(viaSentBy('SIP/2.0/UDP'), undefined);
});

test('CSeq number and method', () => {
  const m = msg(['CSeq', ' 4711   INVITE ']);
  assert.equal(cseqNumber(m), '4711');
  assert.equal(cseqMethod(m), 'INVITE');
  assert.equal(cseqMethod(msg(['CSeq', '12'])), undefined);
  assert.equal(cseqNumber(msg()), undefined);
});

test('tags are read after the name-addr, not from URI parameters', () => {
  const m = msg(['From', '"A;tag=no" <sip:a@x;tag=uri>;TAG=real;x=1'], ['t', 'sip:b@x;tag=bare']);
  assert.equal(fromTag(m), 'real');
  assert.equal(toTag(m), 'bare');
  assert.equal(tagOf('<sip:b@x>'), undefined);
});

test('newBranch carries the magic cookie and is unique; newTag is unique', () => {
  const a = newBranch();
  assert.ok(a.startsWith('z9hG4bK'));
  assert.notEqual(a, newBranch());
  assert.notEqual(newTag(), newTag());
});

test('viaSentBy: edge cases of the bounds (no slash before the first semicolon, odd spacing, no sent-by)', () => {
  assert.equal(viaSentBy(';branch=z9hG4bK1/x'), undefined, 'a slash after the first ; is not the protocol');
  assert.equal(viaSentBy('SIP/2.0/UDP ;branch=z9hG4bK1'), undefined);
  assert.equal(viaSentBy('SIP/2.0/UDP\tA.B:1\t;x'), 'a.b:1');
  assert.equal(viaSentBy('SIP/2.0/UDP a.b\f;x'), 'a.b', 'trimmed like String.prototype.trim');
  assert.equal(viaSentBy(''), undefined);
  assert.equal(viaSentBy('/'), undefined);
});

test('detach and internMethod keep the content exactly', () => {
  const text = 'Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK0123456789abcdef\r\n' + 'x'.repeat(500);
  const branch = text.slice(text.indexOf('branch=') + 7, text.indexOf('\r'));
  for (const s of [branch, 'short', '', 'exactly13char', 'ünïcödé-✓-more-than-13', branch.toUpperCase()]) assert.equal(detach(s), s);
  assert.equal(internMethod('REG' + 'ISTER'), 'REGISTER');
  assert.equal(internMethod('FOO'), 'FOO');
  assert.equal(internMethod('X-VERY-LONG-EXTENSION-METHOD'), 'X-VERY-LONG-EXTENSION-METHOD');
});
