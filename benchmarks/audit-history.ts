// history() at scale: the audit table filled with AUDIT_ROWS sessions (default 10 M) in a private
// PostgreSQL, then p50/p99 of history() for users with 50 sessions each, and the plan.
//
// The data: AUDIT_ROWS / 50 users with 50 sessions each, created evenly over 90 days and
// interleaved (session g belongs to user g mod users, so one user's sessions are spread over the
// whole table, as they are in production: weeks apart); 90 % ended (sign-out 2 h after creation),
// 10 % live. Generated in SQL (generate_series), loaded with the primary key in place, then
// migrate() builds the other indexes, then VACUUM (ANALYZE): the state of a table that has been
// running for a while (autovacuum keeps the visibility map of settled pages set).
//
// Measured: history(user, { from: now − 30 days, to: now }) (the "last month" view) and
// history(user) (no window, up to 100 rows), each AUDIT_QUERIES times for random users, one
// query at a time through a pg.Pool of one connection, after a warm-up of the same size: the
// latency an app sees, driver and loopback included. Then EXPLAIN (ANALYZE, BUFFERS).
// With AUDIT_COMPARE=1 the covering index is replaced by the same key without INCLUDE, and
// measured again (what the INCLUDE buys, and what it costs in size).
//
// Run: npx tsx benchmarks/audit-history.ts   (AUDIT_ROWS=1000000 for a quick run; not part of npm test)
import pg from 'pg';
import { PostgresServer } from '../test/fixtures/postgres.js';
import { migrate, auditNames, ddl } from '../lib/core/audit/sql.js';
import { auditHistory, historySql } from '../lib/core/audit/history.js';
import { quantileSorted, fmt, fmtBytes, machineLine, table } from './support/stats.js';

const ROWS = Number(process.env.AUDIT_ROWS ?? 10_000_000);
const QUERIES = Number(process.env.AUDIT_QUERIES ?? 2000);
const COMPARE = process.env.AUDIT_COMPARE === '1';
const PER_USER = 50;
const USERS = Math.floor(ROWS / PER_USER);
const DAY = 86_400_000;
const NOW = Date.UTC(2026, 10, 1);
const T0 = NOW - 90 * DAY;

const log = (s: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${s}`);
const secs = (t0: number) => `${((Date.now() - t0) / 1000).toFixed(1)} s`;

const db = await PostgresServer.start({ synchronousCommit: false });
try {
  const admin = db.pool({ max: 1 });
  // A server sized like a small production one, not initdb's defaults: 1 GB of shared buffers
  // (the table and its indexes do not fit: the OS cache holds the rest), and no checkpoint storm
  // during the load. (fsync is off in this fixture: nothing here measures durability.)
  await admin.query("ALTER SYSTEM SET shared_buffers = '1GB'");
  await admin.query("ALTER SYSTEM SET max_wal_size = '8GB'");
  await admin.query("ALTER SYSTEM SET maintenance_work_mem = '1GB'");
  await admin.query("ALTER SYSTEM SET effective_cache_size = '8GB'");
  await admin.query("ALTER SYSTEM SET random_page_cost = '1.1'");
  await admin.end().catch(() => {});
  await db.restart();
  const pool = db.pool({ max: 2 });
  const opts = { table: 'tiered_session_audit' };
  const n = auditNames(opts);
  log(`PostgreSQL ${(await pool.query('SHOW server_version')).rows[0].server_version}, shared_buffers ${(await pool.query('SHOW ' +
    'shared_buffers')).rows[0].shared_buffers}`);

  // The table alone (its primary key included), then the rows, then the other indexes.
  await pool.query(ddl(n)[0]);
  const tLoad = Date.now();
  const CHUNK = 1_000_000;
  for (let start = 1; start <= ROWS; start += CHUNK) {
    const end = Math.min(ROWS, start + CHUNK - 1);
    await pool.query(`INSERT INTO ${n.table} (id, realm, user_id, device_name, device_browser, device_os, device_type, ip, country,
        created_at, last_active_at, expires_at, absolute_expires_at, ended_at, end_reason, rotations)
      SELECT substr(md5(g::text), 1, 3) || substr(md5((g % $3)::text), 4, 19) || substr(md5(g::text || 'r'), 1, 16),
        'ts:', 'user-' || (g % $3),
        (ARRAY['Chrome 131 on macOS', 'Safari on iPhone', 'Firefox 133 on Windows', 'Edge 131 on Windows'])[1 + g % 4],
        (ARRAY['Chrome', 'Safari', 'Firefox', 'Edge'])[1 + g % 4],
        (ARRAY['macOS', 'iOS', 'Windows', 'Windows'])[1 + g % 4],
        (ARRAY['desktop', 'mobile', 'desktop', 'desktop'])[1 + g % 4],
        '10.' || (g % 250) || '.' || (g % 199) || '.' || (g % 97), (ARRAY['DE', 'FR', 'US', 'JP', 'BR'])[1 + g % 5],
        c, c + interval '20 minutes', c + interval '1 day', c + interval '30 days',
        CASE WHEN g % 10 <> 0 THEN c + interval '2 hours' END, CASE WHEN g % 10 <> 0 THEN 'sign-out' END, g % 4
      FROM generate_series($1::int, $2::int) AS g,
        LATERAL (SELECT to_timestamp($4::float8 / 1000) + g * ($5::float8 / $6::float8) * interval '1 millisecond' AS c) AS x`,
    [start, end, USERS, T0, 90 * DAY, ROWS]);
    log(`  ${fmt(end)} rows (${secs(tLoad)})`);
  }
  const loadSecs = (Date.now() - tLoad) / 1000;
  const tIdx = Date.now();
  await migrate(pool, opts);
  const idxSecs = (Date.now() - tIdx) / 1000;
  log(`indexes built in ${idxSecs.toFixed(1)} s`);
  const tVac = Date.now();
  await pool.query(`VACUUM (ANALYZE) ${n.table}`);
  log(`VACUUM (ANALYZE) in ${secs(tVac)}`);

  const sizes = async () => (await pool.query(`SELECT c.relname AS name, pg_relation_size(c.oid) AS bytes FROM pg_class c
      WHERE c.relname = $1 OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = $2::regclass) ORDER BY 1`,
  [n.raw.historyIndex.replace(/_user_created$/, ''), n.table])).rows.map((r) => [String(r.name), fmtBytes(Number(r.bytes))]);

  const q = db.pool({ max: 1 });
  const rnd = () => `user-${Math.floor(Math.random() * USERS)}`;
  async function measure(label: string, query: (user: string) => Promise<unknown[]>): Promise<string[]> {
    for (let i = 0; i < QUERIES; i++) await query(rnd());
    const lat: number[] = [];
    let rows = 0;
    for (let i = 0; i < QUERIES; i++) {
      const t0 = process.hrtime.bigint();
      rows += (await query(rnd())).length;
      lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    lat.sort((a, b) => a - b);
    return [label, fmt(QUERIES), fmt(rows / QUERIES, 1), fmt(quantileSorted(lat, 0.5), 3), fmt(quantileSorted(lat, 0.99), 3),
      fmt(lat[lat.length - 1], 3)];
  }
  const month = (user: string) => auditHistory(q, opts, user, { from: NOW - 30 * DAY, to: NOW });
  const all = (user: string) => auditHistory(q, opts, user);
  const header = ['history()', 'queries', 'rows/query', 'p50 ms', 'p99 ms', 'max ms'];
  const results = [
    await measure('last 30 days (covering index)', month),
    await measure('no window, limit 100 (covering index)', all),
  ];
  const plan = (await q.query(`EXPLAIN (ANALYZE, BUFFERS) ${historySql(n, false)}`, ['user-4242', NOW - 30 * DAY, NOW, 100, 'ts:'])).rows
    .map((r) => r['QUERY PLAN'] as string).join('\n');
  const sizeRows = await sizes();

  let compare = '';
  if (COMPARE) {
    log('replacing the covering index by the same key without INCLUDE');
    await pool.query(`DROP INDEX ${n.historyIndex}`);
    await pool.query(`CREATE INDEX ${n.historyIndex} ON ${n.table} (realm, user_id, created_at DESC, id DESC)`);
    await pool.query(`VACUUM (ANALYZE) ${n.table}`);
    results.push(await measure('last 30 days (key only, no INCLUDE)', month));
    results.push(await measure('no window, limit 100 (key only, no INCLUDE)', all));
    const plan2 = (await q.query(`EXPLAIN (ANALYZE, BUFFERS) ${historySql(n, false)}`, ['user-4242', NOW - 30 * DAY, NOW, 100, 'ts:'])).rows
      .map((r) => r['QUERY PLAN'] as string).join('\n');
    compare = `\nWithout INCLUDE (same key), sizes:\n\n${table(['relation', 'size'],
      await sizes())}\n\nPlan:\n\n\`\`\`\n${plan2}\n\`\`\`\n`;
  }

  console.log(`## audit history() at ${fmt(ROWS)} rows

${new Date().toISOString()} — ${machineLine()}

Load: ${fmt(ROWS)} rows in ${loadSecs.toFixed(1)} s (generate_series, primary key in place), other indexes in ${idxSecs.toFixed(1)} s.
${fmt(USERS)} users × ${PER_USER} sessions over 90 days; 90 % ended, 10 % live.

${table(header, results)}

Sizes:

${table(['relation', 'size'], sizeRows)}

Plan (user-4242, last 30 days):

\`\`\`
${plan}
\`\`\`
${compare}`);
  await q.end();
} finally {
  await db.stop();
}
void pg;
