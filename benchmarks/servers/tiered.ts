// 2./3. This package's Fastify plugin, as an app imports it (`tiered-session/fastify`, resolved
// through the package's own exports to the built dist/esm). BENCH_LOCAL_CACHE=0 registers it
// with `localCache: false` (Redis on every request); otherwise the defaults (L1 on). Sign-in goes
// through POST /login → reply.signIn().
import { Redis } from 'ioredis';
import pg from 'pg';
import tieredSession from 'tiered-session/fastify';
import { managerOf } from '../../dist/esm/core/sessions-api.js';
import { fastFail } from '../support/redis.js';
import { createApp, env, helloSchema, loginSchema, SECRET, serve, untilTrusted, whenReady, type LoginBody } from './common.js';

const localCache = process.env.BENCH_LOCAL_CACHE === '0' ? false : undefined;
// BENCH_TELEMETRY=0: `telemetry: false` (no sampled resolve timing, no Redis timings): the
// metrics-on / metrics-off A/B of the L1 hit.
const telemetry = process.env.BENCH_TELEMETRY === '0' ? false : undefined;
// BENCH_DATABASE_URL: the audit trail on (events through the Redis buffer to PostgreSQL);
// BENCH_AUDIT_CONSUME=0: this server only appends to the buffer (a worker would consume).
const pool = process.env.BENCH_DATABASE_URL ? new pg.Pool({ connectionString: process.env.BENCH_DATABASE_URL }) : undefined;
pool?.on('error', () => {});
const client = new Redis(env('BENCH_REDIS_URL'), fastFail);
client.on('error', () => {});
await whenReady(client);

const app = createApp();
await app.register(tieredSession, {
  client,
  secret: SECRET,
  keyPrefix: env('BENCH_PREFIX'),
  cookie: { name: 'sid', secure: false },
  localCache,
  telemetry,
  ...(pool ? { audit: { pool, consume: process.env.BENCH_AUDIT_CONSUME !== '0' } } : {}),
});

app.get('/hello', { schema: helloSchema }, async (request, reply) => {
  const s = request.session;
  if (s === null) {
    reply.code(401);
    return { hello: 'world', user: null };
  }
  return { hello: 'world', user: s.userId };
});

app.post<{ Body: LoginBody }>('/login', { schema: loginSchema }, async (request, reply) => {
  const s = await reply.signIn(request.body.user);
  return { userId: s.userId, sessionId: s.id };
});

await app.ready();
const manager = managerOf(app.sessions);
if (localCache !== false) await untilTrusted(manager, 'tiered server');

await serve(app, () => ({ stats: app.sessions.stats(), cacheTrusted: manager.cacheTrusted }), async () => {
  client.disconnect();
  await pool?.end();
});
