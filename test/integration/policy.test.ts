// Session policy (issue "Session policy"): "remember me" with its own lifetimes and a
// browser-session cookie, caps per device type, and recent authentication ("sudo mode"). Every
// rule on both Redis targets and every adapter; L1 and Redis must agree.
import t from 'tap';
import {
  eachTarget, makeApp, twoInstances, cacheTrusted, tokenOf, me, inspector, storedExpiry, assertAllKeysExpire, eventually, COOKIE,
  type TestApp,
} from '../fixtures/targets.js';
import { SENSITIVE_MAX_AGE } from '../fixtures/apps.js';

const H = 3600_000;
const UA = {
  desktop: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
  mobile: 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 ' +
    'Safari/604.1',
  tablet: 'Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
  bot: 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
  unknown: 'SomeTool',
};

async function login(app: TestApp, user: string, extra: { remember?: boolean; ua?: string } = {}) {
  const res = await app.inject({
    method: 'POST', url: '/login',
    payload: { user, ...(extra.remember !== undefined ? { remember: extra.remember } : {}) },
    headers: extra.ua ? { 'user-agent': extra.ua } : {},
  });
  const token = tokenOf(res);
  if (res.statusCode !== 200 || token === undefined) throw new Error(`login ${user}: ${res.statusCode} ${res.body}`);
  const line = ([] as string[]).concat(res.headers['set-cookie'] as string | string[]).find((l) => l.startsWith(`${COOKIE}=`))!;
  return { token, id: res.json().id as string, remembered: res.json().remembered as boolean, line };
}

const list = async (app: TestApp, token: string) =>
  (await app.inject({ url: '/sessions',
    cookies: { [COOKIE]: token } })).json().sessions as { id: string; remembered: boolean; device: { type: string | null } }[];

t.test('remember: false gives a browser-session cookie and the short lifetimes, enforced on L1 hits and in Redis TTLs alike', async (t) => {
  await eachTarget(t, async (t, target) => {
    let clock = Date.now();
    const opts = {
      keyPrefix: target.prefix(), now: () => clock, idleTimeout: 14 * 24 * H, absoluteTimeout: 30 * 24 * H, touchInterval: 60_000,
      shortSession: { idleTimeout: 2 * H, absoluteTimeout: 5 * H },
    };
    const app = await makeApp(t, target.client(), opts);
    const noL1 = await makeApp(t, target.client(), { ...opts, localCache: false });
    await cacheTrusted(app);
    const insp = await inspector(target);

    const long = await login(app, 'rita');
    const short = await login(app, 'rita', { remember: false });
    t.equal(long.remembered, true, 'remember omitted: remembered');
    t.equal(short.remembered, false, 'remember: false: not remembered');
    t.match(long.line, /; Max-Age=2592000;/, 'the remembered cookie lasts the absolute lifetime');
    t.notMatch(short.line, /Max-Age|Expires/i, 'the other is a browser-session cookie: no Max-Age, no Expires');
    t.match(short.line, /HttpOnly; Secure; SameSite=Lax$/, 'with the same attributes otherwise');
    t.equal((await login(app, 'rita', { remember: true })).remembered, true, 'remember: true behaves as before');

    // Invariant 3 for both kinds: the key's TTL is min(idle, absolute) of its own kind.
    const pttl = async (id: string) => insp.pttl(app.sessions.store.sessionKey(id));
    t.ok(await pttl(short.id) <= 2 * H && await pttl(short.id) > 2 * H - 5000,
      `the short session's key lives its short idle timeout (${await pttl(short.id)} ms)`);
    t.ok(await pttl(long.id) > 13 * 24 * H, 'the remembered one its long idle timeout');
    t.equal(await storedExpiry(app, insp, short.id), clock + 2 * H, 'the index scores the short expiry');

    const remembered = new Map((await list(app, long.token)).map((r) => [r.id, r.remembered]));
    t.equal(remembered.get(short.id), false, 'the device list shows the short session as not remembered');
    t.equal(remembered.get(long.id), true, 'and the other as remembered');

    // Warm L1 with both, then let the short idle timeout pass without activity.
    t.equal((await me(app, short.token)).statusCode, 200);
    t.equal((await me(app, long.token)).statusCode, 200);
    const hits = app.sessions.stats().l1Hits;
    t.equal((await me(app, short.token)).statusCode, 200, 'the short session is an L1 hit while fresh');
    t.equal(app.sessions.stats().l1Hits, hits + 1);
    clock += 2 * H + 1000;
    t.equal((await me(app, short.token)).statusCode, 401, 'past its short idle timeout it is refused on the L1 instance');
    t.equal((await me(noL1, short.token)).statusCode, 401, 'and by an instance reading Redis');
    t.equal((await me(app, long.token)).statusCode, 200, 'the remembered session is not idle yet');

    // Activity slides the short session, but never past its short absolute lifetime.
    const s2 = await login(app, 'rita', { remember: false });
    for (let i = 0; i < 6; i++) {
      clock += H;
      const r = await me(app, s2.token);
      await app.sessions.flushTouches();
      if (i < 4) {
        t.equal(r.statusCode, 200, `active after ${i + 1} h: still valid`);
        t.ok(await pttl(s2.id) <= Math.min(2 * H, 5 * H - (i + 1) * H) + 1000,
          `its TTL never passes the short absolute deadline (${await pttl(s2.id)} ms)`);
      } else t.equal(r.statusCode, 401, `after ${i + 1} h, past the 5 h absolute lifetime, it is refused however active`);
    }
    t.equal((await me(noL1, s2.token)).statusCode, 401, 'Redis agrees');
    await assertAllKeysExpire(t, target, opts.keyPrefix);
  });
});

t.test('a rotated short session keeps its browser-session cookie, and sign-in refuses a non-boolean remember', async (t) => {
  await eachTarget(t, async (t, target) => {
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix() });
    const s = await login(app, 'sam', { remember: false });
    const r = await app.inject({ method: 'POST', url: '/rotate', cookies: { [COOKIE]: s.token } });
    t.equal(r.statusCode, 200);
    const line = ([] as string[]).concat(r.headers['set-cookie'] as string[]).find((l) => l.startsWith(`${COOKIE}=`))!;
    t.notMatch(line, /Max-Age|Expires/i, 'the rotated cookie is still a browser-session cookie');
    const bad = await app.inject({ method: 'POST', url: '/login', payload: { user: 'sam', remember: 'no' } });
    t.equal(bad.statusCode, 500, 'remember must be a boolean (a programming error, not a client one)');
    t.equal(tokenOf(bad), undefined, 'and no session was made');
  }, { only: ['single'] });
});

t.test('caps per device type: past a type\'s cap its least recently active session goes; past the total, the least recently active of all',
  async (t) => {
  await eachTarget(t, async (t, target) => {
    let clock = Date.now();
    const app = await makeApp(t, target.client(), {
      keyPrefix: target.prefix(), now: () => clock, touchInterval: 1000,
      maxSessionsPerUser: { total: 5, mobile: 2, desktop: 3, bot: 1 },
    });
    const tick = () => { clock += 10_000; };
    const m1 = await login(app, 'cap', { ua: UA.mobile }); tick();
    const m2 = await login(app, 'cap', { ua: UA.mobile }); tick();
    const d1 = await login(app, 'cap', { ua: UA.desktop }); tick();
    // m1 is used: m2 becomes the least recently active mobile.
    t.equal((await me(app, m1.token)).statusCode, 200);
    await app.sessions.flushTouches();
    tick();
    const m3 = await login(app, 'cap', { ua: UA.mobile }); tick();
    t.equal((await me(app, m2.token)).statusCode, 401, 'the third mobile sign-in evicted the least recently active mobile (m2)');
    t.equal((await me(app, m1.token)).statusCode, 200, 'the recently used mobile stays');
    t.equal((await me(app, d1.token)).statusCode, 200, 'the desktop is untouched');
    const rows = await list(app, m3.token);
    t.same(rows.filter((r) => r.device.type === 'mobile').length, 2, 'two mobiles: the cap');

    const b1 = await login(app, 'cap', { ua: UA.bot }); tick();
    const b2 = await login(app, 'cap', { ua: UA.bot }); tick();
    t.equal((await me(app, b1.token)).statusCode, 401, 'bot: 1 keeps one bot');
    t.equal((await me(app, b2.token)).statusCode, 200);

    // m1, m3, d1, b2 = 4 live; an untyped session counts toward the total only.
    const u1 = await login(app, 'cap', { ua: UA.unknown }); tick();
    await app.sessions.flushTouches();
    const full = (await app.inject({ url: '/sessions',
      cookies: { [COOKIE]: u1.token } })).json().sessions as { id: string; lastActiveAt: string }[];
    t.equal(full.length, 5, 'five live sessions: the total');
    const victim = [...full].sort((x, y) => Date.parse(x.lastActiveAt) - Date.parse(y.lastActiveAt))[0].id;
    const t1 = await login(app, 'cap', { ua: UA.tablet }); tick();
    const after = (await list(app, t1.token)).map((r) => r.id);
    t.equal(after.length, 5, 'a sixth sign-in of an uncapped type keeps the total at five');
    t.notOk(after.includes(victim), 'by evicting the least recently active of all');
    t.same(after.filter((id) => id !== t1.id).sort(), full.map((r) => r.id).filter((id) => id !== victim).sort(), 'and only that one');
  });
});

t.test('concurrent sign-ins of one device type on two instances leave exactly its cap, and every eviction leaves the other instance\'s ' +
  'cache', async (t) => {
  await eachTarget(t, async (t, target) => {
    const { a, b } = await twoInstances(t, target, { maxSessionsPerUser: { total: 50, mobile: 3 }, localCache: { ttl: 60_000 } });
    const desk = await login(a, 'storm', { ua: UA.desktop });
    const all = await Promise.all(Array.from({ length: 16 }, (_, i) => login(i % 2 ? a : b, 'storm', { ua: UA.mobile })));
    // Every session was cached by the instance that made it; warm the other side too.
    for (const s of all) await me(a, s.token);
    const live = await eventually(async () => {
      const ok: string[] = [];
      for (const s of all) {
        const ra = await me(a, s.token);
        const rb = await me(b, s.token);
        if (ra.statusCode === 200 && rb.statusCode === 200) ok.push(s.id);
        else if (ra.statusCode !== rb.statusCode) return null;
      }
      return ok;
    }, (v) => v !== null && v.length === 3, 2000);
    t.equal(live?.length, 3, 'exactly three mobile sessions are accepted, by both instances alike');
    t.equal((await list(a, desk.token)).filter((r) => r.device.type === 'mobile').length, 3, 'and listed');
    t.equal((await me(b, desk.token)).statusCode, 200, 'the desktop session survived the storm');
  });
});

t.test('recent authentication: the guard answers 403 with a coded error once the sign-in is older than maxAge; a confirmation on one ' +
  'instance reaches the other, with a new token (the old one refused on both)', async (t) => {
  await eachTarget(t, async (t, target) => {
    let clock = Date.now();
    const { a, b } = await twoInstances(t, target, { now: () => clock });
    const s = await login(a, 'sudo');
    const cookies = { [COOKIE]: s.token };
    const sensitive = (app: TestApp) => app.inject({ method: 'POST', url: '/sensitive', cookies });
    t.equal((await sensitive(a)).statusCode, 200, 'right after sign-in the action is allowed');
    t.equal((await sensitive(b)).statusCode, 200, 'on both instances (B now caches the session)');
    clock += SENSITIVE_MAX_AGE + 1;
    for (const app of [a, b]) {
      const r = await sensitive(app);
      t.equal(r.statusCode, 403, 'past maxAge: 403');
      t.equal(r.json().code, 'ERR_TIERED_SESSION_REAUTHENTICATION_REQUIRED', 'with the coded error');
      t.match(r.json().message, String(SENSITIVE_MAX_AGE), 'naming the maxAge');
    }
    t.equal((await me(a, s.token)).statusCode, 200, 'the session itself is fine');
    t.equal((await a.inject({ url: '/sessions', cookies })).statusCode, 200, 'listing devices is never gated');

    const before = b.sessions.stats().revocationsReceived;
    const c = await a.inject({ method: 'POST', url: '/confirm', cookies });
    t.equal(c.statusCode, 200, 'the app re-checked the password and confirms');
    t.equal(c.json().authenticatedAt, clock, 'authenticatedAt moves to now');
    // A re-authentication gets a new token, as a sign-in does: the same session, a new secret.
    const token = tokenOf(c);
    t.ok(token !== undefined && token !== s.token, 'a confirmation sets a new token as the cookie');
    t.equal(token!.slice(0, s.token.indexOf('.')), s.token.slice(0, s.token.indexOf('.')), 'for the same session (its id kept)');
    const old = cookies[COOKIE];
    cookies[COOKIE] = token!;
    t.equal((await sensitive(a)).statusCode, 200, 'the action is allowed again on A with the new token');
    t.equal((await me(a, old)).statusCode, 401, 'the old token is refused on A');
    await eventually(async () => b.sessions.stats().revocationsReceived, (n) => n > before, 1000);
    t.equal((await me(b, old)).statusCode, 401, 'and on B, which had cached it');
    const rb = await sensitive(b);
    t.equal(rb.statusCode, 200, 'the new token is allowed on B');
    t.equal(rb.json().authenticatedAt, clock, 'with the new authenticatedAt');

    t.equal((await a.inject({ method: 'POST', url: '/sensitive' })).statusCode, 401, 'without a session: 401');
    clock += SENSITIVE_MAX_AGE + 1;
    t.equal((await a.inject({ method: 'POST', url: '/sessions/logout-everywhere', cookies, payload: { keepCurrent: true } })).statusCode,
      200,
      'log-out-everywhere is never gated');
    t.equal((await a.inject({ method: 'POST', url: '/logout', cookies })).statusCode, 204, 'signing out is never gated');
  });
});

t.test('a sign-in past a type\'s cap and at the total evicts only the type\'s oldest: the total counts what is left', async (t) => {
  await eachTarget(t, async (t, target) => {
    let clock = Date.now();
    const app = await makeApp(t, target.client(),
      { keyPrefix: target.prefix(), now: () => clock, maxSessionsPerUser: { total: 3, mobile: 1 } });
    const m1 = await login(app, 'both', { ua: UA.mobile }); clock += 10_000;
    const d1 = await login(app, 'both', { ua: UA.desktop }); clock += 10_000;
    const d2 = await login(app, 'both', { ua: UA.desktop }); clock += 10_000;
    // Three live, the total; a second mobile is past the mobile cap: m1 goes, which frees a place.
    const m2 = await login(app, 'both', { ua: UA.mobile });
    t.equal((await me(app, m1.token)).statusCode, 401, 'the older mobile is evicted (the type\'s cap)');
    t.equal((await me(app, d1.token)).statusCode, 200, 'the oldest desktop stays: after the mobile eviction the total is not reached');
    t.equal((await me(app, d2.token)).statusCode, 200, 'the other desktop stays');
    t.same((await list(app, m2.token)).map((r) => r.id).sort(), [m2.id, d1.id, d2.id].sort(),
      'three live: the new mobile and both desktops');
  });
});

t.test('caps per type without a total: the total is still the default 50', async (t) => {
  await eachTarget(t, async (t, target) => {
    let clock = Date.now();
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix(), now: () => clock, maxSessionsPerUser: { mobile: 2 } });
    const all = [];
    for (let i = 0; i < 60; i++) {
      all.push(await login(app, 'many', { ua: UA.desktop }));
      clock += 1000;
    }
    const live = await list(app, all[59]!.token);
    t.equal(live.length, 50, 'sixty desktop sign-ins leave fifty');
    t.same(live.map((r) => r.id).sort(), all.slice(10).map((s) => s.id).sort(), 'the ten least recently active went');
    t.equal((await me(app, all[0]!.token)).statusCode, 401, 'the first is signed out');
  }, { adapters: ['fastify'] });
});

t.test('recent authentication read from Redis (localCache: false): activity does not count as authentication', async (t) => {
  await eachTarget(t, async (t, target) => {
    let clock = Date.now();
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix(), now: () => clock, touchInterval: 1000, localCache: false });
    const s = await login(app, 'fresh');
    const signedInAt = clock;
    const cookies = { [COOKIE]: s.token };
    const sensitive = () => app.inject({ method: 'POST', url: '/sensitive', cookies });
    const first = await sensitive();
    t.equal(first.statusCode, 200, 'right after sign-in: allowed');
    t.equal(first.json().authenticatedAt, signedInAt, 'authenticatedAt is the sign-in time');
    // Activity halfway through the window, written to Redis.
    clock += SENSITIVE_MAX_AGE / 2;
    t.equal((await me(app, s.token)).statusCode, 200);
    await app.sessions.flushTouches();
    clock += SENSITIVE_MAX_AGE / 2 + 1;
    t.equal((await me(app, s.token)).statusCode, 200, 'the session is active');
    await app.sessions.flushTouches();
    const late = await sensitive();
    t.equal(late.statusCode, 403, 'the sign-in is older than maxAge: 403, however recent the activity');
    t.equal(late.json().code, 'ERR_TIERED_SESSION_REAUTHENTICATION_REQUIRED');
    const c = await app.inject({ method: 'POST', url: '/confirm', cookies });
    t.equal(c.json().authenticatedAt, clock, 'a confirmation moves it');
    cookies[COOKIE] = tokenOf(c)!;
    clock += 1000;
    t.equal((await me(app, cookies[COOKIE])).statusCode, 200);
    await app.sessions.flushTouches();
    const again = await sensitive();
    t.equal(again.statusCode, 200, 'allowed again after the confirmation');
    t.equal(again.json().authenticatedAt, clock - 1000, 'read back from Redis as the confirmation time, not the last activity');
  });
});

t.test('reauthenticateToRevoke: revoking another device and log out everywhere need a recent authentication; signing out never does',
  async (t) => {
    await eachTarget(t, async (t, target) => {
      let clock = Date.now();
      const maxAge = 10 * 60_000;
      const app = await makeApp(t, target.client(), { keyPrefix: target.prefix(), now: () => clock, reauthenticateToRevoke: maxAge });
      await cacheTrusted(app);
      const s = await login(app, 'gate');
      const others = [await login(app, 'gate'), await login(app, 'gate'), await login(app, 'gate')];
      const cookies = { [COOKIE]: s.token };
      const del = (id: string) => app.inject({ method: 'DELETE', url: `/sessions/${encodeURIComponent(id)}`, cookies });
      const everywhere = () => app.inject({ method: 'POST', url: '/sessions/logout-everywhere', cookies, payload: { keepCurrent: true } });
      t.equal((await del(others[0]!.id)).statusCode, 204, 'right after sign-in: another device is revoked');

      clock += maxAge + 1;
      const refused = await del(others[1]!.id);
      t.equal(refused.statusCode, 403, `past the window: revoking another device answers 403 (${refused.body})`);
      t.equal(refused.json().code, 'ERR_TIERED_SESSION_REAUTHENTICATION_REQUIRED', 'with the coded error');
      const all = await everywhere();
      t.equal(all.statusCode, 403, 'and so does log out everywhere');
      t.equal(all.json().code, 'ERR_TIERED_SESSION_REAUTHENTICATION_REQUIRED');
      for (const o of others.slice(1)) t.equal((await me(app, o.token)).statusCode, 200, 'nothing was ended');
      t.equal((await app.inject({ url: '/sessions', cookies })).statusCode, 200, 'listing devices is not gated');

      const c = await app.inject({ method: 'POST', url: '/confirm', cookies });
      t.equal(c.statusCode, 200, 'the app re-checked the password and confirms');
      cookies[COOKIE] = tokenOf(c)!;
      t.equal((await del(others[1]!.id)).statusCode, 204, 'after the confirmation another device is revoked');
      const done = await everywhere();
      t.equal(done.statusCode, 200, 'and log out everywhere ends the rest');
      t.equal(done.json().revoked, 1);
      t.equal((await me(app, others[2]!.token)).statusCode, 401);

      clock += maxAge + 1;
      t.equal((await del(s.id)).statusCode, 204, 'past the window again: the caller\'s own session is signed out through the route');
      const again = await login(app, 'gate');
      clock += maxAge + 1;
      t.equal((await app.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: again.token } })).statusCode, 204,
        'and sign-out is never gated');
    });
  });

t.test('capPolicy refuse: a sign-in past a cap ends nothing and answers 409 with a coded error; a sign-in carrying a session ' +
  'replaces it; below the cap again, signing in works', async (t) => {
  await eachTarget(t, async (t, target) => {
    const app = await makeApp(t, target.client(), {
      keyPrefix: target.prefix(), maxSessionsPerUser: { total: 3, mobile: 1 }, capPolicy: 'refuse',
    });
    const refused = async (ua: string, what: string) => {
      const res = await app.inject({ method: 'POST', url: '/login', payload: { user: 'full' }, headers: { 'user-agent': ua } });
      t.equal(res.statusCode, 409, `${what}: 409 (${res.body})`);
      t.equal(res.json().code, 'ERR_TIERED_SESSION_LIMIT', 'with the coded error');
      t.equal(tokenOf(res), undefined, 'and no session cookie');
    };
    const m1 = await login(app, 'full', { ua: UA.mobile });
    await refused(UA.mobile, 'a second mobile past the mobile cap');
    const d1 = await login(app, 'full', { ua: UA.desktop });
    const d2 = await login(app, 'full', { ua: UA.desktop });
    await refused(UA.desktop, 'a fourth session past the total');
    for (const s of [m1, d1, d2]) t.equal((await me(app, s.token)).statusCode, 200, 'nothing was ended');
    t.equal((await list(app, m1.token)).length, 3, 'the device list holds the three');

    const replaced = await app.inject({ method: 'POST', url: '/login', payload: { user: 'full' }, headers: { 'user-agent': UA.desktop },
      cookies: { [COOKIE]: d2.token } });
    t.equal(replaced.statusCode, 200, 'a sign-in carrying one of the sessions replaces it (it is ended first)');
    t.equal((await me(app, d2.token)).statusCode, 401, 'the carried session is ended');

    t.equal((await app.inject({ method: 'DELETE', url: `/sessions/${encodeURIComponent(d1.id)}`, cookies: { [COOKIE]: m1.token } }))
      .statusCode, 204, 'the user ends a device');
    const d3 = await login(app, 'full', { ua: UA.desktop });
    t.equal((await me(app, d3.token)).statusCode, 200, 'below the cap again, a sign-in works');
    t.equal((await list(app, m1.token)).length, 3);
  });
});
