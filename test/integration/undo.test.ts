// A sign-in that timed out after it was sent may still land, and is undone later: its session
// goes and the sessions its cap eviction removed come back from a stash. No such undo may bring
// back a session that a revocation answered in between ended: log out everywhere, a sign-out,
// a later sign-in's cap eviction. Real Redis (single and Cluster), stalled by a long script.
import t, { type Test } from 'tap';
import { COOKIE, eachTarget, makeApp, me, signIn, type Signed, type Target, type TestApp } from '../fixtures/targets.js';
import { sleep } from '../fixtures/redis.js';

/** Keep a Redis server busy for `ms` (one script: nothing else runs meanwhile, then everything queued does, in order). */
const STALL = `local t = redis.call('TIME')
local start = tonumber(t[1]) * 1000000 + tonumber(t[2])
repeat t = redis.call('TIME') until tonumber(t[1]) * 1000000 + tonumber(t[2]) - start >= tonumber(ARGV[1]) * 1000
return 1`;

const ROUNDS = 3;
// The app's commandTimeout (a README option) below the stall: the third sign-in, sent about
// 50 ms into the stall, answers 503 at ~350 ms and lands when the stall ends (500 ms); the
// revocation sent after the 503 is answered then; the undo's first attempt comes 250 ms after
// the 503 (~600 ms). The stall may start up to ~200 ms late on a loaded machine.
const COMMAND_TIMEOUT = 300;
const STALL_MS = 500;

/**
 * Cap 2, S1 (least recently active) and S2; Redis stalled; a third sign-in answers 503 but
 * lands and evicts S1; `revocation` is sent while Redis is still stalled (on the same
 * connection, so it runs right after the late create) and answered; the undo runs after.
 */
async function scenario(t: Test, target: Target, app: TestApp, user: string, revocation: (s1: Signed, s2: Signed) => Promise<number>) {
  const s1 = await signIn(app, user);
  await sleep(5);
  const s2 = await signIn(app, user);
  // Connected first, so the stall starts at once.
  const admins = target.admins();
  await Promise.all(admins.map((a) => a.ping()));
  const stalls = admins.map((a) => a.eval(STALL, 0, STALL_MS).catch(() => {}));
  await sleep(50);
  const third = await app.inject({ method: 'POST', url: '/login', payload: { user } });
  t.equal(third.statusCode, 503, 'the third sign-in answers 503 (Redis stalled past the commandTimeout)');
  const status = await revocation(s1, s2);
  await Promise.all(stalls);
  return { s1, s2, status };
}

const sameOrigin = { 'sec-fetch-site': 'same-origin' };

t.test('log out everywhere is not undone by the undo of a sign-in that timed out: the session the late sign-in evicted stays revoked',
  async (t) => {
  await eachTarget(t, async (t, target) => {
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix(), maxSessionsPerUser: 2, commandTimeout: COMMAND_TIMEOUT });
    for (let round = 1; round <= ROUNDS; round++) {
      const user = `undo-${round}`;
      const { s1, s2, status } = await scenario(t, target, app, user, (_s1, s2) => app.inject({
        method: 'POST', url: '/sessions/logout-everywhere', cookies: { [COOKIE]: s2.token }, payload: {}, headers: sameOrigin,
      }).then((r) => r.statusCode));
      t.equal(status, 200, `round ${round}: log out everywhere answers 200`);
      // Past the undo's retries (250 ms, then 500, 1000 … after the 503).
      await sleep(2500);
      t.equal((await me(app, s1.token)).statusCode, 401, `round ${round}: S1 stays signed out`);
      t.equal((await me(app, s2.token)).statusCode, 401, 'S2 too');
      t.same(await app.face.list(user), [], 'and the device list is empty');
    }
  }, { adapters: ['fastify', 'express5'] });
});

t.test("a sign-out with the evicted session's own cookie is not undone either (resolved from the local cache, or found by its token)",
  async (t) => {
  await eachTarget(t, async (t, target) => {
    for (const localCache of [undefined, false] as const) {
      const app = await makeApp(t, target.client(),
        { keyPrefix: target.prefix(), maxSessionsPerUser: 2, commandTimeout: COMMAND_TIMEOUT, localCache });
      for (let round = 1; round <= ROUNDS; round++) {
        const user = `undo-out-${round}`;
        const { s1, s2, status } = await scenario(t, target, app, user,
          (s1) => app.inject({ method: 'POST', url: '/logout', cookies: { [COOKIE]: s1.token }, headers: sameOrigin }).then((r) =>
            r.statusCode));
        t.equal(status, 204, `${localCache === false ? 'no local cache' : 'local cache'}, round ${round}: S1 signs out`);
        await sleep(2500);
        t.equal((await me(app, s1.token)).statusCode, 401, 'S1 stays signed out');
        t.same((await app.face.list(user)).map((s) => s.id), [s2.id], 'the device list holds S2 alone');
      }
    }
  }, { adapters: ['fastify'] });
});

t.test('a later sign-in\'s cap eviction is not undone either: the undo of the timed-out sign-in brings back nothing over the cap',
  async (t) => {
  await eachTarget(t, async (t, target) => {
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix(), maxSessionsPerUser: 2, commandTimeout: COMMAND_TIMEOUT });
    for (let round = 1; round <= ROUNDS; round++) {
      const user = `undo-cap-${round}`;
      let fourth = '';
      const { s1, s2, status } = await scenario(t, target, app, user, async () => {
        const r = await app.inject({ method: 'POST', url: '/login', payload: { user } });
        fourth = r.statusCode === 200 ? r.json().id : '';
        return r.statusCode;
      });
      t.equal(status, 200, `round ${round}: a fourth sign-in answers 200 (its cap evicts S2, the least recently active)`);
      await sleep(2500);
      t.equal((await me(app, s1.token)).statusCode, 401, 'S1 stays signed out');
      t.equal((await me(app, s2.token)).statusCode, 401, 'S2 too');
      t.same((await app.face.list(user)).map((s) => s.id), [fourth], 'the device list holds the fourth sign-in alone');
    }
  }, { adapters: ['fastify'] });
});

t.test('a sign-out by token is checked against the secret on the primary: a token with a live session\'s id and another secret ends ' +
  'nothing', async (t) => {
  await eachTarget(t, async (t, target) => {
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix(), localCache: false });
    const s = await signIn(app, 'forged');
    // The id is public (the device list shows it); the secret is not.
    const forged = `${s.id}.${'A'.repeat(s.secret.length)}`;
    for (const url of ['/logout', '/login']) {
      const r = await app.inject({ method: 'POST', url, cookies: { [COOKIE]: forged }, payload: { user: 'mallory' }, headers: sameOrigin });
      t.ok(r.statusCode === 204 || r.statusCode === 200, `POST ${url} with the forged cookie answers ${r.statusCode}`);
      t.equal((await me(app, s.token)).statusCode, 200, 'the real session is still signed in');
    }
    t.same((await app.face.list('forged')).map((x) => x.id), [s.id]);
  }, { adapters: ['fastify'] });
});
