/**
 * Waiting in tests without letting the event loop run dry. The server's own timers are unref'd on
 * purpose (a pending retransmission, sweep or flush must never keep a process alive), so a test
 * that awaits only their effect leaves Node nothing to wait for: the run ends and the test is
 * reported as cancelled. These helpers hold the loop with a ref'd timer while they wait, and fail
 * with a message naming what was awaited when a bounded time has passed, so no test can hang.
 */

/** `work`, awaited while a ref'd guard timer keeps the event loop alive; rejects after `limitMs`. */
export async function keepAlive<T>(work: Promise<T>, what: string, limitMs = 5000): Promise<T> {
  let guard: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    guard = setTimeout(() => reject(new Error(`${what}: still pending after ${limitMs} ms`)), limitMs);
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(guard);
  }
}

/** Polls `cond` (every `everyMs`, on ref'd timers) until it holds; rejects after `limitMs`. */
export async function waitFor(cond: () => boolean, what: string | (() => string), limitMs = 5000, everyMs = 10): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!cond()) {
    if (Date.now() >= deadline) throw new Error(`timed out after ${limitMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
