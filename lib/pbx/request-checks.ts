import { createResponse, type SipRequest, type SipResponse } from '../sip/message.js';

/** Methods this server handles itself. */
export const ALLOWED_METHODS = ['INVITE', 'ACK', 'CANCEL', 'BYE', 'OPTIONS', 'REGISTER', 'PRACK', 'UPDATE', 'INFO'] as const;
/** Methods of RFC 3261 and its common extensions: known, so an unsupported one is 405, not 501. */
const KNOWN_METHODS = new Set([
  'INVITE', 'ACK', 'BYE', 'CANCEL', 'OPTIONS', 'REGISTER', 'PRACK', 'SUBSCRIBE', 'NOTIFY', 'PUBLISH', 'INFO',
  'REFER', 'MESSAGE', 'UPDATE',
]);
/** Requests that only make sense inside a dialog: without one the answer is 481. */
const IN_DIALOG_METHODS = new Set(['BYE', 'PRACK', 'UPDATE', 'INFO', 'NOTIFY']);
/** Option tags we implement (RFC 3261 section 8.2.2.3). */
export const SUPPORTED_OPTIONS = ['path', '100rel'] as const;
const SUPPORTED_SET = new Set<string>(SUPPORTED_OPTIONS);
export const ACCEPTED_BODY_TYPES = ['application/sdp'] as const;
const URI_SCHEMES = new Set(['sip', 'sips', 'tel']);

export const ALLOW_HEADER = ALLOWED_METHODS.join(', ');

/**
 * The checks of RFC 3261 section 8.2 that need no user or dialog state, in the RFC's order where
 * it matters: Request-URI scheme (416), Require (420), Max-Forwards (483), body type (415) and
 * Accept (406). Returns the response to send, or null to go on.
 */
export function preCheckRequest(req: SipRequest, toTag: string): SipResponse | null {
  const scheme = uriScheme(req.uri);
  if (!URI_SCHEMES.has(scheme)) return createResponse(req, 416, undefined, toTag);
  if (req.method === 'ACK' || req.method === 'CANCEL') return null;

  const required = req.headers.has('require') ? req.headers.list('require') : NONE;
  if (required.length > 0) {
    const unknown = required.filter((tag) => !SUPPORTED_SET.has(tag.toLowerCase()));
    if (unknown.length > 0) {
      const res = createResponse(req, 420, undefined, toTag);
      res.headers.append('Unsupported', unknown.join(', '));
      return res;
    }
  }
  if (req.method === 'INVITE') {
    const mf = req.headers.get('max-forwards');
    if (mf !== undefined && Number(mf) === 0) return createResponse(req, 483, undefined, toTag);
    if (req.body.length > 0) {
      const type = mediaType(req.headers.get('content-type'));
      if (!(ACCEPTED_BODY_TYPES as readonly string[]).includes(type)) {
        const res = createResponse(req, 415, undefined, toTag);
        res.headers.append('Accept', ACCEPTED_BODY_TYPES.join(', '));
        return res;
      }
    }
    const accept = req.headers.list('accept');
    if (accept.length > 0 && !accept.some((a) => acceptsSdp(mediaType(a)))) {
      const res = createResponse(req, 406, undefined, toTag);
      res.headers.append('Accept', ACCEPTED_BODY_TYPES.join(', '));
      return res;
    }
  }
  return null;
}

/** 405 for a known method we do not serve, 481 for an in-dialog one with no dialog, 501 otherwise. */
export function unsupportedMethodResponse(req: SipRequest, toTag: string): SipResponse {
  if (IN_DIALOG_METHODS.has(req.method)) return createResponse(req, 481, undefined, toTag);
  const res = createResponse(req, KNOWN_METHODS.has(req.method) ? 405 : 501, undefined, toTag);
  res.headers.append('Allow', ALLOW_HEADER);
  return res;
}

const NONE: string[] = [];

function uriScheme(uri: string): string {
  const colon = uri.indexOf(':');
  return colon < 0 ? '' : uri.slice(0, colon).toLowerCase();
}

function mediaType(value: string | undefined): string {
  if (!value) return '';
  const semi = value.indexOf(';');
  return (semi < 0 ? value : value.slice(0, semi)).trim().toLowerCase();
}

function acceptsSdp(type: string): boolean {
  return type === 'application/sdp' || type === 'application/*' || type === '*/*';
}
