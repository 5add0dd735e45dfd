// A replica is read only while it is shown fresh. An instance reading a replica that is cut off
// from its primary (readFrom, its link paused) refuses a session revoked meanwhile, from about a
// second on and for as long as the cut lasts; a new instance's pre-warm from a replica that lags
// (a Cluster with scaleReads) does not fill a session revoked before it started. Clients with
// the options the README shows (examples/redis-client.ts), on the suite's ioredis class.
import t from 'tap';
import { failFast } from '../../examples/redis-client.js';
import { ReplicatedCluster, IoRedis, withAdmin, pauseReplication, resumeReplication, waitForSync } from '../fixtures/replicas.js';
import { sleep } from '../fixtures/redis.js';
import { coarseNow } from '../../lib/core/local-cache.js';
import { primaryWithTwoReplicas, readmeClient } from '../fixtures/two-replicas.js';
import { eachAdapter, makeApp, signIn, me, eventually, cacheTrusted, COOKIE } from '../fixtures/targets.js';

const prefixes = (() => { let n = 0; return () => `fr${process.pid}x${n++}:`; })();

t.test('an instance reading a replica whose link is paused refuses a session revoked meanwhile: 401 within about a second and at every ' +
  'later check', async (t) => {
  const { primary, r2, link } = await primaryWithTwoReplicas(t);

  await eachAdapter(t, async (t) => {
    const keyPrefix = prefixes();
    const a = await makeApp(t, readmeClient(t, primary.port), { keyPrefix });
    const b = await makeApp(t, readmeClient(t, primary.port), { keyPrefix, readFrom: readmeClient(t, r2.port) });
    await cacheTrusted(a);
    await cacheTrusted(b, 10_000);
    const s = await signIn(a, 'dora');
    t.equal(await eventually(async () => (await me(b, s.token)).statusCode, (c) => c === 200, 3000), 200,
      'B serves the session (from R2, then its cache)');

    // A replica's first acknowledgement after its sync can take most of a second: one WAIT
    // here first, so the sign-out below is judged on R1, not on that first ack.
    await withAdmin(primary.port, async (r) => { await r.set(`${keyPrefix}warm`, '1', 'PX', 10_000); await r.wait(2, 5000); }, 6000);
    link.pause();
    t.teardown(() => link.resume());
    const out = await a.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: s.token } });
    t.equal(out.statusCode, 204, `A signs the session out (R1 confirms it) (${out.statusCode} ${out.body})`);
    const at = performance.now();
    const first = await eventually(async () => (await me(b, s.token)).statusCode, (c) => c === 401, 3000);
    t.equal(first, 401, `B refuses it after ${(performance.now() - at).toFixed(0)} ms`);
    t.equal(await withAdmin(r2.port, (r) => r.exists(a.sessions.store.sessionKey(s.id))), 1, 'R2 still holds the revoked session');
    for (const wait of [2000, 2000, 2000]) {
      await sleep(wait);
      t.equal((await me(b, s.token)).statusCode, 401, `still refused ${((performance.now() - at) / 1000).toFixed(1)} s after the sign-out`);
    }
    link.resume();
    // Reads go back to R2 once heartbeats arrive through it again.
    const s2 = await signIn(a, 'dora');
    t.equal(await eventually(async () => (await me(b, s2.token)).statusCode, (c) => c === 200, 5000), 200,
      'a live session is served again after the link heals');
  });
});

t.test('a pre-warm from a lagging replica (Cluster, scaleReads) does not fill a session revoked before the instance started', async (t) => {
  const cluster = await ReplicatedCluster.start();
  t.teardown(() => cluster.stop());
  const keyPrefix = prefixes();
  const client = (opts: object = {}) => {
    const c = new IoRedis.Cluster(cluster.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })), {
      redisOptions: failFast, enableOfflineQueue: false, clusterRetryStrategy: failFast.retryStrategy, ...opts,
    });
    c.on('error', () => {});
    t.teardown(() => c.disconnect());
    return c;
  };
  const options = { keyPrefix, prewarm: 100, touchInterval: 0, confirmRevocations: false };
  const a = await makeApp(t, client(), options);
  await cacheTrusted(a, 10_000);
  const s = await signIn(a, 'erin');
  const keep = await signIn(a, 'erin');
  t.equal((await me(a, s.token)).statusCode, 200);
  t.equal((await me(a, keep.token)).statusCode, 200);
  await a.sessions.flushTouches();
  const replica = (await cluster.replicasOf(await cluster.masterForKey(a.sessions.store.sessionKey(s.id))))[0];
  await waitForSync(replica);
  await pauseReplication(replica);
  t.teardown(() => resumeReplication(replica));
  t.equal((await a.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: s.token } })).statusCode, 204, 'signed out on the master');
  t.equal(await withAdmin(replica.port, async (r) => { await r.readonly(); return r.exists(a.sessions.store.sessionKey(s.id)); }), 1,
    'the paused replica still holds it');

  const c = await makeApp(t, client({ scaleReads: 'slave' }), options);
  await cacheTrusted(c, 10_000);
  const filled = await eventually(async () => c.sessions.stats().l1Size, (n) => n >= 1, 5000);
  await sleep(500);
  t.ok(filled >= 1, `the pre-warm filled the cache (${c.sessions.stats().l1Size} entries)`);
  t.equal(c.sessions.localCache.has(s.id, coarseNow()), false, 'not with the revoked session');
  t.equal((await me(c, s.token)).statusCode, 401, 'which the new instance refuses');
  t.equal((await me(c, keep.token)).statusCode, 200, 'while the live one is served');
});
