/**
 * Between processes sharing the SIP port (sip.workers): the kernel picks a process by the
 * datagram's addresses, which is right for everything a phone starts (REGISTER, INVITE, its
 * retransmissions and CANCEL), but a peer that answers to our source port instead of our Via
 * (SIPp does), or sends an in-dialog request there instead of to our Contact, may land on a
 * sibling. Such a message names its owner: a response by the private port in its top Via, a
 * request by the worker prefix of its To tag. It is handed to that sibling's private port in a
 * small envelope that keeps its original source, authenticated by a token only the server's
 * processes know.
 */
import { topVia, toTag, viaSentBy } from './transaction/message-keys.js';
import type { SipMessage } from './message.js';
import type { Endpoint } from './transport/types.js';

const MAGIC = Buffer.from('MSSW1');
const TOKEN_BYTES = 16;

export class WorkerRouter {
  /** Private port of each worker, by index (told by the primary process). */
  peers: number[] = [];
  private readonly tagPrefix: string;

  constructor(
    readonly index: number,
    private readonly token: Buffer,
  ) {
    if (token.length !== TOKEN_BYTES) throw new Error(`worker token must be ${TOKEN_BYTES} bytes`);
    this.tagPrefix = `w${index}x`;
  }

  /** A dialog tag of this worker: its prefix names the owner. */
  tag(random: string): string {
    return this.tagPrefix + random;
  }

  /** The sibling a message received on the shared port belongs to, or -1 when it is ours. */
  ownerOf(msg: SipMessage): number {
    if (msg.kind === 'response') {
      const port = viaPort(topVia(msg));
      if (port === undefined) return -1;
      const owner = this.peers.indexOf(port);
      return owner === this.index ? -1 : owner;
    }
    const tag = toTag(msg);
    const m = tag === undefined ? null : /^w(\d{1,2})x/.exec(tag);
    if (!m) return -1;
    const owner = Number(m[1]);
    return owner === this.index || this.peers[owner] === undefined ? -1 : owner;
  }

  /** The datagram wrapped for a sibling, with its original source. */
  wrap(data: Buffer, source: Endpoint): Buffer {
    const head = Buffer.from(`${source.address} ${source.port}\n`, 'latin1');
    return Buffer.concat([MAGIC, this.token, head, data]);
  }

  /** The datagram and source inside an envelope from a sibling; null when it is not one. */
  unwrap(data: Buffer): { data: Buffer; source: Endpoint } | null {
    if (data.length < MAGIC.length + TOKEN_BYTES + 4 || !data.subarray(0, MAGIC.length).equals(MAGIC)) return null;
    if (!data.subarray(MAGIC.length, MAGIC.length + TOKEN_BYTES).equals(this.token)) return null;
    const start = MAGIC.length + TOKEN_BYTES;
    const nl = data.indexOf(10, start);
    if (nl < 0 || nl - start > 64) return null;
    const [address, port] = data.toString('latin1', start, nl).split(' ');
    const p = Number(port);
    if (!address || !Number.isInteger(p) || p <= 0 || p > 65535) return null;
    return { data: data.subarray(nl + 1), source: { transport: 'udp', address, port: p } };
  }
}

/** The port of a Via's sent-by (after the host; an IPv6 reference ends with "]"). */
function viaPort(via: string | undefined): number | undefined {
  const sentBy = via === undefined ? undefined : viaSentBy(via);
  if (sentBy === undefined) return undefined;
  const colon = sentBy.lastIndexOf(':');
  if (colon < 0 || colon < sentBy.lastIndexOf(']')) return undefined;
  const port = Number(sentBy.slice(colon + 1));
  return Number.isInteger(port) ? port : undefined;
}
