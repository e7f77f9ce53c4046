import { spawn } from 'node:child_process';
import { once } from 'node:events';

/**
 * Runs `script` (an ES module as text) in a child Node process and waits for it to exit by
 * itself: killed after `limitMs` if something keeps it alive. Returns how it ended and its stdout.
 */
export async function runUntilExit(script: string, limitMs = 8000): Promise<{ code: number | null; signal: string | null; out: string }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const guard = setTimeout(() => child.kill('SIGKILL'), limitMs);
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  clearTimeout(guard);
  return { code, signal, out };
}
