/**
 * The configuration of trunks (`trunks:`), the dial plan (`dialplan:`) and call classes
 * (`classes:`): the types the server runs on. The YAML is read and checked by
 * lib/config/trunks-load.ts (file:line:column errors).
 */

/** Where an incoming trunk call goes: ring every registered phone of these extensions, or run an IVR file. */
export type DidTarget = { kind: 'extensions'; numbers: string[] } | { kind: 'ivr'; file: string };

export interface TrunkConfig {
  /** Unique; CDR route `trunk:<name>`. Letters, digits, `.`, `_`, `-`. */
  name: string;
  /** register: the PBX registers to the provider with an account; peer: no registration, source addresses allowed. */
  kind: 'register' | 'peer';
  /** Host name or IP address of the provider or peer. */
  host: string;
  port: number;
  transport: 'udp' | 'tcp';
  /** register: the account (empty for peer). */
  username: string;
  /** register: the account's password (read from `passwordFile` when that is given). */
  password: string;
  /** Digest username when it differs from `username` ('' = username). */
  authUsername: string;
  /** User part of the REGISTER's From/To (the AOR) ('' = username). */
  fromUser: string;
  /** Host part of From (REGISTER and calls) ('' = host). */
  fromDomain: string;
  /** Registration lifetime asked for, seconds (default 600). */
  expires: number;
  /** Addresses (IPs, CIDR ranges) incoming calls may come from besides the trunk's own host:port. */
  allow: string[];
  /** Calls at once over this trunk, both directions (0 = no limit). */
  maxCalls: number;
  /** Encoding names (PCMA, PCMU, G722, ...), in order of preference: the offer sent keeps these only ([] = as offered). */
  codecs: string[];
  /** Added to the Request-URI of outgoing calls, e.g. `user=phone` ('' = none). */
  requestUriParams: string;
  /** Send `tel:` Request-URIs and To. */
  telUri: boolean;
  /** What From shows the provider: `extension` (the caller's number), `anonymous` (with Privacy: id), or a fixed number. */
  callerId: string;
  /** Seconds between OPTIONS keep-alives (0 = none); a trunk that stops answering is marked down. */
  options: number;
  /** Incoming numbers are compared without a leading `+`. */
  stripPlus: boolean;
  /** Incoming: dialled number -> target; the key `default` takes every other number. */
  did: Record<string, DidTarget>;
}

export interface DialRule {
  /** A prefix (digits, *, #, +) or a pattern: X any digit, Z 1-9, N 2-9, [1-5] a set, `.` one or more of anything, at the end. */
  match: string;
  /** Leading characters removed from the dialled number. */
  strip: number;
  /** Put in front after stripping. */
  prepend: string;
  /** The trunk the call goes out on. */
  trunk: string;
  /** The trunk tried when the first is down, full or answers 408/5xx ('' = none). */
  fallback: string;
  /** The call class ('' = none); see `classes`. */
  class: string;
  /** Line of the rule in the configuration file (for logs). */
  line: number;
}

export interface DialClass {
  /** Only extensions granted the class (`ext edit N --allow CLASS`) may dial its rules. */
  restricted: boolean;
}
