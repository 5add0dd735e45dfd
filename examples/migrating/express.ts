// After: the app of express-before.mjs on tiered-session. express-session stays mounted during
// the cutover only, so that users signed in before it keep their sign-in (docs/migrating.md).
//
//   SESSION_SECRET=… TIERED_SESSION_SECRET=… REDIS_URL=… node --import tsx examples/migrating/express.ts
import express, { type NextFunction, type Request, type Response } from 'express';
import session from 'express-session';
import { RedisStore } from 'connect-redis';
import { createClient } from 'redis';
import { Redis } from 'ioredis';
import type { Session } from 'tiered-session';
import tieredSession from 'tiered-session/express';

declare global {
  namespace Express {
    interface Request {
      /** tiered-session's session (`requestProperty: 'account'`). */
      account: Session | null;
    }
  }
}

// Cutover only: express-session's session as the old code stored it, and its Redis client.
interface OldSession { userId?: string; destroy(callback: (err?: unknown) => void): void }
const oldSession = (req: Request) => (req as unknown as { session?: OldSession }).session;
const oldRedis = createClient({ url: process.env.REDIS_URL });
oldRedis.on('error', (err) => console.warn('redis connection error:', err.message));
await oldRedis.connect();

const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', {
  maxRetriesPerRequest: 1,
  enableOfflineQueue: false,
  connectTimeout: 1000,
  commandTimeout: 1000,
});
redis.on('error', (err) => console.warn('redis connection error:', err.message));

const sessions = tieredSession({
  client: redis,
  secret: process.env.TIERED_SESSION_SECRET!,
  // express-session keeps req.session until the cutover ends.
  requestProperty: 'account',
  legacy: {
    cookie: 'connect.sid',
    userId: (req) => oldSession(req)?.userId,
    end: (req) => new Promise<void>((resolve, reject) => {
      const old = oldSession(req);
      if (old === undefined) return resolve();
      old.destroy((err) => (err ? reject(err) : resolve()));
    }),
  },
});

const app = express();
// Cutover only: the old middleware, before tiered-session (it loads the session the takeover reads).
app.use(session({
  store: new RedisStore({ client: oldRedis }),
  secret: process.env.SESSION_SECRET!,
  resave: false,
  saveUninitialized: false,
  cookie: { secure: 'auto', httpOnly: true, sameSite: 'lax' },
}));
app.use(sessions);
app.use('/sessions', sessions.routes);

const USERS: Record<string, string> = { alice: 'wonderland', bob: 'builder' };
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
    const signedIn = await req.signIn(username);
    res.json({ userId: signedIn.userId });
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
  res.json({ userId: req.account!.userId });
});

app.use((err: Error & { status?: number; code?: string; expose?: boolean }, _req: Request, res: Response, _next: NextFunction) => {
  const status = err.status ?? 500;
  res.status(status).json({ code: err.code, message: err.expose ? err.message : 'Internal Server Error' });
});

const server = app.listen(Number(process.env.PORT ?? 3000), process.env.HOST ?? '127.0.0.1');

process.once('SIGTERM', () => {
  server.close(async () => {
    await sessions.close();
    await redis.quit().catch(() => redis.disconnect());
    await oldRedis.quit().catch(() => oldRedis.destroy());
  });
});
