/**
 * node.name through the real `serve`: shown at start, in every JSON log line, in the CDR node
 * column; a bad name stops the start with the file, line and what is accepted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, startServe, tempDir } from './harness.js';

test('serve with node.name: the start line names the node and every JSON log line carries it', async () => {
  const dir = tempDir('mss-node-');
  const file = join(dir, 'config.yaml');
  writeFileSync(file, 'node:\n  name: pbx-east.1\n');
  const server = await startServe(join(dir, 'data'), ['--config', file]);
  try {
    assert.match(server.stdout(), /listening on port \d+ .*, node pbx-east\.1$/m);
  } finally {
    assert.equal(await server.stop(), 0);
  }
  const lines = server.stderr().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.ok(lines.some((l) => l.event === 'server.started'), 'the log has its start line');
  assert.ok(lines.some((l) => l.event === 'server.stopped'), 'and its stop line');
  for (const l of lines) assert.equal(l.node, 'pbx-east.1', `every line names the node: ${JSON.stringify(l)}`);
});

test('serve without node.name: the host name is shown at start, JSON log lines stay as they were', async () => {
  const dir = tempDir('mss-node-');
  const server = await startServe(join(dir, 'data'));
  try {
    assert.match(server.stdout(), /listening on port \d+ .*, node \S+$/m);
  } finally {
    assert.equal(await server.stop(), 0);
  }
  const lines = server.stderr().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const started = lines.find((l) => l.event === 'server.started');
  assert.ok(started && typeof started.node === 'string' && started.node !== '', 'the start line names the host');
  assert.ok(lines.filter((l) => l.event !== 'server.started').every((l) => !('node' in l)), 'no node on the other lines');
});

test('a bad node.name stops the start with the file, line and what a name may hold', () => {
  const dir = tempDir('mss-node-');
  const file = join(dir, 'bad.yaml');
  writeFileSync(file, 'node:\n  name: "east node!"\n');
  const r = cli(['serve', '--config', file, '--data-dir', join(dir, 'data')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, new RegExp(`${file.replace(/[.]/g, '\\.')}:2:9: "node\\.name": a short name`));
});
