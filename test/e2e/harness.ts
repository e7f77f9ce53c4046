import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { claimPorts } from '../helpers/ports.js';

export const REPO = process.cwd();
export const SHARED = resolve(REPO, '../shared');
export const BIN = join(REPO, 'bin/minisipserver');

export function hasSipp(): boolean {
  return spawnSync('sipp', ['-v'], { encoding: 'utf8' }).error === undefined;
}

/** Runs the real CLI to completion. */
export function cli(args: string[], opts: { cwd?: string } = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: opts.cwd ?? REPO, timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export interface RunningServer {
  child: ChildProcess;
  port: number;
  dataDir: string;
  stdout: () => string;
  stderr: () => string;
  stop(): Promise<number | null>;
}

/**
 * Starts `minisipserver serve` as a child process on 127.0.0.1 and a free port. A server that
 * relays calls is given `relayPorts` media ports of its own (test files run side by side): written
 * into the file of `--config` when there is one (which must not set them), else into one of its own.
 */
export async function startServe(dataDir: string, extra: string[] = [], opts: { relayPorts?: number } = {}): Promise<RunningServer> {
  const media = opts.relayPorts ? await claimPorts(opts.relayPorts) : undefined;
  if (media) {
    const at = extra.indexOf('--config');
    const file = at >= 0 ? extra[at + 1]! : join(tempDir('mss-serve-config-'), 'config.yaml');
    const doc = parseDocument(at >= 0 ? readFileSync(file, 'utf8') : '');
    doc.setIn(['media', 'portMin'], media.portMin);
    doc.setIn(['media', 'portMax'], media.portMax);
    writeFileSync(file, String(doc));
    if (at < 0) extra = [...extra, '--config', file];
  }
  // The call-back service's default port (5080) would be shared by servers started side by side.
  if (!extra.includes('--callback-port')) extra = [...extra, '--callback-port', '0'];
  // So would the admin listener's (8080) and the event channel's (TCP 5080).
  if (!extra.includes('--admin-listen')) extra = [...extra, '--admin-listen', '127.0.0.1:0'];
  if (!extra.includes('--event-channel-port')) extra = [...extra, '--event-channel-port', '0'];
  const child = spawn(process.execPath, [BIN, 'serve', '--bind', '127.0.0.1', '--sip-port', '0', '--data-dir', dataDir, '--log-format', 'json', ...extra], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  child.once('exit', () => media?.release());
  const port = await new Promise<number>((resolvePort, reject) => {
    const t = setTimeout(() => reject(new Error(`server did not start:\n${out}\n${err}`)), 20_000);
    const check = () => {
      // The whole number: a read may end inside it.
      const m = /listening on port (\d+) /.exec(out);
      if (m) {
        clearTimeout(t);
        resolvePort(Number(m[1]));
      }
    };
    child.stdout!.on('data', check);
    child.on('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`server exited with ${code}:\n${out}\n${err}`));
    });
  });
  return {
    child,
    port,
    dataDir,
    stdout: () => out,
    stderr: () => err,
    stop: () =>
      new Promise((res) => {
        if (child.exitCode !== null || child.signalCode !== null) return res(child.exitCode);
        const t = setTimeout(() => child.kill('SIGKILL'), 6000);
        child.once('exit', (code, signal) => {
          clearTimeout(t);
          if (code === null) process.stderr.write(`server ended by ${signal}; stderr:\n${err}\n`);
          res(code);
        });
        child.kill('SIGTERM');
      }),
  };
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * A UDP port free right now (bind to 0, read it, release it). Another program may take it before
 * whoever it is given to binds it: see runSippOnFreePort and startSippUas, which choose again then.
 */
export async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(r));
  return port;
}

export interface SippResult {
  code: number | null;
  successful: number;
  failed: number;
  out: string;
}

/** Runs a SIPp scenario to completion (bounded by -m, -timeout and a kill timer) and reads its final counters. */
export async function runSipp(args: string[], cwd: string, timeoutMs = 120_000): Promise<SippResult> {
  const statFile = join(cwd, 'stat.csv');
  rmSync(statFile, { force: true }); // counters of an earlier run in this folder must not pass for this one's
  const child = spawn('sipp', [...args, '-nostdin', '-trace_stat', '-stf', 'stat.csv', '-fd', '1'], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const code = await new Promise<number | null>((res) => {
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (c) => {
      clearTimeout(t);
      res(c);
    });
  });
  let successful = -1;
  let failed = -1;
  if (existsSync(statFile)) {
    const lines = readFileSync(statFile, 'utf8').trim().split('\n');
    const head = lines[0]!.split(';');
    const last = lines[lines.length - 1]!.split(';');
    successful = Number(last[head.indexOf('SuccessfulCall(C)')]);
    failed = Number(last[head.indexOf('FailedCall(C)')]);
  }
  return { code, successful, failed, out };
}

/** SIPp's words when the port given with -p is taken (it then exits at once). */
const SIPP_PORT_TAKEN = /Unable to bind main socket/;

/** runSipp with `-i 127.0.0.1 -p <a free port>`; a port taken before SIPp binds it is chosen again. */
export async function runSippOnFreePort(args: (port: number) => string[], cwd: string, timeoutMs?: number): Promise<SippResult> {
  for (let attempt = 1; ; attempt++) {
    const port = await freeUdpPort();
    const r = await runSipp(['-i', '127.0.0.1', '-p', String(port), ...args(port)], cwd, timeoutMs);
    if (attempt < 5 && SIPP_PORT_TAKEN.test(r.out)) continue;
    return r;
  }
}

/** True when process `pid` holds a UDP socket bound to 127.0.0.1:`port` (Linux: /proc). */
function holdsUdpPort(pid: number, port: number): boolean {
  return udpSocketsOf(pid).some((s) => s.address === '127.0.0.1' && s.port === port);
}

/** The UDP sockets process `pid` holds (from the kernel's socket tables), IPv4 and IPv6; [] once it is gone. */
export function udpSocketsOf(pid: number): Array<{ address: string; port: number }> {
  const byInode = new Map<string, { address: string; port: number }>();
  for (const table of ['/proc/net/udp', '/proc/net/udp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      const [hexAddress, hexPort] = (f[1] ?? '').split(':');
      if (!hexAddress || !hexPort || f[9] === undefined) continue;
      byInode.set(f[9], { address: hexAddress.length === 8 ? hexAddress.match(/../g)!.reverse().map((b) => parseInt(b, 16)).join('.') : hexAddress, port: parseInt(hexPort, 16) });
    }
  }
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return [];
  }
  const out: Array<{ address: string; port: number }> = [];
  for (const fd of fds) {
    try {
      const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
      const s = inode === undefined ? undefined : byInode.get(inode);
      if (s) out.push(s);
    } catch {
      // the descriptor closed meanwhile
    }
  }
  return out;
}

export interface SippUas {
  port: number;
  /** Ends this SIPp (by its pid) and waits for its exit. */
  stop(): Promise<void>;
}

/**
 * Starts a SIPp scenario that waits for calls (`-sf uas_call.xml ...`) on 127.0.0.1 and a free
 * port, and returns once SIPp holds that port: a call sent after that is not lost to a SIPp still
 * starting. A port taken before SIPp binds it is chosen again.
 */
export async function startSippUas(args: string[], cwd: string): Promise<SippUas> {
  for (let attempt = 1; ; attempt++) {
    const port = await freeUdpPort();
    const child = spawn('sipp', [...args, '-i', '127.0.0.1', '-p', String(port), '-nostdin'], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<void>((res) => child.once('exit', () => res()));
    const deadline = Date.now() + 10_000;
    while (child.exitCode === null && child.signalCode === null && !holdsUdpPort(child.pid!, port) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    if (child.exitCode === null && child.signalCode === null && holdsUdpPort(child.pid!, port)) {
      return {
        port,
        stop: async () => {
          child.kill('SIGKILL');
          await exited;
        },
      };
    }
    child.kill('SIGKILL');
    await exited;
    if (attempt < 5 && SIPP_PORT_TAKEN.test(out)) continue;
    throw new Error(`SIPp did not start on port ${port}:\n${out.slice(-2000)}`);
  }
}

export function listFiles(dir: string): string[] {
  return readdirSync(dir);
}
