import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequest, Headers } from '../../../lib/sip/message.js';
import {
  cseqMethod,
  cseqNumber,
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
