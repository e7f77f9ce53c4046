import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requestFromLines } from '../helpers/request.js';
import type { SipRequest } from '../../lib/sip/message.js';
import { openSqliteStore } from '../../lib/store/sqlite.js';
import { BindingWriter } from '../../lib/store/binding-writer.js';
import { Registrar } from '../../lib/pbx/registrar.js';
import type { Authenticator } from '../../lib/pbx/authenticator.js';
import { silentLogger } from '../../lib/log.js';

function register(contact: string, expires: number, cseq: number): SipRequest {
  return requestFromLines([
    'REGISTER sip:pbx SIP/2.0',
    `Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-exp-${cseq}`,
    'From: <sip:400@pbx>;tag=a',
    'To: <sip:400@pbx>',
    'Call-ID: expiry-test',
    `CSeq: ${cseq} REGISTER`,
    `Contact: <${contact}>`,
    `Expires: ${expires}`,
    'Authorization: Digest username="400", realm="r", nonce="n", uri="sip:pbx", response="00"',
  ]);
}

test('bindings expire at their time: lookup drops them and the sweep removes them from the store', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mss-expiry-'));
  const store = openSqliteStore(dir);
  const writer = new BindingWriter(store, 60_000);
  let now = 1_000_000;
  // Authentication itself is tested elsewhere: here every request with credentials passes.
  const auth = { authenticate: () => ({ ok: true as const, user: '400' }) } as unknown as Authenticator;
  const registrar = new Registrar({
    store, writer, auth, logger: silentLogger, minExpires: 60, maxExpires: 3600, defaultExpires: 3600, maxContacts: 5, maxClients: 0,
    now: () => now,
  });
  const source = { transport: 'udp' as const, address: '192.0.2.1', port: 5060 };
  assert.equal(registrar.handle(register('sip:400@192.0.2.1', 60, 1), source, 't').response.status, 200);
  assert.equal(registrar.handle(register('sip:400@192.0.2.2', 600, 2), source, 't').response.status, 200);
  writer.flush();
  assert.equal(store.loadBindings(now).length, 2);

  now += 61_000;
  assert.deepEqual(registrar.lookup('400').map((b) => b.contact), ['sip:400@192.0.2.2']);
  (registrar as unknown as { sweep(): void }).sweep();
  writer.flush();
  assert.equal(registrar.bindingCount, 1);
  assert.deepEqual(store.loadBindings(0).map((b) => b.contact), ['sip:400@192.0.2.2']);

  now += 600_000;
  (registrar as unknown as { sweep(): void }).sweep();
  writer.flush();
  assert.equal(registrar.registeredCount, 0);
  assert.equal(store.loadBindings(0).length, 0);
  writer.close();
  store.close();
});
