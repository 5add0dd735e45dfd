// Moving in from express-session and @fastify/session (docs/migrating.md). The guide's apps run
// as written: examples/migrating/*-before.mjs sign users in on the old library (connect-redis,
// a private redis-server), then the guide's "after" app (examples/migrating/express.ts,
// fastify.ts) replaces it on the same Redis, and a user's next request with only the old
// cookie is signed in to tiered-session without a new sign-in. Then: both libraries side by
// side (the renamed request property) on Express 5, Express 4 and Fastify, the options' checks,
// and what a failing legacy callback and a concurrent takeover on two instances answer.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express5 from 'express';
import express4 from 'express4';
import type { Request, Response, NextFunction, RequestHandler } from 'express';
import expressSession from 'express-session';
import Fastify, { type FastifyRequest } from 'fastify';
import fastifyCookie from '@fastify/cookie';
import { RedisStore } from 'connect-redis';
import { createClient } from 'redis';
import type { FastifyPluginAsync } from 'fastify';
// @fastify/session loaded without its types: they declare `request.session` as its own for the
// whole program, which is the suite's and the package's (an app in its cutover meets the same
// thing: see docs/migrating.md). A specifier TypeScript does not follow keeps them out.
const FASTIFY_SESSION: string = '@fastify/session';
const fastifySession = ((await import(FASTIFY_SESSION)) as { default: FastifyPluginAsync<Record<string, unknown>> }).default;
import { tieredSession as expressTiered } from '../../lib/express/index.js';
import { tieredSession as fastifyTiered } from '../../lib/fastify/index.js';
import type { Logger } from '../../lib/core/log.js';
import type { Session } from '../../lib/core/session-data.js';
import { RedisClass, RedisServer, fastFail, freePort, sleep } from '../fixtures/redis.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const env = { ...process.env };
delete env.NODE_OPTIONS;
const OLD_SECRET = 'the-old-apps-session-secret-0123456789';
const NEW_SECRET = 'tiered-session-secret-of-at-least-32-chars';
const NEW = '__Host-sid';

function newestSource(dir = path.join(root, 'lib')): number {
  return Math.max(...readdirSync(dir, { withFileTypes: true }).map((d) =>
    d.isDirectory() ? newestSource(path.join(dir, d.name)) : statSync(path.join(dir, d.name)).mtimeMs));
}

// The example apps import the built package. Without any dist/ (the mutation check's scratch
// copies) they are skipped, saying so; a dist/ older than lib/ fails the file (npm test builds first).
const EXAMPLES = existsSync(path.join(root, 'dist'));

let redis: RedisServer;
t.before(async () => {
  if (EXAMPLES) checkBuilt();
  redis = await RedisServer.start();
});
t.teardown(() => redis?.stop());

function checkBuilt(): void {
  const built = ['dist/esm/index.js', 'dist/esm/fastify/index.js', 'dist/esm/express/index.js'].map((p) => path.join(root, p));
  if (!built.every(existsSync) || Math.min(...built.map((p) => statSync(p).mtimeMs)) < newestSource()) {
    throw new Error('dist/ is missing or older than lib/: run `npm run build` first (npm test does)');
  }
}

/** Set-Cookie lines of a response, by cookie name (the last line for a name wins). */
function setCookies(res: globalThis.Response): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of res.headers.getSetCookie()) m.set(line.slice(0, line.indexOf('=')), line);
  return m;
}
/** `name=value` of a Set-Cookie line. */
const pair = (line: string | undefined) => (line ?? '').split(';')[0]!;

/** A file as a child process on a free port; resolves once it answers. */
async function start(t: Test, file: string, extra: Record<string, string> = {}) {
  const port = await freePort();
  const args = file.endsWith('.ts') ? ['--import', 'tsx', file] : [file];
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { ...env, PORT: String(port), HOST: '127.0.0.1', REDIS_URL: redis.url, SESSION_SECRET: OLD_SECRET, ...extra },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const app = { url: `http://127.0.0.1:${port}`, out: '',
    exited: new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code))), child };
  child.stdout!.on('data', (b: Buffer) => { app.out += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { app.out += b.toString(); });
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  let up = false;
  // Up once it answers a lookup that reads Redis: a well-formed token nobody issued is 401 when
  // the app's client is connected, 503 while it is still connecting (the examples listen before
  // Redis answers, as fail-fast clients do).
  const unknown = { cookie: `${NEW}=${'A'.repeat(38)}.${'B'.repeat(43)}` };
  for (const until = Date.now() + 30_000; !up && Date.now() < until && child.exitCode === null;) {
    try {
      up = (await fetch(`${app.url}/me`)).status === 401 && (await fetch(`${app.url}/me`, { headers: unknown })).status === 401;
    } catch { /* not listening yet */ }
    if (!up) await sleep(100);
  }
  t.ok(up, `${file} listens and /me without a session answers 401 ${up ? '' : app.out}`);
  return app;
}

const login = (url: string, username: string, password: string) => fetch(`${url}/login`, {
  method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }),
});
const me = (url: string, cookie: string) => fetch(`${url}/me`, { headers: { cookie } });

const CASES = [
  // express-session signs `s:<sid>.<sig>`; @fastify/session `<sid>.<sig>`; both keep the sid in connect-redis under `sess:`.
  { name: 'express-session + connect-redis', before: 'examples/migrating/express-before.mjs', after: 'examples/migrating/express.ts',
    cookie: 'connect.sid', prefix: 's:' },
  { name: '@fastify/session + connect-redis', before: 'examples/migrating/fastify-before.mjs', after: 'examples/migrating/fastify.ts',
    cookie: 'sessionId', prefix: '' },
] as const;

if (!EXAMPLES) t.test('the example apps', { skip: 'dist/ is absent: `npm run build` first' }, async () => {});
for (const c of EXAMPLES ? CASES : []) {
  t.test(`${c.name}: the guide's "after" app keeps the users the old app signed in`, async (t) => {
    await redis.stop();
    redis = await RedisServer.start();
    const admin = new RedisClass({ port: redis.port, host: '127.0.0.1', ...fastFail });
    t.teardown(() => admin.disconnect());
    const before = await start(t, c.before);
    const old: Record<string, string> = {};
    for (const [user, password] of [['alice', 'wonderland'], ['bob', 'builder'], ['carol', 'x']] as const) {
      const res = await login(before.url, user, password);
      if (user === 'carol') { t.equal(res.status, 401, 'a wrong password is refused by the old app'); continue; }
      t.equal(res.status, 200, `${user} signs in on the old app`);
      old[user] = pair(setCookies(res).get(c.cookie));
      t.match(old[user], new RegExp(`^${c.cookie}=`), `${user} has the old cookie`);
      t.equal((await me(before.url, old[user]!)).status, 200, `${user}'s old cookie works on the old app`);
    }
    const sidOf = (cookie: string) => decodeURIComponent(cookie.slice(c.cookie.length + 1)).slice(c.prefix.length).split('.')[0]!;
    t.equal(await admin.exists(`sess:${sidOf(old.alice!)}`), 1, 'the old session is in the old store');
    before.child.kill('SIGTERM');
    t.equal(await before.exited, 0, 'the old app stops');

    const after = await start(t, c.after, { TIERED_SESSION_SECRET: NEW_SECRET });
    // Alice's next request carries only the old cookie.
    const first = await me(after.url, old.alice!);
    t.equal(first.status, 200, `the old cookie alone is signed in (${after.out.slice(-500)})`);
    t.same(await first.json(), { userId: 'alice' });
    const set = setCookies(first);
    const fresh = pair(set.get(NEW));
    t.match(fresh, /^__Host-sid=[A-Za-z0-9_.-]{40,}$/, 'a tiered-session cookie is set');
    t.match(set.get(c.cookie) ?? '', /^[^=]+=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=\//, 'the old cookie is cleared');
    t.equal(await admin.exists(`sess:${sidOf(old.alice!)}`), 0, 'the old session is destroyed in its store');

    const second = await me(after.url, fresh);
    t.equal(second.status, 200, 'the next request uses the new cookie');
    t.notOk(setCookies(second).has(NEW), 'and gets no other cookie');
    const list = await (await fetch(`${after.url}/sessions`, { headers: { cookie: fresh } })).json() as { sessions: unknown[] };
    t.equal(list.sessions?.length, 1, `alice has one session ${JSON.stringify(list)}`);

    const both = await me(after.url, `${fresh}; ${old.bob!}`);
    t.same([both.status, setCookies(both).has(NEW)], [200, false], 'with both cookies the new one wins (bob\'s old one is not taken over)');
    t.equal(await admin.exists(`sess:${sidOf(old.bob!)}`), 1, 'bob\'s old session is untouched');
    const again = await me(after.url, old.alice!);
    t.same([again.status, pair(setCookies(again).get(NEW))], [200, fresh],
      'the old cookie again (a request sent before the new cookie arrived) gets the same session');
    const out = await fetch(`${after.url}/logout`, { method: 'POST', headers: { cookie: fresh } });
    t.equal(out.status, 204, 'alice signs out');
    const replay = await me(after.url, old.alice!);
    t.same([replay.status, setCookies(replay).has(NEW)], [401, false], 'the old cookie then gets no session');
    const ended = await me(after.url, `${fresh}; ${old.bob!}`);
    t.same([ended.status, setCookies(ended).has(NEW)], [401, false],
      'a tiered-session cookie, even a signed-out one, wins over an old cookie');
    t.equal(await admin.exists(`sess:${sidOf(old.bob!)}`), 1, 'bob\'s old session is still untouched');

    // Forged and unknown old cookies.
    const sid = 'unknown-session-id-0123456789';
    const signed = `${c.prefix}${sid}.${createHmac('sha256', OLD_SECRET).update(sid).digest('base64').replace(/=+$/, '')}`;
    for (const [what, value] of [['forged', `${c.prefix}${sid}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA`],
      ['unknown (validly signed)', signed], ['malformed', '%%%']]) {
      const res = await me(after.url, `${c.cookie}=${encodeURIComponent(value!)}`);
      t.same([res.status, setCookies(res).has(NEW)], [401, false], `a ${what} old cookie gets no session`);
    }

    // Bob's tab opens several requests at once with only the old cookie: one session, one cookie.
    const burst = await Promise.all(Array.from({ length: 6 }, () => me(after.url, old.bob!)));
    t.same(burst.map((r) => r.status), Array(6).fill(200), 'concurrent requests with the old cookie are all signed in');
    const tokens = new Set(burst.map((r) => pair(setCookies(r).get(NEW))));
    t.equal(tokens.size, 1, 'all of them get the same new cookie');
    const bobs = await (await fetch(`${after.url}/sessions`, { headers: { cookie: [...tokens][0]! } })).json() as { sessions: unknown[] };
    t.equal(bobs.sessions?.length, 1, `bob has one session ${JSON.stringify(bobs)}`);

    after.child.kill('SIGTERM');
    t.equal(await after.exited, 0, 'the after app exits 0 on SIGTERM');
  });
}

// ---- side by side, in process -----------------------------------------------------------

async function listen(t: Test, app: { listen: (port: number, host: string, cb: () => void) =>
  unknown } | ReturnType<typeof Fastify>): Promise<string> {
  if ('inject' in app) {
    await app.listen({ port: 0, host: '127.0.0.1' });
    t.teardown(() => app.close());
    return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  }
  const server = await new Promise<import('node:http').Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s as import('node:http').Server));
  });
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function oldStore(t: Test) {
  const client = createClient({ url: redis.url });
  client.on('error', () => {});
  await client.connect();
  t.teardown(() => client.quit());
  return new RedisStore({ client, prefix: `sess${Math.random().toString(36).slice(2, 8)}:` });
}

async function tieredClient(t: Test) {
  const client = new RedisClass({ port: redis.port, host: '127.0.0.1', ...fastFail });
  client.on('error', () => {});
  t.teardown(() => client.disconnect());
  return client;
}

const quiet: Logger & { warned: string[] } = { warned: [], debug() {}, info() {}, warn(_o, m) { quiet.warned.push(m); }, error() {} };

interface OldExpressSession { views?: number; userId?: string; destroy(cb: (err?: unknown) => void): void }
const oldOf = (req: Request) => (req as unknown as { session: OldExpressSession }).session;

/** An Express app with express-session and tiered-session (requestProperty 'account') side by side. */
async function expressSideBySide(t: Test, express: typeof express5, legacy?: Parameters<typeof expressTiered>[0]['legacy']) {
  const sessions = expressTiered({
    client: await tieredClient(t), secret: NEW_SECRET, keyPrefix: `m${Math.random().toString(36).slice(2, 8)}:`,
    requestProperty: 'account', logger: quiet, ...(legacy === undefined ? {} : { legacy }),
  });
  t.teardown(() => sessions.close());
  const app = express();
  app.use(expressSession({ store: await oldStore(t), secret: OLD_SECRET, resave: false, saveUninitialized: false }) as RequestHandler);
  app.use(sessions);
  app.use('/sessions', sessions.routes);
  // Old code, not moved yet: express-session's req.session.
  app.get('/views', (req: Request, res: Response) => {
    const s = oldOf(req);
    s.views = (s.views ?? 0) + 1;
    res.json({ views: s.views });
  });
  app.post('/old-login', (req: Request, res: Response) => { oldOf(req).userId = 'dave'; res.json({}); });
  app.post('/login', async (req: Request, res: Response, next: NextFunction) => {
    try { res.json({ userId: (await req.signIn('erin')).userId }); } catch (err) { next(err); }
  });
  app.get('/me', sessions.requireSession, (req: Request, res: Response) => {
    res.json({ userId: (req as unknown as { account: Session }).account.userId, old: oldOf(req)?.views ?? null });
  });
  app.use((err: Error & { status?: number }, _req: Request, res: Response,
    _next: NextFunction) => { res.status(err.status ?? 500).json({ message: err.message }); });
  await sessions.ready();
  return { url: await listen(t, app), sessions };
}

interface OldFastifySession { get(k: string): unknown; set(k: string, v: unknown): void; destroy(): Promise<void> }
const oldOfFastify = (request: FastifyRequest) => (request as unknown as { session: OldFastifySession | null }).session;

async function fastifySideBySide(t: Test, legacy?: Parameters<typeof fastifyTiered>[1]['legacy']) {
  const app = Fastify();
  await app.register(fastifyCookie);
  await app.register(fastifySession,
    { store: await oldStore(t) as unknown as Record<string, unknown>, secret: OLD_SECRET, saveUninitialized: false,
      cookie: { secure: false } });
  await app.register(fastifyTiered, {
    client: await tieredClient(t), secret: NEW_SECRET, keyPrefix: `m${Math.random().toString(36).slice(2, 8)}:`,
    requestProperty: 'account', ...(legacy === undefined ? {} : { legacy }),
  });
  app.get('/views', async (request) => {
    const s = oldOfFastify(request)!;
    s.set('views', ((s.get('views') as number | undefined) ?? 0) + 1);
    return { views: s.get('views') };
  });
  app.post('/old-login', async (request) => { oldOfFastify(request)!.set('userId', 'dave'); return {}; });
  app.post('/login', async (_request, reply) => ({ userId: (await reply.signIn('erin')).userId }));
  app.get('/me', { preHandler: app.requireSession }, async (request) =>
    ({ userId: (request as unknown as { account: Session }).account.userId, old: oldOfFastify(request)?.get('views') ?? null }));
  return { url: await listen(t, app) };
}

const oldCookieName = (adapter: string) => (adapter === 'fastify' ? 'sessionId' : 'connect.sid');

const SIDE = [
  ['express5', (t: Test, legacy?: never) => expressSideBySide(t, express5, legacy)],
  ['express4', (t: Test, legacy?: never) => expressSideBySide(t, express4 as unknown as typeof express5, legacy)],
  ['fastify', (t: Test, legacy?: never) => fastifySideBySide(t, legacy)],
] as const;

for (const [adapter, make] of SIDE) {
  t.test(`${adapter}: both libraries side by side, tiered-session under requestProperty 'account'`, async (t) => {
    const { url } = await make(t);
    const v1 = await fetch(`${url}/views`);
    t.equal(v1.status, 200, 'the old code still writes req.session');
    t.same(await v1.json(), { views: 1 });
    const old = pair(setCookies(v1).get(oldCookieName(adapter)));
    t.ok(old, 'the old library set its cookie');
    const v2 = await fetch(`${url}/views`, { headers: { cookie: old } });
    t.same(await v2.json(), { views: 2 }, 'and reads it back from its store');

    t.equal((await fetch(`${url}/me`, { headers: { cookie: old } })).status, 401, 'the guard reads the renamed property (no session yet)');
    const signed = await fetch(`${url}/login`, { method: 'POST', headers: { cookie: old } });
    t.equal(signed.status, 200, 'signIn works beside the old library');
    const fresh = pair(setCookies(signed).get(NEW));
    const mine = await fetch(`${url}/me`, { headers: { cookie: `${old}; ${fresh}` } });
    t.same(await mine.json(), { userId: 'erin', old: 2 }, 'req.account is tiered-session\'s session, req.session still the old one');
    const list = await fetch(`${url}/sessions`, { headers: { cookie: fresh } });
    t.equal(list.status, 200, 'the device routes read the renamed property');
    t.equal(((await list.json()) as { sessions: unknown[] }).sessions.length, 1);
    const out = await fetch(`${url}/sessions/logout-everywhere`, { method: 'POST', headers: { cookie: fresh } });
    t.equal(out.status, 200, 'log out everywhere');
    t.equal((await fetch(`${url}/me`, { headers: { cookie: fresh } })).status, 401, 'and the session is gone');
  });

  t.test(`${adapter}: a failing legacy callback answers as no session, never 500`, async (t) => {
    for (const [what, legacy, status] of [
      ['userId throws', { cookie: oldCookieName(adapter), userId: () => { throw new Error('old store down'); }, end: () => {} }, 401],
      ['userId rejects', { cookie: oldCookieName(adapter), userId: async () => { throw new Error('old store down'); }, end: () => {} },
        401],
      ['userId answers a number', { cookie: oldCookieName(adapter), userId: () => 42 as unknown as string, end: () => {} }, 401],
      ['end throws (the user is signed in; the failure is logged)',
        { cookie: oldCookieName(adapter), userId: () => 'dave', end: () => { throw new Error('old store down'); } }, 200],
    ] as const) {
      quiet.warned.length = 0;
      const { url } = await make(t, legacy as never);
      const v = await fetch(`${url}/old-login`, { method: 'POST' });
      const old = pair(setCookies(v).get(oldCookieName(adapter)));
      t.ok(old, `${what}: the old library set its cookie`);
      const res = await fetch(`${url}/me`, { headers: { cookie: old } });
      t.equal(res.status, status, `${what}: ${status}`);
      t.equal(setCookies(res).has(NEW), status === 200, `${what}: ${status === 200 ? 'a' : 'no'} tiered-session cookie`);
      if (adapter !== 'fastify') t.ok(quiet.warned.some((m) => m.startsWith('tiered-session: legacy.')), `${what}: logged`);
    }
  });
}

t.test('a takeover racing on two instances makes one session', async (t) => {
  const keyPrefix = `race${Math.random().toString(36).slice(2, 8)}:`;
  const store = await oldStore(t);
  const legacy = {
    cookie: 'connect.sid',
    userId: (req: Request) => oldOf(req)?.userId,
    end: (req: Request) => new Promise<void>((resolve) => oldOf(req).destroy(() => resolve())),
  };
  const urls: string[] = [];
  for (let i = 0; i < 2; i++) {
    const sessions = expressTiered({ client: await tieredClient(t), secret: NEW_SECRET, keyPrefix, requestProperty: 'account',
      logger: quiet, legacy });
    t.teardown(() => sessions.close());
    await sessions.ready();
    const app = express5();
    app.use(expressSession({ store, secret: OLD_SECRET, resave: false, saveUninitialized: false }) as RequestHandler);
    app.use(sessions);
    app.use('/sessions', sessions.routes);
    app.post('/old-login', (req: Request, res: Response) => { oldOf(req).userId = 'frank'; res.json({}); });
    app.get('/me', sessions.requireSession, (_req: Request, res: Response) => { res.json({}); });
    app.use((err: Error & { status?: number }, _req: Request, res: Response,
      _next: NextFunction) => { res.status(err.status ?? 500).json({ message: err.message }); });
    urls.push(await listen(t, app));
  }
  const old = pair(setCookies(await fetch(`${urls[0]}/old-login`, { method: 'POST' })).get('connect.sid'));
  const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => me(urls[i % 2]!, old)));
  const tokens = new Set(answers.map((r) => pair(setCookies(r).get(NEW))).filter((x) => x !== ''));
  t.equal(tokens.size, 1, `one new cookie across both instances (statuses ${answers.map((r) => r.status).join(' ')})`);
  t.ok(answers.every((r) => r.status === (setCookies(r).has(NEW) ? 200 : 401)),
    'a request the other instance won answers 401, without a cookie');
  const list = await fetch(`${urls[0]}/sessions`, { headers: { cookie: [...tokens][0]! } });
  t.equal(((await list.json()) as { sessions: unknown[] }).sessions.length, 1, 'frank has one session');
});

t.test('options: requestProperty and legacy are checked, with coded errors naming them', async (t) => {
  const client = await tieredClient(t);
  const bad: [string, object][] = [
    ['requestProperty', { requestProperty: 42 }],
    ['requestProperty', { requestProperty: 'a-b' }],
    ['requestProperty', { requestProperty: 'body' }],
    ['requestProperty', { requestProperty: 'headers' }],
    ['requestProperty', { requestProperty: 'signIn' }],
    ['requestProperty', { requestProperty: '' }],
    ['legacy', { legacy: 'connect.sid' }],
    ['legacy.cookie', { legacy: { cookie: 42, userId() {}, end() {} } }],
    ['legacy.cookie.name', { legacy: { cookie: 'a b', userId() {}, end() {} } }],
    ['legacy.cookie.path', { legacy: { cookie: { name: 'sid', path: 'x' }, userId() {}, end() {} } }],
    ['legacy.cookie.secure', { legacy: { cookie: { name: 'sid', secure: true }, userId() {}, end() {} } }],
    ['legacy.userId', { legacy: { cookie: 'sid', end() {} } }],
    ['legacy.end', { legacy: { cookie: 'sid', userId() {}, end: 'destroy' } }],
    ['legacy.store', { legacy: { cookie: 'sid', userId() {}, end() {}, store: {} } }],
  ];
  for (const [name, extra] of bad) {
    t.throws(() => expressTiered({ client, secret: NEW_SECRET, ...extra } as never),
      { code: 'ERR_TIERED_SESSION_INVALID_OPTION', message: new RegExp(`^Invalid option "${name.replace(/\./g, '\\.')}"`) },
        `Express: ${JSON.stringify(extra).slice(0, 60)} names ${name}`);
    const app = Fastify();
    await t.rejects(async () => { await app.register(fastifyTiered, { client, secret: NEW_SECRET, ...extra } as never).ready(); },
      { code: 'ERR_TIERED_SESSION_INVALID_OPTION', message: new RegExp(`^Invalid option "${name.replace(/\./g, '\\.')}"`) },
        `Fastify: names ${name}`);
    await app.close();
  }
  // Without the renamed property, @fastify/session and tiered-session both claim request.session.
  const app = Fastify();
  await app.register(fastifyCookie);
  await app.register(fastifySession, { secret: OLD_SECRET });
  await t.rejects(async () => { await app.register(fastifyTiered, { client, secret: NEW_SECRET }).ready(); },
    { code: 'ERR_TIERED_SESSION_INVALID_OPTION', message: /^Invalid option "requestProperty": request\.session is already decorated/ },
    'the default name, taken by @fastify/session, is refused with a coded error naming requestProperty');
  await app.close();
});

t.test('docs/migrating.md shows the example files verbatim', async (t) => {
  const guide = readFileSync(path.join(root, 'docs/migrating.md'), 'utf8');
  const blocks = [...guide.matchAll(/<!-- file: (\S+) -->\n```\w+\n([\s\S]*?)```\n/g)];
  t.same(blocks.map((b) => b[1]).sort(), ['examples/migrating/express-before.mjs', 'examples/migrating/express.ts',
    'examples/migrating/fastify-before.mjs', 'examples/migrating/fastify.ts'], 'the four apps are in the guide');
  for (const [, file, code] of blocks) t.equal(code, readFileSync(path.join(root, file!), 'utf8'), `${file} is shown as it is`);
});
