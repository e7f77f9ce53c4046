import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerRouter } from '../../lib/sip/worker-router.js';
import { parseMessage } from '../../lib/sip/parser.js';
import type { SipMessage } from '../../lib/sip/message.js';

function msg(text: string): SipMessage {
  const r = parseMessage(Buffer.from(text.replace(/\n/g, '\r\n')));
  assert.ok(r.ok);
  return r.message;
}

const token = Buffer.alloc(16, 7);

test('a response belongs to the worker whose private port its top Via names', () => {
  const r = new WorkerRouter(0, token);
  r.peers = [40000, 40001];
  const res = (port: number) =>
    msg(`SIP/2.0 180 Ringing\nVia: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bKx\nFrom: <sip:a@h>;tag=1\nTo: <sip:b@h>;tag=2\nCall-ID: c\nCSeq: 1 INVITE\nContent-Length: 0\n\n`);
  assert.equal(r.ownerOf(res(40001)), 1);
  assert.equal(r.ownerOf(res(40000)), -1, 'ours');
  assert.equal(r.ownerOf(res(5060)), -1, 'nobody\'s: handled here (and found stray)');
});

test('an in-dialog request belongs to the worker its To tag names', () => {
  const r = new WorkerRouter(1, token);
  r.peers = [40000, 40001, 40002];
  const req = (tag: string) =>
    msg(`BYE sip:a@h SIP/2.0\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKy\nFrom: <sip:a@h>;tag=9\nTo: <sip:b@h>;tag=${tag}\nCall-ID: c\nCSeq: 2 BYE\nContent-Length: 0\n\n`);
  assert.equal(r.ownerOf(req(new WorkerRouter(2, token).tag('abc'))), 2);
  assert.equal(r.ownerOf(req(r.tag('abc'))), -1);
  assert.equal(r.ownerOf(req('w7xabc')), -1, 'no such worker');
  assert.equal(r.ownerOf(req('plain')), -1);
});

test('the envelope keeps the original source, and only the right token opens it', () => {
  const a = new WorkerRouter(0, token);
  const wrapped = a.wrap(Buffer.from('SIP/2.0 200 OK\r\n\r\n'), { transport: 'udp', address: '192.0.2.7', port: 5062 });
  const opened = new WorkerRouter(1, token).unwrap(wrapped);
  assert.deepEqual(opened?.source, { transport: 'udp', address: '192.0.2.7', port: 5062 });
  assert.equal(opened?.data.toString(), 'SIP/2.0 200 OK\r\n\r\n');
  assert.equal(new WorkerRouter(1, Buffer.alloc(16, 8)).unwrap(wrapped), null, 'another token');
  assert.equal(a.unwrap(Buffer.from('INVITE sip:x SIP/2.0\r\n\r\n')), null, 'a plain SIP message');
  assert.equal(a.unwrap(Buffer.concat([wrapped.subarray(0, 21), Buffer.from('nonsense')])), null);
});
