// Faults, each on a private redis-server this file starts and may kill, pause or fill:
// Redis killed (503 fast, never 500, never anonymous), restarted (recovery without restarting
// the app; tokens lost with the data are refused once the app notices), paused (the plugin's own
// command timeout), out of memory (sign-in 503, sessions keep validating, revocation works), and
// a steady request loop while Redis is down (bounded memory, nothing queued).
import t from 'tap';
import type { Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Response as LightMyRequestResponse } from 'light-my-request';
import type { TestApp } from '../fixtures/targets.js';
import type { Redis } from 'ioredis';
import { makeApp, tokenOf, cacheTrusted, signIn, me, eachAdapter } from '../fixtures/targets.js';
import { RedisServer, sleep } from '../fixtures/redis.js';

const COOKIE = '__Host-sid';
const UNAVAILABLE = 'ERR_TIERED_SESSION_UNAVAILABLE';
/** "About 1.5 s" with room for a loaded 2-core machine. */
const FAST_MS = 2500;

/**
 * A private server, stopped at teardown. The fixture's kill() waits for an 'exit' that has
 * already happened when the server was killed before (a signalled child keeps exitCode null),
 * so stop() after kill() would hang: track whether it is alive and only stop a live one.
 */
interface Server { readonly s: RedisServer; kill(): Promise<void>; restart(): Promise<void> }

async function server(t: Test, args: string[] = []): Promise<Server> {
  const s = await RedisServer.start(args);
  let alive = true;
  t.teardown(async () => {
    // Cleanup of the fixture, not an assertion: a failure here is reported, never thrown.
    try {
      if (alive) await s.stop();
      else rmSync(s.dir, { recursive: true, force: true });
    } catch (err) {
      console.error('faults fixture: stopping redis-server failed:', err);
    }
  });
  return {
    s,
    async kill() { await s.kill(); alive = false; },
    async restart() { await s.restart(); alive = true; },
  };
}

function clientOf(t: Test, srv: Server, extra: object = {}): Redis {
  const c = srv.s.client(extra);
  t.teardown(() => c.disconnect());
  return c;
}

const freshPrefix = () => `t${randomBytes(4).toString('hex')}:`;

function randomToken(): string {
  return `${randomBytes(29).toString('base64url').slice(0, 38)}.${randomBytes(32).toString('base64url')}`;
}

function gcFn(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

async function timed(fn: () => Promise<LightMyRequestResponse>): Promise<[LightMyRequestResponse, number]> {
  const t0 = performance.now();
  const r = await fn();
  return [r, Math.round(performance.now() - t0)];
}

/** A 503 with the plugin's coded JSON body, answered quickly, revealing nothing. */
function isUnavailable(t: Test, r: LightMyRequestResponse, ms: number, what: string, limit = FAST_MS, token?: string): void {
  t.equal(r.statusCode, 503, `${what}: 503 (got ${r.statusCode})`);
  let body: Record<string, unknown> = {};
  try { body = r.json(); } catch { /* asserted below */ }
  t.match(body, { statusCode: 503, code: UNAVAILABLE, error: 'Service Unavailable' }, `${what}: JSON body with the unavailable code`);
  t.notMatch(String(body.message), /redis|ECONN|timed out|status/i, `${what}: a generic message (${String(body.message)})`);
  if (token) t.notOk(r.body.includes(token.slice(39)), `${what}: the body does not echo the secret`);
  t.ok(ms < limit, `${what}: answered in ${ms} ms (< ${limit})`);
}

/** Poll `fn` every `every` ms until it returns true or `ms` pass; returns whether it did. */
async function until(fn: () => Promise<boolean> | boolean, ms = 10_000, every = 100): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return true;
    if (Date.now() > end) return false;
    await sleep(every);
  }
}

/**
 * After a restart, wait until every app trusts its revocation channel again, before the test
 * ends. A subscriber that reconnects is re-subscribed by ioredis itself, with no handler on that
 * SUBSCRIBE; a teardown that closes the subscriber and kills the server while it is unanswered
 * (a loaded machine) rejects it unhandled, and tap reports "error thrown in teardown" on a test
 * whose assertions all passed. Once the channel is confirmed, nothing is in flight on it.
 */
async function channelsBack(t: Test, apps: TestApp[]): Promise<void> {
  for (const [i, app] of apps.entries()) {
    t.ok(await until(() => app.sessions.cacheTrusted), `app ${i + 1} trusts its revocation channel again after the restart`);
  }
}

/** Every key under `prefix` has a positive TTL (and there is at least `min` of them). */
async function everyKeyExpires(t: Test, srv: Server, prefix: string, min = 1): Promise<void> {
  const admin = srv.s.admin();
  try {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    t.ok(keys.length >= min, `${keys.length} keys under the prefix (at least ${min})`);
    const noTtl: string[] = [];
    for (const k of keys) if (!((await admin.pttl(k)) > 0)) noTtl.push(k);
    t.same(noTtl, [], 'every key under the prefix has a TTL (PTTL > 0)');
  } finally {
    admin.disconnect();
  }
}

t.test('with Redis killed, a token not in the local cache and every sign-in answer 503 quickly: never 500, never anonymous', (t) =>
  eachAdapter(t, async (t) => {
  const s = await server(t);
  const keyPrefix = freshPrefix();
  const uncached = await makeApp(t, clientOf(t, s), { keyPrefix, localCache: false });
  const cached = await makeApp(t, clientOf(t, s), { keyPrefix });
  await cacheTrusted(cached);
  const a = await signIn(uncached, 'ua');
  const b = await signIn(cached, 'ub');
  t.equal((await me(uncached, a.token)).statusCode, 200);
  t.equal((await me(cached, b.token)).statusCode, 200);
  t.ok(cached.sessions.stats().l1Size >= 1, 'the cached app holds a session in its local cache');

  await s.kill();
  t.ok(await until(() => cached.sessions.stats().l1Size === 0, 3000, 10),
    'the cached app clears its local cache once its subscriber connection drops');

  const requests: [string, TestApp, () => Promise<LightMyRequestResponse>, string | undefined][] = [
    ['localCache:false app, GET /me', uncached, () => me(uncached, a.token), a.token],
    ['default app, GET /me with a token its cache held before', cached, () => me(cached, b.token), b.token],
    ['default app, GET /me with a token it never cached', cached, () => me(cached, a.token), a.token],
    ['default app, GET /me with an unknown well-formed token', cached, () => me(cached, randomToken()), undefined],
    ['localCache:false app, GET /sessions', uncached, () => uncached.inject({ url: '/sessions', cookies: { [COOKIE]: a.token } }), a.token],
    ['localCache:false app, sign-in', uncached, () => uncached.inject({ method: 'POST', url: '/login', payload: { user: 'ua' } }),
      undefined],
    ['default app, sign-in', cached, () => cached.inject({ method: 'POST', url: '/login', payload: { user: 'ub' } }), undefined],
  ];
  // Three rounds over about a second: the client goes from "closed" to "reconnecting" and back.
  for (let round = 1; round <= 3; round++) {
    for (const [what, , fn, token] of requests) {
      const [r, ms] = await timed(fn);
      isUnavailable(t, r, ms, `round ${round}, ${what}`, FAST_MS, token);
      t.notOk(r.headers['set-cookie'] && tokenOf(r), `round ${round}, ${what}: no session cookie is set`);
    }
    await sleep(400);
  }
  for (const app of [uncached, cached]) {
    const r = await app.inject({ url: '/public' });
    t.same([r.statusCode, r.json()], [200, { signedIn: false }], 'a public route without a cookie needs no Redis and still answers 200');
  }
}));

t.test('after Redis restarts on the same port, the same app serves again, and tokens lost with the empty Redis are refused once it notices',
  (t) => eachAdapter(t, async (t) => {
  const s = await server(t);
  const keyPrefix = freshPrefix();
  const uncached = await makeApp(t, clientOf(t, s), { keyPrefix, localCache: false });
  // A long local-cache ttl: only the reconnect (not expiry) can drop the entry within the test.
  const cached = await makeApp(t, clientOf(t, s), { keyPrefix, localCache: { ttl: 120_000 } });
  await cacheTrusted(cached);
  const a = await signIn(uncached, 'ua');
  const b = await signIn(cached, 'ub');
  const hits = cached.sessions.stats().l1Hits;
  t.equal((await me(cached, b.token)).statusCode, 200);
  t.equal(cached.sessions.stats().l1Hits, hits + 1, 'the cached app serves its token from the local cache');

  await s.kill();
  await s.restart(); // empty: no persistence

  const seen = new Set<number>();
  t.ok(await until(async () => {
    const r = await uncached.inject({ method: 'POST', url: '/login', payload: { user: 'ua' } });
    seen.add(r.statusCode);
    return r.statusCode === 200;
  }), 'the localCache:false app signs in again within 10 s');
  t.ok(await until(async () => {
    const r = await cached.inject({ method: 'POST', url: '/login', payload: { user: 'ub' } });
    seen.add(r.statusCode);
    return r.statusCode === 200;
  }), 'the default app signs in again within 10 s');
  t.ok([...seen].every((c) => c === 200 || c === 503), `while recovering only 503 or 200 were seen (${[...seen].join(', ')})`);
  t.ok(await until(() => cached.sessions.cacheTrusted), 'the default app trusts its revocation channel again');

  const na = await signIn(uncached, 'ua');
  const nb = await signIn(cached, 'ub');
  t.equal((await me(uncached, na.token)).statusCode, 200, 'a new session works on the localCache:false app');
  t.equal((await me(cached, nb.token)).statusCode, 200, 'a new session works on the default app');
  const h = cached.sessions.stats().l1Hits;
  t.equal((await me(cached, nb.token)).statusCode, 200);
  t.equal(cached.sessions.stats().l1Hits, h + 1, 'and its local cache serves again');

  // The restarted Redis is empty: the old tokens must be refused, including the one that was cached.
  const old: string[] = [];
  t.ok(await until(async () => {
    const r1 = await me(cached, b.token);
    const r2 = await me(uncached, a.token);
    const r3 = await me(cached, a.token);
    old.push(`${r1.statusCode}/${r2.statusCode}/${r3.statusCode}`);
    return r1.statusCode === 401 && r2.statusCode === 401 && r3.statusCode === 401;
  }), `tokens lost in the restart answer 401 on both apps (seen: ${[...new Set(old)].join(' ')})`);
  t.notOk(old.some((o) => o.includes('500')), 'never a 500');
  await everyKeyExpires(t, s, keyPrefix);
}));

t.test('a restart the app barely sees (kill and immediate restart) still drops the local cache: the old token is refused', (t) =>
  eachAdapter(t, async (t) => {
  const s = await server(t);
  const keyPrefix = freshPrefix();
  const cached = await makeApp(t, clientOf(t, s), { keyPrefix, localCache: { ttl: 120_000 } });
  await cacheTrusted(cached);
  const b = await signIn(cached, 'quick');
  t.equal((await me(cached, b.token)).statusCode, 200);
  await s.kill();
  await s.restart();
  const statuses: number[] = [];
  t.ok(await until(async () => {
    const r = await me(cached, b.token);
    statuses.push(r.statusCode);
    return r.statusCode === 401;
  }), `the token is refused within 10 s (seen: ${[...new Set(statuses)].join(', ')})`);
  t.notOk(statuses.includes(500), 'never a 500');
  t.ok(await until(() => cached.sessions.cacheTrusted), 'the channel is trusted again');
  await signIn(cached, 'quick');
  await everyKeyExpires(t, s, keyPrefix);
}));

t.test('with Redis paused (SIGSTOP) and a client without its own timeout, a lookup answers 503 within the plugin\'s commandTimeout, and ' +
  'serves again after SIGCONT', (t) => eachAdapter(t, async (t) => {
  const s = await server(t);
  const admin = s.s.admin();
  const pid = Number(/process_id:(\d+)/.exec(await admin.info('server'))![1]);
  admin.disconnect();
  let paused = false;
  t.teardown(() => { if (paused) process.kill(pid, 'SIGCONT'); });
  const keyPrefix = freshPrefix();
  // commandTimeout: undefined removes the fixture's client-side timeout: only the plugin bounds a call.
  const app = await makeApp(t, clientOf(t, s, { commandTimeout: undefined }), { keyPrefix, localCache: false, commandTimeout: 500 });
  const { token } = await signIn(app, 'paused');
  t.equal((await me(app, token)).statusCode, 200);

  process.kill(pid, 'SIGSTOP');
  paused = true;
  for (const [what, fn] of [
    ['GET /me', () => me(app, token)],
    ['sign-in', () => app.inject({ method: 'POST', url: '/login', payload: { user: 'paused' } })],
    ['GET /me again', () => me(app, token)],
  ] as const) {
    const [r, ms] = await timed(fn);
    isUnavailable(t, r, ms, `${what} while paused`, 500 + 1000, token);
    t.ok(ms >= 400, `${what}: it waited for the command timeout (${ms} ms), the client being connected`);
  }
  process.kill(pid, 'SIGCONT');
  paused = false;
  t.ok(await until(async () => (await me(app, token)).statusCode === 200), 'the same session validates again after SIGCONT');
  t.equal((await app.inject({ method: 'POST', url: '/login', payload: { user: 'paused' } })).statusCode, 200, 'and sign-in works');
  await everyKeyExpires(t, s, keyPrefix);
}));

/**
 * Write filler keys (outside any test prefix) until Redis refuses a write with OOM, then push it
 * a margin past the limit with an allow-oom script, so that the few hundred bytes a revocation
 * frees (or a transient client buffer) cannot bring it back under: the OOM state stays certain.
 */
async function fillToOom(admin: Redis): Promise<number> {
  let written = 0;
  for (const size of [16 * 1024, 512]) {
    const value = 'f'.repeat(size);
    for (;;) {
      try {
        await admin.set(`filler:${randomBytes(6).toString('hex')}`, value);
        if (++written > 100_000) throw new Error('Redis never ran out of memory');
      } catch (err) {
        if (/OOM/.test(String((err as Error).message))) break;
        throw err;
      }
    }
  }
  await admin.eval("#!lua flags=allow-oom\nreturn redis.call('SET', KEYS[1], ARGV[1])", 1, 'filler:margin', 'm'.repeat(256 * 1024));
  return written;
}

/** Redis refuses a plain write with OOM right now. */
async function stillOom(t: Test, admin: Redis, when: string): Promise<void> {
  await t.rejects(admin.set('probe', 'x'), { message: /OOM/ }, `Redis is out of memory ${when}`);
}

t.test('with Redis out of memory (noeviction): sign-in answers 503, existing sessions keep validating, revoke and revokeAll work', (t) =>
  eachAdapter(t, async (t) => {
  const s = await server(t, ['--maxmemory', '2mb']);
  const keyPrefix = freshPrefix();
  // touchInterval 0: every request also tries a last-active write, which OOM refuses.
  const cached = await makeApp(t, clientOf(t, s), { keyPrefix, touchInterval: 0 });
  const uncached = await makeApp(t, clientOf(t, s), { keyPrefix, localCache: false, touchInterval: 0 });
  await cacheTrusted(cached);
  const s1 = await signIn(cached, 'u1');
  const s2 = await signIn(cached, 'u1');
  const s3 = await signIn(cached, 'u2');
  const s4 = await signIn(uncached, 'u3');
  const s5 = await signIn(uncached, 'u3');
  const admin = s.s.admin();
  t.teardown(() => admin.disconnect());

  const written = await fillToOom(admin);
  t.ok(written > 0, `${written} filler keys written before Redis refused with OOM`);
  await stillOom(t, admin, 'before the sign-ins');
  const keysBefore = (await admin.scan('0', 'MATCH', `${keyPrefix}*`, 'COUNT', 10_000))[1].length;

  for (const [what, app] of [['default app', cached], ['localCache:false app', uncached]] as const) {
    const [r, ms] = await timed(() => app.inject({ method: 'POST', url: '/login', payload: { user: 'newcomer' } }));
    isUnavailable(t, r, ms, `${what}: sign-in under OOM`);
    t.equal(tokenOf(r), undefined, `${what}: no cookie is set`);
  }
  t.equal((await admin.scan('0', 'MATCH', `${keyPrefix}*`, 'COUNT', 10_000))[1].length, keysBefore,
    'the refused sign-ins left no key behind');

  for (const [what, app, sess] of [
    ['default app, cached session', cached, s1],
    ['localCache:false app, session made by the other app', uncached, s1],
    ['localCache:false app, its own session', uncached, s4],
  ] as const) {
    for (let i = 0; i < 3; i++) {
      const r = await me(app, sess.token);
      t.equal(r.statusCode, 200, `${what}: /me is 200 under OOM (try ${i + 1})`);
    }
  }
  cached.sessions.invalidate([s3.id]);
  t.equal((await me(cached, s3.token)).statusCode, 200, 'default app, after dropping the entry from its cache: read from Redis, 200');
  await cached.sessions.flushTouches();
  await uncached.sessions.flushTouches();

  await stillOom(t, admin, 'before the sign-out');
  const out = await cached.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: s2.token } });
  t.equal(out.statusCode, 204, 'sign-out (revoke) under OOM: 204');
  t.equal((await me(cached, s2.token)).statusCode, 401, 'the revoked token is refused on the app that revoked it');
  t.equal((await me(uncached, s2.token)).statusCode, 401, 'and on the other app');

  await stillOom(t, admin, 'before revokeAll');
  t.equal(await cached.sessions.revokeAll('u1'), 1, 'app.sessions.revokeAll() under OOM revokes the remaining session of u1');
  t.equal((await me(cached, s1.token)).statusCode, 401, 'u1 is signed out on the default app');
  t.equal((await me(uncached, s1.token)).statusCode, 401, 'and on the localCache:false app');

  await stillOom(t, admin, 'before log-out-everywhere');
  const everywhere = await uncached.inject({ method: 'POST', url: '/sessions/logout-everywhere', cookies: { [COOKIE]: s4.token } });
  t.equal(everywhere.statusCode, 200, 'POST /sessions/logout-everywhere under OOM: 200');
  t.same(everywhere.json(), { revoked: 2 });
  t.equal((await me(uncached, s5.token)).statusCode, 401, 'u3\'s other device is signed out');
  t.equal((await me(cached, s3.token)).statusCode, 200, 'u2 was not touched');

  await stillOom(t, admin, 'at the end');
  await everyKeyExpires(t, s, keyPrefix);

  // Free the memory: sign-in works again without restarting anything.
  let cursor = '0';
  do {
    const [next, batch] = await admin.scan(cursor, 'MATCH', 'filler:*', 'COUNT', 1000);
    cursor = next;
    if (batch.length) await admin.del(...batch);
  } while (cursor !== '0');
  t.equal((await cached.inject({ method: 'POST', url: '/login', payload: { user: 'newcomer' } })).statusCode, 200,
    'once memory is freed, sign-in works again');
  await everyKeyExpires(t, s, keyPrefix);
}));

t.test('while Redis is down for several seconds under a steady request loop, memory stays bounded and nothing is queued', (t) =>
  eachAdapter(t, async (t) => {
  const s = await server(t);
  const keyPrefix = freshPrefix();
  const fast = clientOf(t, s);
  // ioredis defaults: offline queue on, 20 retries per request, no command timeout.
  const lenient = clientOf(t, s, { enableOfflineQueue: true, maxRetriesPerRequest: 20, commandTimeout: undefined });
  const apps = [await makeApp(t, fast, { keyPrefix }), await makeApp(t, lenient, { keyPrefix })];
  for (const app of apps) await cacheTrusted(app);
  const tokens = [(await signIn(apps[0], 'm0')).token, (await signIn(apps[1], 'm1')).token];
  const gc = gcFn();

  await s.kill();
  await sleep(300);
  const statuses = new Map<number, number>();
  let slowest = 0;
  let stop = false;
  const loop = async (app: TestApp, k: number) => {
    while (!stop) {
      const [r, ms] = await timed(() => (k % 3 === 0
        ? me(app, tokens[k % 2])
        : k % 3 === 1 ? me(app, randomToken()) : app.inject({ method: 'POST', url: '/login', payload: { user: `m${k}` } })));
      statuses.set(r.statusCode, (statuses.get(r.statusCode) ?? 0) + 1);
      slowest = Math.max(slowest, ms);
      k++;
      await new Promise((r) => setImmediate(r));
    }
  };
  // A short warm-up, then measure over about four seconds.
  let loops = apps.flatMap((app, i) => [loop(app, i), loop(app, i + 1), loop(app, i + 2)]);
  await sleep(500);
  stop = true;
  await Promise.all(loops);
  gc();
  const heapBefore = process.memoryUsage().heapUsed;
  statuses.clear();
  stop = false;
  loops = apps.flatMap((app, i) => [loop(app, i), loop(app, i + 1), loop(app, i + 2)]);
  await sleep(4000);
  stop = true;
  await Promise.all(loops);
  gc();
  const grew = process.memoryUsage().heapUsed - heapBefore;
  const total = [...statuses.values()].reduce((x, y) => x + y, 0);

  t.ok(total > 500, `${total} requests ran while Redis was down`);
  t.same(Object.fromEntries(statuses), { 503: total }, 'every one answered 503');
  t.ok(slowest < FAST_MS, `the slowest took ${slowest} ms`);
  t.ok(grew < 10 * 1024 * 1024, `heapUsed grew by ${(grew / 1048576).toFixed(1)} MB over the loop (< 10 MB)`);
  for (const [what, c] of [['fail-fast client', fast], ['client with ioredis defaults', lenient]] as const) {
    const queues = c as unknown as { offlineQueue: { length: number }; commandQueue: { length: number } };
    t.equal(queues.offlineQueue.length, 0, `${what}: nothing waits in the offline queue`);
    t.equal(queues.commandQueue.length, 0, `${what}: nothing waits for a reply`);
  }

  await s.restart();
  for (const [i, app] of apps.entries()) {
    t.ok(await until(async () => (await app.inject({ method: 'POST', url: '/login', payload: { user: `after${i}` } })).statusCode === 200),
      `app ${i + 1} signs in again after the restart`);
  }
  await channelsBack(t, apps);
  await everyKeyExpires(t, s, keyPrefix);
}));

t.test('Redis killed under load on two instances: every answer is 200, 401 or a fast 503 (never a 500, never anonymous), and both ' +
  'recover after the restart', (t) => eachAdapter(t, async (t) => {
  const s = await server(t);
  const keyPrefix = freshPrefix();
  const a = await makeApp(t, clientOf(t, s), { keyPrefix, localCache: { ttl: 2000 } });
  const b = await makeApp(t, clientOf(t, s), { keyPrefix, localCache: { ttl: 2000 } });
  await cacheTrusted(a);
  await cacheTrusted(b);
  const sessions: { token: string; id: string }[] = [];
  for (let i = 0; i < 20; i++) sessions.push(await signIn(i % 2 ? a : b, `load-${i}`));

  let phase: 'up' | 'down' | 'back' = 'up';
  let stop = false;
  const seen = { up: new Map<number, number>(), down: new Map<number, number>(), back: new Map<number, number>() };
  const bad: string[] = [];
  const loop = async (app: TestApp, seed: number) => {
    let i = seed;
    while (!stop) {
      const { token } = sessions[(i = (i + 7) % sessions.length)];
      const p = phase;
      const [r, ms] = await timed(() => me(app, token));
      seen[p].set(r.statusCode, (seen[p].get(r.statusCode) ?? 0) + 1);
      // Until the restart the token is valid: a 401 would mean it was taken for no session.
      if (r.statusCode === 401 && p !== 'back') bad.push(`${p}: a valid token answered as anonymous`);
      if (r.statusCode >= 500 && r.statusCode !== 503) bad.push(`${p}: ${r.statusCode}`);
      if (r.statusCode === 503 && ms >= FAST_MS) bad.push(`${p}: a 503 took ${ms} ms`);
      // inject() on an L1 hit never leaves the microtask queue: let I/O run.
      await new Promise((res) => setImmediate(res));
    }
  };
  const loops = [loop(a, 1), loop(b, 2), loop(a, 3), loop(b, 4)];
  await sleep(300);
  phase = 'down';
  await s.kill();
  await sleep(2500);
  // Switch before the restart: the app's client may reconnect before restart() returns.
  phase = 'back';
  await s.restart();
  // The restarted Redis is empty: the old tokens are gone; new sign-ins must work on both.
  t.ok(await until(async () => (await a.inject({ method: 'POST', url: '/login', payload: { user: 'after-a' } })).statusCode === 200,
    10_000),
    'instance A signs in again after the restart');
  t.ok(await until(async () => (await b.inject({ method: 'POST', url: '/login', payload: { user: 'after-b' } })).statusCode === 200,
    10_000),
    'instance B signs in again after the restart');
  await sleep(500);
  stop = true;
  await Promise.all(loops);
  await channelsBack(t, [a, b]);

  t.same(bad, [], 'no 500, no slow 503, no valid token answered as anonymous');
  t.ok((seen.up.get(200) ?? 0) > 0, `requests were served before the kill (${JSON.stringify([...seen.up])})`);
  t.ok((seen.down.get(503) ?? 0) > 0, `requests answered 503 while Redis was down (${JSON.stringify([...seen.down])})`);
  t.same([...seen.down.keys()].filter((c) => c !== 200 && c !== 503), [], 'while down: only L1 hits (200) and 503');
  t.same([...seen.back.keys()].filter((c) => c !== 200 && c !== 401 && c !== 503), [],
    'after the restart: 200, 401 (data lost) or 503 until reconnected');
  t.ok((seen.back.get(401) ?? 0) > 0, `after the restart the tokens lost with the data are refused (${JSON.stringify([...seen.back])})`);
}));
