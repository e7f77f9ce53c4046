#!/usr/bin/env node
// What scripts/cluster/demo.sh checks, read from the shared store and the nodes' CDR files:
//
//   census.mjs STORE KAMAILIO_LOG NODE_ADDRESS=CDR_DIR... [--ended-before EPOCH_MS] [--registered-since EPOCH_MS]
//
// STORE is sqlite:FILE (the shared SQLite file) or mariadb:STATE_FILE (what mariadb.mjs wrote:
// socket, user, password file, database). Which node a phone registered through is read from
// Kamailio's log (dispatcher.cfg with WITH_DEBUG: "dispatch REGISTER from USER to
// sip:ADDRESS:PORT", the last one of each user): the store cannot say, as a binding registered
// through the proxy keeps the proxy's address as its source and no local address of the node
// (the node names itself by sip.advertise).
// Prints one JSON object:
//   bindings        live bindings in the store
//   refreshed       of them, those written at or after --registered-since
//   registeredOn    {address: phones}: the node each phone last sent its REGISTER to
//   cdr             {address: count}: answered calls (status 200) in each node's CDR files
//   endedBefore     answered calls that ended before --ended-before (all nodes)
//   crossNode       answered calls whose callee last registered through another node than the call's
//   duplicates      Call-IDs recorded more than once (must be 0)
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const require = createRequire(new URL('../../package.json', import.meta.url));
const Database = require('better-sqlite3');
const { parse } = require('csv-parse/sync');

const args = process.argv.slice(2);
const option = (name) => {
  const at = args.indexOf(name);
  if (at < 0) return undefined;
  const [, value] = args.splice(at, 2);
  const n = Number(value);
  if (!Number.isFinite(n)) throw new Error(`${name} needs a number of milliseconds since the epoch, not "${value}"`);
  return n;
};
const endedBefore = option('--ended-before');
const registeredSince = option('--registered-since');
const [storeSpec, kamailioLog, ...nodeArgs] = args;
if (!/^(sqlite|mariadb):./.test(storeSpec ?? '') || !kamailioLog || nodeArgs.length === 0) {
  process.stderr.write('usage: census.mjs sqlite:FILE|mariadb:STATE_FILE KAMAILIO_LOG NODE_ADDRESS=CDR_DIR... [--ended-before MS] [--registered-since MS]\n');
  process.exit(2);
}

/** updated_at of the live bindings. */
async function liveBindings(spec, now) {
  const [kind, ...rest] = spec.split(':');
  const where = rest.join(':');
  if (kind === 'sqlite') {
    const db = new Database(where, { readonly: true, fileMustExist: true });
    db.pragma('busy_timeout = 5000');
    try {
      return db.prepare('SELECT updated_at AS updatedAt FROM bindings WHERE expires_at > ?').all(now);
    } finally {
      db.close();
    }
  }
  const mariadb = require('mariadb');
  const state = JSON.parse(readFileSync(where, 'utf8'));
  const password = readFileSync(state.passwordFile, 'utf8').split('\n')[0];
  const conn = await mariadb.createConnection({ socketPath: state.socketPath, user: state.user, password, database: state.database, connectTimeout: 5000, bigIntAsNumber: true });
  try {
    return (await conn.query('SELECT updated_at AS updatedAt FROM bindings WHERE expires_at > ?', [now])).map((r) => ({ updatedAt: Number(r.updatedAt) }));
  } finally {
    await conn.end();
  }
}

const now = Date.now();
const rows = await liveBindings(storeSpec, now);
const bindings = rows.length;
const refreshed = registeredSince === undefined ? 0 : rows.filter((r) => r.updatedAt >= registeredSince).length;
const nodeOf = new Map();
for (const m of readFileSync(kamailioLog, 'utf8').matchAll(/dispatch REGISTER from (\S+) to sips?:([^:;>\s]+)/g)) nodeOf.set(m[1], m[2]);
const registeredOn = {};
for (const address of nodeOf.values()) registeredOn[address] = (registeredOn[address] ?? 0) + 1;

const cdr = {};
const seen = new Map();
let ended = 0;
let crossNode = 0;
for (const arg of nodeArgs) {
  const eq = arg.indexOf('=');
  if (eq < 0) throw new Error(`"${arg}" is not NODE_ADDRESS=CDR_DIR`);
  const address = arg.slice(0, eq);
  const dir = arg.slice(eq + 1);
  cdr[address] = 0;
  if (!existsSync(dir)) continue;
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.csv'))) {
    for (const rec of parse(readFileSync(join(dir, f), 'utf8'), { columns: true, relax_column_count: true })) {
      if (rec.status !== '200') continue;
      cdr[address]++;
      seen.set(rec.call_id, (seen.get(rec.call_id) ?? 0) + 1);
      if (endedBefore !== undefined && Date.parse(rec.end_time) < endedBefore) ended++;
      const calleeNode = nodeOf.get(rec.callee);
      if (calleeNode !== undefined && calleeNode !== address) crossNode++;
    }
  }
}
const duplicates = [...seen.values()].filter((n) => n > 1).length;
process.stdout.write(JSON.stringify({ bindings, refreshed, registeredOn, cdr, endedBefore: ended, crossNode, duplicates }) + '\n');
