// Both demo servers as child processes (examples/demo/server.ts on Fastify, express.ts on
// Express): started while Redis is down they listen, serve their public routes and report
// themselves unhealthy, then recover without a restart once Redis comes up; the country comes
// only from the header COUNTRY_HEADER names; /metrics does not tell whether an id is cached.
// Their history (the audit trail): DATABASE_URL, else one private PostgreSQL shared by the
// instances on one Redis and KEY_PREFIX and stopped once the last has exited, else none (404).
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RedisServer, freePort, sleep } from '../fixtures/redis.js';
import { PostgresServer } from '../fixtures/postgres.js';
import { startDemo, type Demo } from '../fixtures/browser/demo.js';
import { dashboardExpressions, missingFrom, promqlMetricNames } from '../fixtures/promql.js';

const DASHBOARD = 'examples/observability/grafana-dashboard.json';

const SERVERS: [string, string][] = [['Fastify', 'examples/demo/server.ts'], ['Express', 'examples/demo/express.ts']];

async function demoOn(t: Test, env: Record<string, string>, script: string, waitFor: 'healthy' | 'listening' = 'healthy'): Promise<Demo> {
  const demo = await startDemo({ KEY_PREFIX: `demo${randomBytes(3).toString('hex')}:`, ...env }, script, { waitFor });
  t.teardown(() => demo.stop());
  return demo;
}

/** Sign in as alice through the demo's own login; the session cookie as a Cookie header. */
async function login(demo: Demo, headers: Record<string, string> = {}): Promise<{ status: number; cookie: string; body: string }> {
  const r = await fetch(`${demo.url}/login`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ username: 'alice', password: 'wonderland' }),
  });
  const cookie = (r.headers.get('set-cookie') ?? '').split(';')[0];
  return { status: r.status, cookie, body: await r.text() };
}

const get = (demo: Demo, path: string, cookie?: string) => fetch(`${demo.url}${path}`, cookie ? { headers: { cookie } } : {});

/** A counter from the demo's /metrics. */
async function metric(demo: Demo, name: string): Promise<number> {
  const text = await (await get(demo, '/metrics')).text();
  const m = new RegExp(`^${name.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text);
  if (!m) throw new Error(`no ${name} in /metrics`);
  return Number(m[1]);
}

async function until(fn: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return true;
    if (Date.now() > end) return false;
    await sleep(100);
  }
}

let redis: RedisServer | undefined;
t.before(async () => { redis = await RedisServer.start(); });

for (const [framework, script] of SERVERS) {
  t.test(`the ${framework} demo started while Redis is down listens, serves its public routes, reports itself unhealthy, and recovers ` +
    `without a restart`, async (t) => {
    const port = await freePort();
    const demo = await demoOn(t, { REDIS_URL: `redis://127.0.0.1:${port}` }, script, 'listening');
    for (const path of ['/', '/app.js', '/metrics']) {
      const r = await get(demo, path);
      t.equal(r.status, 200, `GET ${path} answers 200 while Redis is down`);
      await r.arrayBuffer();
    }
    const anyToken = `__Host-sid=${randomBytes(29).toString('base64url').slice(0, 38)}.${randomBytes(32).toString('base64url')}`;
    for (const path of ['/', '/app.js']) {
      const r = await get(demo, path, anyToken);
      t.equal(r.status, 200, `GET ${path} with a session cookie answers 200 too: public routes opt out of sessions`);
      await r.arrayBuffer();
    }
    const health = await get(demo, '/healthz');
    t.equal(health.status, 503, '/healthz answers 503');
    t.same(await health.json(), { status: 'unavailable' });
    const refused = await login(demo);
    t.equal(refused.status, 503, 'a sign-in answers 503 (not 500, no cookie)');
    t.equal(refused.cookie, '');
    t.match(await (await get(demo, '/metrics')).text(), /tiered_session_channel_state\{state="confirmed"\} 0/,
      'the channel is not confirmed');

    const server = await RedisServer.start([], { port });
    t.teardown(() => server.stop());
    t.ok(await until(async () => (await get(demo, '/healthz')).status === 200, 8000), '/healthz turns 200 once Redis is up');
    const ok = await login(demo);
    t.equal(ok.status, 200, `a sign-in works (${ok.body})`);
    t.equal((await get(demo, '/me', ok.cookie)).status, 200, '/me answers 200');
    t.equal((await get(demo, '/', ok.cookie)).status, 200);
  });

  t.test(`the ${framework} demo reads the country only from the header COUNTRY_HEADER names, its /metrics does not tell whether an id is ` +
    `cached, and it exports every metric the Grafana dashboard reads`, async (t) => {
    const plain = await demoOn(t, { REDIS_URL: redis!.url }, script);
    const behindCdn = await demoOn(t, { REDIS_URL: redis!.url, COUNTRY_HEADER: 'cf-ipcountry' }, script);

    const live = await (await get(plain, '/metrics')).text();
    const exprs = dashboardExpressions(DASHBOARD);
    t.ok(exprs.length >= 20, `${exprs.length} PromQL expressions in the dashboard`);
    const used = new Set(exprs.flatMap((e) => promqlMetricNames(e)));
    for (const name of ['tiered_session_redis_operation_seconds_bucket', 'tiered_session_l2_amplification',
      'tiered_session_audit_lag_seconds',
      'tiered_session_unconfirmed_revocations_total', 'tiered_session_channel_state', 'tiered_session_revocation_latency_seconds_bucket']) {
      t.ok(used.has(name), `the dashboard reads ${name}`);
    }
    t.same(missingFrom(live, used), [], `every metric the dashboard reads is on the live /metrics (${used.size} names)`);
    t.same(missingFrom(live, promqlMetricNames('sum(rate(tiered_session_nope_total[5m])) / tiered_session_l1_entries_bucket')),
      ['tiered_session_nope_total', 'tiered_session_l1_entries_bucket'], 'a name it does not export is caught');
    const ops = await (await get(plain, '/ops')).json() as Record<string, unknown>;
    t.same(Object.keys(ops).sort(), ['channel', 'hitRatio', 'l1Entries', 'l2Amplification', 'revocationP99Ms'],
      'GET /ops: aggregates only');
    for (const [demo, want, what] of [[plain, null, 'COUNTRY_HEADER unset'], [behindCdn, 'DE', 'COUNTRY_HEADER=cf-ipcountry']] as const) {
      const s = await login(demo, { 'cf-ipcountry': 'DE' });
      t.equal(s.status, 200);
      const list = await (await get(demo, '/sessions', s.cookie)).json() as { sessions: { country: string | null }[] };
      t.equal(list.sessions[0]?.country, want, `${what}: a sign-in sending cf-ipcountry: DE is listed with country ${want}`);
    }

    const demo = behindCdn;
    t.ok(await until(async () => (await metric(demo, 'tiered_session_channel_state{state="confirmed"}')) === 1, 5000),
      'the channel is confirmed');
    const s = await login(demo);
    const hits = await metric(demo, 'tiered_session_l1_hits_total');
    t.equal((await get(demo, '/me', s.cookie)).status, 200);
    t.equal(await metric(demo, 'tiered_session_l1_hits_total'), hits + 1, 'the session is served from the local cache');
    const token = s.cookie.slice(s.cookie.indexOf('=') + 1);
    const name = s.cookie.slice(0, s.cookie.indexOf('='));
    const probe = async (value: string) => {
      const misses = await metric(demo, 'tiered_session_l1_misses_total');
      const r = await get(demo, '/me', `${name}=${value}`);
      return [r.status, await metric(demo, 'tiered_session_l1_misses_total') - misses];
    };
    const cachedWrong = await probe(`${token.slice(0, 39)}${randomBytes(32).toString('base64url')}`);
    const unknown = await probe(`${randomBytes(29).toString('base64url').slice(0, 38)}.${randomBytes(32).toString('base64url')}`);
    t.same(cachedWrong, [401, 1], 'a wrong secret for a cached id: 401, one miss');
    t.same(unknown, cachedWrong, 'exactly as for an id nobody has');
  });
}

// ---- the history: DATABASE_URL, the shared private PostgreSQL, or none ----------------------

interface HistoryEntry { id: string; current: boolean; endReason: string | null }

/** Sign in as `user`; the cookie and the session id. */
async function signIn(demo: Demo, user = 'alice', password = 'wonderland'): Promise<{ cookie: string; id: string }> {
  const r = await fetch(`${demo.url}/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: user, password }),
  });
  if (r.status !== 200) throw new Error(`login: ${r.status} ${await r.text()}`);
  return { cookie: (r.headers.get('set-cookie') ?? '').split(';')[0], id: ((await r.json()) as { session: { id: string } }).session.id };
}

/** GET /sessions/history until `ok` holds (the audit trail is written within a second or so). */
async function historyUntil(demo: Demo, cookie: string, ok: (s: HistoryEntry[]) => boolean, query = ''): Promise<HistoryEntry[]> {
  let last: HistoryEntry[] = [];
  await until(async () => {
    const r = await get(demo, `/sessions/history${query}`, cookie);
    if (r.status !== 200) throw new Error(`GET /sessions/history: ${r.status} ${await r.text()}`);
    last = ((await r.json()) as { sessions: HistoryEntry[] }).sessions;
    return ok(last);
  }, 10_000);
  return last;
}

const isAlive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };

t.test('two demo instances (Fastify and Express) on one Redis and KEY_PREFIX share one private PostgreSQL: each shows what the other ' +
  'did; it stops once both have exited, even killed -9', async (t) => {
  // Their own temp dir: the private PostgreSQL's directory is found there (other demos of this
  // test run share another one).
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'demo-pg-'));
  // Reachable by the `postgres` user the server runs as when we are root.
  chmodSync(tmp, 0o755);
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const env = { REDIS_URL: redis!.url, KEY_PREFIX: `share${randomBytes(3).toString('hex')}:`, TMPDIR: tmp, DATABASE_URL: '' };
  // Started at once: one of them starts the server, the other waits for the lock and joins it.
  // 90 s: the first one runs initdb while the other waits for its lock (a fresh clone's first initdb took longer than 30 s once).
  const [a, b] = await Promise.all([startDemo(env, SERVERS[0][1], { ms: 90_000 }), startDemo(env, SERVERS[1][1], { ms: 90_000 })]);
  t.teardown(() => a.stop());
  t.teardown(() => b.stop());
  const dir = path.join(tmp, `tiered-session-demo-postgres-${process.getuid?.() ?? 0}`);
  t.same(readdirSync(path.join(dir, 'users')).sort(), [String(a.pid), String(b.pid)].sort(), 'both instances use the one server');
  const postmaster = Number(readFileSync(path.join(dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
  t.ok(isAlive(postmaster), `its postmaster runs (pid ${postmaster})`);

  const onA = await signIn(a);
  const onB = await signIn(b);
  const revoked = await fetch(`${b.url}/sessions/${onA.id}`, { method: 'DELETE', headers: { cookie: onB.cookie } });
  t.equal(revoked.status, 204, 'the Express instance signs out the session made on the Fastify one');
  const again = await signIn(a);
  // The audit consumer applies the three changes in its own time: wait for all of them.
  const seen = await historyUntil(a, again.cookie, (h) => h.some((e) => e.id === onA.id && e.endReason === 'revoked') &&
    h.some((e) => e.id === again.id));
  t.same(seen.filter((e) => [onA.id, onB.id, again.id].includes(e.id)).map((e) => [e.id, e.endReason, e.current]),
    [[again.id, null, true], [onB.id, null, false], [onA.id, 'revoked', false]],
      'the Fastify instance shows all three, the revocation made on the other included');
  t.notMatch(a.logs() + b.logs(), /History is off/);

  await a.stop();
  t.same(readdirSync(path.join(dir, 'users')), [String(b.pid)], 'the instance that exited is no longer registered');
  await sleep(1500);
  t.ok(isAlive(postmaster), 'the server stays up for the other instance');
  t.ok((await historyUntil(b, onB.cookie, (h) => h.length >= 3)).length >= 3, 'whose history still answers');

  await b.kill();
  t.ok(await until(async () => !existsSync(dir) && !isAlive(postmaster), 10_000),
    'once the last one is gone (killed -9), PostgreSQL stops and its directory is removed');
  t.notOk(existsSync(`${dir}.lock`), 'and no lock is left behind');
});

for (const [framework, script] of SERVERS) {
  t.test(`the ${framework} demo without PostgreSQL binaries runs without history, says so once on stderr, and GET /sessions/history ` +
    `answers 404`, async (t) => {
    const empty = mkdtempSync(path.join(os.tmpdir(), 'no-pg-bin-'));
    t.teardown(() => rmSync(empty, { recursive: true, force: true }));
    const demo = await demoOn(t, { REDIS_URL: redis!.url, PG_BIN: empty, DATABASE_URL: '' }, script);
    const s = await signIn(demo);
    const r = await get(demo, '/sessions/history', s.cookie);
    t.equal(r.status, 404);
    t.match(await r.json(), { code: 'ERR_TIERED_SESSION_NOT_FOUND' });
    t.equal(demo.logs().match(/History is off/g)?.length, 1, 'one line on stderr says why');
    t.match(demo.logs(), /no PostgreSQL binaries found/);
    t.equal((await get(demo, '/sessions', s.cookie)).status, 200, 'the device list works as ever');
  });
}

t.test('DATABASE_URL turns the history on in both demos, on that database, with AUDIT_RETENTION_DAYS as the ?days= bound', async (t) => {
  const db = await PostgresServer.start();
  t.teardown(() => db.stop());
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'demo-db-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const env = {
    REDIS_URL: redis!.url, KEY_PREFIX: `db${randomBytes(3).toString('hex')}:`,
    DATABASE_URL: db.url, AUDIT_RETENTION_DAYS: '7', AUDIT_SWEEP_INTERVAL_MS: '500', TMPDIR: tmp,
  };
  const [a, b] = await Promise.all([demoOn(t, env, SERVERS[0][1]), demoOn(t, env, SERVERS[1][1])]);
  const onA = await signIn(a, 'bob', 'builder');
  t.equal((await fetch(`${a.url}/logout`, { method: 'POST', headers: { cookie: onA.cookie } })).status, 204);
  const onB = await signIn(b, 'bob', 'builder');
  const h = await historyUntil(b, onB.cookie, (x) => x.some((e) => e.id === onA.id && e.endReason === 'sign-out') &&
    x.some((e) => e.id === onB.id));
  t.ok(h.some((e) => e.id === onB.id && e.current), 'the Express demo shows the sign-out made on the Fastify one, and its own session');
  t.equal((await get(b, '/sessions/history?days=7', onB.cookie)).status, 200);
  t.equal((await get(a, '/sessions/history?days=8', onB.cookie)).status, 400, '?days= beyond AUDIT_RETENTION_DAYS is refused');
  const pool = db.pool();
  const rows = (await pool.query('SELECT id, end_reason FROM tiered_session_audit WHERE id = ANY($1) ORDER BY created_at',
    [[onA.id, onB.id]])).rows;
  t.same(rows, [{ id: onA.id, end_reason: 'sign-out' }, { id: onB.id, end_reason: null }], 'the rows are in DATABASE_URL\'s database');
  t.notOk(existsSync(path.join(tmp, `tiered-session-demo-postgres-${process.getuid?.() ?? 0}`)), 'no private PostgreSQL was started');
});
