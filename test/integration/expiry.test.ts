// Idle and absolute expiry (docs/design.md: Expiry) (on L1 hits and in Redis), sliding, throttled touches,
// and what an L1 hit costs in Redis commands (nothing).
import t from 'tap';
import type { Redis } from 'ioredis';
import { eachTarget, makeApp, cacheTrusted, type Target, me, signIn, inspector, assertAllKeysExpire,
  storedExpiry } from '../fixtures/targets.js';
import { ready, sleep } from '../fixtures/redis.js';

const IDLE = 60_000;

/** Calls per command, summed over masters, read through the given admin connections. */
async function commandStats(admins: Redis[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const a of admins) {
    for (const m of (await a.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
      out.set(m[1], (out.get(m[1]) ?? 0) + Number(m[2]));
    }
  }
  return out;
}

function diff(before: Map<string, number>, after: Map<string, number>, ignore: string[]): Record<string, number> {
  const d: Record<string, number> = {};
  for (const [k, v] of after) {
    if (ignore.includes(k)) continue;
    const n = v - (before.get(k) ?? 0);
    if (n !== 0) d[k] = n;
  }
  return d;
}

/** Script calls (a touch is one script call per session). */
const scriptCalls = async (target: Target) => (await target.commandCalls('evalsha')) + (await target.commandCalls('eval'));

t.test('a session unused for idleTimeout is refused with 401 even while it sits in the local cache, and one used just before is not',
  async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    const T0 = Date.now();
    let clock = T0;
    const opts = { keyPrefix: prefix, now: () => clock, idleTimeout: IDLE, absoluteTimeout: 600_000, touchInterval: 10_000 };
    const app = await makeApp(t, target.client(), opts);
    await cacheTrusted(app);
    const noL1 = await makeApp(t, target.client(), { ...opts, localCache: false });
    const insp = await inspector(target);
    const idle = await signIn(app, 'wes');
    const early = await signIn(app, 'wes');
    const used = await signIn(app, 'wes');
    const reads = await target.commandCalls('hgetall');
    for (const s of [idle, early, used]) t.equal((await me(app, s.token)).statusCode, 200);
    t.equal(await target.commandCalls('hgetall'), reads, 'the three sessions are L1 hits');

    clock = T0 + IDLE - 1;
    t.equal((await me(app, early.token)).statusCode, 200, '1 ms before the idle deadline: still valid');
    clock = T0 + 30_000;
    t.equal((await me(app, used.token)).statusCode, 200, 'used after 30 s');
    await app.sessions.flushTouches();

    clock = T0 + IDLE;
    const hitsBefore = app.sessions.stats().l1Hits;
    t.equal((await me(app, idle.token)).statusCode, 401, 'idle for idleTimeout: refused although cached');
    t.equal(app.sessions.stats().l1Hits, hitsBefore, 'the expired entry was not served as a hit');
    t.equal((await me(noL1, idle.token)).statusCode, 401, 'refused by Redis too');
    // Any request would slide it again, so read its deadline instead.
    t.equal(await storedExpiry(app, insp, used.id), T0 + 30_000 + IDLE, 'the session used at +30 s lives on');
    clock = T0 + 30_000 + IDLE;
    t.equal((await me(app, used.token)).statusCode, 401, 'until idleTimeout after its last use');
    t.equal((await me(noL1, used.token)).statusCode, 401);
    await assertAllKeysExpire(t, target, prefix);
  });
});

t.test('requests every less than idleTimeout keep a session alive, but never beyond absoluteTimeout', async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    const T0 = Date.now();
    let clock = T0;
    const absolute = 180_000;
    const opts = { keyPrefix: prefix, now: () => clock, idleTimeout: IDLE, absoluteTimeout: absolute, touchInterval: 10_000 };
    const app = await makeApp(t, target.client(), opts);
    await cacheTrusted(app);
    const insp = await inspector(target);
    const s = await signIn(app, 'xena');
    for (const at of [45_000, 90_000, 135_000, 170_000]) {
      clock = T0 + at;
      t.equal((await me(app, s.token)).statusCode, 200, `alive at +${at / 1000}s`);
      await app.sessions.flushTouches();
    }
    t.equal(await storedExpiry(app, insp, s.id), T0 + absolute, 'Redis expiry slid up to the absolute deadline');
    // A new instance (no L1) at +179.999 s: sliding reached Redis, so the session is still there.
    const fresh = await makeApp(t, target.client(), { ...opts, localCache: false });
    clock = T0 + absolute - 1;
    t.equal((await me(fresh, s.token)).statusCode, 200, 'alive 1 ms before the absolute deadline (Redis)');
    t.equal((await me(app, s.token)).statusCode, 200, 'alive 1 ms before the absolute deadline (L1)');
    clock = T0 + absolute;
    t.equal((await me(app, s.token)).statusCode, 401, 'refused at the absolute deadline (L1)');
    t.equal((await me(fresh, s.token)).statusCode, 401, 'refused at the absolute deadline (Redis)');
    await assertAllKeysExpire(t, target, prefix);
  });
});

t.test('a session used regularly for far longer than idleTimeout stays alive, then expires idleTimeout after its last request',
  async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    const T0 = Date.now();
    let clock = T0;
    const opts = { keyPrefix: prefix, now: () => clock, idleTimeout: IDLE, absoluteTimeout: 3600_000, touchInterval: 10_000 };
    const app = await makeApp(t, target.client(), opts);
    await cacheTrusted(app);
    const noL1 = await makeApp(t, target.client(), { ...opts, localCache: false });
    const insp = await inspector(target);
    const s = await signIn(app, 'yuri');
    let last = T0;
    for (let i = 1; i <= 10; i++) {
      clock = last = T0 + i * 50_000;
      t.equal((await me(app, s.token)).statusCode, 200, `alive at +${i * 50}s`);
    }
    await app.sessions.flushTouches();
    t.equal(await storedExpiry(app, insp, s.id), last + IDLE, 'Redis expiry = last request + idleTimeout');
    clock = last + IDLE;
    t.equal((await me(app, s.token)).statusCode, 401, 'refused idleTimeout after the last request (L1)');
    t.equal((await me(noL1, s.token)).statusCode, 401, 'refused idleTimeout after the last request (Redis)');
  });
});

t.test('Redis itself drops idle and absolutely expired sessions on the real clock, and an active one slides until its absolute deadline',
  async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    const opts = { keyPrefix: prefix, idleTimeout: 1000, absoluteTimeout: 1800, touchInterval: 100 };
    const app = await makeApp(t, target.client(), opts);
    await cacheTrusted(app);
    const noL1 = await makeApp(t, target.client(), { ...opts, localCache: false });
    const insp = await inspector(target);
    const start = Date.now();
    const active = await signIn(app, 'zoe');
    // The session's absolute deadline is its creation + 1800 ms: between start + 1800 and this + 1800.
    const created = Date.now();
    const idle = await signIn(app, 'zoe');
    const activeKey = app.sessions.store.sessionKey(active.id);
    const idleKey = app.sessions.store.sessionKey(idle.id);
    // Requests every 350 ms (well inside the 1000 ms idle window).
    let touchLag = 0;
    for (const at of [350, 700, 1050, 1400]) {
      await sleep(start + at - Date.now());
      const asked = Date.now();
      t.equal((await me(app, active.token)).statusCode, 200, `active session alive at ~${at} ms`);
      await app.sessions.flushTouches();
      touchLag = Date.now() - asked;
    }
    t.equal(await insp.exists(idleKey), 0, 'the idle session\'s key is gone from Redis');
    t.equal((await me(app, idle.token)).statusCode, 401, 'and it is refused');
    t.equal((await me(noL1, idle.token)).statusCode, 401);
    t.equal(await insp.exists(activeKey), 1, 'the active session\'s key is still there');
    t.equal((await me(noL1, active.token)).statusCode, 200, 'and it works from Redis');
    const asked = Date.now();
    const pttl = await insp.pttl(activeKey);
    // The sliding idle window would leave ~1000 ms here; the absolute deadline leaves at most
    // this. A touch sets a relative TTL (no trust in Redis's clock), computed at the request's
    // time, so the key's deadline lands later by the time the touch took to reach Redis (at most
    // the last request plus its flush), and the clocks count whole milliseconds.
    const most = created + 1800 - asked + touchLag + 2;
    t.ok(pttl > 0 && pttl <= most, `its TTL (${pttl} ms) ends at the absolute deadline (at most ${most} ms away)`);
    await sleep(created + 1800 + 200 - Date.now());
    t.equal(await insp.exists(activeKey), 0, 'past the absolute deadline the key is gone');
    t.equal((await me(app, active.token)).statusCode, 401, 'and the session is refused');
    t.equal((await me(noL1, active.token)).statusCode, 401);
    t.same((await target.keys(prefix)).filter((k) => !k.endsWith('}u')), [], 'no session key left');
  });
});

t.test('many requests inside one touchInterval write last-active exactly once, and the next interval writes it once more', async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    const T0 = Date.now();
    let clock = T0;
    const app = await makeApp(t, target.client(), { keyPrefix: prefix, now: () => clock, idleTimeout: IDLE, touchInterval: 10_000 });
    await cacheTrusted(app);
    const insp = await inspector(target);
    const s = await signIn(app, 'abe');
    const key = app.sessions.store.sessionKey(s.id);
    t.equal((await me(app, s.token)).statusCode, 200);
    await app.sessions.flushTouches();

    let before = await scriptCalls(target);
    for (let i = 0; i < 9; i++) {
      clock = T0 + i * 1000;
      t.equal((await me(app, s.token)).statusCode, 200);
    }
    await app.sessions.flushTouches();
    t.equal((await scriptCalls(target)) - before, 0, 'no touch inside the first interval after sign-in');
    t.equal(Number(await insp.hget(key, 'a')), T0, 'last-active is the sign-in time');

    before = await scriptCalls(target);
    for (let i = 0; i < 30; i++) {
      clock = T0 + 10_000 + i * 300;
      t.equal((await me(app, s.token)).statusCode, 200);
    }
    await app.sessions.flushTouches();
    t.equal((await scriptCalls(target)) - before, 1, 'thirty requests in one interval: exactly one touch');
    t.equal(Number(await insp.hget(key, 'a')), T0 + 10_000, 'last-active = the first request of the interval');

    before = await scriptCalls(target);
    clock = T0 + 20_000;
    t.equal((await me(app, s.token)).statusCode, 200);
    clock = T0 + 20_500;
    t.equal((await me(app, s.token)).statusCode, 200);
    await app.sessions.flushTouches();
    t.equal((await scriptCalls(target)) - before, 1, 'the next interval: one more touch');
    t.equal(Number(await insp.hget(key, 'a')), T0 + 20_000, 'last-active moved to the next interval');
  });
});

t.test('an L1 hit issues no Redis command at all', async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    const clock = Date.now();
    // A slow heartbeat and a still clock: nothing in the background may write during the count.
    const app = await makeApp(t, target.client(), { keyPrefix: prefix, now: () => clock, heartbeatInterval: 60_000 });
    await cacheTrusted(app);
    const s = await signIn(app, 'bea');
    t.equal((await me(app, s.token)).statusCode, 200);
    await app.sessions.flushTouches();
    const admins = target.admins();
    await Promise.all(admins.map((a) => ready(a)));
    const reads = await target.commandCalls('hgetall');
    const scripts = await scriptCalls(target);
    const before = await commandStats(admins);
    let ok = 0;
    for (let i = 0; i < 50; i++) if ((await me(app, s.token)).statusCode === 200) ok++;
    await app.sessions.flushTouches();
    const after = await commandStats(admins);
    t.equal(ok, 50, 'fifty requests served');
    // INFO is our own measurement; CLUSTER is ioredis's slot refresh on the Cluster target.
    t.same(diff(before, after, ['info', 'cluster']), {}, 'no command besides our INFO reached Redis');
    t.equal(await target.commandCalls('hgetall'), reads, 'no HGETALL');
    t.equal(await scriptCalls(target), scripts, 'no script');
  });
});

t.test('with localCache false every request reads Redis', async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    const clock = Date.now();
    const app = await makeApp(t, target.client(), { keyPrefix: prefix, now: () => clock, localCache: false });
    const s = await signIn(app, 'cal');
    const reads = await target.commandCalls('hgetall');
    const N = 25;
    for (let i = 0; i < N; i++) t.equal((await me(app, s.token)).statusCode, 200);
    t.equal((await target.commandCalls('hgetall')) - reads, N, `${N} requests, ${N} HGETALLs`);
    t.equal(app.sessions.stats().l1Hits, 0, 'no L1 hit');
  });
});

t.test('an L1 entry lives at most localCache.ttl before Redis is read again', async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    const app = await makeApp(t, target.client(), { keyPrefix: prefix, localCache: { ttl: 250 } });
    await cacheTrusted(app);
    const s = await signIn(app, 'dee');
    let reads = await target.commandCalls('hgetall');
    for (let i = 0; i < 5; i++) t.equal((await me(app, s.token)).statusCode, 200);
    t.equal((await target.commandCalls('hgetall')) - reads, 0, 'L1 hits inside the ttl');
    await sleep(400);
    reads = await target.commandCalls('hgetall');
    for (let i = 0; i < 5; i++) t.equal((await me(app, s.token)).statusCode, 200);
    t.equal((await target.commandCalls('hgetall')) - reads, 1, 'one read after the ttl, then hits again');
  });
});
