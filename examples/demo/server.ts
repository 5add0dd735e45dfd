// The demo on Fastify: the package used exactly as the README teaches, plus a small page.
// Environment: docs/design.md (see shared.ts). With no Redis configured it starts a private
// redis-server from PATH. It listens even while Redis is down (/healthz answers 503).
import Fastify from 'fastify';
import tieredSession from '../../lib/fastify/index.js';
import {
  BAD_CREDENTIALS, BAD_DISPLAY_NAME, CSP, HOST, LOG_LEVEL, LOGIN_BODY_SCHEMA, PAGE, PORT, RECENT_AUTH_MS, SCRIPT, WRONG_PASSWORD,
  auditOptions, checkPassword, displayNameOf, mailOnNewDevice, onShutdown, operations, passwordOf, profiles, redisClient, sessionOptions,
  type LoginBody,
} from './shared.js';

const redis = await redisClient();
const audit = await auditOptions(redis.target);
const app = Fastify({ logger: { level: LOG_LEVEL } });
await app.register(tieredSession, sessionOptions(redis.client, audit));
mailOnNewDevice(app.sessions.events, (line, fields) => app.log.info(fields, line));
const names = profiles(redis.client);

// Public routes opt out of sessions: no cookie read, no Redis, so they answer while Redis is down.
const pub = { config: { session: false } };

app.get('/', pub, async (_request, reply) => {
  reply.header('content-security-policy', CSP).header('cache-control', 'no-store').type('text/html; charset=utf-8');
  return PAGE;
});
app.get('/app.js', pub, async (_request, reply) => {
  reply.header('content-security-policy', CSP).type('text/javascript; charset=utf-8');
  return SCRIPT;
});

const loginSchema = {
  body: LOGIN_BODY_SCHEMA,
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
              properties: { name: { type: 'string' }, browser: { type: ['string', 'null'] }, os: { type: ['string', 'null'] },
                type: { type: ['string', 'null'] } },
            },
          },
        },
      },
    },
  },
};

app.post<{ Body: LoginBody }>('/login', { schema: loginSchema, preHandler: app.refuseCrossSite }, async (request, reply) => {
  const { username, password, remember } = request.body;
  if (!checkPassword(username, password)) return reply.code(401).send(BAD_CREDENTIALS);
  const session = await reply.signIn(username, { remember: remember ?? true });
  return { userId: username, session: { id: session.id, device: session.device } };
});

app.post('/logout', { preHandler: app.refuseCrossSite }, async (_request, reply) => {
  await reply.signOut();
  reply.code(204).send();
});

app.get('/me', { preHandler: app.requireSession }, async (request, reply) => {
  reply.header('cache-control', 'no-store');
  const s = request.session!;
  return { userId: s.userId, sessionId: s.id, displayName: await names.get(s.userId), remembered: s.remembered };
});

// A sensitive action: allowed only within RECENT_AUTH_MS of the sign-in or of a password
// confirmation. The page answers a 403 …_REAUTHENTICATION_REQUIRED with a password prompt.
app.post('/account/display-name', { preHandler: [app.refuseCrossSite, app.requireRecentAuthentication(RECENT_AUTH_MS)] },
  async (request, reply) => {
  const name = displayNameOf(request.body);
  if (name === undefined) return reply.code(400).send(BAD_DISPLAY_NAME);
  await names.set(request.session!.userId, name);
  return { displayName: name };
});

app.post('/account/confirm-password', { preHandler: [app.refuseCrossSite, app.requireSession] }, async (request, reply) => {
  const password = passwordOf(request.body);
  if (password === undefined || !checkPassword(request.session!.userId, password)) return reply.code(401).send(WRONG_PASSWORD);
  await reply.confirmAuthentication();
  reply.code(204).send();
});

// Public here because the contract check reads it; a real deployment serves metrics on an
// internal port or behind authentication (README: "Metrics").
app.get('/metrics', pub, async (_request, reply) => {
  reply.type('text/plain; version=0.0.4');
  return app.sessions.prometheus();
});

// The page's operations strip: aggregates only (no id, no token).
app.get('/ops', pub, async (_request, reply) => {
  reply.header('cache-control', 'no-store');
  return operations(app.sessions.stats());
});

app.get('/healthz', pub, async (_request, reply) => {
  const ok = await app.sessions.healthy();
  reply.code(ok ? 200 : 503);
  return { status: ok ? 'ok' : 'unavailable' };
});

onShutdown(() => app.close(), redis);
await app.listen({ port: PORT, host: HOST });
console.log(`demo (Fastify) listening on http://${HOST}:${PORT}`);
