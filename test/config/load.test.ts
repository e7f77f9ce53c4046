import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfigFile, parseConfigText } from '../../lib/config/load.js';
import { defaultConfig, SCHEMA, type KeySpec } from '../../lib/config/schema.js';

function problem(text: string): ConfigError {
  try {
    parseConfigText(text, 'conf.yaml');
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a configuration error');
}

test('an empty file gives the built-in defaults', () => {
  assert.deepEqual(parseConfigText(''), defaultConfig());
  assert.equal(defaultConfig().sip.port, 5060);
  assert.deepEqual(defaultConfig().sip.transports, ['udp', 'tcp']);
  assert.equal(defaultConfig().data.dir, './data');
});

test('keys given override the defaults and the rest keep them', () => {
  const c = parseConfigText('sip:\n  port: 5070\n  realm: office\nlimits:\n  maxClients: 5\n');
  assert.equal(c.sip.port, 5070);
  assert.equal(c.sip.realm, 'office');
  assert.equal(c.limits.maxClients, 5);
  assert.equal(c.registrar.maxContacts, 5);
});

test('an unknown key is refused with file, line, column and the known keys', () => {
  const e = problem('sip:\n  port: 5060\n  prot: 5061\n');
  assert.equal(e.line, 3);
  assert.equal(e.column, 3);
  assert.match(e.message, /^conf\.yaml:3:3: unknown key "sip\.prot"; known keys: .*port/);
});

test('an unknown section is refused', () => {
  const e = problem('sipp:\n  port: 1\n');
  assert.equal(e.line, 1);
  assert.match(e.message, /unknown section "sipp"/);
});

test('a port out of range names the bounds', () => {
  const e = problem('sip:\n  port: 70000\n');
  assert.equal(e.line, 2);
  assert.match(e.message, /"sip\.port" is 70000; it must be between 1 and 65535/);
});

test('a wrong type is refused', () => {
  assert.match(problem('sip:\n  port: "abc"\n').message, /must be a whole number/);
  assert.match(problem('sip:\n  transports: udp\n').message, /must be a list/);
  assert.match(problem('sip:\n  transports: [udp, sctp]\n').message, /entries must be one of: udp, tcp/);
  assert.match(problem('log:\n  level: loud\n').message, /must be one of: debug, info, warn, error/);
  assert.match(problem('sip:\n  realm: 42\n').message, /must be text/);
});

test('YAML syntax errors and duplicate keys give a position', () => {
  const e = problem('sip:\n  port: [5060\n');
  assert.ok(e.line >= 2);
  assert.match(e.message, /YAML syntax/);
  assert.match(problem('sip:\n  port: 1\n  port: 2\n').message, /YAML syntax/);
});

test('inconsistent values across keys are refused', () => {
  assert.match(problem('registrar:\n  minExpires: 4000\n  maxExpires: 3600\n').message, /minExpires must not exceed/);
  assert.match(problem('sip:\n  transports: []\n').message, /at least one transport/);
});

test('loadConfigFile reads a file and reports an unreadable one', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mss-config-'));
  const file = join(dir, 'c.yaml');
  writeFileSync(file, 'sip:\n  port: 5090\n');
  assert.equal(loadConfigFile(file).sip.port, 5090);
  assert.throws(() => loadConfigFile(join(dir, 'missing.yaml')), /missing\.yaml:0:0: cannot read the configuration file \(ENOENT\)/);
});

test('docs/CONFIG.md documents every key with its default', () => {
  const doc = readFileSync('docs/CONFIG.md', 'utf8');
  const check = (name: string, spec: KeySpec): void => {
    if (spec.type === 'group') {
      for (const [key, sub] of Object.entries(spec.keys)) check(`${name}.${key}`, sub);
      return;
    }
    const def = Array.isArray(spec.default) ? `[${spec.default.join(', ')}]` : JSON.stringify(spec.default);
    assert.ok(doc.includes(`| \`${name}\` |`), `docs/CONFIG.md lacks ${name}`);
    assert.ok(doc.includes(`\`${def}\``), `docs/CONFIG.md lacks the default of ${name}`);
  };
  for (const [section, keys] of Object.entries(SCHEMA)) for (const [key, spec] of Object.entries(keys)) check(`${section}.${key}`, spec);
});

test('ivr.numbers maps dialled numbers to IVR files; a bad number, file name or time zone is named with its line', () => {
  const c = parseConfigText('ivr:\n  numbers:\n    "800": auto_attendant.xml\n    801: menu.xml\n  timezone: Europe/Paris\n');
  assert.deepEqual(c.ivr.numbers, { '800': 'auto_attendant.xml', '801': 'menu.xml' });
  assert.equal(c.ivr.timezone, 'Europe/Paris');
  assert.deepEqual(defaultConfig().ivr.numbers, {});
  const badKey = problem('ivr:\n  numbers:\n    "8a0": menu.xml\n');
  assert.equal(badKey.line, 3);
  assert.match(badKey.problem, /"ivr\.numbers" key "8a0" is not allowed/);
  const badFile = problem('ivr:\n  numbers:\n    "800": ../etc/passwd.xml\n');
  assert.equal(badFile.line, 3);
  assert.match(badFile.problem, /ivr\.numbers\.800/);
  assert.match(problem('ivr:\n  numbers:\n    "800": menu.txt\n').problem, /IVR file name/);
  assert.match(problem('ivr:\n  numbers: [800]\n').problem, /must be a mapping/);
  const zone = problem('ivr:\n  timezone: Mars/Olympus\n');
  assert.equal(zone.line, 2);
  assert.match(zone.problem, /not a time zone/);
});

test('callback.asAddress: a list of IPs and CIDR ranges, or one text value ("" = any source); a bad entry is named with its line', () => {
  assert.deepEqual(defaultConfig().callback.asAddress, ['127.0.0.1']);
  assert.deepEqual(parseConfigText('callback:\n  asAddress: [10.0.0.5, 192.0.2.0/28, "2001:db8::/32"]\n').callback.asAddress, ['10.0.0.5', '192.0.2.0/28', '2001:db8::/32']);
  assert.deepEqual(parseConfigText('callback:\n  asAddress: 10.0.0.5\n').callback.asAddress, ['10.0.0.5']);
  assert.deepEqual(parseConfigText('callback:\n  asAddress: ""\n').callback.asAddress, []);
  assert.deepEqual(parseConfigText('callback:\n  asAddress: []\n').callback.asAddress, []);
  const bad = problem('callback:\n  port: 5080\n  asAddress:\n    - 10.0.0.5\n    - crm.example.com\n');
  assert.equal(bad.line, 5);
  assert.match(bad.problem, /"crm\.example\.com" is not an IP address or a CIDR range/);
  assert.match(problem('callback:\n  asAddress: 10.0.0.0/33\n').problem, /prefix length must be 0-32/);
  assert.match(problem('callback:\n  port: 70000\n').problem, /between 0 and 65535/);
  assert.match(problem('callback:\n  defaultCaller: "12 34"\n').problem, /number/);
});

test('sip.tls: its keys under one name, relative files read from the configuration\'s folder; tls needs a certificate and key', () => {
  const d = defaultConfig().sip;
  assert.deepEqual(d.tls, { port: 5061, cert: '', key: '', ca: '', handshakeTimeout: 10 });
  assert.deepEqual(d.transports, ['udp', 'tcp'], 'TLS is off by default');
  const c = parseConfigText('sip:\n  transports: [udp, tls]\n  tls:\n    cert: tls/cert.pem\n    key: /etc/ssl/private/pbx.key\n', '/etc/minisipserver/minisipserver.yaml');
  assert.deepEqual(c.sip.tls, { port: 5061, cert: '/etc/minisipserver/tls/cert.pem', key: '/etc/ssl/private/pbx.key', ca: '', handshakeTimeout: 10 });
  const unknown = problem('sip:\n  tls:\n    port: 5061\n    certificate: a.pem\n');
  assert.equal(unknown.line, 4);
  assert.match(unknown.problem, /unknown key "sip\.tls\.certificate"; known keys: port, cert, key, ca, handshakeTimeout/);
  assert.match(problem('sip:\n  tls:\n    port: 70000\n').problem, /"sip\.tls\.port" is 70000; it must be between 0 and 65535/);
  assert.match(problem('sip:\n  tls: yes\n').problem, /"sip\.tls" must be a mapping of keys/);
  const missing = problem('sip:\n  transports: [udp, tls]\n  tls:\n    cert: a.pem\n');
  assert.equal(missing.line, 2);
  assert.match(missing.problem, /set sip\.tls\.cert and sip\.tls\.key .*minisipserver tls self-signed/);
});

test('cdr.format: one format as text or a list; db only beside a file format; a bad list is named with its line', () => {
  assert.deepEqual(parseConfigText('cdr:\n  format: both\n').cdr.format, ['both']);
  assert.deepEqual(parseConfigText('cdr:\n  format: off\n').cdr.format, ['off']);
  assert.deepEqual(parseConfigText('cdr:\n  format: [csv, db]\n').cdr.format, ['csv', 'db']);
  assert.deepEqual(parseConfigText('cdr:\n  format: "cdr, db"\n').cdr.format, ['cdr', 'db']);
  assert.deepEqual(defaultConfig().cdr.format, ['csv']);
  const refused = (text: string, problem: RegExp) =>
    assert.throws(() => parseConfigText(text, 'c.yaml'), (err: unknown) => err instanceof ConfigError && err.line === 2 && problem.test(err.message));
  refused('cdr:\n  format: [db]\n', /cdr\.format: db needs a file format beside it, such as \[csv, db\]/);
  refused('cdr:\n  format: [csv, off]\n', /off writes no record/);
  refused('cdr:\n  format: [csv, csv]\n', /named twice/);
  refused('cdr:\n  format: [both, csv]\n', /both already means csv and cdr/);
  refused('cdr:\n  format: [csv, mysql]\n', /"mysql" is not a CDR format/);
});
