// 9. express-session + connect-redis 9, as their READMEs set them up: a connect-redis
// `RedisStore` on a node-redis v5 client (connect-redis 9 calls node-redis's API, e.g.
// `set(key, value, { expiration: { type: 'EX', value } })`, so an ioredis client does not work
// with it), `resave: false`, `saveUninitialized: false`, `rolling` left at its default (false).
// A signed-in GET then costs the store's GET plus a touch (EXPIRE); the login sets
// `req.session.user` (one SET with EX).
import type { Request, RequestHandler } from 'express';
import { RedisStore } from 'connect-redis';
import { createClient } from 'redis';
import { env, SECRET, serveHttp } from './common.js';
import { createExpressApp, hello, loginBody } from './express-common.js';

// express-session declares `req.session` with its own type (and ships no types; @types is not
// installed), and this repository's typecheck covers benchmarks/ together with lib/ (whose
// middleware declares `req.session` too): a non-literal specifier keeps it out of that program.
const SESSION_MODULE: string = 'express-session';
const session = (await import(SESSION_MODULE)).default as (options: object) => RequestHandler;

interface SessionLike { user?: string; id: string }
const sessionOf = (req: Request) => (req as unknown as { session: SessionLike }).session;

const client = createClient({ url: env('BENCH_REDIS_URL') });
client.on('error', () => {});
await client.connect();

const app = createExpressApp();
app.use(session({
  secret: SECRET,
  store: new RedisStore({ client, prefix: `${env('BENCH_PREFIX')}sess:` }),
  cookie: { secure: false },
  resave: false,
  saveUninitialized: false,
}));

app.get('/hello', (req, res) => hello(res, sessionOf(req).user));

app.post('/login', (req, res) => {
  const user = loginBody(req.body, res);
  if (user === undefined) return;
  const s = sessionOf(req);
  s.user = user;
  res.json({ userId: user, sessionId: s.id });
});

await serveHttp(app, () => ({}), async () => { await client.quit(); });
