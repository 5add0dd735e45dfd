// Quick start on Express (4 or 5): a complete app with sign-in, sign-out, a guarded route and
// the device routes (GET /sessions, DELETE /sessions/:id, POST /sessions/logout-everywhere).
//
//   SESSION_SECRET="$(openssl rand -base64 32)" REDIS_URL=redis://127.0.0.1:6379 node --import tsx examples/quick-start/express.ts
import express, { type NextFunction, type Request, type Response } from 'express';
import { Redis } from 'ioredis';
import tieredSession from 'tiered-session/express';

// The app's own Redis client. Fail fast while Redis is away: requests answer 503 at once
// instead of queueing.
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', {
  maxRetriesPerRequest: 1,
  enableOfflineQueue: false,
  connectTimeout: 1000,
  commandTimeout: 1000,
});
redis.on('error', (err) => console.warn('redis connection error:', err.message));

const sessions = tieredSession({
  client: redis,
  // At least 32 characters, the same on every instance; a missing or short one throws here.
  secret: process.env.SESSION_SECRET!,
});

const app = express();
app.use(sessions);
app.use('/sessions', sessions.routes);

// The app's own credential check. A toy for this example: a real app verifies a password
// hash (and rate-limits this route).
const USERS: Record<string, string> = { alice: 'wonderland' };
function checkPassword(username: unknown, password: unknown): username is string {
  return typeof username === 'string' && typeof password === 'string' && Object.hasOwn(USERS, username) && USERS[username] === password;
}

app.post('/login', sessions.refuseCrossSite, express.json(), async (req: Request, res: Response, next: NextFunction) => {
  try {
    const { username, password } = req.body ?? {};
    if (!checkPassword(username, password)) {
      res.status(401).json({ message: 'Wrong username or password' });
      return;
    }
    const session = await req.signIn(username);
    res.json({ userId: session.userId });
  } catch (err) {
    next(err);
  }
});

app.post('/logout', sessions.refuseCrossSite, async (req: Request, res: Response, next: NextFunction) => {
  try {
    await req.signOut();
    res.status(204).end();
  } catch (err) {
    next(err);
  }
});

app.get('/me', sessions.requireSession, (req: Request, res: Response) => {
  res.json({ userId: req.session!.userId });
});

// The package's errors carry `status` (401, 403, 404, 503…) and `code`.
app.use((err: Error & { status?: number; code?: string; expose?: boolean }, _req: Request, res: Response, _next: NextFunction) => {
  const status = err.status ?? 500;
  res.status(status).json({ code: err.code, message: err.expose ? err.message : 'Internal Server Error' });
});

const server = app.listen(Number(process.env.PORT ?? 3000), process.env.HOST ?? '127.0.0.1');

// Shut down: stop accepting requests, close the middleware (pending writes flushed,
// subscriber closed), then the client, which the package leaves open: its lifecycle is the app's.
process.once('SIGTERM', () => {
  server.close(async () => {
    await sessions.close();
    await redis.quit().catch(() => redis.disconnect());
  });
});
