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
// only when its command does. The terminal UI of `status` (ink) is imported inside its handler
// the same way; ink and its yoga-layout dependency await at top level, which the inkForCommonJs
// plugin below rewrites for the pinned versions (failing when a pattern is not found).
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

/**
 * ink (the `status` screen) and its layout engine yoga-layout await at their top level, which a
 * CommonJS bundle cannot do. The rewrites below were written for these exact versions; another
 * version fails the build here rather than making an executable whose `status` breaks.
 */
const INK_PINS = { ink: '6.8.0', 'yoga-layout': '3.2.1' };

/** Fails unless `file` belongs to package `name` at its pinned version. */
function checkPin(name, file) {
  for (let dir = dirname(file); dir !== dirname(dir); dir = dirname(dir)) {
    let pkg;
    try {
      pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    } catch {
      continue;
    }
    if (pkg.name !== name) continue;
    if (pkg.version !== INK_PINS[name]) {
      fail(
        `${name} is ${pkg.version} (${dir}), but the top-level-await rewrite for ink (inkForCommonJs in ` +
          `scripts/build-binary.mjs) was written for ${name} ${INK_PINS[name]}: check that its patterns still hold, then update INK_PINS`,
      );
    }
    return;
  }
  fail(`${file}: no package.json of ${name} above it`);
}

/**
 * Three rewrites, each failing the build when its pattern is not found exactly once:
 * - yoga-layout's wasm loader (Emscripten, the wasm embedded as base64): the base64 is exported
 *   from the module so that the entry can compile it itself;
 * - yoga-layout's entry, `wrapAssembly(await loadYoga())`: the loader is given an
 *   `instantiateWasm` that compiles synchronously (WebAssembly.Module/Instance), which makes
 *   Emscripten fill in the module object before loadYoga() returns; no await is needed;
 * - ink's reconciler: its two top-level awaits only serve React DevTools when DEV=true (a
 *   dynamic import of react-devtools-core, not installed); dropped.
 */
function inkForCommonJs() {
  const applied = new Set();
  const replaceOnce = (file, source, pattern, replacement, what) => {
    const hits = source.split(pattern).length - 1;
    if (hits !== 1) fail(`${file}: ${what}: expected the pattern ${JSON.stringify(pattern.slice(0, 80))} once, found it ${hits} times (another version of ink or yoga-layout? see INK_PINS)`);
    return source.replace(pattern, () => replacement);
  };
  return {
    name: 'ink-for-commonjs',
    setup(build) {
      build.onStart(() => {
        applied.clear();
      });
      build.onLoad({ filter: /[\\/]yoga-layout[\\/]dist[\\/]binaries[\\/]yoga-wasm-base64-esm\.js$/ }, (args) => {
        checkPin('yoga-layout', args.path);
        const source = readFileSync(args.path, 'utf8');
        const m = /H="data:application\/octet-stream;base64,([A-Za-z0-9+/=]+)"/.exec(source);
        if (!m) fail(`${args.path}: the embedded wasm (H="data:application/octet-stream;base64,...") was not found`);
        let contents = replaceOnce(args.path, source, m[0], 'H="data:application/octet-stream;base64,"+YOGA_WASM_BASE64', 'the embedded wasm');
        contents = `export const YOGA_WASM_BASE64 = ${JSON.stringify(m[1])};\n${contents}`;
        applied.add('yoga-wasm');
        return { contents, loader: 'js' };
      });
      build.onLoad({ filter: /[\\/]yoga-layout[\\/]dist[\\/]src[\\/]index\.js$/ }, (args) => {
        checkPin('yoga-layout', args.path);
        const source = readFileSync(args.path, 'utf8');
        let contents = replaceOnce(
          args.path,
          source,
          "import loadYoga from '../binaries/yoga-wasm-base64-esm.js';",
          "import loadYoga, { YOGA_WASM_BASE64 } from '../binaries/yoga-wasm-base64-esm.js';",
          'the import of the loader',
        );
        contents = replaceOnce(
          args.path,
          contents,
          'const Yoga = wrapAssembly(await loadYoga());',
          [
            'const yogaModule = {',
            '  instantiateWasm(imports, receive) {',
            "    const instance = new WebAssembly.Instance(new WebAssembly.Module(Buffer.from(YOGA_WASM_BASE64, 'base64')), imports);",
            '    receive(instance);',
            '    return instance.exports;',
            '  },',
            '};',
            'loadYoga(yogaModule).catch(() => {});',
            "if (!yogaModule.calledRun) throw new Error('yoga-layout did not initialise synchronously (scripts/build-binary.mjs inkForCommonJs)');",
            'const Yoga = wrapAssembly(yogaModule);',
          ].join('\n'),
          'the top-level await of loadYoga()',
        );
        applied.add('yoga-entry');
        return { contents, loader: 'js' };
      });
      build.onLoad({ filter: /[\\/]ink[\\/]build[\\/]reconciler\.js$/ }, (args) => {
        checkPin('ink', args.path);
        const source = readFileSync(args.path, 'utf8');
        let contents = replaceOnce(args.path, source, "await import('./devtools.js');", "throw Object.assign(new Error('React DevTools are not in the single executable'), { code: 'ERR_MODULE_NOT_FOUND' });", 'the DevTools import');
        contents = replaceOnce(args.path, contents, '? await loadPackageJson()', '? { name: undefined, version: undefined }', 'the package.json read for DevTools');
        applied.add('ink-reconciler');
        return { contents, loader: 'js' };
      });
      build.onEnd((result) => {
        if (result.errors.length > 0) return;
        const missing = ['yoga-wasm', 'yoga-entry', 'ink-reconciler'].filter((k) => !applied.has(k));
        if (missing.length > 0) fail(`the ink rewrites ${missing.join(', ')} were not applied: are ink and yoga-layout still bundled from the paths the filters expect?`);
      });
    },
  };
}

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
      // ws tries its optional native helpers with require(); in a single executable that require
      // of a non-built-in module prints a warning at every start. Node's own code is used instead.
      'process.env.WS_NO_BUFFER_UTIL': '"1"',
      'process.env.WS_NO_UTF_8_VALIDATE': '"1"',
    },
    plugins: [topLevelAwaitEntry, inkForCommonJs()],
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
