// The security counters in the Prometheus metrics (lib/admin/metrics.ts), read from a real
// server's guard when scraped: a ban for failed authentications, the packets dropped after it, a
// scanner's request, the bans in force and the tracked sources.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ServerMetrics } from '../../lib/admin/metrics.js';
import { startTestServer } from '../helpers/server.js';
import { Attacker } from './attacker.js';

function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

test('bans, drops, refused connections, bans in force and tracked sources are exposed when scraped', async (t) => {
  const srv = await startTestServer({
    users: [['801', 'pw801']],
    configure: (c) => {
      c.media.relay = 'never';
      c.auth.algorithms = ['MD5', 'SHA-256'];
      c.security.trusted = [];
      c.security.maxFailures = 2;
    },
  });
  t.after(() => srv.stop());
  const s = srv.server;
  const metrics = new ServerMetrics({ summary: () => s.live.summary(), stack: s.stack, auth: s['auth'], relay: () => null, cdr: null, security: s.guard });
  t.after(() => metrics.close());

  const before = await metrics.render();
  for (const name of [
    'minisipserver_security_bans_total{reason="auth"}',
    'minisipserver_security_bans_total{reason="manual"}',
    'minisipserver_security_dropped_total{reason="banned"}',
    'minisipserver_security_connections_refused_total',
    'minisipserver_security_auth_failures_total',
    'minisipserver_security_banned_sources',
  ]) {
    assert.equal(sample(before, name), 0, `${name} starts at 0`);
  }
  assert.match(before, /# TYPE minisipserver_security_bans_total counter/);
  assert.match(before, /# TYPE minisipserver_security_banned_sources gauge/);
  assert.match(before, /# TYPE minisipserver_security_tracked_sources gauge/);

  const evil = await Attacker.open('127.0.0.2', srv.port);
  t.after(() => evil.close());
  assert.equal(await evil.options(1000, 'friendly-scanner'), null);
  assert.equal(await evil.guess('801', 'nope', 1000), 403);
  assert.equal(await evil.options(400), null);

  const after = await metrics.render();
  assert.equal(sample(after, 'minisipserver_security_bans_total{reason="scanner"}'), 0);
  assert.equal(sample(after, 'minisipserver_security_bans_total{reason="auth"}'), 1, 'the second failure (the wrong password) banned it');
  assert.equal(sample(after, 'minisipserver_security_auth_failures_total'), 2);
  assert.equal(sample(after, 'minisipserver_security_dropped_total{reason="scanner"}'), 1);
  assert.equal(sample(after, 'minisipserver_security_dropped_total{reason="banned"}'), 1);
  assert.equal(sample(after, 'minisipserver_security_banned_sources'), 1);
  assert.ok(sample(after, 'minisipserver_security_tracked_sources{table="rates"}')! >= 0);
});
