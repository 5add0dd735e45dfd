// The quick start runs as written: examples/quick-start/fastify.ts and express.ts, importing
// the built package by its own name (self-reference through "exports", as an app reaches it in
// node_modules), started as child processes against a private redis-server. Sign in, /me, the
// device list, sign out, /me refused; SIGTERM ends the process with exit code 0.
// (`npm run typecheck` type-checks both files: tsconfig.json includes examples/.)
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RedisServer, freePort, sleep } from './fixtures/redis.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
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

for (const file of ['examples/quick-start/fastify.ts', 'examples/quick-start/express.ts']) {
  t.test(`${file} runs as written: sign in, /me, the device list, sign out, and SIGTERM exits 0`, async (t) => {
    const port = await freePort();
    const child = spawn(process.execPath, ['--import', 'tsx', file], {
      cwd: root,
      env: { ...env, PORT: String(port), HOST: '127.0.0.1', REDIS_URL: redis!.url, SESSION_SECRET: 'quick-start-secret-of-at-least-32-chars' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
    child.stderr!.on('data', (b: Buffer) => { out += b.toString(); });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });

    const url = `http://127.0.0.1:${port}`;
    let up = false;
    for (const until = Date.now() + 30_000; !up && Date.now() < until && child.exitCode === null;) {
      try { up = (await fetch(`${url}/me`)).status === 401; } catch { await sleep(100); }
    }
    t.ok(up, `the app listens and /me without a session answers 401 ${up ? '' : out}`);

    const bad = await fetch(`${url}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: 'nope' }) });
    t.equal(bad.status, 401, 'a wrong password is refused by the app\'s own check');
    const cross = await fetch(`${url}/login`, {
      method: 'POST', headers: { 'content-type': 'application/json', origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
      body: JSON.stringify({ username: 'alice', password: 'wonderland' }),
    });
    t.equal(cross.status, 403, 'a cross-site login is refused');
    const login = await fetch(`${url}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: 'wonderland' }) });
    t.equal(login.status, 200, 'login answers 200');
    t.same(await login.json(), { userId: 'alice' });
    const setCookie = login.headers.get('set-cookie') ?? '';
    t.match(setCookie, /^__Host-sid=[A-Za-z0-9_-]{38}\.[A-Za-z0-9_-]{43}; Max-Age=\d+; Path=\/; HttpOnly; Secure; SameSite=Lax$/, 'with the session cookie');
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
    t.equal(code, 0, `SIGTERM ends the process with exit code 0 (${code}; ${Date.now() - t0} ms)${code === 0 ? '' : `\n${out}`}`);
    t.ok(Date.now() - t0 < 5000, `within a few seconds (${Date.now() - t0} ms)`);
  });
}
