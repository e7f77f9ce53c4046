const INSERTS = ['\r', '\n', '\0', '"', ',', ';', '<', '>', ':', ' ', '\t', '99999999999999999999', '%', '[', ']', '\r\n ', '\u00ff'];

/** One to four random damages of a SIP message (text as latin1), seeded by `rnd`. */
export function mutate(msg: string, rnd: () => number): Buffer {
  let s = msg;
  const ops = 1 + Math.floor(rnd() * 4);
  for (let k = 0; k < ops; k++) {
    const pos = Math.floor(rnd() * s.length);
    switch (Math.floor(rnd() * 7)) {
      case 0: // flip a character
        s = s.slice(0, pos) + String.fromCharCode(Math.floor(rnd() * 256)) + s.slice(pos + 1);
        break;
      case 1: // truncate
        s = s.slice(0, pos);
        break;
      case 2: // insert a delimiter or a huge number
        s = s.slice(0, pos) + INSERTS[Math.floor(rnd() * INSERTS.length)] + s.slice(pos);
        break;
      case 3: { // duplicate a line
        const lines = s.split('\r\n');
        const i = Math.floor(rnd() * lines.length);
        lines.splice(i, 0, lines[i]!);
        s = lines.join('\r\n');
        break;
      }
      case 4: { // remove a line
        const lines = s.split('\r\n');
        lines.splice(Math.floor(rnd() * lines.length), 1);
        s = lines.join('\r\n');
        break;
      }
      case 5: // delete a span
        s = s.slice(0, pos) + s.slice(pos + Math.floor(rnd() * 20));
        break;
      default: { // repeat a span many times
        const span = s.slice(pos, pos + 1 + Math.floor(rnd() * 10));
        s = s.slice(0, pos) + span.repeat(1 + Math.floor(rnd() * 200)) + s.slice(pos);
      }
    }
  }
  return Buffer.from(s, 'latin1');
}
