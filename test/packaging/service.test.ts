import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../e2e/harness.js';

const hasSystemdAnalyze = spawnSync('systemd-analyze', ['--version']).error === undefined;

/** The unit as scripts/install-service.sh writes it, for an executable installed under `prefix`. */
function renderUnit(prefix: string, extra: string[] = []): string {
  const out = tempDir('mss-unit-');
  const r = spawnSync('bash', ['scripts/install-service.sh', '--render-unit', out, '--prefix', prefix, ...extra], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return out;
}

/** A stand-in executable: systemd-analyze verify checks that ExecStart names one. */
function fakePrefix(): string {
  const prefix = tempDir('mss-prefix-');
  mkdirSync(join(prefix, 'bin'));
  writeFileSync(join(prefix, 'bin', 'minisipserver'), '#!/bin/sh\nexit 0\n');
  chmodSync(join(prefix, 'bin', 'minisipserver'), 0o755);
  return prefix;
}

function directives(unitText: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const line of unitText.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) map.set(m[1]!, [...(map.get(m[1]!) ?? []), m[2]!]);
  }
  return map;
}

test('the unit runs serve as the minisipserver user, hardened, with port 5060 allowed', () => {
  const prefix = fakePrefix();
  const unit = readFileSync(join(renderUnit(prefix), 'minisipserver.service'), 'utf8');
  const d = directives(unit);
  const one = (k: string) => (d.get(k) ?? []).join(' ');
  assert.equal(one('ExecStart'), `${prefix}/bin/minisipserver serve --config /etc/minisipserver/minisipserver.yaml --data-dir /var/lib/minisipserver`);
  assert.equal(one('After'), 'network-online.target');
  assert.equal(one('Wants'), 'network-online.target');
  assert.equal(one('User'), 'minisipserver');
  assert.equal(one('AmbientCapabilities'), 'CAP_NET_BIND_SERVICE');
  assert.equal(one('CapabilityBoundingSet'), 'CAP_NET_BIND_SERVICE');
  assert.equal(one('Restart'), 'on-failure');
  assert.equal(one('NoNewPrivileges'), 'yes');
  assert.equal(one('ProtectSystem'), 'strict');
  assert.equal(one('ReadWritePaths'), '/var/lib/minisipserver');
  assert.equal(one('PrivateTmp'), 'yes');
  assert.equal(one('ExecReload'), '/bin/kill -HUP $MAINPID');
  assert.equal(one('WantedBy'), 'multi-user.target');
  assert.equal(d.get('MemoryDenyWriteExecute'), undefined, 'the JavaScript engine needs writable executable memory');
});

test('--with-mariadb adds the drop-in ordering the service after MariaDB', () => {
  const out = renderUnit(fakePrefix(), ['--with-mariadb']);
  const dropin = directives(readFileSync(join(out, 'minisipserver.service.d', 'mariadb.conf'), 'utf8'));
  assert.deepEqual(dropin.get('After'), ['mariadb.service']);
  assert.deepEqual(dropin.get('Requires'), ['mariadb.service']);
});

test('systemd-analyze verify accepts the unit', { skip: hasSystemdAnalyze ? false : 'systemd-analyze is not installed' }, () => {
  const out = renderUnit(fakePrefix());
  const r = spawnSync('systemd-analyze', ['verify', join(out, 'minisipserver.service')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr.trim(), '', 'no warnings either');
});

test('install-service.sh refuses unknown arguments and needs root to install', () => {
  const bad = spawnSync('bash', ['scripts/install-service.sh', '--frobnicate'], { encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /unknown argument: --frobnicate/);
  const help = spawnSync('bash', ['scripts/install-service.sh', '--help'], { encoding: 'utf8' });
  assert.equal(help.status, 0);
  assert.match(help.stdout, /--uninstall/);
  const missing = spawnSync('bash', ['scripts/install-service.sh', '--binary', '/nonexistent/minisipserver'], { encoding: 'utf8' });
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, process.getuid?.() === 0 ? /\/nonexistent\/minisipserver is not an executable/ : /run as root/);
});
