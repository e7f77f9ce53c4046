import { readFileSync } from 'node:fs';

// Set by scripts/build-binary.mjs: the single executable has no package.json beside it.
declare const MINISIPSERVER_BUNDLED_VERSION: string | undefined;

/** This minisipserver's version (package.json's, or the one built into the single executable). */
export function packageVersion(): string {
  if (typeof MINISIPSERVER_BUNDLED_VERSION === 'string') return MINISIPSERVER_BUNDLED_VERSION;
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    return pkg.version;
  } catch {
    return 'unknown';
  }
}
