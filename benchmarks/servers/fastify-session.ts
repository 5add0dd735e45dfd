// 4. @fastify/session + @fastify/cookie with connect-redis 9 on a node-redis v5 client.
// BENCH_ROLLING=0 registers it with `rolling: false`; otherwise the default (`rolling: true`,
// which saves the session and re-sends the cookie on every request).
import fastifyCookie from '@fastify/cookie';
import { RedisStore } from 'connect-redis';
import { createClient } from 'redis';
import { createApp, env, helloSchema, loginSchema, SECRET, serve, type LoginBody } from './common.js';

// @fastify/session declares `request.session` with its own type, and this repository's
// typecheck covers benchmarks/ together with lib/ (whose plugin declares `request.session`
// too): a non-literal specifier keeps its declarations out of that one program.
const SESSION_MODULE: string = '@fastify/session';
const fastifySession = (await import(SESSION_MODULE)).default;

interface SessionLike { get(key: string): unknown; set(key: string, value: unknown): void }
const sessionOf = (request: object) => (request as { session: SessionLike }).session;

const rolling = process.env.BENCH_ROLLING !== '0';
const client = createClient({ url: env('BENCH_REDIS_URL') });
client.on('error', () => {});
await client.connect();

const app = createApp();
await app.register(fastifyCookie);
await app.register(fastifySession, {
  secret: SECRET,
  store: new RedisStore({ client, prefix: `${env('BENCH_PREFIX')}sess:` }),
  cookie: { secure: false },
  saveUninitialized: false,
  rolling,
});

app.get('/hello', { schema: helloSchema }, async (request, reply) => {
  const user = sessionOf(request).get('user');
  if (typeof user !== 'string') {
    reply.code(401);
    return { hello: 'world', user: null };
  }
  return { hello: 'world', user };
});

app.post<{ Body: LoginBody }>('/login', { schema: loginSchema }, async (request) => {
  const session = sessionOf(request);
  session.set('user', request.body.user);
  return { userId: request.body.user, sessionId: String((session as unknown as { sessionId: string }).sessionId) };
});

await serve(app, () => ({}), async () => { await client.quit(); });
