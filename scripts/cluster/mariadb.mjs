#!/usr/bin/env node
// A private mariadbd for the cluster scripts (demo.sh, outage.sh), started exactly as the tests
// start theirs (test/helpers/mariadb-server.ts, from the build): mariadb-install-db into a
// temporary folder, mariadbd on a Unix socket in it (no TCP port), a user with a password file,
// one empty database.
//
//   mariadb.mjs STATE_FILE
//
// Once the database accepts connections it writes STATE_FILE (JSON: socketPath, user,
// passwordFile, database, pidFile, dir) and prints "ready". Then, until SIGTERM or SIGINT (which
// stop mariadbd and remove its folder):
//   SIGUSR1  stops mariadbd (SIGTERM, waits for its exit), then prints "stopped EPOCH_MS"
//   SIGUSR2  starts it again on the same data, then prints "started EPOCH_MS" once it accepts
//            connections
// Put it in the work folder with TMPDIR. Exits 2 when MariaDB is not installed.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const stateFile = process.argv[2];
if (!stateFile) {
  process.stderr.write('usage: mariadb.mjs STATE_FILE\n');
  process.exit(2);
}
const helper = new URL('../../build/test/helpers/mariadb-server.js', import.meta.url);
const { mariaDbSkipReason, startMariaDb } = await import(helper.href).catch((err) => {
  process.stderr.write(`mariadb.mjs: ${err.message}\n(build the server and its tests first: npm run build)\n`);
  process.exit(2);
});
if (mariaDbSkipReason) {
  process.stderr.write(`mariadb.mjs: ${mariaDbSkipReason}\n`);
  process.exit(2);
}

const server = await startMariaDb();
const database = await server.createDatabase();
const settings = server.settings(database);
writeFileSync(
  stateFile,
  JSON.stringify({ socketPath: settings.socketPath, user: settings.user, passwordFile: settings.passwordFile, database, pidFile: join(server.dir, 'mariadbd.pid'), dir: server.dir }) + '\n',
);
process.stdout.write('ready\n');

// One step at a time, in the order the signals came.
let steps = Promise.resolve();
const step = (fn) => {
  steps = steps.then(fn).catch((err) => {
    process.stderr.write(`mariadb.mjs: ${err.message}\n`);
  });
};
// Holds the process open until SIGTERM (the server's own child does not when it is stopped).
const keepAlive = setInterval(() => undefined, 60_000);
process.on('SIGUSR1', () => step(async () => {
  await server.stop();
  process.stdout.write(`stopped ${Date.now()}\n`);
}));
process.on('SIGUSR2', () => step(async () => {
  await server.start();
  process.stdout.write(`started ${Date.now()}\n`);
}));
const end = () => step(async () => {
  clearInterval(keepAlive);
  await server.destroy();
  process.exit(0);
});
process.on('SIGTERM', end);
process.on('SIGINT', end);
