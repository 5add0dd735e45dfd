// Before: a Fastify app on @fastify/session with connect-redis as its store (sessions in Redis).
//
//   SESSION_SECRET=… REDIS_URL=redis://127.0.0.1:6379 node examples/migrating/fastify-before.mjs
import Fastify from 'fastify';
import fastifyCookie from '@fastify/cookie';
import fastifySession from '@fastify/session';
import { RedisStore } from 'connect-redis';
import { createClient } from 'redis';

const redis = createClient({ url: process.env.REDIS_URL });
redis.on('error', (err) => console.warn('redis connection error:', err.message));
await redis.connect();

const app = Fastify();
await app.register(fastifyCookie);
await app.register(fastifySession, {
  store: new RedisStore({ client: redis }),
  secret: process.env.SESSION_SECRET, // at least 32 characters
  saveUninitialized: false,
  cookie: { secure: 'auto', httpOnly: true, sameSite: 'lax' },
});

const USERS = { alice: 'wonderland', bob: 'builder' };

app.post('/login', async (request, reply) => {
  const { username, password } = request.body ?? {};
  if (!Object.hasOwn(USERS, username) ||
    USERS[username] !== password) return reply.code(401).send({ message: 'Wrong username or password' });
  await request.session.regenerate();
  request.session.set('userId', username);
  return { userId: username };
});

app.post('/logout', async (request, reply) => {
  await request.session.destroy();
  reply.code(204).send();
});

app.get('/me', async (request, reply) => {
  const userId = request.session.get('userId');
  if (userId === undefined) return reply.code(401).send({ message: 'Authentication required' });
  return { userId };
});

await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' });
process.once('SIGTERM', () => app.close().then(() => redis.quit()));
