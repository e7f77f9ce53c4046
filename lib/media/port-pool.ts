/**
 * The relay's UDP port range as a queue of port pairs: an even RTP port and RTCP = RTP + 1
 * (RFC 3550 §11). Released pairs go to the back, so a port just freed is reused as late as
 * possible and stray packets of an ended call do not reach the next one.
 */
export class PortPool {
  private readonly queue: number[] = [];
  private head = 0;
  readonly capacity: number;

  constructor(portMin: number, portMax: number) {
    const first = portMin % 2 === 0 ? portMin : portMin + 1;
    for (let rtp = first; rtp + 1 <= portMax; rtp += 2) this.queue.push(rtp);
    this.capacity = this.queue.length;
  }

  get available(): number {
    return this.queue.length - this.head;
  }

  /** The RTP port of the next free pair, or undefined when none is left. */
  take(): number | undefined {
    if (this.head >= this.queue.length) return undefined;
    const rtp = this.queue[this.head++];
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    return rtp;
  }

  give(rtp: number): void {
    this.queue.push(rtp);
  }
}
