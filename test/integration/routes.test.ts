// The device routes through inject() against real Redis: the list, revoke one, log out
// everywhere, the owner check, hostile ids, cross-site refusal, the cap, expiry, country.
import t, { type Test } from 'tap';
import type { TieredSessionOptions } from '../../lib/index.js';
import { eachTarget, makeApp, tokenOf, cacheTrusted, eventually, type Target } from '../fixtures/targets.js';
import type { TestApp } from '../fixtures/targets.js';

const COOKIE = '__Host-sid';
const UA = {
  chrome: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
  firefox: 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0',
  iphone: 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 ' +
    'Safari/604.1',
};
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

interface Sess { user: string; id: string; token: string }

/** A clock the test moves by hand (epoch ms, starts at the real time). */
function manualClock() {
  const c = { t: Date.now(), now: () => c.t, advance: (ms: number) => { c.t += ms; } };
  return c;
}

async function signIn(t: Test, app: TestApp, user: string, headers: Record<string, string> = {}): Promise<Sess> {
  const r = await app.inject({ method: 'POST', url: '/login', payload: { user }, headers });
  t.equal(r.statusCode, 200, `${user} signs in`);
  const token = tokenOf(r);
  if (!token) throw new Error(`no cookie for ${user}: ${r.statusCode} ${r.body}`);
  return { user, id: r.json().id, token };
}

const me = (app: TestApp, s: Sess) => app.inject({ url: '/me', cookies: { [COOKIE]: s.token } });
const list = (app: TestApp, s: Sess) => app.inject({ url: '/sessions', cookies: { [COOKIE]: s.token } });
const revoke = (app: TestApp, s: Sess, id: string, headers: Record<string, string> = {}) =>
  app.inject({ method: 'DELETE', url: `/sessions/${id}`, cookies: { [COOKIE]: s.token }, headers });
const everywhere = (app: TestApp, s: Sess, init: { payload?: unknown; headers?: Record<string, string> } = {}) =>
  app.inject({
    method: 'POST',
    url: '/sessions/logout-everywhere',
    cookies: { [COOKIE]: s.token },
    headers: init.headers,
    ...(init.payload === undefined ? {} : { payload: init.payload as string | object }),
  });

async function ids(app: TestApp, s: Sess): Promise<string[]> {
  const r = await list(app, s);
  if (r.statusCode !== 200) throw new Error(`list: ${r.statusCode} ${r.body}`);
  return (r.json().sessions as { id: string }[]).map((x) => x.id);
}

/** Which of `sessions` still answer /me with 200. */
async function alive(app: TestApp, sessions: Sess[]): Promise<string[]> {
  const out: string[] = [];
  for (const s of sessions) if ((await me(app, s)).statusCode === 200) out.push(s.id);
  return out;
}

/** A cleared session cookie: empty value, expired. */
function clearsCookie(res: { headers: Record<string, unknown> }): boolean {
  const raw = res.headers['set-cookie'];
  const lines = (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw]) as string[];
  return lines.some((l) => l.startsWith(`${COOKIE}=;`) && (/Max-Age=0/i.test(l) || /Expires=Thu, 01 Jan 1970/i.test(l)));
}

async function app3(t: Test, target: Target, options: Partial<TieredSessionOptions> = {}) {
  const app = await makeApp(t, target.client(), { keyPrefix: target.prefix(), ...options });
  await cacheTrusted(app);
  return app;
}

t.test('device routes', async (t) => {
  await eachTarget(t, async (t, target) => {
    await t.test('GET /sessions lists every device of the user: current first, then most recently active, ISO times, no-store',
      async (t) => {
      const clock = manualClock();
      const app = await app3(t, target, { now: clock.now, touchInterval: 1000 });
      const chrome = await signIn(t, app, 'alice', { 'user-agent': UA.chrome });
      clock.advance(10);
      const firefox = await signIn(t, app, 'alice', { 'user-agent': UA.firefox });
      clock.advance(10);
      const iphone = await signIn(t, app, 'alice', { 'user-agent': UA.iphone });
      const bob = await signIn(t, app, 'bob', { 'user-agent': UA.chrome });
      // Chrome is used two seconds later: it becomes the most recently active.
      clock.advance(2000);
      t.equal((await me(app, chrome)).statusCode, 200);
      const chromeActive = clock.t;
      await app.sessions.flushTouches();
      // Every request touches its own session too (touchInterval has passed for all of them):
      // the clock moves between requests so that no two share a last-active time.
      clock.advance(10);

      const r = await list(app, firefox);
      t.equal(r.statusCode, 200);
      t.equal(r.headers['cache-control'], 'no-store');
      t.match(r.headers['content-type'], /application\/json/);
      const { sessions } = r.json();
      t.same(sessions.map((s: { id: string }) => s.id), [firefox.id, chrome.id, iphone.id], 'current, then by last activity');
      t.same(sessions.map((s: { current: boolean }) => s.current), [true, false, false]);
      for (const s of sessions) {
        t.same(Object.keys(s).sort(), ['country', 'createdAt', 'current', 'device', 'expiresAt', 'id', 'ip', 'lastActiveAt',
          'remembered', 'newDevice'].sort(), 'exactly the documented fields');
        t.equal(s.newDevice, false, 'newDevice: false with knownDevices off');
        t.same(Object.keys(s.device).sort(), ['browser', 'name', 'os', 'type']);
        for (const k of ['createdAt', 'lastActiveAt', 'expiresAt']) {
          t.match(s[k], ISO, `${k} is an ISO-8601 string`);
          t.equal(new Date(s[k]).toISOString(), s[k]);
        }
        t.ok(Date.parse(s.createdAt) <= Date.parse(s.lastActiveAt) && Date.parse(s.lastActiveAt) < Date.parse(s.expiresAt),
          'created ≤ last active < expires');
        t.equal(s.ip, '127.0.0.1');
        t.equal(s.country, null, 'no country header configured');
      }
      t.same(sessions[0].device, { name: 'Firefox 133 on Linux', browser: 'Firefox', os: 'Linux', type: 'desktop' });
      t.same(sessions[1].device, { name: 'Chrome 131 on Windows', browser: 'Chrome', os: 'Windows', type: 'desktop' });
      t.same(sessions[2].device, { name: 'Safari on iPhone', browser: 'Safari', os: 'iOS', type: 'mobile' });
      // This request's own touch is queued or being written while the list is read: either value.
      t.ok([new Date(clock.t).toISOString(), sessions[0].createdAt].includes(sessions[0].lastActiveAt), 'current last active');
      t.equal(sessions[1].lastActiveAt, new Date(chromeActive).toISOString(), 'the earlier touch is in the list');
      t.equal(sessions[2].lastActiveAt, sessions[2].createdAt, 'untouched since sign-in');
      for (const s of [chrome, firefox, iphone, bob]) t.notOk(r.body.includes(s.token.split('.')[1]), 'no secret in the list');
      t.notOk(r.body.includes(bob.id), 'no other user\'s session in the list');

      // Another device sees itself first; Firefox was active after Chrome now.
      await app.sessions.flushTouches();
      clock.advance(10);
      t.same(await ids(app, iphone), [iphone.id, firefox.id, chrome.id]);
      t.same(await ids(app, bob), [bob.id]);

      const anon = await app.inject({ url: '/sessions' });
      t.equal(anon.statusCode, 401);
      t.equal(anon.json().code, 'ERR_TIERED_SESSION_NO_SESSION');
      t.equal(anon.headers['cache-control'], 'no-store');
    });

    await t.test('DELETE /sessions/:id revokes that device: 204, its token answers 401, it leaves the list, a repeat answers 404',
      async (t) => {
      const app = await app3(t, target);
      const a = await signIn(t, app, 'alice', { 'user-agent': UA.chrome });
      const b = await signIn(t, app, 'alice', { 'user-agent': UA.firefox });
      const c = await signIn(t, app, 'alice', { 'user-agent': UA.iphone });
      t.same(await alive(app, [a, b, c]), [a.id, b.id, c.id], 'all three work (and sit in the local cache)');

      const r = await revoke(app, a, b.id);
      t.equal(r.statusCode, 204);
      t.equal(r.body, '');
      t.notOk(clearsCookie(r), 'revoking another device leaves the caller\'s cookie alone');
      t.equal((await me(app, b)).statusCode, 401, 'the revoked token answers 401 at once');
      t.equal((await list(app, b)).statusCode, 401);
      t.same(await ids(app, a), [a.id, c.id]);
      t.same(await alive(app, [a, c]), [a.id, c.id], 'the others still work');

      const again = await revoke(app, a, b.id);
      t.equal(again.statusCode, 404);
      t.same(again.json(), { statusCode: 404, code: 'ERR_TIERED_SESSION_NOT_FOUND', error: 'Not Found', message: 'Session not found' });
      t.equal(again.headers['cache-control'], 'no-store');
    });

    await t.test('DELETE of the current session signs it out and clears the cookie', async (t) => {
      const app = await app3(t, target);
      const a = await signIn(t, app, 'alice');
      const b = await signIn(t, app, 'alice');
      const r = await revoke(app, a, a.id);
      t.equal(r.statusCode, 204);
      t.ok(clearsCookie(r), `cookie cleared: ${r.headers['set-cookie']}`);
      t.equal((await me(app, a)).statusCode, 401);
      t.same(await ids(app, b), [b.id]);
    });

    await t.test('another user\'s id and an unknown id answer the same 404, and nothing is revoked', async (t) => {
      const app = await app3(t, target);
      const alice = await signIn(t, app, 'alice');
      const bob = await signIn(t, app, 'bob');
      const unknownOwn = alice.id.slice(0, 22) + 'AAAAAAAAAAAAAAAA';
      const unknownOther = 'Z'.repeat(38);
      const answers = [];
      for (const id of [bob.id, unknownOwn, unknownOther]) {
        const r = await revoke(app, alice, id);
        t.equal(r.statusCode, 404, `DELETE ${id}`);
        answers.push({ body: r.body, type: r.headers['content-type'], length: r.headers['content-length'] });
      }
      t.same(answers[0], answers[1], 'foreign and unknown (own tag) look the same');
      t.same(answers[0], answers[2], 'foreign and unknown (other tag) look the same');
      t.same(await alive(app, [alice, bob]), [alice.id, bob.id]);
      t.same(await ids(app, bob), [bob.id]);
    });

    await t.test('the revoke script checks the stored owner itself: naming another user revokes nothing, even where the tag check before ' +
      'Redis is not in the way', async (t) => {
      const app = await app3(t, target);
      const alice = await signIn(t, app, 'alice');
      const bob = await signIn(t, app, 'bob');
      const store = app.sessions.store;
      const heard = app.sessions.stats().revocationsReceived;
      // Straight at the store: the manager's tag check (the first of the two owner checks) never
      // sees this call, so only the script's comparison with the stored user can refuse it.
      t.equal(await store.revoke(bob.id, 'alice', Date.now()), false, 'the script refuses to revoke bob\'s session for alice');
      t.same(await alive(app, [alice, bob]), [alice.id, bob.id], 'bob\'s session still works');
      t.same(await ids(app, bob), [bob.id], 'and is still listed');
      t.equal(app.sessions.stats().revocationsReceived, heard, 'no revocation was published');
      // Control: the stored owner, or no owner at all, does revoke.
      t.equal(await store.revoke(bob.id, 'bob', Date.now()), true, 'naming the stored owner revokes it');
      t.equal(await store.revoke(alice.id, '', Date.now()), true, 'naming no owner revokes any session');
      for (const s of [alice, bob]) {
        const r = await eventually(() => me(app, s), (x) => x.statusCode === 401);
        t.equal(r.statusCode, 401, `${s.user}'s session is refused once the broadcast arrives`);
      }
    });

    await t.test('malformed, huge and path-like ids answer 404 (400 or 414 from the router) and revoke nothing', async (t) => {
      const keyPrefix = target.prefix();
      const app = await app3(t, target, { keyPrefix });
      const a = await signIn(t, app, 'alice');
      const b = await signIn(t, app, 'alice');
      const bob = await signIn(t, app, 'bob');
      const keysBefore = (await target.keys(keyPrefix)).length;
      const idB = b.id;
      const paths = [
        'x', '*', '%2A', `${idB.slice(0, -1)}*`, `${idB.slice(0, 22)}*`, '?', '%3F', `${idB.slice(0, -1)}%3F`,
        '..', '%2e%2e', `${idB.slice(0, -2)}..`, `../${idB}`, `%2E%2E%2F${idB}`,
        '%00', `${idB}%00`, `${idB.slice(0, -1)}%00`, '%2F', `${idB}%2F`, `a%2F${idB}`, `${idB.slice(0, 19)}%2F${idB.slice(20)}`,
        idB.slice(0, -1), `${idB}A`, idB.toLowerCase() === idB ? idB.toUpperCase() : idB.toLowerCase(),
        'A'.repeat(257), 'A'.repeat(5000), `${idB}${'A'.repeat(300)}`,
        `${idB.slice(0, -1)}%C3%A9`, '%E2%80%AE' + idB.slice(1), '__proto__', 'constructor', `${idB}.${b.token.split('.')[1]}`,
        encodeURIComponent(b.token), '%', '%zz', '',
      ];
      for (const p of paths) {
        const r = await revoke(app, a, p);
        t.ok([400, 404, 414].includes(r.statusCode), `DELETE /sessions/${p.length > 60 ? p.slice(0, 60) + '…' : p} → ${r.statusCode}`);
      }
      t.same(await alive(app, [a, b, bob]), [a.id, b.id, bob.id], 'every session still works');
      t.equal((await ids(app, a)).length, 2);
      t.equal((await target.keys(keyPrefix)).length, keysBefore, 'no key was removed');
    });

    await t.test('POST /sessions/logout-everywhere revokes every session of the user, another user unaffected', async (t) => {
      const app = await app3(t, target);
      const a = await signIn(t, app, 'alice', { 'user-agent': UA.chrome });
      const b = await signIn(t, app, 'alice', { 'user-agent': UA.firefox });
      const c = await signIn(t, app, 'alice', { 'user-agent': UA.iphone });
      const bob = await signIn(t, app, 'bob');
      t.same(await alive(app, [a, b, c, bob]), [a.id, b.id, c.id, bob.id]);

      const r = await everywhere(app, b);
      t.equal(r.statusCode, 200);
      t.same(r.json(), { revoked: 3 });
      t.equal(r.headers['cache-control'], 'no-store');
      t.ok(clearsCookie(r), 'the caller\'s cookie is cleared');
      t.same(await alive(app, [a, b, c, bob]), [bob.id], 'only bob is left');
      t.equal((await list(app, a)).statusCode, 401);
      t.same(await ids(app, bob), [bob.id]);

      // An empty JSON object is "keepCurrent: false" as well.
      const d = await signIn(t, app, 'alice');
      const e = await signIn(t, app, 'alice');
      const r2 = await everywhere(app, d, { payload: {} });
      t.same(r2.json(), { revoked: 2 });
      t.same(await alive(app, [d, e, bob]), [bob.id]);
    });

    await t.test('logout-everywhere with { keepCurrent: true } keeps the caller\'s session and cookie', async (t) => {
      const app = await app3(t, target);
      const a = await signIn(t, app, 'alice');
      const b = await signIn(t, app, 'alice');
      const c = await signIn(t, app, 'alice');
      const bob = await signIn(t, app, 'bob');
      const r = await everywhere(app, a, { payload: { keepCurrent: true } });
      t.equal(r.statusCode, 200);
      t.same(r.json(), { revoked: 2 });
      t.equal(r.headers['set-cookie'], undefined, 'no cookie change');
      t.same(await alive(app, [a, b, c, bob]), [a.id, bob.id]);
      t.same(await ids(app, a), [a.id]);
      const again = await everywhere(app, a, { payload: { keepCurrent: true } });
      t.same(again.json(), { revoked: 0 });
      t.same(await alive(app, [a]), [a.id]);
    });

    await t.test('logout-everywhere refuses bad bodies (prototype poisoning, wrong types) with 400 and revokes nothing', async (t) => {
      const app = await app3(t, target);
      const a = await signIn(t, app, 'alice');
      const b = await signIn(t, app, 'alice');
      const json = { 'content-type': 'application/json' };
      const bodies: [string, Record<string, string>][] = [
        ['{"__proto__":{"x":1}}', json],
        ['{"keepCurrent":true,"__proto__":{"keepCurrent":true}}', json],
        ['{"constructor":{"prototype":{"x":1}}}', json],
        ['{"keepCurrent":"yes"}', json],
        ['{"keepCurrent":1}', json],
        ['[]', json],
        ['[true]', json],
        ['"keepCurrent"', json],
        ['true', json],
        ['{"keepCurrent":', json],
        ['', json],
      ];
      for (const [payload, headers] of bodies) {
        const r = await everywhere(app, a, { payload, headers });
        t.equal(r.statusCode, 400, `body ${JSON.stringify(payload)} → 400`);
        t.equal(typeof r.json().code, 'string', 'a coded JSON error');
      }
      t.same(({} as Record<string, unknown>).x, undefined, 'Object.prototype untouched');
      t.same(await alive(app, [a, b]), [a.id, b.id], 'nothing revoked');
    });

    await t.test('cross-site DELETE and logout-everywhere answer 403 and change nothing', async (t) => {
      const app = await app3(t, target);
      const a = await signIn(t, app, 'alice');
      const b = await signIn(t, app, 'alice');
      const bob = await signIn(t, app, 'bob');
      const hostile: Record<string, string>[] = [
        { 'sec-fetch-site': 'cross-site' },
        { 'sec-fetch-site': 'cross-site', origin: 'http://localhost:80' },
        { origin: 'https://evil.example' },
        { origin: 'null' },
        { origin: 'http://localhost:80.evil.example' },
        { 'sec-fetch-site': 'same-site', origin: 'https://app.example' },
        { host: 'app.example', origin: 'https://app.example:8443' },
      ];
      for (const headers of hostile) {
        const r1 = await revoke(app, a, b.id, headers);
        t.equal(r1.statusCode, 403, `DELETE with ${JSON.stringify(headers)}`);
        t.equal(r1.json().code, 'ERR_TIERED_SESSION_CROSS_SITE');
        const r2 = await everywhere(app, a, { headers });
        t.equal(r2.statusCode, 403, `logout-everywhere with ${JSON.stringify(headers)}`);
        t.equal(r2.headers['set-cookie'], undefined, 'no cookie change');
        const r3 = await everywhere(app, a, { headers, payload: { keepCurrent: true } });
        t.equal(r3.statusCode, 403);
      }
      t.same(await alive(app, [a, b, bob]), [a.id, b.id, bob.id], 'nothing revoked');
      t.same((await ids(app, a)).sort(), [a.id, b.id].sort());

      // The same origin (and a same-origin fetch) passes.
      const ok = await revoke(app, a, b.id, { host: 'app.example', origin: 'http://app.example', 'sec-fetch-site': 'same-origin' });
      t.equal(ok.statusCode, 204, 'same-origin request allowed');
      // Behind a TLS-terminating proxy (no trustProxy): the app sees plain HTTP and its own
      // Host, the browser says https. Its Sec-Fetch-Site decides; without it, host:port does.
      const c = await signIn(t, app, 'alice');
      const d = await signIn(t, app, 'alice');
      const proxied = await revoke(app, a, c.id,
        { host: '10.0.0.5:3000', origin: 'https://app.example.com', 'sec-fetch-site': 'same-origin' });
      t.equal(proxied.statusCode, 204, 'a same-origin request through a TLS-terminating proxy passes (Sec-Fetch-Site: same-origin)');
      const older = await revoke(app, a, d.id, { host: 'app.example.com', origin: 'https://app.example.com' });
      t.equal(older.statusCode, 204, 'without Sec-Fetch-Site, an Origin whose host equals the Host header passes whatever its scheme');
    });

    await t.test('allowedOrigins lets a configured origin through, and only that one', async (t) => {
      const app = await app3(t, target, { allowedOrigins: ['https://app.example.com'] });
      const a = await signIn(t, app, 'alice');
      const b = await signIn(t, app, 'alice');
      const c = await signIn(t, app, 'alice');
      const host = { host: 'api.example.com' };
      for (const origin of ['https://app.example.com.evil.example', 'http://app.example.com', 'https://evil.example', 'null']) {
        t.equal((await revoke(app, a, b.id, { ...host, origin })).statusCode, 403, `${origin} refused`);
      }
      t.same(await alive(app, [a, b, c]), [a.id, b.id, c.id]);
      const r = await revoke(app, a, b.id, { ...host, origin: 'https://app.example.com', 'sec-fetch-site': 'same-site' });
      t.equal(r.statusCode, 204, 'configured origin allowed');
      const r2 = await everywhere(app, a,
        { headers: { ...host, origin: 'https://APP.example.com', 'sec-fetch-site': 'cross-site' }, payload: { keepCurrent: true } });
      t.equal(r2.statusCode, 200, 'origins compare case-insensitively, and a configured origin passes even when the browser calls it ' +
        'cross-site');
      t.same(r2.json(), { revoked: 1 });
      t.same(await alive(app, [a, b, c]), [a.id]);
    });

    await t.test('maxSessionsPerUser evicts the least recently active session, whose token then answers 401', async (t) => {
      const clock = manualClock();
      const app = await app3(t, target, { now: clock.now, touchInterval: 1000, maxSessionsPerUser: 3 });
      const s1 = await signIn(t, app, 'alice', { 'user-agent': UA.chrome });
      clock.advance(10);
      const s2 = await signIn(t, app, 'alice', { 'user-agent': UA.firefox });
      clock.advance(10);
      const s3 = await signIn(t, app, 'alice', { 'user-agent': UA.iphone });
      const bob = await signIn(t, app, 'bob');
      // s1, the oldest sign-in, is used later: s2 becomes the least recently active. (s2 sits
      // in the local cache since its sign-in: the eviction must reach it there.)
      clock.advance(2000);
      t.equal((await me(app, s1)).statusCode, 200);
      await app.sessions.flushTouches();
      clock.advance(10);

      const s4 = await signIn(t, app, 'alice');
      t.same(await ids(app, s4), [s4.id, s1.id, s3.id], 's2 was evicted');
      t.equal((await me(app, s2)).statusCode, 401, 'the evicted token answers 401');
      t.same(await alive(app, [s1, s3, s4, bob]), [s1.id, s3.id, s4.id, bob.id]);
      t.equal((await revoke(app, s4, s2.id)).statusCode, 404, 'the evicted id is unknown');
    });

    await t.test('expired sessions leave the list and the index', async (t) => {
      const clock = manualClock();
      const app = await app3(t, target, { now: clock.now, idleTimeout: 60_000, touchInterval: 1000 });
      const a = await signIn(t, app, 'alice');
      const b = await signIn(t, app, 'alice');
      clock.advance(30_000);
      t.equal((await me(app, a)).statusCode, 200, 'a is active at +30 s');
      await app.sessions.flushTouches();
      clock.advance(31_000);
      t.same(await ids(app, a), [a.id], 'b, idle for 61 s, is gone from the list');
      t.equal((await me(app, b)).statusCode, 401);
      // The index keeps a member until its hash is gone (clocks may disagree; a live session is
      // always indexed). Let Redis expire b's hash, as its real TTL would, and list again.
      const store = app.sessions.store;
      await store.client.del(store.sessionKey(b.id));
      t.same(await ids(app, a), [a.id]);
      const index = await store.client.zrange(store.indexKey(a.id.slice(0, 22)), 0, -1);
      t.same(index, [a.id.slice(22)], 'the index was pruned of the member whose session is gone');
      await app.sessions.flushTouches();
      clock.advance(59_000);
      t.same(await ids(app, a), [a.id], 'a was touched at +61 s and lives until +121 s');
      // That request touched it again (+120 s → +180 s); 61 s without a request end it.
      await app.sessions.flushTouches();
      clock.advance(61_000);
      t.equal((await list(app, a)).statusCode, 401, 'and then it expires too');
      t.equal((await me(app, a)).statusCode, 401);
    });

    await t.test('countryHeader stores a valid alpha-2 country in upper case and null otherwise', async (t) => {
      const app = await app3(t, target, { countryHeader: 'cf-ipcountry' });
      const values: [string | undefined, string | null][] = [
        ['de', 'DE'], ['GB', 'GB'], ['Fr', 'FR'],
        ['XX', null], ['xx', null], ['T1', null], ['abc', null], ['1', null], ['D1', null], ['', null], [' DE', null],
        ['DE\u202e', null], ['<b>', null], [undefined, null],
      ];
      const byId = new Map<string, string | null>();
      let last: Sess | undefined;
      for (const [v, want] of values) {
        last = await signIn(t, app, 'alice', v === undefined ? {} : { 'cf-ipcountry': v });
        byId.set(last.id, want);
      }
      const r = await list(app, last!);
      for (const s of r.json().sessions as { id: string; country: string | null }[]) {
        t.equal(s.country, byId.get(s.id), `country for ${s.id}`);
      }
      t.equal(r.json().sessions.length, values.length);
    });

    await t.test('a 15 KB User-Agent signs in and is stored as a short device name', async (t) => {
      const app = await app3(t, target);
      const big = await signIn(t, app, 'alice', { 'user-agent': `${UA.chrome} ${'A'.repeat(15 * 1024)}` });
      const junk = await signIn(t, app, 'alice', { 'user-agent': `\u202e<script>x</script>${'\u0000('.repeat(7680)}` });
      const r = await list(app, big);
      t.equal(r.statusCode, 200);
      t.ok(r.body.length < 2000, `the list stays small (${r.body.length} bytes)`);
      const [first, second] = r.json().sessions;
      t.same(first.device, { name: 'Chrome 131 on Windows', browser: 'Chrome', os: 'Windows', type: 'desktop' });
      t.equal(second.id, junk.id);
      t.ok(second.device.name.length <= 80);
      t.notMatch(second.device.name, /[\p{Cc}\u202e<]/u);
      const stored = await app.sessions.store.client.hget(app.sessions.store.sessionKey(big.id), 'd');
      t.ok(stored !== null && stored.length < 200, `stored device field is short (${stored?.length})`);
    });
  });
});

t.test('the app\'s own login guarded by refuseCrossSite follows the same cross-site rule as the device routes', async (t) => {
  await eachTarget(t, async (t, target) => {
    const app = await app3(t, target);
    const login = (headers: Record<string, string>) =>
      app.inject({ method: 'POST', url: '/login-guarded', payload: { user: 'proxied' }, headers });

    // Behind a TLS-terminating proxy the app sees plain HTTP and its internal Host; the browser
    // sends https://… as Origin and says same-origin. That is a same-origin sign-in.
    const proxied = await login({ 'sec-fetch-site': 'same-origin', origin: 'https://app.example.com', host: 'internal:3000' });
    t.equal(proxied.statusCode, 200, `a same-origin login behind a TLS-terminating proxy passes (${proxied.body})`);
    const token = tokenOf(proxied);
    t.ok(token, 'and sets the session cookie');
    t.equal((await me(app, { user: 'proxied', id: proxied.json().id, token: token! })).statusCode, 200, 'the new session works');
    const typed = await login({ 'sec-fetch-site': 'none', host: 'internal:3000' });
    t.equal(typed.statusCode, 200, 'Sec-Fetch-Site: none (a typed URL, a bookmark) passes');
    const older = await login({ origin: 'https://internal:3000', host: 'internal:3000' });
    t.equal(older.statusCode, 200, 'without Sec-Fetch-Site, an Origin whose host:port is the Host passes whatever its scheme');
    const noBrowser = await login({});
    t.equal(noBrowser.statusCode, 200, 'a request with neither header (not a browser) passes');

    const before = (await app.face.list('proxied')).length;
    for (const headers of [
      { 'sec-fetch-site': 'cross-site', origin: 'https://evil.example', host: 'internal:3000' } as Record<string, string>,
      { 'sec-fetch-site': 'same-site', origin: 'https://evil.app.example.com', host: 'internal:3000' },
      { 'sec-fetch-site': 'cross-site', host: 'internal:3000' },
      { origin: 'https://evil.example', host: 'internal:3000' },
      { origin: 'null', host: 'internal:3000' },
      { origin: 'https://internal:3000.evil.example', host: 'internal:3000' },
    ]) {
      const r = await login(headers);
      t.equal(r.statusCode, 403, `cross-site login refused: ${JSON.stringify(headers)}`);
      t.equal(r.json().code, 'ERR_TIERED_SESSION_CROSS_SITE');
      t.equal(tokenOf(r), undefined, 'no session cookie');
    }
    t.equal((await app.face.list('proxied')).length, before, 'no refused login created a session');
  });
});
