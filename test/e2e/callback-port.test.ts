// `callback.port`: 0 opens no socket at all; a port opens exactly one more UDP socket. Read from
// the kernel's socket table of the real `serve` process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServe, tempDir, udpSocketsOf } from './harness.js';
import { claimPorts } from '../helpers/ports.js';
import { waitFor } from '../helpers/keep-alive.js';

function configWithoutRelay(): string {
  const file = join(tempDir('mss-cb-port-'), 'config.yaml');
  writeFileSync(file, 'media:\n  relay: never\nsip:\n  transports: [udp]\n');
  return file;
}

test('callback.port 0: the server holds no UDP socket besides its SIP one, and says the service is off', async () => {
  const srv = await startServe(tempDir('mss-cb-off-'), ['--config', configWithoutRelay(), '--callback-port', '0']);
  try {
    await waitFor(() => srv.stderr().includes('callback.off'), 'the log line saying the service is off');
    const ports = udpSocketsOf(srv.child.pid!).map((s) => s.port);
    assert.deepEqual(ports, [srv.port], `UDP sockets: ${JSON.stringify(udpSocketsOf(srv.child.pid!))}`);
  } finally {
    await srv.stop();
  }
});

test('callback.port N: one more UDP socket, on N at the SIP bind address', async () => {
  const claim = await claimPorts(1);
  try {
    const port = claim.portMin;
    const srv = await startServe(tempDir('mss-cb-on-'), ['--config', configWithoutRelay(), '--callback-port', String(port)]);
    try {
      await waitFor(() => srv.stderr().includes('callback.listening'), 'the log line saying the service listens');
      const sockets = udpSocketsOf(srv.child.pid!);
      assert.deepEqual(sockets.map((s) => s.port).sort((a, b) => a - b), [srv.port, port].sort((a, b) => a - b));
      assert.ok(sockets.every((s) => s.address === '127.0.0.1'), 'both on the bind address');
    } finally {
      await srv.stop();
    }
  } finally {
    claim.release();
  }
});
