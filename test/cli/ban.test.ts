// `minisipserver ban list|add|remove` (cli/ban.ts) in-process through runBan against a data
// folder, against a running server that picks the changes up (a banned address is dropped and
// its TCP connections refused; removed, it is answered again), and once as the real command line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runBan, type BanListItem } from '../../cli/ban.js';
import { openSqliteStore } from '../../lib/store/sqlite.js';
import { startTestServer } from '../helpers/server.js';
import { waitFor } from '../helpers/keep-alive.js';
import { Phone } from '../helpers/phone.js';
import { Attacker, tcpFate } from '../security/attacker.js';
import { Collect } from '../helpers/collect.js';

const MAIN = path.resolve(process.cwd(), 'build/cli/main.js');

async function ban(argv: string[], now?: number): Promise<{ code: number; out: string; err: string }> {
  const out = new Collect();
  const err = new Collect();
  const code = await runBan(argv, { out, err, ...(now !== undefined ? { now: () => now } : {}) });
  return { code, out: out.text, err: err.text };
}

function tempDataDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'mss-cli-ban-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'data');
}

test('ban add, list (text and JSON) and remove against a data folder', async (t) => {
  const data = tempDataDir(t);
  const now = Date.parse('2030-05-01T12:00:00Z');
  assert.equal((await ban(['list', '--data-dir', data], now)).out, 'no source address is banned\n');

  const add = await ban(['add', '203.0.113.7', '--for', '10m', '--data-dir', data], now);
  assert.equal(add.code, 0, add.err);
  assert.match(add.out, /^banned 203\.0\.113\.7 for 10 min, until 2030-05-01T12:10:00\.000Z \(reason manual\)/);
  const v6 = await ban(['add', '2001:DB8:0:0::7', '--for', 'forever', '--reason', 'svcrack from the logs', '--data-dir', data], now);
  assert.equal(v6.code, 0, v6.err);
  assert.match(v6.out, /^banned 2001:db8::7 until removed/);

  const text = await ban(['list', '--data-dir', data], now + 60_000);
  assert.deepEqual(text.out.trimEnd().split('\n'), [
    '2001:db8::7\tuntil removed\tsvcrack from the logs (manual)\toffences 1',
    '203.0.113.7\t2030-05-01T12:10:00.000Z (9 min left)\tmanual\toffences 1',
  ]);
  const json = JSON.parse((await ban(['list', '--json', '--data-dir', data], now + 60_000)).out) as BanListItem[];
  assert.deepEqual(json[1], {
    address: '203.0.113.7',
    until: '2030-05-01T12:10:00.000Z',
    secondsLeft: 540,
    reason: 'manual',
    offences: 1,
    manual: true,
    since: '2030-05-01T12:00:00.000Z',
  });
  assert.equal(json[0]!.until, null);

  // Banned again while banned: a repeat offence. Past its end it no longer lists.
  await ban(['add', '203.0.113.7', '--for', '1h', '--data-dir', data], now + 120_000);
  const store = openSqliteStore(data);
  assert.equal(store.getBan('203.0.113.7')!.offences, 2);
  store.close();
  assert.equal((JSON.parse((await ban(['list', '--json', '--data-dir', data], now + 2 * 3_600_000)).out) as BanListItem[]).length, 1);

  const removed = await ban(['remove', '2001:db8:0::7', '--data-dir', data], now);
  assert.equal(removed.code, 0, removed.err);
  assert.equal(removed.out, 'removed the ban of 2001:db8::7\n');
  const again = await ban(['remove', '2001:db8::7', '--data-dir', data], now);
  assert.equal(again.code, 1);
  assert.match(again.err, /2001:db8::7 is not banned/);
});

test('usage errors: not an address, a range, an unreadable duration, no subcommand (exit 2)', async (t) => {
  const data = tempDataDir(t);
  for (const [argv, message] of [
    [['add', 'pbx.example.com'], /"pbx\.example\.com" is not an IP address/],
    [['add', '10.0.0.0/8'], /a whole range is a firewall's job/],
    [['add', '192.0.2.1', '--for', 'soon'], /--for "soon": give a duration such as 90s, 10m/],
    [['add', '192.0.2.1', '--for', '0'], /--for "0"/],
    [['remove', 'nobody'], /not an IP address/],
  ] as const) {
    const r = await ban([...argv, '--data-dir', data]);
    assert.equal(r.code, 2, argv.join(' '));
    assert.match(r.err, message);
  }
  const none = await ban([]);
  assert.equal(none.code, 2);
  assert.match(none.err, /name a ban command: list, add, remove/);
});

test('a running server picks up ban add and ban remove within a couple of seconds', async (t) => {
  const srv = await startTestServer({ configure: (c) => (c.media.relay = 'never') });
  t.after(() => srv.stop());
  const peer = await Attacker.open('127.0.0.6', srv.port);
  t.after(() => peer.close());
  const events = (event: string) => srv.logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['event'] === event && l['address'] === '127.0.0.6');
  assert.equal(await peer.options(2000), 200);
  const held = await tcpFate('127.0.0.6', srv.port, 200);
  assert.equal(held.fate, 'open');
  const heldClosed = new Promise<void>((resolve) => held.socket.once('close', () => resolve()));

  const started = Date.now();
  const add = await ban(['add', '127.0.0.6', '--for', '1h', '--reason', 'testing', '--data-dir', srv.dataDir]);
  assert.equal(add.code, 0, add.err);
  await waitFor(() => events('security.banned').length > 0, 'the server to log the ban', 3000);
  const pickedUp = Date.now() - started;
  assert.ok(pickedUp < 3000, `picked up after ${pickedUp} ms`);
  const line = events('security.banned')[0]!;
  assert.equal(line['reason'], 'testing');
  assert.equal(line['manual'], true);
  assert.equal(await peer.options(400), null, 'dropped');
  await heldClosed; // its TCP connection went with the ban
  assert.equal((await tcpFate('127.0.0.6', srv.port, 1000)).fate, 'closed', 'new connections are refused');
  assert.equal(srv.server.guard.counters.bans.manual, 1);

  const list = JSON.parse((await ban(['list', '--json', '--data-dir', srv.dataDir])).out) as BanListItem[];
  assert.deepEqual(list.map((b) => b.address), ['127.0.0.6']);

  const removed = await ban(['remove', '127.0.0.6', '--data-dir', srv.dataDir]);
  assert.equal(removed.code, 0, removed.err);
  await waitFor(() => events('security.unbanned').length > 0, 'the server to log the end of the ban', 3000);
  assert.equal(events('security.unbanned')[0]!['cause'], 'removed');
  assert.equal(await peer.options(2000), 200, 'answered again');
});

test('a ban of a trusted address (loopback by default) is ignored by the server, with a warning', async (t) => {
  const srv = await startTestServer({ users: [['601', 'pw601']], configure: (c) => (c.media.relay = 'never') });
  t.after(() => srv.stop());
  assert.equal((await ban(['add', '127.0.0.1', '--data-dir', srv.dataDir])).code, 0);
  await waitFor(() => srv.logLines.some((l) => l.includes('security.ban_ignored')), 'the server to ignore the ban', 3000);
  assert.equal(srv.server.guard.isBanned('127.0.0.1'), false);
  const phone = await Phone.open('601', 'pw601', srv.port);
  t.after(() => phone.close());
  await phone.register();
});

test('the real command line: ban is wired into the root parser', () => {
  const help = spawnSync(process.execPath, [MAIN, 'ban', '--help'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /ban list\s/);
  assert.match(help.stdout, /ban add <address>/);
  assert.match(help.stdout, /ban remove <address>/);
  const root = spawnSync(process.execPath, [MAIN, '--help'], { encoding: 'utf8', timeout: 60_000 });
  assert.match(root.stdout, /minisipserver ban/);
  const none = spawnSync(process.execPath, [MAIN, 'ban'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(none.status, 2);
  assert.match(none.stderr, /name a ban command: list, add, remove/);
});
