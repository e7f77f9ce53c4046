import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, startServe, tempDir } from './harness.js';
import { UdpPeer } from '../helpers/sip-peer.js';

test('--version prints the package version and --help lists every command', () => {
  const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
  const v = cli(['--version']);
  assert.equal(v.code, 0);
  assert.equal(v.stdout.trim(), pkg.version);
  const h = cli(['--help']);
  assert.equal(h.code, 0);
  for (const c of ['serve', 'ext', 'cdr', 'ivr', 'callback', 'status']) assert.match(h.stdout, new RegExp(`minisipserver ${c}`));
});

test('`cdr` runs through the real executable, with its own usage errors (exit 2)', () => {
  const ok = cli(['cdr', 'stats', 'test/fixtures/cdr', '--format', 'json']);
  assert.equal(ok.code, 0, ok.stderr);
  const stats = JSON.parse(ok.stdout) as { total: { calls: number; answered: number; failed: number } };
  assert.equal(stats.total.calls, stats.total.answered + stats.total.failed);
  assert.ok(stats.total.calls > 0);
  assert.match(ok.stderr, /bad\.csv:3: expected 22 fields/, 'bad records are reported with file and line');
  const strict = cli(['cdr', 'stats', 'test/fixtures/cdr', '--format', 'json', '--strict']);
  assert.equal(strict.code, 1, 'with --strict bad input is an error');
  const bad = cli(['cdr', 'stats', '--by', 'weather']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /weather/);
});

test('a wrong flag or no command is a usage error (exit 2) with a clear message', () => {
  const a = cli(['serve', '--sip-prot', '5']);
  assert.equal(a.code, 2);
  assert.match(a.stderr, /Unknown argument: sip-prot$/m);
  const b = cli([]);
  assert.equal(b.code, 2);
  assert.match(b.stderr, /Name a command/);
  const c = cli(['serve', '--sip-port', '70000']);
  assert.equal(c.code, 2);
  assert.match(c.stderr, /--sip-port must be 0\.\.65535/);
});

test('a bad config file stops the start with file, line and what to fix', () => {
  const dir = tempDir('mss-cfg-');
  const file = join(dir, 'bad.yaml');
  writeFileSync(file, 'sip:\n  port: 5060\n  realmm: x\n');
  const r = cli(['serve', '--config', file, '--data-dir', join(dir, 'data')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, new RegExp(`${file.replace(/[.]/g, '\\.')}:3:3: unknown key "sip\\.realmm"`));
});

test('serve on defaults: first start prints the new extensions once, answers OPTIONS, stops on SIGTERM', async () => {
  const dir = tempDir('mss-serve-');
  const server = await startServe(join(dir, 'data'));
  const peer = await UdpPeer.open();
  try {
    assert.match(server.stdout(), /First start: created extensions/);
    assert.equal((server.stdout().match(/^ {2}10[0-4] {2}password \S{10,}$/gm) ?? []).length, 5);
    assert.doesNotMatch(server.stderr(), /password/i);
    const r = await peer.request(
      [`OPTIONS sip:127.0.0.1:${server.port} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bK-cli1`, 'Max-Forwards: 70',
        'From: <sip:t@127.0.0.1>;tag=1', 'To: <sip:127.0.0.1>', 'Call-ID: cli-1', 'CSeq: 1 OPTIONS', 'Content-Length: 0', '', ''].join('\r\n'),
      server.port,
    );
    assert.equal(r.status, 200);
    for (const line of server.stderr().trim().split('\n')) JSON.parse(line); // --log-format json: one object a line
  } finally {
    peer.close();
    assert.equal(await server.stop(), 0);
  }
  const again = await startServe(join(dir, 'data'));
  assert.doesNotMatch(again.stdout(), /First start/);
  assert.equal(await again.stop(), 0);
});
