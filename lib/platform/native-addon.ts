/**
 * Native addons (.node files) in both ways the program runs:
 * - from the project folder: the file in node_modules or in the optional native build;
 * - as the single executable (dist/minisipserver): the addon is embedded as an asset, written on
 *   first use to a private per-user cache folder under a name that carries its content hash, and
 *   checked against that hash before every load.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as sea from 'node:sea';

export type AddonName = 'better_sqlite3' | 'relay';

/** Asset key of an addon inside the single executable (scripts/build-binary.mjs uses the same). */
export function addonAssetKey(name: AddonName): string {
  return `addons/${name}.node`;
}

export function runningAsSingleExecutable(): boolean {
  return sea.isSea();
}

/** A path to a loadable .node file for `name`, or null when that addon is not available. */
export function addonPath(name: AddonName): string | null {
  return runningAsSingleExecutable() ? extractedAddonPath(name) : projectAddonPath(name);
}

const loaded = new Map<AddonName, unknown>();

/**
 * The addon's exports (process.dlopen once per process; the media relay, the SIP UDP engine and
 * sip.workers all use the same addon), or null when it is not available.
 */
export function loadAddon<T = unknown>(name: AddonName): T | null {
  if (loaded.has(name)) return loaded.get(name) as T;
  const file = addonPath(name);
  if (file === null) return null;
  const module = { exports: {} as T };
  process.dlopen(module, file);
  loaded.set(name, module.exports);
  return module.exports;
}

/**
 * The addon object to hand to a package that would otherwise look for its own .node file next to
 * its sources: only the single executable needs this (it has no node_modules); elsewhere null,
 * so the package finds its addon the usual way.
 */
export function embeddedAddon<T = unknown>(name: AddonName): T | null {
  return runningAsSingleExecutable() ? loadAddon<T>(name) : null;
}

function projectAddonPath(name: AddonName): string | null {
  let file: string;
  if (name === 'better_sqlite3') {
    const require = createRequire(import.meta.url);
    file = join(dirname(require.resolve('better-sqlite3/package.json')), 'build/Release/better_sqlite3.node');
  } else {
    // This module is lib/platform/ in the sources and build/lib/platform/ once compiled.
    const here = dirname(fileURLToPath(import.meta.url));
    const root = [resolve(here, '../..'), resolve(here, '../../..')].find((d) => existsSync(join(d, 'package.json')));
    if (root === undefined) return null;
    file = join(root, 'native/relay/build/Release/relay.node');
  }
  return existsSync(file) ? file : null;
}

function embeddedAddonBytes(name: AddonName): Buffer | null {
  try {
    return Buffer.from(sea.getRawAsset(addonAssetKey(name)) as ArrayBuffer);
  } catch {
    return null; // not embedded: the build did not find it
  }
}

function extractedAddonPath(name: AddonName): string | null {
  const bytes = embeddedAddonBytes(name);
  if (bytes === null) return null;
  const hash = sha256(bytes);
  const dir = privateCacheDir();
  const file = join(dir, `${name}-${hash.slice(0, 32)}.node`);
  if (existsSync(file) && sha256(readFileSync(file)) === hash) return file;
  // Written under a temporary name and renamed, so a concurrent start never loads half a file.
  const partial = join(dir, `.${name}-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    writeFileSync(partial, bytes, { mode: 0o500 });
    renameSync(partial, file);
  } catch (err) {
    try {
      unlinkSync(partial);
    } catch {
      // nothing was written
    }
    throw new Error(`cannot write the ${name} addon to ${dir}: ${(err as Error).message}`, { cause: err });
  }
  if (sha256(readFileSync(file)) !== hash) throw new Error(`${file}: the extracted addon does not match the embedded one`);
  return file;
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * The first usable folder of: $CACHE_DIRECTORY (set by systemd's CacheDirectory=),
 * $XDG_CACHE_HOME, ~/.cache, the system temp folder. Usable means owned by this user and closed
 * to everyone else, because a file in it is loaded as code.
 */
function privateCacheDir(): string {
  const uid = process.getuid?.() ?? -1;
  const candidates = [
    process.env.CACHE_DIRECTORY?.split(':')[0],
    process.env.XDG_CACHE_HOME ? join(process.env.XDG_CACHE_HOME, 'minisipserver') : undefined,
    safeHome() ? join(safeHome()!, '.cache', 'minisipserver') : undefined,
    join(tmpdir(), `minisipserver-${uid}`),
  ].filter((d): d is string => Boolean(d));
  const problems: string[] = [];
  for (const base of candidates) {
    const dir = join(base, 'addons');
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      chmodSync(dir, 0o700);
      const st = lstatSync(dir);
      if (!st.isDirectory()) throw new Error('not a directory');
      if (uid >= 0 && st.uid !== uid) throw new Error(`owned by uid ${st.uid}, not ${uid}`);
      if ((st.mode & 0o077) !== 0) throw new Error('open to other users');
      return dir;
    } catch (err) {
      problems.push(`${dir}: ${(err as Error).message}`);
    }
  }
  throw new Error(`no private folder to unpack native addons into (${problems.join('; ')})`);
}

function safeHome(): string | null {
  try {
    return homedir() || null;
  } catch {
    return null;
  }
}
