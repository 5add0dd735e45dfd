// 1. Bare Fastify 5, no session: the ceiling every other Fastify server is compared with.
import { createApp, FAKE_SESSION_ID, helloSchema, loginSchema, serve, USER, type LoginBody } from './common.js';

const app = createApp();

app.get('/hello', { schema: helloSchema }, async () => ({ hello: 'world', user: USER }));

// The sign-in baseline: the same body and answer shape as the plugin's POST /login, no session.
app.post<{ Body: LoginBody }>('/login', { schema: loginSchema }, async (request) => (
  { userId: request.body.user, sessionId: FAKE_SESSION_ID }
));

await serve(app);
