// `minisipserver tls self-signed` (cli/tls.ts) in-process through runTls, and once as the real
// command line: files node's TLS accepts (a handshake trusting the certificate as CA), the key
// readable by its owner alone, nothing overwritten without --force, clear usage errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runTls } from '../../cli/tls.js';
import { Collect } from '../helpers/collect.js';

const MAIN = path.resolve(process.cwd(), 'build/cli/main.js');

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new Collect();
  const err = new Collect();
  const code = await runTls(argv, { out, err });
  return { code, out: out.text, err: err.text };
}

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'mss-cli-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A TLS server with these files, and a client that trusts the certificate alone: the handshake's outcome. */
async function handshake(cert: Buffer, key: Buffer, servername?: string): Promise<{ authorized: boolean; error: string | undefined }> {
  const server = tls.createServer({ cert, key }, (s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    return await new Promise((resolve) => {
      const c = tls.connect({ port, host: '127.0.0.1', ca: cert, ...(servername ? { servername } : {}) }, () => {
        resolve({ authorized: c.authorized, error: undefined });
        c.destroy();
      });
      c.on('error', (e) => resolve({ authorized: false, error: e.message }));
    });
  } finally {
    server.close();
  }
}

test('tls self-signed writes a certificate and key that TLS accepts, prints the config lines and the fingerprint', async (t) => {
  const dir = path.join(tempDir(t), 'tls');
  const r = await run(['self-signed', '--host', '127.0.0.1', '--out', dir]);
  assert.equal(r.code, 0, r.err);
  const cert = readFileSync(path.join(dir, 'cert.pem'));
  const key = readFileSync(path.join(dir, 'key.pem'));
  assert.equal(statSync(path.join(dir, 'key.pem')).mode & 0o777, 0o600);
  const x509 = new X509Certificate(cert);
  // The address as a DNS name too, for mbedTLS 2 (Linphone), which matches DNS names alone.
  assert.equal(x509.subjectAltName, 'IP Address:127.0.0.1, DNS:127.0.0.1');
  assert.ok(x509.checkPrivateKey(createPrivateKey(key)));
  const days = (Date.parse(x509.validTo) - Date.now()) / 86_400_000;
  assert.ok(days > 823 && days < 826, `825 days by default (${days})`);
  assert.deepEqual(await handshake(cert, key), { authorized: true, error: undefined });
  assert.match(r.out, new RegExp(`SHA-256 fingerprint: ${x509.fingerprint256}`));
  assert.match(r.out, new RegExp(`^      cert: ${dir.replace(/[/.]/g, '\\$&')}/cert\\.pem$`, 'm'));
  assert.match(r.out, /^ {4}transports: \[udp, tcp, tls\]$/m);
  assert.match(r.out, /sip_cafile .*cert\.pem/);
  assert.match(r.out, /root_ca=.*cert\.pem/);
});

test('a host name goes into the subjectAltName as DNS, and a client checking that name accepts it', async (t) => {
  const dir = tempDir(t);
  const r = await run(['self-signed', '--host', 'pbx.example.test', '--out', dir, '--days', '30']);
  assert.equal(r.code, 0, r.err);
  const cert = readFileSync(path.join(dir, 'cert.pem'));
  assert.equal(new X509Certificate(cert).subjectAltName, 'DNS:pbx.example.test');
  assert.deepEqual(await handshake(cert, readFileSync(path.join(dir, 'key.pem')), 'pbx.example.test'), { authorized: true, error: undefined });
  const other = await handshake(cert, readFileSync(path.join(dir, 'key.pem')), 'other.example.test');
  assert.match(other.error ?? '', /altnames/i, 'another name does not match');
});

test('existing files are not overwritten without --force; with it both are replaced and the key stays 0600', async (t) => {
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'key.pem'), 'my real key', { mode: 0o644 });
  const refused = await run(['self-signed', '--host', '127.0.0.1', '--out', dir]);
  assert.equal(refused.code, 1);
  assert.match(refused.err, /key\.pem exists already: give --force to replace it/);
  assert.equal(readFileSync(path.join(dir, 'key.pem'), 'utf8'), 'my real key');
  assert.throws(() => statSync(path.join(dir, 'cert.pem')), /ENOENT/, 'nothing is written when one file is there');
  const forced = await run(['self-signed', '--host', '127.0.0.1', '--out', dir, '--force']);
  assert.equal(forced.code, 0, forced.err);
  assert.match(readFileSync(path.join(dir, 'key.pem'), 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
  assert.equal(statSync(path.join(dir, 'key.pem')).mode & 0o777, 0o600);
});

test('usage errors exit 2 with a clear message: unknown flag, no host, a bad host, days out of range', async (t) => {
  const dir = tempDir(t);
  const unknown = await run(['self-signed', '--host', '127.0.0.1', '--out', dir, '--bogus']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /Unknown argument: bogus/);
  const noHost = await run(['self-signed', '--out', dir]);
  assert.equal(noHost.code, 2);
  assert.match(noHost.err, /Missing required argument: host/);
  const badHost = await run(['self-signed', '--host', 'pbx example', '--out', dir]);
  assert.equal(badHost.code, 2);
  assert.match(badHost.err, /--host: "pbx example" is neither a host name/);
  const days = await run(['self-signed', '--host', '127.0.0.1', '--out', dir, '--days', '0']);
  assert.equal(days.code, 2);
  assert.match(days.err, /--days must be a whole number of days, 1-3650/);
  assert.throws(() => statSync(path.join(dir, 'key.pem')), /ENOENT/, 'nothing written');
});

test('the real command line: minisipserver tls self-signed for an IPv6 address', (t) => {
  const dir = tempDir(t);
  const r = spawnSync(process.execPath, [MAIN, 'tls', 'self-signed', '--host', '::1', '--out', dir], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(new X509Certificate(readFileSync(path.join(dir, 'cert.pem'))).subjectAltName, 'IP Address:0:0:0:0:0:0:0:1, DNS:::1');
  assert.match(r.stdout, /openssl s_client -connect \[::1\]:5061/);
  const bad = spawnSync(process.execPath, [MAIN, 'tls', 'self-signed', '--host', '::1', '--out', dir, '--dayz', '3'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /Unknown argument: dayz/);
});
