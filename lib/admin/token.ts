/**
 * The admin API's bearer token and the file that tells `minisipserver status` where the API is.
 *
 * `<data dir>/admin.token` holds 32 random bytes in hex, created at the first start with mode 0600
 * and read at every later one; the token itself is never logged. `<data dir>/admin.address` holds
 * one line, the URL of the running admin API (`http://127.0.0.1:8080`): written when the listener
 * is up, removed when the server stops.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fstatSync, linkSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync, constants } from 'node:fs';
import { join } from 'node:path';

export const TOKEN_FILE = 'admin.token';
export const ADDRESS_FILE = 'admin.address';

type Level = 'debug' | 'info' | 'warn' | 'error';
type Log = (level: Level, event: string, fields: Record<string, unknown>) => void;

/** What a token file may hold: printable ASCII without spaces, 16 to 512 characters. */
const TOKEN_SHAPE = /^[\x21-\x7e]{16,512}$/;

/** The token file's path in `dataDir`. */
export function tokenPath(dataDir: string): string {
  return join(dataDir, TOKEN_FILE);
}

/** The address file's path in `dataDir`. */
export function addressPath(dataDir: string): string {
  return join(dataDir, ADDRESS_FILE);
}

/**
 * The admin token of `dataDir`: read from `admin.token`, or created there (mode 0600) when the file
 * does not exist. A file that group or others can read is made 0600, with a warning; one whose
 * content is no token (empty, spaces, binary) is replaced by a new token, with a warning. Several
 * processes starting at once agree on one token (the file appears whole or not at all). Throws
 * when the file can be neither read nor created.
 */
export function loadOrCreateToken(dataDir: string, log: Log = () => {}): string {
  mkdirSync(dataDir, { recursive: true });
  const path = tokenPath(dataDir);
  for (let attempt = 0; attempt < 3; attempt++) {
    const existing = readToken(path, log);
    if (existing === 'absent') {
      const created = createToken(path);
      if (created !== null) {
        log('info', 'admin.token_created', { file: path });
        return created;
      }
      continue; // another process created it meanwhile: read that one
    }
    if (existing === 'invalid') {
      log('warn', 'admin.token_replaced', { file: path, hint: 'the token file held no usable token; a new one was written (clients need the new file)' });
      const token = newToken();
      writeAtomically(path, token + '\n', 0o600);
      return token;
    }
    return existing;
  }
  throw new Error(`cannot read or create the admin token file ${path}`);
}

function newToken(): string {
  return randomBytes(32).toString('hex');
}

/** The token in `path`, 'absent' when there is no file, 'invalid' when it holds no token. */
function readToken(path: string, log: Log): string | 'absent' | 'invalid' {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw new Error(`cannot read the admin token file ${path}: ${(err as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`the admin token file ${path} is not a regular file`);
    if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
      chmodSync(path, 0o600);
      log('warn', 'admin.token_mode_fixed', {
        file: path,
        was: '0' + (st.mode & 0o777).toString(8),
        now: '0600',
        hint: 'other users could read the admin token; consider replacing it (delete the file and restart)',
      });
    }
    if (st.size > 4096) return 'invalid';
    const text = readFileSync(fd, 'utf8').trim();
    return TOKEN_SHAPE.test(text) ? text : 'invalid';
  } finally {
    closeSync(fd);
  }
}

/** Creates `path` with a new token, or returns null when the file exists already. */
function createToken(path: string): string | null {
  const token = newToken();
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, token + '\n', { mode: 0o600, flag: 'wx' });
  try {
    chmodSync(tmp, 0o600);
    // link() fails when the name is taken: whichever process links first wins, and nobody ever
    // reads a half-written token.
    linkSync(tmp, path);
    return token;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return null;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw err;
    // A file system without hard links: exclusive create instead.
    try {
      writeFileSync(path, token + '\n', { mode: 0o600, flag: 'wx' });
      return token;
    } catch (err2) {
      if ((err2 as NodeJS.ErrnoException).code === 'EEXIST') return null;
      throw err2;
    }
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // gone already
    }
  }
}

function writeAtomically(path: string, text: string, mode: number): void {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, text, { mode, flag: 'wx' });
  try {
    chmodSync(tmp, mode);
    renameSync(tmp, path);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // gone already
    }
    throw err;
  }
}

/** Writes `<data dir>/admin.address`: one line, the URL of the admin API (`http://127.0.0.1:8080`). */
export function writeAdminAddress(dataDir: string, url: string): void {
  mkdirSync(dataDir, { recursive: true });
  writeAtomically(addressPath(dataDir), url + '\n', 0o644);
}

/**
 * Removes `<data dir>/admin.address`. With `url`, only when the file still names that URL (a
 * server started meanwhile on the same data dir keeps its own). Never throws.
 */
export function removeAdminAddress(dataDir: string, url?: string): void {
  const path = addressPath(dataDir);
  try {
    if (url !== undefined && readFileSync(path, 'utf8').trim() !== url) return;
    unlinkSync(path);
  } catch {
    // no file, or not ours to remove
  }
}

/** The URL in `<data dir>/admin.address`, or null when there is none (no server running there). */
export function readAdminAddress(dataDir: string): string | null {
  try {
    const line = readFileSync(addressPath(dataDir), 'utf8').split('\n')[0]?.trim() ?? '';
    return /^https?:\/\/\S+$/.test(line) ? line : null;
  } catch {
    return null;
  }
}
