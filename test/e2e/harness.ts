import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

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

/** Starts `minisipserver serve` as a child process on 127.0.0.1 and a free port. */
export async function startServe(dataDir: string, extra: string[] = []): Promise<RunningServer> {
  const child = spawn(process.execPath, [BIN, 'serve', '--bind', '127.0.0.1', '--sip-port', '0', '--data-dir', dataDir, '--log-format', 'json', ...extra], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const port = await new Promise<number>((resolvePort, reject) => {
    const t = setTimeout(() => reject(new Error(`server did not start:\n${out}\n${err}`)), 20_000);
    const check = () => {
      const m = /listening on port (\d+)/.exec(out);
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
        if (child.exitCode !== null) return res(child.exitCode);
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

/** A UDP port free right now (bind to 0, read it, release it). */
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
  const statFile = join(cwd, 'stat.csv');
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

export function listFiles(dir: string): string[] {
  return readdirSync(dir);
}
