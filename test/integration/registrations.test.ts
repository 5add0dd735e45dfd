// Two registrations in one process, as the README's quick start shows them: two realms (here
// "admin" and "shop") with their own key prefix and cookie, on one Redis client. On Fastify each
// lives in its own encapsulated context; on Express they are two middlewares on one app, each
// mounted under its own path. A realm's token means nothing to the other, each device list holds
// only its own realm's sessions, and logging out everywhere in one leaves the other signed in.
import t, { type Test } from 'tap';
import Fastify from 'fastify';
import express5 from 'express';
import express4 from 'express4';
import type { NextFunction, Request, Response } from 'express';
import inject from 'light-my-request';
import type { Redis, Cluster } from 'ioredis';
import { tieredSession as fastifyPlugin } from '../../lib/fastify/index.js';
import { tieredSession as expressMiddleware } from '../../lib/express/index.js';
import { TEST_SECRET } from '../fixtures/apps.js';
import { ready } from '../fixtures/redis.js';
import { adapterInUse, eachTarget, tokenOf } from '../fixtures/targets.js';

const REALMS = ['admin', 'shop'] as const;
type Realm = (typeof REALMS)[number];
const cookieOf = (realm: Realm) => `__Host-${realm}`;

interface Call { method?: 'GET' | 'POST'; url: string; cookie?: [string, string]; body?: object }
type Send = (c: Call) => Promise<{ statusCode: number; json(): { code?: string; id?: string; sessions: { id: string; current: boolean }[] };
  headers: Record<string, unknown> }>;

async function fastifyApp(t: Test, client: Redis | Cluster, prefix: string): Promise<Send> {
  const app = Fastify();
  for (const realm of REALMS) {
    await app.register(async (scope) => {
      await scope.register(fastifyPlugin, {
        client, secret: TEST_SECRET, keyPrefix: `${prefix}${realm}:`, cookie: { name: cookieOf(realm) }, routes: { prefix: '/sessions' },
      });
      scope.post('/login', async (request, reply) => ({ id: (await reply.signIn((request.body as { user: string }).user)).id }));
      scope.get('/me', { preHandler: scope.requireSession }, async (request) => ({ userId: request.session!.userId }));
    }, { prefix: `/${realm}` });
  }
  await app.ready();
  t.teardown(() => app.close());
  return (c) => app.inject({
    method: c.method ?? 'GET', url: c.url, payload: c.body,
    headers: { 'sec-fetch-site': 'same-origin', ...(c.cookie ? { cookie: `${c.cookie[0]}=${c.cookie[1]}` } : {}) },
  });
}

async function expressApp(t: Test, ex: typeof express5, client: Redis | Cluster, prefix: string): Promise<Send> {
  const app = ex();
  for (const realm of REALMS) {
    const sessions = expressMiddleware({ client, secret: TEST_SECRET, keyPrefix: `${prefix}${realm}:`, cookie: { name: cookieOf(realm) } });
    t.teardown(() => sessions.close());
    await sessions.ready();
    const router = ex.Router();
    router.use(sessions);
    router.use('/sessions', sessions.routes);
    router.post('/login', ex.json(), (req: Request, res: Response, next: NextFunction) => {
      req.signIn(req.body.user).then((s) => res.json({ id: s.id }), next);
    });
    router.get('/me', sessions.requireSession, (req: Request, res: Response) => { res.json({ userId: req.session!.userId }); });
    app.use(`/${realm}`, router);
  }
  app.use((err: { status?: number; code?: string }, _req: Request, res: Response, _next: NextFunction) => {
    res.status(err.status ?? 500).json({ code: err.code });
  });
  return (c) => inject(app as never, {
    method: c.method ?? 'GET', url: c.url, payload: c.body,
    headers: { 'sec-fetch-site': 'same-origin', ...(c.cookie ? { cookie: `${c.cookie[0]}=${c.cookie[1]}` } : {}) },
  }) as never;
}

t.test('two registrations in one process keep their realms apart (own cookie, own keys, own device list)', async (t) => {
  await eachTarget(t, async (t, target) => {
    const prefix = target.prefix();
    const adapter = adapterInUse();
    const client = target.client();
    await ready(client);
    const send = adapter === 'fastify' ? await fastifyApp(t, client, prefix)
      : await expressApp(t, (adapter === 'express5' ? express5 : express4) as unknown as typeof express5, client, prefix);

    const tokens = {} as Record<Realm, string>;
    for (const realm of REALMS) {
      const res = await send({ method: 'POST', url: `/${realm}/login`, body: { user: 'ann' } });
      t.equal(res.statusCode, 200, `${realm}: sign-in answers 200`);
      const token = tokenOf(res, cookieOf(realm));
      t.ok(token, `${realm}: the cookie is ${cookieOf(realm)}`);
      t.notOk(tokenOf(res, cookieOf(realm === 'admin' ? 'shop' : 'admin')), `${realm}: the other realm's cookie is not set`);
      tokens[realm] = token!;
    }
    t.ok((await target.keys(`${prefix}admin:`)).length > 0 && (await target.keys(`${prefix}shop:`)).length > 0,
      'each realm writes under its own key prefix');

    for (const realm of REALMS) {
      const other: Realm = realm === 'admin' ? 'shop' : 'admin';
      t.equal((await send({ url: `/${realm}/me`, cookie: [cookieOf(realm), tokens[realm]] })).statusCode, 200,
        `${realm}: its own token is accepted`);
      t.equal((await send({ url: `/${realm}/me`, cookie: [cookieOf(realm), tokens[other]] })).statusCode, 401,
        `${realm}: the ${other} token under ${realm}'s cookie name is no session`);
      t.equal((await send({ url: `/${realm}/me`, cookie: [cookieOf(other), tokens[other]] })).statusCode, 401,
        `${realm}: the ${other} cookie is not read`);
      const list = await send({ url: `/${realm}/sessions`, cookie: [cookieOf(realm), tokens[realm]] });
      t.same(list.json().sessions.map((s: { current: boolean }) => s.current), [true],
        `${realm}: the device list holds its own session only`);
    }

    const out = await send({ method: 'POST', url: '/shop/sessions/logout-everywhere', cookie: [cookieOf('shop'), tokens.shop], body: {} });
    t.equal(out.statusCode, 200, 'shop: log out everywhere');
    t.equal((await send({ url: '/shop/me', cookie: [cookieOf('shop'), tokens.shop] })).statusCode, 401, 'shop: signed out');
    t.equal((await send({ url: '/admin/me', cookie: [cookieOf('admin'), tokens.admin] })).statusCode, 200, 'admin: still signed in');
  });
});
