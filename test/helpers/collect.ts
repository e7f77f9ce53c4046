import { Writable } from 'node:stream';

/** A writable stream that keeps what is written to it as text (a command's stdout or stderr in a test). */
export class Collect extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}
