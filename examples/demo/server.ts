// The demo app: the plugin used exactly as the README teaches, plus a small page.
// Environment: PORT, HOST, REDIS_URL or REDIS_CLUSTER_NODES, KEY_PREFIX, IDLE_TIMEOUT_MS,
// ABSOLUTE_TIMEOUT_MS, TOUCH_INTERVAL_MS, LOCAL_CACHE_TTL_MS, MAX_SESSIONS_PER_USER.
// With no Redis configured it starts a private redis-server from PATH.
import { readFileSync } from 'node:fs';
import { timingSafeEqual, createHash } from 'node:crypto';
import Fastify from 'fastify';
import { Redis, Cluster } from 'ioredis';
import tieredSession from '../../lib/index.js';
import { fastFail, startPrivateRedis } from './private-redis.js';

const env = process.env;
const num = (name: string): number | undefined => {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) {
    console.error(`${name} must be an integer, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
};

// Demo users. A real app checks a password hash; rate limits belong to that check.
const USERS: Record<string, string> = { alice: 'wonderland', bob: 'builder' };
const digest = (s: string) => createHash('sha256').update(s).digest();
function checkPassword(username: string, password: string): boolean {
  const expected = Object.hasOwn(USERS, username) ? USERS[username] : undefined;
  const ok = timingSafeEqual(digest(password), digest(expected ?? '\0no-such-user'));
  return ok && expected !== undefined;
}

let privateRedis: { url: string; stop(): void } | undefined;
let client: Redis | Cluster;
if (env.REDIS_CLUSTER_NODES) {
  const nodes = env.REDIS_CLUSTER_NODES.split(',').map((hp) => {
    const [host, port] = hp.trim().split(':');
    return { host, port: Number(port) };
  });
  client = new Cluster(nodes, { redisOptions: fastFail, enableOfflineQueue: false, clusterRetryStrategy: fastFail.retryStrategy });
} else {
  let url = env.REDIS_URL;
  if (!url) {
    privateRedis = await startPrivateRedis();
    url = privateRedis.url;
  }
  client = new Redis(url, fastFail);
}
client.on('error', () => { /* reconnects by itself; /healthz reports the state */ });
await new Promise<void>((resolve) => { if (client.status === 'ready') resolve(); else client.once('ready', () => resolve()); });

const app = Fastify({ logger: { level: env.LOG_LEVEL ?? 'warn' } });
await app.register(tieredSession, {
  client,
  keyPrefix: env.KEY_PREFIX || 'demo:',
  idleTimeout: num('IDLE_TIMEOUT_MS'),
  absoluteTimeout: num('ABSOLUTE_TIMEOUT_MS'),
  touchInterval: num('TOUCH_INTERVAL_MS'),
  localCache: { ttl: num('LOCAL_CACHE_TTL_MS') },
  maxSessionsPerUser: num('MAX_SESSIONS_PER_USER'),
  countryHeader: 'cf-ipcountry',
});

const page = readFileSync(new URL('./public/index.html', import.meta.url), 'utf8');
const script = readFileSync(new URL('./public/app.js', import.meta.url), 'utf8');
const CSP = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

app.get('/', async (_request, reply) => {
  reply.header('content-security-policy', CSP).header('cache-control', 'no-store').type('text/html; charset=utf-8');
  return page;
});
app.get('/app.js', async (_request, reply) => {
  reply.header('content-security-policy', CSP).type('text/javascript; charset=utf-8');
  return script;
});

const loginSchema = {
  body: {
    type: 'object',
    required: ['username', 'password'],
    additionalProperties: false,
    properties: { username: { type: 'string', maxLength: 64 }, password: { type: 'string', maxLength: 256 } },
  },
  response: {
    200: {
      type: 'object',
      properties: {
        userId: { type: 'string' },
        session: {
          type: 'object',
          properties: {
            id: { type: 'string' },
            device: {
              type: 'object',
              properties: { name: { type: 'string' }, browser: { type: ['string', 'null'] }, os: { type: ['string', 'null'] }, type: { type: ['string', 'null'] } },
            },
          },
        },
      },
    },
  },
};

app.post<{ Body: { username: string; password: string } }>('/login', { schema: loginSchema, preHandler: app.refuseCrossSite }, async (request, reply) => {
  const { username, password } = request.body;
  if (!checkPassword(username, password)) {
    reply.code(401);
    return { statusCode: 401, code: 'DEMO_BAD_CREDENTIALS', error: 'Unauthorized', message: 'Wrong username or password' };
  }
  const session = await reply.signIn(username);
  return { userId: username, session: { id: session.id, device: session.device } };
});

app.post('/logout', { preHandler: app.refuseCrossSite }, async (_request, reply) => {
  await reply.signOut();
  reply.code(204).send();
});

app.get('/me', { preHandler: app.requireSession }, async (request, reply) => {
  reply.header('cache-control', 'no-store');
  return { userId: request.session!.userId, sessionId: request.session!.id };
});

app.get('/metrics', async (_request, reply) => {
  reply.type('text/plain; version=0.0.4');
  return app.sessions.prometheus();
});

app.get('/healthz', async (_request, reply) => {
  const ok = await app.sessions.healthy();
  reply.code(ok ? 200 : 503);
  return { status: ok ? 'ok' : 'unavailable' };
});

const shutdown = async () => {
  await app.close();
  client.disconnect();
  privateRedis?.stop();
  process.exit(0);
};
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);

await app.listen({ port: num('PORT') ?? 3000, host: env.HOST || '127.0.0.1' });
console.log(`demo listening on http://${env.HOST || '127.0.0.1'}:${num('PORT') ?? 3000}`);
