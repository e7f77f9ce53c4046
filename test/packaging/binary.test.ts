// Builds the single executable once (a few seconds) and runs it the way a server would: moved
// away from the checkout, started from an empty folder, with no node on the PATH. Then packages
// it as a .deb and checks the package. Skipped only where the build tools (devDependencies) are
// not installed.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { hasSipp, runSippOnFreePort, SHARED, tempDir } from '../e2e/harness.js';
import { Phone } from '../helpers/phone.js';
import { UdpPeer } from '../helpers/sip-peer.js';
import { parseConfigText } from '../../lib/config/load.js';

const REPO = process.cwd();
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

function buildToolsInstalled(): boolean {
  const require = createRequire(join(REPO, 'package.json'));
  try {
    require.resolve('esbuild');
    require.resolve('postject');
    return true;
  } catch {
    return false;
  }
}

const skip = buildToolsInstalled() ? false : 'esbuild/postject are not installed (npm ci installs them)';
const root = tempDir('mss-binary-');
const binary = join(root, 'opt', 'minisipserver');
const emptyCwd = join(root, 'cwd');
const emptyPath = join(root, 'no-node-here');
const home = join(root, 'home');
/** The environment of a machine without Node.js: nothing on the PATH, a fresh home. */
const bareEnv = { PATH: emptyPath, HOME: home, LANG: 'C.UTF-8' };

function runBinary(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(binary, args, { cwd: emptyCwd, env: bareEnv, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

before(() => {
  if (skip) return;
  const built = join(root, 'build', 'minisipserver');
  const r = spawnSync(process.execPath, ['scripts/build-binary.mjs', '--out', built], { cwd: REPO, encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, `build-binary failed:\n${r.stdout}\n${r.stderr}`);
  for (const d of [join(root, 'opt'), emptyCwd, emptyPath, home]) mkdirSync(d, { recursive: true });
  copyFileSync(built, binary);
  chmodSync(binary, 0o755);
});

// Several copies of a 90 MB executable: not left behind in the temp folder.
after(() => rmSync(root, { recursive: true, force: true }));

test('the environment hides node', { skip }, () => {
  const r = spawnSync('node', ['-e', '0'], { env: bareEnv, cwd: emptyCwd });
  assert.equal((r.error as NodeJS.ErrnoException | undefined)?.code, 'ENOENT');
});

test('--version prints the package version', { skip }, () => {
  const r = runBinary(['--version']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${VERSION}\n`);
  assert.equal(r.stderr, '');
  assert.deepEqual(readdirSync(emptyCwd), [], '--version writes nothing');
  assert.deepEqual(readdirSync(home), [], '--version does not load the SQLite addon');
});

test('ext add and ext list use the embedded SQLite addon, unpacked into a private cache', { skip }, () => {
  const add = runBinary(['ext', 'add', '201', '--password', 'binary-pass-201', '--name', 'Front Desk', '--data-dir', 'data']);
  assert.equal(add.code, 0, add.stderr);
  const list = runBinary(['ext', 'list', '--json', '--data-dir', 'data']);
  assert.equal(list.code, 0, list.stderr);
  const rows = JSON.parse(list.stdout) as Array<{ number: string; displayName?: string; name?: string }>;
  assert.deepEqual(rows.map((r) => r.number), ['201']);
  assert.ok(existsSync(join(emptyCwd, 'data', 'minisipserver.db')));

  const cache = join(home, '.cache', 'minisipserver', 'addons');
  assert.equal(statSync(cache).mode & 0o777, 0o700);
  const [addon] = readdirSync(cache).filter((f) => f.endsWith('.node'));
  assert.match(addon ?? '', /^better_sqlite3-[0-9a-f]{32}\.node$/);

  // A damaged cached copy is detected by its hash and replaced before it is loaded.
  const file = join(cache, addon!);
  const good = readFileSync(file);
  chmodSync(file, 0o600);
  writeFileSync(file, 'not an addon');
  const again = runBinary(['ext', 'list', '--data-dir', 'data']);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /^201\b/m);
  assert.ok(readFileSync(file).equals(good));
});

/** Starts `serve` from the binary with `extra` arguments, checks an OPTIONS answer, stops it with SIGTERM. */
async function serveAnswersOptions(extra: string[], dataDir: string): Promise<string> {
  const child = spawn(binary, ['serve', '--bind', '127.0.0.1', '--sip-port', '0', '--data-dir', dataDir, '--log-format', 'json', ...extra], {
    cwd: emptyCwd,
    env: bareEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  const peer = await UdpPeer.open();
  try {
    const port = await new Promise<number>((res, rej) => {
      const t = setTimeout(() => rej(new Error(`no port announced:\n${out}\n${err}`)), 20_000);
      const check = () => {
        const m = /listening on port (\d+) /.exec(out); // the whole number: a read may end inside it
        if (m) {
          clearTimeout(t);
          res(Number(m[1]));
        }
      };
      child.stdout.on('data', check);
      void exited.then((code) => rej(new Error(`serve exited with ${code}:\n${out}\n${err}`)));
    });
    const res = await peer.request(
      [`OPTIONS sip:127.0.0.1:${port} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${peer.port};branch=z9hG4bK-bin1`, 'Max-Forwards: 70',
        'From: <sip:t@127.0.0.1>;tag=1', 'To: <sip:127.0.0.1>', 'Call-ID: binary-1', 'CSeq: 1 OPTIONS', 'Content-Length: 0', '', ''].join('\r\n'),
      port,
    );
    assert.equal(res.status, 200);
    assert.match(res.headers.get('allow') ?? '', /OPTIONS/);
  } finally {
    peer.close();
    const started = Date.now();
    child.kill('SIGTERM');
    const kill = setTimeout(() => child.kill('SIGKILL'), 8000);
    const code = await exited;
    clearTimeout(kill);
    assert.equal(code, 0, err);
    assert.ok(Date.now() - started < 5000, 'exits within 5 s of SIGTERM');
  }
  return err;
}

test('tls self-signed runs from the executable: the certificate library is in it', { skip }, () => {
  const r = runBinary(['tls', 'self-signed', '--host', 'pbx.example.test', '--out', 'tls']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /SHA-256 fingerprint: ([0-9A-F]{2}:){31}[0-9A-F]{2}/);
  assert.match(readFileSync(join(emptyCwd, 'tls', 'cert.pem'), 'utf8'), /^-----BEGIN CERTIFICATE-----/);
  assert.equal(statSync(join(emptyCwd, 'tls', 'key.pem')).mode & 0o777, 0o600);
});

test('serve answers OPTIONS over UDP and stops cleanly on SIGTERM', { skip }, async () => {
  const err = await serveAnswersOptions([], 'serve-data');
  const events = err.trim().split('\n').map((l) => (JSON.parse(l) as { event: string }).event);
  assert.ok(events.includes('server.started') && events.includes('server.stopped'), err);
});

test('serve with sip.workers 2: the executable starts its workers, answers OPTIONS, stops them on SIGTERM', { skip }, async () => {
  writeFileSync(join(emptyCwd, 'workers.yaml'), 'sip:\n  workers: 2\n  transports: [udp]\n');
  const err = await serveAnswersOptions(['--config', 'workers.yaml'], 'workers-data');
  const started = err.trim().split('\n').filter((l) => l.includes('"server.started"'));
  assert.equal(started.length, 2, err);
});

function runBinaryAsync(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { cwd: emptyCwd, env: bareEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${args.join(' ')}: no exit within 20 s`));
    }, 20_000);
    child.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

const hasTmux = spawnSync('tmux', ['-V']).error === undefined;

test('status from the executable: --help, --once, and the ink screen under tmux while phones register', { skip: skip || (hasTmux ? false : 'tmux is not installed') }, async () => {
  const help = runBinary(['status', '--help']);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /--once/);
  const down = await runBinaryAsync(['status', '--data-dir', 'no-server-here']);
  assert.equal(down.code, 2);
  assert.match(down.stderr, /^minisipserver status: the server is not running: [^\n]+\n$/);

  // A server from the executable with 12 extensions and its admin API on a free port.
  const users = join(root, 'status-users');
  assert.equal(spawnSync('bash', [join(SHARED, 'lab/sipp/gen-users.sh'), users, '12', '1000']).status, 0);
  const imported = runBinary(['ext', 'import', join(users, 'users.txt'), '--data-dir', 'status-data']);
  assert.equal(imported.code, 0, imported.stderr);
  writeFileSync(join(emptyCwd, 'status.yaml'), 'auth:\n  algorithms: [MD5, SHA-256]\n');
  const serve = spawn(
    binary,
    ['serve', '--bind', '127.0.0.1', '--sip-port', '0', '--data-dir', 'status-data', '--log-format', 'json', '--config', 'status.yaml', '--admin-listen', '127.0.0.1:0', '--event-channel-port', '0', '--callback-port', '0'],
    { cwd: emptyCwd, env: bareEnv, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  serve.stdout.on('data', (d) => (out += d));
  serve.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((res) => serve.on('exit', (code) => res(code)));
  const socket = `mss-binary-${process.pid}`;
  const tmux = (...a: string[]) => spawnSync('tmux', ['-L', socket, ...a], { encoding: 'utf8' });
  const phones: Phone[] = [];
  try {
    const until = async (ok: () => boolean, what: string, detail: () => string) => {
      const end = Date.now() + 20_000;
      while (!ok()) {
        if (Date.now() > end) assert.fail(`timed out waiting for ${what}:\n${detail()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    await until(() => /listening on port \d+ /.test(out) && existsSync(join(emptyCwd, 'status-data', 'admin.address')), 'serve', () => out);
    const sipPort = Number(/listening on port (\d+) /.exec(out)![1]);

    const once = await runBinaryAsync(['status', '--data-dir', 'status-data', '--once']);
    assert.equal(once.code, 0, once.stderr);
    assert.match(once.stdout, /extensions 0\/12 registered, calls 0 active/);
    assert.match(once.stdout, /^1011 +offline +0$/m);

    const screen = () => tmux('capture-pane', '-p', '-t', 'status').stdout;
    const env = Object.entries({ ...bareEnv, TERM: 'xterm-256color' }).map(([k, v]) => `${k}=${v}`);
    const command = ['/usr/bin/env', '-i', ...env, binary, 'status', '--data-dir', 'status-data'].map((w) => `'${w}'`).join(' ');
    const started = tmux('new-session', '-d', '-s', 'status', '-x', '80', '-y', '24', '-c', emptyCwd, `${command}; echo EXIT=$?; sleep 30`);
    assert.equal(started.status, 0, started.stderr);
    await until(() => /● live/.test(screen()) && /extensions 0\/12 registered/.test(screen()), 'the first screen', screen);

    // Ten phones register (SIPp when installed) while the screen is up.
    if (hasSipp()) {
      const reg = await runSippOnFreePort(
        (port) => ['-sf', join(SHARED, 'lab/sipp/reg_auth.xml'), '-key', 'contact_host', '127.0.0.1', '-key', 'contact_port', String(port), '-key', 'expires', '3600', '-m', '10', '-r', '10', '-timeout', '60', '-inf', join(users, 'users.csv'), `127.0.0.1:${sipPort}`],
        root,
      );
      assert.equal(reg.successful, 10, reg.out.slice(-1500));
    } else {
      for (let i = 0; i < 10; i++) {
        const p = await Phone.open(String(1000 + i), `pw${1000 + i}`, sipPort);
        phones.push(p);
        await p.register(3600);
      }
    }
    await until(() => /extensions 10\/12 registered/.test(screen()), 'the registrations on screen', screen);
    assert.match(screen(), /^1009 +online +1 .*127\.0\.0\.1:\d+ /m);
    assert.match(screen(), /^1011 +offline +0/m);
    tmux('send-keys', '-t', 'status', 'Tab');
    await until(() => /CALLER -> CALLEE/.test(screen()) && /no calls/.test(screen()), 'the Calls pane', screen);
    tmux('send-keys', '-t', 'status', 'q');
    await until(() => /^EXIT=0$/m.test(screen()), 'q to quit', screen);
  } finally {
    tmux('kill-server');
    for (const p of phones) p.close();
    serve.kill('SIGTERM');
    const kill = setTimeout(() => serve.kill('SIGKILL'), 8000);
    await exited;
    clearTimeout(kill);
  }
});

const hasDpkg = spawnSync('dpkg-deb', ['--version']).error === undefined;

test('the .deb holds the executable, unit, conffile and maintainer scripts', { skip: skip || (hasDpkg ? false : 'dpkg-deb is not installed') }, () => {
  const debDir = join(root, 'deb');
  const built = spawnSync('bash', ['scripts/build-deb.sh', '--binary', binary, '--out', debDir, '--compression', 'none'], { cwd: REPO, encoding: 'utf8' });
  assert.equal(built.status, 0, built.stderr);
  const arch = spawnSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).stdout.trim();
  const deb = join(debDir, `minisipserver_${VERSION}_${arch}.deb`);
  assert.equal(built.stdout.trim(), deb);

  const info = spawnSync('dpkg-deb', ['--info', deb], { encoding: 'utf8' }).stdout;
  assert.match(info, /^ Package: minisipserver$/m);
  assert.match(info, new RegExp(`^ Version: ${VERSION.replace(/\./g, '\\.')}$`, 'm'));
  assert.match(info, new RegExp(`^ Architecture: ${arch}$`, 'm'));
  assert.match(info, /^ Depends: .*libc6.*libstdc\+\+6/m);

  const contents = spawnSync('dpkg-deb', ['--contents', deb], { encoding: 'utf8' }).stdout;
  const entry = (path: string) => contents.split('\n').find((l) => l.endsWith(` ${path}`)) ?? '';
  assert.match(entry('./usr/bin/minisipserver'), /^-rwxr-xr-x root\/root/);
  assert.match(entry('./lib/systemd/system/minisipserver.service'), /^-rw-r--r-- root\/root/);
  assert.match(entry('./etc/minisipserver/minisipserver.yaml'), /^-rw-r----- root\/root/);
  assert.match(entry('./usr/share/doc/minisipserver/examples/mariadb.conf'), /^-rw-r--r--/);
  assert.match(entry('./'), /^drwxr-xr-x root\/root/);

  const control = join(root, 'control');
  assert.equal(spawnSync('dpkg-deb', ['--control', deb, control]).status, 0);
  assert.equal(readFileSync(join(control, 'conffiles'), 'utf8'), '/etc/minisipserver/minisipserver.yaml\n');
  for (const script of ['postinst', 'prerm', 'postrm']) {
    assert.equal(statSync(join(control, script)).mode & 0o777, 0o755, script);
    const syntax = spawnSync('sh', ['-n', join(control, script)], { encoding: 'utf8' });
    assert.equal(syntax.status, 0, `${script}: ${syntax.stderr}`);
  }
  const postinst = readFileSync(join(control, 'postinst'), 'utf8');
  assert.match(postinst, /useradd --system[^\n]*\\\n[^\n]*minisipserver$/m);
  assert.match(postinst, /install -d -m 0750 -o minisipserver -g minisipserver \/var\/lib\/minisipserver/);
  assert.match(postinst, /systemctl enable minisipserver\.service/);
  const prerm = readFileSync(join(control, 'prerm'), 'utf8');
  assert.match(prerm, /remove\|upgrade\|deconfigure\)[\s\S]*systemctl stop minisipserver\.service/);
  assert.match(readFileSync(join(control, 'postrm'), 'utf8'), /purge\)[\s\S]*rm -rf \/var\/lib\/minisipserver/);

  // The unpacked files work: the executable runs, the configuration loads, the unit verifies.
  const tree = join(root, 'tree');
  assert.equal(spawnSync('dpkg-deb', ['-x', deb, tree]).status, 0);
  const v = spawnSync(join(tree, 'usr/bin/minisipserver'), ['--version'], { env: bareEnv, cwd: emptyCwd, encoding: 'utf8' });
  assert.equal(v.stdout, `${VERSION}\n`);
  const config = parseConfigText(readFileSync(join(tree, 'etc/minisipserver/minisipserver.yaml'), 'utf8'));
  assert.equal(config.log.format, 'text');
  if (spawnSync('systemd-analyze', ['--version']).error === undefined) {
    const unit = join(root, 'unit', 'minisipserver.service');
    mkdirSync(resolve(unit, '..'), { recursive: true });
    const text = readFileSync(join(tree, 'lib/systemd/system/minisipserver.service'), 'utf8');
    writeFileSync(unit, text.replaceAll('/usr/bin/minisipserver', join(tree, 'usr/bin/minisipserver')));
    const verify = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
    assert.equal(verify.status, 0, verify.stderr);
  }

  // dpkg itself accepts it: unpacked into a scratch root (its maintainer scripts need the real system).
  const scratch = join(root, 'scratch');
  mkdirSync(join(scratch, 'var/lib/dpkg/info'), { recursive: true });
  mkdirSync(join(scratch, 'var/lib/dpkg/updates'), { recursive: true });
  writeFileSync(join(scratch, 'var/lib/dpkg/status'), '');
  const unpack = spawnSync('dpkg', [`--root=${scratch}`, '--force-depends', '--force-not-root', '--unpack', deb], { encoding: 'utf8' });
  assert.equal(unpack.status, 0, unpack.stderr);
  assert.ok(existsSync(join(scratch, 'usr/bin/minisipserver')));
  const status = readFileSync(join(scratch, 'var/lib/dpkg/status'), 'utf8');
  assert.match(status, /^Package: minisipserver$/m);
  assert.match(status, /^Status: install ok unpacked$/m);
});
