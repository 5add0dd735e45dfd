// The quick start runs as written: examples/quick-start/fastify.ts and express.ts, importing
// the built package by its own name (self-reference through "exports", as an app reaches it in
// node_modules), started as child processes against a private redis-server. Sign in, /me, the
// device list, sign out, /me refused; SIGTERM ends the process with exit code 0.
// (`npm run typecheck` type-checks both files: tsconfig.json includes examples/.)
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RedisServer, freePort, sleep } from '../fixtures/redis.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const env = { ...process.env };
delete env.NODE_OPTIONS;

/** The newest mtime under lib/. */
function newestSource(dir = path.join(root, 'lib')): number {
  return Math.max(...readdirSync(dir, { withFileTypes: true }).map((d) =>
    d.isDirectory() ? newestSource(path.join(dir, d.name)) : statSync(path.join(dir, d.name)).mtimeMs));
}

let redis: RedisServer | undefined;
t.before(async () => {
  const built = ['dist/esm/index.js', 'dist/esm/fastify/index.js', 'dist/esm/express/index.js'].map((p) => path.join(root, p));
  // Not built here: package.test.ts may be rebuilding dist/ at the same time (npm test builds first).
  if (!built.every(existsSync) || Math.min(...built.map((p) => statSync(p).mtimeMs)) < newestSource()) {
    throw new Error('dist/ is missing or older than lib/: run `npm run build` first (npm test does)');
  }
  redis = await RedisServer.start();
});

/** The example as a child process on a free port, against `redisUrl`; its output collected. */
async function startExample(t: Test, file: string, redisUrl: string) {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', file], {
    cwd: root,
    env: { ...env, PORT: String(port), HOST: '127.0.0.1', REDIS_URL: redisUrl, SESSION_SECRET: 'quick-start-secret-of-at-least-32-chars' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const app = { url: `http://127.0.0.1:${port}`, child, out: '',
    exited: new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code))) };
  child.stdout!.on('data', (b: Buffer) => { app.out += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { app.out += b.toString(); });
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  let up = false;
  for (const until = Date.now() + 30_000; !up && Date.now() < until && child.exitCode === null;) {
    try { up = (await fetch(`${app.url}/me`)).status === 401; } catch { await sleep(100); }
  }
  t.ok(up, `the app listens and /me without a session answers 401 ${up ? '' : app.out}`);
  return app;
}

for (const file of ['examples/quick-start/fastify.ts', 'examples/quick-start/express.ts']) {
  t.test(`${file}: SIGTERM while Redis is down still exits 0`, async (t) => {
    const own = await RedisServer.start();
    const app = await startExample(t, file, own.url);
    // The Express app listens before its client has connected (fail fast: 503 meanwhile); a
    // loaded machine can take a moment, so the sign-in is tried again while it answers 503.
    let login: Response;
    for (const until = Date.now() + 5000; ;) {
      login = await fetch(`${app.url}/login`,
        { method: 'POST', headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ username: 'alice', password: 'wonderland' }) });
      if (login.status !== 503 || Date.now() > until) break;
      await sleep(100);
    }
    t.equal(login.status, 200, 'signed in while Redis is up');
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0];
    t.equal((await fetch(`${app.url}/me`, { headers: { cookie } })).status, 200, 'a request queues a touch');
    await own.kill();
    const t0 = Date.now();
    app.child.kill('SIGTERM');
    const code = await Promise.race([app.exited, sleep(8000).then(() => 'timeout' as const)]);
    t.equal(code, 0, `exit code 0 (${code}; ${Date.now() - t0} ms)${code === 0 ? '' : `\n${app.out}`}`);
  });

  t.test(`${file} runs as written: sign in, /me, the device list, sign out, and SIGTERM exits 0`, async (t) => {
    const { url, child, exited, ...app } = await startExample(t, file, redis!.url);

    const bad = await fetch(`${url}/login`,
      { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: 'nope' }) });
    t.equal(bad.status, 401, 'a wrong password is refused by the app\'s own check');
    const cross = await fetch(`${url}/login`, {
      method: 'POST', headers: { 'content-type': 'application/json', origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
      body: JSON.stringify({ username: 'alice', password: 'wonderland' }),
    });
    t.equal(cross.status, 403, 'a cross-site login is refused');
    const login = await fetch(`${url}/login`,
      { method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'alice', password: 'wonderland' }) });
    t.equal(login.status, 200, 'login answers 200');
    t.same(await login.json(), { userId: 'alice' });
    const setCookie = login.headers.get('set-cookie') ?? '';
    t.match(setCookie, /^__Host-sid=[A-Za-z0-9_-]{38}\.[A-Za-z0-9_-]{43}; Max-Age=\d+; Path=\/; HttpOnly; Secure; SameSite=Lax$/,
      'with the session cookie');
    const cookie = setCookie.split(';')[0];

    const me = await fetch(`${url}/me`, { headers: { cookie } });
    t.equal(me.status, 200, '/me answers 200');
    t.same(await me.json(), { userId: 'alice' });
    const list = await fetch(`${url}/sessions`, { headers: { cookie } });
    t.equal(list.status, 200, 'GET /sessions answers 200');
    const sessions = (await list.json() as { sessions: { current: boolean }[] }).sessions;
    t.equal(sessions.length, 1);
    t.equal(sessions[0].current, true, 'listing the current session');
    const out1 = await fetch(`${url}/logout`, { method: 'POST', headers: { cookie } });
    t.equal(out1.status, 204, 'logout answers 204');
    t.match(out1.headers.get('set-cookie') ?? '', /^__Host-sid=; Max-Age=0/, 'and clears the cookie');
    t.equal((await fetch(`${url}/me`, { headers: { cookie } })).status, 401, '/me with the old cookie answers 401');

    const t0 = Date.now();
    child.kill('SIGTERM');
    const code = await Promise.race([exited, sleep(8000).then(() => 'timeout' as const)]);
    t.equal(code, 0, `SIGTERM ends the process with exit code 0 (${code}; ${Date.now() - t0} ms)${code === 0 ? '' : `\n${app.out}`}`);
    t.ok(Date.now() - t0 < 5000, `within a few seconds (${Date.now() - t0} ms)`);
  });
}
