// Quick start on Fastify: a complete app with sign-in, sign-out, a guarded route and the device
// routes (GET /sessions, DELETE /sessions/:id, POST /sessions/logout-everywhere).
//
//   SESSION_SECRET="$(openssl rand -base64 32)" REDIS_URL=redis://127.0.0.1:6379 node --import tsx examples/quick-start/fastify.ts
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import tieredSession from 'tiered-session/fastify';

// The app's own Redis client. Fail fast while Redis is away: requests answer 503 at once
// instead of queueing.
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', {
  maxRetriesPerRequest: 1,
  enableOfflineQueue: false,
  connectTimeout: 1000,
  commandTimeout: 1000,
});

const app = Fastify({ logger: true });
redis.on('error', (err) => app.log.warn({ err }, 'redis connection error'));

await app.register(tieredSession, {
  client: redis,
  // At least 32 characters, the same on every instance; a missing or short one fails at start.
  secret: process.env.SESSION_SECRET!,
});

// The app's own credential check. A toy for this example: a real app verifies a password
// hash (and rate-limits this route).
const USERS: Record<string, string> = { alice: 'wonderland' };
function checkPassword(username: unknown, password: unknown): username is string {
  return typeof username === 'string' && typeof password === 'string' && Object.hasOwn(USERS, username) && USERS[username] === password;
}

app.post<{ Body: { username?: unknown; password?: unknown } }>('/login', { preHandler: app.refuseCrossSite }, async (request, reply) => {
  const { username, password } = request.body ?? {};
  if (!checkPassword(username, password)) return reply.code(401).send({ message: 'Wrong username or password' });
  const session = await reply.signIn(username);
  return { userId: session.userId };
});

app.post('/logout', { preHandler: app.refuseCrossSite }, async (_request, reply) => {
  await reply.signOut();
  reply.code(204).send();
});

app.get('/me', { preHandler: app.requireSession }, async (request) => ({ userId: request.session!.userId }));

// Shut down: close the app (pending writes flushed, subscriber closed), then the client, which
// the package leaves open: its lifecycle is the app's.
process.once('SIGTERM', async () => {
  await app.close();
  await redis.quit().catch(() => redis.disconnect());
});

await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' });
