// End to end: the audit trail through the real apps (Fastify, Express 5, Express 4) on
// both Redis targets and a private PostgreSQL. Every end reason a real flow produces lands in the
// table once, with the device, ip, country and times of the session; rotations are counted and
// data updates keep the row; activity moves last_active_at at most once per activityInterval;
// the sweep records expiry; GET /sessions/history and Sessions.history(); requests never wait on
// PostgreSQL (blackholed or killed); two instances consume without a duplicate; hostile input
// lands as data; the audit options are validated.
import t, { type Test } from 'tap';
import type { Response as InjectResponse } from 'light-my-request';
import { PostgresServer } from '../fixtures/postgres.js';
import { DelayProxy } from '../fixtures/proxy.js';
import { sleep } from '../fixtures/redis.js';
import {
  COOKIE, eachTarget, inspector, makeApp, tokenOf, twoInstances, type Target, type TestApp,
} from '../fixtures/targets.js';
import { readRows, diffRows, until } from '../fixtures/audit-events.js';
import type { AuditSessionRow } from '../../lib/core/audit/history.js';
import type { AuditOptions, TieredSessionOptions } from '../../lib/index.js';

const db = await PostgresServer.start();
t.teardown(() => db.stop());
const pool = db.pool({ max: 10 });

const TABLE = 'tiered_session_audit';
const DAY = 24 * 3600_000;
const IDLE = 14 * DAY; // the default idleTimeout

const UA = {
  mac: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
  linux: 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0',
  iphone: 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 ' +
    'Safari/604.1',
  android: 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36',
  none: '',
} as const;
type Ua = keyof typeof UA;
/** What the device parser makes of each (written out here, not asked of the parser). */
const DEVICE: Record<Ua, AuditSessionRow['device']> = {
  mac: { name: 'Chrome 131 on macOS', browser: 'Chrome', os: 'macOS', type: 'desktop' },
  linux: { name: 'Firefox 133 on Linux', browser: 'Firefox', os: 'Linux', type: 'desktop' },
  iphone: { name: 'Safari on iPhone', browser: 'Safari', os: 'iOS', type: 'mobile' },
  android: { name: 'Chrome 131 on Android', browser: 'Chrome', os: 'Android', type: 'mobile' },
  none: { name: 'Unknown device', browser: null, os: null, type: null },
};

type Options = Partial<TieredSessionOptions> & Record<string, unknown>;
type Logs = { level: string; msg: string }[];

/** The audit options every test starts from: fast polling and sweeping, activity events off unless asked for. */
function auditOf(schema: string, over: Partial<AuditOptions> = {}): AuditOptions {
  return { pool, schema, pollInterval: 50, sweepInterval: 200, activityInterval: 3_600_000, ...over };
}

/** One app with audit on, on a fresh key prefix and a fresh schema of its own. */
async function auditedApp(t: Test, target: Target, options: Options = {}, audit: Partial<AuditOptions> = {}, logs?: Logs) {
  const schema = await db.freshSchema();
  const app = await makeApp(t, target.client(), { keyPrefix: target.prefix(), ...options, audit: auditOf(schema, audit) },
    logs ? { logs } : {});
  return { app, schema, table: { schema, table: TABLE } };
}

/** A number from the app's Prometheus text. */
function metric(app: TestApp, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(app.sessions.prometheus());
  if (!m) throw new Error(`no ${name} in prometheus()`);
  return Number(m[1]);
}
const applied = (apps: TestApp[]) => apps.reduce((n, a) => n + metric(a, 'tiered_session_audit_events_applied_total'), 0);


/**
 * Wait until the sinks have applied `expected` events in all, then a few more polling rounds:
 * one event too many (a change told twice, an event applied twice) shows as a larger count.
 */
async function delivered(t: Test, apps: TestApp[], expected: number, what = 'events'): Promise<void> {
  await until(`${expected} ${what} applied (have ${applied(apps)})`, () => applied(apps) >= expected);
  await sleep(250);
  t.equal(applied(apps), expected, `${expected} ${what} reached PostgreSQL, each exactly once`);
}

interface Login { user: string; id: string; token: string }

interface LoginOptions { ua?: Ua; ip?: string; country?: string; carried?: string; remember?: boolean; xff?: string }

/** POST /login through the app, from a browser with this User-Agent, address and country header. */
async function login(app: TestApp, user: string, o: LoginOptions = {}): Promise<Login> {
  const res = await loginRes(app, user, o);
  const token = tokenOf(res);
  if (res.statusCode !== 200 || token === undefined) throw new Error(`login ${JSON.stringify(user)}: ${res.statusCode} ${res.body}`);
  return { user, id: res.json().id, token };
}

function loginRes(app: TestApp, user: string, o: LoginOptions = {}): Promise<InjectResponse> {
  return app.inject({
    method: 'POST', url: '/login',
    payload: { user, ...(o.remember !== undefined ? { remember: o.remember } : {}) },
    headers: {
      'user-agent': UA[o.ua ?? 'mac'],
      ...(o.country !== undefined ? { 'cf-ipcountry': o.country } : {}),
      ...(o.xff !== undefined ? { 'x-forwarded-for': o.xff } : {}),
    },
    remoteAddress: o.ip ?? '127.0.0.1',
    ...(o.carried ? { cookies: { [COOKIE]: o.carried } } : {}),
  });
}

const as = (s: { token: string }) => ({ cookies: { [COOKIE]: s.token } });
const get = (app: TestApp, url: string, s?: { token: string }) => app.inject({ method: 'GET', url, ...(s ? as(s) : {}) });

/** The row a session must have: created now (the app's clock), no activity since, not ended. */
function fresh(s: Login, ua: Ua, at: number, ip: string | null = '127.0.0.1', country: string | null = null): AuditSessionRow {
  return {
    id: s.id, userId: s.user, device: DEVICE[ua], ip, country,
    createdAt: at, lastActiveAt: at, expiresAt: at + IDLE, endedAt: null, endReason: null, rotations: 0,
  };
}

const tableOf = (schema: string) => ({ schema, table: TABLE });
const noDiff = { missing: [], extra: [], wrong: [] };

t.test('every end reason a real flow produces lands in the table once, with the device, ip, country and times of the session',
  async (t) => {
  await eachTarget(t, async (t, target) => {
    let clock = Math.floor(Date.now() / 1000) * 1000;
    const { app, table } = await auditedApp(t, target, {
      now: () => clock, countryHeader: 'cf-ipcountry', maxSessionsPerUser: { total: 4, mobile: 1 },
    });
    const rows: AuditSessionRow[] = [];
    const row = (s: Login) => rows.find((r) => r.id === s.id)!;
    const signIn = async (user: string, ua: Ua, o: LoginOptions = {}, ip: string | null = '127.0.0.1', country: string | null = null) => {
      clock += 1000;
      const s = await login(app, user, { ua, ...o });
      rows.push(fresh(s, ua, clock, ip, country));
      return s;
    };
    const end = (s: Login, reason: AuditSessionRow['endReason']) => Object.assign(row(s), { endedAt: clock, endReason: reason });

    const a1 = await signIn('alice', 'mac', { ip: '203.0.113.7', country: 'DE' }, '203.0.113.7', 'DE');
    const a2 = await signIn('alice', 'iphone', { ip: '2001:db8::7', country: 'fr' }, '2001:db8::7', 'FR');
    const a3 = await signIn('alice', 'linux', { ip: '198.51.100.2', country: 'XX' }, '198.51.100.2', null);

    // sign-out: the session signs itself out.
    clock += 1000;
    t.equal((await app.inject({ method: 'POST', url: '/logout', ...as(a1) })).statusCode, 204, 'POST /logout');
    end(a1, 'sign-out');
    // revoked: another device, by id.
    clock += 1000;
    t.equal((await app.inject({ method: 'DELETE', url: `/sessions/${a3.id}`, ...as(a2) })).statusCode, 204, 'DELETE another device');
    end(a3, 'revoked');
    // sign-out again: DELETE of the current session is signing out.
    clock += 1000;
    t.equal((await app.inject({ method: 'DELETE', url: `/sessions/${a2.id}`, ...as(a2) })).statusCode, 204, 'DELETE the current device');
    end(a2, 'sign-out');

    // replaced: a sign-in on a request that carried a session (another user's, even).
    const a4 = await signIn('alice', 'android', {}, '127.0.0.1');
    const b1 = await signIn('bob', 'linux', { carried: a4.token });
    end(a4, 'replaced');
    t.equal((await get(app, '/me', a4)).statusCode, 401, 'the carried session is gone');

    // everywhere: logout-everywhere keeping the current one, then without; then revokeAll().
    const a5 = await signIn('alice', 'mac');
    const a6 = await signIn('alice', 'linux');
    clock += 1000;
    let res = await app.inject({ method: 'POST', url: '/sessions/logout-everywhere', payload: { keepCurrent: true }, ...as(a5) });
    t.same([res.statusCode, res.json()], [200, { revoked: 1 }], 'logout-everywhere, keeping the current session');
    end(a6, 'everywhere');
    clock += 1000;
    res = await app.inject({ method: 'POST', url: '/sessions/logout-everywhere', ...as(a5) });
    t.same([res.statusCode, res.json()], [200, { revoked: 1 }], 'logout-everywhere');
    end(a5, 'everywhere');
    const a7 = await signIn('alice', 'mac');
    const a8 = await signIn('alice', 'iphone');
    clock += 1000;
    t.equal(await app.face.revokeAll('alice'), 2, 'revokeAll()');
    end(a7, 'everywhere');
    end(a8, 'everywhere');

    // cap: past the mobile cap (1), then past the total (4).
    const c1 = await signIn('carol', 'iphone');
    await signIn('carol', 'android');
    end(c1, 'cap');
    const c2 = rows[rows.length - 1];
    for (let i = 0; i < 3; i++) await signIn('carol', 'mac');
    await signIn('carol', 'linux');
    end({ id: c2.id } as Login, 'cap');
    t.equal((await get(app, '/me', c1)).statusCode, 401, 'the evicted sessions are gone');

    await delivered(t, [app], 15 + 10, 'events (15 sign-ins, 10 ends)');
    const table_ = await readRows(pool, table);
    t.same(diffRows(table_, rows), noDiff, 'one row per session, every field as expected');
    const count: Record<string, number> = {};
    for (const r of table_.values()) count[r.endReason ?? 'live'] = (count[r.endReason ?? 'live'] ?? 0) + 1;
    t.same(count, { 'sign-out': 2, revoked: 1, replaced: 1, everywhere: 4, cap: 2, live: 5 },
      'every reason in the table, as many times as it happened');
    t.equal(table_.get(b1.id)?.endReason, null, 'the sign-in that replaced a session is live');
  });
});

t.test('rotations are counted on the same row (a confirmed authentication rotates too); data updates keep it', async (t) => {
  await eachTarget(t, async (t, target) => {
    let clock = Math.floor(Date.now() / 1000) * 1000;
    const { app, table } = await auditedApp(t, target, { now: () => clock });
    const s = await login(app, 'dora', { ua: 'linux' });
    const created = clock;
    let token = s.token;
    for (let i = 0; i < 2; i++) {
      clock += 1000;
      const res = await app.inject({ method: 'POST', url: '/rotate', cookies: { [COOKIE]: token } });
      t.equal(res.statusCode, 200, `rotation ${i + 1}`);
      t.equal(res.json().id, s.id, 'the public id stays');
      token = tokenOf(res)!;
    }
    const cur = { token };
    clock += 1000;
    t.equal((await app.inject({ method: 'POST', url: '/update', payload: { data: { cart: 3 } }, ...as(cur) })).statusCode, 200,
      'data updated');
    clock += 1000;
    const confirmed = await app.inject({ method: 'POST', url: '/confirm', ...as(cur) });
    t.equal(confirmed.statusCode, 200, 'authentication confirmed');
    cur.token = tokenOf(confirmed)!;
    t.same((await get(app, '/me', cur)).json().data, { cart: 3 });
    await delivered(t, [app], 4, 'events (created, rotated twice, rotated by the confirmation)');
    t.same(diffRows(await readRows(pool, table), [{ ...fresh(s, 'linux', created), rotations: 3 }]), noDiff, 'one live row, rotations 3');

    clock += 1000;
    t.equal((await app.inject({ method: 'POST', url: '/logout', ...as(cur) })).statusCode, 204);
    await delivered(t, [app], 5, 'events (and the sign-out)');
    t.same(diffRows(await readRows(pool, table), [{ ...fresh(s, 'linux', created), rotations: 3, endedAt: clock, endReason: 'sign-out' }]),
      noDiff,
      'the same row ended: still rotations 3');
  });
});

t.test('with the event feed on too, every change reaches PostgreSQL and the handlers alike, each once', async (t) => {
  await eachTarget(t, async (t, target) => {
    const { app, table } = await auditedApp(t, target, { events: { pollInterval: 20 } });
    const seen: string[] = [];
    app.face.events.on('*', (e) => { seen.push(e.type === 'ended' ? `ended:${e.reason}` : e.type); });
    const s = await login(app, 'edda', { ua: 'linux' });
    const cur = { token: s.token };
    const rotated = await app.inject({ method: 'POST', url: '/rotate', ...as(cur) });
    cur.token = tokenOf(rotated)!;
    t.equal((await app.inject({ method: 'POST', url: '/update', payload: { data: { cart: 1 } }, ...as(cur) })).statusCode, 200);
    const confirmed = await app.inject({ method: 'POST', url: '/confirm', ...as(cur) });
    cur.token = tokenOf(confirmed)!;
    t.equal((await app.inject({ method: 'POST', url: '/logout', ...as(cur) })).statusCode, 204);
    await delivered(t, [app], 4, 'events (created, rotated twice, the sign-out)');
    const [row] = (await readRows(pool, table)).values();
    t.match(row, { id: s.id, rotations: 2, endReason: 'sign-out' }, 'the row: two rotations, signed out');
    t.equal(metric(app, 'tiered_session_audit_events_invalid_total'), 0, 'the audit reads every entry of its stream');
    await until(`5 events delivered (have ${seen.length})`, () => seen.length >= 5);
    await sleep(250);
    t.same(seen, ['created', 'rotated', 'updated', 'reauthenticated', 'ended:sign-out'],
      'the handlers heard every change once, in order (one user, one stream)');
  }, { adapters: ['fastify'] });
});

t.test('activity moves last_active_at at most once per activityInterval, not on every touch', async (t) => {
  await eachTarget(t, async (t, target) => {
    let clock = Math.floor(Date.now() / 1000) * 1000;
    const INTERVAL = 60_000;
    const { app, table } = await auditedApp(t, target, { now: () => clock, touchInterval: 1000 }, { activityInterval: INTERVAL });
    const s = await login(app, 'erin', { ua: 'mac' });
    const created = clock;
    const touch = async (at: number) => {
      clock = at;
      t.equal((await get(app, '/me', s)).statusCode, 200);
      await app.sessions.flushTouches();
    };
    for (const dt of [2000, 4000, 6000]) await touch(created + dt);
    const listed = (await get(app, '/sessions', s)).json().sessions[0];
    t.equal(Date.parse(listed.lastActiveAt), created + 6000, 'Redis has every touch (the device list says 6 s after sign-in)');
    await delivered(t, [app], 1, 'event (created only: three touches inside the interval)');
    t.same(diffRows(await readRows(pool, table), [fresh(s, 'mac', created)]), noDiff, 'last_active_at is still the sign-in');

    await touch(created + INTERVAL + 1000);
    for (const dt of [3000, 5000]) await touch(created + INTERVAL + dt);
    await delivered(t, [app], 2, 'events (one activity event once the interval passed)');
    const first = created + INTERVAL + 1000;
    t.same(diffRows(await readRows(pool, table), [{ ...fresh(s, 'mac', created), lastActiveAt: first, expiresAt: first + IDLE }]), noDiff,
      'last_active_at and expires_at moved once, to the first touch past the interval');

    await touch(first + INTERVAL);
    await delivered(t, [app], 3, 'events (the next interval)');
    t.same(diffRows(await readRows(pool, table),
      [{ ...fresh(s, 'mac', created), lastActiveAt: first + INTERVAL, expiresAt: first + INTERVAL + IDLE }]), noDiff);
  });
});

t.test('an idle and an absolute expiry are recorded by the sweep as "expired" at the expiry; an explicit end stands; a live session ' +
  'stays live', async (t) => {
  await eachTarget(t, async (t, target) => {
    // The sweep ends a row only once its Redis key is gone, and only sweepGrace (10 s) after its
    // expiry by the app's clock. Redis expires keys in real time: the sessions live 1-1.5 s for
    // real, then the app's clock jumps 11 s so the sweep's grace has passed.
    let offset = 0;
    const now = () => Date.now() + offset;
    const { app, table } = await auditedApp(t, target, {
      now, idleTimeout: 1500, absoluteTimeout: 60_000, touchInterval: 100, shortSession: { idleTimeout: 1500, absoluteTimeout: 1000 },
    });
    const created = async (s: Login) => (await readRows(pool, table)).get(s.id)!.createdAt!;
    const idle = await login(app, 'frank', { ua: 'mac' });
    await sleep(5);
    const absolute = await login(app, 'frank', { ua: 'iphone', remember: false });
    await sleep(5);
    const signedOut = await login(app, 'frank', { ua: 'linux' });
    t.equal((await app.inject({ method: 'POST', url: '/logout', ...as(signedOut) })).statusCode, 204);
    await delivered(t, [app], 4);
    const keys = [idle, absolute].map((s) => app.sessions.store.sessionKey(s.id));
    const client = await inspector(target);
    await until('both keys expired in Redis', async () => (await Promise.all(keys.map((k) => client.exists(k)))).every((n) => n === 0),
      5000);
    await sleep(500);
    let rows = await readRows(pool, table);
    t.same([rows.get(idle.id)!.endedAt, rows.get(absolute.id)!.endedAt], [null, null],
      'no event exists for a key that expires: the rows are still open');

    offset += 11_000;
    const live = await login(app, 'frank', { ua: 'android' });
    await delivered(t, [app], 5);
    await until('the sweep recorded both', async () => {
      const r = await readRows(pool, table);
      return r.get(idle.id)?.endReason === 'expired' && r.get(absolute.id)?.endReason === 'expired';
    });
    rows = await readRows(pool, table);
    const i = rows.get(idle.id)!;
    const a = rows.get(absolute.id)!;
    t.equal(i.endedAt, (await created(idle)) + 1500, 'the idle session ended at its last activity + idleTimeout');
    t.equal(i.endedAt, i.expiresAt);
    t.equal(a.endedAt, (await created(absolute)) + 1000, 'the short session ended at its absolute deadline');
    t.match(rows.get(signedOut.id), { endReason: 'sign-out' }, 'the explicit end is not replaced by "expired"');
    t.match(rows.get(live.id), { endedAt: null, endReason: null }, 'a session signed in since is live');
    const res = await get(app, '/sessions/history', live);
    t.equal(res.statusCode, 200);
    t.same(res.json().sessions.map((s: { id: string; endReason: string | null }) => [s.id, s.endReason]),
      [[live.id, null], [signedOut.id, 'sign-out'], [absolute.id, 'expired'], [idle.id, 'expired']], 'and so says the history route');
    t.ok(metric(app, 'tiered_session_audit_swept_expired_total') >= 2, 'counted in the sweep metric');
  });
});

interface HistoryEntry {
  id: string; current: boolean; device: AuditSessionRow['device']; ip: string | null; country: string | null;
  createdAt: string | null; lastActiveAt: string | null; expiresAt: string | null; endedAt: string | null; endReason: string | null;
}

t.test('GET /sessions/history: the caller\'s own sessions, shaped like the device list plus endedAt and endReason, most recent first, ' +
  'within ?days=', async (t) => {
  await eachTarget(t, async (t, target) => {
    const base = Math.floor(Date.now() / 1000) * 1000;
    let clock = base;
    const { app } = await auditedApp(t, target, { now: () => clock, countryHeader: 'cf-ipcountry' }, { retentionDays: 60 });

    // Ended 40 days ago, ended 10 days ago, ended today, live, and the current one; bob's too.
    clock = base - 40 * DAY;
    const old = await login(app, 'gina', { ua: 'linux' });
    clock += 1000;
    await app.inject({ method: 'POST', url: '/logout', ...as(old) });
    clock = base - 10 * DAY;
    const recent = await login(app, 'gina', { ua: 'iphone', ip: '2001:db8::1', country: 'jp' });
    clock += 1000;
    await app.inject({ method: 'POST', url: '/logout', ...as(recent) });
    clock = base - 3000;
    const today = await login(app, 'gina', { ua: 'android' });
    clock = base - 2000;
    const other = await login(app, 'gina', { ua: 'linux', ip: '203.0.113.9', country: 'de' });
    const bob = await login(app, 'bob', { ua: 'mac' });
    clock = base - 1000;
    t.equal((await app.inject({ method: 'DELETE', url: `/sessions/${today.id}`, ...as(other) })).statusCode, 204);
    clock = base;
    const me = await login(app, 'gina', { ua: 'mac', ip: '198.51.100.4', country: 'fr' });
    await delivered(t, [app], 9);

    t.equal((await get(app, '/sessions/history')).statusCode, 401, 'no session: 401');
    t.equal((await get(app, '/sessions/history')).headers['cache-control'], 'no-store');

    const res = await get(app, '/sessions/history', me);
    t.equal(res.statusCode, 200);
    t.equal(res.headers['cache-control'], 'no-store', 'Cache-Control: no-store');
    t.match(res.headers['content-type'], /^application\/json/);
    const body = res.json() as { sessions: HistoryEntry[] };
    t.same(Object.keys(body), ['sessions']);
    t.same(body.sessions.map((s) => s.id), [me.id, other.id, today.id, recent.id],
      'the last 30 days, most recent first; 40 days ago and bob\'s left out');
    for (const s of body.sessions) {
      t.same(Object.keys(s).sort(), ['country', 'createdAt', 'current', 'device', 'endReason', 'endedAt', 'expiresAt', 'id', 'ip',
        'lastActiveAt'], 'the fields of an entry');
      t.same(Object.keys(s.device).sort(), ['browser', 'name', 'os', 'type']);
      for (const k of ['createdAt', 'lastActiveAt', 'expiresAt'] as const) t.equal(new Date(s[k]!).toISOString(), s[k],
        `${k} is an ISO time`);
    }
    const [mine, live, ended, older] = body.sessions;
    t.same(body.sessions.map((s) => s.current), [true, false, false, false], 'only the caller\'s session is current');
    t.same([mine.endedAt, mine.endReason, live.endedAt, live.endReason], [null, null, null, null],
      'live sessions: endedAt and endReason null');
    t.same([ended.endedAt, ended.endReason], [new Date(base - 1000).toISOString(), 'revoked'], 'revoked by another device, with its time');
    t.same([older.endedAt, older.endReason], [new Date(base - 10 * DAY + 1000).toISOString(), 'sign-out']);
    t.same(older, {
      id: recent.id, current: false, device: DEVICE.iphone, ip: '2001:db8::1', country: 'JP',
      createdAt: new Date(base - 10 * DAY).toISOString(), lastActiveAt: new Date(base - 10 * DAY).toISOString(),
      expiresAt: new Date(base - 10 * DAY + IDLE).toISOString(), endedAt: new Date(base - 10 * DAY + 1000).toISOString(),
        endReason: 'sign-out',
    }, 'an ended session, every field');

    // The live ones read exactly as the device list shows them (which has `remembered` and `newDevice` instead of the end).
    const list = (await get(app, '/sessions', me)).json().sessions as Record<string, unknown>[];
    t.same(list.map((s) => s.id), [me.id, other.id]);
    for (const [h, l] of [[mine, list[0]], [live, list[1]]] as const) {
      const { remembered: _r, newDevice: _n, ...shared } = l;
      const { endedAt: _e, endReason: _y, ...rest } = h;
      t.same(rest, shared, `${h.id === me.id ? 'current' : 'other'} session: as in the device list`);
    }

    const ids = async (q: string) => {
      const r = await get(app, `/sessions/history${q}`, me);
      t.equal(r.statusCode, 200, `GET /sessions/history${q}`);
      return (r.json() as { sessions: HistoryEntry[] }).sessions.map((s) => s.id);
    };
    t.same(await ids('?days=30'), [me.id, other.id, today.id, recent.id], '?days=30 is the default');
    t.same(await ids('?days=45'), [me.id, other.id, today.id, recent.id, old.id], '?days=45 reaches back to the session of 40 days ago');
    t.same(await ids('?days=9'), [me.id, other.id, today.id], '?days=9 leaves out the one that ended 10 days ago');
    t.same(await ids('?days=1'), [me.id, other.id, today.id]);
    t.same(await ids('?days=60'), [me.id, other.id, today.id, recent.id, old.id], 'up to the retention (60 days here)');
    for (const bad of ['0', '61', '-1', '1.5', 'abc', '', '1e1', '030x', '99999', '1&days=2']) {
      const r = await get(app, `/sessions/history?days=${bad}`, me);
      t.equal(r.statusCode, 400, `?days=${bad}: 400`);
      t.equal(r.json().code, 'ERR_TIERED_SESSION_BAD_QUERY');
      t.equal(r.headers['cache-control'], 'no-store');
    }

    const bobs = (await get(app, '/sessions/history', bob)).json().sessions as HistoryEntry[];
    t.same(bobs.map((s) => [s.id, s.current]), [[bob.id, true]], 'bob sees only his own session');

    // The public history(): the same rows, any window, a limit.
    const all = await app.face.history('gina');
    t.same(all.map((r) => r.id), [me.id, other.id, today.id, recent.id, old.id], 'history() without a window: every session');
    t.match(all[3], { userId: 'gina', endReason: 'sign-out', rotations: 0, createdAt: base - 10 * DAY });
    t.same((await app.face.history('gina', { limit: 2 })).map((r) => r.id), [me.id, other.id], 'limit');
    t.same((await app.face.history('gina', { from: base - 41 * DAY, to: base - 39 * DAY })).map((r) => r.id), [old.id], 'from / to');
    t.same(await app.face.history('nobody'), []);
    await t.rejects(app.face.history('gina', { limit: 0 }), { code: 'ERR_TIERED_SESSION_BAD_QUERY' });
  });
});

t.test('without audit GET /sessions/history answers 404 to a signed-in caller and history() rejects', async (t) => {
  await eachTarget(t, async (t, target) => {
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix() });
    const s = await login(app, 'hank');
    const res = await get(app, '/sessions/history', s);
    t.equal(res.statusCode, 404);
    t.equal(res.json().code, 'ERR_TIERED_SESSION_NOT_FOUND');
    t.equal((await get(app, '/sessions/history')).statusCode, 401, 'and 401 without a session, as every device route');
    await t.rejects(app.face.history('hank'), { code: 'ERR_TIERED_SESSION_NOT_FOUND' });
    t.notMatch(app.sessions.prometheus(), /tiered_session_audit_/, 'no audit metrics');
  });
});

for (const outage of ['blackholed', 'killed'] as const) {
  t.test(`with PostgreSQL ${outage}, sign-in, resolve, sign-out and logout-everywhere answer normally; the buffer grows; once it is back ` +
    `every row is there once; one log line each way`, {
    skip: !db.canKill && 'DATABASE_URL: not our server to cut off',
  }, async (t) => {
    await eachTarget(t, async (t, target) => {
      // The app's own pool: through a proxy (blackholed: bytes held, no reset) or straight (killed).
      const proxy = outage === 'blackholed' ? await DelayProxy.start({ targetPort: db.port!, delayMs: 0 }) : undefined;
      if (proxy) t.teardown(() => proxy.close());
      const appPool = db.pool({
        max: 4, connectionTimeoutMillis: 1000, query_timeout: 1000,
        ...(proxy ? { connectionString: db.url.replace(`:${db.port}/`, `:${proxy.port}/`) } : {}),
      });
      // The buffer metric is read every 5 s of the app's clock: the test moves that clock on.
      let offset = 0;
      const logs: Logs = [];
      const { app, table } = await auditedApp(t, target, { now: () => Date.now() + offset }, { pool: appPool }, logs);
      const s1 = await login(app, 'ivy', { ua: 'mac' });
      await delivered(t, [app], 1);

      if (proxy) proxy.pause(); else await db.kill();
      const unreachable = () => (proxy ? proxy.paused : true);
      const s2 = await login(app, 'ivy', { ua: 'linux' });
      t.equal((await get(app, '/me', s2)).statusCode, 200, 'resolve (a new session)');
      t.equal((await get(app, '/me', s1)).statusCode, 200, 'resolve (an older one)');
      t.equal((await app.inject({ method: 'POST', url: '/logout', ...as(s1) })).statusCode, 204, 'sign-out');
      const s3 = await login(app, 'ivy', { ua: 'iphone' });
      const res = await app.inject({ method: 'POST', url: '/sessions/logout-everywhere', ...as(s3) });
      t.same([res.statusCode, res.json()], [200, { revoked: 2 }], 'logout-everywhere');
      t.equal((await get(app, '/me', s3)).statusCode, 401, 'and it took effect');
      t.ok(unreachable(), 'all of it answered while PostgreSQL was unreachable');

      await until('the sink to find PostgreSQL gone', () => metric(app, 'tiered_session_audit_sink_up') === 0);
      t.pass('tiered_session_audit_sink_up 0');
      offset += 6000;
      await until('the buffer depth metric to rise to 5', () => metric(app, 'tiered_session_audit_buffer_events') === 5);
      t.pass('tiered_session_audit_buffer_events: the 5 changes made meanwhile wait in the buffer');
      // (The test reads the table straight, not through the app's pool.)
      if (proxy) t.same([...(await readRows(pool, table)).keys()], [s1.id], 'nothing of it in the table yet');
      t.ok(unreachable());

      if (proxy) proxy.resume(); else await db.restart();
      await delivered(t, [app], 6, 'events in all');
      const rows = await readRows(pool, table);
      t.same([s1, s2, s3].map((s) => [rows.get(s.id)?.endReason]), [['sign-out'], ['everywhere'], ['everywhere']],
        'every row there, ended as it was');
      t.equal(rows.size, 3, 'and no other');
      offset += 6000;
      await until('the buffer metric back at 0', () => metric(app, 'tiered_session_audit_buffer_events') === 0 &&
        metric(app, 'tiered_session_audit_sink_up') === 1);
      const down = logs.filter((l) => /PostgreSQL unavailable/.test(l.msg));
      const up = logs.filter((l) => /PostgreSQL reachable again/.test(l.msg));
      t.same(down.map((l) => l.level), ['error'], 'one log line when it went away');
      t.same(up.map((l) => l.level), ['info'], 'one when it came back');
    });
  });
}

t.test('two instances consuming at once: every change lands once, no duplicate row, rotations not counted twice', async (t) => {
  await eachTarget(t, async (t, target) => {
    const schema = await db.freshSchema();
    const { a, b } = await twoInstances(t, target, { audit: auditOf(schema) });
    const users = Array.from({ length: 12 }, (_, i) => `user-${i}`);
    // Sign-ins on both at once, spread over many buckets.
    const sessions = (await Promise.all(users.flatMap((u, i) =>
      [login(a, u, { ua: 'mac' }), login(b, u, { ua: i % 2 ? 'linux' : 'android' })])));
    let events = sessions.length;
    const ends = new Map<string, string>();
    // Across instances: revoke on b what a made, rotate on a what b made, log out everywhere on a.
    await Promise.all(users.map(async (u, i) => {
      const [sa, sb] = [sessions[2 * i], sessions[2 * i + 1]];
      if (i % 3 === 0) {
        t.equal((await b.inject({ method: 'DELETE', url: `/sessions/${sa.id}`, ...as(sb) })).statusCode, 204);
        ends.set(sa.id, 'revoked');
        events++;
      } else if (i % 3 === 1) {
        let token = sb.token;
        for (let k = 0; k < 2; k++) {
          const r = await a.inject({ method: 'POST', url: '/rotate', cookies: { [COOKIE]: token } });
          token = tokenOf(r)!;
        }
        events += 2;
        t.equal((await b.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: token } })).statusCode, 204);
        ends.set(sb.id, 'sign-out');
        events++;
      } else {
        t.same((await a.inject({ method: 'POST', url: '/sessions/logout-everywhere', ...as(sa) })).json(), { revoked: 2 });
        ends.set(sa.id, 'everywhere').set(sb.id, 'everywhere');
        events += 2;
      }
    }));
    await delivered(t, [a, b], events, 'events between the two sinks');
    const rows = await readRows(pool, tableOf(schema));
    t.equal(rows.size, sessions.length, 'one row per session');
    const got = [...rows.values()].map((r) => [r.id, r.endReason, r.rotations]).sort();
    const want = sessions.map((s, k) => [s.id, ends.get(s.id) ?? null, k % 2 === 1 && Math.floor(k / 2) % 3 === 1 ? 2 : 0]).sort();
    t.same(got, want, 'each ended as it was, rotations counted once');
    t.equal(metric(a, 'tiered_session_audit_events_claimed_total') + metric(b, 'tiered_session_audit_events_claimed_total'), 0,
      'nothing had to be claimed');
  });
});

t.test('hostile user ids, User-Agents and forwarded addresses land as data: parameters only, the table intact', async (t) => {
  await eachTarget(t, async (t, target) => {
    const schema = await db.freshSchema();
    const table = tableOf(schema);
    // Behind a trusted proxy: X-Forwarded-For is what the framework takes for the address.
    const trusted = await makeApp(t, target.client(), { keyPrefix: target.prefix(), audit: auditOf(schema) }, { trustProxy: true });
    const hostile = [
      `o'brien`,
      `x'); DROP TABLE ${schema}.${TABLE}; --`,
      `"; DELETE FROM ${TABLE}; --`,
      `a;b\\'c`,
      `$1::text || pg_sleep(5)`,
      `ümlaut 😀 'quoted'`,
    ];
    const sessions: Login[] = [];
    for (const u of hostile) {
      const res = await trusted.inject({
        method: 'POST', url: '/login', payload: { user: u },
        headers: { 'user-agent': `${UA.linux} '); DROP TABLE ${TABLE}; --`, 'x-forwarded-for': `1.2.3.4'; DROP TABLE ${TABLE}; --` },
      });
      t.equal(res.statusCode, 200, `sign-in as ${JSON.stringify(u)}`);
      sessions.push({ user: u, id: res.json().id, token: tokenOf(res)! });
    }
    const evil = await trusted.inject({ method: 'POST', url: '/login', payload: { user: 'mallory' },
      headers: { 'user-agent': `x'); DROP TABLE ${TABLE}; --/1.0`, 'x-forwarded-for': 'fe80::1%eth0' } });
    t.equal(evil.statusCode, 200);
    await delivered(t, [trusted], hostile.length + 1);
    const rows = await readRows(pool, table);
    for (const s of sessions) {
      t.match(rows.get(s.id), { userId: s.user, device: DEVICE.linux, ip: null },
        `${JSON.stringify(s.user)}: stored as given; the forwarded junk is no address`);
      const h = (await get(trusted, '/sessions/history', s)).json().sessions as HistoryEntry[];
      t.same(h.map((x) => x.id), [s.id], 'and its history is its own session alone');
    }
    t.match(rows.get(evil.json().id), { userId: 'mallory', device: DEVICE.none, ip: 'fe80::1%eth0' });
    t.equal(rows.size, hostile.length + 1, 'the table is intact');
    t.same((await pool.query(`SELECT count(*)::int AS n FROM "${schema}"."${TABLE}"`)).rows, [{ n: hostile.length + 1 }]);
  });
});

t.test('a user id with NUL cannot borrow another user\'s history (PostgreSQL text cannot hold NUL)', async (t) => {
  await eachTarget(t, async (t, target) => {
    const { app, table } = await auditedApp(t, target);
    const plain = await login(app, 'nuluser');
    const res = await loginRes(app, 'nul\0user');
    t.equal(res.statusCode, 500, 'a sign-in as "nul\\0user" is refused while audit is on');
    t.equal(res.json().code, 'ERR_TIERED_SESSION_BAD_USER_ID');
    t.equal(tokenOf(res), undefined);
    await delivered(t, [app], 1);
    t.same([...(await readRows(pool, table)).values()].map((r) => r.userId), ['nuluser']);
    t.same((await get(app, '/sessions/history', plain)).json().sessions.map((s: HistoryEntry) => s.id), [plain.id]);
    t.same(await app.face.history('nul\0user'), [], 'history() of such an id is empty, not "nuluser"\'s');
  });
});

t.test('two registrations (two key prefixes) on one audit table: shop "1" does not get admin "1"\'s history, and the admin sweep does ' +
  'not end a live shop session', async (t) => {
  await eachTarget(t, async (t, target) => {
    // As the README's two registrations: one pool, the default table, two key prefixes. The
    // admin instance's clock runs 15 days ahead, so its sweep's cutoff is past the shop
    // session's recorded expiry (14 days idle) while that session is live in Redis.
    const schema = await db.freshSchema();
    let ahead = 0;
    const prefix = target.prefix();
    const admin = await makeApp(t, target.client(),
      { keyPrefix: `${prefix}admin:`, now: () => Date.now() + ahead, audit: auditOf(schema) });
    const shop = await makeApp(t, target.client(), { keyPrefix: `${prefix}shop:`, audit: auditOf(schema) });
    const a1 = await login(admin, '1', { ua: 'linux', ip: '198.51.100.7' });
    const gone = await login(admin, 'root', { ua: 'linux' });
    const s1 = await login(shop, '1', { ua: 'iphone' });
    await delivered(t, [admin, shop], 3);

    const h = await get(shop, '/sessions/history', s1);
    t.equal(h.statusCode, 200);
    t.same(h.json().sessions.map((x: HistoryEntry) => x.id), [s1.id], 'shop "1" sees its own session only');
    t.same((await shop.face.history('1')).map((r) => r.id), [s1.id], 'also through history()');
    t.same((await admin.face.history('1')).map((r) => r.id), [a1.id], 'and admin "1" its own');

    // The admin session "root" disappears from Redis (as an expiry would): the admin sweep
    // must record it, which shows the sweep ran past the shop session's recorded expiry.
    await (await inspector(target)).del(admin.sessions.store.sessionKey(gone.id));
    ahead = 15 * DAY;
    await until('the admin sweep recorded its own expired session', async () =>
      (await readRows(pool, tableOf(schema))).get(gone.id)?.endReason === 'expired');
    await sleep(500);
    t.equal((await get(shop, '/sessions/history', s1)).statusCode, 200, 'the shop session still answers');
    const rows = await readRows(pool, tableOf(schema));
    t.match(rows.get(s1.id), { endedAt: null, endReason: null }, 'and its row is not marked expired by the admin sweep');
    t.same((await shop.face.history('1')).map((r) => [r.id, r.endReason]), [[s1.id, null]]);
  });
});

t.test('a user id that is not well-formed UTF-16 cannot borrow its look-alike\'s history, as list() lends it none of its sessions',
  async (t) => {
  await eachTarget(t, async (t, target) => {
    const { app } = await auditedApp(t, target);
    const carol = await login(app, 'carol\ufffd');
    await delivered(t, [app], 1);
    t.same((await app.face.history('carol\ufffd')).map((r) => r.id), [carol.id], 'control: the look-alike has its history');
    for (const lone of ['carol\ud800', 'carol\udfff', '\udc00carol']) {
      t.same(await app.face.list(lone), [], `${JSON.stringify(lone)}: list() lends no session`);
      t.same(await app.face.history(lone), [], 'and history() no row');
    }
  });
});

t.test('the audit options are validated: a coded error naming the option', async (t) => {
  await eachTarget(t, async (t, target) => {
    const cases: [string, unknown][] = [
      ['audit', true],
      ['audit.pool', {}],
      ['audit.pool', { pool: { query: () => {} } }],
      ['audit.schema', { pool, schema: 'bad-name' }],
      ['audit.schema', { pool, schema: 'x"; DROP TABLE y; --' }],
      ['audit.schema', { pool, schema: 7 }],
      ['audit.table', { pool, table: 'a b' }],
      ['audit.table', { pool, table: 'x'.repeat(49) }],
      ['audit.tabel', { pool, tabel: 'x' }],
      ['audit.retentionDays', { pool, retentionDays: 0 }],
      ['audit.sweepInterval', { pool, sweepInterval: 50 }],
      ['audit.activityInterval', { pool, activityInterval: -1 }],
      ['audit.bufferEvents', { pool, bufferEvents: 10 }],
      ['audit.pollInterval', { pool, pollInterval: 1.5 }],
      ['audit.migrate', { pool, migrate: 'yes' }],
    ];
    for (const [option, audit] of cases) {
      const err = await makeApp(t, target.client(), { keyPrefix: target.prefix(), audit } as Options).then(() => undefined,
        (e: Error & { code?: string }) => e);
      t.equal(err?.code, 'ERR_TIERED_SESSION_INVALID_OPTION', `${JSON.stringify(audit, (_k, v) => (v === pool ? '<pool>' : v))}: refused`);
      t.match(err?.message, `Invalid option "${option}"`, `naming ${option}`);
    }
  }, { only: ['single'] });
});

t.test('an instance with audit.consume false only appends: its events wait in the buffer until an instance that consumes moves them to ' +
  'PostgreSQL', async (t) => {
  await eachTarget(t, async (t, target) => {
    const schema = await db.freshSchema();
    const keyPrefix = target.prefix();
    const appender = await makeApp(t, target.client(), { keyPrefix, audit: auditOf(schema, { consume: false }) });
    const s = await login(appender, 'worker-fed');
    await sleep(500);
    t.equal((await readRows(pool, { schema, table: TABLE })).size, 0, 'nothing reached PostgreSQL: nobody consumes yet');
    t.equal(metric(appender, 'tiered_session_audit_events_applied_total'), 0, 'the appending instance applied nothing');
    const worker = await makeApp(t, target.client(), { keyPrefix, audit: auditOf(schema) });
    await delivered(t, [worker], 1, 'event (the sign-in)');
    const rows = await readRows(pool, { schema, table: TABLE });
    t.ok(rows.has(s.id), 'the worker recorded the appending instance\'s sign-in');
    t.same((await get(appender, '/sessions/history', s)).json().sessions.map((x: { id: string }) => x.id), [s.id],
      'and the appending instance answers the history from PostgreSQL');
  }, { adapters: ['fastify', 'express5'] });
});
