// The demo on Express: the same page and the same HTTP contract as server.ts, from the Express
// middleware. Environment: docs/design.md (see shared.ts). It listens even while Redis is down.
import express, { type NextFunction, type Request, type Response } from 'express';
import { STATUS_CODES } from 'node:http';
import tieredSession from '../../lib/express/index.js';
import {
  BAD_BODY, BAD_CREDENTIALS, BAD_DISPLAY_NAME, CSP, HOST, LOG_LEVEL, PAGE, PORT, PUBLIC_PATHS, RECENT_AUTH_MS, SCRIPT, WRONG_PASSWORD,
  auditOptions, checkPassword, displayNameOf, loginBody, mailOnNewDevice, onShutdown, operations, passwordOf, profiles, redisClient,
  sessionOptions,
} from './shared.js';

const redis = await redisClient();
const audit = await auditOptions(redis.target);
const quiet = LOG_LEVEL === 'silent' || LOG_LEVEL === 'error';
const sessions = tieredSession({
  ...sessionOptions(redis.client, audit),
  // Public routes opt out of sessions: no cookie read, no Redis, so they answer while Redis is down.
  skip: (req) => PUBLIC_PATHS.has(req.path),
  ...(quiet ? { logger: { debug() {}, info() {}, warn() {}, error: (o: object, m: string) => console.error(m, o) } } : {}),
});

mailOnNewDevice(sessions.events, (line, fields) => { if (!quiet) console.log(line, fields); });

const names = profiles(redis.client);
const app = express();
app.disable('x-powered-by');
app.use(sessions);
app.use('/sessions', sessions.routes);

app.get('/', (_req, res) => {
  res.set({ 'content-security-policy': CSP, 'cache-control': 'no-store' }).type('text/html; charset=utf-8').send(PAGE);
});
app.get('/app.js', (_req, res) => {
  res.set('content-security-policy', CSP).type('text/javascript; charset=utf-8').send(SCRIPT);
});

/** Express 4 does not pass a rejected promise to next(): every async route does it here. */
const route = (fn: (req: Request, res: Response) => Promise<void>) => (req: Request, res: Response, next: NextFunction) => {
  fn(req, res).catch(next);
};

app.post('/login', sessions.refuseCrossSite, express.json({ limit: '2kb' }), route(async (req, res) => {
  const body = loginBody(req.body);
  if (body === undefined) {
    res.status(400).json(BAD_BODY);
    return;
  }
  if (!checkPassword(body.username, body.password)) {
    res.status(401).json(BAD_CREDENTIALS);
    return;
  }
  const session = await req.signIn(body.username, { remember: body.remember ?? true });
  res.json({ userId: body.username, session: { id: session.id, device: session.device } });
}));

app.post('/logout', sessions.refuseCrossSite, route(async (req, res) => {
  await req.signOut();
  res.status(204).end();
}));

app.get('/me', sessions.requireSession, route(async (req, res) => {
  const s = req.session!;
  res.set('cache-control', 'no-store').json({ userId: s.userId, sessionId: s.id, displayName: await names.get(s.userId),
    remembered: s.remembered });
}));

// A sensitive action: allowed only within RECENT_AUTH_MS of the sign-in or of a password
// confirmation. The page answers a 403 …_REAUTHENTICATION_REQUIRED with a password prompt.
const json = express.json({ limit: '2kb' });
app.post('/account/display-name', sessions.refuseCrossSite, sessions.requireRecentAuthentication(RECENT_AUTH_MS), json,
  route(async (req, res) => {
  const name = displayNameOf(req.body);
  if (name === undefined) {
    res.status(400).json(BAD_DISPLAY_NAME);
    return;
  }
  await names.set(req.session!.userId, name);
  res.json({ displayName: name });
}));

app.post('/account/confirm-password', sessions.refuseCrossSite, sessions.requireSession, json, route(async (req, res) => {
  const password = passwordOf(req.body);
  if (password === undefined || !checkPassword(req.session!.userId, password)) {
    res.status(401).json(WRONG_PASSWORD);
    return;
  }
  await req.confirmAuthentication();
  res.status(204).end();
}));

// Public here because the contract check reads it; a real deployment serves metrics on an
// internal port or behind authentication (README: "Metrics").
app.get('/metrics', (_req, res) => {
  res.type('text/plain; version=0.0.4').send(sessions.prometheus());
});

// The page's operations strip: aggregates only (no id, no token).
app.get('/ops', (_req, res) => {
  res.set('cache-control', 'no-store').json(operations(sessions.stats()));
});

app.get('/healthz', route(async (_req, res) => {
  const ok = await sessions.healthy();
  res.status(ok ? 200 : 503).json({ status: ok ? 'ok' : 'unavailable' });
}));

app.use((_req: Request, res: Response) => {
  res.status(404).json({ statusCode: 404, error: 'Not Found', message: 'Route not found' });
});

// The app's error handler: the package's errors carry `status` and `code`; a body parser's
// errors carry `status`. Everything answers the same JSON shape as the Fastify demo.
app.use((err: Error & { status?: number; code?: string; expose?: boolean }, _req: Request, res: Response, _next: NextFunction) => {
  const statusCode = err.status ?? 500;
  if (statusCode >= 500 && statusCode !== 503) console.error(err);
  res.status(statusCode).json({
    statusCode,
    ...(err.code ? { code: err.code } : {}),
    error: STATUS_CODES[statusCode] ?? 'Error',
    message: statusCode < 500 || err.code?.startsWith('ERR_TIERED_SESSION_') ? err.message : STATUS_CODES[statusCode],
  });
});

const server = app.listen(PORT, HOST, () => console.log(`demo (Express) listening on http://${HOST}:${PORT}`));
onShutdown(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await sessions.close();
}, redis);
