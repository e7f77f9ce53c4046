/** Trunk and dial-plan settings for tests, every field filled as the configuration loader does. */
import type { DialRule, TrunkConfig } from '../../lib/trunks/config.js';

export function trunkConfig(p: Partial<TrunkConfig> & Pick<TrunkConfig, 'name' | 'kind' | 'port'>): TrunkConfig {
  return {
    host: '127.0.0.1',
    transport: 'udp',
    username: '',
    password: '',
    authUsername: '',
    fromUser: '',
    fromDomain: '',
    expires: 600,
    allow: [],
    maxCalls: 0,
    codecs: [],
    requestUriParams: p.kind === 'register' ? 'user=phone' : '',
    telUri: false,
    callerId: 'extension',
    options: 0,
    stripPlus: true,
    did: {},
    ...p,
  };
}

export function dialRule(p: Partial<DialRule> & Pick<DialRule, 'match' | 'trunk'>): DialRule {
  return { strip: 0, prepend: '', fallback: '', class: '', line: 0, ...p };
}
