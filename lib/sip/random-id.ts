/**
 * Unguessable identifiers for dialogs (tags, Call-IDs of calls we start). RFC 3261 sections
 * 8.1.1.3 and 19.3 ask for cryptographically random tags; they also keep a stranger from
 * forging a BYE into somebody else's call. Drawn from a pool refilled by the CSPRNG, so a call
 * costs no system call per identifier.
 */
import { randomFillSync } from 'node:crypto';

const POOL = Buffer.alloc(4096);
let offset = POOL.length;

/** `bytes` random bytes as hex (default 12 bytes = 96 bits). */
export function randomToken(bytes = 12): string {
  if (offset + bytes > POOL.length) {
    randomFillSync(POOL);
    offset = 0;
  }
  const s = POOL.toString('hex', offset, offset + bytes);
  offset += bytes;
  return s;
}
