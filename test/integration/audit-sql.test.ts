// The PostgreSQL side of the audit trail: migrate(), the names it accepts, the plans of
// its queries at a realistic size, the merge (every event type; duplicates and reordering give
// the same row), and history()'s window semantics. Real PostgreSQL (test/fixtures/postgres.ts).
import t from 'tap';
import { PostgresServer } from '../fixtures/postgres.js';
import {
  migrate, auditNames, upsertSql, upsertParams, sweepSelectSql, sweepExpireSql, retentionSql, ddl,
  type AuditPool,
} from '../../lib/core/audit/sql.js';
import { auditHistory, historySql } from '../../lib/core/audit/history.js';
import { applyEvents, mergeEvents, parseEvent, type AuditEvent } from '../../lib/core/audit/events.js';
import { TieredSessionError } from '../../lib/core/errors.js';
import { simulate, rng, shuffle, readRows, diffRows, newSessionId, fieldsOf } from '../fixtures/audit-events.js';

const db = await PostgresServer.start();
t.teardown(() => db.stop());
const pool = db.pool({ max: 6 });

async function freshTable(table = 'sessions_audit') {
  const schema = await db.freshSchema();
  const opts = { schema, table };
  await migrate(pool, opts);
  return opts;
}

t.test('migrate creates the table and its three indexes, and is idempotent (also run concurrently)', async (t) => {
  const schema = await db.freshSchema();
  await Promise.all([migrate(pool, { schema }), migrate(pool, { schema }), migrate(pool, { schema })]);
  await migrate(pool, { schema });
  const idx = await pool.query('SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 ORDER BY indexname', [schema]);
  t.same(idx.rows.map((r) => r.indexname), [
    'tiered_session_audit_ended', 'tiered_session_audit_live_expiry', 'tiered_session_audit_pkey', 'tiered_session_audit_user_created',
  ]);
  const defs = Object.fromEntries(idx.rows.map((r) => [r.indexname, r.indexdef as string]));
  t.match(defs.tiered_session_audit_user_created,
    /\(realm, user_id, created_at DESC, id DESC\) INCLUDE \(expires_at, ended_at, last_active_at, end_reason, rotations, device_name, device_browser, device_os, device_type, ip, country\)/);
  t.match(defs.tiered_session_audit_live_expiry, /\(realm, expires_at, id\) WHERE \(ended_at IS NULL\)/);
  t.match(defs.tiered_session_audit_ended, /\(realm, ended_at\) WHERE \(ended_at IS NOT NULL\)/);
  // A table of another name next to it, with names that need quoting to keep their case.
  await migrate(pool, { schema, table: 'Audit_Trail' });
  const n = (await pool.query('SELECT count(*)::int AS n FROM pg_indexes WHERE schemaname = $1 AND tablename = $2',
    [schema, 'Audit_Trail'])).rows[0].n;
  t.equal(n, 4);
});

t.test('bad schema or table names are refused with a coded error naming the option, before any SQL runs', async (t) => {
  const bad: [string, object][] = [
    ['schema', { schema: 'a b' }], ['schema', { schema: 'x";DROP TABLE y;--' }], ['schema', { schema: '' }],
    ['schema', { schema: 'a'.repeat(64) }], ['schema', { schema: 42 }],
    ['table', { table: '1abc' }], ['table', { table: 'a"b' }], ['table', { table: 'ta-ble' }], ['table', { table: 'a'.repeat(49) }],
    ['table', { table: '' }], ['table', { table: 'säle' }],
  ];
  for (const [option, opts] of bad) {
    await t.rejects(migrate(pool, opts), { code: 'ERR_TIERED_SESSION_INVALID_OPTION', message: new RegExp(`"${option}"`) },
      `${JSON.stringify(opts)} refused`);
    t.throws(() => auditNames(opts), TieredSessionError);
  }
  t.equal(auditNames({ schema: 'audit', table: 'user' }).table, '"audit"."user"', 'reserved words are fine: always quoted');
  await t.resolves(migrate(pool, { schema: (await db.freshSchema()), table: 'user' }));
});

t.test('the plans at a realistic size: history on the covering index, sweep and retention on their partial indexes', async (t) => {
  const opts = await freshTable();
  const n = auditNames(opts);
  const T0 = Date.UTC(2026, 0, 1);
  // 200 000 sessions: 4000 users × 50, created over 90 days; 90 % ended, 10 % live; a fifth in another realm.
  await pool.query(`INSERT INTO ${n.table} (id, realm, user_id, device_name, device_browser, device_os, device_type, ip, country,
      created_at, last_active_at, expires_at, ended_at, end_reason, rotations)
    SELECT md5(g::text) || 'abcdef', CASE WHEN g % 5 = 0 THEN 'admin:' ELSE 'ts:' END, 'user' || (g % 4000), 'Chrome 131 on macOS', ` +
      `'Chrome', 'macOS', 'desktop', '10.0.0.1', 'DE',
      c, c + interval '10 minutes', c + interval '1 day',
      CASE WHEN g % 10 <> 0 THEN c + interval '2 hours' END, CASE WHEN g % 10 <> 0 THEN 'sign-out' END, g % 3
    FROM generate_series(1, 200000) AS g,
      LATERAL (SELECT to_timestamp($1::float8 / 1000) + (g * interval '38 seconds') AS c) AS x`, [T0]);
  await pool.query(`VACUUM (ANALYZE) ${n.table}`);
  const explain = async (sql: string, params: unknown[]) =>
    (await pool.query(`EXPLAIN ${sql}`, params)).rows.map((r) => r['QUERY PLAN'] as string).join('\n');

  const history = await explain(historySql(n, false), ['user42', T0 + 30 * 86_400_000, T0 + 60 * 86_400_000, 100, 'ts:']);
  t.comment(`history:\n${history}`);
  t.match(history, new RegExp(`Index Only Scan using ${n.raw.historyIndex}`), 'history: Index Only Scan on the covering index');
  t.notMatch(history, /Seq Scan|Sort/, 'no Seq Scan, no Sort');
  const bounded = await explain(historySql(n, true), ['user42', T0 + 30 * 86_400_000, T0 + 60 * 86_400_000, 100, 'ts:', T0]);
  t.match(bounded, new RegExp(`Index Only Scan using ${n.raw.historyIndex}`), 'history with the lifetime bound: the same index');

  const sweep = await explain(sweepSelectSql(n), [T0 + 30 * 86_400_000, 0, '', 500, 'ts:']);
  t.comment(`sweep:\n${sweep}`);
  t.match(sweep, new RegExp(`Index (Only )?Scan using ${n.raw.sweepIndex}`), 'sweep: the partial live-expiry index');
  t.notMatch(sweep, /Seq Scan|Sort/);
  const expire = await explain(sweepExpireSql(n), [['a', 'b'], 'ts:']);
  t.match(expire, /Index Scan using \w+_pkey/, 'sweep updates by primary key');

  const retention = await explain(retentionSql(n), [T0 + 30 * 86_400_000, 1000, 'ts:']);
  t.comment(`retention:\n${retention}`);
  t.match(retention, new RegExp(`Index (Only )?Scan using ${n.raw.retentionIndex}`), 'retention: the partial ended index, in order');
  t.match(retention, /Limit/);
  t.notMatch(retention, /Seq Scan/);

  const upsert = await explain(upsertSql(n),
    upsertParams(mergeEvents([{ t: 'a', s: newSessionId('x'), u: 'x', w: T0, a: T0, p: T0 }]), 'ts:'));
  t.match(upsert, /Conflict Arbiter Indexes: \w+_pkey/, 'the upsert arbitrates on the primary key');
});

t.test('each event type lands as the merge says', async (t) => {
  const opts = await freshTable();
  const id = newSessionId('alice');
  const T = Date.UTC(2026, 2, 1, 12);
  const row = async () => (await readRows(pool, opts)).get(id)!;
  await applyEvents(pool, opts, [{ t: 'c', s: id, u: 'alice', w: T, device: ['Safari on iPhone', 'Safari', 'iOS', 'mobile'],
    ip: '192.0.2.1', country: 'FR', x: T + 86_400_000, p: T + 1_800_000 }]);
  t.same(await row(), {
    id, userId: 'alice', device: { name: 'Safari on iPhone', browser: 'Safari', os: 'iOS', type: 'mobile' }, ip: '192.0.2.1', country: 'FR',
    createdAt: T, lastActiveAt: T, expiresAt: T + 1_800_000, endedAt: null, endReason: null, rotations: 0,
  }, 'c: created fields, last active = created, expiry');
  const abs = await pool.query(`SELECT (extract(epoch FROM absolute_expires_at) * 1000)::int8 AS x FROM ${auditNames(opts).table}`);
  t.equal(Number(abs.rows[0].x), T + 86_400_000, 'the absolute deadline is kept too');
  await applyEvents(pool, opts, [{ t: 'a', s: id, u: 'alice', w: T + 60_000, a: T + 60_000, p: T + 1_860_000 }]);
  t.match(await row(), { lastActiveAt: T + 60_000, expiresAt: T + 1_860_000 }, 'a: last active and expiry move forward');
  await applyEvents(pool, opts, [{ t: 'a', s: id, u: 'alice', w: T + 30_000, a: T + 30_000, p: T + 1_830_000 }]);
  t.match(await row(), { lastActiveAt: T + 60_000, expiresAt: T + 1_860_000 }, 'an older a arriving late moves nothing back');
  await applyEvents(pool, opts, [{ t: 'r', s: id, u: 'alice', w: T + 61_000, n: 1 }, { t: 'r', s: id, u: 'alice', w: T + 62_000, n: 2 }]);
  await applyEvents(pool, opts, [{ t: 'r', s: id, u: 'alice', w: T + 62_000, n: 2 }]);
  t.match(await row(), { rotations: 2 }, 'r: the absolute count, a redelivered rotation counts once');
  await applyEvents(pool, opts, [{ t: 'e', s: id, u: 'alice', w: T + 70_000, y: 'revoked' }]);
  t.match(await row(), { endedAt: T + 70_000, endReason: 'revoked' }, 'e: ended with its reason');
  await applyEvents(pool, opts, [{ t: 'e', s: id, u: 'alice', w: T + 80_000, y: 'everywhere' }]);
  t.match(await row(), { endedAt: T + 70_000, endReason: 'revoked' }, 'a later second end does not replace the first');
  await applyEvents(pool, opts, [{ t: 'e', s: id, u: 'alice', w: T + 65_000, y: 'sign-out' }]);
  t.match(await row(), { endedAt: T + 65_000, endReason: 'sign-out' }, 'the earliest explicit end wins whatever the arrival order');
  await applyEvents(pool, opts, [{ t: 'c', s: id, u: 'alice', w: T, device: ['Other', 'X', 'Y', 'Z'], ip: '198.51.100.9', country: 'US',
    x: 1, p: 1 }]);
  t.match(await row(), { device: { name: 'Safari on iPhone' }, ip: '192.0.2.1', country: 'FR', createdAt: T },
    'created fields are set once');

  // Out of order: activity and the end before the creation (two sinks, the c in the slower batch).
  const id2 = newSessionId('bob');
  await applyEvents(pool, opts, [{ t: 'e', s: id2, u: 'bob', w: T + 5000, y: 'cap' }]);
  await applyEvents(pool, opts, [{ t: 'a', s: id2, u: 'bob', w: T + 4000, a: T + 4000, p: T + 9000 }]);
  t.match((await readRows(pool, opts)).get(id2), { createdAt: null, endedAt: T + 5000, endReason: 'cap', lastActiveAt: T + 4000 });
  await applyEvents(pool, opts, [{ t: 'c', s: id2, u: 'bob', w: T, device: [null, null, null, null], ip: null, country: null, x: T + 10_000,
    p: T + 6000 }]);
  t.same((await readRows(pool, opts)).get(id2), {
    id: id2, userId: 'bob', device: { name: null, browser: null, os: null, type: null }, ip: null, country: null,
    createdAt: T, lastActiveAt: T + 4000, expiresAt: T + 9000, endedAt: T + 5000, endReason: 'cap', rotations: 0,
  }, 'the same row as in order');
});

t.test("the sweep's 'expired' is replaced by an explicit end arriving later, and follows a later-arriving expiry", async (t) => {
  const opts = await freshTable();
  const n = auditNames(opts);
  const T = Date.UTC(2026, 2, 1, 12);
  const [a, b, c] = [newSessionId('u1'), newSessionId('u1'), newSessionId('u2')];
  for (const id of [a, b, c]) {
    await applyEvents(pool, opts, [{ t: 'c', s: id, u: id === c ? 'u2' : 'u1', w: T, device: ['D', null, null, null], ip: null,
      country: null, x: T + 100_000, p: T + 10_000 }]);
  }
  await applyEvents(pool, opts, [{ t: 'e', s: c, u: 'u2', w: T + 5000, y: 'sign-out' }]);
  const r = await pool.query(sweepExpireSql(n), [[a, b, c], 'ts:']);
  t.equal(r.rowCount, 2, 'the sweep ends only the rows not ended');
  let rows = await readRows(pool, opts);
  t.match(rows.get(a), { endedAt: T + 10_000, endReason: 'expired' }, 'expired at its expiry');
  t.match(rows.get(c), { endedAt: T + 5000, endReason: 'sign-out' }, 'an explicit end already there stands');
  await applyEvents(pool, opts, [{ t: 'e', s: a, u: 'u1', w: T + 8000, y: 'revoked' }]);
  await applyEvents(pool, opts, [{ t: 'a', s: b, u: 'u1', w: T + 9000, a: T + 9000, p: T + 19_000 }]);
  rows = await readRows(pool, opts);
  t.match(rows.get(a), { endedAt: T + 8000, endReason: 'revoked' }, 'a revocation that sat in the buffer replaces expired');
  t.match(rows.get(b), { endedAt: T + 19_000, endReason: 'expired', expiresAt: T + 19_000 }, 'expired moves with a later-arriving expiry');
  await pool.query(sweepExpireSql(n), [[a], 'ts:']);
  t.match((await readRows(pool, opts)).get(a), { endReason: 'revoked' }, 'and the sweep does not come back over it');
});

t.test('property: any shuffle, duplication and batching of the events gives the expected rows (sequential and concurrent batches)',
  async (t) => {
  const opts = await freshTable();
  const seed = Number(process.env.AUDIT_SEED ?? Date.now() % 1_000_000);
  t.comment(`seed ${seed} (AUDIT_SEED=${seed} to reproduce)`);
  const r = rng(seed);
  const all: ReturnType<typeof simulate> = [];
  for (let trial = 0; trial < 40; trial++) {
    const sessions = simulate(r, { sessions: 25, users: 5, userPrefix: `p${trial}-` });
    all.push(...sessions);
    const events = sessions.flatMap((s) => s.events);
    // Duplicate some (a redelivery after a crash), then shuffle everything.
    const dup = events.filter(() => r() < 0.3);
    const stream = shuffle([...events, ...dup, ...dup.filter(() => r() < 0.5)], r);
    const batches: AuditEvent[][] = [];
    for (let i = 0; i < stream.length;) {
      const k = 1 + Math.floor(r() * 12);
      batches.push(stream.slice(i, i + k));
      i += k;
    }
    if (trial % 2 === 0) for (const b of batches) await applyEvents(pool, opts, b);
    else await Promise.all(batches.map((b) => applyEvents(pool, opts, b)));
  }
  const d = diffRows(await readRows(pool, opts), all);
  t.same(d, { missing: [], extra: [], wrong: [] }, `${all.length} sessions, every row as expected`);
});

t.test('parseEvent takes well-formed entries only, and cleans what PostgreSQL could not store', async (t) => {
  const id = newSessionId('u');
  const ok = fieldsOf({ t: 'c', s: id, u: 'u', w: 1, device: ['N\0ame', null, null, null], ip: '1.2.3.4', country: '', x: 2,
    p: 3 } as AuditEvent);
  t.match(parseEvent(ok), { t: 'c', device: ['Name', null, null, null], country: null });
  for (const bad of [
    ['t', 'c', 's', id, 'u', 'u', 'w', '1'], // no x, p
    ['t', 'a', 's', 'short', 'u', 'u', 'w', '1', 'a', '1', 'p', '1'],
    ['t', 'a', 's', id, 'u', '', 'w', '1', 'a', '1', 'p', '1'],
    ['t', 'a', 's', id, 'u', 'u', 'w', '-1', 'a', '1', 'p', '1'],
    ['t', 'a', 's', id, 'u', 'u', 'w', '1e3', 'a', '1', 'p', '1'],
    ['t', 'a', 's', id, 'u', 'u', 'w', '99999999999999999', 'a', '1', 'p', '1'],
    ['t', 'r', 's', id, 'u', 'u', 'w', '1', 'n', '0'],
    ['t', 'e', 's', id, 'u', 'u', 'w', '1', 'y', 'expired'],
    ['t', 'e', 's', id, 'u', 'u', 'w', '1', 'y', 'bored'],
    ['t', 'z', 's', id, 'u', 'u', 'w', '1'],
  ]) t.equal(parseEvent(bad), null, bad.join(' '));
  t.equal(parseEvent(null), null, 'a deleted entry');
});

t.test('history(): the window, the order, the limit, and bad queries', async (t) => {
  const opts = await freshTable();
  const D = 86_400_000;
  const T = Date.UTC(2026, 5, 10);
  const from = T;
  const to = T + 10 * D;
  const ev = (id: string, u: string, created: number, expires: number, ended?: number): AuditEvent[] => {
    const out: AuditEvent[] = [{ t: 'c', s: id, u, w: created, device: ['Dev', 'B', 'O', 'desktop'], ip: '10.0.0.1', country: 'DE',
      x: created + 30 * D, p: expires }];
    if (ended !== undefined) out.push({ t: 'e', s: id, u, w: ended, y: 'sign-out' });
    return out;
  };
  const ids = {
    beforeEndedInside: newSessionId('carol'), // created before from, ended inside: in
    endedBefore: newSessionId('carol'),       // ended before from: out
    liveLong: newSessionId('carol'),          // created before, not ended, expires after from: in
    expiredBefore: newSessionId('carol'),     // not ended, expired (not swept yet) before from: out
    inside: newSessionId('carol'),            // created and ended inside: in
    after: newSessionId('carol'),             // created after to: out
    endsAtFrom: newSessionId('carol'),        // ended exactly at from: in (closed window)
    createdAtTo: newSessionId('carol'),       // created exactly at to: in
    other: newSessionId('dave'),              // another user: out
  };
  await applyEvents(pool, opts, [
    ...ev(ids.beforeEndedInside, 'carol', T - 2 * D, T + 20 * D, T + D),
    ...ev(ids.endedBefore, 'carol', T - 3 * D, T + 20 * D, T - D),
    ...ev(ids.liveLong, 'carol', T - 5 * D, T + 3 * D),
    ...ev(ids.expiredBefore, 'carol', T - 4 * D, T - 2 * D),
    ...ev(ids.inside, 'carol', T + 2 * D, T + 9 * D, T + 4 * D),
    ...ev(ids.after, 'carol', T + 11 * D, T + 12 * D),
    ...ev(ids.endsAtFrom, 'carol', T - D, T + D, T),
    ...ev(ids.createdAtTo, 'carol', to, to + D),
    ...ev(ids.other, 'dave', T + D, T + 2 * D),
  ]);
  const h = await auditHistory(pool, opts, 'carol', { from, to });
  t.same(h.map((r) => r.id), [ids.createdAtTo, ids.inside, ids.endsAtFrom, ids.beforeEndedInside, ids.liveLong],
    'the sessions live in [from, to], newest first');
  t.same(h[1], {
    id: ids.inside, userId: 'carol', device: { name: 'Dev', browser: 'B', os: 'O', type: 'desktop' }, ip: '10.0.0.1', country: 'DE',
    createdAt: T + 2 * D, lastActiveAt: T + 2 * D, expiresAt: T + 9 * D, endedAt: T + 4 * D, endReason: 'sign-out', rotations: 0,
  }, 'the row shape: epoch ms numbers, nulls where unknown');
  t.same((await auditHistory(pool, opts, 'carol', { from, to, limit: 2 })).map((r) => r.id), [ids.createdAtTo, ids.inside], 'limit');
  t.equal((await auditHistory(pool, opts, 'carol')).length, 9 - 1, 'no bounds: every session of the user');
  t.same((await auditHistory(pool, opts, 'carol', { from, to }, 30 * D)).map((r) => r.id), h.map((r) => r.id),
    'the lifetime bound changes nothing when it holds');
  t.same(await auditHistory(pool, opts, 'nobody'), [], 'an unknown user: nothing');
  // Same created_at: a stable order (id descending).
  const twins = [newSessionId('erin'), newSessionId('erin')].sort();
  for (const id of twins) await applyEvents(pool, opts, ev(id, 'erin', T, T + D));
  t.same((await auditHistory(pool, opts, 'erin')).map((r) => r.id), [...twins].reverse());
  for (const q of [{ limit: 0 }, { limit: 1001 }, { limit: 1.5 }, { from: NaN }, { to: Infinity }, { from: 10, to: 5 },
    { from: '1' as unknown as number }]) {
    await t.rejects(auditHistory(pool, opts, 'carol', q), { code: 'ERR_TIERED_SESSION_BAD_QUERY', statusCode: 400 }, JSON.stringify(q));
  }
  await t.rejects(auditHistory(pool, opts, ''), { code: 'ERR_TIERED_SESSION_BAD_QUERY' });
  t.equal((await auditHistory(pool, opts, 'carol', { limit: 1000 })).length, 8, 'limit 1000 is allowed');
});

t.test('two realms (key prefixes) in one table: history, the sweep and retention each see their own realm only', async (t) => {
  const base = await freshTable();
  const shop = { ...base, keyPrefix: 'shop:' };
  const admin = { ...base, keyPrefix: 'admin:' };
  const n = auditNames(base);
  const D = 86_400_000;
  const T = Date.UTC(2026, 3, 1);
  const c = (id: string, u: string, w: number): AuditEvent =>
    ({ t: 'c', s: id, u, w, device: ['Dev', null, null, null], ip: '10.0.0.1', country: null, x: w + 30 * D, p: w + D });
  const ids = { shop: newSessionId('1'), admin: newSessionId('1'), shopOld: newSessionId('2'), adminOld: newSessionId('2') };
  await applyEvents(pool, shop, [c(ids.shop, '1', T), c(ids.shopOld, '2', T - 200 * D),
    { t: 'e', s: ids.shopOld, u: '2', w: T - 199 * D, y: 'sign-out' }]);
  await applyEvents(pool, admin, [c(ids.admin, '1', T), c(ids.adminOld, '2', T - 200 * D),
    { t: 'e', s: ids.adminOld, u: '2', w: T - 199 * D, y: 'sign-out' }]);
  t.same((await auditHistory(pool, shop, '1')).map((r) => r.id), [ids.shop], 'shop "1" sees its own session only');
  t.same((await auditHistory(pool, admin, '1')).map((r) => r.id), [ids.admin], 'admin "1" likewise');
  t.same((await auditHistory(pool, shop, '1', {}, 30 * D)).map((r) => r.id), [ids.shop], 'also with the lifetime bound');
  const swept = async (realm: string) => (await pool.query(sweepSelectSql(n), [T + 2 * D, 0, '', 500, realm])).rows.map((r) => r.id);
  t.same(await swept('admin:'), [ids.admin], 'the admin sweep selects the admin session alone');
  t.equal((await pool.query(sweepExpireSql(n), [[ids.shop, ids.admin], 'admin:'])).rowCount, 1, 'and can end no shop row, even if named');
  t.match((await readRows(pool, base)).get(ids.shop), { endedAt: null }, 'the shop session is still live in the table');
  t.equal((await pool.query(retentionSql(n), [T - 100 * D, 1000, 'shop:'])).rowCount, 1, "shop's retention deletes shop's old row");
  const left = await readRows(pool, base);
  t.same([left.has(ids.shopOld), left.has(ids.adminOld)], [false, true], "and leaves admin's (admin's own retention decides)");
});

t.test('a table from before realms is migrated in place: the realm column, filled with the configured key prefix, and the indexes ' +
  'rebuilt with it', async (t) => {
  const schema = await db.freshSchema();
  const opts = { schema, table: 'old_audit' };
  const n = auditNames(opts);
  // The DDL as it was before realms: the same without the realm column and index key.
  for (const stmt of ddl(n)) await pool.query(stmt.replace(/\n\s*--[^\n]*\n\s*--[^\n]*\n\s*realm[^\n]*/, '').replace('(realm, ', '('));
  const cols = async () => (await pool.query("SELECT column_name, column_default, is_nullable FROM information_schema.columns WHERE " +
    "table_schema = $1 AND table_name = 'old_audit' AND column_name = 'realm'", [schema])).rows;
  t.same(await cols(), [], 'the old table has no realm column');
  const old = newSessionId('1');
  await pool.query(`INSERT INTO ${n.table} (id, user_id, created_at, expires_at) VALUES ($1, '1', now(), now() + interval '1 day')`, [old]);
  const prefix = "o'neil:"; // a quote: the default travels as a literal PostgreSQL quotes
  await migrate(pool, { ...opts, keyPrefix: prefix });
  await migrate(pool, { ...opts, keyPrefix: 'other:' }); // a second realm starting later: nothing changes
  t.same(await cols(), [{ column_name: 'realm', column_default: null, is_nullable: 'NO' }], 'realm: NOT NULL, no default left');
  t.same((await pool.query(`SELECT id, realm FROM ${n.table}`)).rows, [{ id: old, realm: prefix }],
    'the existing row belongs to the realm that migrated first');
  t.same((await auditHistory(pool, { ...opts, keyPrefix: prefix }, '1')).map((r) => r.id), [old], 'and its history reads it');
  t.same(await auditHistory(pool, { ...opts, keyPrefix: 'other:' }, '1'), [], 'another realm does not');
  const defs = (await pool.query('SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 ORDER BY indexname', [schema])).rows;
  t.equal(defs.length, 4);
  for (const r of defs) if (r.indexname !== 'old_audit_pkey') t.match(r.indexdef, /USING btree \(realm, /,
    `${r.indexname}: rebuilt with the realm leading`);
});

t.test('a pg.Pool is an AuditPool (types)', async (t) => {
  const p: AuditPool = pool;
  t.ok(p);
});
