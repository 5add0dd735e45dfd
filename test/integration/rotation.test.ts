// Rotating `secret` over two instances: A and B run with s1 (a single string, as before
// rotation existed), are recreated with [s2, s1], then with [s3, s2, s1], a user signing in on
// each in every period. The device list, revoke-one and log-out-everywhere reach the sessions of
// every age from either instance, the cap counts all of them, and once s1 leaves the list its
// sessions stop working.
import { createHmac } from 'node:crypto';
import t from 'tap';
import {
  eachTarget, eventually, makeApp, signIn, me, COOKIE, cacheTrusted, type Signed, type Target, type TestApp,
} from '../fixtures/targets.js';
import { BUCKETS } from '../../lib/core/token.js';

const S1 = 'rotation-secret-one-0123456789-abcdefghij';
const S2 = 'rotation-secret-two-0123456789-abcdefghij';
const S3 = 'rotation-secret-three-0123456789-abcdefgh';

/** The tag the single-secret code gave a user (HMAC-SHA256(secret, keyPrefix \0 userId)): upgrades keep it. */
function oldTag(secret: string, keyPrefix: string, userId: string): string {
  const mac = createHmac('sha256', secret).update(`${keyPrefix}\0${userId}`).digest();
  return BUCKETS[mac[0]] + mac.subarray(1).toString('base64url').slice(0, 19);
}

const list = async (app: TestApp, s: Signed): Promise<string[]> => {
  const r = await app.inject({ url: '/sessions', cookies: { [COOKIE]: s.token } });
  if (r.statusCode !== 200) throw new Error(`list: ${r.statusCode} ${r.body}`);
  return (r.json().sessions as { id: string }[]).map((x) => x.id).sort();
};
const ids = (ss: Signed[]) => ss.map((s) => s.id).sort();

/** Which of `ss` answer /me with 200 on `app`. */
async function alive(app: TestApp, ss: Signed[]): Promise<string[]> {
  const out: string[] = [];
  for (const s of ss) if ((await me(app, s.token)).statusCode === 200) out.push(s.id);
  return out.sort();
}

t.test('rotating through three secrets over two instances: every session stays in reach until its secret is dropped', async (t) => {
  await eachTarget(t, async (t, target: Target) => {
    const keyPrefix = target.prefix();
    /** A and B on `secret`, as after a restart (the earlier pair idles until the teardown closes it). */
    const restart = async (secret: string | string[], secretB = secret): Promise<[TestApp, TestApp]> => {
      const a = await makeApp(t, target.client(), { keyPrefix, secret, maxSessionsPerUser: 6 });
      const b = await makeApp(t, target.client(), { keyPrefix, secret: secretB, maxSessionsPerUser: 6 });
      await cacheTrusted(a);
      await cacheTrusted(b);
      return [a, b];
    };

    // A on the single string, B on a list of one: the same thing.
    let [a, b] = await restart(S1, [S1]);
    const a1 = await signIn(a, 'ana');
    const b1 = await signIn(b, 'ana');
    const bo1 = await signIn(a, 'bo');
    t.equal(a1.id.slice(0, 22), oldTag(S1, keyPrefix, 'ana'), 'a single secret tags as before rotation existed');
    t.equal(b1.id.slice(0, 22), a1.id.slice(0, 22), 'and so does a list of one');
    t.same(await list(b, a1), ids([a1, b1]), 'each lists the other\'s session');

    [a, b] = await restart([S2, S1]);
    t.same(await alive(b, [a1, b1]), ids([a1, b1]), 'the s1 sessions work on the restarted instances');
    const a2 = await signIn(a, 'ana');
    const b2 = await signIn(b, 'ana');
    const bo2 = await signIn(b, 'bo');
    t.equal(a2.id.slice(0, 22), oldTag(S2, keyPrefix, 'ana'), 'the first secret tags new sessions');

    [a, b] = await restart([S3, S2, S1]);
    const a3 = await signIn(a, 'ana');
    const b3 = await signIn(b, 'ana');
    const all = [a1, b1, a2, b2, a3, b3];
    for (const [name, app] of [['A', a], ['B', b]] as const) {
      t.same(await alive(app, all), ids(all), `${name}: the sessions of every age work`);
      for (const s of [a1, b3]) t.same(await list(app, s), ids(all),
        `${name}: the list from a session of ${s === a1 ? 's1' : 's3'} holds all six`);
    }

    // Revoke one: an s1 session from an s3 session on B, and an s3 session from an s1 session on A.
    t.equal((await b.inject({ method: 'DELETE', url: `/sessions/${a1.id}`, cookies: { [COOKIE]: b3.token } })).statusCode, 204,
      'B revokes an s1 session from an s3 one');
    t.equal((await a.inject({ method: 'DELETE', url: `/sessions/${b3.id}`, cookies: { [COOKIE]: b1.token } })).statusCode, 204,
      'A revokes an s3 session from an s1 one');
    // A foreign id under an older tag is still refused (the owner check holds for every listed tag).
    t.equal((await a.inject({ method: 'DELETE', url: `/sessions/${bo1.id}`, cookies: { [COOKIE]: a3.token } })).statusCode, 404,
      'another user\'s s1 session is not ana\'s to revoke');
    const left = [b1, a2, b2, a3];
    // Each instance drops its own revocation at once and hears the other's over the channel.
    for (const app of [a, b]) {
      t.same(await eventually(() => alive(app, [a1, b3, ...left]), (v) => v.join() === ids(left).join(), 1000), ids(left),
        'both revoked sessions end on both instances');
    }

    // The cap (6) counts across secrets: three new s3 sessions make seven, and the least recently
    // active (b1, under s1) goes.
    const c3 = await signIn(a, 'ana');
    const d3 = await signIn(b, 'ana');
    t.same(await list(a, d3), ids([...left, c3, d3]), 'six sessions: no eviction yet');
    const e3 = await signIn(a, 'ana');
    const now = [a2, b2, a3, c3, d3, e3];
    t.same(await list(b, e3), ids(now), 'at the cap, the least recently active session (an s1 one) is evicted');
    // B hears the eviction A made over the channel (within milliseconds, not before A answers).
    t.same(await eventually(() => alive(b, [b1, ...now]), (v) => v.join() === ids(now).join(), 1000), ids(now),
      'the evicted s1 session ends');

    // Log out everywhere from an s2 session on B reaches every secret's sessions.
    const r = await b.inject({ method: 'POST', url: '/sessions/logout-everywhere', cookies: { [COOKIE]: a2.token } });
    t.equal(r.statusCode, 200, 'log out everywhere answers 200');
    t.same(r.json(), { revoked: 6 }, 'it revokes the six sessions of all three secrets');
    // B drops them at once; A hears the broadcast over the channel.
    for (const app of [a, b]) {
      t.same(await eventually(() => alive(app, now), (v) => v.length === 0, 1000), [], 'none of them works on either instance');
    }

    // Retire s1: bo's s1 session stops working and leaves the list; the s2 one stays.
    t.same(await alive(a, [bo1, bo2]), ids([bo1, bo2]), 'bo has an s1 and an s2 session');
    [a, b] = await restart([S3, S2]);
    for (const app of [a, b]) {
      t.same(await alive(app, [bo1, bo2]), [bo2.id], 'with s1 dropped, its session ends; the s2 one works');
      t.same(await list(app, bo2), [bo2.id], 'and the list no longer holds it');
    }
    const bo3 = await signIn(a, 'bo');
    t.same((await b.inject({ method: 'POST', url: '/sessions/logout-everywhere', cookies: { [COOKIE]: bo3.token } })).json(),
      { revoked: 2 },
      'log out everywhere counts the sessions of the listed secrets');
  });
});

t.test('capPolicy refuse counts a rotated secret\'s older sessions toward the cap and never evicts them', async (t) => {
  await eachTarget(t, async (t, target: Target) => {
    const keyPrefix = target.prefix();
    const options = { keyPrefix, maxSessionsPerUser: 2, capPolicy: 'refuse' as const };
    const before = await makeApp(t, target.client(), { ...options, secret: S1 });
    const o1 = await signIn(before, 'cy');
    const o2 = await signIn(before, 'cy');
    const app = await makeApp(t, target.client(), { ...options, secret: [S2, S1] });
    const login = () => app.inject({ method: 'POST', url: '/login', payload: { user: 'cy' } });
    const full = await login();
    t.equal(full.statusCode, 409, 'two sessions under the older secret: the cap is reached');
    t.equal(full.json().code, 'ERR_TIERED_SESSION_LIMIT');
    t.same(await alive(app, [o1, o2]), ids([o1, o2]), 'and neither older session was ended');
    t.equal((await app.inject({ method: 'DELETE', url: `/sessions/${o1.id}`, cookies: { [COOKIE]: o2.token } })).statusCode, 204);
    const n1 = await signIn(app, 'cy');
    t.not(n1.id.slice(0, 22), o2.id.slice(0, 22), 'one fits again, under the new secret\'s tag');
    t.equal((await login()).statusCode, 409, 'and then the cap, counted across both tags, holds');
    t.same(await alive(app, [o2, n1]), ids([o2, n1]), 'with both sessions alive');
  }, { adapters: ['fastify'] });
});
