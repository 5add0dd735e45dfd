// Security findings of the adoption review, each through the public surface: user ids that are
// not well-formed UTF-16, the stored client IP, a wrong secret for a cached id, the User-Agent
// bot pattern's cost, a sign-in that timed out after its write was sent, deeply frozen session
// data, a sign-in racing log-out-everywhere, and session ids that do not reveal their owner.
import t from 'tap';
import { createHash } from 'node:crypto';
import { eachTarget, makeApp, signIn, me, cacheTrusted, tokenOf, COOKIE } from './fixtures/targets.js';

t.test('a user id that is not well-formed UTF-16 is refused, and never shares sessions with the id its UTF-8 encoding looks like', async (t) => {
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
