import { test } from 'node:test';
import assert from 'node:assert/strict';
import { contactTarget } from '../../lib/pbx/contact-target.js';
import { bindingTargets } from '../../lib/pbx/legs/fork-target.js';
import type { Binding } from '../../lib/pbx/registrar.js';
import { parseUri } from '../../lib/sip/uri.js';

function binding(over: Partial<Binding> = {}): Binding {
  const contact = over.contact ?? 'sip:101@10.0.0.9:5062';
  return {
    aor: '101',
    contact,
    contactHeader: `<${contact}>`,
    uri: parseUri(contact)!,
    expiresAt: Date.now() + 60_000,
    callId: 'c',
    cseq: 1,
    transport: 'udp',
    sourceAddress: '192.0.2.10',
    sourcePort: 5060,
    updatedAt: Date.now(),
    ...over,
  };
}

test('a binding with Path is reached at the first Path URI (an address over UDP), with the Path as route', () => {
  const b = binding({ path: ['<sip:198.51.100.7:5070;lr>', '<sip:edge.example;lr>'] });
  assert.deepEqual(contactTarget(b), { transport: 'udp', address: '198.51.100.7', port: 5070 });
  assert.deepEqual(contactTarget(binding({ path: ['<sip:[2001:db8::7];lr>'] })), { transport: 'udp', address: '2001:db8::7', port: 5060 });
  const [t] = bindingTargets([b]);
  assert.equal(t!.requestUri, 'sip:101@10.0.0.9:5062', 'the Request-URI stays the contact');
  assert.deepEqual(t!.route, b.path);
});

test('a first Path URI the server cannot send to by itself falls back to the flow the REGISTER came over', () => {
  const flow = { transport: 'udp', address: '192.0.2.10', port: 5060 };
  assert.deepEqual(contactTarget(binding({ path: ['<sip:proxy.example;lr>'] })), flow, 'a host name: no DNS lookups');
  assert.deepEqual(contactTarget(binding({ path: ['<sip:198.51.100.7;lr;transport=tcp>'] })), flow, 'another transport: no connections opened');
  assert.deepEqual(contactTarget(binding({ path: ['<sips:198.51.100.7;lr>'] })), flow);
  const tcp = binding({ transport: 'tcp', connectionId: 7, path: ['<sip:198.51.100.7;lr;transport=tcp>'] });
  assert.deepEqual(contactTarget(tcp), { transport: 'tcp', address: '192.0.2.10', port: 5060, connectionId: 7 }, 'over TCP: the proxy\'s own connection');
});

test('without Path nothing changes: a private contact is reached through its flow, no route', () => {
  const b = binding();
  assert.deepEqual(contactTarget(b), { transport: 'udp', address: '192.0.2.10', port: 5060 });
  assert.equal(bindingTargets([b])[0]!.route, undefined);
  assert.deepEqual(contactTarget(binding({ path: [] })), { transport: 'udp', address: '192.0.2.10', port: 5060 });
});
