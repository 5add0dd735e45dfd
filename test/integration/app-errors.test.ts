// The device routes' errors look like the app's own errors: they are thrown to the app's error
// handler (Fastify's setErrorHandler, Express's error middleware), never shaped by the package.
// An app answering RFC 9457-style { type, title, status, detail } gets exactly that shape from
// every failing device route: 401 without a session, 404 for an unknown id, 400 for a bad
// body, 403 for a cross-site request.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import Fastify, { type FastifyReply } from 'fastify';
import express5 from 'express';
import express4 from 'express4';
import type { NextFunction, Request, Response } from 'express';
import inject, { type InjectOptions, type Response as InjectResponse } from 'light-my-request';
import { tieredSession as fastifyPlugin } from '../../lib/fastify/index.js';
import { tieredSession as expressMiddleware } from '../../lib/express/index.js';
import { RedisServer, ready } from '../fixtures/redis.js';
import { eachAdapter, tokenOf, COOKIE } from '../fixtures/targets.js';
import { TEST_SECRET, type AdapterName } from '../fixtures/apps.js';

interface Problem { type: string; title: string; status: number; detail: string }

/** The app's own error shape. */
function problem(err: { statusCode?: number; status?: number; code?: string; message: string }): Problem {
  const status = err.statusCode ?? err.status ?? 500;
  return { type: `https://errors.example.com/${err.code ?? 'internal'}`, title: STATUS_CODES[status] ?? 'Error', status,
    detail: err.message };
}

let server: RedisServer | undefined;
t.before(async () => { server = await RedisServer.start(); });
// The fixture kills its redis-server when this process exits.

type App = { inject(o: InjectOptions): Promise<InjectResponse> };

/** A small app of its own on `adapter`: its error handler, a login, the device routes. */
async function appOn(t: Test, adapter: AdapterName, handlerAfterPlugin = false): Promise<App> {
  const client = server!.client();
  t.teardown(() => client.disconnect());
  await ready(client);
  const keyPrefix = `t${randomBytes(4).toString('hex')}:`;
  if (adapter === 'fastify') {
    const app = Fastify();
    const handler = (err: Error & { statusCode?: number; code?: string }, _request: unknown, reply: FastifyReply) => {
      const p = problem(err);
      reply.code(p.status).type('application/problem+json').send(p);
    };
    // Either order works: the device routes live in the app's own context, not a child one that
    // would keep the handler it had when the plugin was registered.
    if (!handlerAfterPlugin) app.setErrorHandler(handler);
    await app.register(fastifyPlugin, { client, secret: TEST_SECRET, keyPrefix });
    if (handlerAfterPlugin) app.setErrorHandler(handler);
    app.post('/login', async (_request, reply) => ({ id: (await reply.signIn('pat')).id }));
    await app.ready();
    t.teardown(() => app.close());
    return { inject: (o) => app.inject(o) as unknown as Promise<InjectResponse> };
  }
  const ex = (adapter === 'express5' ? express5 : express4) as unknown as typeof express5;
  const sessions = expressMiddleware({ client, secret: TEST_SECRET, keyPrefix });
  t.teardown(() => sessions.close());
  await sessions.ready();
  const app = ex();
  app.use(sessions);
  app.use('/sessions', sessions.routes);
  app.post('/login', (req: Request, res: Response, next: NextFunction) => {
    req.signIn('pat').then((s) => res.json({ id: s.id }), next);
  });
  app.use((err: Error & { status?: number; code?: string }, _req: Request, res: Response, _next: NextFunction) => {
    const p = problem(err);
    res.status(p.status).type('application/problem+json').send(JSON.stringify(p));
  });
  return { inject: (o) => inject(app as unknown as (req: unknown, res: unknown) => void, o) };
}

for (const handlerAfterPlugin of [false, true]) {
t.test(`every error of the device routes reaches the app's own error handler and keeps its shape${handlerAfterPlugin ? ' (Fastify: ' +
  'setErrorHandler called after the plugin)' : ''}`, async (t) => {
  await eachAdapter(t, async (t, adapter) => {
    if (handlerAfterPlugin && adapter !== 'fastify') return;
    const app = await appOn(t, adapter, handlerAfterPlugin);
    const login = await app.inject({ method: 'POST', url: '/login' });
    t.equal(login.statusCode, 200);
    const cookies = { [COOKIE]: tokenOf(login)! };
    const cases: [string, InjectOptions, number, string][] = [
      ['GET /sessions without a session', { url: '/sessions' }, 401, 'ERR_TIERED_SESSION_NO_SESSION'],
      ['DELETE /sessions/:id of an unknown session', { method: 'DELETE', url: `/sessions/${'A'.repeat(38)}`, cookies }, 404,
        'ERR_TIERED_SESSION_NOT_FOUND'],
      ['POST /sessions/logout-everywhere with a bad body', {
        method: 'POST', url: '/sessions/logout-everywhere', cookies, payload: '{"keepCurrent":"yes"}',
          headers: { 'content-type': 'application/json' },
      }, 400, 'ERR_TIERED_SESSION_BAD_BODY'],
      ['POST /sessions/logout-everywhere cross-site', {
        method: 'POST', url: '/sessions/logout-everywhere', cookies,
          headers: { 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' },
      }, 403, 'ERR_TIERED_SESSION_CROSS_SITE'],
      ['DELETE /sessions/:id cross-site', {
        method: 'DELETE', url: `/sessions/${'A'.repeat(38)}`, cookies, headers: { origin: 'https://evil.example' },
      }, 403, 'ERR_TIERED_SESSION_CROSS_SITE'],
    ];
    for (const [what, opts, status, code] of cases) {
      const r = await app.inject(opts);
      t.equal(r.statusCode, status, `${what}: ${status}`);
      t.match(r.headers['content-type'], /^application\/problem\+json/, `${what}: the app's content type`);
      let body: unknown;
      try { body = r.json(); } catch { body = r.body; }
      t.strictSame(body, {
        type: `https://errors.example.com/${code}`, title: STATUS_CODES[status], status, detail: (body as Problem)?.detail,
      }, `${what}: exactly the app's { type, title, status, detail }`);
      t.equal(typeof (body as Problem)?.detail, 'string', `${what}: with the message as detail`);
      t.ok(String((body as Problem)?.detail).length > 0);
      t.equal(r.headers['cache-control'], 'no-store', `${what}: the routes' no-store header stays`);
    }
    t.equal((await app.inject({ url: '/sessions', cookies })).statusCode, 200, 'the session was not touched by the refused requests');
  });
});
}
