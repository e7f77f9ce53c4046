#!/usr/bin/env node
// Writes a SIPp injection file (caller;password;callee, as ../shared/lab/sipp/gen-users.sh's
// calls.csv) in which every call goes from a phone registered through one node to a phone
// registered through another, in both directions by turns:
//
//   cross-calls.mjs KAMAILIO_LOG USERS_TXT OUT_CSV
//
// The node of each phone is the last "dispatch REGISTER from USER to sip:ADDRESS:PORT" line of
// Kamailio's log (deploy/kamailio/dispatcher.cfg with WITH_DEBUG); USERS_TXT holds user:password
// lines. Exits 1 when the phones did not register through at least two nodes.
import { readFileSync, writeFileSync } from 'node:fs';

const [kamailioLog, usersFile, out] = process.argv.slice(2);
if (!kamailioLog || !usersFile || !out) {
  process.stderr.write('usage: cross-calls.mjs KAMAILIO_LOG USERS_TXT OUT_CSV\n');
  process.exit(2);
}
const passwords = new Map();
for (const line of readFileSync(usersFile, 'utf8').split('\n')) {
  const [user, password] = line.split(':');
  if (user && password) passwords.set(user, password);
}
const nodeOf = new Map();
for (const m of readFileSync(kamailioLog, 'utf8').matchAll(/dispatch REGISTER from (\S+) to sips?:([^;>\s]+)/g)) {
  if (passwords.has(m[1])) nodeOf.set(m[1], m[2]);
}
const byNode = new Map();
for (const [user, node] of nodeOf) byNode.set(node, [...(byNode.get(node) ?? []), user]);
const groups = [...byNode.values()];
if (groups.length < 2) {
  process.stderr.write(`cross-calls: the phones registered through ${groups.length} node(s); calls between nodes need two\n`);
  process.exit(1);
}
// Phone i of one node calls phone i of the next node, and the other way round on the next line.
const lines = ['SEQUENTIAL'];
const longest = Math.max(...groups.map((g) => g.length));
for (let i = 0; i < longest; i++) {
  for (let g = 0; g < groups.length; g++) {
    const from = groups[g];
    const to = groups[(g + 1) % groups.length];
    const caller = from[i % from.length];
    const callee = to[i % to.length];
    lines.push(`${caller};${passwords.get(caller)};${callee}`);
  }
}
writeFileSync(out, lines.join('\n') + '\n');
process.stdout.write(`${lines.length - 1} calls between ${groups.length} nodes written to ${out}\n`);
