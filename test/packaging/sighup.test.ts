import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, startServe, tempDir, type RunningServer } from '../e2e/harness.js';
import { UdpPeer, registerWithAuth } from '../helpers/sip-peer.js';

/** Waits for the next log line (JSON) with this event that was not there before. */
async function nextEvent(server: RunningServer, event: string, seen: number, ms = 5000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const lines = server.stderr().trim().split('\n').filter((l) => l.startsWith('{'));
    const hits = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((o) => o.event === event);
    if (hits.length > seen) return hits[seen]!;
    if (Date.now() > deadline) throw new Error(`no ${event} log line within ${ms} ms:\n${server.stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function options(peer: UdpPeer, port: number, n: number): string {
  return [`OPTIONS sip:127.0.0.1:${port} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bK-hup${n}`, 'Max-Forwards: 70',
    'From: <sip:t@127.0.0.1>;tag=1', 'To: <sip:127.0.0.1>', `Call-ID: hup-${n}`, 'CSeq: 1 OPTIONS', 'Content-Length: 0', '', ''].join('\r\n');
}

test('SIGHUP applies live keys, reports the rest, keeps registrations; a broken file is refused and the old config stays', async () => {
  const dir = tempDir('mss-hup-');
  const data = join(dir, 'data');
  const file = join(dir, 'config.yaml');
  assert.equal(cli(['ext', 'add', '300', '--password', 'hup-secret-300', '--data-dir', data]).code, 0);
  writeFileSync(file, 'registrar:\n  minExpires: 60\n');
  const server = await startServe(data, ['--config', file]);
  const peer = await UdpPeer.open();
  try {
    const reg = await registerWithAuth(peer, { user: '300', password: 'hup-secret-300', port: server.port, localPort: peer.port, expires: 600, algorithm: 'MD5' });
    assert.equal(reg.final.status, 200);

    writeFileSync(file, 'registrar:\n  minExpires: 120\n  maxContacts: 2\nsip:\n  realm: elsewhere\nlog:\n  level: debug\n');
    server.child.kill('SIGHUP');
    const reloaded = await nextEvent(server, 'config.reloaded', 0);
    assert.deepEqual(new Set(reloaded.applied as string[]), new Set(['registrar.minExpires', 'registrar.maxContacts', 'log.level']));
    assert.deepEqual(reloaded.needsRestart, ['sip.realm']);
    const realm = (reloaded.changed as Array<{ key: string; from: unknown; to: unknown }>).find((c) => c.key === 'sip.realm');
    assert.deepEqual(realm, { key: 'sip.realm', from: 'minisipserver', to: 'elsewhere' });
    await nextEvent(server, 'config.restart_needed', 0);

    // The new minimum is in force, and the binding made before the reload is still there.
    const brief = await registerWithAuth(peer, { user: '300', password: 'hup-secret-300', port: server.port, localPort: peer.port, expires: 90, cseq: 10, algorithm: 'MD5' });
    assert.equal(brief.final.status, 423);
    assert.equal(brief.final.headers.get('min-expires'), '120');
    const query = await registerWithAuth(peer, { user: '300', password: 'hup-secret-300', port: server.port, localPort: peer.port, contact: '', expires: null, cseq: 20, algorithm: 'MD5' });
    assert.equal(query.final.status, 200);
    assert.match(query.final.headers.get('contact') ?? '', new RegExp(`127\\.0\\.0\\.1:${peer.port}`));

    writeFileSync(file, 'registrar:\n  minExpires: 30\n  maxContact: 2\n');
    server.child.kill('SIGHUP');
    const refused = await nextEvent(server, 'config.refused', 0);
    assert.equal(refused.level, 'error');
    assert.equal(refused.file, file);
    assert.equal(refused.line, 3);
    assert.equal(refused.column, 3);
    assert.match(String(refused.problem), /unknown key "registrar\.maxContact"/);
    const ok = await peer.request(options(peer, server.port, 1), server.port);
    assert.equal(ok.status, 200, 'the server still answers after a refused configuration');
    const still = await registerWithAuth(peer, { user: '300', password: 'hup-secret-300', port: server.port, localPort: peer.port, expires: 90, cseq: 30, algorithm: 'MD5' });
    assert.equal(still.final.status, 423, 'the refused file changed nothing');
  } finally {
    peer.close();
    assert.equal(await server.stop(), 0);
  }
});
