// Before: an Express app on express-session with connect-redis (its sessions in Redis).
//
//   SESSION_SECRET=… REDIS_URL=redis://127.0.0.1:6379 node examples/migrating/express-before.mjs
import express from 'express';
import session from 'express-session';
import { RedisStore } from 'connect-redis';
import { createClient } from 'redis';

const redis = createClient({ url: process.env.REDIS_URL });
redis.on('error', (err) => console.warn('redis connection error:', err.message));
await redis.connect();

const app = express();
app.use(session({
  store: new RedisStore({ client: redis }),
  secret: process.env.SESSION_SECRET,
  resave: false,
  saveUninitialized: false,
  cookie: { secure: 'auto', httpOnly: true, sameSite: 'lax' },
}));

const USERS = { alice: 'wonderland', bob: 'builder' };

app.post('/login', express.json(), (req, res, next) => {
  const { username, password } = req.body ?? {};
  if (!Object.hasOwn(USERS, username) ||
    USERS[username] !== password) return res.status(401).json({ message: 'Wrong username or password' });
  req.session.regenerate((err) => {
    if (err) return next(err);
    req.session.userId = username;
    res.json({ userId: username });
  });
});

app.post('/logout', (req, res, next) => {
  req.session.destroy((err) => (err ? next(err) : res.status(204).end()));
});

app.get('/me', (req, res) => {
  if (req.session.userId === undefined) return res.status(401).json({ message: 'Authentication required' });
  res.json({ userId: req.session.userId });
});

const server = app.listen(Number(process.env.PORT ?? 3000), process.env.HOST ?? '127.0.0.1');
process.once('SIGTERM', () => server.close(() => redis.quit()));
