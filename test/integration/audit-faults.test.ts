// The audit sink under faults: PostgreSQL killed under a stream of events and brought
// back (every event lands exactly once, one log line each way, the buffer rises and drains); a
// sink SIGKILLed in the middle of a batch (before COMMIT, and after COMMIT before XACK: another
// sink claims the entries, nothing missing, nothing doubled); Redis killed or cut off (no crash,
// no hang, one log line each way); PostgreSQL cut off without a reset (bounded, then recovers).
import t from 'tap';
import type { Test } from 'tap';
import type { Redis, Cluster } from 'ioredis';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PostgresServer } from '../fixtures/postgres.js';
import { eachTarget, type Target } from '../fixtures/targets.js';
import { RedisServer, ready, sleep } from '../fixtures/redis.js';
import { DelayProxy } from '../fixtures/proxy.js';
import { ReplicatedCluster, keepingAlive } from '../fixtures/replicas.js';
import { AuditSink, auditSinkOf } from '../../lib/core/audit/sink.js';
import { resolveOptions } from '../../lib/core/resolve-options.js';
import { migrate } from '../../lib/core/audit/sql.js';
import {
  emit, simulate, timeline, rng, readRows, diffRows, recordingLogger, bufferState, until, sinkOptions, type FlatSinkOptions,
} from '../fixtures/audit-events.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const db = await PostgresServer.start();
t.teardown(() => db.stop());
const pool = db.pool({ max: 10 });
const only = { adapters: ['fastify'] as const };



async function freshTable() {
  const table = { schema: await db.freshSchema(), table: 'audit' };
  await migrate(pool, table);
  return table;
}

/** A producer (emits events as the app's scripts would) and the sink's own client, both ready. */
async function clients<C extends Redis | Cluster>(t: Test, producer: C, client: C): Promise<{ producer: C; client: C }> {
  t.teardown(() => { producer.disconnect(); client.disconnect(); });
  await ready(producer);
  await ready(client);
  return { producer, client };
}

t.test('PostgreSQL killed under a stream of events, then restarted: every event lands exactly once; logged once down, once up; the ' +
  'buffer rises and drains', { skip: !db.canKill && 'DATABASE_URL: not our server to kill' }, async (t) => {
  await eachTarget(t, async (t, target) => {
    const table = await freshTable();
    const prefix = target.prefix();
    const producer = target.client();
    const client = target.client();
    await ready(producer);
    await ready(client);
    const { entries, logger } = recordingLogger();
    const sink = new AuditSink(sinkOptions({ client, keyPrefix: prefix, pool, ...table, logger, pollInterval: 50, maxBackoff: 400,
      statsInterval: 100 }));
    t.teardown(() => sink.close());
    sink.start();
    const sessions = simulate(rng(target.name === 'single' ? 11 : 12), { sessions: 600, users: 80 });
    const events = timeline(sessions);
    // Roughly 3 s of events: 60 chunks, 50 ms apart; PostgreSQL dies at chunk 10 and returns at chunk 45.
    const chunk = Math.ceil(events.length / 60);
    let peak = 0;
    for (let i = 0; i < 60; i++) {
      if (i === 10) await db.kill();
      if (i === 45) {
        await until('the buffer depth metric rose', () => sink.metrics.bufferEvents > 0, 5000);
        peak = sink.metrics.bufferEvents;
        t.equal(sink.metrics.postgresUp, false, 'the sink knows PostgreSQL is down');
        t.equal(sink.metricsSnapshot().up, false, 'sink_up 0');
        await db.restart();
      }
      await emit(producer, prefix, events.slice(i * chunk, (i + 1) * chunk));
      await sleep(50);
    }
    await until('drained', async () => (await bufferState(producer, prefix)).len === 0, 30_000);
    t.same(diffRows(await readRows(pool, table), sessions), { missing: [], extra: [], wrong: [] },
      `${sessions.length} rows exactly as expected`);
    t.same(await bufferState(producer, prefix), { len: 0, pending: 0 });
    t.ok(peak > 0, `buffer depth rose to ${peak} while PostgreSQL was down`);
    await until('the metric back at 0', () => sink.metrics.bufferEvents === 0 && sink.metrics.postgresUp, 5000);
    t.equal(sink.metrics.lagSeconds, 0);
    const down = entries.filter((e) => /PostgreSQL unavailable/.test(e.msg));
    const up = entries.filter((e) => /PostgreSQL reachable again/.test(e.msg));
    t.equal(down.length, 1, 'logged once when it went away');
    t.equal(down[0]?.level, 'error');
    t.ok((down[0]?.obj as { err?: unknown }).err instanceof Error, 'with the reason');
    t.equal(up.length, 1, 'logged once when it came back');
    t.equal(up[0]?.level, 'info');
    t.ok(sink.metrics.batchFailures > 0, `failed batches were retried (${sink.metrics.batchFailures})`);
    t.ok(sink.metrics.eventsApplied >= events.length, 'every event acknowledged after its commit');
  }, only);
});

function runChild(target: Target, cfg: Record<string, unknown>): Promise<{ child: ReturnType<typeof spawn>; held: number }> {
  const redis = target.cluster ? { ports: target.cluster.nodes.map((n) => n.port) } : { url: target.server!.url };
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, '../fixtures/audit-sink-child.ts')], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, AUDIT_CHILD: JSON.stringify({ redis, ...cfg }) },
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error('child did not reach its hold point')); }, 30_000);
    child.on('message', (m: { held?: number }) => {
      if (m.held !== undefined) { clearTimeout(timer); resolve({ child, held: m.held }); }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`child exited (${code})`)); });
  });
}

t.test('a sink SIGKILLed mid-batch: another sink claims its entries; no row missing, none doubled',
  { skip: process.env.REDIS_URL ? 'needs the private servers' : false }, async (t) => {
  await eachTarget(t, async (t, target) => {
    for (const hold of ['beforeCommit', 'afterCommit'] as const) {
      const table = await freshTable();
      const prefix = target.prefix();
      const producer = target.client();
      await ready(producer);
      const sessions = simulate(rng(hold === 'beforeCommit' ? 21 : 22), { sessions: 300, users: 30 });
      const events = timeline(sessions);
      const firstPart = events.slice(0, Math.floor(events.length * 0.7));
      await emit(producer, prefix, firstPart);
      const { child, held } = await runChild(target, { prefix, pgUrl: db.url, ...table, hold, consumer: `doomed-${hold}` });
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
      t.equal(held, firstPart.length, `${hold}: the child read every buffered event, then was killed -9`);
      const rowsAfterKill = (await readRows(pool, table)).size;
      if (hold === 'beforeCommit') t.equal(rowsAfterKill, 0, 'its transaction was rolled back: no row yet');
      else t.ok(rowsAfterKill > 0, `its transaction committed (${rowsAfterKill} rows) but nothing was acknowledged`);
      t.same(await bufferState(producer, prefix), { len: firstPart.length, pending: firstPart.length },
        'every entry still in the streams, pending on the dead consumer');
      // More events arrive meanwhile; a new sink starts.
      await emit(producer, prefix, events.slice(firstPart.length));
      const client = target.client();
      await ready(client);
      const sink = new AuditSink(sinkOptions({ client, keyPrefix: prefix, pool, ...table, pollInterval: 50, claimIdle: 1000,
        logger: recordingLogger().logger }));
      sink.start();
      await until('drained', async () => (await bufferState(producer, prefix)).len === 0, 30_000);
      await sink.close();
      t.equal(sink.metrics.eventsClaimed, firstPart.length, 'the survivor claimed exactly the dead consumer\'s entries');
      t.same(diffRows(await readRows(pool, table), sessions), { missing: [], extra: [], wrong: [] },
        'every row exactly as expected (rotations counted once)');
      t.same(await bufferState(producer, prefix), { len: 0, pending: 0 });
    }
  }, only);
});

t.test('Redis killed, then restarted: the sink neither crashes nor hangs, logs once each way, and consumes again', async (t) => {
  const server = await RedisServer.start();
  t.teardown(() => server.stop());
  const table = await freshTable();
  const prefix = 'rk:';
  const { producer, client } = await clients(t, server.client(), server.client());
  const { entries, logger } = recordingLogger();
  const sink = new AuditSink(sinkOptions({ client, keyPrefix: prefix, pool, ...table, logger, pollInterval: 50, maxBackoff: 200,
    commandTimeout: 500 }));
  sink.start();
  const before = simulate(rng(31), { sessions: 50, users: 10 });
  await emit(producer, prefix, timeline(before));
  await until('drained', async () => (await bufferState(producer, prefix)).len === 0);
  await server.kill();
  await until('the sink saw Redis go', () => !sink.metrics.redisUp, 5000);
  const t0 = Date.now();
  await t.rejects(sink.pollOnce(), 'a round fails while Redis is down');
  t.ok(Date.now() - t0 < 600, `and fails fast (${Date.now() - t0} ms)`);
  await sleep(500);
  await server.restart();
  await ready(producer, 10_000);
  const after = simulate(rng(32), { sessions: 50, users: 10 });
  await emit(producer, prefix, timeline(after));
  await until('drained after the restart', async () => (await bufferState(producer, prefix)).len === 0, 15_000);
  t.same(diffRows(await readRows(pool, table), [...before, ...after]), { missing: [], extra: [], wrong: [] });
  t.equal(entries.filter((e) => /Redis unavailable/.test(e.msg)).length, 1, 'logged once when Redis went away');
  t.equal(entries.filter((e) => /Redis reachable again/.test(e.msg)).length, 1, 'and once when it came back');
  const c0 = Date.now();
  await sink.close();
  t.ok(Date.now() - c0 < 2000, 'close() is prompt');
});

t.test('Redis and PostgreSQL cut off without a reset (packets dropped): every call is bounded, close() does not hang, and it recovers',
  { skip: !db.canKill && 'DATABASE_URL: the proxy needs the private server\'s port' }, async (t) => {
  const server = await RedisServer.start();
  t.teardown(() => server.stop());
  const redisProxy = await DelayProxy.start({ targetPort: server.port, delayMs: 0 });
  const pgProxy = await DelayProxy.start({ targetPort: db.port!, delayMs: 0 });
  t.teardown(() => redisProxy.close());
  t.teardown(() => pgProxy.close());
  const table = await freshTable();
  const prefix = 'cut:';
  const { producer, client } = await clients(t, server.client(), server.client({ port: redisProxy.port, commandTimeout: 5000 }));
  const proxiedPool = db.pool({ connectionString: db.url.replace(`:${db.port}/`, `:${pgProxy.port}/`), max: 2,
    connectionTimeoutMillis: 0 });
  const { entries, logger } = recordingLogger();
  const opts: FlatSinkOptions = { client, keyPrefix: prefix, pool: proxiedPool, ...table, logger, pollInterval: 50, maxBackoff: 200,
    commandTimeout: 300, postgresTimeout: 500 };
  const sink = new AuditSink(sinkOptions(opts));
  const sessions = simulate(rng(41), { sessions: 40, users: 5 });
  await emit(producer, prefix, timeline(sessions));

  pgProxy.pause();
  let t0 = Date.now();
  await t.rejects((async () => { while (await sink.pollOnce()); })(), 'PostgreSQL not answering: the batch fails');
  t.ok(Date.now() - t0 < 3000, `within postgresTimeout + 1 s (${Date.now() - t0} ms)`);
  t.equal(entries.filter((e) => /PostgreSQL unavailable/.test(e.msg)).length, 1);
  t.equal((await bufferState(producer, prefix)).pending, timeline(sessions).length, 'nothing acknowledged');
  pgProxy.resume();
  pgProxy.cutAll();

  redisProxy.pause();
  t0 = Date.now();
  await t.rejects(sink.pollOnce(), 'Redis not answering: the round fails');
  t.ok(Date.now() - t0 < 1500, `within commandTimeout (${Date.now() - t0} ms)`);
  sink.start();
  await sleep(300);
  const c0 = Date.now();
  await sink.close();
  t.ok(Date.now() - c0 < 1500, `close() returns while Redis is cut off (${Date.now() - c0} ms)`);
  redisProxy.resume();

  const fresh = server.client();
  t.teardown(() => fresh.disconnect());
  await ready(fresh);
  const again = new AuditSink(sinkOptions({ ...opts, client: fresh, claimIdle: 500 }));
  again.start();
  await until('drained', async () => (await bufferState(producer, prefix)).len === 0, 15_000);
  await again.close();
  t.same(diffRows(await readRows(pool, table), sessions), { missing: [], extra: [], wrong: [] }, 'all applied once both are back');
});

t.test('the plugin\'s commandTimeout bounds the sink\'s Redis calls', async (t) => {
  const server = await RedisServer.start();
  t.teardown(() => server.stop());
  const proxy = await DelayProxy.start({ targetPort: server.port, delayMs: 0 });
  t.teardown(() => proxy.close());
  const client = server.client({ port: proxy.port, commandTimeout: 5000 });
  t.teardown(() => client.disconnect());
  await ready(client);
  const options = resolveOptions({ client, secret: 'x'.repeat(32), keyPrefix: 'ct:', commandTimeout: 200, audit: { pool } });
  const sink = auditSinkOf(options, recordingLogger().logger)!;
  await sink.pollOnce();
  proxy.pause();
  const t0 = Date.now();
  await t.rejects(sink.pollOnce(), /timed out after 200 ms/, 'a round against a Redis that does not answer fails');
  t.ok(Date.now() - t0 < 900, `within the plugin's 200 ms, not a timeout of the sink's own (${Date.now() - t0} ms)`);
  proxy.resume();
});

t.test('a Cluster master killed and replaced: the sink consumes the moved streams again without a restart, no row lost or doubled',
  async (t) => {
  const cluster = await ReplicatedCluster.start();
  t.teardown(() => cluster.stop());
  const table = await freshTable();
  const prefix = 'fo:';
  const { producer, client } = await clients(t, cluster.client(), cluster.client());
  const sink = new AuditSink(sinkOptions({ client, keyPrefix: prefix, pool, ...table, pollInterval: 50, maxBackoff: 200,
    commandTimeout: 500 }));
  sink.start();
  t.teardown(() => sink.close());
  const before = simulate(rng(41), { sessions: 60, users: 20 });
  await emit(producer, prefix, timeline(before));
  await until('drained', async () => (await bufferState(producer, prefix)).len === 0);
  // The sink's client is its own: only the sink's own calls can learn that the slots moved.
  const master = (await cluster.masters())[0];
  await cluster.killMaster(master);
  await cluster.waitForPromotion(master);
  await keepingAlive(cluster.restart(master));
  const after = simulate(rng(42), { sessions: 60, users: 20 });
  await emit(producer, prefix, timeline(after));
  await until('drained after the failover', async () => (await bufferState(producer, prefix)).len === 0, 15_000);
  t.same(diffRows(await readRows(pool, table), [...before, ...after]), { missing: [], extra: [], wrong: [] },
    'every session\'s row, none doubled');
});

t.test('a sink closed while PostgreSQL is unreachable leaves its unapplied entries pending in the group: another sink applies them',
  { skip: !db.canKill && 'DATABASE_URL: the proxy needs the private server\'s port' }, async (t) => {
  const server = await RedisServer.start();
  t.teardown(() => server.stop());
  const pgProxy = await DelayProxy.start({ targetPort: db.port!, delayMs: 0 });
  t.teardown(() => pgProxy.close());
  const table = await freshTable();
  const prefix = 'closed:';
  const { producer, client } = await clients(t, server.client(), server.client());
  const proxiedPool = db.pool({ connectionString: db.url.replace(`:${db.port}/`, `:${pgProxy.port}/`), max: 2,
    connectionTimeoutMillis: 0 });
  const opts: FlatSinkOptions = { client, keyPrefix: prefix, pool: proxiedPool, ...table, logger: recordingLogger().logger,
    pollInterval: 50, maxBackoff: 200, postgresTimeout: 500 };
  const sessions = simulate(rng(43), { sessions: 30, users: 4 });
  const events = timeline(sessions).length;
  await emit(producer, prefix, timeline(sessions));

  pgProxy.pause();
  const sink = new AuditSink(sinkOptions(opts));
  sink.start();
  await until('every entry delivered to the sink', async () => (await bufferState(producer, prefix)).pending === events, 15_000);
  await sink.close();
  pgProxy.resume();
  pgProxy.cutAll();
  t.same(await bufferState(producer, prefix), { len: events, pending: events },
    'after close every unapplied entry is still in the stream and pending in the group');

  const fresh = server.client();
  t.teardown(() => fresh.disconnect());
  await ready(fresh);
  const again = new AuditSink(sinkOptions({ ...opts, client: fresh, pool, claimIdle: 500 }));
  again.start();
  await until('drained', async () => (await bufferState(producer, prefix)).len === 0, 20_000);
  await again.close();
  t.same(diffRows(await readRows(pool, table), sessions), { missing: [], extra: [], wrong: [] },
    'another sink claimed and applied them all');
});
