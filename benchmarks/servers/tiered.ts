// 2./3. This plugin. BENCH_LOCAL_CACHE=0 registers it with `localCache: false` (Redis on every
// request); otherwise the defaults (L1 on). Sign-in goes through POST /login → reply.signIn().
import { Redis } from 'ioredis';
import tieredSession from '../../dist/esm/index.js';
import { fastFail } from '../support/redis.js';
import { createApp, env, helloSchema, loginSchema, serve, type LoginBody } from './common.js';

const localCache = process.env.BENCH_LOCAL_CACHE === '0' ? false : undefined;
const client = new Redis(env('BENCH_REDIS_URL'), fastFail);
client.on('error', () => {});
await new Promise<void>((resolve) => { if (client.status === 'ready') resolve(); else client.once('ready', () => resolve()); });

const app = createApp();
await app.register(tieredSession, {
  client,
  keyPrefix: env('BENCH_PREFIX'),
  cookie: { name: 'sid', secure: false },
  localCache,
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
// The L1 is filled only once the revocation channel is proven: wait for it, as a real
// deployment would be after its first second.
if (localCache !== false) {
  const until = Date.now() + 10_000;
  while (!app.sessions.cacheTrusted && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
  if (!app.sessions.cacheTrusted) console.error('tiered server: revocation channel not confirmed after 10 s; L1 stays empty');
}

await serve(app, () => ({ stats: app.sessions.stats(), cacheTrusted: app.sessions.cacheTrusted }), async () => { client.disconnect(); });
