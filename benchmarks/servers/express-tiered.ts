// 7./8. This package's Express middleware, as an app imports it (`tiered-session/express`,
// resolved through the package's own exports to the built dist/esm), mounted as its README
// shows: `app.use(sessions)`, the device routes under /sessions. BENCH_LOCAL_CACHE=0 creates it
// with `localCache: false`; otherwise the defaults (L1 on). Sign-in: POST /login → req.signIn().
import { Redis } from 'ioredis';
import tieredSession from 'tiered-session/express';
import { managerOf } from '../../dist/esm/core/sessions-api.js';
import { fastFail } from '../support/redis.js';
import { env, SECRET, serveHttp, untilTrusted, whenReady } from './common.js';
import { createExpressApp, hello, loginBody } from './express-common.js';

const localCache = process.env.BENCH_LOCAL_CACHE === '0' ? false : undefined;
// BENCH_TELEMETRY=0: `telemetry: false` (no sampled resolve timing, no Redis timings): the
// metrics-on / metrics-off A/B of the L1 hit.
const telemetry = process.env.BENCH_TELEMETRY === '0' ? false : undefined;
const client = new Redis(env('BENCH_REDIS_URL'), fastFail);
client.on('error', () => {});
await whenReady(client);

// Errors only, as the Fastify servers run with `logger: false` (the default logger is console,
// which would print the cookie.secure warning into the run's output).
const quiet = { debug() {}, info() {}, warn() {}, error: (obj: object, msg: string) => console.error(msg, obj) };

const sessions = tieredSession({
  client,
  logger: quiet,
  secret: SECRET,
  keyPrefix: env('BENCH_PREFIX'),
  cookie: { name: 'sid', secure: false },
  localCache,
  telemetry,
});

const app = createExpressApp();
app.use(sessions);
app.use('/sessions', sessions.routes);

app.get('/hello', (req, res) => hello(res, req.session?.userId));

app.post('/login', async (req, res) => {
  const user = loginBody(req.body, res);
  if (user === undefined) return;
  const s = await req.signIn(user);
  res.json({ userId: s.userId, sessionId: s.id });
});

await sessions.ready();
const manager = managerOf(sessions);
if (localCache !== false) await untilTrusted(manager, 'express-tiered server');

await serveHttp(app, () => ({ stats: sessions.stats(), cacheTrusted: manager.cacheTrusted }), async () => {
  await sessions.close();
  client.disconnect();
});
