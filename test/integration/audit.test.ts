// The audit sink against real Redis (a single server and a 3-master Cluster) and a real
// PostgreSQL: events written to the bucket streams as the scripts will write them reach the table
// exactly as the merge says; entries are acknowledged and deleted only after COMMIT; several sinks
// share the work without a duplicate or a lost row; the sweep and retention; the polling cost.
import t from 'tap';
import { PostgresServer } from '../fixtures/postgres.js';
import { eachTarget, assertAllKeysExpire, type Target } from '../fixtures/targets.js';
import { ready, sleep } from '../fixtures/redis.js';
import { AuditSink, AUDIT_GROUP } from '../../lib/core/audit/sink.js';
import { auditLeaseKey, sessionKey } from '../../lib/core/store/keys.js';
import { migrate, auditNames, type AuditPool } from '../../lib/core/audit/sql.js';
import { applyEvents, type AuditEvent } from '../../lib/core/audit/events.js';
import { auditPrometheus } from '../../lib/core/audit/metrics.js';
import { BUCKETS } from '../../lib/core/token.js';
import {
  emit, simulate, timeline, rng, readRows, diffRows, newSessionId, streamKey, recordingLogger, sinkOptions, type FlatSinkOptions, fieldsOf,
    bufferState, until,
} from '../fixtures/audit-events.js';

const db = await PostgresServer.start();
t.teardown(() => db.stop());
const pool = db.pool({ max: 10 });

const only = { adapters: ['fastify'] as const };

async function setup(t: Tap.Test, target: Target) {
  const schema = await db.freshSchema();
  const prefix = target.prefix();
  const table = { schema, table: 'audit', keyPrefix: prefix };
  await migrate(pool, table);
  const producer = target.client();
  await ready(producer);
  const sinks: AuditSink[] = [];
  const make = async (opts: Partial<FlatSinkOptions> = {}) => {
    const client = target.client();
    await ready(client);
    const s = new AuditSink(sinkOptions({ client, pool, ...table, pollInterval: 50, logger: recordingLogger().logger, ...opts }));
    sinks.push(s);
    return s;
  };
  t.teardown(async () => { for (const s of sinks) await s.close(); });
  return { table, prefix, producer, make, sinks };
}



declare global { namespace Tap { type Test = import('tap').Test } }

t.test('events from the streams reach the table as the merge says; acknowledged and deleted after commit; every key has a TTL',
  async (t) => {
  await eachTarget(t, async (t, target) => {
    const { table, prefix, producer, make } = await setup(t, target);
    const sessions = simulate(rng(7), { sessions: 400, users: 60 });
    const events = timeline(sessions);
    await emit(producer, prefix, events);
    const before = await bufferState(producer, prefix);
    t.equal(before.len, events.length, `${events.length} events buffered in the streams`);
    const sink = await make();
    t.equal((await sink.refreshStats()).bufferEvents, events.length, 'buffer depth metric: every event');
    t.ok(sink.metrics.lagSeconds > 0, 'lag: the oldest entry has an age');
    sink.start();
    await until('buffer drained', async () => (await bufferState(producer, prefix)).len === 0);
    t.same(diffRows(await readRows(pool, table), sessions), { missing: [], extra: [], wrong: [] }, 'every row as expected');
    t.same(await bufferState(producer, prefix), { len: 0, pending: 0 }, 'nothing left in the streams, nothing pending');
    t.equal(sink.metrics.eventsApplied, events.length, 'events applied: each once');
    const snap = await sink.refreshStats();
    t.match(snap, { bufferEvents: 0, lagSeconds: 0, up: true });
    const text = auditPrometheus(snap);
    t.match(text, /tiered_session_audit_buffer_events 0\n/);
    t.match(text, new RegExp(`tiered_session_audit_events_applied_total ${events.length}\\n`));
    t.match(text, /tiered_session_audit_sink_up 1\n/);
    t.match(text, /tiered_session_audit_lag_seconds 0\n/);

    // A redelivery of already-applied events (what a crash between COMMIT and XACK causes).
    const again = events.filter((_, i) => i % 3 === 0);
    await emit(producer, prefix, again);
    await until('redelivered events drained', async () => (await bufferState(producer, prefix)).len === 0);
    t.same(diffRows(await readRows(pool, table), sessions), { missing: [], extra: [], wrong: [] },
      'redelivered events change nothing (rotations not double-counted)');
    await until('lease taken', async () => sink.metrics.leaseHeld);
    await assertAllKeysExpire(t, target, prefix);
    const someStream = streamKey(prefix, sessions[0].id.slice(0, 3));
    const names = async () => ((await producer.xinfo('CONSUMERS', someStream, AUDIT_GROUP)) as string[][]).map((c) => c[1]);
    t.ok((await names()).includes(sink.consumer), 'the sink is a consumer of the group');
    await sink.close();
    t.notOk((await names()).includes(sink.consumer), 'and leaves the group at close (nothing pending)');
  }, only);
});

t.test('a malformed entry is acknowledged and dropped without blocking its stream; a stream that lost its group gets it back at 0',
  async (t) => {
  await eachTarget(t, async (t, target) => {
    const { table, prefix, producer, make } = await setup(t, target);
    const sink = await make({ claimIdle: 300 });
    const id = newSessionId('mallory');
    const bucket = id.slice(0, 3);
    const good: AuditEvent = { t: 'c', s: id, u: 'mallory', w: 1_700_000_000_000, device: ['D', null, null, null], ip: null, country: null,
      x: 1_700_000_100_000, p: 1_700_000_050_000 };
    await emit(producer, prefix, [['t', 'c', 's', id, 'u', 'mallory'], good,
      ['t', 'e', 's', id, 'u', 'mallory', 'w', '1700000001000', 'y', 'nope']]);
    sink.start();
    await until('drained', async () => (await bufferState(producer, prefix)).len === 0);
    t.equal(sink.metrics.eventsInvalid, 2, 'two invalid entries counted');
    t.match((await readRows(pool, table)).get(id), { createdAt: 1_700_000_000_000, endedAt: null }, 'the valid one applied');

    // Another stream created by something else, without the group (and with a TTL).
    const id2 = newSessionId('oscar');
    const key = streamKey(prefix, id2.slice(0, 3));
    if (id2.slice(0, 3) !== bucket) await producer.del(key);
    await producer.xadd(key, '*', ...fieldsOf({ ...good, s: id2, u: 'oscar' }));
    await producer.pexpire(key, 60_000);
    await until('the stream got its group and was drained', async () => (await producer.xlen(key)) === 0, 10_000);
    t.match((await readRows(pool, table)).get(id2), { userId: 'oscar', createdAt: 1_700_000_000_000 });
    t.ok((await producer.pttl(key)) > 0, 'the stream keeps its TTL');
  }, only);
});

t.test('two and three sinks consuming a burst of thousands of events for overlapping sessions: the table equals the expected rows',
  async (t) => {
  await eachTarget(t, async (t, target) => {
    for (const n of [2, 3]) {
      const { table, prefix, producer, make } = await setup(t, target);
      // Few users, many sessions each: the same buckets and rows are hit by every sink at once.
      const sessions = simulate(rng(100 + n), { sessions: 1500, users: 40, userPrefix: `burst${n}-` });
      const events = timeline(sessions);
      const sinks = await Promise.all(Array.from({ length: n }, () => make({ batchSize: 20, pollInterval: 10 })));
      for (const s of sinks) s.start();
      const t0 = Date.now();
      for (let i = 0; i < events.length; i += 500) await emit(producer, prefix, events.slice(i, i + 500));
      await until('drained', async () => (await bufferState(producer, prefix)).len === 0, 60_000);
      const ms = Date.now() - t0;
      t.same(diffRows(await readRows(pool, table), sessions), { missing: [], extra: [], wrong: [] },
        `${n} sinks: ${sessions.length} rows exactly as expected`);
      const applied = sinks.map((s) => s.metrics.eventsApplied);
      t.equal(applied.reduce((a, b) => a + b, 0), events.length, `every event applied once overall (${applied.join(' + ')})`);
      t.ok(applied.filter((x) => x > 0).length >= 2, 'the work was shared');
      t.comment(`${n} sinks, ${target.name}: ${events.length} events emitted and applied in ${ms} ms ` +
        `(${Math.round(events.length / (ms / 1000))} events/s, producer included)`);
    }
  }, only);
});

t.test('the sweep: a session whose key expired is recorded as expired at its expiry; a live one is extended; a revocation arriving later ' +
  'wins', async (t) => {
  await eachTarget(t, async (t, target) => {
    const { table, prefix, producer, make } = await setup(t, target);
    const sink = await make({ sweepGrace: 0 });
    const now = Date.now();
    const ids = { gone: newSessionId('sam'), live: newSessionId('sam'), revoked: newSessionId('tom'), future: newSessionId('tom') };
    // Real session hashes, named as RedisStore names them: two with a short TTL, one long, one not yet due.
    const hash = async (id: string, user: string, ttl: number) => {
      const k = sessionKey(prefix, id);
      await producer.hset(k, 'u', user, 'h', 'x'.repeat(22), 'c', String(now), 'a', String(now), 'x', String(now + 86_400_000));
      await producer.pexpire(k, ttl);
    };
    await hash(ids.gone, 'sam', 150);
    await hash(ids.revoked, 'tom', 150);
    await hash(ids.live, 'sam', 600_000);
    await hash(ids.future, 'tom', 600_000);
    // The table thinks all but `future` expire at now + 100 ms: for `live`, activity is still in the buffer.
    const c = (id: string, u: string, p: number): AuditEvent =>
      ({ t: 'c', s: id, u, w: now - 1000, device: ['D', null, null, null], ip: null, country: null, x: now + 86_400_000, p });
    await applyEvents(pool, table, [c(ids.gone, 'sam', now + 100), c(ids.live, 'sam', now + 100), c(ids.revoked, 'tom', now + 100),
      c(ids.future, 'tom', now + 600_000)]);
    await sleep(300);
    t.equal(await producer.exists(sessionKey(prefix, ids.gone)), 0, 'the short session expired in Redis');
    const swept = await sink.sweep();
    t.same(swept, { expired: 2, extended: 1 });
    let rows = await readRows(pool, table);
    t.match(rows.get(ids.gone), { endedAt: now + 100, endReason: 'expired' }, 'expired at its recorded expiry');
    t.match(rows.get(ids.revoked), { endedAt: now + 100, endReason: 'expired' });
    const live = rows.get(ids.live)!;
    t.equal(live.endedAt, null, 'the live one is not ended');
    t.ok(live.expiresAt! > now + 500_000 && live.expiresAt! <= Date.now() + 600_000,
      `extended to now + PTTL (${live.expiresAt! - now} ms)`);
    t.match(rows.get(ids.future), { endedAt: null, expiresAt: now + 600_000 }, 'not due: untouched');
    // The revocation sat in the buffer while the sweep ran.
    await emit(producer, prefix, [{ t: 'e', s: ids.revoked, u: 'tom', w: now + 50, y: 'revoked' }]);
    sink.start();
    await until('drained', async () => (await bufferState(producer, prefix)).len === 0);
    rows = await readRows(pool, table);
    t.match(rows.get(ids.revoked), { endedAt: now + 50, endReason: 'revoked' }, 'the explicit end replaces expired');
    t.same(await sink.sweep(), { expired: 0, extended: 0 }, 'a second sweep finds nothing to do');
    t.equal(sink.metrics.sweptExpired, 2);
    t.equal(sink.metrics.sweptExtended, 1);
  }, only);
});

t.test('one lease holder sweeps; when it stops another takes over', async (t) => {
  await eachTarget(t, async (t, target) => {
    const { prefix, producer, make } = await setup(t, target);
    const a = await make({ sweepInterval: 200 });
    const b = await make({ sweepInterval: 200 });
    a.start();
    await until('a holds the lease', async () => a.metrics.leaseHeld);
    b.start();
    await sleep(700);
    t.equal(b.metrics.leaseHeld, false, 'b does not hold it while a does');
    t.equal(await producer.get(auditLeaseKey(prefix)), a.consumer);
    const pttl = await producer.pttl(auditLeaseKey(prefix));
    t.ok(pttl > 0 && pttl <= 2 * 200 + 10_000, `the lease has a TTL (${pttl} ms)`);
    t.ok(a.metrics.sweeps >= 2, `a swept (${a.metrics.sweeps})`);
    await a.close();
    t.equal(await producer.get(auditLeaseKey(prefix)), null, 'released at close');
    await until('b took over', async () => b.metrics.leaseHeld, 5000);
    t.ok(true, 'b holds the lease');
  }, only);
});

t.test('retention deletes only rows ended longer ago than the period, 1000 rows per statement', async (t) => {
  await eachTarget(t, async (t, target) => {
    const { table, prefix, make } = await setup(t, target);
    const D = 86_400_000;
    const now = Date.now();
    const n = auditNames(table);
    // 2500 ended 100 days ago, 300 ended 89 days ago, 200 live and created 120 days ago.
    await pool.query(`INSERT INTO ${n.table} (id, realm, user_id, created_at, expires_at, ended_at, end_reason)
      SELECT md5(g::text) || 'xxxxxx', $4, 'u' || (g % 50), to_timestamp($1::float8 / 1000), to_timestamp($2::float8 / 1000),
        to_timestamp(CASE WHEN g <= 2500 THEN $2 WHEN g <= 2800 THEN $3 END::float8 / 1000),
        CASE WHEN g <= 2800 THEN 'sign-out' END
      FROM generate_series(1, 3000) AS g`, [now - 120 * D, now - 100 * D, now - 89 * D, prefix]);
    let deletes = 0;
    const counting: AuditPool = {
      query: (text, values) => pool.query(text, values),
      async connect() {
        const c = await pool.connect();
        return {
          query: (text: string, values?: unknown[]) => { if (text.startsWith('DELETE')) deletes++; return c.query(text, values); },
          release: (d?: boolean | Error) => c.release(d),
        };
      },
    };
    const sink = await make({ pool: counting, retentionDays: 90 });
    t.equal(await sink.retain(), 2500, 'the 2500 rows ended 100 days ago');
    t.equal(deletes, 3, 'in three statements (1000, 1000, 500)');
    const left = (await pool.query(`SELECT count(*) FILTER (WHERE ended_at IS NULL)::int AS live, count(*) FILTER (WHERE ended_at IS NOT ` +
      `NULL)::int AS ended FROM ${n.table}`)).rows[0];
    t.same(left, { live: 200, ended: 300 }, 'the recently ended and the live rows stay');
    t.equal(await sink.retain(), 0, 'nothing more');
    t.equal(sink.metrics.retentionDeleted, 2500);
  }, only);
});

t.test('the cost of polling 256 streams, and the sink throughput', async (t) => {
  await eachTarget(t, async (t, target) => {
    const { prefix, producer, make, table } = await setup(t, target);
    // Every bucket's stream exists (a deployment with traffic everywhere) and is empty.
    const seed = BUCKETS.map((b, i): AuditEvent =>
      ({ t: 'r', s: `${b}${'A'.repeat(19)}${String(i).padStart(16, '0')}`, u: 'x', w: 1, n: 1 }));
    await emit(producer, prefix, seed);
    const sink = await make();
    while (await sink.pollOnce());
    await sink.pollOnce();
    const admins = target.admins();
    const stats = async () => {
      let calls = 0;
      let usec = 0;
      let cpu = 0;
      for (const a of admins) {
        const m = /cmdstat_xreadgroup:calls=(\d+),usec=(\d+)/.exec(await a.info('commandstats'));
        if (m) { calls += Number(m[1]); usec += Number(m[2]); }
        const info = await a.info('cpu');
        cpu += Number(/used_cpu_user:([\d.]+)/.exec(info)![1]) + Number(/used_cpu_sys:([\d.]+)/.exec(info)![1]);
      }
      return { calls, usec, cpu };
    };
    const s0 = await stats();
    const rounds = 500;
    const t0 = process.hrtime.bigint();
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < rounds; i++) await sink.pollOnce();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6 / rounds;
    const cpu1 = process.cpuUsage(cpu0);
    const sinkUs = (cpu1.user + cpu1.system) / rounds;
    const s1 = await stats();
    const perRound = (s1.calls - s0.calls) / rounds;
    const serverUs = (s1.usec - s0.usec) / rounds;
    // Process CPU of the Redis server(s) over the rounds (network I/O included; INFO cpu has 10 ms
    // resolution, hence many rounds), and what the sink's process spent.
    const processUs = ((s1.cpu - s0.cpu) * 1e6) / rounds;
    t.equal(perRound, 256, 'one XREADGROUP per stream per round');
    t.comment(`${target.name}: an idle round over 256 streams: ${ms.toFixed(2)} ms wall, ${(sinkUs / 1000).toFixed(2)} ms CPU in the ` +
      `sink's process; Redis: ${serverUs.toFixed(0)} µs in the command (${(serverUs / 256).toFixed(2)} µs per XREADGROUP), ` +
        `~${processUs.toFixed(0)} µs of process CPU with I/O; at pollInterval 1 s: ~${(processUs / 10_000).toFixed(2)} % of one Redis ` +
          `core per sink instance`);

    // Throughput: 20 000 events buffered, one sink draining them.
    const sessions = simulate(rng(5), { sessions: 4000, users: 1000, userPrefix: 'tp-' });
    const events = timeline(sessions);
    for (let i = 0; i < events.length; i += 1000) await emit(producer, prefix, events.slice(i, i + 1000));
    const t1 = Date.now();
    while (await sink.pollOnce());
    await sink.pollOnce();
    const drainMs = Date.now() - t1;
    t.equal((await bufferState(producer, prefix)).len, 0);
    t.comment(`${target.name}: one sink applied ${events.length} buffered events in ${drainMs} ms: ` +
      `${Math.round(events.length / (drainMs / 1000))} events/s (batchSize 100 per stream)`);
    t.same(diffRows(new Map([...(await readRows(pool, table))].filter(([id]) => !id.includes('AAAAAAAAAAAAAAAAAAA'))), sessions),
      { missing: [], extra: [], wrong: [] });
  }, only);
});

t.test('pending events trimmed from their stream before being applied are counted as lost, logged, and cleared from the group',
  async (t) => {
  await eachTarget(t, async (t, target) => {
    const schema = await db.freshSchema();
    const table = { schema, table: 'not_yet' };
    const prefix = target.prefix();
    const producer = target.client();
    const client = target.client();
    await ready(producer);
    await ready(client);
    const { entries, logger } = recordingLogger();
    const sink = new AuditSink(sinkOptions({ client, keyPrefix: prefix, pool, ...table, logger }));
    const sessions = simulate(rng(3), { sessions: 1, users: 1 });
    const events = sessions[0].events;
    await emit(producer, prefix, events);
    // The table does not exist yet: the batch fails and its entries stay pending.
    await t.rejects((async () => { while (await sink.pollOnce()); })());
    const key = streamKey(prefix, sessions[0].id.slice(0, 3));
    t.equal(Number(((await producer.xpending(key, AUDIT_GROUP)) as [number])[0]), events.length, 'pending');
    await producer.xtrim(key, 'MAXLEN', 0);
    await migrate(pool, table);
    while (await sink.pollOnce());
    t.equal(sink.metrics.eventsLost, events.length, 'counted as lost');
    t.equal(sink.metrics.eventsApplied, 0);
    t.equal(Number(((await producer.xpending(key, AUDIT_GROUP)) as [number])[0]), 0, 'no longer pending');
    t.equal(entries.filter((e) => /trimmed/.test(e.msg)).length, 1, 'logged');
    t.equal(entries.filter((e) => /PostgreSQL unavailable/.test(e.msg)).length, 1,
      'the missing table was reported as PostgreSQL being unavailable, with its reason');
    t.match(String((entries.find((e) => /PostgreSQL unavailable/.test(e.msg))!.obj as { err: Error }).err), /does not exist/);
  }, only);
});
