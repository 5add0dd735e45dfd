// confirmRevocations: 'auto' decides from Redis itself whether revocations wait for a replica,
// with the clients the README recommends (examples/redis-client.ts's options, the suite's
// ioredis class): a Cluster client that connected while its replicas were absent from CLUSTER
// SLOTS (a fresh cluster with no data) still confirms; a replica that existed and is now frozen
// and cut off makes a revocation answer 503 NOT_CONFIRMED, never an unconfirmed 204; a single
// primary whose replica link just dropped (connected_slaves:0) still confirms. Operators see the
// decision in the gauge, stats() and one log line per change.
import t from 'tap';
import type { Test } from 'tap';
import type { Redis, Cluster } from 'ioredis';
import { failFast } from '../../examples/redis-client.js';
import {
  ReplicatedCluster, IoRedis, freeze, thaw, cutReplicaLinks, keepingAlive, withAdmin, pauseReplication, resumeReplication, waitForSync,
  listedReplicas,
} from '../fixtures/replicas.js';
import { RedisServer } from '../fixtures/redis.js';
import { eachAdapter, makeApp, signIn, me, eventually, COOKIE } from '../fixtures/targets.js';
import { RedisStore } from '../../lib/core/store/redis-store.js';
import { ERR_NOT_CONFIRMED } from '../../lib/core/errors.js';

const prefixes = (() => { let n = 0; return () => `ack${process.pid}x${n++}:`; })();

/** The README's Cluster client (clusterClient in examples/redis-client.ts), on the suite's ioredis. */
function clusterClient(t: Test, cluster: ReplicatedCluster): Cluster {
  const c = new IoRedis.Cluster(cluster.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })), {
    redisOptions: failFast, enableOfflineQueue: false, clusterRetryStrategy: failFast.retryStrategy,
  });
  c.on('error', () => {});
  t.teardown(() => c.disconnect());
  return c;
}

/** The README's single-server client (redisClient), on the suite's ioredis. */
function redisClient(t: Test, server: RedisServer): Redis {
  const c = new IoRedis.Redis(server.url, failFast);
  c.on('error', () => {});
  t.teardown(() => c.disconnect());
  return c;
}

/** A primary and one replica linked to it (private processes, stopped at teardown). */
async function primaryWithReplica(t: Test): Promise<{ primary: RedisServer; replica: RedisServer }> {
  const primary = await RedisServer.start(['--repl-diskless-sync-delay', '0']);
  t.teardown(() => keepingAlive(primary.stop()));
  const replica = await RedisServer.start(['--replicaof', '127.0.0.1', String(primary.port), '--repl-diskless-sync-delay', '0']);
  t.teardown(() => keepingAlive(replica.stop()));
  await eventually(() => withAdmin(replica.port, (r) => r.info('replication')), (i) => i.includes('master_link_status:up'), 10_000);
  return { primary, replica };
}

const logout = (app: { inject: (o: object) => Promise<{ statusCode: number; body: string }> }, token: string) =>
  app.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: token } });

t.test('a fresh replicated Cluster (no data, replicas absent from CLUSTER SLOTS): a sign-out whose replica is frozen and cut off answers ' +
  '503 NOT_CONFIRMED, and after the failover the retried sign-out leaves the token refused', async (t) => {
  await eachAdapter(t, async (t) => {
    // A long replication ping keeps an idle master's replicas out of CLUSTER SLOTS (Redis lists a
    // replica there once its offset is non-zero): the cluster an app meets at a joint start.
    const cluster = await ReplicatedCluster.start({ extraArgs: ['--repl-ping-replica-period', '3600'], listedInSlots: false });
    const frozen: number[] = [];
    t.teardown(async () => { for (const pid of frozen) thaw(pid); await cluster.stop(); });
    const client = clusterClient(t, cluster);
    const keyPrefix = prefixes();
    const app = await makeApp(t, client, { keyPrefix });
    t.equal(client.nodes('slave').length, 0, 'the client\'s pool holds masters only (the case the pool cannot see)');
    t.equal(app.sessions.stats().acknowledgement, 'on', 'replication read from the masters: revocations wait for a replica');
    const judgeClient = clusterClient(t, cluster);
    const judge = await makeApp(t, judgeClient, { keyPrefix, localCache: false, confirmRevocations: false });

    const alice = await signIn(app, 'alice');
    t.equal((await me(app, alice.token)).statusCode, 200);
    const master = await cluster.masterForKey(app.sessions.store.sessionKey(alice.id));
    const [replica] = await cluster.replicasOf(master);
    frozen.push(await freeze(replica));
    t.ok(await cutReplicaLinks(master) >= 1, 'the master dropped its replica link');
    // What the master lists as replicas around the sign-out: named if a sign-out is ever confirmed here.
    const before = await listedReplicas(master);
    const out = await logout(app, alice.token);
    t.equal(out.statusCode, 503, `the sign-out is not confirmed (${out.statusCode} ${out.body}; the master listed ${before}, then ` +
      `${await listedReplicas(master)}; acknowledgement ${app.sessions.stats().acknowledgement})`);
    t.equal(JSON.parse(out.body).code, 'ERR_TIERED_SESSION_NOT_CONFIRMED');
    t.ok(app.sessions.stats().unconfirmed >= 1, 'and counted');

    // Still confirming after the periodic re-read, while the replica is marked failed.
    await new Promise((r) => setTimeout(r, 5500));
    t.equal(app.sessions.stats().acknowledgement, 'on', 'a shard that had a replica stays replicated while that replica is away');

    // SIGKILL the master while its replica is still frozen (the fixture's killMaster would ask
    // the frozen node for its role), then let the replica wake up and be promoted.
    await master.kill();
    thaw(frozen.pop()!);
    const promoted = await cluster.waitForPromotion(master, 20_000);
    t.equal(promoted.port, replica.port, 'the frozen replica was promoted');
    // The user was told the sign-out did not go through; they retry, as a 503 asks. The new
    // master has no replica yet: applied there, still not confirmed (the shard had a replica).
    const retried = await eventually(async () => logout(app, alice.token), (r) => r.statusCode !== 503 ||
      JSON.parse(r.body).code === 'ERR_TIERED_SESSION_NOT_CONFIRMED', 15_000);
    t.ok(retried.statusCode === 204 || JSON.parse(retried.body).code === 'ERR_TIERED_SESSION_NOT_CONFIRMED',
      `the retried sign-out is applied on the promoted replica (${retried.statusCode} ${retried.body})`);
    t.equal((await eventually(async () => (await me(judge, alice.token)).statusCode, (c) => c !== 503, 5000)), 401,
      'the token is refused after the failover');
  });
});

t.test('a single primary whose replica link just dropped (connected_slaves:0) still confirms: 503, not 204; the gauge, stats() and one ' +
  'log line show it', async (t) => {
  await eachAdapter(t, async (t) => {
    const { primary, replica } = await primaryWithReplica(t);
    const pid = await freeze(replica);
    t.teardown(() => thaw(pid));
    await cutReplicaLinks(primary);
    const info = await withAdmin(primary.port, (r) => r.info('replication'));
    t.match(info, /connected_slaves:0/, 'the primary reports no connected replica');

    const logs: { level: string; msg: string }[] = [];
    const app = await makeApp(t, redisClient(t, primary), { keyPrefix: prefixes() }, { logs });
    t.equal(app.sessions.stats().acknowledgement, 'on', 'stats(): revocations wait for a replica');
    t.match(app.sessions.prometheus(), /tiered_session_replica_acknowledgement\{state="on"\} 1/, 'the gauge says on');
    t.match(app.sessions.prometheus(), /tiered_session_replica_acknowledgement\{state="off"\} 0/);
    const s = await signIn(app, 'bob');
    const out = await logout(app, s.token);
    t.equal(out.statusCode, 503, `the sign-out is not confirmed (${out.statusCode} ${out.body})`);
    t.equal(JSON.parse(out.body).code, 'ERR_TIERED_SESSION_NOT_CONFIRMED');

    thaw(pid);
    const s2 = await signIn(app, 'bob');
    const again = await eventually(async () => (await logout(app, s2.token)).statusCode, (c) => c !== 503, 10_000);
    t.equal(again, 204, 'confirmed once the replica is back');
    const found = logs.filter((l) => /replicas found/.test(l.msg));
    t.equal(found.length, 1, 'one log line for the decision');
    t.equal(found[0]?.level, 'info');
  });
});

// A node forgets its scripts on SCRIPT FLUSH (and a client can believe a node has a script it
// never ran: ioredis marks a connection as holding a script once it has sent it, even when the
// node answered MOVED). A client's defined command answers NOSCRIPT by sending the script again
// on its own, after a WAIT pipelined behind it has already answered for a connection that wrote
// nothing new: the revocation was confirmed by nobody. Each topology, the README's clients.
t.test('a node that lost its scripts (SCRIPT FLUSH) confirms a revocation only when a replica has it: a held-back replica answers 503 ' +
  'NOT_CONFIRMED, never 204, on a Cluster and on a single primary', async (t) => {
  const cluster = await ReplicatedCluster.start();
  t.teardown(() => cluster.stop());
  const { primary, replica: second } = await primaryWithReplica(t);
  const topologies = [
    { name: 'Cluster', client: (t: Test) => clusterClient(t, cluster), masterOf: (key: string) => cluster.masterForKey(key),
      replicaOf: async (m: RedisServer) => (await cluster.replicasOf(m))[0] },
    { name: 'single primary', client: (t: Test) => redisClient(t, primary), masterOf: async () => primary,
      replicaOf: async () => second },
  ];
  await eachAdapter(t, async (t) => {
    for (const topology of topologies) {
      const app = await makeApp(t, topology.client(t), { keyPrefix: prefixes() });
      // The first sign-out loads the revocation script on the connection it uses.
      const first = await signIn(app, 'dora');
      t.equal((await logout(app, first.token)).statusCode, 204, `${topology.name}: a healthy replica confirms`);
      const s = await signIn(app, 'dora');
      const master = await topology.masterOf(app.sessions.store.sessionKey(s.id));
      const replica = await topology.replicaOf(master);
      await waitForSync(replica);
      await withAdmin(master.port, (r) => r.script('FLUSH'));
      await pauseReplication(replica);
      let out;
      try {
        out = await logout(app, s.token);
      } finally {
        await resumeReplication(replica);
      }
      t.equal(out.statusCode, 503, `${topology.name}: the replica never had it: not confirmed (${out.statusCode} ${out.body})`);
      t.equal(JSON.parse(out.body).code, 'ERR_TIERED_SESSION_NOT_CONFIRMED', `${topology.name}: coded`);
      // Applied on the master all the same: once the replica catches up, the token is refused.
      await waitForSync(replica);
      t.equal((await me(app, s.token)).statusCode, 401, `${topology.name}: the sign-out was applied`);
      const again = await signIn(app, 'dora');
      t.equal((await logout(app, again.token)).statusCode, 204, `${topology.name}: the next sign-out reloads the script and confirms`);
    }
  });
});

t.test('a single Redis without replicas: revocations do not wait (gauge off)', async (t) => {
  const server = await RedisServer.start();
  t.teardown(() => keepingAlive(server.stop()));
  await eachAdapter(t, async (t) => {
    const logs: { level: string; msg: string }[] = [];
    const app = await makeApp(t, redisClient(t, server), { keyPrefix: prefixes() }, { logs });
    t.equal(app.sessions.stats().acknowledgement, 'off');
    t.match(app.sessions.prometheus(), /tiered_session_replica_acknowledgement\{state="off"\} 1/);
    const s = await signIn(app, 'carol');
    t.equal((await logout(app, s.token)).statusCode, 204);
    t.equal(logs.filter((l) => /no replica: revocations/.test(l.msg)).length, 1, 'one log line for the decision');
  });
});

t.test("a sign-in's cap eviction is acknowledged after a write of its own on the connection that waits: a frozen replica does not " +
  'confirm it, and a node without the new session (its create lost to a failover) confirms nothing', async (t) => {
  const { primary, replica } = await primaryWithReplica(t);
  const keyPrefix = prefixes();
  const app = await makeApp(t, redisClient(t, primary), { keyPrefix });
  const s = await signIn(app, 'carol');

  // What acknowledgeOn meets after a failover: the connection that waits is not the one that
  // created (a fresh one to the promoted master). Here: a fresh client on the primary.
  const fresh = () => {
    const c = redisClient(t, primary);
    const store = new RedisStore(c, keyPrefix, 2000, { long: 60_000, short: 60_000 });
    store.acknowledgedBy = { replicas: 1, timeout: 300 };
    return { c, store };
  };
  const healthy = fresh();
  await eventually(async () => healthy.c.status, (st) => st === 'ready', 5000);
  // (The first WAIT after a replica's full sync can take hundreds of ms: tried until it answers.)
  const confirms = async () => { try { await healthy.store.acknowledgeOn(s.id); return true; } catch { return false; } };
  t.ok(await eventually(confirms, (ok) => ok, 10_000), 'a healthy replica confirms');

  const pid = await freeze(replica);
  t.teardown(() => thaw(pid));
  const late = fresh();
  await eventually(async () => late.c.status, (st) => st === 'ready', 5000);
  await t.rejects(late.store.acknowledgeOn(s.id), ERR_NOT_CONFIRMED,
    'a frozen replica does not confirm, though this connection wrote nothing before its WAIT');
  thaw(pid);

  const gone = fresh();
  await eventually(async () => gone.c.status, (st) => st === 'ready', 5000);
  await eventually(confirms, (ok) => ok, 10_000);
  await withAdmin(primary.port, (r) => r.del(gone.store.sessionKey(s.id)));
  await t.rejects(gone.store.acknowledgeOn(s.id), ERR_NOT_CONFIRMED, 'a node without the new session confirms nothing');
});
