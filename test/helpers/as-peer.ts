/** An application server in tests: sends call-back messages from its own socket and keeps the answers. */
import dgram from 'node:dgram';
import { parseIif, type IifMessage } from '../../lib/services/callback/iif.js';
import { keepAlive } from './keep-alive.js';

export class AsPeer {
  readonly received: Array<{ text: string; message: IifMessage | null; from: number }> = [];
  private waiters: Array<() => void> = [];

  private constructor(
    private readonly socket: dgram.Socket,
    readonly serverPort: number,
  ) {
    socket.on('message', (m, rinfo) => {
      const parsed = parseIif(m);
      this.received.push({ text: m.toString('latin1'), message: parsed.ok ? parsed.message : null, from: rinfo.port });
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    });
  }

  /** A socket on `bind` (another loopback address stands for a stranger). */
  static async open(serverPort: number, bind = '127.0.0.1'): Promise<AsPeer> {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, bind, r));
    return new AsPeer(s, serverPort);
  }

  send(text: string): void {
    this.socket.send(text, this.serverPort, '127.0.0.1');
  }

  /** Messages of `method` (with this id) received so far. */
  all(method: string, id?: string): IifMessage[] {
    return this.received.map((r) => r.message).filter((m): m is IifMessage => m !== null && m.method === method && (id === undefined || m.params.get('id') === id));
  }

  /** The `n`th (1-based) message of `method` with this id, waiting for it at most `ms`. */
  async next(method: string, id: string, ms = 5000, n = 1): Promise<IifMessage> {
    const found = () => this.all(method, id)[n - 1];
    return keepAlive(
      (async () => {
        for (;;) {
          const m = found();
          if (m) return m;
          await new Promise<void>((r) => this.waiters.push(r));
        }
      })(),
      `${method} #${n} for id ${id}`,
      ms,
    );
  }

  close(): void {
    this.socket.close();
  }
}
