// Security findings of the adoption review, each through the public surface: user ids that are
// not well-formed UTF-16, the stored client IP, a wrong secret for a cached id, the User-Agent
// bot pattern's cost, a sign-in that timed out after its write was sent, deeply frozen session
// data, a sign-in racing log-out-everywhere, and session ids that do not reveal their owner.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { parseDevice } from '../../lib/index.js';
import { BUCKETS } from '../../lib/core/token.js';
import { eachTarget, eachAdapter, makeApp, signIn, me, cacheTrusted, tokenOf, twoInstances, inspector,
  COOKIE } from '../fixtures/targets.js';
import { RedisServer, RedisClass, fastFail, sleep } from '../fixtures/redis.js';
import { DelayProxy } from '../fixtures/proxy.js';
import type { ActionContext } from '../fixtures/apps.js';

t.test('a user id that is not well-formed UTF-16 is refused, and never shares sessions with the id its UTF-8 encoding looks like',
  async (t) => {
  await eachTarget(t, async (t, target) => {
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix() });
    await cacheTrusted(app);
    const lone = 'evil\ud800';
    const replaced = 'evil\ufffd';
    for (const id of [lone, '\udc00evil', 'a\udfff\ud800b']) {
      const r = await app.inject({ method: 'POST', url: '/login', payload: { user: id } });
      t.equal(r.statusCode, 500, `${JSON.stringify(id)}: sign-in refused`);
      t.equal(r.json().code, 'ERR_TIERED_SESSION_BAD_USER_ID', 'with the bad-user-id code');
      t.equal(tokenOf(r), undefined, 'and no cookie');
    }
    const good = await signIn(app, replaced);
    const r = await me(app, good.token);
    t.equal(r.statusCode, 200, '"evil\\ufffd" signs in normally');
    t.equal(r.json().userId, replaced);
    const good2 = await signIn(app, replaced);
    t.same(await app.face.list(lone), [], 'the lone-surrogate id lists none of its look-alike\'s sessions');
    t.equal(await app.face.revoke(good.id, { owner: lone }), false, 'nor revokes one as its owner');
    t.equal(await app.face.revokeAll(lone), 0, 'nor revokes them all');
    t.equal((await app.face.list(replaced)).length, 2, 'the look-alike keeps both sessions');
    for (const s of [good, good2]) t.equal((await me(app, s.token)).statusCode, 200);
  });
});

t.test('behind a trusted proxy the client IP is stored only when it is an IP address: 12 KB of forwarded markup is stored as null',
  async (t) => {
  await eachTarget(t, async (t, target) => {
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix() }, { trustProxy: true });
    // Markup, bidi overrides and zero-width characters, as the UTF-8 bytes a header carries.
    const junk = Buffer.from('<img src=x onerror=alert(1)>\u202e\u200b"\'; DROP', 'utf8').toString('latin1');
    const cases: [string, string, string | null][] = [
      ['12 KB of markup and bidi characters', junk.repeat(Math.ceil(12 * 1024 / junk.length)), null],
      ['an IPv4 address', '203.0.113.7', '203.0.113.7'],
      ['an IPv6 address', '2001:db8::1', '2001:db8::1'],
      ['a host name', 'proxy.internal', null],
      ['an address with a port', '203.0.113.7:443', null],
      ['an empty header', '', '127.0.0.1'],
    ];
    const byId = new Map<string, string | null>();
    let last = '';
    for (const [what, xff, want] of cases) {
      const r = await app.inject({ method: 'POST', url: '/login', payload: { user: 'ip' }, headers: { 'x-forwarded-for': xff } });
      t.equal(r.statusCode, 200, `${what}: sign-in works`);
      byId.set(r.json().id, want);
      last = tokenOf(r)!;
    }
    const list = await app.inject({ url: '/sessions', cookies: { [COOKIE]: last } });
    t.equal(list.statusCode, 200);
    t.ok(list.body.length < 4000, `the device list stays small (${list.body.length} bytes)`);
    const sessions = list.json().sessions as { id: string; ip: string | null }[];
    t.equal(sessions.length, cases.length);
    for (const s of sessions) t.equal(s.ip, byId.get(s.id), `ip ${JSON.stringify(byId.get(s.id))} for ${s.id}`);
    const stored = await app.face.list('ip');
    t.same(stored.map((s) => s.ip).sort(), cases.map(([, , w]) => w).sort(), 'app.sessions.list shows the same');
  });
});

/** A token of the real shape whose id is nobody's. */
function unknownToken(): string {
  return `${randomBytes(29).toString('base64url').slice(0, 38)}.${randomBytes(32).toString('base64url')}`;
}

t.test('a wrong secret for a cached id is answered like an unknown id: 401 after one Redis read, counted as a local-cache miss',
  async (t) => {
  await eachTarget(t, async (t, target) => {
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix() });
    await cacheTrusted(app);
    const s = await signIn(app, 'victim');
    t.equal((await me(app, s.token)).statusCode, 200, 'the session is served (and cached)');
    const hits = app.face.stats().l1Hits;
    t.equal((await me(app, s.token)).statusCode, 200);
    t.equal(app.face.stats().l1Hits, hits + 1, 'from the local cache');

    const probe = async (token: string) => {
      const reads = await target.commandCalls('hgetall');
      const misses = app.face.stats().l1Misses;
      const r = await me(app, token);
      return { status: r.statusCode, body: r.body, reads: await target.commandCalls('hgetall') - reads,
        misses: app.face.stats().l1Misses - misses };
    };
    const wrongSecret = await probe(`${s.id}.${randomBytes(32).toString('base64url')}`);
    const unknown = await probe(unknownToken());
    t.same(wrongSecret, unknown, 'the same status, body, Redis reads and miss count');
    t.same({ status: wrongSecret.status, reads: wrongSecret.reads, misses: wrongSecret.misses }, { status: 401, reads: 1, misses: 1 },
      'a wrong secret for a cached id: 401 after one Redis read and one counted miss');
    t.equal((await me(app, s.token)).statusCode, 200, 'the real token still works');
  });
});

t.test('after a rotation whose broadcast has not arrived, an instance holding the old token in its cache accepts the new token at once ' +
  'and then refuses the old one', async (t) => {
  await eachTarget(t, async (t, target) => {
    const { a, b } = await twoInstances(t, target);
    const s = await signIn(a, 'rot');
    t.equal((await me(b, s.token)).statusCode, 200, 'B caches the session');
    t.equal((await me(b, s.token)).statusCode, 200);

    // A rotation that B has not heard of: the new secret's hash written to Redis, no broadcast
    // (the deterministic stand-in for "A's rotate returned, its message is still on its way").
    const secret = randomBytes(32).toString('base64url');
    const store = b.sessions.store;
    const insp = await inspector(target);
    await insp.hset(store.sessionKey(s.id), 'h', createHash('sha256').update(secret).digest('base64url').slice(0, 22));
    const received = b.face.stats().revocationsReceived;
    const fresh = await me(b, `${s.id}.${secret}`);
    t.equal(fresh.statusCode, 200, 'B accepts the new token at once');
    t.equal(fresh.json().id, s.id);
    t.equal((await me(b, s.token)).statusCode, 401, 'and then refuses the old one');
    t.equal((await me(b, `${s.id}.${secret}`)).statusCode, 200, 'the new one keeps working');
    t.equal(b.face.stats().revocationsReceived, received, 'no broadcast was involved');

    // The real thing: A rotates; B is asked right after A's answer.
    const rot = await a.inject({ method: 'POST', url: '/rotate', cookies: { [COOKIE]: `${s.id}.${secret}` } });
    t.equal(rot.statusCode, 200);
    const newest = tokenOf(rot)!;
    t.equal((await me(b, newest)).statusCode, 200, 'B accepts A\'s new token right after A answers');
    t.equal((await me(b, `${s.id}.${secret}`)).statusCode, 401, 'and refuses the token it replaced');
  });
});

t.test('parsing an adversarial User-Agent takes time linear in its length: 8192 characters cost less than 8 times 2048', async (t) => {
  // A long word with no bot suffix, in a User-Agent that the bot pattern must search (it names
  // curl): a pattern that may start a match anywhere inside the word retries from every
  // position, quadratic in its length (16 times the work for 4 times the length).
  const shapes: [string, (n: number, k: number) => string][] = [
    ['one long word', (n, k) => `x${String(k).padStart(6, '0')}${'a'.repeat(n - 12)} curl`],
    ['dots and dashes', (n, k) => `x${String(k).padStart(6, '0')}${'a.b-'.repeat(Math.floor((n - 12) / 4))} curl`],
  ];
  let k = 0;
  /** Median ms of 5 samples, each parsing 10 User-Agents of length n never parsed before (no cache hit). */
  const median = (make: (n: number, k: number) => string, n: number) => {
    const xs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const uas = Array.from({ length: 10 }, () => make(n, k++));
      const t0 = performance.now();
      for (const ua of uas) parseDevice(ua, 8192);
      xs.push(performance.now() - t0);
    }
    return xs.sort((x, y) => x - y)[2];
  };
  for (const [what, make] of shapes) {
    t.equal(make(8192, 0).length <= 8192, true);
    median(make, 2048); // warm-up
    const small = median(make, 2048);
    const large = median(make, 8192);
    t.ok(large < 8 * small, `${what}: 8192 chars took ${large.toFixed(2)} ms, 2048 took ${small.toFixed(2)} ms (ratio ` +
      `${(large / small).toFixed(1)}, linear ≈ 4, quadratic ≈ 16)`);
    t.equal(parseDevice(make(8192, 0), 8192).type, 'bot', 'and the User-Agent is still recognised as a bot');
  }
});

t.test('a sign-in that answered 503 because its command timed out after it was sent leaves no phantom session: not in the device list, ' +
  'not counted toward the cap, and the sessions its cap eviction removed come back', async (t) => {
  const server = await RedisServer.start();
  await eachAdapter(t, async (t) => {
    const admin = server.admin();
    t.teardown(() => admin.disconnect());
    // No client-side timeout: only the package's own commandTimeout bounds a call.
    const client = server.client({ commandTimeout: undefined });
    t.teardown(() => client.disconnect());
    const app = await makeApp(t, client, { keyPrefix: `t${randomBytes(4).toString('hex')}:`, commandTimeout: 500, maxSessionsPerUser: 2 });
    const s1 = await signIn(app, 'capped');
    const s2 = await signIn(app, 'capped');
    t.equal((await app.face.list('capped')).length, 2, 'the user is at the cap');

    // Writes (scripts included) wait in Redis until the pause ends, then run: the sign-ins time
    // out on the client while their creates still land afterwards.
    await admin.call('CLIENT', 'PAUSE', '1500', 'WRITE');
    const t0 = Date.now();
    const [capped, fresh] = await Promise.all([
      app.inject({ method: 'POST', url: '/login', payload: { user: 'capped' } }),
      app.inject({ method: 'POST', url: '/login', payload: { user: 'fresh' } }),
    ]);
    for (const [what, r] of [['at the cap', capped], ['without sessions', fresh]] as const) {
      t.equal(r.statusCode, 503, `a user ${what}: sign-in answers 503`);
      t.equal(tokenOf(r), undefined, 'with no cookie');
    }
    t.ok(Date.now() - t0 < 1400, `answered before the pause ended (${Date.now() - t0} ms)`);

    // After the pause the creates land; the manager revokes them once Redis answers.
    let listed: string[] = [];
    let freshListed = -1;
    const until = Date.now() + 8000;
    while (Date.now() < until) {
      listed = (await app.face.list('capped').catch(() => [])).map((s) => s.id).sort();
      freshListed = (await app.face.list('fresh').catch(() => [{}, {}])).length;
      if (Date.now() - t0 > 1600 && freshListed === 0 && listed.join() === [s1.id, s2.id].sort().join()) break;
      await sleep(100);
    }
    t.notOk(listed.some((id) => id !== s1.id && id !== s2.id), 'the capped user\'s list holds no phantom: only acknowledged sessions');
    t.equal(freshListed, 0, 'the other user has no session');
    // The late create ran the cap's eviction when it landed; the cleanup put the evicted
    // session back from the create's stash.
    t.same(listed, [s1.id, s2.id].sort(), 'both acknowledged sessions are listed');
    for (const s of [s1, s2]) t.equal((await me(app, s.token)).statusCode, 200, 'and work');
    t.ok(Date.now() - t0 < 5000, `cleaned up within ${Date.now() - t0} ms`);
    const s3 = await signIn(app, 'fresh');
    t.equal((await app.face.list('fresh')).length, 1, 'a later sign-in counts only itself');
    t.equal((await me(app, s3.token)).statusCode, 200);
  });
});

t.test('session.data is frozen all the way down: a nested write in a handler throws, and later requests on that instance see the ' +
  'original value', async (t) => {
  interface Nested { prefs: { theme: string; more: { deep: number }; added?: boolean }; roles: string[] }
  const attempts: Record<string, (data: Nested) => void> = {
    'a nested property': (d) => { d.prefs.theme = 'evil'; },
    'a nested array': (d) => { d.roles.push('admin'); },
    'an object inside an array': (d) => { d.roles[0] = 'admin'; },
    'a deeper level': (d) => { d.prefs.more.deep = 0; },
    'a new nested key': (d) => { d.prefs.added = true; },
  };
  const actions = {
    mutate: async (c: ActionContext) => {
      try {
        attempts[c.body.what as string](c.session!.data as unknown as Nested);
        return { threw: false };
      } catch (err) {
        return { threw: err instanceof TypeError };
      }
    },
  };
  await eachTarget(t, async (t, target) => {
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix() }, { actions });
    await cacheTrusted(app);
    const data = { prefs: { theme: 'light', more: { deep: 1 } }, roles: ['member'] };
    const s = await signIn(app, 'frozen', data);
    for (const round of ['from the sign-in\'s cache entry', 'from an entry read back from Redis']) {
      for (const what of Object.keys(attempts)) {
        const r = await app.inject({ method: 'POST', url: '/act/mutate', cookies: { [COOKIE]: s.token }, payload: { what } });
        t.same(r.json(), { threw: true }, `${round}: writing ${what} throws a TypeError`);
      }
      const after = await me(app, s.token);
      t.same(after.json().data, data, `${round}: the next request sees the original data`);
      app.sessions.invalidate([s.id]);
    }
  });
});

t.test('a sign-in racing a log-out-everywhere of the same user on another instance does not fill the local cache with the revoked session',
  async (t) => {
  // Deterministic order through a latency proxy in front of instance A: A's create reaches
  // Redis and lands; B then logs the user out everywhere (deleting the new session too); the
  // broadcast reaches A before the create's reply does. A's sign-in answers 200 with a token
  // whose session no longer exists: that token must be refused, not served from A's cache.
  await eachTarget(t, async (t, target) => {
    const proxy = await DelayProxy.start({ targetPort: target.server!.port, delayMs: 0 });
    t.teardown(() => proxy.close());
    const viaProxy = new RedisClass({ host: '127.0.0.1', port: proxy.port, ...fastFail, commandTimeout: undefined });
    viaProxy.on('error', () => {});
    t.teardown(() => viaProxy.disconnect());
    const keyPrefix = target.prefix();
    // A long heartbeat: no heartbeat message is on the wire while the delay is in force.
    const a = await makeApp(t, viaProxy, { keyPrefix, commandTimeout: 5000, heartbeatInterval: 20_000 });
    const b = await makeApp(t, target.client(), { keyPrefix });
    await cacheTrusted(a);
    await cacheTrusted(b);
    const earlier = await signIn(b, 'racer');
    const insp = await inspector(target);
    const index = a.sessions.store.indexKey(a.sessions.tagOf('racer'));
    t.equal(await insp.zcard(index), 1);

    proxy.setDelay(400);
    const pending = a.inject({ method: 'POST', url: '/login', payload: { user: 'racer' } });
    const until = Date.now() + 3000;
    while ((await insp.zcard(index)) < 2 && Date.now() < until) await sleep(5);
    t.equal(await insp.zcard(index), 2, 'A\'s create has landed in Redis (its reply is still on its way)');
    proxy.setDelay(0);
    const received = a.face.stats().revocationsReceived;
    t.equal(await b.face.revokeAll('racer'), 2, 'B logs the user out everywhere, the new session included');
    const login = await pending;
    t.equal(a.face.stats().revocationsReceived, received + 2, 'A had received the revocation before its sign-in answered');
    t.equal(login.statusCode, 200, 'A\'s sign-in answers 200 (its create succeeded)');
    const token = tokenOf(login)!;
    const misses = a.face.stats().l1Misses;
    t.equal((await me(a, token)).statusCode, 401, 'its token is refused on A');
    t.equal(a.face.stats().l1Misses, misses + 1, 'after a Redis read: the local cache held nothing for it');
    t.equal((await me(b, token)).statusCode, 401, 'and on B');
    t.equal((await me(a, earlier.token)).statusCode, 401);
  }, { only: ['single'] });
});

/** Redis Cluster's key slot (the `cluster-key-slot` package that ioredis routes with; it ships no types). */
const keySlot = createRequire(import.meta.url)('cluster-key-slot') as (key: string) => number;

t.test('a session id does not reveal its owner: its user part is keyed by the secret, yet all of a user\'s keys share one slot',
  async (t) => {
  await eachTarget(t, async (t, target) => {
    const keyPrefix = target.prefix();
    const one = await makeApp(t, target.client(), { keyPrefix, secret: 'first-secret-of-at-least-32-characters!!' });
    const two = await makeApp(t, target.client(), { keyPrefix, secret: 'second-secret-of-at-least-32-characters!' });
    const u = 'ursula@example.com';
    const [a1, a2, b1] = [await signIn(one, u), await signIn(one, u), await signIn(two, u)];
    const tag = a1.id.slice(0, 22);
    t.equal(a2.id.slice(0, 22), tag, 'one secret: every session of the user carries the same tag');
    t.not(b1.id.slice(0, 22), tag, 'another secret gives the same user another tag');
    const sha = (s: string) => createHash('sha256').update(s).digest('base64url').slice(0, 22);
    for (const [what, guess] of [['sha256(prefix \\0 userId)', sha(`${keyPrefix}\0${u}`)],
      ['sha256(prefix + userId)', sha(`${keyPrefix}${u}`)], ['sha256(userId)', sha(u)]]) {
      t.not(tag, guess, `the tag is not ${what} (what anyone could compute from a guessed user id)`);
      t.not(tag.slice(3), guess.slice(0, 19), `nor is its user part ${what}`);
    }

    // Every key of the user (sessions and index) hashes to one slot: multi-key scripts work on a cluster.
    const mine = (await target.keys(keyPrefix)).filter((k) => k.startsWith(`${keyPrefix}{${tag.slice(0, 3)}}`));
    t.ok(mine.length >= 3, `the user has ${mine.length} keys (two sessions and the index)`);
    t.same([...new Set(mine.map(keySlot))], [keySlot(`{${tag.slice(0, 3)}}`)], 'all in the slot of the bucket tag');
  }, { adapters: ['fastify'] });
});

t.test('the 256 bucket tags hash to 256 evenly spaced cluster slots: BUCKETS[i] is slot i × 64', async (t) => {
  t.equal(BUCKETS.length, 256);
  const wrong = BUCKETS.map((b, i) => [b, i, keySlot(`x{${b}}y`)] as const).filter(([, i, slot]) => slot !== i * 64);
  t.same(wrong, [], 'every bucket i hashes to slot i × 64');
  t.equal(new Set(BUCKETS).size, 256, 'no two buckets are the same');
  t.ok(BUCKETS.every((b) => /^[A-Za-z0-9_-]{3}$/.test(b)), 'each is 3 base64url characters');
});
