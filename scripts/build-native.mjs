#!/usr/bin/env node
// Builds the native addon, media relay and SIP UDP I/O thread (native/relay -> build/Release/relay.node),
// with npm's bundled node-gyp, against the headers of the running Node when they are installed
// (offline). Never fails the install: without a compiler the relay uses its Node engine, so a
// failed build prints one warning line and exits 0.
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const addonDir = join(root, 'native', 'relay');

function findNodeGyp() {
  const candidates = [];
  // npm sets this for lifecycle scripts (postinstall).
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  const prefix = dirname(dirname(process.execPath));
  candidates.push(join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  const npmOnPath = spawnSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).stdout?.trim();
  if (npmOnPath) {
    try {
      const npmRoot = dirname(dirname(realpathSync(npmOnPath)));
      candidates.push(join(npmRoot, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
    } catch {
      // npm not resolvable: try the other candidates
    }
  }
  return candidates.find((p) => existsSync(p)) ?? null;
}

// Headers of the running Node, installed with it (e.g. /usr/include/node): no download needed.
function localNodeDir() {
  const prefix = dirname(dirname(process.execPath));
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : null;
}

function warn(reason) {
  console.warn(`minisipserver: native addon (media relay, SIP UDP I/O) not built (${reason}); the Node.js engines will be used`);
  process.exit(0);
}

const gyp = findNodeGyp();
if (!gyp) warn('node-gyp not found');
const args = [gyp, 'rebuild', '--directory', addonDir];
const nodedir = localNodeDir();
if (nodedir) args.push(`--nodedir=${nodedir}`);
const verbose = process.argv.includes('--verbose');
const r = spawnSync(process.execPath, args, { stdio: verbose ? 'inherit' : 'pipe', encoding: 'utf8', timeout: 300_000 });
if (r.status !== 0) {
  const last = `${r.stderr ?? ''}`.trim().split('\n').filter((l) => /error/i.test(l)).pop();
  warn(last ? `node-gyp failed: ${last.trim().slice(0, 200)}` : `node-gyp exited with ${r.status ?? r.signal}`);
}
if (!existsSync(join(addonDir, 'build', 'Release', 'relay.node'))) warn('no relay.node produced');
console.log('minisipserver: native addon built (media relay, SIP UDP I/O)');
