/**
 * A dial-plan route as the destination of a call's outgoing leg: the first of the rule's trunks
 * that can take the call now, with the others as fallbacks.
 */
import type { SipResponse } from '../sip/message.js';
import type { Destination } from '../pbx/call.js';
import { filterOffer } from './codec-filter.js';
import type { Trunk } from './trunk.js';

/**
 * The first of `trunks` that is up and has room, as a destination for `number` (it counts as one
 * of the trunk's calls until released); the rest are its fallbacks, tried when it gives no
 * answer, 408 or a 5xx. Null when none of them can take the call now.
 */
export function trunkDestination(trunks: readonly Trunk[], number: string, caller: { number: string; displayName: string }): Destination | null {
  for (let i = 0; i < trunks.length; i++) {
    const t = trunks[i]!;
    if (!t.up || t.full) continue;
    const dial = t.dial(number, caller);
    if (!dial) continue;
    t.active++;
    let released = false;
    const rest = trunks.slice(i + 1);
    const codecs = t.config.codecs;
    const destination: Destination = {
      targets: [dial.target],
      fromUri: dial.fromUri,
      toUri: dial.toUri,
      extra: dial.extra,
      route: `trunk:${t.name}`,
      release: () => {
        if (released) return;
        released = true;
        t.active--;
      },
    };
    if (dial.credentials) destination.credentials = dial.credentials;
    if (codecs.length > 0) destination.filterOffer = (sdp) => filterOffer(sdp, codecs);
    if (rest.length > 0) destination.fallback = (best) => (worthAnotherTrunk(best) ? trunkDestination(rest, number, caller) : null);
    return destination;
  }
  return null;
}

/** A trunk's failure that another trunk may do better on: no answer at all, 408 or a 5xx. */
function worthAnotherTrunk(best: SipResponse | null): boolean {
  return best === null || best.status === 408 || (best.status >= 500 && best.status < 600);
}
