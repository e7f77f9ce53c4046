import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configChanges, configValue, setConfigValue } from '../../lib/config/diff.js';
import { ConfigError, loadConfigFile, parseConfigText } from '../../lib/config/load.js';
import { defaultConfig } from '../../lib/config/schema.js';

function problem(text: string): ConfigError {
  try {
    parseConfigText(text, 'conf.yaml');
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a configuration error');
}

/** Asserts the error's line and column and that its problem matches. */
function refused(text: string, line: number, column: number, pattern: RegExp): void {
  const e = problem(text);
  assert.deepEqual([e.line, e.column], [line, column], e.message);
  assert.match(e.problem, pattern);
}

const PEER = 'trunks:\n  - name: office\n    kind: peer\n    host: 192.0.2.10\n';
const PROVIDER = 'trunks:\n  - name: provider\n    kind: register\n    host: sip.example.net\n    username: "4930123"\n    password: secret\n';

test('without the sections there are no trunks, rules or classes', () => {
  assert.deepEqual(defaultConfig().trunks, []);
  assert.deepEqual(defaultConfig().dialplan, []);
  assert.deepEqual(defaultConfig().classes, {});
  const c = parseConfigText('trunks:\ndialplan: ~\nclasses:\n');
  assert.deepEqual([c.trunks, c.dialplan, c.classes], [[], [], {}]);
  assert.deepEqual(parseConfigText('sip:\n  port: 5070\n').trunks, []);
});

test('a register trunk gets every default', () => {
  const [t] = parseConfigText(PROVIDER).trunks;
  assert.deepEqual(t, {
    name: 'provider',
    kind: 'register',
    host: 'sip.example.net',
    port: 5060,
    transport: 'udp',
    username: '4930123',
    password: 'secret',
    authUsername: '',
    fromUser: '',
    fromDomain: '',
    expires: 600,
    allow: [],
    maxCalls: 0,
    codecs: [],
    requestUriParams: 'user=phone',
    telUri: false,
    callerId: 'extension',
    options: 0,
    stripPlus: true,
    did: {},
  });
});

test('a peer trunk has no account and no Request-URI parameters by default', () => {
  const [t] = parseConfigText(PEER).trunks;
  assert.equal(t!.kind, 'peer');
  assert.equal(t!.username, '');
  assert.equal(t!.password, '');
  assert.equal(t!.requestUriParams, '');
});

test('every trunk key given is taken', () => {
  const c = parseConfigText(
    [
      'trunks:',
      '  - name: prov.1',
      '    kind: register',
      '    host: 2001:db8::1',
      '    port: 5080',
      '    transport: tcp',
      '    username: 0301234',
      '    password: 0042',
      '    authUsername: auth-user',
      '    fromUser: "+4930"',
      '    fromDomain: voip.example.net',
      '    expires: 3600',
      '    allow: [192.0.2.0/24, "2001:db8::/32"]',
      '    maxCalls: 4',
      '    codecs: [PCMA, G722]',
      '    requestUriParams: ";user=phone;npdi"',
      '    telUri: true',
      '    callerId: +4930123456',
      '    options: 30',
      '    stripPlus: false',
      '',
    ].join('\n'),
  );
  const t = c.trunks[0]!;
  assert.equal(t.host, '2001:db8::1');
  assert.equal(t.port, 5080);
  assert.equal(t.transport, 'tcp');
  assert.equal(t.username, '0301234', 'a plain number keeps its leading zero');
  assert.equal(t.password, '0042');
  assert.equal(t.authUsername, 'auth-user');
  assert.equal(t.fromUser, '+4930');
  assert.equal(t.fromDomain, 'voip.example.net');
  assert.equal(t.expires, 3600);
  assert.deepEqual(t.allow, ['192.0.2.0/24', '2001:db8::/32']);
  assert.equal(t.maxCalls, 4);
  assert.deepEqual(t.codecs, ['PCMA', 'G722']);
  assert.equal(t.requestUriParams, 'user=phone;npdi', 'a leading ";" is dropped');
  assert.equal(t.telUri, true);
  assert.equal(t.callerId, '+4930123456', 'a plain number keeps its +');
  assert.equal(t.options, 30);
  assert.equal(t.stripPlus, false);
  assert.equal(parseConfigText(PEER + '    callerId: anonymous\n    allow: "10.0.0.1, 10.0.1.0/24"\n').trunks[0]!.callerId, 'anonymous');
  assert.deepEqual(parseConfigText(PEER + '    allow: "10.0.0.1, 10.0.1.0/24"\n').trunks[0]!.allow, ['10.0.0.1', '10.0.1.0/24']);
  assert.deepEqual(parseConfigText(PEER + '    allow: ""\n').trunks[0]!.allow, []);
  assert.equal(parseConfigText(PROVIDER + '    requestUriParams: ""\n').trunks[0]!.requestUriParams, '');
});

test('did maps numbers to an extension, extensions to ring together, or an IVR file', () => {
  const c = parseConfigText(
    PROVIDER +
      [
        '    did:',
        '      +4930123456: 100',
        '      "4930123457": [101, "102"]',
        '      0301234: "sales.desk"',
        '      "*99": ivr:menu.xml',
        '      default: ivr:auto_attendant.xml',
        '',
      ].join('\n'),
  );
  assert.deepEqual(c.trunks[0]!.did, {
    '+4930123456': { kind: 'extensions', numbers: ['100'] },
    '4930123457': { kind: 'extensions', numbers: ['101', '102'] },
    '0301234': { kind: 'extensions', numbers: ['sales.desk'] },
    '*99': { kind: 'ivr', file: 'menu.xml' },
    default: { kind: 'ivr', file: 'auto_attendant.xml' },
  });
});

test('did problems are named with their line', () => {
  const did = (lines: string) => PROVIDER + '    did:\n' + lines;
  refused(did('      "12a": 100\n'), 8, 7, /"did" key "12a" is not allowed/);
  refused(did('      "100": 100\n      100: 101\n'), 9, 7, /"did" number "100" is given twice/);
  refused(did('      "100": []\n'), 8, 14, /lists 0 extensions; a list to ring together has 1 to 32/);
  refused(did(`      "100": [${Array.from({ length: 33 }, (_, i) => 200 + i).join(', ')}]\n`), 8, 14, /lists 33 extensions/);
  refused(did('      "100": [101, 101]\n'), 8, 20, /lists extension "101" twice/);
  refused(did('      "100": ivr:../x.xml\n'), 8, 14, /after "ivr:" comes an IVR file name/);
  refused(did('      "100": ivr:menu.txt\n'), 8, 14, /ending in \.xml/);
  refused(did('      "100": "a b"\n'), 8, 14, /"did\.100" must be an extension number/);
  refused(did('      "100": true\n'), 8, 14, /must be an extension number/);
  refused(PROVIDER + '    did: [100]\n', 7, 10, /"did" must be a mapping/);
});

test('passwordFile is read from the configuration file\'s folder, without its trailing newline', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mss-trunks-'));
  writeFileSync(join(dir, 'provider.secret'), 's3cret pass\n');
  const file = join(dir, 'config.yaml');
  const trunk = 'trunks:\n  - name: p\n    kind: register\n    host: sip.example.net\n    username: u\n';
  writeFileSync(file, trunk + '    passwordFile: provider.secret\n');
  assert.equal(loadConfigFile(file).trunks[0]!.password, 's3cret pass');
  writeFileSync(file, trunk + `    passwordFile: ${join(dir, 'provider.secret')}\n`);
  assert.equal(loadConfigFile(file).trunks[0]!.password, 's3cret pass', 'an absolute path');

  writeFileSync(file, trunk + '    passwordFile: missing.secret\n');
  assert.throws(
    () => loadConfigFile(file),
    (e: unknown) => e instanceof ConfigError && e.line === 6 && e.column === 19 && e.problem.includes(join(dir, 'missing.secret')) && /ENOENT/.test(e.problem),
  );
  writeFileSync(join(dir, 'empty.secret'), '\n');
  writeFileSync(file, trunk + '    passwordFile: empty.secret\n');
  assert.throws(() => loadConfigFile(file), /config\.yaml:6:19: trunk "p": the password in .*empty\.secret is empty/);
  writeFileSync(file, trunk + '    password: x\n    passwordFile: provider.secret\n');
  assert.throws(() => loadConfigFile(file), /config\.yaml:7:5: trunk "p": give either "password" or "passwordFile", not both/);
});

test('trunk problems are named with their line and column', () => {
  refused('trunks:\n  name: a\n', 2, 3, /"trunks" must be a list of trunks/);
  refused('trunks:\n  - a\n', 2, 5, /trunks entry 1 must be a mapping/);
  refused(PEER + '    prot: 5061\n', 5, 5, /trunks entry 1: unknown key "prot"; known keys: name, kind, host, port, .*did/);
  refused('trunks:\n  - kind: peer\n    host: h\n', 2, 5, /trunks entry 1 has no "name"/);
  refused('trunks:\n  - name: "a b"\n    kind: peer\n    host: h\n', 2, 11, /"name" is "a b"; it must be letters, digits/);
  refused('trunks:\n  - name: a\n    host: h\n', 2, 5, /trunk "a" has no "kind"; it must be one of: register, peer/);
  refused('trunks:\n  - name: a\n    kind: friend\n    host: h\n', 3, 11, /"kind" is "friend"; it must be one of: register, peer/);
  refused('trunks:\n  - name: a\n    kind: peer\n', 2, 5, /trunk "a" has no "host"/);
  refused('trunks:\n  - name: a\n    kind: peer\n    host: sip://x.example\n', 4, 11, /"host" is "sip:\/\/x\.example"; it must be a host name .* or an IP address/);
  refused('trunks:\n  - name: a\n    kind: peer\n    host: "[2001:db8::1]"\n', 4, 11, /without brackets/);
  refused(PEER + '    port: 0\n', 5, 11, /trunk "office": "port" is 0; it must be between 1 and 65535/);
  refused(PEER + '    port: "5060"\n', 5, 11, /"port" must be a whole number \(default 5060\)/);
  refused(PEER + '    transport: tls\n', 5, 16, /"transport" is "tls"; it must be one of: udp, tcp/);
  refused(PEER + '    expires: 5\n', 5, 14, /"expires" is 5; it must be between 10 and 86400/);
  refused(PEER + '    allow: [10.0.0.1, crm.example.com]\n', 5, 23, /"allow" entry "crm\.example\.com": .*not an IP address or a CIDR range/);
  refused(PEER + '    allow: "10.0.0.0/33"\n', 5, 12, /prefix length must be 0-32/);
  refused(PEER + '    maxCalls: 100001\n', 5, 15, /"maxCalls" is 100001; it must be between 0 and 100000/);
  refused(PEER + '    codecs: [PCMA, "G 729"]\n', 5, 20, /"codecs" entry "G 729": an encoding name/);
  refused(PEER + '    codecs: PCMA\n', 5, 13, /"codecs" must be a list/);
  refused(PEER + '    requestUriParams: "user=phone;a b"\n', 5, 23, /"requestUriParams" is .*URI parameters/);
  refused(PEER + '    requestUriParams: "user==phone"\n', 5, 23, /URI parameters/);
  refused(PEER + '    telUri: yes\n', 5, 13, /"telUri" must be true or false \(default false\)/);
  refused(PEER + '    callerId: office\n', 5, 15, /"callerId" is "office"; it must be "extension", "anonymous" or a number/);
  refused(PEER + '    options: 3\n', 5, 14, /"options" is 3; it must be 0 \(no keep-alive\) or between 5 and 3600/);
  refused(PEER + '    options: 3601\n', 5, 14, /"options" is 3601; it must be between 0 and 3600/);
  refused(PEER + '    stripPlus: 1\n', 5, 16, /"stripPlus" must be true or false/);
  refused(PEER + '    fromDomain: "a b"\n', 5, 17, /"fromDomain" is "a b"; it must be a host name/);
  refused(PEER + '  - name: office\n    kind: peer\n    host: h\n', 5, 11, /trunk name "office" is used twice \(first at line 2\)/);
});

test('a register trunk needs its account; a peer has none', () => {
  refused('trunks:\n  - name: a\n    kind: register\n    host: h\n    password: p\n', 2, 5, /trunk "a": kind register needs "username"/);
  refused('trunks:\n  - name: a\n    kind: register\n    host: h\n    username: u\n', 2, 5, /kind register needs "password" or "passwordFile"/);
  refused(PEER + '    username: u\n', 5, 5, /"username" is for kind register.*a peer trunk has none/);
  refused(PEER + '    password: p\n', 5, 5, /"password" is for kind register/);
  refused(PEER + '    passwordFile: p.secret\n', 5, 5, /"passwordFile" is for kind register/);
  refused(PROVIDER.replace('password: secret', 'password: ""'), 6, 15, /"password" is empty/);
  refused(PROVIDER.replace('username: "4930123"', 'username: "a b"'), 5, 15, /"username" is "a b"; it must be 1 to 128 characters without spaces/);
  const e = problem(PROVIDER.replace('password: secret', 'password: "se\\tcret"'));
  assert.match(e.problem, /"password" contains control characters/);
  assert.ok(!e.message.includes('se\tcret'), 'the password is not shown');
});

test('dial plan rules get their defaults and their line; YAML numbers are taken as written', () => {
  const c = parseConfigText(
    PROVIDER +
      PEER.replace('trunks:\n', '') +
      'classes:\n  international: { restricted: true }\n  local:\n' +
      'dialplan:\n  - match: 9\n    trunk: provider\n  - match: 900.\n    strip: 1\n    prepend: +49\n    trunk: provider\n    fallback: office\n    class: international\n  - { match: 0044, trunk: office }\n',
  );
  assert.deepEqual(c.classes, { international: { restricted: true }, local: { restricted: false } });
  assert.deepEqual(c.dialplan, [
    { match: '9', strip: 0, prepend: '', trunk: 'provider', fallback: '', class: '', line: 14 },
    { match: '900.', strip: 1, prepend: '+49', trunk: 'provider', fallback: 'office', class: 'international', line: 16 },
    { match: '0044', strip: 0, prepend: '', trunk: 'office', fallback: '', class: '', line: 22 },
  ]);
});

test('dial plan problems are named with their line and column', () => {
  const rules = (lines: string) => PROVIDER + PEER.replace('trunks:\n', '') + 'classes:\n  mobile:\n' + 'dialplan:\n' + lines;
  // Rules start at line 13.
  refused(rules('  match: 9\n'), 13, 3, /"dialplan" must be a list of rules/);
  refused(rules('  - match: 9\n    trunk: provider\n    strp: 1\n'), 15, 5, /dialplan rule 1: unknown key "strp"; known keys: match, strip, prepend, trunk, fallback, class/);
  refused(rules('  - trunk: provider\n'), 13, 5, /dialplan rule 1 has no "match"/);
  refused(rules('  - match: 9\n'), 13, 5, /dialplan rule 1 has no "trunk"/);
  refused(rules('  - match: 9\n    trunk: provider\n  - match: 9X[1-\n    trunk: provider\n'), 15, 12, /dialplan rule 2: "match" is "9X\[1-"; "\[" at character 3 opens a set that is not closed/);
  refused(rules('  - match: ""\n    trunk: provider\n'), 13, 12, /the match is empty/);
  refused(rules('  - match: 9.X\n    trunk: provider\n'), 13, 12, /may only end the pattern/);
  refused(rules('  - match: 9\n    strip: 33\n    trunk: provider\n'), 14, 12, /"strip" is 33; it must be between 0 and 32/);
  refused(rules('  - match: 9\n    prepend: "0-1"\n    trunk: provider\n'), 14, 14, /"prepend" is "0-1"; digits, \*, #, \+/);
  refused(rules('  - match: 9\n    trunk: carrier\n'), 14, 12, /"trunk" is "carrier"; it names no trunk; the trunks are: provider, office/);
  refused('dialplan:\n  - match: 9\n    trunk: carrier\n', 3, 12, /no trunks are configured/);
  refused(rules('  - match: 9\n    trunk: provider\n    fallback: provider\n'), 15, 15, /"fallback" is "provider"; it must be another trunk than "trunk"/);
  refused(rules('  - match: 9\n    trunk: provider\n    fallback: carrier\n'), 15, 15, /"fallback" is "carrier"; it names no trunk/);
  refused(rules('  - match: 9\n    trunk: provider\n    class: premium\n'), 15, 12, /"class" is "premium"; it is not declared under classes: \(declared: mobile\)/);
});

test('class problems are named with their line and column', () => {
  refused('classes: [international]\n', 1, 10, /"classes" must be a mapping/);
  refused('classes:\n  International: { restricted: true }\n', 2, 3, /class name "International" is not allowed/);
  refused('classes:\n  intl: true\n', 2, 9, /class "intl" must be a mapping such as \{ restricted: true \}/);
  refused('classes:\n  intl:\n    restricted: yes\n', 3, 17, /class "intl": "restricted" must be true or false \(default false\)/);
  refused('classes:\n  intl:\n    restrict: true\n', 3, 5, /class "intl": unknown key "restrict"; known keys: restricted/);
  refused('classes:\n  1:\n  "1":\n', 3, 3, /class "1" is declared twice/);
});

test('a class named __proto__ is an ordinary class', () => {
  const c = parseConfigText(PEER + 'classes:\n  __proto__: { restricted: true }\ndialplan:\n  - { match: 9, trunk: office, class: __proto__ }\n');
  assert.ok(Object.hasOwn(c.classes, '__proto__'));
  assert.equal(c.classes['__proto__']!.restricted, true);
  assert.equal(c.dialplan[0]!.class, '__proto__');
});

test('the unknown-section message names the new sections', () => {
  assert.match(problem('trunk:\n  - name: a\n').problem, /known sections: .*trunks, dialplan, classes/);
});

test('a changed rule is reported as "dialplan", and set as a whole', () => {
  const text = PEER + 'dialplan:\n  - match: 9\n    strip: 1\n    trunk: office\n';
  const before = parseConfigText(text);
  assert.deepEqual(configChanges(before, parseConfigText(text)), []);
  const after = parseConfigText(text.replace('strip: 1', 'strip: 0'));
  const changes = configChanges(before, after);
  assert.deepEqual(changes.map((c) => c.key), ['dialplan']);
  setConfigValue(before, 'dialplan', changes[0]!.to);
  assert.equal(before.dialplan[0]!.strip, 0);
  assert.notEqual(before.dialplan, after.dialplan, 'a copy is kept, not the new configuration\'s list');
  assert.deepEqual(configValue(before, 'dialplan'), after.dialplan);
  assert.deepEqual(configChanges(before, after), []);

  const moreTrunks = parseConfigText(text.replace('host: 192.0.2.10', 'host: 192.0.2.11'));
  assert.deepEqual(configChanges(parseConfigText(text), moreTrunks).map((c) => c.key), ['trunks']);
  const classes = parseConfigText(text + 'classes:\n  mobile:\n');
  assert.deepEqual(configChanges(parseConfigText(text), classes).map((c) => c.key), ['classes']);
  const reordered = parseConfigText(PROVIDER + '    did:\n      "1": 100\n      "2": 101\n');
  const same = parseConfigText(PROVIDER + '    did:\n      "2": 101\n      "1": 100\n');
  assert.deepEqual(configChanges(reordered, same), [], 'the order of did keys does not count');
});

test('the example of docs/CONFIG.md loads', () => {
  const doc = readFileSync('docs/CONFIG.md', 'utf8');
  const example = /## Trunks, dial plan and call classes[\s\S]*?```yaml\n([\s\S]*?)```/.exec(doc)?.[1];
  assert.ok(example, 'docs/CONFIG.md has the trunks example');
  const dir = mkdtempSync(join(tmpdir(), 'mss-trunks-doc-'));
  writeFileSync(join(dir, 'provider.secret'), 'pw\n');
  writeFileSync(join(dir, 'config.yaml'), example);
  const c = loadConfigFile(join(dir, 'config.yaml'));
  assert.deepEqual(c.trunks.map((t) => [t.name, t.kind]), [['provider', 'register'], ['branch', 'peer']]);
  assert.deepEqual(c.dialplan.map((r) => [r.match, r.class, r.fallback]), [['900.', 'international', 'branch'], ['9', '', '']]);
});
