/**
 * Where an outgoing leg sends one of its INVITEs: a registered phone (one per contact of the
 * callee: the leg forks) or a trunk (one target for the number).
 */
import type { Endpoint } from '../../sip/transport/types.js';
import { contactTarget } from '../contact-target.js';
import type { Binding } from '../registrar.js';

export interface ForkTarget {
  /** Request-URI of the INVITE: the registered Contact, or the trunk's URI for the number. */
  requestUri: string;
  /** Where the INVITE goes (for a phone, its registration flow). */
  destination: Endpoint;
  /** Our address the target reached us on, when known (chooses the host of our Via and Contact). */
  localAddress?: string;
  /** The address its SIP comes from: only that address may latch its media. */
  signalIp: string;
  /**
   * A pre-loaded route set (RFC 3261 section 8.1.2): the Path the phone registered through
   * (RFC 3327 section 5.4), sent as Route headers in this order; `destination` is its first hop.
   */
  route?: readonly string[];
}

/** One target per registered contact. */
export function bindingTargets(contacts: readonly Binding[]): ForkTarget[] {
  return contacts.map((b) => {
    const t: ForkTarget = { requestUri: b.contact, destination: contactTarget(b), signalIp: b.sourceAddress };
    if (b.localAddress !== undefined) t.localAddress = b.localAddress;
    if (b.path !== undefined && b.path.length > 0) t.route = b.path;
    return t;
  });
}
