// One test per Redis invariant (docs/design.md), on a single redis-server and on a Cluster.
import t from 'tap';
import { eachTarget, makeApp, tokenOf, cacheTrusted, me, signIn, inspector, assertAllKeysExpire, eventually, COOKIE,
  storedExpiry } from '../fixtures/targets.js';
import type { TestApp } from '../fixtures/targets.js';


t.test('invariant 1: every live session is in its user\'s index, through touches, rotation, updates and the cap, and log-out-everywhere ' +
  'misses none', async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    let clock = Date.now();
    const opts = { keyPrefix: prefix, now: () => clock, touchInterval: 1000, idleTimeout: 600_000, maxSessionsPerUser: 8 };
    const a = await makeApp(t, target.client(), opts);
    const b = await makeApp(t, target.client(), opts);
    // Liveness is judged without an L1, so a broadcast still in flight cannot blur it.
    const judge = await makeApp(t, target.client(), { ...opts, localCache: false });
    await cacheTrusted(a);
    await cacheTrusted(b);
    const insp = await inspector(target);
    const user = 'pat';
    const idx = a.sessions.store.indexKey(a.sessions.tagOf(user));
    const sessions: { token: string; id: string }[] = [];

    const check = async (what: string) => {
      const members = new Set(await insp.zrange(idx, 0, -1));
      const live: string[] = [];
      for (const s of sessions) {
        if ((await me(judge, s.token)).statusCode === 200) live.push(s.id);
      }
      const missing = live.filter((id) => !members.has(id.slice(22)));
      t.same(missing, [], `${what}: every live session (${live.length}) is in the index`);
      // And the index points only at sessions whose hash exists.
      const dangling: string[] = [];
      for (const m of members) {
        if ((await insp.exists(a.sessions.store.sessionKey(a.sessions.tagOf(user) + m))) === 0) dangling.push(m);
      }
      t.same(dangling, [], `${what}: no index member without a session`);
      const idxAt = await insp.pexpiretime(idx);
      for (const id of live) {
        const at = await insp.pexpiretime(a.sessions.store.sessionKey(id));
        t.ok(at > 0 && idxAt >= at, `${what}: the index outlives session ${id.slice(22)}`);
      }
      return live;
    };

    for (let i = 0; i < 6; i++) {
      sessions.push(await signIn(i % 2 ? a : b, user));
      clock += 10;
    }
    t.equal((await check('after six sign-ins on two instances')).length, 6);

    // Touches from both instances.
    clock += 5000;
    for (const s of sessions) { await me(a, s.token); await me(b, s.token); }
    await a.sessions.flushTouches();
    await b.sessions.flushTouches();
    t.equal((await check('after touches')).length, 6);

    // Rotation keeps the id in the index; an update too.
    const rot = await a.inject({ method: 'POST', url: '/rotate', cookies: { [COOKIE]: sessions[0].token } });
    t.equal(rot.statusCode, 200);
    sessions[0] = { token: tokenOf(rot)!, id: sessions[0].id };
    t.equal((await b.inject({ method: 'POST', url: '/update', cookies: { [COOKIE]: sessions[1].token } })).statusCode, 200);
    t.equal((await check('after rotation and update')).length, 6);

    // Past the cap (8): the least recently active are evicted, the rest stay indexed.
    for (let i = 0; i < 4; i++) {
      clock += 10;
      sessions.push(await signIn(i % 2 ? a : b, user));
    }
    const live = await check('after exceeding the cap');
    t.equal(live.length, 8, 'the cap keeps eight');
    t.equal(await insp.zcard(idx), 8, 'and the index holds exactly eight');

    // A second user in the same app is not affected by anything below.
    const bystander = await signIn(a, 'quinn');

    // Log out everywhere from one instance: every live session of the user, wherever it was made.
    const tok = sessions.find((s) => live.includes(s.id))!.token;
    const out = await a.inject({ method: 'POST', url: '/sessions/logout-everywhere', cookies: { [COOKIE]: tok } });
    t.equal(out.statusCode, 200);
    t.equal(out.json().revoked, 8, 'every live session was revoked');
    for (const s of sessions) {
      for (const app of [a, b]) {
        const r = await eventually(() => me(app, s.token), (x) => x.statusCode === 401);
        t.equal(r.statusCode, 401, `session ${s.id.slice(22)} refused after log-out-everywhere`);
      }
    }
    const left = (await target.keys(prefix)).filter((k) => k.includes(`{${a.sessions.tagOf(user)}}`));
    t.same(left, [], 'no key of the user is left');
    t.equal((await me(b, bystander.token)).statusCode, 200, 'another user keeps their session');
    await assertAllKeysExpire(t, target, prefix);
  });
});

t.test('invariant 1 holds when two instances\' clocks disagree by 100 ms: a touch keeps a live session in the index that a pruning ' +
  'instance dropped', async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    const T0 = Date.now();
    let clockA = T0;
    let clockB = T0;
    const idle = 60_000;
    const opts = { keyPrefix: prefix, idleTimeout: idle, touchInterval: 1000 };
    const a = await makeApp(t, target.client(), { ...opts, now: () => clockA });
    const b = await makeApp(t, target.client(), { ...opts, now: () => clockB });
    await cacheTrusted(a);
    await cacheTrusted(b);
    const insp = await inspector(target);
    const s = await signIn(a, 'skew');
    const idx = a.sessions.store.indexKey(a.sessions.tagOf('skew'));
    t.equal((await me(a, s.token)).statusCode, 200);
    // 50 ms before the idle deadline by A's clock, 50 ms after it by B's.
    clockA = T0 + idle - 50;
    clockB = T0 + idle + 50;
    t.same(await b.sessions.list('skew'), [], 'B sees the session as expired (and prunes the index)');
    t.equal((await me(a, s.token)).statusCode, 200, 'A sees it live and touches it');
    await a.sessions.flushTouches();
    // The clocks agree again; the session is live for both instances.
    clockA = clockB = T0 + idle + 1000;
    t.equal((await me(a, s.token)).statusCode, 200, 'live on A');
    t.equal((await me(b, s.token)).statusCode, 200, 'live on B');
    t.not(await insp.zscore(idx, s.id.slice(22)), null, 'a live session is in its user\'s index');
    t.equal(await b.sessions.revokeAll('skew'), 1, 'log-out-everywhere finds it');
    const after = await eventually(() => me(a, s.token), (r) => r.statusCode === 401);
    t.equal(after.statusCode, 401, 'and it is over');
    await assertAllKeysExpire(t, target, prefix);
  });
});

t.test('invariant 2: a revoked session never comes back: a touch queued before the revoke and flushed after it does not recreate the key',
  async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    let clock = Date.now();
    const opts = { keyPrefix: prefix, now: () => clock, touchInterval: 1000, idleTimeout: 600_000 };
    const other: { app?: TestApp } = {};
    const a = await makeApp(t, target.client(), opts, {
      actions: {
        // The resolve has just queued a touch (an L1 hit past touchInterval); another instance
        // revokes the session before this instance's touch batch is written.
        'revoke-elsewhere': async (c) => ({ ok: await other.app!.sessions.revoke(c.session!.id) }),
      },
    });
    const b = await makeApp(t, target.client(), opts);
    other.app = b;
    await cacheTrusted(a);
    await cacheTrusted(b);
    const insp = await inspector(target);
    const s = await signIn(a, 'rae');
    const key = a.sessions.store.sessionKey(s.id);
    const idx = a.sessions.store.indexKey(a.sessions.tagOf('rae'));
    t.equal((await me(a, s.token)).statusCode, 200, 'L1 filled');
    const written = a.sessions.stats().touchesWritten;
    clock += 5000;
    const r = await a.inject({ method: 'POST', url: '/act/revoke-elsewhere', cookies: { [COOKIE]: s.token } });
    t.equal(r.statusCode, 200);
    t.same(r.json(), { ok: true }, 'the other instance revoked it');
    await a.sessions.flushTouches();
    await new Promise((r) => setTimeout(r, 20));
    await a.sessions.flushTouches();
    t.equal(await insp.exists(key), 0, 'the session key does not exist');
    t.equal(await insp.zscore(idx, s.id.slice(22)), null, 'the index does not list it');
    t.equal(a.sessions.stats().touchesWritten, written, 'the queued touch was refused');
    for (const app of [a, b]) {
      const res = await eventually(() => me(app, s.token), (x) => x.statusCode === 401);
      t.equal(res.statusCode, 401, 'the token is refused');
    }
    // A replayed touch, straight at the store, cannot bring it back either.
    t.equal(await a.sessions.store.touch([{ publicId: s.id, now: clock + 10_000 }]), 0, 'a replayed touch writes nothing');
    t.equal(await insp.exists(key), 0, 'the key still does not exist');
    await assertAllKeysExpire(t, target, prefix);
  });
});

t.test('invariant 2: an expired session never comes back: a touch replayed after its key expired writes nothing', async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    const app = await makeApp(t, target.client(), { keyPrefix: prefix });
    await cacheTrusted(app);
    const insp = await inspector(target);
    const s = await signIn(app, 'sam');
    const key = app.sessions.store.sessionKey(s.id);
    // Let Redis expire the key now (as its TTL would), without waiting for it.
    t.equal(await insp.pexpire(key, 1), 1);
    await eventually(() => insp.exists(key), (n) => n === 0, 1000);
    t.equal(await insp.exists(key), 0, 'expired');
    t.equal(await app.sessions.store.touch([{ publicId: s.id, now: Date.now() + 1000 }]), 0, 'the touch writes nothing');
    t.equal(await insp.exists(key), 0, 'the key was not recreated');
    t.equal(await app.sessions.store.update(s.id, 'j', '{"x":1}', Date.now()), false, 'an update writes nothing');
    t.equal(await insp.exists(key), 0, 'the key was not recreated by the update');
    const fresh = await makeApp(t, target.client(), { keyPrefix: prefix, localCache: false });
    t.equal((await me(fresh, s.token)).statusCode, 401);
    await assertAllKeysExpire(t, target, prefix);
  });
});

t.test('invariant 2: updating or rotating a session revoked in the meantime answers 404 and creates no key', async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    const other: { app?: TestApp } = {};
    const a = await makeApp(t, target.client(), { keyPrefix: prefix }, {
      actions: {
        'revoke-then-update': async (c) => {
          await other.app!.sessions.revoke(c.session!.id);
          await c.update({ after: 'revoke' } as object);
          return { ok: true };
        },
        'revoke-then-rotate': async (c) => {
          await other.app!.sessions.revoke(c.session!.id);
          await c.rotate();
          return { ok: true };
        },
      },
    });
    const b = await makeApp(t, target.client(), { keyPrefix: prefix });
    other.app = b;
    await cacheTrusted(a);
    await cacheTrusted(b);
    const insp = await inspector(target);
    for (const route of ['/act/revoke-then-update', '/act/revoke-then-rotate']) {
      const s = await signIn(a, 'tess');
      const r = await a.inject({ method: 'POST', url: route, cookies: { [COOKIE]: s.token } });
      t.equal(r.statusCode, 404, `${route}: 404`);
      t.equal(r.json().code, 'ERR_TIERED_SESSION_NOT_FOUND', `${route}: coded`);
      t.equal(tokenOf(r), undefined, `${route}: no new cookie`);
      t.equal(await insp.exists(a.sessions.store.sessionKey(s.id)), 0, `${route}: no key`);
      t.equal((await me(a, s.token)).statusCode, 401, `${route}: token refused`);
    }
    t.same(await a.sessions.list('tess'), [], 'nothing listed');
    await assertAllKeysExpire(t, target, prefix);
  });
});

t.test('invariant 3: the Redis TTL is min(idle, absolute) and sliding never passes the absolute deadline', async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    const T0 = Date.now();
    let clock = T0;
    const idle = 60_000;
    const absolute = 150_000;
    const app = await makeApp(t, target.client(),
      { keyPrefix: prefix, now: () => clock, idleTimeout: idle, absoluteTimeout: absolute, touchInterval: 5000 });
    await cacheTrusted(app);
    const noL1 = await makeApp(t, target.client(),
      { keyPrefix: prefix, now: () => clock, idleTimeout: idle, absoluteTimeout: absolute, touchInterval: 5000, localCache: false });
    const insp = await inspector(target);
    const s = await signIn(app, 'uma');
    const key = app.sessions.store.sessionKey(s.id);
    const idx = app.sessions.store.indexKey(app.sessions.tagOf('uma'));
    const x = T0 + absolute;

    const inspect = async (what: string) => {
      const [xs, a] = await insp.hmget(key, 'x', 'a');
      const pttl = await insp.pttl(key);
      const expected = Math.min(clock + idle, x);
      const e = Number(await insp.zscore(idx, s.id.slice(22)));
      t.equal(Number(xs), x, `${what}: x is the absolute deadline`);
      t.equal(e, expected, `${what}: the expiry (index score) = min(now + idle, x)`);
      t.ok(e <= x, `${what}: the expiry never passes x`);
      t.ok(pttl > 0 && pttl <= expected - clock, `${what}: 0 < PTTL (${pttl}) <= expiry - now (${expected - clock})`);
      t.ok(pttl > expected - clock - 2000, `${what}: PTTL (${pttl}) is about expiry - now`);
      t.ok((await insp.pexpiretime(idx)) >= (await insp.pexpiretime(key)), `${what}: the index outlives the session`);
      return Number(a);
    };

    await inspect('at sign-in');
    for (const step of [40_000, 80_000, 120_000, 135_000, 140_000, 146_000]) {
      clock = T0 + step;
      t.equal((await me(app, s.token)).statusCode, 200, `request at +${step / 1000}s`);
      await app.sessions.flushTouches();
      t.equal(await inspect(`after a touch at +${step / 1000}s`), clock, 'last-active moved');
    }
    // A stale or replayed touch from the future cannot stretch it either.
    t.equal(await app.sessions.store.touch([{ publicId: s.id, now: x - 1500 }]), 1);
    t.equal(await storedExpiry(app, insp, s.id), x, 'a touch 1.5 s before x still ends at x');
    t.ok((await insp.pttl(key)) <= 1500, 'and the key TTL is still bounded by x');
    clock = x;
    t.equal((await me(app, s.token)).statusCode, 401, 'refused at the absolute deadline (L1)');
    t.equal((await me(noL1, s.token)).statusCode, 401, 'refused at the absolute deadline (Redis)');
    await assertAllKeysExpire(t, target, prefix);
  });
});

t.test('invariant 3: when the absolute timeout is shorter than the idle timeout, the Redis TTL is the absolute one', async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    const T0 = Date.now();
    let clock = T0;
    const app = await makeApp(t, target.client(),
      { keyPrefix: prefix, now: () => clock, idleTimeout: 600_000, absoluteTimeout: 120_000, touchInterval: 1000 });
    await cacheTrusted(app);
    const insp = await inspector(target);
    const s = await signIn(app, 'vic');
    const key = app.sessions.store.sessionKey(s.id);
    let pttl = await insp.pttl(key);
    t.ok(pttl > 118_000 && pttl <= 120_000, `PTTL at sign-in (${pttl}) is the absolute timeout`);
    t.equal(await storedExpiry(app, insp, s.id), T0 + 120_000, 'expiry = x at sign-in');
    clock = T0 + 60_000;
    t.equal((await me(app, s.token)).statusCode, 200);
    await app.sessions.flushTouches();
    pttl = await insp.pttl(key);
    t.ok(pttl > 58_000 && pttl <= 60_000, `PTTL after a touch (${pttl}) is what is left of the absolute timeout`);
    t.equal(await storedExpiry(app, insp, s.id), T0 + 120_000, 'expiry = x after a touch');
    t.ok(Number(await insp.hget(key, 'a')) === clock, 'last-active written');
    await assertAllKeysExpire(t, target, prefix);
  });
});

t.test('invariant 4: no KEYS, FLUSHALL, FLUSHDB or SCAN is issued by the plugin under a full workload', async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    let clock = Date.now();
    const opts = { keyPrefix: prefix, now: () => clock, touchInterval: 1000, idleTimeout: 600_000, maxSessionsPerUser: 3, prewarm: 20 };
    const a = await makeApp(t, target.client(), opts);
    const b = await makeApp(t, target.client(), { ...opts, localCache: false });
    await cacheTrusted(a);
    const forbidden = ['keys', 'flushall', 'flushdb', 'scan', 'hscan', 'sscan', 'zscan'];
    const count = async () => {
      const out: Record<string, number> = {};
      for (const c of forbidden) out[c] = await target.commandCalls(c);
      return out;
    };
    const before = await count();
    // The server's counters are cumulative since it started (earlier tests in this file count
    // too): what the workload ran is measured from here.
    const scriptsRun = async () => (await target.commandCalls('evalsha')) + (await target.commandCalls('eval'));
    const scriptsBefore = await scriptsRun();
    const readsBefore = await target.commandCalls('hgetall');

    // Glob characters in user ids: nothing may ever turn them into a pattern.
    const users = ['*', 'a?b', '[x]', 'plain', 'new\nline'];
    const sessions: { user: string; token: string; id: string }[] = [];
    for (const user of users) for (let i = 0; i < 4; i++) sessions.push(await signIn(i % 2 ? a : b, user));
    clock += 5000;
    for (const s of sessions) { await me(a, s.token); await me(b, s.token); }
    await a.sessions.flushTouches();
    for (const s of sessions.slice(0, 6)) {
      await a.inject({ method: 'POST', url: '/rotate', cookies: { [COOKIE]: s.token } });
      await b.inject({ method: 'POST', url: '/update', cookies: { [COOKIE]: s.token } });
    }
    const last = sessions.at(-1)!;
    await a.inject({ url: '/sessions', cookies: { [COOKIE]: last.token } });
    await a.inject({ method: 'DELETE', url: `/sessions/${sessions.at(-2)!.id}`, cookies: { [COOKIE]: last.token } });
    await a.inject({ method: 'DELETE', url: '/sessions/*', cookies: { [COOKIE]: last.token } });
    for (const user of users) await a.sessions.list(user);
    await a.sessions.revokeAll('*');
    await b.inject({ method: 'POST', url: '/sessions/logout-everywhere', cookies: { [COOKIE]: last.token },
      payload: { keepCurrent: true } });
    await a.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: last.token } });
    // A third instance starting with pre-warm, then closing (flushes its touches).
    const c = await makeApp(t, target.client(), opts);
    await cacheTrusted(c);
    for (const s of sessions) await me(c, s.token);
    await c.close();
    await a.sessions.flushTouches();

    const after = await count();
    t.same(after, before, 'no KEYS / FLUSH* / SCAN calls were made');
    // The workload really ran (the comparison above would be vacuous otherwise): at least one
    // script per sign-in, and at least one HGETALL per request on the instance without an L1.
    const scripts = (await scriptsRun()) - scriptsBefore;
    const reads = (await target.commandCalls('hgetall')) - readsBefore;
    t.ok(scripts >= sessions.length, `the workload ran ${scripts} scripts (at least one per sign-in: ${sessions.length})`);
    t.ok(reads >= sessions.length, `the workload ran ${reads} HGETALLs (at least one per request without an L1: ${sessions.length})`);
    await assertAllKeysExpire(t, target, prefix);
  });
});
