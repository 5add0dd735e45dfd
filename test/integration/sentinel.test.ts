// Replicated Redis without Cluster (real processes): one master, two replicas and three
// sentinels; and the region recipe, a primary with a replica "far away" behind a proxy that
// adds 50 ms each way. Revocations survive the master's death, the subscribers follow the
// failover, cached sessions keep being served while it happens, and an instance in the far
// region reads locally and hears revocations from its replica.
import t from 'tap';
import type { Test } from 'tap';
import { SentinelSet, keepingAlive } from '../fixtures/replicas.js';
import { DelayProxy } from '../fixtures/proxy.js';
import { RedisServer, RedisClass, fastFail, sleep } from '../fixtures/redis.js';
import { makeApp, cacheTrusted, signIn, me, eventually, COOKIE } from '../fixtures/targets.js';

const prefixes = (() => { let n = 0; return () => `st${process.pid}x${n++}:`; })();

t.test('under Sentinel: a confirmed sign-out survives the master\'s death; cached sessions keep being served during the failover, misses ' +
  'answer 503, and everything recovers with the subscribers following the new master', async (t) => {
  const set = await SentinelSet.start();
  t.teardown(() => keepingAlive(set.stop()));
  const keyPrefix = prefixes();
  const client = (tt: Test) => { const c = set.client(); tt.teardown(() => c.disconnect()); return c; };
  const a = await makeApp(t, client(t), { keyPrefix, localCache: { ttl: 60_000 } });
  const b = await makeApp(t, client(t), { keyPrefix, localCache: { ttl: 60_000 } });
  const judge = await makeApp(t, client(t), { keyPrefix, localCache: false });
  await cacheTrusted(a, 10_000);
  await cacheTrusted(b, 10_000);
  t.ok(a.sessions.store.acknowledgedBy !== undefined, 'the master has replicas: revocations wait for one');

  const gone = await signIn(a, 'sam');
  const kept = await signIn(a, 'sam');
  const fresh = await signIn(a, 'sam');
  t.equal((await me(b, kept.token)).statusCode, 200, 'B caches a session');
  t.equal((await a.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: gone.token } })).statusCode, 204,
    'A signs one out, confirmed by a replica');
  await eventually(async () => (await me(b, gone.token)).statusCode, (c) => c === 401, 1000);

  const old = await set.killMaster();
  const killedAt = performance.now();
  const codes = { cached: new Map<number, number>(), miss: new Map<number, number>() };
  const count = (m: Map<number, number>, c: number) => m.set(c, (m.get(c) ?? 0) + 1);
  let stop = false;
  let recoveredAt = NaN;
  const loop = (async () => {
    while (!stop) {
      count(codes.cached, (await me(b, kept.token)).statusCode);
      const c = (await me(judge, fresh.token)).statusCode;
      count(codes.miss, c);
      if (c === 200 && !Number.isFinite(recoveredAt)) recoveredAt = performance.now() - killedAt;
      await sleep(20);
    }
  })();
  const promoted = await set.waitForFailover();
  const failoverMs = performance.now() - killedAt;
  await eventually(async () => recoveredAt, (v) => Number.isFinite(v), 15_000);
  stop = true;
  await loop;
  const show = (m: Map<number, number>) => JSON.stringify(Object.fromEntries(m));
  t.not(promoted.port, old.port, 'a replica was promoted');
  // Sentinel kills every pub/sub client of the nodes it reconfigures at the promotion, so both
  // subscribers drop at once then and the local cache is cleared (messages may have been lost);
  // until that moment the dead master's sessions are served from it.
  t.same([...codes.cached.keys()].filter((c) => c !== 200 && c !== 503), [],
    `the session cached on B answered 200 or 503, never 401 or 500 (${show(codes.cached)})`);
  t.ok((codes.cached.get(200) ?? 0) > 0, 'and was served from L1 while the master was dead');
  t.same([...codes.miss.keys()].filter((c) => c !== 200 && c !== 503), [],
    `a session read from Redis answered 503 until the failover, then 200: never 401, never 500 (${show(codes.miss)})`);
  t.ok(Number.isFinite(recoveredAt), 'reads recover without a restart');
  t.comment(`Sentinel failover seen after ${failoverMs.toFixed(0)} ms; first Redis read served after ${recoveredAt.toFixed(0)} ms`);

  t.equal((await me(judge, gone.token)).statusCode, 401, 'the confirmed sign-out is still in force on the new master');
  t.equal((await me(judge, kept.token)).statusCode, 200, 'the live sessions are all there');
  // The subscribers followed: a revocation on the new master reaches B's cache.
  await eventually(async () => b.sessions.cacheTrusted && a.sessions.cacheTrusted, (v) => v, 10_000);
  const before = b.sessions.stats().revocationsReceived;
  const out = await eventually(async () =>
    (await a.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: kept.token } })).statusCode,
    (c) => c === 204, 10_000);
  t.equal(out, 204, 'A signs the cached session out after the failover (a replica confirms again once the old master rejoins or the ' +
    'other replica syncs)');
  await eventually(async () => b.sessions.stats().revocationsReceived, (n) => n > before, 2000);
  t.equal((await me(b, kept.token)).statusCode, 401, 'B, which had it cached, refuses it: its subscriber follows the new master');
  await keepingAlive(set.restart(old));
});

t.test('the region recipe: an instance far from the primary reads its local replica and hears revocations from it; a revocation in ' +
  'either region is honoured in the other within the replication delay', async (t) => {
  const DELAY = 50;
  const primary = await RedisServer.start();
  t.teardown(() => keepingAlive(primary.stop()));
  // The far region: a replica that replicates through a 50 ms link, and the far instance's
  // writes that cross the same distance to the primary.
  const replLink = await DelayProxy.start({ targetPort: primary.port, delayMs: DELAY });
  t.teardown(() => replLink.close());
  const replica = await RedisServer.start(['--replicaof', '127.0.0.1', String(replLink.port), '--repl-diskless-sync-delay', '0']);
  t.teardown(() => keepingAlive(replica.stop()));
  const writeLink = await DelayProxy.start({ targetPort: primary.port, delayMs: DELAY });
  t.teardown(() => writeLink.close());
  const replicaAdmin = replica.admin();
  t.teardown(() => replicaAdmin.disconnect());
  await eventually(async () => (await replicaAdmin.info('replication')).includes('master_link_status:up'), (v) => v, 10_000);

  const keyPrefix = prefixes();
  const nearClient = primary.client();
  t.teardown(() => nearClient.disconnect());
  const near = await makeApp(t, nearClient, { keyPrefix, localCache: { ttl: 60_000 } });
  const farWrites = new RedisClass({ host: '127.0.0.1', port: writeLink.port, ...fastFail, commandTimeout: 2000 });
  farWrites.on('error', () => {});
  t.teardown(() => farWrites.disconnect());
  const farReads = replica.client();
  t.teardown(() => farReads.disconnect());
  const far = await makeApp(t, farWrites, { keyPrefix, readFrom: farReads, localCache: { ttl: 60_000 }, commandTimeout: 2000 });
  const farNoL1 = await makeApp(t, farWrites, { keyPrefix, readFrom: farReads, localCache: false, commandTimeout: 2000 });
  await cacheTrusted(near);
  await cacheTrusted(far, 10_000);

  // Reads are local: a miss in the far region costs no round trip to the primary.
  const s = await signIn(near, 'reg');
  await eventually(async () => (await me(farNoL1, s.token)).statusCode, (c) => c === 200, 2000);
  const t0 = performance.now();
  t.equal((await me(farNoL1, s.token)).statusCode, 200);
  const readMs = performance.now() - t0;
  t.ok(readMs < 2 * DELAY, `a far-region read is served by the local replica (${readMs.toFixed(1)} ms, a primary round trip is ≥ ` +
    `${2 * DELAY} ms)`);

  // Writes go to the primary.
  const f = await signIn(far, 'reg');
  t.equal((await me(near, f.token)).statusCode, 200,
    'a sign-in in the far region is valid in the near one at once (it was written to the primary)');

  // Near revokes → far honours it within the replication delay plus the broadcast.
  t.equal((await me(far, s.token)).statusCode, 200, 'the far instance caches s');
  const revokedAt = performance.now();
  t.equal((await near.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: s.token } })).statusCode, 204);
  const seen = await eventually(async () => (await me(far, s.token)).statusCode, (c) => c === 401, 2000);
  const farMs = performance.now() - revokedAt;
  t.equal(seen, 401, 'the far region refuses the session revoked in the near one');
  t.ok(farMs >= DELAY - 5, `not before the replication delay (${farMs.toFixed(1)} ms ≥ ${DELAY} ms: it was heard from the local replica)`);
  t.ok(farMs < DELAY + 500, `within the replication delay plus the broadcast bound (${farMs.toFixed(1)} ms)`);

  // Far revokes → near honours it at once (the revocation went to the primary).
  t.equal((await me(near, f.token)).statusCode, 200);
  t.equal((await far.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: f.token } })).statusCode, 204);
  const nearSeen = await eventually(async () => (await me(near, f.token)).statusCode, (c) => c === 401, 1000);
  t.equal(nearSeen, 401, 'the near region refuses the session revoked in the far one');
  t.equal((await me(farNoL1, f.token)).statusCode, 401, 'and the far region does too (read from the primary: it was just invalidated)');
});
