// 2./3. This package's Fastify plugin, as an app imports it (`tiered-session/fastify`, resolved
// through the package's own exports to the built dist/esm). BENCH_LOCAL_CACHE=0 registers it
// with `localCache: false` (Redis on every request); otherwise the defaults (L1 on). Sign-in goes
// through POST /login → reply.signIn().
import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import tieredSession, { parseDevice } from 'tiered-session/fastify';
import { encodeDevice } from '../../dist/esm/core/session-data.js';
import { managerOf } from '../../dist/esm/core/sessions-api.js';
import { fastFail } from '../support/redis.js';
import { createApp, env, helloSchema, loginSchema, SECRET, serve, UA, untilTrusted, whenReady, type LoginBody } from './common.js';

// BENCH_L1_FILL=n: the L1 holds n other sessions besides the one measured (a cache at scale:
// its size, not its hit rate, is what such a run measures), with a ttl that keeps them all.
const fill = Number(process.env.BENCH_L1_FILL ?? 0);
const localCache = process.env.BENCH_LOCAL_CACHE === '0' ? false : fill > 0 ? { max: fill + 1000, ttl: 3_600_000 } : undefined;
// BENCH_TELEMETRY=0: `telemetry: false` (no sampled resolve timing, no Redis timings): the
// metrics-on / metrics-off A/B of the L1 hit.
const telemetry = process.env.BENCH_TELEMETRY === '0' ? false : undefined;
// BENCH_DATABASE_URL: the audit trail on (events through the Redis buffer to PostgreSQL);
// BENCH_AUDIT_CONSUME=0: this server only appends to the buffer (a worker would consume).
// BENCH_EVENTS=1: the event feed on, this server only appends (`consume: false`: a worker would
// deliver); BENCH_EVENTS=consume: it also delivers every event to a no-op handler in-process.
const events = process.env.BENCH_EVENTS === undefined ? undefined : { consume: process.env.BENCH_EVENTS === 'consume' };
const pool = process.env.BENCH_DATABASE_URL ? new pg.Pool({ connectionString: process.env.BENCH_DATABASE_URL }) : undefined;
pool?.on('error', () => {});
// BENCH_AUTOPIPELINING=1: a control, not what the README recommends: the same client with
// ioredis's `enableAutoPipelining` (the commands of one event-loop turn in one write).
const autoPipelining = process.env.BENCH_AUTOPIPELINING === '1';
const client = new Redis(env('BENCH_REDIS_URL'), autoPipelining ? { ...fastFail, enableAutoPipelining: true } : fastFail);
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
  ...(events ? { events } : {}),
});
if (events?.consume) app.sessions.events.on('*', () => {});

app.get('/hello', { schema: helloSchema }, async (request, reply) => {
  const s = request.session;
  if (s === null) {
    reply.code(401);
    return { hello: 'world', user: null };
  }
  return { hello: 'world', user: s.userId };
});

// BENCH_LOGIN=script: POST /login sends the sign-in's one script with the arguments a sign-in
// sends (through the store, as the plugin does) and answers with a cookie of the same length, with
// none of the package's JS around it: no HMAC tag, no random secret, no hashing, no device parse,
// no L1 fill, no metrics. The floor of a sign-in that keeps this data model's guarantees (the
// index, the caps, the broadcast, all in the script).
const scriptOnly = process.env.BENCH_LOGIN === 'script';
// BENCH_LOGIN_SPIN_US (with BENCH_LOGIN=script): that many µs of busy JS before the script is
// sent, as a control: what a sign-in's own JS (measured in process, benchmarks/README.md) costs in
// throughput on this host, where a delay before a loopback write costs more than itself.
const spinUs = Number(process.env.BENCH_LOGIN_SPIN_US ?? 0);
const DEVICE = encodeDevice(parseDevice(UA, 512));
let serial = 0;
app.post<{ Body: LoginBody }>('/login', { schema: loginSchema }, async (request, reply) => {
  if (scriptOnly) {
    if (spinUs > 0) for (const until = performance.now() + spinUs / 1000; performance.now() < until;);
    const userId = request.body.user;
    const now = Date.now();
    const n = String(++serial);
    const tag = n.padStart(22, 't');
    const random = n.padStart(16, 'r');
    await managerOf(app.sessions).store.create(tag, random, now, 1_209_600_000, { total: 50, type: 'desktop', typeCap: 0 }, {
      userId, secretHash: 'h'.repeat(43), absoluteAt: now + 2_592_000_000, device: DEVICE, ip: '203.0.113.7', country: '',
      data: '', remembered: true,
    });
    reply.header('set-cookie', `sid=${tag}${random}.${'s'.repeat(43)}; Max-Age=2592000; Path=/; HttpOnly; SameSite=Lax`);
    return { userId, sessionId: tag + random };
  }
  const s = await reply.signIn(request.body.user);
  return { userId: s.userId, sessionId: s.id };
});

app.post('/logout', async (_request, reply) => {
  await reply.signOut();
  reply.code(204);
});

await app.ready();
const manager = managerOf(app.sessions);
if (localCache !== false) await untilTrusted(manager, 'tiered server');
if (fill > 0) {
  // Sessions of distinct users, as the L1 of a busy instance holds them (not in Redis: never requested).
  const now = Date.now();
  const l1 = manager.localCache;
  for (let i = 0; i < fill; i++) {
    const id = randomBytes(29).toString('base64url').slice(0, 38);
    const t = l1.hold(id);
    l1.fill(t, Object.freeze({ id, userId: randomUUID(), data: {}, createdAt: now, absoluteExpiresAt: now + 86_400_000,
      remembered: true, authenticatedAt: now, newDevice: false }), randomBytes(33).toString('base64url').slice(0, 43), now);
    l1.release(id, t);
  }
  if (manager.localCache.size < fill) throw new Error(`the L1 holds ${manager.localCache.size} of ${fill} sessions`);
}

await serve(app, () => ({ stats: app.sessions.stats(), cacheTrusted: manager.cacheTrusted }), async () => {
  client.disconnect();
  await pool?.end();
});
