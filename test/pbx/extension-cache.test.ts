import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../lib/store/sqlite.js';
import { Extensions } from '../../lib/pbx/extensions.js';
import { ExtensionCache } from '../../lib/pbx/extension-cache.js';

test('the cache serves repeated lookups from memory and sees changes made by another process', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mss-cache-'));
  const server = openSqliteStore(dir);
  const admin = openSqliteStore(dir); // stands for `minisipserver ext` run while the server runs
  try {
    new Extensions(admin, 'r').add('500', { password: 'one' });
    let t = 0;
    const cache = new ExtensionCache(server, 1000, () => t);
    const first = cache.get('500');
    assert.ok(first);
    assert.equal(cache.get('500'), first, 'second lookup is the cached object');

    new Extensions(admin, 'r').setPassword('500', 'two');
    t += 10;
    assert.equal(cache.get('500'), first, 'within checkMs the cached record is used');
    t += 1000;
    const second = cache.get('500');
    assert.notEqual(second?.ha1Md5, first.ha1Md5, 'after checkMs the new password hash is seen');

    new Extensions(admin, 'r').remove('500');
    t += 1000;
    assert.equal(cache.get('500'), undefined, 'a removed extension is gone');
    assert.equal(cache.get('nobody'), undefined);
  } finally {
    admin.close();
    server.close();
  }
});
