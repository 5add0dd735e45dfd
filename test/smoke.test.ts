import t from 'tap';
import { eachTarget, makeApp, tokenOf, cacheTrusted } from './fixtures/targets.js';

t.test('a user signs in, is recognised on the next request, and signs out', async (t) => {
  await eachTarget(t, async (t, target) => {
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix(), cookie: { name: 'sid', secure: false } });
    await cacheTrusted(app);
    const login = await app.inject({ method: 'POST', url: '/login', payload: { user: 'u1' } });
    t.equal(login.statusCode, 200);
    const token = tokenOf(login, 'sid');
    t.ok(token);
    const me = await app.inject({ url: '/me', cookies: { sid: token! } });
    t.equal(me.statusCode, 200);
    t.equal(me.json().userId, 'u1');
    const out = await app.inject({ method: 'POST', url: '/logout', cookies: { sid: token! } });
    t.equal(out.statusCode, 204);
    t.equal((await app.inject({ url: '/me', cookies: { sid: token! } })).statusCode, 401);
  });
});
