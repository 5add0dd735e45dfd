import { createHash } from 'node:crypto';
import t from 'tap';
import { eachTarget, makeApp, tokenOf, cacheTrusted, type Target, me, signIn, assertAllKeysExpire, eachKey, eventually, COOKIE,
  inspector } from '../fixtures/targets.js';
import type { TestApp } from '../fixtures/targets.js';
import type { ActionContext } from '../fixtures/apps.js';
import { RedisClass, ClusterClass, fastFail } from '../fixtures/redis.js';


/** Every key and every value under `prefix`, as text. */
async function dump(target: Target, prefix: string): Promise<string[]> {
  const out: string[] = [];
  await eachKey(target, prefix, async (admin, key) => {
    out.push(key);
    const type = await admin.type(key);
    if (type === 'hash') {
      const h = await admin.hgetall(key);
      for (const [f, v] of Object.entries(h)) out.push(f, v);
    } else if (type === 'zset') {
      out.push(...(await admin.zrange(key, 0, -1, 'WITHSCORES')));
    } else if (type === 'string') {
      out.push(String(await admin.get(key)));
    } else if (type === 'set') {
      out.push(...(await admin.smembers(key)));
    } else if (type === 'list') {
      out.push(...(await admin.lrange(key, 0, -1)));
    } else {
      out.push(`<unexpected type ${type}>`);
    }
  });
  return out;
}

/** Whether any key under `prefix` belongs to `user`'s tag. */
async function userKeys(app: TestApp, target: Target, prefix: string, user: string): Promise<string[]> {
  const tag = app.sessions.tagOf(user);
  return (await target.keys(prefix)).filter((k) => k.includes(`{${tag}}`));
}

class Unplain { x = 1; }

const BAD_DATA: Record<string, () => object> = {
  bigint: () => ({ n: 10n as unknown as number }),
  date: () => ({ when: new Date(0) }),
  'top-level date': () => new Date(0),
  'class instance': () => ({ c: new Unplain() }),
  'top-level class instance': () => new Unplain(),
  function: () => ({ f: () => 1 }),
  circular: () => {
    const o: Record<string, unknown> = { a: 1 };
    o.self = o;
    return o;
  },
};

/** Actions the tests add to the test app (POST /act/<name>, body { kind }). */
const extraRoutes = {
  actions: {
    'login-bad': async (c: ActionContext) => ({ id: (await c.signIn('bad-login-user', { data: BAD_DATA[c.body.kind as string]() })).id }),
    'update-bad': async (c: ActionContext) => {
      if (c.session === null) return null;
      await c.update(BAD_DATA[c.body.kind as string]());
      return { ok: true };
    },
  },
};

t.test('a user signs in, is resolved on the next request, signs out, and is then refused with 401', async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    const app = await makeApp(t, target.client(), { keyPrefix: prefix });
    await cacheTrusted(app);
    const { token, id } = await signIn(app, 'alice');
    const r1 = await me(app, token);
    t.equal(r1.statusCode, 200);
    t.same(r1.json(), { id, userId: 'alice', data: {} });
    const out = await app.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: token } });
    t.equal(out.statusCode, 204);
    const cleared = String((out.headers['set-cookie'] as string[] | string));
    t.match(cleared, new RegExp(`^${COOKIE}=;`), 'sign-out clears the cookie');
    // A browser ignores a __Host- cookie (even a clearing one) without Secure and Path=/.
    t.match(cleared, /; Max-Age=0(;|$)/i, 'with Max-Age=0');
    t.match(cleared, /; Path=\/(;|$)/, 'with Path=/');
    t.match(cleared, /; Secure(;|$)/i, 'with Secure');
    const r2 = await me(app, token);
    t.equal(r2.statusCode, 401);
    t.equal(r2.json().code, 'ERR_TIERED_SESSION_NO_SESSION');
    t.same(await userKeys(app, target, prefix, 'alice'), [], 'no key of the signed-out session is left');
    await assertAllKeysExpire(t, target, prefix);
  });
});

t.test('rotating a session mints a new working token, kills the old one on every instance, and keeps the public id', async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    const a = await makeApp(t, target.client(), { keyPrefix: prefix }, extraRoutes);
    const b = await makeApp(t, target.client(), { keyPrefix: prefix });
    await cacheTrusted(a);
    await cacheTrusted(b);
    const { token: oldToken, id } = await signIn(a, 'bob');
    // Both instances have the old token in L1.
    t.equal((await me(a, oldToken)).statusCode, 200);
    t.equal((await me(b, oldToken)).statusCode, 200);
    const rot = await a.inject({ method: 'POST', url: '/rotate', cookies: { [COOKIE]: oldToken } });
    t.equal(rot.statusCode, 200);
    const newToken = tokenOf(rot);
    t.ok(newToken, 'rotation sets a new cookie');
    t.not(newToken, oldToken);
    t.equal(newToken!.slice(0, 38), id, 'the new token carries the same public id');
    t.equal(rot.json().id, id);
    t.equal((await me(a, oldToken)).statusCode, 401, 'old token refused on the rotating instance');
    // The other instance learns through the broadcast (milliseconds; allow 500 ms).
    const other = await eventually(() => me(b, oldToken), (r) => r.statusCode === 401);
    t.equal(other.statusCode, 401, 'old token refused on the other instance');
    for (const app of [a, b]) {
      const r = await me(app, newToken!);
      t.equal(r.statusCode, 200);
      t.equal(r.json().id, id, 'same public id after rotation');
    }
    const list = await a.sessions.list('bob');
    t.equal(list.length, 1, 'rotation does not add a device record');
    t.equal(list[0].id, id);
    await assertAllKeysExpire(t, target, prefix);
  });
});

t.test('updateSession persists data that the next request sees, on this instance and on a second instance that reads Redis', async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    const a = await makeApp(t, target.client(), { keyPrefix: prefix }, extraRoutes);
    const warm = await makeApp(t, target.client(), { keyPrefix: prefix });
    await cacheTrusted(a);
    await cacheTrusted(warm);
    const { token, id } = await signIn(a, 'carol', { role: 'member' });
    t.same((await me(a, token)).json().data, { role: 'member' }, 'initial data from sign-in');
    t.same((await me(warm, token)).json().data, { role: 'member' }, 'another instance caches the old data');
    const up = await a.inject({ method: 'POST', url: '/update', cookies: { [COOKIE]: token }, payload: { data: { role: 'admin', n: 2 } } });
    t.equal(up.statusCode, 200);
    t.same(up.json(), { id, data: { role: 'admin', n: 2 } }, 'updateSession answers the new data');
    t.same((await me(a, token)).json().data, { role: 'admin', n: 2 }, 'next request on the same instance');
    t.same((await me(a, token)).json().data, { role: 'admin', n: 2 }, 'and the one after (L1 hit)');
    const seen = await eventually(() => me(warm, token), (r) => r.json().data?.role === 'admin');
    t.same(seen.json().data, { role: 'admin', n: 2 }, 'the instance that had cached the old data sees the new data');
    const b = await makeApp(t, target.client(), { keyPrefix: prefix });
    const rb = await me(b, token);
    t.equal(rb.statusCode, 200);
    t.same(rb.json().data, { role: 'admin', n: 2 }, 'a fresh instance reads the new data from Redis');
    const c = await makeApp(t, target.client(), { keyPrefix: prefix, localCache: false });
    t.same((await me(c, token)).json().data, { role: 'admin', n: 2 }, 'an instance without L1 reads it too');
    await assertAllKeysExpire(t, target, prefix);
  });
});

t.test('the default session cookie is __Host-sid, Secure, HttpOnly, SameSite=Lax, Path=/, has no Domain and a Max-Age of the absolute ' +
  'timeout', async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    const clock = 1_800_000_000_000;
    const absoluteTimeout = 7 * 24 * 3600_000;
    const app = await makeApp(t, target.client(), { keyPrefix: prefix, absoluteTimeout, idleTimeout: 3600_000, now: () => clock });
    const res = await app.inject({ method: 'POST', url: '/login', payload: { user: 'dave' } });
    t.equal(res.statusCode, 200);
    const raw = res.headers['set-cookie'];
    const lines = Array.isArray(raw) ? raw : [String(raw)];
    t.equal(lines.length, 1, 'exactly one cookie is set');
    const [pair, ...attrs] = lines[0].split(';').map((s) => s.trim());
    t.equal(pair.slice(0, pair.indexOf('=')), '__Host-sid', 'cookie name');
    const map = new Map<string, string | true>();
    for (const a of attrs) {
      const eq = a.indexOf('=');
      map.set((eq === -1 ? a : a.slice(0, eq)).toLowerCase(), eq === -1 ? true : a.slice(eq + 1));
    }
    t.equal(map.get('secure'), true, 'Secure');
    t.equal(map.get('httponly'), true, 'HttpOnly');
    t.equal(map.get('samesite'), 'Lax', 'SameSite=Lax');
    t.equal(map.get('path'), '/', 'Path=/');
    t.notOk(map.has('domain'), 'no Domain');
    t.equal(map.get('max-age'), String(absoluteTimeout / 1000), 'Max-Age = absolute timeout in seconds');
    const expected = new Set(['secure', 'httponly', 'samesite', 'path', 'max-age', 'expires']);
    t.same([...map.keys()].filter((k) => !expected.has(k)), [], 'no other attribute');
  });
});

t.test('a fresh sign-in gets a Max-Age of exactly the absolute timeout even when the clock moves during sign-in', async (t) => {
  await eachTarget(t, async (t, target) => {
    // A clock that moves 1 ms per reading: what the real clock does whenever a millisecond passes
    // during the Redis round trip of sign-in (most sign-ins). The session's absolute deadline is
    // createdAt + absoluteTimeout, so the cookie of a new session should say absoluteTimeout.
    let ms = 1_800_000_000_000;
    const absoluteTimeout = 30 * 24 * 3600_000;
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix(), absoluteTimeout, now: () => ms++ });
    const res = await app.inject({ method: 'POST', url: '/login', payload: { user: 'erin' } });
    t.equal(res.statusCode, 200);
    const m = /Max-Age=(\d+)/i.exec(String(res.headers['set-cookie']));
    t.equal(m?.[1], String(absoluteTimeout / 1000), 'Max-Age');
  });
});

t.test('the token never appears in a response body or a header other than Set-Cookie', async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    const app = await makeApp(t, target.client(), { keyPrefix: prefix, maxDataBytes: 64 }, extraRoutes);
    await cacheTrusted(app);
    const { token, res: login } = await signIn(app, 'frank');
    const secret = token.slice(39);
    const responses = [login];
    const raw = await app.inject({ method: 'POST', url: '/login-raw', payload: { user: 'frank' } });
    responses.push(raw);
    const rawToken = tokenOf(raw)!;
    responses.push(await me(app, token));
    responses.push(await app.inject({ url: '/me-raw', cookies: { [COOKIE]: token } }));
    responses.push(await app.inject({ url: '/list-raw', cookies: { [COOKIE]: token } }));
    responses.push(await app.inject({ url: '/sessions', cookies: { [COOKIE]: token } }));
    responses.push(await app.inject({ method: 'DELETE', url: `/sessions/${encodeURIComponent(token)}`, cookies: { [COOKIE]: token } }));
    responses.push(await app.inject({ method: 'DELETE', url: `/sessions/${secret}`, cookies: { [COOKIE]: token } }));
    responses.push(await app.inject({ method: 'POST', url: '/update', cookies: { [COOKIE]: token },
      payload: { data: { big: 'x'.repeat(200) } } }));
    responses.push(await app.inject({ method: 'POST', url: '/act/update-bad', payload: { kind: 'circular' },
      cookies: { [COOKIE]: token } }));
    responses.push(await app.inject({ method: 'POST', url: '/sessions/logout-everywhere', cookies: { [COOKIE]: token }, payload: '[1]',
      headers: { 'content-type': 'application/json' } }));
    responses.push(await app.inject({ method: 'POST', url: '/sessions/logout-everywhere', cookies: { [COOKIE]: token },
      headers: { 'sec-fetch-site': 'cross-site' } }));
    const rot = await app.inject({ method: 'POST', url: '/rotate', cookies: { [COOKIE]: token } });
    responses.push(rot);
    const rotated = tokenOf(rot)!;
    responses.push(await me(app, token)); // 401 with the old token
    responses.push(await app.inject({ url: '/sessions', cookies: { [COOKIE]: rotated } }));
    t.same(responses.map((r) => r.statusCode), [200, 200, 200, 200, 200, 200, 404, 404, 413, 500, 400, 403, 200, 401, 200],
      'the expected answers');
    for (const [i, r] of responses.entries()) {
      for (const s of [token, secret, rotated, rotated.slice(39), rawToken.slice(39)]) {
        t.notOk(r.body.includes(s), `response ${i}: body holds no token or secret`);
        for (const [h, v] of Object.entries(r.headers)) {
          if (h !== 'set-cookie') t.notOk(String(v).includes(s), `response ${i}: header ${h} holds no token or secret`);
        }
      }
    }
  });
});

t.test('Redis holds nothing from which a cookie can be rebuilt: only sha256 of the secret', async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    const app = await makeApp(t, target.client(), { keyPrefix: prefix, prewarm: 10, touchInterval: 0 }, extraRoutes);
    await cacheTrusted(app);
    const tokens: string[] = [];
    for (const user of ['gina', 'gina', 'hank']) tokens.push((await signIn(app, user, { note: 'x' })).token);
    // Touch, rotate and update too, so every write path has run.
    await me(app, tokens[0]);
    const rot = await app.inject({ method: 'POST', url: '/rotate', cookies: { [COOKIE]: tokens[1] } });
    tokens.push(tokenOf(rot)!);
    await app.inject({ method: 'POST', url: '/update', cookies: { [COOKIE]: tokens[2] }, payload: { data: { y: 1 } } });
    await app.sessions.flushTouches();
    await new Promise((r) => setTimeout(r, 50));
    const all = await dump(target, prefix);
    t.ok(all.length > 0, 'there is something to inspect');
    const text = all.join('\n');
    for (const [i, token] of tokens.entries()) {
      const secret = token.slice(39);
      t.notOk(text.includes(secret), `token ${i}: its secret appears nowhere in Redis`);
      t.notOk(text.includes(secret.slice(0, 16)), `token ${i}: not even a 16-character piece of the secret`);
    }
    // The live secrets' hashes are what Redis holds (token 1 was rotated away).
    for (const i of [0, 2, 3]) {
      const digest = createHash('sha256').update(tokens[i].slice(39)).digest('base64url').slice(0, 22);
      t.ok(all.includes(digest), `token ${i}: sha256(secret), base64url, first 22 chars, is stored`);
    }
    t.notOk(all.includes(createHash('sha256').update(tokens[1].slice(39)).digest('base64url').slice(0, 22)),
      'the rotated-away hash is gone');
    await assertAllKeysExpire(t, target, prefix);
  });
});

t.test('signing in with a session cookie revokes that session and mints a new token (fixation)', async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    const app = await makeApp(t, target.client(), { keyPrefix: prefix });
    await cacheTrusted(app);
    const first = await signIn(app, 'ivy');
    t.equal((await me(app, first.token)).statusCode, 200);
    const second = await signIn(app, 'ivy', undefined, first.token);
    t.not(second.token, first.token, 'a new token');
    t.not(second.id, first.id, 'a new public id');
    t.equal((await me(app, first.token)).statusCode, 401, 'the carried session is revoked');
    t.equal((await me(app, second.token)).statusCode, 200, 'the new one works');
    const ids = (await app.sessions.list('ivy')).map((s) => s.id);
    t.same(ids, [second.id], 'only the new session is left');
    await assertAllKeysExpire(t, target, prefix);
  });
});

t.test('signing in while carrying another user\'s session cookie revokes that other session', async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    const app = await makeApp(t, target.client(), { keyPrefix: prefix });
    await cacheTrusted(app);
    const victim = await signIn(app, 'jack');
    t.equal((await me(app, victim.token)).statusCode, 200);
    const mine = await signIn(app, 'kate', undefined, victim.token);
    t.equal((await me(app, victim.token)).statusCode, 401, 'the other user\'s session is revoked');
    const r = await me(app, mine.token);
    t.equal(r.statusCode, 200);
    t.equal(r.json().userId, 'kate');
    t.same(await app.sessions.list('jack'), [], 'jack has no session left');
    t.same(await userKeys(app, target, prefix, 'jack'), [], 'no key of jack is left');
    await assertAllKeysExpire(t, target, prefix);
  });
});

t.test('session data larger than maxDataBytes is refused with 413 and nothing is written', async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    const app = await makeApp(t, target.client(), { keyPrefix: prefix, maxDataBytes: 100 }, extraRoutes);
    await cacheTrusted(app);
    const big = { blob: 'x'.repeat(200) };
    const res = await app.inject({ method: 'POST', url: '/login', payload: { user: 'leo', data: big } });
    t.equal(res.statusCode, 413);
    t.equal(res.json().code, 'ERR_TIERED_SESSION_DATA_TOO_LARGE');
    t.equal(tokenOf(res), undefined, 'no cookie');
    t.same(await userKeys(app, target, prefix, 'leo'), [], 'no key created for the user');
    // Exactly at the limit is fine; one byte more is not.
    const exact = { s: 'y'.repeat(100 - JSON.stringify({ s: '' }).length) };
    const ok = await signIn(app, 'leo', exact);
    const stored = await (await inspector(target)).hget(app.sessions.store.sessionKey(ok.id), 'j');
    t.equal(Buffer.byteLength(stored ?? ''), 100, 'data of exactly maxDataBytes is accepted and stored whole (100 bytes in Redis)');
    const over = await app.inject({ method: 'POST', url: '/update', cookies: { [COOKIE]: ok.token },
      payload: { data: { s: `${exact.s}z` } } });
    t.equal(over.statusCode, 413);
    t.equal(over.json().code, 'ERR_TIERED_SESSION_DATA_TOO_LARGE');
    // Multi-byte characters count as bytes, not characters.
    const wide = await app.inject({ method: 'POST', url: '/update', cookies: { [COOKIE]: ok.token },
      payload: { data: { s: 'é'.repeat(60) } } });
    t.equal(wide.statusCode, 413, 'the limit is in UTF-8 bytes');
    t.same((await me(app, ok.token)).json().data, exact, 'existing data unchanged');
    const fresh = await makeApp(t, target.client(), { keyPrefix: prefix, localCache: false });
    t.same((await me(fresh, ok.token)).json().data, exact, 'existing data unchanged in Redis');
    await assertAllKeysExpire(t, target, prefix);
  });
});

t.test('session data that is not plain JSON (BigInt, Date, class instance, function, circular) is refused with a coded error and nothing ' +
  'is written', async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    const app = await makeApp(t, target.client(), { keyPrefix: prefix }, extraRoutes);
    await cacheTrusted(app);
    const fresh = await makeApp(t, target.client(), { keyPrefix: prefix, localCache: false });
    const owner = await signIn(app, 'mia', { keep: 'me' });
    for (const kind of Object.keys(BAD_DATA)) {
      const r = await app.inject({ method: 'POST', url: '/act/login-bad', payload: { kind } });
      t.equal(r.statusCode, 500, `sign-in with ${kind}: status`);
      t.equal(r.json().code, 'ERR_TIERED_SESSION_DATA_NOT_SERIALIZABLE', `sign-in with ${kind}: code`);
      t.equal(tokenOf(r), undefined, `sign-in with ${kind}: no cookie`);
      const u = await app.inject({ method: 'POST', url: '/act/update-bad', payload: { kind }, cookies: { [COOKIE]: owner.token } });
      t.equal(u.statusCode, 500, `update with ${kind}: status`);
      t.equal(u.json().code, 'ERR_TIERED_SESSION_DATA_NOT_SERIALIZABLE', `update with ${kind}: code`);
    }
    t.same(await userKeys(app, target, prefix, 'bad-login-user'), [], 'no key created for the user');
    t.same((await me(app, owner.token)).json().data, { keep: 'me' }, 'existing data unchanged');
    t.same((await me(fresh, owner.token)).json().data, { keep: 'me' }, 'existing data unchanged in Redis');
    await assertAllKeysExpire(t, target, prefix);
  });
});

t.test('a request without a cookie has request.session null and costs no Redis command', async (t) => {
  await eachTarget(t, async (t, target) => {
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix(), heartbeatInterval: 60_000 });
    await cacheTrusted(app);
    const before = await target.commandCalls('hgetall') + await target.commandCalls('evalsha');
    for (let i = 0; i < 20; i++) {
      const r = await app.inject({ url: '/public' });
      t.equal(r.statusCode, 200);
      t.same(r.json(), { signedIn: false });
    }
    t.same((await app.inject({ url: '/public', headers: { cookie: 'other=1; __Host-sid=nonsense' } })).json(), { signedIn: false },
      'a malformed cookie is no session');
    t.equal((await app.inject({ url: '/me' })).statusCode, 401);
    const after = await target.commandCalls('hgetall') + await target.commandCalls('evalsha');
    t.equal(after - before, 0, 'no read and no script');
  });
});


t.test('a route with config.session false never resolves the cookie nor reads Redis, and signIn / signOut there still replace the ' +
  'carried session', async (t) => {
  await eachTarget(t, async (t, target) => {
    const keyPrefix = target.prefix();
    // No L1: every resolve on a route with sessions would be an HGETALL.
    const app = await makeApp(t, target.client(), { keyPrefix, localCache: false });
    const s = await signIn(app, 'opal');
    const before = await target.commandCalls('hgetall');
    for (let i = 0; i < 10; i++) {
      const r = await app.inject({ url: '/asset', cookies: { [COOKIE]: s.token } });
      t.same(r.json(), { signedIn: false }, 'request.session is null on the opted-out route');
    }
    t.equal(await target.commandCalls('hgetall') - before, 0, 'ten requests with a valid cookie: no Redis read');
    t.same((await app.inject({ url: '/public', cookies: { [COOKIE]: s.token } })).json(), { signedIn: true },
      'control: other routes resolve it');
    t.equal(await target.commandCalls('hgetall') - before, 1, 'control: and that costs the one read (the counter works)');

    // Sign-in on an opted-out route still revokes the session the browser carried (fixation).
    const res = await app.inject({ method: 'POST', url: '/login-public', payload: { user: 'opal' }, cookies: { [COOKIE]: s.token } });
    t.equal(res.statusCode, 200);
    const fresh = tokenOf(res)!;
    t.equal((await me(app, s.token)).statusCode, 401, 'the carried session was revoked');
    t.equal((await me(app, fresh)).statusCode, 200, 'the new one works');
    // Sign-out there revokes the session too, not only the cookie.
    t.equal((await app.inject({ method: 'POST', url: '/logout-public', cookies: { [COOKIE]: fresh } })).statusCode, 204);
    t.equal((await me(app, fresh)).statusCode, 401, 'signed out on the opted-out route: the session is gone from Redis');
    t.same(await app.sessions.list('opal'), [], 'no session of opal is left');
  });
});
t.test('app.sessions.list, revoke and revokeAll work for code outside a request', async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    const app = await makeApp(t, target.client(), { keyPrefix: prefix });
    await cacheTrusted(app);
    const s = [await signIn(app, 'nora'), await signIn(app, 'nora'), await signIn(app, 'nora')];
    const other = await signIn(app, 'oscar');
    for (const x of s) t.equal((await me(app, x.token)).statusCode, 200);
    const listed = await app.sessions.list('nora');
    t.same(listed.map((x) => x.id).sort(), s.map((x) => x.id).sort(), 'list shows the three sessions');
    t.ok(listed.every((x) => x.userId === 'nora'));
    t.equal(await app.sessions.revoke(s[0].id, 'oscar'), false, 'revoke with the wrong owner refuses');
    t.equal((await me(app, s[0].token)).statusCode, 200, 'and the session still works');
    t.equal(await app.sessions.revoke(s[0].id), true, 'revoke one');
    t.equal(await app.sessions.revoke(s[0].id), false, 'revoking it again finds nothing');
    t.equal((await me(app, s[0].token)).statusCode, 401);
    t.same((await app.sessions.list('nora')).map((x) => x.id).sort(), [s[1].id, s[2].id].sort());
    t.equal(await app.sessions.revokeAll('nora'), 2, 'revokeAll counts the rest');
    for (const x of s) t.equal((await me(app, x.token)).statusCode, 401);
    t.same(await app.sessions.list('nora'), []);
    t.same(await userKeys(app, target, prefix, 'nora'), [], 'no key of nora is left');
    t.equal((await me(app, other.token)).statusCode, 200, 'another user is untouched');
    t.equal(await app.sessions.revokeAll('nora'), 0, 'revokeAll with nothing left');
    await assertAllKeysExpire(t, target, prefix);
  });
});

t.test('app.sessions.revokeEveryone ends every session of every user under its prefix, on every instance, and nothing under another ' +
  'prefix', async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    const a = await makeApp(t, target.client(), { keyPrefix: prefix });
    const b = await makeApp(t, target.client(), { keyPrefix: prefix });
    const elsewhere = await makeApp(t, target.client(), { keyPrefix: target.prefix() });
    for (const app of [a, b, elsewhere]) await cacheTrusted(app);
    // Enough users to spread over every master of the Cluster.
    const users = Array.from({ length: 12 }, (_, i) => `breach-${i}`);
    const all: Awaited<ReturnType<typeof signIn>>[] = [];
    for (const u of users) all.push(await signIn(a, u), await signIn(b, u));
    const kept = await signIn(elsewhere, 'breach-0');
    for (const s of all) t.equal((await me(b, s.token)).statusCode, 200);
    t.equal(await a.sessions.revokeEveryone(), all.length, `it ends all ${all.length} sessions and says so`);
    for (const s of all) t.equal((await me(a, s.token)).statusCode, 401, 'refused on the instance that ended them');
    t.equal(await eventually(async () => {
      let live = 0;
      for (const s of all) if ((await me(b, s.token)).statusCode === 200) live++;
      return live;
    }, (n) => n === 0, 3000), 0, 'and on the other instance, which had them cached');
    for (const u of users) t.same(await a.sessions.list(u), [], `${u} has no session left`);
    t.equal((await me(elsewhere, kept.token)).statusCode, 200, 'a session under another key prefix is untouched');
    const again = await signIn(b, 'breach-0');
    t.equal((await me(a, again.token)).statusCode, 200, 'signing in afterwards works');
    t.equal(await a.sessions.revokeEveryone(), 1, 'and a second sweep ends that one');
  });
});

t.test('an app on a client created with lazyConnect: true connects it at start and serves sign-in and /me', async (t) => {
  await eachTarget(t, async (t, target) => {
    const lazy = target.name === 'single'
      ? new RedisClass({ host: '127.0.0.1', port: target.server!.port, ...fastFail, lazyConnect: true })
      : new ClusterClass(target.cluster!.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })), {
        redisOptions: { ...fastFail }, enableOfflineQueue: false, lazyConnect: true,
      });
    lazy.on('error', () => {});
    t.teardown(() => lazy.disconnect());
    t.equal(lazy.status, 'wait', 'the client is not connected when the app is made');
    const app = await makeApp(t, lazy, { keyPrefix: target.prefix() });
    // The connect is started by the package, not awaited by it: allow it a moment.
    let login = await app.inject({ method: 'POST', url: '/login', payload: { user: 'lazy' } });
    for (let i = 0; i < 50 && login.statusCode === 503; i++) {
      await new Promise((r) => setTimeout(r, 100));
      login = await app.inject({ method: 'POST', url: '/login', payload: { user: 'lazy' } });
    }
    t.equal(login.statusCode, 200, `sign-in answers 200 (${login.body})`);
    t.equal(lazy.status, 'ready', 'the client is connected');
    const token = tokenOf(login);
    t.ok(token, 'with a session cookie');
    const r = await me(app, token!);
    t.equal(r.statusCode, 200, '/me answers 200');
    t.equal(r.json().userId, 'lazy');
    await cacheTrusted(app);
    t.equal(app.face.stats().channel, 'confirmed', 'and the revocation channel is confirmed');
  });
});
