// 6. Bare Express 5, no session: the ceiling every other Express server is compared with. The
// same route shapes as the Fastify servers: GET /hello → { hello, user }, POST /login (body
// through express.json()) → { userId, sessionId }.
import { FAKE_SESSION_ID, serveHttp, USER } from './common.js';
import { createExpressApp, hello, loginBody } from './express-common.js';

const app = createExpressApp();
// BENCH_NOOP_LAYERS=1: the two layers the adapter adds (`app.use(sessions)` and
// `app.use('/sessions', sessions.routes)`), as no-ops: what those layers cost Express itself.
if (process.env.BENCH_NOOP_LAYERS === '1') {
  app.use((_req, _res, next) => next());
  app.use('/sessions', (_req, _res, next) => next());
}

app.get('/hello', (_req, res) => hello(res, USER));

// The sign-in baseline: the same body and answer shape as the adapter's POST /login, no session.
app.post('/login', (req, res) => {
  const user = loginBody(req.body, res);
  if (user !== undefined) res.json({ userId: user, sessionId: FAKE_SESSION_ID });
});

await serveHttp(app);
