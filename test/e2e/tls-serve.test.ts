/**
 * SIP over TLS in the real `serve` process: a certificate made by `minisipserver tls self-signed`,
 * named by relative paths in the configuration; SIGHUP after a renewal (`--force`) puts the new
 * certificate in force for new connections while an open one keeps working; a missing
 * certificate file stops the start with the file named.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import type tls from 'node:tls';
import { join } from 'node:path';
import { BIN, cli, startServe, tempDir } from './harness.js';
import { StreamPhone } from '../helpers/stream-phone.js';
import { branch } from '../helpers/sip-peer.js';
import { waitFor } from '../helpers/keep-alive.js';

const CONFIG = 'sip:\n  transports: [udp, tcp, tls]\n  tls:\n    port: 0\n    cert: tls/cert.pem\n    key: tls/key.pem\n';

async function options(phone: StreamPhone, n: number): Promise<number> {
  phone.send([
    `OPTIONS sip:127.0.0.1 SIP/2.0`,
    `Via: SIP/2.0/TLS 127.0.0.1:${phone.localPort};branch=${branch()}`,
    'Max-Forwards: 70',
    'From: <sip:probe@127.0.0.1>;tag=1',
    'To: <sip:127.0.0.1>',
    `Call-ID: tls-serve-${n}`,
    'CSeq: 1 OPTIONS',
  ]);
  return (await phone.waitResponse((r) => r.headers.get('call-id') === `tls-serve-${n}`)).status;
}

function fingerprintOf(phone: StreamPhone): string | undefined {
  return (phone.socket as tls.TLSSocket).getPeerX509Certificate()?.fingerprint256;
}

test('serve: a self-signed certificate named relative to the configuration, renewed and put in force by SIGHUP', async () => {
  const dir = tempDir('mss-tls-serve-');
  const certFile = join(dir, 'tls', 'cert.pem');
  assert.equal(cli(['tls', 'self-signed', '--host', '127.0.0.1', '--out', join(dir, 'tls'), '--days', '30']).code, 0);
  const before = new X509Certificate(readFileSync(certFile)).fingerprint256;
  writeFileSync(join(dir, 'config.yaml'), CONFIG);
  const server = await startServe(join(dir, 'data'), ['--config', join(dir, 'config.yaml')]);
  const phones: StreamPhone[] = [];
  try {
    const tlsPort = Number(/TLS on port (\d+),/.exec(server.stdout())?.[1]);
    assert.ok(tlsPort > 0, server.stdout());
    const old = await StreamPhone.tls(tlsPort, readFileSync(certFile));
    phones.push(old);
    assert.equal(fingerprintOf(old), before);
    assert.equal(await options(old, 1), 200);

    const renewal = cli(['tls', 'self-signed', '--host', '127.0.0.1', '--out', join(dir, 'tls'), '--force']);
    assert.equal(renewal.code, 0, renewal.stderr);
    const after = new X509Certificate(readFileSync(certFile)).fingerprint256;
    assert.notEqual(after, before);
    server.child.kill('SIGHUP');
    await waitFor(() => server.stderr().includes(`"fingerprint":"${after}"`), 'the tls.certificate_reloaded line');

    const fresh = await StreamPhone.tls(tlsPort, readFileSync(certFile));
    phones.push(fresh);
    assert.equal(fingerprintOf(fresh), after);
    assert.equal(await options(fresh, 2), 200);
    assert.equal(await options(old, 3), 200, 'the connection opened before the reload keeps working');
  } finally {
    for (const p of phones) p.close();
    assert.equal(await server.stop(), 0);
  }
});

test('serve: a missing certificate file stops the start, naming the file and `tls self-signed`', () => {
  const dir = tempDir('mss-tls-missing-');
  writeFileSync(join(dir, 'config.yaml'), CONFIG);
  const r = spawnSync(process.execPath, [BIN, 'serve', '--config', join(dir, 'config.yaml'), '--data-dir', join(dir, 'data'), '--bind', '127.0.0.1', '--sip-port', '0', '--callback-port', '0', '--admin-listen', '', '--event-channel-port', '0'], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`${join(dir, 'tls', 'cert.pem').replace(/[/.]/g, '\\$&')}: cannot be read \\(ENOENT\\)`));
  assert.match(r.stderr, /minisipserver tls self-signed --host NAME/);
});
