// `minisipserver callback send|cancel` in-process through runCallback, against a socket in the test
// that plays the server, and once as the real command line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { EventEmitter, once } from 'node:events';
import path from 'node:path';
import { runCallback, parseServer, causeText } from '../../cli/callback.js';
import { formatIif, parseIif, type IifMessage } from '../../lib/services/callback/iif.js';
import { keepAlive, waitFor } from '../helpers/keep-alive.js';
import { Collect } from '../helpers/collect.js';

const MAIN = path.resolve(process.cwd(), 'build/cli/main.js');

interface Got {
  text: string;
  message: IifMessage | null;
  from: dgram.RemoteInfo;
}

/** A socket playing the server: keeps what it receives and answers through `on`. */
class FakeServer {
  readonly got: Got[] = [];
  /** Called for each datagram; `this.reply` answers its sender. */
  on: (g: Got, server: FakeServer) => void = () => undefined;

  private constructor(readonly socket: dgram.Socket) {
    socket.on('message', (msg, from) => {
      const parsed = parseIif(msg);
      const g = { text: msg.toString('latin1'), message: parsed.ok ? parsed.message : null, from };
      this.got.push(g);
      this.on(g, this);
    });
  }

  static async open(address = '127.0.0.1'): Promise<FakeServer> {
    const socket = dgram.createSocket(address.includes(':') ? 'udp6' : 'udp4');
    await new Promise<void>((resolve) => socket.bind(0, address, resolve));
    return new FakeServer(socket);
  }

  get port(): number {
    return this.socket.address().port;
  }

  get addr(): string {
    return `127.0.0.1:${this.port}`;
  }

  reply(to: Got, text: string): void {
    this.socket.send(text, to.from.port, to.from.address);
  }

  /** Messages of `method` received. */
  all(method: string): Got[] {
    return this.got.filter((g) => g.message?.method === method);
  }

  close(): void {
    this.socket.close();
  }
}

/** Runs the command with a fake server; `on` plays it. */
async function withServer(on: FakeServer['on'], fn: (s: FakeServer) => Promise<void>): Promise<void> {
  const s = await FakeServer.open();
  s.on = on;
  try {
    await fn(s);
  } finally {
    s.close();
  }
}

async function callback(args: string[], extra: { signals?: EventEmitter; lingerMs?: number; limitMs?: number } = {}) {
  const out = new Collect();
  const err = new Collect();
  const io = { out, err, signals: extra.signals ?? new EventEmitter(), lingerMs: extra.lingerMs ?? 0 };
  const code = await keepAlive(runCallback(args, io), `callback ${args.join(' ')}`, extra.limitMs ?? 10_000);
  return { code, out: out.text, err: err.text, lines: out.text.trimEnd().split('\n') };
}

function idOf(g: Got): string {
  return g.message?.params.get('id') ?? '';
}

/** The usual server: ACK result 0 to each REQUEST, RESPONSE `response` right after it when given. */
function accepting(response?: string): FakeServer['on'] {
  return (g, s) => {
    if (g.message?.method !== 'REQUEST') return;
    s.reply(g, formatIif('ACK', [['id', idOf(g)], ['result', 0]]));
    if (response) s.reply(g, `RESPONSE: id=${idOf(g)};${response}`);
  };
}

test('the REQUEST is resent until the ACK comes: exit 0', async () => {
  await withServer(
    (g, s) => {
      if (g.message?.method === 'REQUEST' && s.all('REQUEST').length === 2) s.reply(g, 'ACK: id=t1;result=0');
    },
    async (s) => {
      const r = await callback(['send', '--user1', '101', '--user2', '102', '--id', 't1', '--server', s.addr]);
      assert.equal(r.code, 0, r.err);
      assert.deepEqual(r.lines, [`request id=t1 sent to ${s.addr}`, 'request retransmitted (2)', 'accepted id=t1']);
      assert.deepEqual(s.got.map((g) => g.text), ['REQUEST: id=t1;user1=101;user2=102', 'REQUEST: id=t1;user1=101;user2=102']);
      assert.equal(r.err, '');
    },
  );
});

test('every REQUEST parameter goes out; an id is made up when none is given', async () => {
  await withServer(accepting(), async (s) => {
    const r = await callback(['send', '--caller1', '8005551000', '--user1', '101', '--caller2', '555', '--user2', '9012345', '--max-duration', '600', '--id', 'x.1', '--server', s.addr]);
    assert.equal(r.code, 0, r.err);
    assert.equal(s.got[0]!.text, 'REQUEST: id=x.1;caller1=8005551000;user1=101;caller2=555;user2=9012345;duration=600');
    const made = await callback(['send', '--user1', '101', '--user2', '102', '--server', s.addr]);
    assert.equal(made.code, 0, made.err);
    const id = idOf(s.got[1]!);
    assert.match(id, /^cb-[0-9a-z]+-[0-9a-f]{6}$/);
    assert.deepEqual(made.lines, [`request id=${id} sent to ${s.addr}`, `accepted id=${id}`]);
  });
});

test('a refused REQUEST: exit 1 with the result and its reason (also when the ACK leaves the reason out)', async () => {
  await withServer(
    (g, s) => {
      if (idOf(g) === 'r1') s.reply(g, 'ACK: id=r1;result=2;reason=unknown-number');
      if (idOf(g) === 'r2') s.reply(g, 'ACK: id=r2;result=3');
    },
    async (s) => {
      const r = await callback(['send', '--user1', '101', '--user2', '999', '--id', 'r1', '--server', s.addr, '--wait']);
      assert.equal(r.code, 1);
      assert.equal(r.lines.at(-1), 'refused id=r1 result=2 (unknown-number)');
      assert.equal(s.all('REQUEST').length, 1, 'no CANCEL, no second REQUEST');
      const short = await callback(['send', '--user1', '101', '--user2', '999', '--id', 'r2', '--server', s.addr, '--json']);
      assert.equal(short.code, 1);
      assert.deepEqual(JSON.parse(short.lines.at(-1)!), { event: 'ack', id: 'r2', result: 3, reason: 'limit-reached' });
    },
  );
});

test('no answer within --timeout: exit 2 with a hint', async () => {
  await withServer(
    () => undefined,
    async (s) => {
      const started = Date.now();
      const r = await callback(['send', '--user1', '101', '--user2', '102', '--id', 'n1', '--server', s.addr, '--timeout', '1']);
      assert.equal(r.code, 2);
      assert.ok(Date.now() - started >= 950, 'waited the timeout');
      assert.equal(
        r.err,
        `minisipserver callback send: no answer from ${s.addr} within 1 s: is \`minisipserver serve\` running with callback.port set, and is this machine's address in callback.asAddress?\n`,
      );
      assert.deepEqual(r.lines, [`request id=n1 sent to ${s.addr}`, 'request retransmitted (2)']);
      assert.equal(s.all('REQUEST').length, 2, 'sent at 0 and 500 ms');
      const cancel = await callback(['cancel', '--id', 'n1', '--server', s.addr, '--timeout', '0.3']);
      assert.equal(cancel.code, 2);
      assert.match(cancel.err, /^minisipserver callback cancel: no answer from 127\.0\.0\.1:\d+ within 0\.3 s: is `minisipserver serve` running/);
    },
  );
});

test('--wait: the RESPONSE is acknowledged and printed; bridged is exit 0', async () => {
  await withServer(accepting('result=0;duration=12;cause=16'), async (s) => {
    const r = await callback(['send', '--user1', '101', '--user2', '102', '--id', 'w1', '--server', s.addr, '--wait']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.lines, [
      `request id=w1 sent to ${s.addr}`,
      'accepted id=w1',
      'waiting for the response of id=w1 (Ctrl-C cancels the call-back)',
      'response id=w1 bridged, talked 12 s, cause 16 (normal clearing)',
    ]);
    await waitFor(() => s.all('ACK').length === 1, 'the ACK of the RESPONSE');
    assert.equal(s.all('ACK')[0]!.text, 'ACK: id=w1');
  });
});

test('a RESPONSE sent again (its ACK lost) is acknowledged again while the client lingers', async () => {
  await withServer(
    (g, s) => {
      accepting('result=0;duration=3;cause=16')(g, s);
      if (g.message?.method === 'ACK' && s.all('ACK').length === 1) s.reply(g, 'RESPONSE: id=w2;result=0;duration=3;cause=16');
    },
    async (s) => {
      const r = await callback(['send', '--user1', '101', '--user2', '102', '--id', 'w2', '--server', s.addr, '--wait'], { lingerMs: 2000 });
      assert.equal(r.code, 0, r.err);
      assert.equal(r.lines.at(-1), 'response id=w2 received again, acknowledged again');
      await waitFor(() => s.all('ACK').length === 2, 'a second ACK');
      assert.deepEqual(s.all('ACK').map((g) => g.text), ['ACK: id=w2', 'ACK: id=w2']);
    },
  );
});

test('--wait: a call-back that failed is exit 1, with the cause in words', async () => {
  await withServer(accepting('result=2;duration=0;cause=17'), async (s) => {
    const r = await callback(['send', '--user1', '101', '--user2', '102', '--id', 'f1', '--server', s.addr, '--wait']);
    assert.equal(r.code, 1);
    assert.equal(r.lines.at(-1), 'response id=f1 user2-failed, cause 17 (user busy)');
  });
  await withServer(accepting('result=1;duration=0;cause=99'), async (s) => {
    const r = await callback(['send', '--user1', '101', '--user2', '102', '--id', 'f2', '--server', s.addr, '--wait']);
    assert.equal(r.code, 1);
    assert.equal(r.lines.at(-1), 'response id=f2 user1-failed, cause 99');
  });
});

test('--json: one JSON object per line', async () => {
  await withServer(accepting('result=0;duration=12;cause=16'), async (s) => {
    const r = await callback(['send', '--user1', '101', '--user2', '102', '--id', 'j1', '--server', s.addr, '--wait', '--json']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(
      r.lines.map((l) => JSON.parse(l) as unknown),
      [
        { event: 'request', id: 'j1', server: s.addr },
        { event: 'ack', id: 'j1', result: 0 },
        { event: 'waiting', id: 'j1' },
        { event: 'response', id: 'j1', result: 0, outcome: 'bridged', duration: 12, cause: 16, causeText: 'normal clearing' },
      ],
    );
  });
  await withServer(
    () => undefined,
    async (s) => {
      const r = await callback(['send', '--user1', '101', '--user2', '102', '--id', 'j2', '--server', s.addr, '--json', '--timeout', '0.3']);
      assert.equal(r.code, 2);
      const events = r.lines.map((l) => JSON.parse(l) as { event: string; message?: string });
      assert.deepEqual(events.map((e) => e.event), ['request', 'error']);
      assert.match(events[1]!.message!, /^no answer from 127\.0\.0\.1:\d+ within 0\.3 s/);
      assert.equal(r.err, '');
    },
  );
});

test('usage errors: exit 2 and nothing sent', async () => {
  await withServer(accepting(), async (s) => {
    const cases: Array<[string[], RegExp]> = [
      [['send', '--user2', '102'], /Missing required argument: user1/],
      [['send', '--user1', '10!1', '--user2', '102'], /--user1: user1 "10!1" is not a number to dial/],
      [['send', '--user1', '101;user2=5', '--user2', '102'], /--user1: "101;user2=5" may not hold spaces/],
      [['send', '--user1', '1 01', '--user2', '102'], /--user1: "1 01" may not hold/],
      [['send', '--user1', '', '--user2', '102'], /--user1 needs a value/],
      [['send', '--user1', '101', '--user2', '102', '--user2', '103'], /--user2 given more than once/],
      [['send', '--user1', '101', '--user2', '102', '--id', 'a/b'], /--id: id "a\/b": letters, digits/],
      [['send', '--user1', '101', '--user2', '102', '--max-duration', '1.5'], /--max-duration: duration "1\.5" is not a whole number/],
      [['send', '--user1', '101', '--user2', '102', '--timeout', '0'], /--timeout: expected seconds above 0/],
      [['send', '--user1', '101', '--user2', '102', '--timeout', 'soon'], /--timeout: expected seconds/],
      [['send', '--user1', '101', '--user2', '102', '--server', '127.0.0.1:99999'], /port must be 1\.\.65535/],
      [['send', '--user1', '101', '--user2', '102', '--server', 'a:b:c'], /--server "a:b:c": expected HOST, HOST:PORT or \[IPv6\]:PORT/],
      [['send', '--user1', '101', '--user2', '102', '--server', '[::1'], /expected HOST/],
      [['send', '--user1', '101', '--user2', '102', '--server', '127.0.0.1:'], /expected HOST/],
      [['send', '--user1', '101', '--user2', '102', '--bogus'], /Unknown argument: bogus/],
      [['cancel'], /Missing required argument: id/],
      [['cancel', '--id', 'x"y'], /--id: id "x\\"y"/],
      [[], /name a callback command: send, cancel/],
    ];
    for (const [args, message] of cases) {
      const r = await callback([...args, ...(args.includes('--server') ? [] : ['--server', s.addr])]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.out}`);
      assert.match(r.err, message, args.join(' '));
    }
    const json = await callback(['send', '--user1', '10!1', '--user2', '102', '--json', '--server', s.addr]);
    assert.equal(json.code, 2);
    assert.deepEqual(JSON.parse(json.out), { event: 'error', message: '--user1: user1 "10!1" is not a number to dial' });
    assert.equal(s.got.length, 0);
  });
});

test('--server: HOST, HOST:PORT, [IPv6]:PORT, [IPv6] and a bare IPv6 address', () => {
  assert.deepEqual(parseServer('127.0.0.1:5081'), { host: '127.0.0.1', port: 5081 });
  assert.deepEqual(parseServer('127.0.0.1'), { host: '127.0.0.1', port: 5080 });
  assert.deepEqual(parseServer('pbx.example.com'), { host: 'pbx.example.com', port: 5080 });
  assert.deepEqual(parseServer('localhost:6000'), { host: 'localhost', port: 6000 });
  assert.deepEqual(parseServer('[::1]:5080'), { host: '::1', port: 5080 });
  assert.deepEqual(parseServer('[2001:db8::1]'), { host: '2001:db8::1', port: 5080 });
  assert.deepEqual(parseServer('::1'), { host: '::1', port: 5080 });
  for (const bad of ['', ':5080', '[127.0.0.1]:5080', 'host:0', 'ho st', '-x']) assert.throws(() => parseServer(bad), Error, bad);
});

test('the Q.850 words', () => {
  assert.equal(causeText(16), 'normal clearing');
  assert.equal(causeText(19), 'no answer');
  assert.equal(causeText(127), 'interworking');
  assert.equal(causeText(5), 'cause 5');
});

test('IPv6: --server [::1]:PORT', async (t) => {
  let s: FakeServer;
  try {
    s = await FakeServer.open('::1');
  } catch {
    t.skip('no IPv6 loopback here');
    return;
  }
  s.on = accepting('result=0;duration=1;cause=16');
  try {
    const r = await callback(['send', '--user1', '101', '--user2', '102', '--id', 'v6', '--server', `[::1]:${s.port}`, '--wait']);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.lines[0], `request id=v6 sent to [::1]:${s.port}`);
    await waitFor(() => s.all('ACK').length === 1, 'the ACK of the RESPONSE');
    assert.equal(s.all('REQUEST')[0]!.from.family, 'IPv6');
  } finally {
    s.close();
  }
});

test('cancel: a known id prints the RESPONSE (exit 0), an unknown one the ACK result 6 (exit 1)', async () => {
  await withServer(
    (g, s) => {
      if (g.message?.method !== 'CANCEL') return;
      if (idOf(g) === 'k1') {
        // Only from the second CANCEL on: the first is resent.
        if (s.all('CANCEL').length >= 2) s.reply(g, 'RESPONSE: id=k1;result=3;duration=0;cause=16');
        return;
      }
      // The server's rule: no answer larger than the datagram it answers.
      const full = `ACK: id=${idOf(g)};result=6;reason=unknown-id`;
      const short = `ACK: id=${idOf(g)};result=6`;
      const fits = [full, short].find((a) => a.length <= g.text.length);
      if (fits) s.reply(g, fits);
    },
    async (s) => {
      const known = await callback(['cancel', '--id', 'k1', '--server', s.addr]);
      assert.equal(known.code, 0, known.err);
      assert.deepEqual(known.lines, [`cancel id=k1 sent to ${s.addr}`, 'cancel retransmitted (2)', 'response id=k1 cancelled, cause 16 (normal clearing)']);
      await waitFor(() => s.all('ACK').length === 1, 'the ACK of the RESPONSE');
      assert.equal(s.all('ACK')[0]!.text, 'ACK: id=k1');

      const unknown = await callback(['cancel', '--id', 'no-such-id', '--server', s.addr]);
      assert.equal(unknown.code, 1, unknown.err);
      assert.deepEqual(unknown.lines, [`cancel id=no-such-id sent to ${s.addr}`, 'refused id=no-such-id result=6 (unknown-id)']);
      const cancel = s.all('CANCEL').at(-1)!;
      assert.ok(cancel.text.length >= 'ACK: id=no-such-id;result=6;reason=unknown-id'.length, `room for the full answer in ${cancel.text}`);
      assert.deepEqual(Object.fromEntries(cancel.message!.params), { id: 'no-such-id' }, 'the padding is a parameter the server ignores');
    },
  );
});

test('datagrams from another socket are ignored', async () => {
  const stranger = await FakeServer.open();
  try {
    await withServer(
      (g, s) => {
        if (g.message?.method !== 'REQUEST') return;
        const id = idOf(g);
        // The stranger speaks first (loopback delivers in order of sending), then the server.
        stranger.socket.send(`ACK: id=${id};result=4;reason=duplicate-id`, g.from.port, g.from.address, () =>
          stranger.socket.send(`RESPONSE: id=${id};result=2;duration=0;cause=17`, g.from.port, g.from.address, () => {
            s.reply(g, `ACK: id=${id};result=0`);
            s.reply(g, `RESPONSE: id=${id};result=0;duration=5;cause=16`);
          }),
        );
      },
      async (s) => {
        const r = await callback(['send', '--user1', '101', '--user2', '102', '--id', 's1', '--server', s.addr, '--wait']);
        assert.equal(r.code, 0, r.err);
        assert.deepEqual(r.lines.slice(1), ['accepted id=s1', 'waiting for the response of id=s1 (Ctrl-C cancels the call-back)', 'response id=s1 bridged, talked 5 s, cause 16 (normal clearing)']);
        await waitFor(() => s.all('ACK').length === 1, 'the ACK of the RESPONSE');
        assert.equal(stranger.got.length, 0, 'the stranger got no ACK');
      },
    );
  } finally {
    stranger.close();
  }
});

test('Ctrl-C while waiting sends CANCEL and goes on waiting for the RESPONSE', async () => {
  await withServer(
    (g, s) => {
      accepting()(g, s);
      if (g.message?.method === 'CANCEL') s.reply(g, `RESPONSE: id=${idOf(g)};result=3;duration=0;cause=16`);
    },
    async (s) => {
      const signals = new EventEmitter();
      const out = callback(['send', '--user1', '101', '--user2', '102', '--id', 'c1', '--server', s.addr, '--wait'], { signals });
      await waitFor(() => signals.listenerCount('SIGINT') === 1, 'the SIGINT handler');
      signals.emit('SIGINT');
      const r = await out;
      assert.equal(r.code, 1, r.err);
      assert.deepEqual(r.lines.slice(3), [`cancel id=c1 sent to ${s.addr}`, 'response id=c1 cancelled, cause 16 (normal clearing)']);
      assert.equal(signals.listenerCount('SIGINT'), 0, 'the handler is removed');
      await waitFor(() => s.all('ACK').length === 1, 'the ACK of the RESPONSE');
    },
  );
});

test('Ctrl-C twice stops waiting: exit 2', async () => {
  await withServer(accepting(), async (s) => {
    const signals = new EventEmitter();
    const out = callback(['send', '--user1', '101', '--user2', '102', '--id', 'c2', '--server', s.addr, '--wait'], { signals });
    await waitFor(() => signals.listenerCount('SIGINT') === 1, 'the SIGINT handler');
    signals.emit('SIGINT');
    await waitFor(() => s.all('CANCEL').length >= 1, 'the CANCEL');
    signals.emit('SIGINT');
    const r = await out;
    assert.equal(r.code, 2);
    assert.equal(r.err, 'minisipserver callback send: interrupted: stopped waiting for the response of id=c2\n');
    assert.equal(signals.listenerCount('SIGINT'), 0);
  });
});

test('Ctrl-C while waiting, and the server no longer knows the id: exit 1', async () => {
  await withServer(
    (g, s) => {
      accepting()(g, s);
      if (g.message?.method === 'CANCEL') s.reply(g, `ACK: id=${idOf(g)};result=6`);
    },
    async (s) => {
      const signals = new EventEmitter();
      const out = callback(['send', '--user1', '101', '--user2', '102', '--id', 'c3', '--server', s.addr, '--wait'], { signals });
      await waitFor(() => signals.listenerCount('SIGINT') === 1, 'the SIGINT handler');
      signals.emit('SIGINT');
      const r = await out;
      assert.equal(r.code, 1);
      assert.equal(r.lines.at(-1), 'refused id=c3 result=6 (unknown-id)');
    },
  );
});

test('the real command line: callback is wired into the root parser', async () => {
  const help = spawnSync(process.execPath, [MAIN, 'callback', '--help'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /callback send\s/);
  assert.match(help.stdout, /callback cancel\s/);
  assert.match(help.stdout, /Exit codes: send: 0 accepted/);
  const sendHelp = spawnSync(process.execPath, [MAIN, 'callback', 'send', '--help'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(sendHelp.status, 0);
  assert.match(sendHelp.stdout, /--user1/);
  assert.match(sendHelp.stdout, /--max-duration/);
  const root = spawnSync(process.execPath, [MAIN, '--help'], { encoding: 'utf8', timeout: 60_000 });
  assert.match(root.stdout, /minisipserver callback/);
  const usage = spawnSync(process.execPath, [MAIN, 'callback', 'send', '--user2', '102'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /Missing required argument: user1/);
  const none = spawnSync(process.execPath, [MAIN, 'callback'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(none.status, 2);
  assert.match(none.stderr, /name a callback command: send, cancel/);

  await withServer(accepting('result=0;duration=7;cause=16'), async (s) => {
    const child = spawn(process.execPath, [MAIN, 'callback', 'send', '--user1', '101', '--user2', '102', '--id', 'cli1', '--server', s.addr, '--wait', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const guard = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const [code] = (await once(child, 'exit')) as [number | null];
    clearTimeout(guard);
    assert.equal(code, 0, stderr);
    const events = stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { event: string });
    assert.deepEqual(events.map((e) => e.event), ['request', 'ack', 'waiting', 'response']);
    assert.equal(s.all('ACK')[0]?.text, 'ACK: id=cli1');
  });
});
