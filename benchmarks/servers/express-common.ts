// What the Express servers share beyond common.ts: the app (Express 5 defaults, `express.json()`
// for the login body, as an app mounts it) and the two routes' answers.
import express, { type Express, type Response } from 'express';
import { loginUser } from './common.js';

export function createExpressApp(): Express {
  const app = express();
  app.use(express.json());
  return app;
}

/** GET /hello's answer: the user, or 401 with `user: null` (the Fastify servers' shape). */
export function hello(res: Response, user: string | undefined | null): void {
  if (typeof user !== 'string') res.status(401).json({ hello: 'world', user: null });
  else res.json({ hello: 'world', user });
}

/** The login body's user (loginSchema's rules), or a 400 answer and undefined. */
export function loginBody(body: unknown, res: Response): string | undefined {
  const user = loginUser(body);
  if (user === undefined) res.status(400).json({ error: 'body must be { user: string of 1-64 characters }' });
  return user;
}
