/**
 * One trunk at run time: where it is (its host looked up), whether it is up (its registration,
 * its OPTIONS keep-alive), how many calls it carries, who may call in over it, and how a number
 * is dialled on it (Request-URI, From, To, the account that answers its challenges).
 */
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { Dialog } from '../sip/dialog.js';
import type { SipRequest, SipResponse } from '../sip/message.js';
import { randomToken } from '../sip/random-id.js';
import type { ClientTransaction } from '../sip/transaction/layer.js';
import type { Endpoint } from '../sip/transport/types.js';
import { bracket, contactFor, hostPortText, quoteName } from '../pbx/call-messages.js';
import type { ForkTarget } from '../pbx/legs/fork-target.js';
import type { TrunkConfig } from './config.js';
import { addressList } from '../config/address-entry.js';
import { TrunkRegistration, type RegistrationEnv, type RegistrationState } from './registration.js';

/** What a trunk needs from the server: sending SIP, and the log. */
export interface TrunkEnv extends RegistrationEnv {
  sendRequest(req: SipRequest, dest: Endpoint, user: { onResponse(res: SipResponse): void; onTimeout(): void }): ClientTransaction | null;
}

/** How a number is called over the trunk: the parts of an outgoing leg that differ from calling a phone. */
export interface TrunkDial {
  target: ForkTarget;
  fromUri: string;
  toUri: string;
  credentials?: { username: string; password: string };
  /** Headers the INVITE carries for the trunk (Privacy). */
  extra: Array<[string, string]>;
}

/** How often a host name is looked up again. */
const RESOLVE_EVERY_MS = 300_000;

export class Trunk {
  /** Calls in progress over the trunk, both directions. */
  active = 0;
  readonly registration: TrunkRegistration | null;
  private addresses: string[] = [];
  private readonly allow: BlockList | null;
  private optionsAnswering = true;
  private optionsTimer: NodeJS.Timeout | undefined;
  private resolveTimer: NodeJS.Timeout | undefined;
  private optionsDialog: Dialog | null = null;
  private stopped = false;

  constructor(readonly config: TrunkConfig, private readonly env: TrunkEnv, opts: { retryMinMs?: number } = {}) {
    this.allow = addressList(config.allow);
    if (isIP(config.host) !== 0) this.addresses = [config.host];
    this.registration =
      config.kind === 'register'
        ? new TrunkRegistration(env, config, () => this.resolve(), opts.retryMinMs !== undefined ? { retryMinMs: opts.retryMinMs } : undefined)
        : null;
  }

  get name(): string {
    return this.config.name;
  }

  /** Calls may go out: the host is known, the registration (if any) is not failing, OPTIONS (if sent) are answered. */
  get up(): boolean {
    if (this.addresses.length === 0 || !this.optionsAnswering) return false;
    return this.registration === null || this.registration.state.status !== 'failing';
  }

  get full(): boolean {
    return this.config.maxCalls > 0 && this.active >= this.config.maxCalls;
  }

  get registrationState(): RegistrationState | null {
    return this.registration?.state ?? null;
  }

  start(opts: { register: boolean } = { register: true }): void {
    if (isIP(this.config.host) === 0) {
      void this.resolve().catch(() => undefined);
      this.resolveTimer = setInterval(() => void this.resolve().catch(() => undefined), RESOLVE_EVERY_MS);
      this.resolveTimer.unref();
    }
    if (opts.register) this.registration?.start();
    if (this.config.options > 0) {
      this.optionsTimer = setInterval(() => this.sendOptions(), this.config.options * 1000);
      this.optionsTimer.unref();
    }
  }

  async stop(timeoutMs: number): Promise<void> {
    this.stopped = true;
    clearInterval(this.optionsTimer);
    clearInterval(this.resolveTimer);
    await this.registration?.stop(timeoutMs);
  }

  /** Where the trunk's SIP goes now (its host looked up). Rejects when the name does not resolve. */
  async resolve(): Promise<Endpoint> {
    if (isIP(this.config.host) === 0) {
      try {
        const found = await lookup(this.config.host, { all: true, family: 4 });
        this.addresses = found.map((a) => a.address);
      } catch (err) {
        this.env.log('warn', 'trunk.resolve_failed', { trunk: this.name, host: this.config.host, error: (err as Error).message });
        throw err;
      }
    }
    const dest = this.destination();
    if (!dest) throw new Error(`${this.config.host} has no IPv4 address`);
    return dest;
  }

  destination(): Endpoint | null {
    const address = this.addresses[0];
    return address === undefined ? null : { transport: this.config.transport, address, port: this.config.port };
  }

  /**
   * Whether a request from `source` comes from this trunk: its own host and port (the flow it was
   * registered over or peers from; any port over TCP), or an address of its `allow` list.
   */
  isSource(source: Endpoint): boolean {
    if (this.addresses.includes(source.address) && (source.port === this.config.port || source.transport === 'tcp')) return true;
    return this.allow !== null && this.allow.check(source.address, isIP(source.address) === 6 ? 'ipv6' : 'ipv4');
  }

  /** How `number` is called over the trunk; null when its host is not known yet. */
  dial(number: string, caller: { number: string; displayName: string }): TrunkDial | null {
    const dest = this.destination();
    if (!dest) return null;
    const c = this.config;
    const hostPort = c.port === 5060 ? bracket(c.host) : hostPortText(c.host, c.port);
    const params = c.requestUriParams ? `;${c.requestUriParams}` : '';
    const transport = c.transport === 'tcp' ? ';transport=tcp' : '';
    const requestUri = c.telUri ? `tel:${number}` : `sip:${number}@${hostPort}${params}${transport}`;
    const toUri = c.telUri ? `<tel:${number}>` : `<sip:${number}@${hostPort}${params}>`;
    const domain = bracket(c.fromDomain || c.host);
    const extra: Array<[string, string]> = [];
    let fromUri: string;
    if (c.callerId === 'anonymous') {
      // RFC 3323 section 4.1.1.3: an anonymous From, and the network asked to withhold the identity.
      fromUri = '"Anonymous" <sip:anonymous@anonymous.invalid>';
      extra.push(['privacy', 'id']);
    } else {
      const user = c.callerId === 'extension' ? caller.number : c.callerId;
      const name = c.callerId === 'extension' && caller.displayName ? `${quoteName(caller.displayName)} ` : '';
      fromUri = `${name}<sip:${user}@${domain}>`;
    }
    const dial: TrunkDial = { target: { requestUri, destination: dest, signalIp: dest.address }, fromUri, toUri, extra };
    if (c.kind === 'register') dial.credentials = { username: c.authUsername || c.username, password: c.password };
    return dial;
  }

  /** OPTIONS to the trunk (RFC 3261 section 11): any answer means it is there; none marks it down. */
  private sendOptions(): void {
    const dest = this.destination();
    if (!dest || this.stopped) return;
    const d = (this.optionsDialog ??= this.optionsDialogFor(dest));
    d.destination = dest;
    const req = d.request('OPTIONS', { extra: [['user-agent', this.env.userAgent]] });
    this.env.sendRequest(req, dest, {
      onResponse: (res) => {
        if (res.status >= 200) this.setAnswering(true, res.status);
      },
      onTimeout: () => this.setAnswering(false),
    });
  }

  private optionsDialogFor(dest: Endpoint): Dialog {
    const host = this.env.localHost(dest.address);
    const port = this.env.sipPort();
    return new Dialog({
      callId: `${randomToken()}@${bracket(host)}`,
      localTag: randomToken(8),
      remoteTag: '',
      localUri: `<sip:minisipserver@${bracket(host)}>`,
      remoteUri: `<sip:${bracket(this.config.host)}>`,
      localSeq: 0,
      remoteSeq: -1,
      remoteTarget: `sip:${this.config.port === 5060 ? bracket(this.config.host) : hostPortText(this.config.host, this.config.port)}${this.config.transport === 'tcp' ? ';transport=tcp' : ''}`,
      routeSet: [],
      destination: dest,
      contact: contactFor(host, port, dest.transport),
      sentBy: hostPortText(host, port),
      rport: this.env.viaRport,
    });
  }

  private setAnswering(answering: boolean, status?: number): void {
    if (this.optionsAnswering === answering || this.stopped) return;
    this.optionsAnswering = answering;
    if (answering) this.env.log('info', 'trunk.up', { trunk: this.name, status });
    else this.env.log('warn', 'trunk.down', { trunk: this.name, reason: 'OPTIONS not answered', hint: `check that ${this.config.host}:${this.config.port} is reachable` });
  }
}
