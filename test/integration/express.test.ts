// The Express adapter over a real socket (no inject()): what only a real connection shows, such
// as a body that arrives in many small packets, and apps that mount things in another order than
// the test app does.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import express5 from 'express';
import express4 from 'express4';
import type { NextFunction, Request, Response } from 'express';
import { tieredSession as expressMiddleware, type TieredSessionMiddleware } from '../../lib/express/index.js';
import { RedisServer, ready, sleep } from '../fixtures/redis.js';
import { COOKIE, tokenOf } from '../fixtures/targets.js';
import { TEST_SECRET } from '../fixtures/apps.js';

type ExpressName = 'express5' | 'express4';
const EXPRESSES = ((process.env.TS_ADAPTERS?.split(',') ?? ['express5', 'express4']).filter((a) => a !== 'fastify')) as ExpressName[];

let redis: RedisServer | undefined;
t.before(async () => { redis = await RedisServer.start(); });
// The fixture kills its redis-server when this process exits.

async function eachExpress(t: Test, fn: (t: Test, ex: typeof express5) => Promise<void>): Promise<void> {
  for (const name of EXPRESSES) {
    await t.test(`on ${name}`, async (t) => fn(t, (name === 'express5' ? express5 : express4) as unknown as typeof express5));
  }
}

/** The middleware on a fresh key prefix, closed at teardown. */
async function middleware(t: Test): Promise<TieredSessionMiddleware> {
  const client = redis!.client();
  t.teardown(() => client.disconnect());
  await ready(client);
  const sessions = expressMiddleware({ client, secret: TEST_SECRET, keyPrefix: `t${randomBytes(4).toString('hex')}:` });
  t.teardown(() => sessions.close());
  await sessions.ready();
  return sessions;
}

/** Listen on a free loopback port; closed at teardown. */
async function listen(t: Test, app: ReturnType<typeof express5>): Promise<string> {
  const server: Server = createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** The app's error handler: the package's coded errors as { code } with their status. */
function errors(err: Error & { statusCode?: number; code?: string }, _req: Request, res: Response, _next: NextFunction): void {
  res.status(err.statusCode ?? 500).json({ code: err.code });
}

/**
 * Send a request whose body goes out in `size`-byte writes, each its own packet (no Nagle, a
 * pause between them), until the server answers. Resolves to the status, the response body and
 * how many body bytes had been sent when the answer came.
 */
function drip(host: string, head: string, body: Buffer, size = 64, pauseMs = 2): Promise<{ status: number; body: string; sent: number }> {
  const [hostname, port] = host.split(':');
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    socket.setNoDelay(true);
    let sent = 0;
    let answered = false;
    let sentAtAnswer = 0;
    let raw = Buffer.alloc(0);
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no answer in 30 s (${sent} bytes sent)`)); }, 30_000);
    socket.on('data', (d: Buffer) => {
      if (!answered) { answered = true; sentAtAnswer = sent; }
      raw = Buffer.concat([raw, d]);
      const end = raw.indexOf('\r\n\r\n');
      if (end === -1) return;
      const headers = raw.subarray(0, end).toString('latin1');
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(headers)?.[1] ?? NaN);
      if (raw.length - end - 4 < length) return;
      clearTimeout(timer);
      socket.destroy();
      resolve({ status: Number(headers.split(' ')[1]), body: raw.subarray(end + 4, end + 4 + length).toString('utf8'),
        sent: sentAtAnswer });
    });
    socket.on('error', (err) => { if (!answered) { clearTimeout(timer); reject(err); } });
    socket.on('connect', async () => {
      socket.write(head);
      for (let i = 0; i < body.length && !answered && !socket.destroyed; i += size) {
        socket.write(body.subarray(i, i + size));
        sent = Math.min(body.length, i + size);
        await sleep(pauseMs);
      }
    });
  });
}

/** `{"keepCurrent":false}` padded with inner whitespace to `bytes`: valid JSON of that size. */
const padded = (bytes: number) => Buffer.from(`{"keepCurrent":${' '.repeat(bytes - 21)}false}`);

t.test('POST /sessions/logout-everywhere: a body over the 1 KB limit is refused however it is split into packets', async (t) => {
  await eachExpress(t, async (t, ex) => {
    const sessions = await middleware(t);
    const app = ex();
    app.use(sessions);
    // No body parser before the routes: they read the body themselves.
    app.use('/sessions', sessions.routes);
    app.post('/login', (req: Request, res: Response,
      next: NextFunction) => { req.signIn('pat').then((s) => res.json({ id: s.id }), next); });
    app.get('/me', sessions.requireSession, (req: Request, res: Response) => { res.json({ id: req.session!.id }); });
    app.use(errors);
    const host = await listen(t, app);

    const login = await fetch(`http://${host}/login`, { method: 'POST' });
    const token = tokenOf({ headers: { 'set-cookie': login.headers.getSetCookie() } })!;
    t.ok(token, 'signed in');
    const head = (length: number) => `POST /sessions/logout-everywhere HTTP/1.1\r\nHost: ${host}\r\nCookie: ${COOKIE}=${token}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${length}\r\nConnection: close\r\n\r\n`;
    const me = async () => (await fetch(`http://${host}/me`, { headers: { cookie: `${COOKIE}=${token}` } })).status;

    const small = padded(1000);
    t.equal(JSON.parse(small.toString()).keepCurrent, false, 'the padded body is valid JSON');
    const over = padded(3 * 1024);
    const r = await drip(host, head(over.length), over);
    t.equal(r.status, 400, 'a 3 KB body in 64-byte packets: 400');
    t.equal(JSON.parse(r.body).code, 'ERR_TIERED_SESSION_BAD_BODY');
    t.equal(await me(), 200, 'nothing was revoked');

    const big = padded(64 * 1024);
    const b = await drip(host, head(big.length), big, 64, 1);
    t.equal(b.status, 400, 'a 64 KB body in 64-byte packets: 400');
    t.ok(b.sent < big.length, `answered before the body was all sent (${b.sent} of ${big.length} bytes): the rest is not waited for`);
    t.equal(await me(), 200, 'still nothing revoked');

    // The limit is not a refusal of every slow body: 1000 bytes dripped the same way are read.
    const ok = await drip(host, head(small.length), small);
    t.equal(ok.status, 200, 'a 1000-byte body in 64-byte packets: 200');
    t.same(JSON.parse(ok.body), { revoked: 1 }, 'and acted on');
    t.equal(await me(), 401, 'the session is gone');
  });
});

t.test('the guards on a route mounted before app.use(sessions) refuse (401), never let a request through', async (t) => {
  await eachExpress(t, async (t, ex) => {
    const sessions = await middleware(t);
    const app = ex();
    // Mounted before the middleware: the session is never resolved for these routes.
    app.get('/early', sessions.requireSession, (_req: Request, res: Response) => { res.json({ ok: true }); });
    app.post('/early-sensitive', sessions.requireRecentAuthentication(60_000),
      (_req: Request, res: Response) => { res.json({ ok: true }); });
    app.use(sessions);
    app.post('/login', (req: Request, res: Response,
      next: NextFunction) => { req.signIn('pat').then((s) => res.json({ id: s.id }), next); });
    app.get('/me', sessions.requireSession, (req: Request, res: Response) => { res.json({ id: req.session!.id }); });
    app.use(errors);
    const host = await listen(t, app);

    const early = async (cookie?: string) => {
      const r = await fetch(`http://${host}/early`, cookie ? { headers: { cookie } } : {});
      return { status: r.status, body: await r.json() as unknown };
    };
    t.same(await early(), { status: 401, body: { code: 'ERR_TIERED_SESSION_NO_SESSION' } }, 'anonymous, on the first request the app sees');
    const login = await fetch(`http://${host}/login`, { method: 'POST' });
    const cookie = `${COOKIE}=${tokenOf({ headers: { 'set-cookie': login.headers.getSetCookie() } })!}`;
    t.equal((await fetch(`http://${host}/me`, { headers: { cookie } })).status, 200, 'the session works where the middleware ran');
    t.same(await early(), { status: 401, body: { code: 'ERR_TIERED_SESSION_NO_SESSION' } },
      'anonymous, after requests went through the middleware');
    t.same(await early(cookie), { status: 401, body: { code: 'ERR_TIERED_SESSION_NO_SESSION' } },
      'with a session cookie: not resolved there, so refused');
    const s = await fetch(`http://${host}/early-sensitive`, { method: 'POST' });
    t.same({ status: s.status, body: await s.json() }, { status: 401, body: { code: 'ERR_TIERED_SESSION_NO_SESSION' } },
      'requireRecentAuthentication likewise');
  });
});
