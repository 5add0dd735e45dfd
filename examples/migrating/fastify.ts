// After: the app of fastify-before.mjs on tiered-session. @fastify/session stays registered
// during the cutover only, so that users signed in before it keep their sign-in (docs/migrating.md).
//
//   SESSION_SECRET=… TIERED_SESSION_SECRET=… REDIS_URL=… node --import tsx examples/migrating/fastify.ts
import Fastify, { type FastifyRequest } from 'fastify';
import fastifyCookie from '@fastify/cookie';
import fastifySession from '@fastify/session';
import { RedisStore } from 'connect-redis';
import { createClient } from 'redis';
import { Redis } from 'ioredis';
import type { Session as TieredSession } from 'tiered-session';
import tieredSession from 'tiered-session/fastify';

// Aliased: inside this block `Session` is the one @fastify/session declares.
declare module 'fastify' {
  interface FastifyRequest {
    /** tiered-session's session (`requestProperty: 'account'`). */
    account: TieredSession | null;
  }
}

// Cutover only: @fastify/session's session as the old code stored it, and its Redis client.
interface OldSession { get(key: 'userId'): string | undefined; destroy(): Promise<void> }
const oldSession = (request: FastifyRequest) => (request as unknown as { session?: OldSession | null }).session ?? undefined;
const oldRedis = createClient({ url: process.env.REDIS_URL });
oldRedis.on('error', (err) => console.warn('redis connection error:', err.message));
await oldRedis.connect();

const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', {
  maxRetriesPerRequest: 1,
  enableOfflineQueue: false,
  connectTimeout: 1000,
  commandTimeout: 1000,
});

const app = Fastify({ logger: true });
redis.on('error', (err) => app.log.warn({ err }, 'redis connection error'));

// Cutover only: the old plugins (their session is loaded before any route's own hooks).
await app.register(fastifyCookie);
await app.register(fastifySession, {
  store: new RedisStore({ client: oldRedis }) as unknown as fastifySession.SessionStore,
  secret: process.env.SESSION_SECRET!,
  saveUninitialized: false,
  cookie: { secure: 'auto', httpOnly: true, sameSite: 'lax' },
});
await app.register(tieredSession, {
  client: redis,
  secret: process.env.TIERED_SESSION_SECRET!,
  // @fastify/session keeps request.session until the cutover ends.
  requestProperty: 'account',
  legacy: {
    cookie: 'sessionId',
    userId: (request) => oldSession(request)?.get('userId'),
    end: (request) => oldSession(request)?.destroy(),
  },
});

const USERS: Record<string, string> = { alice: 'wonderland', bob: 'builder' };
function checkPassword(username: unknown, password: unknown): username is string {
  return typeof username === 'string' && typeof password === 'string' && Object.hasOwn(USERS, username) && USERS[username] === password;
}

app.post<{ Body: { username?: unknown; password?: unknown } }>('/login', { preHandler: app.refuseCrossSite }, async (request, reply) => {
  const { username, password } = request.body ?? {};
  if (!checkPassword(username, password)) return reply.code(401).send({ message: 'Wrong username or password' });
  const signedIn = await reply.signIn(username);
  return { userId: signedIn.userId };
});

app.post('/logout', { preHandler: app.refuseCrossSite }, async (_request, reply) => {
  await reply.signOut();
  reply.code(204).send();
});

app.get('/me', { preHandler: app.requireSession }, async (request) => ({ userId: request.account!.userId }));

process.once('SIGTERM', async () => {
  await app.close();
  await redis.quit().catch(() => redis.disconnect());
  await oldRedis.quit().catch(() => oldRedis.destroy());
});

await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' });
