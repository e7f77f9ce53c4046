/**
 * The process's open-files limit (RLIMIT_NOFILE). Node raises its soft limit to the hard limit
 * when it starts (src/node.cc, PlatformInit), so what is read here is already the most the
 * process may open without root raising the hard limit (LimitNOFILE= in the systemd unit).
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface OpenFilesLimit {
  soft: number;
  hard: number;
}

/** From /proc/self/limits (Linux); null where it cannot be read. "unlimited" reads as Infinity. */
export function openFilesLimit(limitsText?: string): OpenFilesLimit | null {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return null;
    }
  }
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  if (!m) return null;
  const value = (v: string) => (v === 'unlimited' ? Infinity : Number(v));
  const soft = value(m[1]!);
  const hard = value(m[2]!);
  return Number.isNaN(soft) || Number.isNaN(hard) ? null : { soft, hard };
}

/** File descriptors the process holds now (/proc/self/fd), or null where it cannot be read. */
export function openFileCount(): number | null {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return null;
  }
}
