#!/usr/bin/env node
// Builds dist/minisipserver: one executable holding Node.js, the whole CLI bundled into one
// CommonJS script, and the native addons as assets (Node's single executable applications).
//
//   node scripts/build-binary.mjs [--out dist/minisipserver] [--no-strip]
//
// Steps: esbuild bundles cli/main.ts (TypeScript sources, so no tsc run is needed first) into
// dist/.sea/main.cjs; `node --experimental-sea-config` turns it and the addons into a blob; the
// blob is injected into a copy of this node executable with postject.
//
// Commands load their modules with dynamic import(), which the bundle keeps lazy: a module runs
// only when its command does. A terminal UI on ink (for `status`) fits the same way, imported
// inside its handler; its yoga-layout dependency awaits at top level, which needs one more
// plugin below rewriting that await for the pinned version (and failing when the pattern is
// not found).
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(ROOT, 'package.json'));
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

/** Addons embedded when their file exists; the keys match lib/platform/native-addon.ts. */
const ADDONS = [
  { key: 'addons/better_sqlite3.node', file: () => join(dirname(require.resolve('better-sqlite3/package.json')), 'build/Release/better_sqlite3.node'), required: true },
  { key: 'addons/relay.node', file: () => join(ROOT, 'native/relay/build/Release/relay.node'), required: false },
];

function fail(message) {
  process.stderr.write(`build-binary: ${message}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const opts = { out: join(ROOT, 'dist/minisipserver'), strip: true };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out') opts.out = resolve(argv[++i] ?? fail('--out needs a path'));
    else if (argv[i] === '--no-strip') opts.strip = false;
    else fail(`unknown argument ${argv[i]} (accepted: --out PATH, --no-strip)`);
  }
  return opts;
}

/**
 * cli/main.ts awaits at its top level, which a CommonJS bundle cannot do: its body (everything
 * after the static imports) is wrapped in an async function that is called at once.
 */
const topLevelAwaitEntry = {
  name: 'top-level-await-entry',
  setup(build) {
    build.onLoad({ filter: /[\\/]cli[\\/]main\.ts$/ }, async (args) => {
      const ts = (await import('typescript')).default;
      const source = readFileSync(args.path, 'utf8');
      const file = ts.createSourceFile(args.path, source, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
      let bodyStart = 0;
      for (const statement of file.statements) {
        const modifiers = ts.canHaveModifiers(statement) ? ts.getModifiers(statement) : undefined;
        if (ts.isExportDeclaration(statement) || ts.isExportAssignment(statement) || modifiers?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)) {
          fail('cli/main.ts must not export anything: the bundle wraps its body in a function');
        }
        if (ts.isImportDeclaration(statement)) bodyStart = statement.end;
      }
      const contents =
        `${source.slice(0, bodyStart)}\nvoid (async () => {\n${source.slice(bodyStart)}\n})().catch((err) => {\n` +
        '  console.error(err);\n  process.exit(1);\n});\n';
      return { contents, loader: 'ts' };
    });
  },
};

async function bundle(outFile, version) {
  const esbuild = await import('esbuild');
  // yargs and yargs-parser call createRequire(import.meta.url): give them the executable's URL.
  const banner = 'const __import_meta_url = require("node:url").pathToFileURL(__filename).href;';
  await esbuild.build({
    entryPoints: [join(ROOT, 'cli/main.ts')],
    outfile: outFile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    minify: true,
    legalComments: 'none',
    banner: { js: banner },
    define: {
      'import.meta.url': '__import_meta_url',
      MINISIPSERVER_BUNDLED_VERSION: JSON.stringify(version),
    },
    plugins: [topLevelAwaitEntry],
    logLevel: 'warning',
  });
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  if (r.error) fail(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) fail(`${cmd} ${args.join(' ')} exited with ${r.status}:\n${r.stdout}${r.stderr}`);
}

/** Node's many .note sections make the ELF library inside postject warn about their names. */
const harmlessWarning = /string offset for section name/;

async function injectQuietly(executable, blob) {
  const { inject } = require('postject');
  const saved = { warn: console.warn, error: console.error, log: console.log };
  for (const k of Object.keys(saved)) {
    console[k] = (...args) => {
      if (!harmlessWarning.test(args.map(String).join(' '))) saved[k](...args);
    };
  }
  try {
    await inject(executable, 'NODE_SEA_BLOB', blob, { sentinelFuse: SEA_FUSE });
  } finally {
    Object.assign(console, saved);
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;
  const work = join(dirname(opts.out), '.sea');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });

  const started = Date.now();
  const mainScript = join(work, 'main.cjs');
  await bundle(mainScript, version);

  const assets = {};
  for (const addon of ADDONS) {
    const file = addon.file();
    if (existsSync(file)) assets[addon.key] = file;
    else if (addon.required) fail(`${file} is missing: run \`npm ci\` (it builds the SQLite addon) first`);
  }
  const blob = join(work, 'sea-prep.blob');
  const seaConfig = join(work, 'sea-config.json');
  writeFileSync(
    seaConfig,
    JSON.stringify({ main: mainScript, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true, assets }, null, 2),
  );
  run(process.execPath, ['--experimental-sea-config', seaConfig]);

  rmSync(opts.out, { force: true });
  copyFileSync(process.execPath, opts.out);
  chmodSync(opts.out, 0o755);
  if (opts.strip) {
    // The dynamic symbol table that the addons link against is kept by strip.
    const r = spawnSync('strip', [opts.out], { stdio: 'inherit' });
    if (r.error) process.stderr.write('build-binary: strip not found; the executable keeps its symbols\n');
    else if (r.status !== 0) fail('strip failed');
  }
  await injectQuietly(opts.out, readFileSync(blob));

  const mb = (statSync(opts.out).size / 1e6).toFixed(1);
  const embedded = Object.keys(assets).map((k) => k.replace(/^addons\//, '')).join(', ');
  process.stdout.write(
    `${relative(process.cwd(), opts.out) || opts.out}: ${mb} MB, version ${version}, addons: ${embedded} (${((Date.now() - started) / 1000).toFixed(1)} s)\n`,
  );
}

await main();
