// The IVR-XML validator (lib/services/ivr/xml.ts) and the WAV reader it checks prompts with
// (lib/media/endpoint/wav.ts), on real files in a temporary folder.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseWav, type WavAudio } from '../../../lib/media/endpoint/wav.js';
import { compileIvr, loadIvrFile, MAX_IVR_FILE_BYTES, type CompileOptions, type CompileResult } from '../../../lib/services/ivr/xml.js';
import type { CallToAction, CollectAction, IvrAction, TimeCheckAction } from '../../../lib/services/ivr/model.js';

const FIXTURES = path.resolve(process.cwd(), 'test/fixtures/ivr');
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'ivr-xml-'));
after(() => fs.rmSync(TMP, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------------
// WAV files built byte by byte

interface WavSpec {
  format?: number;
  channels?: number;
  rate?: number;
  bits?: number;
  samples?: number;
  /** WAVE_FORMAT_EXTENSIBLE with this sub-format code. */
  extensible?: number;
  /** Chunks written between fmt and data. */
  extra?: Buffer[];
}

function chunk(id: string, body: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header.write(id, 0, 'latin1');
  header.writeUInt32LE(body.length, 4);
  return Buffer.concat([header, body, body.length % 2 === 1 ? Buffer.alloc(1) : Buffer.alloc(0)]);
}

function wav(spec: WavSpec = {}): Buffer {
  const { format = 1, channels = 1, rate = 8000, bits = 16, samples = 800, extensible, extra = [] } = spec;
  const blockAlign = (channels * bits) / 8;
  const fmt = Buffer.alloc(extensible === undefined ? 16 : 40);
  fmt.writeUInt16LE(extensible === undefined ? format : 0xfffe, 0);
  fmt.writeUInt16LE(channels, 2);
  fmt.writeUInt32LE(rate, 4);
  fmt.writeUInt32LE(rate * blockAlign, 8);
  fmt.writeUInt16LE(blockAlign, 12);
  fmt.writeUInt16LE(bits, 14);
  if (extensible !== undefined) {
    fmt.writeUInt16LE(22, 16);
    fmt.writeUInt16LE(bits, 18);
    fmt.writeUInt32LE(4, 20);
    fmt.writeUInt16LE(extensible, 24);
    Buffer.from([0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71]).copy(fmt, 26);
  }
  const data = Buffer.alloc(samples * blockAlign, 0x55);
  const body = Buffer.concat([Buffer.from('WAVE'), chunk('fmt ', fmt), ...extra, chunk('data', data)]);
  const riff = Buffer.alloc(8);
  riff.write('RIFF', 0, 'latin1');
  riff.writeUInt32LE(body.length, 4);
  return Buffer.concat([riff, body]);
}

function playable(bytes: Uint8Array): WavAudio {
  const result = parseWav(bytes);
  assert.ok(!('problem' in result), 'problem' in result ? result.problem : '');
  return result;
}

function problem(bytes: Uint8Array): string {
  const result = parseWav(bytes);
  assert.ok('problem' in result, 'expected a problem');
  return result.problem;
}

test('wav: 8000 Hz mono PCM 16-bit, mu-law and A-law are playable; data is a view of the samples', () => {
  const pcm = wav({ samples: 8000 });
  const audio = playable(pcm);
  assert.equal(audio.encoding, 'pcm16');
  assert.equal(audio.sampleRate, 8000);
  assert.equal(audio.channels, 1);
  assert.equal(audio.data.length, 16000);
  assert.equal(audio.durationMs, 1000);
  assert.equal(audio.data.buffer, pcm.buffer, 'no copy of the samples');
  assert.equal(audio.data[0], 0x55);
  assert.equal(playable(wav({ format: 7, bits: 8, samples: 4000 })).encoding, 'pcmu');
  const alaw = playable(wav({ format: 6, bits: 8, samples: 4000 }));
  assert.equal(alaw.encoding, 'pcma');
  assert.equal(alaw.durationMs, 500);
});

test('wav: LIST and odd-sized chunks are skipped (with their pad byte); EXTENSIBLE sub-formats are read', () => {
  const odd = chunk('junk', Buffer.from('abc')); // 3 bytes + 1 pad byte
  assert.equal(odd.length, 12);
  const withChunks = wav({ samples: 10, extra: [chunk('LIST', Buffer.from('INFOISFT\u0005\u0000\u0000\u0000sox\u0000\u0000\u0000', 'latin1')), odd] });
  assert.equal(playable(withChunks).data.length, 20);
  assert.equal(playable(wav({ extensible: 1 })).encoding, 'pcm16');
  assert.equal(playable(wav({ extensible: 7, bits: 8 })).encoding, 'pcmu');
  assert.equal(playable(wav({ extensible: 6, bits: 8 })).encoding, 'pcma');
  assert.match(problem(wav({ extensible: 3, bits: 32 })), /^8000 Hz mono IEEE float 32-bit: the server plays/);
  // Streaming writers leave the RIFF size 0 or too large: the chunks are still read.
  for (const size of [0, 0xffffffff]) {
    const streamed = wav({ samples: 10 });
    streamed.writeUInt32LE(size, 4);
    assert.equal(playable(streamed).data.length, 20);
  }
});

test('wav: other formats name what they are and how to convert them', () => {
  assert.equal(
    problem(wav({ rate: 44100, channels: 2 })),
    '44100 Hz stereo PCM 16-bit: the server plays 8000 Hz mono PCM 16-bit or G.711 WAV; convert with: sox IN.wav -r 8000 -c 1 -b 16 OUT.wav',
  );
  assert.match(problem(wav({ bits: 8 })), /^8000 Hz mono PCM 8-bit: .*sox IN\.wav -r 8000 -c 1 -b 16 OUT\.wav$/);
  assert.match(problem(wav({ rate: 16000 })), /^16000 Hz mono PCM 16-bit: /);
  assert.match(problem(wav({ format: 7, bits: 8, channels: 2 })), /^8000 Hz stereo G\.711 mu-law 8-bit: /);
  assert.match(problem(wav({ format: 0x55, bits: 0 })), /^8000 Hz mono MP3: /);
  assert.match(problem(wav({ format: 0x1234 })), /^8000 Hz mono format 0x1234 16-bit: /);
});

test('wav: truncated or corrupt files give a clear problem, never an exception', () => {
  const good = wav({ samples: 100 });
  assert.match(problem(good.subarray(0, good.length - 10)), /truncated WAV file: the data chunk declares 200 bytes but only 190 are present/);
  assert.match(problem(good.subarray(0, 5)), /too short/);
  assert.match(problem(Buffer.from('hello world, this is text')), /does not start with "RIFF"/);
  assert.match(problem(Buffer.from('RIFF\u0004\u0000\u0000\u0000AVI LIST', 'latin1')), /not of type "WAVE"/);
  const noData = Buffer.concat([Buffer.from('RIFF\u0000\u0000\u0000\u0000WAVE', 'latin1'), chunk('fmt ', good.subarray(20, 36))]);
  assert.match(problem(noData), /no data chunk/);
  const noFmt = Buffer.concat([Buffer.from('RIFF\u0000\u0010\u0000\u0000WAVE', 'latin1'), chunk('data', Buffer.alloc(10))]);
  assert.match(problem(noFmt), /no fmt chunk/);
  const shortFmt = Buffer.concat([Buffer.from('RIFF\u0000\u0010\u0000\u0000WAVE', 'latin1'), chunk('fmt ', Buffer.alloc(8))]);
  assert.match(problem(shortFmt), /fmt chunk is 8 bytes, expected at least 16/);
  assert.match(problem(wav({ samples: 0 })), /holds no audio/);
  // Every prefix of a valid file, and the file with each byte flipped, is handled without a throw.
  for (let n = 0; n < good.length; n += 3) assert.equal(typeof parseWav(good.subarray(0, n)), 'object');
  for (let i = 0; i < 60; i++) {
    const bent = Buffer.from(good);
    bent[i] = bent[i]! ^ 0xff;
    assert.equal(typeof parseWav(bent), 'object');
  }
});

// ---------------------------------------------------------------------------------------------
// Compiling IVR-XML

/** A fresh folder with prompts/en/welcome.wav, prompts/bye.wav, prompts/en/loud.wav (44.1 kHz) */
function promptsFolder(): string {
  const dir = fs.mkdtempSync(path.join(TMP, 'prompts-'));
  fs.mkdirSync(path.join(dir, 'en'));
  fs.writeFileSync(path.join(dir, 'en', 'welcome.wav'), wav());
  fs.writeFileSync(path.join(dir, 'bye.wav'), wav({ format: 7, bits: 8 }));
  fs.writeFileSync(path.join(dir, 'en', 'loud.wav'), wav({ rate: 44100, channels: 2 }));
  return dir;
}

const PROMPTS = promptsFolder();

function compile(xml: string | Uint8Array, opts: Partial<CompileOptions> = {}): CompileResult {
  const bytes = typeof xml === 'string' ? Buffer.from(xml) : xml;
  return compileIvr('t.xml', bytes, { promptsDir: PROMPTS, language: 'en', ...opts });
}

/** Findings as "LINE:COL severity: message". */
function lines(result: CompileResult): string[] {
  return result.findings.map((f) => `${f.line}:${f.col} ${f.severity}: ${f.message}`);
}

/** A document of the given action lines, the first of them on line 2. */
function doc(...actions: string[]): string {
  return `<mssxml version="1">\n${actions.join('\n')}\n</mssxml>\n`;
}

/** Asserts that exactly these findings (regexps on "LINE:COL severity: message") come out. */
function expectFindings(result: CompileResult, ...expected: RegExp[]): void {
  const got = lines(result);
  assert.equal(got.length, expected.length, `findings:\n${got.join('\n')}`);
  expected.forEach((re, i) => assert.match(got[i]!, re));
}

function action(result: CompileResult, name: string): IvrAction {
  assert.ok(result.document, `no document:\n${lines(result).join('\n')}`);
  const a = result.document.actions.get(name);
  assert.ok(a, `no action ${name}`);
  return a;
}

test('the spec example (§7) compiles: flow, defaults, fall-through and prompts', () => {
  const dir = fs.mkdtempSync(path.join(TMP, 'example-'));
  fs.mkdirSync(path.join(dir, 'prompts', 'en'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'prompts', 'en', 'welcome_menu.wav'), wav());
  fs.writeFileSync(path.join(dir, 'prompts', 'office_closed.wav'), wav({ format: 6, bits: 8 }));
  const file = path.join(dir, 'main_menu.xml');
  fs.copyFileSync(path.join(FIXTURES, 'main_menu.xml'), file);
  const result = loadIvrFile(file, { promptsDir: path.join(dir, 'prompts'), language: 'en' });
  assert.deepEqual(result.findings, []);
  const document = result.document!;
  assert.equal(document.file, file);
  assert.equal(document.start, 'start');
  assert.deepEqual([...document.actions.keys()], ['start', 'menu', 'dialext', 'sales', 'support', 'operator', 'closed', 'bye']);
  assert.deepEqual([...document.prompts].sort(), ['office_closed.wav', 'welcome_menu.wav']);

  const start = action(result, 'start') as TimeCheckAction;
  assert.equal(start.method, 'timecheck');
  assert.deepEqual([...start.periods[0]!.days], [1, 2, 3, 4, 5]);
  assert.equal(start.periods[0]!.fromMinute, 8 * 60 + 30);
  assert.equal(start.periods[0]!.toMinute, 17 * 60 + 30);
  assert.equal(start.periods[0]!.next, 'menu');
  assert.deepEqual(start.periods[0]!.at, { line: 6, col: 5 });
  assert.equal(start.fallback, 'closed');

  const menu = action(result, 'menu') as CollectAction;
  assert.deepEqual(menu.at, { line: 10, col: 3 });
  assert.deepEqual(menu.voices, [[{ text: 'welcome_menu.wav' }]]);
  assert.equal(menu.maxDigits, 3);
  assert.equal(menu.minDigits, 1);
  assert.equal(menu.timeoutMs, 6000);
  assert.equal(menu.interDigitMs, 3000);
  assert.equal(menu.terminator, '#');
  assert.equal(menu.retries, 2);
  assert.deepEqual(menu.matches.map((m) => [m.kind, m.value, m.next]), [['exact', '1', 'sales'], ['exact', '2', 'support']]);
  assert.equal(menu.noInput, 'operator');
  assert.equal(menu.noMatch, 'dialext');
  assert.equal(menu.extension, false);
  assert.equal(menu.next, 'dialext', 'falls through to the next action in document order');

  const dialext = action(result, 'dialext') as CallToAction;
  assert.deepEqual(dialext.destination, [{ variable: 'digits' }]);
  assert.deepEqual(dialext.monitor, { busy: 'operator' });
  assert.deepEqual((action(result, 'support') as CallToAction).destination, [{ text: '301' }]);
  assert.equal(action(result, 'closed').next, 'bye');
  assert.equal(action(result, 'bye').next, undefined);
});

test('next: nextaction, else the following action, else nothing; goto and hangup', () => {
  const result = compile(
    doc(
      '<action name="a" method="set" var="x" value="1"/>',
      '<action name="b" method="goto" nextaction="d"/>',
      '<action name="c" method="hangup"/>',
      '<action name="d" method="set" var="y" value="2" nextaction="c"/>',
      '<action name="e" method="set" var="z" value="3"/>',
    ),
  );
  expectFindings(result, /^6:1 warning: action "e" is never reached from the first action "a"$/);
  assert.equal(action(result, 'a').next, 'b');
  assert.equal(action(result, 'b').next, 'd');
  assert.equal(action(result, 'c').next, undefined);
  assert.equal(action(result, 'd').next, 'c');
  assert.equal(action(result, 'e').next, undefined);
});

test('encoding: bytes that are not UTF-8 are an error at the line and column of the first bad byte', () => {
  const latin1 = Buffer.concat([Buffer.from('<mssxml version="1">\n  <action name="caf'), Buffer.from([0xe9]), Buffer.from('" method="hangup"/>\n</mssxml>\n')]);
  expectFindings(compile(latin1), /^2:20 error: not UTF-8: byte 0xE9 does not begin a valid UTF-8 character; IVR-XML files must be saved as UTF-8$/);
  // A multi-byte character before the bad byte counts as one column; a truncated sequence is bad at its first byte.
  const cut = Buffer.concat([Buffer.from('<mssxml version="1"><!-- é '), Buffer.from([0xe2, 0x82]), Buffer.from(' --></mssxml>')]);
  expectFindings(compile(cut), /^1:28 error: not UTF-8: byte 0xE2 /);
  const overlong = Buffer.concat([Buffer.from('<mssxml>\n'), Buffer.from([0xc0, 0xaf])]);
  expectFindings(compile(overlong), /^2:1 error: not UTF-8: byte 0xC0/);
});

test('encoding: UTF-16 and a declaration of another encoding are refused; a UTF-8 BOM is fine', () => {
  const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('<mssxml version="1"/>', 'utf16le')]);
  expectFindings(compile(utf16), /^1:1 error: the file is UTF-16 .*must be UTF-8$/);
  const utf16be = Buffer.from([0xfe, 0xff, 0x00, 0x3c]);
  expectFindings(compile(utf16be), /^1:1 error: the file is UTF-16/);
  const noBom16 = Buffer.from('<mssxml version="1"/>', 'utf16le');
  expectFindings(compile(noBom16), /^1:2 error: NUL character: this is not UTF-8 text/);
  const latinDeclared = '<?xml version="1.0" encoding="ISO-8859-1"?>\n' + doc('<action name="a" method="hangup"/>');
  expectFindings(compile(latinDeclared), /^1:1 error: the XML declaration names encoding "ISO-8859-1"; IVR-XML files must be UTF-8/);
  const declared = (e: string) => `<?xml version="1.0" encoding='${e}'?>\n` + doc('<action name="a" method="hangup"/>');
  for (const name of ['utf-8', 'UTF-8', 'utf8']) assert.deepEqual(lines(compile(declared(name))), [], name);
  const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(doc('<action name="a" method="goto" nextaction="zz"/>'))]);
  expectFindings(compile(bom), /^2:1 error: nextaction "zz" names no action; actions are: a$/);
});

test('syntax errors come from the XML validator with its line and column', () => {
  expectFindings(
    compile('<mssxml version="1">\n  <action name="a" method="hangup">\n</mssxml>\n'),
    /^3:1 error: XML syntax: Expected closing tag 'action' \(opened in line 2, col 3\) instead of closing tag 'mssxml'\.$/,
  );
  expectFindings(compile('<mssxml version="1">\n  <action name="a" name="b" method="hangup"/>\n</mssxml>'), /^2:20 error: XML syntax: Attribute 'name' is repeated\.$/);
  expectFindings(compile('<mssxml version="1"></mssxml>\n  <mssxml version="1"></mssxml>'), /^2:22 error: XML syntax: Multiple possible root nodes found\.$/);
  expectFindings(compile('<mssxml version="1"/>\n  <mssxml version="1"/>'), /^2:3 error: only one root element is allowed; the first is <mssxml> at line 1$/);
  expectFindings(compile('<mssxml version="1">\r\n<action name="a" method="hangup">\r\n</mssxml>'), /^3:1 error: XML syntax: Expected closing tag 'action'/);
  expectFindings(compile('   \n  '), /^1:1 error: the file is empty/);
  expectFindings(compile(''), /^1:1 error: the file is empty/);
});

test('DOCTYPE and entity declarations are refused; "<!DOCTYPE" inside a comment or a value is text', () => {
  const xxe = '<?xml version="1.0"?>\n<!DOCTYPE mssxml [\n  <!ENTITY x SYSTEM "file:///etc/passwd">\n]>\n<mssxml version="1"><action name="&x;" method="hangup"/></mssxml>\n';
  expectFindings(compile(xxe), /^2:1 error: <!DOCTYPE> and other <!\.\.\.> declarations are not allowed/);
  const quoted = '<mssxml version="1">\n<!-- <!DOCTYPE x> --><action name="a" method="set" var="v" value="&lt;!DOCTYPE"/>\n<![CDATA[ <!ENTITY ]]></mssxml>';
  const result = compile(quoted);
  expectFindings(result, /^1:1 error: <mssxml> takes no text \(found "<!ENTITY"\)$/); // CDATA is text, not a declaration
  const plain = compile('<mssxml version="1">\n<!-- <!DOCTYPE x> --><action name="a" method="set" var="v" value="&lt;!DOCTYPE &amp; more"/>\n</mssxml>');
  assert.deepEqual(lines(plain), []);
  assert.deepEqual((action(plain, 'a') as { value: unknown }).value, [{ text: '<!DOCTYPE & more' }]);
});

test('root: <mssxml version="1"> holding <action> elements only', () => {
  expectFindings(compile('<ivr version="1"/>'), /^1:1 error: the root element must be <mssxml>, not <ivr>$/);
  expectFindings(compile(doc('<action name="a" method="hangup"/>').replace(' version="1"', '')), /^1:1 error: <mssxml> needs the attribute version=$/);
  expectFindings(compile(doc('<action name="a" method="hangup"/>').replace('"1"', '"2"')), /^1:1 error: version "2" is not supported: this server reads IVR-XML version 1$/);
  expectFindings(compile(doc('<action name="a" method="hangup"/>').replace('"1"', '"1" lang="en"')), /^1:1 error: <mssxml> has no attribute lang=; allowed: version$/);
  expectFindings(compile('<mssxml version="1">\n</mssxml>'), /^1:1 error: <mssxml> has no <action>: an IVR needs at least one$/);
  expectFindings(
    compile(doc('<action name="a" method="hangup"/>', '  <menu/>', 'stray words')),
    /^1:1 error: <mssxml> takes no text \(found "stray words"\)$/,
    /^3:3 error: <menu> is not allowed in <mssxml>; allowed: <action>$/,
  );
});

test('action names: mandatory, not empty, unique (the duplicate names the first line)', () => {
  expectFindings(
    compile(doc('<action name="a" method="hangup"/>', '<action method="hangup"/>', '<action name="" method="hangup"/>', '  <action name="a" method="hangup"/>')),
    /^3:1 error: a hangup action needs the attribute name=$/,
    /^4:1 error: an action name cannot be empty$/,
    /^5:3 error: action name "a" is already used by the action at line 2$/,
  );
});

test('methods: mandatory and one of the seven', () => {
  expectFindings(
    compile(doc('<action name="a" method="hangup"/>', '<action name="b"/>', '<action name="c" method="dial"/>', '<action name="d" method="Play"/>', '<action method="x"/>')),
    /^3:1 error: <action> needs the attribute method= \(one of: play, collect, goto, hangup, set, timecheck, callto\)$/,
    /^4:1 error: method "dial" is not one of: play, collect, goto, hangup, set, timecheck, callto$/,
    /^5:1 error: method "Play" is not one of: .* \(method values are lower-case\)$/,
    /^6:1 error: <action> needs the attribute name=$/,
    /^6:1 error: method "x" is not one of/,
  );
});

test('upper-case element and attribute names are read in lower case with a warning', () => {
  const result = compile('<MSSXML Version="1">\n  <Action NAME="a" Method="play">\n    <VOICE>welcome.wav</VOICE>\n  </Action>\n</MSSXML>');
  expectFindings(
    result,
    /^1:1 warning: <MSSXML>: element names are lower-case in IVR-XML; read as <mssxml>$/,
    /^1:1 warning: Version=: attribute names are lower-case in IVR-XML; read as version=$/,
    /^2:3 warning: <Action>: element names are lower-case/,
    /^2:3 warning: NAME=: attribute names are lower-case/,
    /^2:3 warning: Method=: attribute names are lower-case/,
    /^3:5 warning: <VOICE>: element names are lower-case/,
  );
  assert.equal(action(result, 'a').method, 'play', 'warnings only: the document is produced');
  expectFindings(
    compile(doc('<action name="a" Name="b" method="hangup"/>')),
    /^2:1 warning: Name=: attribute names are lower-case/,
    /^2:1 error: attribute name is given twice \(names are read in lower case\)$/,
  );
});

test('every method allows only its own attributes and children, and says which', () => {
  expectFindings(
    compile(
      doc(
        '<action name="a" method="play" nextaction="c"><voice>welcome.wav</voice><timeout>3</timeout></action>',
        '<action name="b" method="play"/>',
        '<action name="c" method="goto"/>',
        '<action name="d" method="goto" nextaction="a"><voice>welcome.wav</voice></action>',
        '<action name="e" method="hangup" nextaction="a" />',
        '<action name="f" method="set" value="1"/>',
        '<action name="g" method="play" nextaction="a" colour="red"><voice>welcome.wav</voice></action>',
        '<action name="h" method="hangup">bye</action>',
      ),
    ),
    /^2:73 error: <timeout> is not allowed in a play action; allowed: <voice>$/,
    /^3:1 error: a play action needs at least one <voice>$/,
    /^4:1 error: a goto action needs the attribute nextaction=$/,
    /^5:47 error: a goto action takes no child elements \(found <voice>\)$/,
    /^6:1 error: a hangup action has no attribute nextaction=; allowed: name, method$/,
    /^7:1 error: a set action needs the attribute var=$/,
    /^8:1 error: a play action has no attribute colour=; allowed: name, method, nextaction$/,
    /^9:1 error: a hangup action takes no text \(found "bye"\)$/,
  );
  const position = compile(doc('<action name="a" method="play">\n    <voice>welcome.wav</voice>\n      <timeout>3</timeout>\n</action>'));
  expectFindings(position, /^4:7 error: <timeout> is not allowed in a play action/);
});

test('collect: numbers, ranges and defaults', () => {
  const collect = (children: string, attrs = '') => compile(doc(`<action name="c" method="collect"${attrs}>`, children, '</action>'));
  const defaults = action(collect(''), 'c') as CollectAction;
  assert.deepEqual(
    [defaults.maxDigits, defaults.minDigits, defaults.timeoutMs, defaults.interDigitMs, defaults.terminator, defaults.retries, defaults.extension, defaults.voices],
    [1, 1, 5000, 3000, '#', 2, false, []],
  );
  const set = action(
    collect('<maxdigits>32</maxdigits><mindigits>4</mindigits><timeout>2.5</timeout><interdigit>0.75</interdigit><terminator></terminator><retries>0</retries>', ' extension="true"'),
    'c',
  ) as CollectAction;
  assert.deepEqual([set.maxDigits, set.minDigits, set.timeoutMs, set.interDigitMs, set.terminator, set.retries, set.extension], [32, 4, 2500, 750, '', 0, true]);
  assert.equal((action(collect('<terminator>*</terminator>'), 'c') as CollectAction).terminator, '*');

  const bad: Array<[string, RegExp]> = [
    ['<maxdigits>abc</maxdigits>', /^3:1 error: <maxdigits> must be a whole number from 1 to 32, not "abc"$/],
    ['<maxdigits>0</maxdigits>', /<maxdigits> must be a whole number from 1 to 32, not "0"/],
    ['<maxdigits>33</maxdigits>', /not "33"/],
    ['<maxdigits>2.0</maxdigits>', /not "2\.0"/],
    ['<maxdigits>3</maxdigits><mindigits>4</mindigits>', /^3:25 error: <mindigits> 4 is more than <maxdigits> 3$/],
    ['<timeout>abc</timeout>', /^3:1 error: <timeout> must be a number of seconds above 0 and at most 60, not "abc"$/],
    ['<timeout>0</timeout>', /<timeout> must be .* not "0"/],
    ['<timeout>60.5</timeout>', /not "60\.5"/],
    ['<interdigit>-1</interdigit>', /<interdigit> must be .* not "-1"/],
    ['<retries>11</retries>', /<retries> must be a whole number from 0 to 10, not "11"/],
    ['<terminator>##</terminator>', /<terminator> must be one key \(0-9, \*, #, A-D\), or empty for none, not "##"/],
    ['<terminator>x</terminator>', /not "x"/],
    ['<timeout>3</timeout><timeout>4</timeout>', /^3:21 error: a collect action takes only one <timeout> \(the first is at line 3\)$/],
    ['<timeout unit="ms">3</timeout>', /<timeout> takes no attributes \(found unit=\)/],
  ];
  for (const [children, re] of bad) expectFindings(collect(children), re);
  expectFindings(collect('', ' extension="yes"'), /^2:1 error: extension= must be "true" or "false", not "yes"$/);
  const longValue = collect('<timeout>' + '9'.repeat(100) + '</timeout>');
  assert.match(lines(longValue)[0]!, /not "9{37}\.\.\."$/, 'long values are shortened in messages');
});

test('collect: <match> rules, with the line of the earlier match', () => {
  const collect = (...children: string[]) => compile(doc('<action name="c" method="collect">', '<maxdigits>3</maxdigits><mindigits>2</mindigits>', ...children, '</action>'));
  expectFindings(
    collect(
      '<match digits="12" nextaction="c"/>',
      '<match digits="1234" nextaction="c"/>',
      '<match digits="1" nextaction="c"/>',
      '<match prefix="1" nextaction="c"/>',
      '<match digits="1#" nextaction="c"/>',
      '<match digits="1x" nextaction="c"/>',
      '<match digits="1a" nextaction="c"/>',
      '<match digits="1" prefix="2" nextaction="c"/>',
      '<match nextaction="c"/>',
      '<match digits="12" nextaction="c"/>',
      '<match digits="13" nextaction="c"/>',
      '<match prefix="9"/>',
    ),
    /^5:1 error: <match digits="1234"> can never match: 4 keys but <maxdigits> is 3$/,
    /^6:1 error: <match digits="1"> can never match: 1 key but <mindigits> is 2$/,
    /^8:1 error: <match digits="1#"> can never match: # is the terminator key, which ends the input and is not collected$/,
    /^9:1 error: <match digits="1x"> must be keys 0-9, \*, #, A-D$/,
    /^10:1 error: <match digits="1a"> must be keys/,
    /^11:1 error: <match> needs exactly one of digits="\.\.\." \(the whole input\) or prefix="\.\.\." \(its beginning\)$/,
    /^12:1 error: <match> needs exactly one of/,
    /^13:1 error: <match digits="12"> repeats the <match> at line 4$/,
    /^14:1 warning: <match digits="13"> is never chosen: the <match prefix="1"> at line 7 comes first and fits the same keys$/,
    /^15:1 error: <match> needs the attribute nextaction=$/,
  );
  const good = action(collect('<match prefix="1" nextaction="c"/>', '<match digits="2*" nextaction="c"/>', '<match digits="AD" nextaction="c"/>', '<nomatch nextaction="c"/>', '<noinput nextaction="c"/>'), 'c') as CollectAction;
  assert.deepEqual(good.matches.map((m) => `${m.kind}:${m.value}@${m.at.line}`), ['prefix:1@4', 'exact:2*@5', 'exact:AD@6']);
  expectFindings(collect('<nomatch/>', '<noinput nextaction="c" digits="1"/>'), /^4:1 error: <nomatch> needs the attribute nextaction=$/, /^5:1 error: <noinput> has no attribute digits=; allowed: nextaction$/);
});

test('set: variable names, built-ins and values', () => {
  expectFindings(
    compile(doc('<action name="a" method="set" var="digits" value="1"/>', '<action name="b" method="set" var="Room" value="1"/>', '<action name="c" method="set" var="9x" value="1"/>')),
    /^2:1 error: var="digits": digits is a built-in variable and cannot be set$/,
    /^3:1 error: var="Room" is not a variable name: lower-case letters, digits and _, not starting with a digit$/,
    /^4:1 error: var="9x" is not a variable name/,
  );
  const ok = compile(doc('<action name="a" method="set" var="room_2" value="x${caller}y"/>', '<action name="b" method="set" var="empty" value=""/>'));
  assert.deepEqual(lines(ok), []);
  assert.deepEqual(action(ok, 'a'), { name: 'a', at: { line: 2, col: 1 }, next: 'b', method: 'set', variable: 'room_2', value: [{ text: 'x' }, { variable: 'caller' }, { text: 'y' }] });
  assert.deepEqual((action(ok, 'b') as { value: unknown }).value, []);
});

test('templates: built-ins and variables some set assigns (anywhere); unknown and malformed references', () => {
  const later = compile(doc('<action name="a" method="callto"><destination>9${room}#${digits}</destination></action>', '<action name="b" method="set" var="room" value="1${called}"/>'));
  expectFindings(later, /^3:1 warning: action "b" is never reached/); // a callto does not fall through
  assert.deepEqual((action(later, 'a') as CallToAction).destination, [{ text: '9' }, { variable: 'room' }, { text: '#' }, { variable: 'digits' }]);
  expectFindings(
    compile(doc('<action name="a" method="callto"><destination>${room}</destination></action>')),
    /^2:34 error: <destination> uses the unknown variable \$\{room\}; known: caller, called, digits \(built in\); no set action assigns any$/,
  );
  expectFindings(
    compile(doc('<action name="s" method="set" var="x" value="1"/>', '<action name="a" method="play"><voice>${lang}.wav</voice></action>')),
    /^3:32 error: <voice> uses the unknown variable \$\{lang\}; known: caller, called, digits \(built in\); set assigns x$/,
  );
  expectFindings(compile(doc('<action name="a" method="set" var="x" value="${caller"/>')), /^2:1 error: value= "\$\{caller": "\$\{" is not closed by "\}"$/);
  expectFindings(compile(doc('<action name="a" method="set" var="x" value="${}"/>')), /^2:1 error: value= "\$\{\}": \$\{\} is not a variable reference/);
  expectFindings(compile(doc('<action name="a" method="set" var="x" value="${Caller}"/>')), /is not a variable reference: names are lower-case letters, digits and _/);
  assert.deepEqual((action(compile(doc('<action name="a" method="set" var="x" value="$5 {x}"/>')), 'a') as { value: unknown }).value, [{ text: '$5 {x}' }]);
});

test('timecheck: days, times, empty periods and <default>', () => {
  const timecheck = (...children: string[]) => compile(doc('<action name="t" method="timecheck">', ...children, '</action>', '<action name="n" method="hangup"/>'));
  const ok = action(
    timecheck('<period days="1-3,5,7" from="22:00" to="06:00" nextaction="n"/>', '<period from="00:00" to="24:00" nextaction="n"/>', '<default nextaction="n"/>'),
    't',
  ) as TimeCheckAction;
  assert.deepEqual([...ok.periods[0]!.days].sort(), [1, 2, 3, 5, 7]);
  assert.deepEqual([ok.periods[0]!.fromMinute, ok.periods[0]!.toMinute], [22 * 60, 6 * 60]);
  assert.deepEqual([...ok.periods[1]!.days].sort(), [1, 2, 3, 4, 5, 6, 7], 'no days= means every day');
  assert.equal(ok.periods[1]!.toMinute, 24 * 60);
  assert.equal(ok.fallback, 'n');
  expectFindings(
    timecheck(
      '<period days="6-2" from="08:00" to="09:00" nextaction="n"/>',
      '<period days="0,8" from="08:00" to="09:00" nextaction="n"/>',
      '<period days="" from="08:00" to="09:00" nextaction="n"/>',
      '<period from="8:30" to="24:01" nextaction="n"/>',
      '<period from="09:60" to="10:00" nextaction="n"/>',
      '<period from="10:00" to="10:00" nextaction="n"/>',
      '<period from="10:00" nextaction="n"/>',
      '<period from="10:00" to="11:00" nextaction="n" weekday="1"/>',
      '<default/>',
    ),
    /^3:1 error: <period days="6-2">: the range 6-2 goes backwards; write it as 6-7,1-2$/,
    /^4:1 error: <period days="0,8">: days are ISO weekday numbers 1 \(Monday\) to 7 \(Sunday\)/,
    /^5:1 error: <period days="">: days are ISO weekday numbers/,
    /^6:1 error: <period from="8:30">: a time is HH:MM from 00:00 to 24:00$/,
    /^6:1 error: <period to="24:01">: a time is HH:MM from 00:00 to 24:00$/,
    /^7:1 error: <period from="09:60">/,
    /^8:1 error: <period> from and to are both 10:00: the period is empty \(a whole day is from="00:00" to="24:00"\)$/,
    /^9:1 error: <period> needs the attribute to=$/,
    /^10:1 error: <period> has no attribute weekday=; allowed: days, from, to, nextaction$/,
    /^11:1 error: <default> needs the attribute nextaction=$/,
  );
  expectFindings(timecheck('<default nextaction="n"/>'), /^2:1 warning: timecheck action "t" has no <period>: it always takes <default>$/);
});

test('callto: one <destination>, dialable characters, <monitor-events>', () => {
  const callto = (...children: string[]) => compile(doc('<action name="c" method="callto">', ...children, '</action>', '<action name="n" method="hangup"/>'));
  const ok = action(
    callto('<destination>+49*30#Ab</destination>', '<monitor-events>', ...['busy', 'noanswer', 'unreachable', 'reject', 'fail'].map((d) => `<monitor-event detection="${d}" nextaction="n"/>`), '</monitor-events>'),
    'c',
  ) as CallToAction;
  assert.deepEqual(ok.destination, [{ text: '+49*30#Ab' }]);
  assert.deepEqual(ok.monitor, { busy: 'n', noanswer: 'n', unreachable: 'n', reject: 'n', fail: 'n' });
  expectFindings(callto(), /^2:1 error: a callto action needs a <destination>$/);
  expectFindings(callto('<destination>1</destination>', '<destination>2</destination>'), /^4:1 error: a callto action takes only one <destination> \(the first is at line 3\)$/);
  expectFindings(callto('<destination>20 1</destination>'), /^3:1 error: <destination> "20 1" is not a number to call: only digits, letters, \*, # and \+/);
  expectFindings(callto('<destination>9-${digits}</destination>'), /^3:1 error: <destination> "9-\$\{digits\}" is not a number to call/);
  expectFindings(callto('<destination></destination>'), /^3:1 error: <destination> is empty: give the number to call$/);
  expectFindings(callto('<destination>1</destination>', '<monitor-events/>'), /^4:1 error: <monitor-events> needs at least one <monitor-event>$/);
  expectFindings(
    callto(
      '<destination>1</destination>',
      '<monitor-events>',
      '  <monitor-event detection="busy" nextaction="n"/>',
      '  <monitor-event detection="busy" nextaction="c"/>',
      '  <monitor-event detection="ringing" nextaction="n"/>',
      '  <monitor-event detection="fail"/>',
      '  <other/>',
      '</monitor-events>',
    ),
    /^6:3 error: detection="busy" is already monitored at line 5$/,
    /^7:3 error: detection="ringing" is not one of: busy, noanswer, unreachable, reject, fail$/,
    /^8:3 error: <monitor-event> needs the attribute nextaction=$/,
    /^9:3 error: <other> is not allowed in <monitor-events>; allowed: <monitor-event>$/,
  );
});

test('every nextaction must name an action; the message lists them (at most 20)', () => {
  expectFindings(
    compile(
      doc(
        '<action name="a" method="play" nextaction="nowhere"><voice>welcome.wav</voice></action>',
        '<action name="b" method="collect"><match digits="1" nextaction="x1"/><nomatch nextaction="x2"/><noinput nextaction="x3"/></action>',
        '<action name="c" method="timecheck"><period from="01:00" to="02:00" nextaction="x4"/><default nextaction="x5"/></action>',
        '<action name="d" method="callto"><destination>1</destination><monitor-events><monitor-event detection="busy" nextaction="x6"/></monitor-events></action>',
        '<action name="e" method="goto" nextaction="A"/>',
      ),
    ),
    /^2:1 error: nextaction "nowhere" names no action; actions are: a, b, c, d, e$/,
    /^3:1 warning: action "b" is never reached/,
    /^3:35 error: nextaction "x1" names no action/,
    /^3:70 error: nextaction "x2" names no action/,
    /^3:96 error: nextaction "x3" names no action/,
    /^4:1 warning: action "c" is never reached/,
    /^4:37 error: nextaction "x4" names no action/,
    /^4:86 error: nextaction "x5" names no action/,
    /^5:1 warning: action "d" is never reached/,
    /^5:78 error: nextaction "x6" names no action/,
    /^6:1 error: nextaction "A" names no action; actions are: a, b, c, d, e$/,
    /^6:1 warning: action "e" is never reached/,
  );
  const many = Array.from({ length: 25 }, (_, i) => `<action name="a${i}" method="goto" nextaction="a${i + 1}"/>`);
  const result = compile(doc(...many));
  expectFindings(result, /^26:1 error: nextaction "a25" names no action; actions are: a0, a1, .*, a19 \.\.\. \(5 more\)$/);
});

test('unreachable actions are warnings; fall-through, nextaction, branches and monitor events reach', () => {
  const result = compile(
    doc(
      '<action name="start" method="set" var="x" value="1"/>',
      '<action name="menu" method="collect"><match digits="1" nextaction="viaMatch"/><nomatch nextaction="viaNomatch"/><noinput nextaction="viaNoinput"/></action>',
      '<action name="afterCollect" method="hangup"/>',
      '<action name="viaMatch" method="timecheck"><period from="01:00" to="02:00" nextaction="viaPeriod"/><default nextaction="viaDefault"/></action>',
      '<action name="viaNomatch" method="play" nextaction="viaMatch"><voice>welcome.wav</voice></action>',
      '<action name="viaNoinput" method="goto" nextaction="viaMatch"/>',
      '<action name="viaPeriod" method="hangup"/>',
      '<action name="viaDefault" method="callto"><destination>1</destination><monitor-events><monitor-event detection="busy" nextaction="viaMonitor"/></monitor-events></action>',
      '<action name="afterCallto" method="hangup"/>',
      '<action name="viaMonitor" method="hangup"/>',
      '  <action name="orphan" method="hangup"/>',
    ),
  );
  expectFindings(
    result,
    /^4:1 warning: action "afterCollect" is never reached from the first action "start"$/, // a collect does not fall through
    /^10:1 warning: action "afterCallto" is never reached/, // nor does a callto
    /^12:3 warning: action "orphan" is never reached/,
  );
  assert.ok(result.document, 'warnings do not stop the document');
  assert.equal(action(result, 'start').next, 'menu');
  assert.equal(action(result, 'viaDefault').next, undefined, 'a callto has no fall-through');
});

test('nextaction= on collect and callto is accepted but never used: a warning', () => {
  const result = compile(
    doc(
      '<action name="c" method="collect" nextaction="t"><nomatch nextaction="t"/></action>',
      '<action name="t" method="callto" nextaction="c"><destination>1</destination></action>',
    ),
  );
  expectFindings(
    result,
    /^2:1 warning: nextaction= is never used by a collect action: it continues through <match>, <nomatch> and <noinput> only$/,
    /^3:1 warning: nextaction= is never used by a callto action: a connected call ends the IVR, a monitored event continues at its <monitor-event>, any other failure releases the caller$/,
  );
  assert.equal(action(result, 'c').next, 't');
  assert.equal(action(result, 't').next, 'c');
  expectFindings(compile(doc('<action name="c" method="collect" nextaction="zz"/>')), /^2:1 warning: nextaction= is never used/, /^2:1 error: nextaction "zz" names no action/);
});

test('prompts: <language>/NAME first, then NAME; the WAV must be playable; names stay in the folder', () => {
  const play = (...voices: string[]) => compile(doc(`<action name="p" method="play">${voices.map((v) => `<voice>${v}</voice>`).join('')}</action>`));
  assert.deepEqual(lines(play('welcome.wav', 'bye.wav')), []);
  expectFindings(compile(doc('<action name="p" method="play"><voice>welcome.wav</voice></action>'), { language: 'zh' }), /not found: looked for .*zh\/welcome\.wav and /);
  expectFindings(
    play('missing.wav'),
    new RegExp(`^2:32 error: prompt "missing\\.wav" not found: looked for ${escape(path.join(PROMPTS, 'en', 'missing.wav'))} and ${escape(path.join(PROMPTS, 'missing.wav'))}$`),
  );
  expectFindings(play('loud.wav'), /^2:32 error: prompt "loud\.wav" \(.*en\/loud\.wav\): 44100 Hz stereo PCM 16-bit: the server plays 8000 Hz mono PCM 16-bit or G\.711 WAV; convert with: sox/);
  expectFindings(play('../secret.wav'), /^2:32 error: <voice> "\.\.\/secret\.wav" must stay inside the prompts folder \(no "\.\." in the name\)$/);
  expectFindings(play('a\\..\\..\\x.wav'), /must stay inside the prompts folder/);
  expectFindings(play('/etc/passwd'), /^2:32 error: <voice> "\/etc\/passwd" must be a name relative to the prompts folder, not an absolute path$/);
  expectFindings(play('C:\\x.wav'), /not an absolute path/);
  expectFindings(play(''), /^2:32 error: <voice> is empty: name a prompt file$/);
  expectFindings(play('<b/>'), /^2:32 error: <voice> is empty/, /^2:39 error: <voice> takes no child elements \(found <b>\)$/);
  // With variables only the folder rule applies.
  const withVariable = compile(doc('<action name="s" method="set" var="lang" value="de"/>', '<action name="p" method="play"><voice>${lang}/menu.wav</voice><voice>${lang}/../../x.wav</voice></action>'));
  expectFindings(withVariable, /^3:63 error: <voice> "\$\{lang\}\/\.\.\/\.\.\/x\.wav" must stay inside the prompts folder/);
  const dir = fs.mkdtempSync(path.join(TMP, 'subdir-'));
  fs.mkdirSync(path.join(dir, 'menus'));
  fs.writeFileSync(path.join(dir, 'menus', 'main.wav'), wav());
  fs.mkdirSync(path.join(dir, 'folder.wav'));
  assert.deepEqual(lines(compile(doc('<action name="p" method="play"><voice>menus/main.wav</voice></action>'), { promptsDir: dir })), []);
  expectFindings(compile(doc('<action name="p" method="play"><voice>folder.wav</voice></action>'), { promptsDir: dir }), /cannot be read: not a regular file/);
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

test('prompts: the reader can be injected; each name is read and checked once', () => {
  const reads: string[] = [];
  const readPrompt = (file: string) => {
    reads.push(file);
    if (file.endsWith(path.join('en', 'a.wav'))) return wav();
    if (file === path.join('/p', 'b.wav')) return new Uint8Array([1, 2, 3]);
    if (file.includes('c.wav')) throw new Error('EACCES: permission denied');
    return undefined;
  };
  const result = compile(doc('<action name="p" method="play"><voice>a.wav</voice><voice>a.wav</voice><voice>b.wav</voice><voice>c.wav</voice></action>', '<action name="q" method="play"><voice>b.wav</voice></action>'), {
    promptsDir: '/p',
    readPrompt,
  });
  assert.deepEqual(reads, ['/p/en/a.wav', '/p/en/b.wav', '/p/b.wav', '/p/en/c.wav']);
  expectFindings(
    result,
    /^2:72 error: prompt "b\.wav" \(\/p\/b\.wav\): not a WAV file: only 3 bytes/,
    /^2:92 error: prompt "c\.wav" \(\/p\/en\/c\.wav\) cannot be read: EACCES: permission denied$/,
    /^3:32 error: prompt "b\.wav" \(\/p\/b\.wav\): not a WAV file/,
  );
  assert.equal(result.document, undefined, 'no document when there are errors');
});

test('columns count characters: a character outside the BMP is one column; CRLF line ends', () => {
  const result = compile('<mssxml version="1">\r\n<action name="😀" method="goto" nextaction="x"/><action name="b" method="hangup"/>\r\n</mssxml>');
  expectFindings(result, /^2:1 error: nextaction "x" names no action; actions are: 😀, b$/, /^2:48 warning: action "b" is never reached from the first action "😀"$/);
  const tabs = compile('<mssxml version="1">\n\t\t<action name="a" method="goto" nextaction="y"/>\n</mssxml>');
  expectFindings(tabs, /^2:3 error/);
});

test('findings come sorted by line and column', () => {
  const result = compile(doc('<action name="a" method="goto" nextaction="zz"/>', '<action name="b" method="play"/>', '<action name="a" method="hangup"/>'));
  const positions = result.findings.map((f) => [f.line, f.col]);
  assert.deepEqual(positions, [...positions].sort((x, y) => x[0]! - y[0]! || x[1]! - y[1]!));
  assert.deepEqual(positions, [[2, 1], [3, 1], [4, 1]]);
  assert.equal(result.findings[0]!.file, 't.xml');
});

test('loadIvrFile: an unreadable or oversized file is an error at 1:1', () => {
  const missing = loadIvrFile(path.join(TMP, 'nope.xml'), { promptsDir: PROMPTS, language: 'en' });
  expectFindings(missing, /^1:1 error: cannot read the file: ENOENT/);
  const huge = path.join(TMP, 'huge.xml');
  fs.writeFileSync(huge, Buffer.alloc(MAX_IVR_FILE_BYTES + 1, 0x20));
  expectFindings(loadIvrFile(huge, { promptsDir: PROMPTS, language: 'en' }), /^1:1 error: the file is larger than 8 MB/);
  expectFindings(loadIvrFile(TMP, { promptsDir: PROMPTS, language: 'en' }), /^1:1 error: cannot read the file/);
});

test('a 5 MB file validates in reasonable time', () => {
  const parts = ['<?xml version="1.0" encoding="utf-8"?>\n<mssxml version="1">\n'];
  let size = parts[0]!.length;
  let n = 0;
  while (size < 5 * 1024 * 1024) {
    const block =
      `  <action name="a${n}" method="collect">\n` +
      '    <voice>welcome.wav</voice>\n    <maxdigits>3</maxdigits>\n' +
      `    <match digits="1" nextaction="a${n + 1}"/>\n    <match prefix="2" nextaction="a0"/>\n  </action>\n`;
    parts.push(block);
    size += block.length;
    n++;
  }
  parts.push(`  <action name="a${n}" method="hangup" />\n</mssxml>\n`);
  const file = path.join(TMP, 'big.xml');
  fs.writeFileSync(file, parts.join(''));
  // CPU time rather than wall time: other processes share the machine. About 1 s when it is quiet.
  const started = process.cpuUsage();
  const result = loadIvrFile(file, { promptsDir: PROMPTS, language: 'en' });
  const used = process.cpuUsage(started);
  const ms = (used.user + used.system) / 1000;
  assert.deepEqual(result.findings, []);
  assert.equal(result.document!.actions.size, n + 1);
  assert.ok(ms < 6000, `took ${Math.round(ms)} ms of CPU`);
  // The same file with an error in its last action: found with its position.
  const broken = parts.join('').replace(`<action name="a${n}" method="hangup" />`, `<action name="a${n}" method="hangup" nextaction="a0"/>`);
  const last = compile(broken);
  expectFindings(last, new RegExp(`^${3 + n * 6}:3 error: a hangup action has no attribute nextaction=`));
});
