import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../lib/store/sqlite.js';
import { BindingWriter } from '../../lib/store/binding-writer.js';
import type { BindingRecord, Store } from '../../lib/store/store.js';
import { keepAlive } from '../helpers/keep-alive.js';

function binding(aor: string, contact: string, cseq: number): BindingRecord {
  return {
    aor, contact, contactHeader: `<${contact}>`, expiresAt: 1_000_000, callId: 'c', cseq,
    transport: 'udp', sourceAddress: '198.51.100.1', sourcePort: 5060, updatedAt: cseq,
  };
}

/** A real store that also counts the transactions it is asked for. */
function countingStore(t: { after(fn: () => void): void }): { store: Store; batches: Array<{ upserts: number; deletes: number }> } {
  const dir = mkdtempSync(join(tmpdir(), 'mss-writer-'));
  const store = openSqliteStore(dir);
  t.after(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const batches: Array<{ upserts: number; deletes: number }> = [];
  const save = store.saveBindings.bind(store);
  store.saveBindings = (upserts, deletes) => {
    batches.push({ upserts: upserts.length, deletes: deletes.length });
    save(upserts, deletes);
  };
  return { store, batches };
}

test('coalesces: last write per (aor, contact) wins, one transaction per flush', (t) => {
  const { store, batches } = countingStore(t);
  const writer = new BindingWriter(store, 60_000);
  for (let cseq = 1; cseq <= 100; cseq++) writer.upsert(binding('100', 'sip:100@a', cseq));
  writer.upsert(binding('101', 'sip:101@b', 1));
  writer.upsert(binding('102', 'sip:102@c', 1));
  writer.remove('102', 'sip:102@c');
  assert.equal(writer.pendingCount, 3);
  assert.equal(batches.length, 0, 'nothing written before the flush');
  writer.flush();
  assert.deepEqual(batches, [{ upserts: 2, deletes: 1 }]);
  assert.equal(writer.pendingCount, 0);
  const loaded = store.loadBindings(0);
  assert.deepEqual(loaded.map((b) => [b.aor, b.cseq]).sort(), [['100', 100], ['101', 1]]);

  writer.remove('100', 'sip:100@a');
  writer.upsert(binding('100', 'sip:100@a', 101)); // re-registered after the removal: the upsert wins
  writer.flush();
  writer.flush(); // nothing pending: no empty transaction
  assert.equal(batches.length, 2);
  assert.equal(store.loadBindings(0).find((b) => b.aor === '100')?.cseq, 101);
  writer.close();
});

test('flushes on its own after flushMs (timer) and on close', async (t) => {
  const { store, batches } = countingStore(t);
  const writer = new BindingWriter(store, 5);
  const flushed = new Promise<void>((resolve) => {
    const save = store.saveBindings.bind(store);
    store.saveBindings = (u, d) => {
      save(u, d);
      resolve();
    };
  });
  writer.upsert(binding('100', 'sip:100@a', 1));
  writer.upsert(binding('100', 'sip:100@a', 2));
  // The writer's timer is unref'd (it must not keep a server alive): keepAlive holds the loop.
  await keepAlive(flushed, 'the timed flush');
  assert.deepEqual(batches, [{ upserts: 1, deletes: 0 }]);
  assert.equal(store.loadBindings(0)[0]?.cseq, 2);

  writer.upsert(binding('101', 'sip:101@a', 1));
  writer.close();
  assert.equal(batches.length, 2, 'close flushes what is pending');
  assert.equal(store.loadBindings(0).length, 2);
  writer.upsert(binding('102', 'sip:102@a', 1));
  assert.equal(writer.pendingCount, 0, 'writes after close are ignored');
});

test('the pending map is bounded: reaching maxPending flushes at once', (t) => {
  const { store, batches } = countingStore(t);
  const writer = new BindingWriter(store, 60_000, { maxPending: 1000 });
  for (let i = 0; i < 2500; i++) writer.upsert(binding(String(i), `sip:${i}@x`, 1));
  assert.deepEqual(batches, [{ upserts: 1000, deletes: 0 }, { upserts: 1000, deletes: 0 }]);
  assert.equal(writer.pendingCount, 500);
  writer.close();
  assert.equal(store.loadBindings(0).length, 2500);
});

test('a failed timed flush is reported, not thrown at the caller; the writer keeps working', (t) => {
  const { store } = countingStore(t);
  const errors: Array<{ message: string; lost: number }> = [];
  const writer = new BindingWriter(store, 60_000, { maxPending: 2, onError: (err, lost) => errors.push({ message: String(err), lost }) });
  const save = store.saveBindings.bind(store);
  let failNext = true;
  store.saveBindings = (u, d) => {
    if (failNext) {
      failNext = false;
      throw new Error('disk full');
    }
    save(u, d);
  };
  writer.upsert(binding('1', 'sip:1@x', 1));
  writer.upsert(binding('2', 'sip:2@x', 1)); // reaches maxPending: flush fails, reported
  assert.deepEqual(errors, [{ message: 'Error: disk full', lost: 2 }]);
  writer.upsert(binding('3', 'sip:3@x', 1));
  writer.flush();
  assert.deepEqual(store.loadBindings(0).map((b) => b.aor), ['3']);
  writer.close();
});
