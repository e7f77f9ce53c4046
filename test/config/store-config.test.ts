import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfigFile, parseConfigText } from '../../lib/config/load.js';
import { defaultConfig } from '../../lib/config/schema.js';
import { describeMariaDb, mariaDbSettings, parseStoreUrl } from '../../lib/store/mariadb-settings.js';

function problem(text: string): ConfigError {
  try {
    parseConfigText(text, 'conf.yaml');
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('the configuration was accepted');
}

test('the store is SQLite by default, with MariaDB settings ready for store.kind: mariadb', () => {
  const c = defaultConfig();
  assert.equal(c.store.kind, 'sqlite');
  assert.equal(c.store.url, '');
  assert.deepEqual(c.store.mariadb, { host: '127.0.0.1', port: 3306, socketPath: '', user: 'minisipserver', passwordFile: '', database: 'minisipserver', poolSize: 2, pollMs: 200 });
});

test('store.mariadb keys are read; a relative passwordFile is taken from the configuration file\'s folder', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mss-store-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'config.yaml');
  writeFileSync(file, 'store:\n  kind: mariadb\n  mariadb:\n    host: db.example.net\n    port: 3307\n    user: pbx\n    passwordFile: secrets/db-password\n    database: pbx_1\n    poolSize: 3\n    pollMs: 150\n');
  const c = loadConfigFile(file);
  assert.equal(c.store.kind, 'mariadb');
  assert.deepEqual(c.store.mariadb, { host: 'db.example.net', port: 3307, socketPath: '', user: 'pbx', passwordFile: join(dir, 'secrets', 'db-password'), database: 'pbx_1', poolSize: 3, pollMs: 150 });
  assert.equal(describeMariaDb(mariaDbSettings(c)), 'mariadb pbx@db.example.net:3307/pbx_1');
});

test('store.url stands for host, port, socket, user and database', () => {
  const c = parseConfigText('store:\n  kind: mariadb\n  url: mariadb://pbx@db.example.net:3308/voice\n');
  const s = mariaDbSettings(c);
  assert.deepEqual([s.user, s.host, s.port, s.socketPath, s.database], ['pbx', 'db.example.net', 3308, '', 'voice']);
  const local = mariaDbSettings(parseConfigText('store:\n  kind: mariadb\n  url: "mariadb://pbx@localhost/voice?socket=/run/mysqld/mysqld.sock"\n'));
  assert.deepEqual([local.socketPath, local.port], ['/run/mysqld/mysqld.sock', 3306]);
  assert.deepEqual(parseStoreUrl('mariadb://pbx@[::1]:3306/voice'), { user: 'pbx', host: '::1', port: 3306, database: 'voice' });
});

test('bad store settings are refused with the file, line and what to do', () => {
  const withPassword = problem('store:\n  kind: mariadb\n  url: mariadb://pbx:hunter2@db/voice\n');
  assert.equal(withPassword.line, 3);
  assert.match(withPassword.problem, /must not hold a password.*store\.mariadb\.passwordFile/);
  assert.ok(!withPassword.message.includes('hunter2'));
  assert.match(problem('store:\n  url: mariadb://pbx@db/voice\n').problem, /store\.kind is not mariadb/);
  assert.match(problem('store:\n  kind: mariadb\n  url: postgres://pbx@db/voice\n').problem, /must start with mariadb:\/\//);
  assert.match(problem('store:\n  kind: mariadb\n  url: mariadb://pbx@db/\n').problem, /database name/);
  assert.match(problem('store:\n  kind: mariadb\n  url: mariadb://db/voice\n').problem, /names no user/);
  assert.match(problem('store:\n  kind: mariadb\n  mariadb:\n    database: "x; DROP"\n').problem, /database "x; DROP" must be/);
  assert.match(problem('store:\n  kind: mariadb\n  mariadb:\n    socketPath: run/mysqld.sock\n').problem, /absolute path/);
  const kind = problem('store:\n  kind: postgres\n');
  assert.equal(kind.line, 2);
  assert.match(kind.problem, /sqlite, mariadb/);
  assert.match(problem('store:\n  mariadb:\n    pollMs: 5\n').problem, /between 20 and 10000/);
});
