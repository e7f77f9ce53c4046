/** The admin API's event stream for tests: read line by line, every event parsed and kept in order. */
import http from 'node:http';
import { waitFor } from './keep-alive.js';
import type { SequencedEvent } from '../../lib/admin/types.js';

/** An event stream read line by line: every event parsed, kept in order. */
export class EventStream {
  readonly events: SequencedEvent[] = [];
  private req: http.ClientRequest;
  private buffer = '';

  constructor(url: string, token: string, lastEventId?: number) {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (lastEventId !== undefined) headers['last-event-id'] = String(lastEventId);
    this.req = http.get(`${url}/api/v1/events`, { headers }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        this.buffer += chunk;
        let end: number;
        while ((end = this.buffer.indexOf('\n\n')) >= 0) {
          const block = this.buffer.slice(0, end);
          this.buffer = this.buffer.slice(end + 2);
          const data = block.split('\n').find((l) => l.startsWith('data:'));
          const type = block.split('\n').find((l) => l.startsWith('event:'));
          if (data && type && !type.includes('reset')) this.events.push(JSON.parse(data.slice(5)) as SequencedEvent);
        }
      });
    });
    this.req.on('error', () => undefined);
  }

  async until(pred: (e: SequencedEvent) => boolean, what: string): Promise<SequencedEvent> {
    await waitFor(() => this.events.some(pred), what);
    return this.events.find(pred)!;
  }

  close(): void {
    this.req.destroy();
  }
}

