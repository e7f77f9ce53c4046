/**
 * The configured trunks: started and stopped together, found by name (dial plan) and by the
 * address a request comes from (incoming calls), and the DID map of an incoming call.
 */
import type { Endpoint } from '../sip/transport/types.js';
import type { DidTarget, TrunkConfig } from './config.js';
import { Trunk, type TrunkEnv } from './trunk.js';

export class Trunks {
  private readonly byName = new Map<string, Trunk>();
  private readonly list: Trunk[] = [];

  constructor(configs: readonly TrunkConfig[], env: TrunkEnv, opts: { retryMinMs?: number } = {}) {
    for (const c of configs) {
      const t = new Trunk(c, env, opts);
      this.byName.set(c.name, t);
      this.list.push(t);
    }
  }

  get size(): number {
    return this.list.length;
  }

  get(name: string): Trunk | undefined {
    return this.byName.get(name);
  }

  all(): readonly Trunk[] {
    return this.list;
  }

  /** The trunk a request from `source` comes over, or null (then it is anybody's request). */
  fromSource(source: Endpoint): Trunk | null {
    for (const t of this.list) if (t.isSource(source)) return t;
    return null;
  }

  /** Starts OPTIONS keep-alives and name look-ups, and the registrations unless `register` is false. */
  start(opts: { register: boolean }): void {
    for (const t of this.list) t.start(opts);
  }

  /** Unregisters every registration trunk (at most `timeoutMs`). */
  async stop(timeoutMs: number): Promise<void> {
    await Promise.all(this.list.map((t) => t.stop(timeoutMs)));
  }
}

/**
 * Where an incoming trunk call goes: the first of `candidates` (the Request-URI's number, then
 * To's) found in the trunk's DID map, else its `default`, else nowhere. Numbers are compared
 * without visual separators and, with `stripPlus`, without a leading `+`.
 */
export function didTarget(trunk: TrunkConfig, candidates: readonly string[]): { number: string; target: DidTarget | null } {
  const clean = (n: string) => {
    const s = n.replace(/[-.()\s]/g, '');
    return trunk.stripPlus && s.startsWith('+') ? s.slice(1) : s;
  };
  const numbers = candidates.map(clean).filter((n) => n !== '');
  for (const n of numbers) {
    for (const [key, target] of Object.entries(trunk.did)) {
      if (key !== 'default' && clean(key) === n) return { number: n, target };
    }
  }
  return { number: numbers[0] ?? '', target: trunk.did['default'] ?? null };
}
