// Express guards and device routes act only on the session their own middleware resolved, never
// on whatever `req.session` holds when they run: a second realm mounted on an overlapping path
// (`app.use('/admin', admin); app.use(shop)`) or express-session mounted after the middleware
// replaces `req.session`. The replacement is logged once per middleware. Express 5 and 4.
import t, { type Test } from 'tap';
import express5 from 'express';
import express4 from 'express4';
import expressSession from 'express-session';
import type { NextFunction, Request, Response } from 'express';
import inject from 'light-my-request';
import { tieredSession } from '../../lib/express/index.js';
import { TEST_SECRET } from '../fixtures/apps.js';
import { recordingLogger } from '../fixtures/audit-events.js';
import { ready } from '../fixtures/redis.js';
import { adapterInUse, eachTarget, tokenOf, type Target } from '../fixtures/targets.js';

type Express = typeof express5;
const ADMIN = '__Host-admin';
const SHOP = '__Host-shop';

interface Res { statusCode: number; json(): { code?: string; id?: string; sessions: { id: string; current: boolean }[] };
  headers: Record<string, unknown> }
const send = (app: unknown, method: 'GET' | 'POST', url: string, cookie?: string): Promise<Res> => inject(app as never, {
  method, url, payload: method === 'POST' ? {} : undefined,
  headers: { 'sec-fetch-site': 'same-origin', ...(cookie ? { cookie } : {}) },
}) as never;

const errors = (_ex: Express) => (err: { status?: number; code?: string }, _req: Request, res: Response, _next: NextFunction) => {
  res.status(err.status ?? 500).json({ code: err.code });
};

async function redisTarget(target: Target) {
  const client = target.client();
  await ready(client);
  return { client, prefix: target.prefix() };
}

/** Express 5 and 4 on one redis-server (the guards do not depend on the topology). */
const eachExpress = (t: Test, fn: (t: Test, ex: Express, target: Target) => Promise<void>) =>
  eachTarget(t, (t, target) => fn(t, adapterInUse() === 'express5' ? express5 : express4 as unknown as Express, target),
    { only: ['single'], adapters: ['express5', 'express4'] });

t.test('app.use("/admin", admin); app.use(shop): a shop cookie alone passes none of admin\'s guards or routes, and an admin cookie ' +
  'passes them', async (t) => {
  await eachExpress(t, async (t, ex, target) => {
    const { client, prefix } = await redisTarget(target);
    const logs = recordingLogger();
    const admin = tieredSession({ client, secret: TEST_SECRET, keyPrefix: `${prefix}admin:`, cookie: { name: ADMIN },
      logger: logs.logger });
    const shop = tieredSession({ client, secret: TEST_SECRET, keyPrefix: `${prefix}shop:`, cookie: { name: SHOP } });
    t.teardown(() => admin.close());
    t.teardown(() => shop.close());
    await Promise.all([admin.ready(), shop.ready()]);

    const app = ex();
    const signIn = (req: Request, res: Response, next: NextFunction) => { req.signIn('1').then((s) => res.json({ id: s.id }), next); };
    app.use('/admin', admin);
    app.post('/admin/login', signIn); // before the shop middleware: the request helpers use the last one that ran
    app.use(shop);
    app.post('/login', signIn);
    app.get('/admin/panel', admin.requireSession, (_req: Request, res: Response) => { res.json({ ok: true }); });
    app.post('/admin/danger', admin.requireRecentAuthentication(60_000), (_req: Request, res: Response) => { res.json({ ok: true }); });
    app.use('/admin/sessions', admin.routes);
    app.use(errors(ex));

    // An admin "1" and a shop "1": the same user id in two realms.
    const a = await send(app, 'POST', '/admin/login');
    const adminCookie = `${ADMIN}=${tokenOf(a, ADMIN)}`;
    t.equal(a.statusCode, 200, 'admin signs in');
    const s = await send(app, 'POST', '/login');
    const shopCookie = `${SHOP}=${tokenOf(s, SHOP)}`;
    t.equal(s.statusCode, 200, 'shop signs in');

    for (const [what, method, url] of [['requireSession', 'GET', '/admin/panel'], ['requireRecentAuthentication', 'POST', '/admin/danger'],
      ['the device list', 'GET', '/admin/sessions'], ['log out everywhere', 'POST', '/admin/sessions/logout-everywhere']] as const) {
      const r = await send(app, method, url, shopCookie);
      t.equal(r.statusCode, 401, `${what}: a shop cookie alone gets 401`);
      t.equal(r.json().code, 'ERR_TIERED_SESSION_NO_SESSION');
    }
    t.equal((await send(app, 'GET', '/admin/panel', adminCookie)).statusCode, 200,
      'an admin cookie passes requireSession (the shop middleware ran after it)');
    t.equal((await send(app, 'POST', '/admin/danger', adminCookie)).statusCode, 200, 'and requireRecentAuthentication');
    const list = await send(app, 'GET', '/admin/sessions', adminCookie);
    t.same(list.json().sessions.map((x: { id: string }) => x.id), [a.json().id], "the admin device list: admin's session, not shop's");
    t.equal((await shop.list('1')).length, 1, 'the shop session was untouched by all of it');

    const warned = logs.entries.filter((e) => e.level === 'warn' && /req\.session was replaced/.test(e.msg));
    t.equal(warned.length, 1, 'the admin middleware said once that another middleware replaced req.session');
    t.match(warned[0]?.msg, /a second tiered-session middleware/);
  });
});

t.test('express-session mounted after the middleware: an anonymous request gets 401 from requireSession, said once', async (t) => {
  await eachExpress(t, async (t, ex, target) => {
    const { client, prefix } = await redisTarget(target);
    const logs = recordingLogger();
    const sessions = tieredSession({ client, secret: TEST_SECRET, keyPrefix: prefix, logger: logs.logger });
    t.teardown(() => sessions.close());
    await sessions.ready();

    const app = ex();
    app.use(sessions);
    app.use(expressSession({ secret: 'another-secret-for-express-session', resave: false, saveUninitialized: true }));
    app.post('/login', (req: Request, res: Response,
      next: NextFunction) => { req.signIn('ann').then((s) => res.json({ id: s.id }), next); });
    app.get('/private', sessions.requireSession, (_req: Request, res: Response) => { res.json({ ok: true }); });
    app.post('/sensitive', sessions.requireRecentAuthentication(60_000), (_req: Request, res: Response) => { res.json({ ok: true }); });
    app.use('/sessions', sessions.routes);
    app.use(errors(ex));

    for (let i = 0; i < 3; i++) {
      const r = await send(app, 'GET', '/private');
      t.equal(r.statusCode, 401, `anonymous request ${i + 1}: 401 from requireSession`);
    }
    t.equal((await send(app, 'POST', '/sensitive')).statusCode, 401, 'and from requireRecentAuthentication');
    t.equal((await send(app, 'GET', '/sessions')).statusCode, 401, 'and from the device routes');
    const login = await send(app, 'POST', '/login');
    t.equal(login.statusCode, 200);
    const cookie = `__Host-sid=${tokenOf(login)}`;
    t.equal((await send(app, 'GET', '/private', cookie)).statusCode, 200, 'a signed-in request passes');
    t.equal((await send(app, 'GET', '/sessions', cookie)).statusCode, 200, 'and lists its devices');
    const warned = logs.entries.filter((e) => e.level === 'warn' && /req\.session was replaced/.test(e.msg));
    t.equal(warned.length, 1, 'the replacement of req.session is logged once');
    t.match(warned[0]?.msg, /express-session/);
  });
});
