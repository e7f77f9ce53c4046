/**
 * UDP port ranges of their own for the media relays of tests. Test files run side by side
 * (--test-concurrency), and a relay skips ports someone else holds: two servers on one range make
 * each other's calls fail ("no media ports left") as soon as one holds many pairs, and a test that
 * counts on every port of a small range fails when one is taken.
 *
 * The ranges are carved out of 12000-31999 in slots of 500 ports: below the ports the system hands
 * out for bind(0) (32768 up on Linux, net.ipv4.ip_local_port_range), which the tests bind all the
 * time, and clear of 10000-11999, where a server left on the default media range (10000-20000)
 * keeps its few reserve pairs. A slot is claimed by binding its lock port (32000 + slot number):
 * the bind is atomic across processes, and the system releases it however the process ends.
 */
import dgram from 'node:dgram';

const FROM = 12000;
const SLOT = 500;
const SLOTS = 40;
const LOCKS_FROM = 32000;

export interface PortClaim {
  portMin: number;
  portMax: number;
  /** Gives the slots back (the process ending does as well). */
  release(): void;
}

async function lock(port: number): Promise<dgram.Socket | null> {
  const socket = dgram.createSocket('udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, '127.0.0.1', () => resolve());
    });
    socket.unref(); // a claim must not keep a test process alive
    return socket;
  } catch {
    socket.close();
    return null;
  }
}

/** At least `size` consecutive ports (whole slots) that no other test process holds. */
export async function claimPorts(size: number): Promise<PortClaim> {
  const count = Math.ceil(size / SLOT);
  const first = Math.floor(Math.random() * SLOTS);
  for (let i = 0; i < SLOTS; i++) {
    const start = (first + i) % SLOTS;
    if (start + count > SLOTS) continue;
    const locks: dgram.Socket[] = [];
    for (let s = start; s < start + count; s++) {
      const l = await lock(LOCKS_FROM + s);
      if (!l) break;
      locks.push(l);
    }
    if (locks.length === count) {
      const release = () => locks.splice(0).forEach((l) => l.close());
      return { portMin: FROM + start * SLOT, portMax: FROM + (start + count) * SLOT - 1, release };
    }
    for (const l of locks) l.close();
  }
  throw new Error(`no ${count} free slots of ${SLOT} test ports in ${FROM}-${FROM + SLOTS * SLOT - 1} (held by other test processes)`);
}
