import assert from 'node:assert/strict';
import { parseMessage } from '../../lib/sip/parser.js';
import type { SipRequest } from '../../lib/sip/message.js';

/** Parses header lines (start line first, no body) into a request, failing the test if it does not parse. */
export function requestFromLines(lines: string[]): SipRequest {
  const r = parseMessage(Buffer.from([...lines, 'Content-Length: 0', '', ''].join('\r\n')));
  assert.ok(r.ok && r.message.kind === 'request', r.ok ? 'not a request' : r.error);
  return r.message as SipRequest;
}
