import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { openFileCount, openFilesLimit } from '../../lib/platform/open-files.js';
import { startTestServer } from '../helpers/server.js';

const LIMITS = [
  'Limit                     Soft Limit           Hard Limit           Units     ',
  'Max processes             7823                 7823                 processes ',
  'Max open files            1024                 524288               files     ',
  'Max locked memory         8388608              8388608              bytes     ',
].join('\n');

test('openFilesLimit reads the soft and hard limit from /proc/self/limits text', () => {
  assert.deepEqual(openFilesLimit(LIMITS), { soft: 1024, hard: 524288 });
  assert.deepEqual(openFilesLimit(LIMITS.replace('1024                 524288', 'unlimited            unlimited')), { soft: Infinity, hard: Infinity });
  assert.equal(openFilesLimit('nothing here'), null);
  const own = openFilesLimit();
  assert.ok(own && own.soft >= 1 && own.hard >= own.soft);
  assert.ok((openFileCount() ?? 0) > 2);
});

test('Node raises the soft open-files limit to the hard limit at start (serve relies on it)', (t) => {
  const own = openFilesLimit()!;
  if (own.hard === Infinity || own.hard <= 256) {
    t.skip(`hard limit ${own.hard}: nothing to raise here`);
    return;
  }
  const module = fileURLToPath(new URL('../../lib/platform/open-files.js', import.meta.url));
  const script = `import(${JSON.stringify(module)}).then((m) => console.log(JSON.stringify(m.openFilesLimit())))`;
  const r = spawnSync('sh', ['-c', `ulimit -Sn 256 && exec "${process.execPath}" -e '${script}'`], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { soft: own.hard, hard: own.hard });
});

test('serve says at start how many relayed calls the open-files limit allows', async () => {
  const srv = await startTestServer({ configure: (c) => (c.media.relay = 'always') });
  try {
    const line = srv.logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.event === 'media.file_limit');
    assert.ok(line, 'a media.file_limit line');
    const limit = openFilesLimit()!;
    assert.equal(line.openFiles, limit.soft);
    assert.ok(typeof line.relayedCalls === 'number' && line.relayedCalls > 0 && line.relayedCalls < limit.soft / 4);
    assert.equal(line.rangeAllows, (srv.server as unknown as { relay: { sessionLimit: number } }).relay.sessionLimit);
    assert.equal(line.level, line.relayedCalls >= line.rangeAllows ? 'info' : 'warn');
  } finally {
    await srv.stop();
  }
});
