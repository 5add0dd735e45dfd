// 5. The naive approach: a preHandler doing one ioredis GET per request, for the key named by
// the `sid` cookie (read with a plain scan of the Cookie header; no cookie plugin).
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { fastFail } from '../support/redis.js';
import { createApp, env, helloSchema, loginSchema, serve, whenReady, type LoginBody } from './common.js';

const prefix = `${env('BENCH_PREFIX')}naive:`;
const redis = new Redis(env('BENCH_REDIS_URL'), fastFail);
redis.on('error', () => {});
await whenReady(redis);

function sidOf(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const p = part.trim();
    if (p.startsWith('sid=')) return p.slice(4);
  }
  return undefined;
}

// Decorated (stable request shape) but kept off FastifyRequest's declared type: this file
// shares one typecheck program with the plugin.
type WithUser = { benchUser: string | null };

const app = createApp();
app.decorateRequest('benchUser', null);

app.addHook('preHandler', async (request) => {
  const sid = sidOf(request.headers.cookie);
  if (sid === undefined) return;
  const value = await redis.get(prefix + sid);
  if (value !== null) (request as unknown as WithUser).benchUser = (JSON.parse(value) as { user: string }).user;
});

app.get('/hello', { schema: helloSchema }, async (request, reply) => {
  const user = (request as unknown as WithUser).benchUser;
  if (user === null) {
    reply.code(401);
    return { hello: 'world', user: null };
  }
  return { hello: 'world', user };
});

app.post<{ Body: LoginBody }>('/login', { schema: loginSchema }, async (request, reply) => {
  const sid = randomBytes(32).toString('base64url');
  await redis.set(prefix + sid, JSON.stringify({ user: request.body.user, createdAt: Date.now() }), 'EX', 86_400);
  reply.header('set-cookie', `sid=${sid}; Path=/; HttpOnly; SameSite=Lax`);
  return { userId: request.body.user, sessionId: sid.slice(0, 16) };
});

await serve(app, () => ({}), async () => { redis.disconnect(); });
