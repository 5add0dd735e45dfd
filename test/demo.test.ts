// Both demo servers as child processes (examples/demo/server.ts on Fastify, express.ts on
// Express): started while Redis is down they listen, serve their public routes and report
// themselves unhealthy, then recover without a restart once Redis comes up; the country comes
// only from the header COUNTRY_HEADER names; /metrics does not tell whether an id is cached.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { RedisServer, freePort, sleep } from './fixtures/redis.js';
import { startDemo, type Demo } from './fixtures/browser/demo.js';

const SERVERS: [string, string][] = [['Fastify', 'examples/demo/server.ts'], ['Express', 'examples/demo/express.ts']];

async function demoOn(t: Test, env: Record<string, string>, script: string, waitFor: 'healthy' | 'listening' = 'healthy'): Promise<Demo> {
  const demo = await startDemo({ KEY_PREFIX: `demo${randomBytes(3).toString('hex')}:`, ...env }, script, { waitFor });
  t.teardown(() => demo.stop());
  return demo;
}

/** Sign in as alice through the demo's own login; the session cookie as a Cookie header. */
async function login(demo: Demo, headers: Record<string, string> = {}): Promise<{ status: number; cookie: string; body: string }> {
  const r = await fetch(`${demo.url}/login`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ username: 'alice', password: 'wonderland' }),
  });
  const cookie = (r.headers.get('set-cookie') ?? '').split(';')[0];
  return { status: r.status, cookie, body: await r.text() };
}

const get = (demo: Demo, path: string, cookie?: string) => fetch(`${demo.url}${path}`, cookie ? { headers: { cookie } } : {});

/** A counter from the demo's /metrics. */
async function metric(demo: Demo, name: string): Promise<number> {
  const text = await (await get(demo, '/metrics')).text();
  const m = new RegExp(`^${name.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text);
  if (!m) throw new Error(`no ${name} in /metrics`);
  return Number(m[1]);
}

async function until(fn: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return true;
    if (Date.now() > end) return false;
    await sleep(100);
  }
}

let redis: RedisServer | undefined;
t.before(async () => { redis = await RedisServer.start(); });

for (const [framework, script] of SERVERS) {
  t.test(`the ${framework} demo started while Redis is down listens, serves its public routes, reports itself unhealthy, and recovers without a restart`, async (t) => {
    const port = await freePort();
    const demo = await demoOn(t, { REDIS_URL: `redis://127.0.0.1:${port}` }, script, 'listening');
    for (const path of ['/', '/app.js', '/metrics']) {
      const r = await get(demo, path);
      t.equal(r.status, 200, `GET ${path} answers 200 while Redis is down`);
      await r.arrayBuffer();
    }
    const anyToken = `__Host-sid=${randomBytes(29).toString('base64url').slice(0, 38)}.${randomBytes(32).toString('base64url')}`;
    for (const path of ['/', '/app.js']) {
      const r = await get(demo, path, anyToken);
      t.equal(r.status, 200, `GET ${path} with a session cookie answers 200 too: public routes opt out of sessions`);
      await r.arrayBuffer();
    }
    const health = await get(demo, '/healthz');
    t.equal(health.status, 503, '/healthz answers 503');
    t.same(await health.json(), { status: 'unavailable' });
    const refused = await login(demo);
    t.equal(refused.status, 503, 'a sign-in answers 503 (not 500, no cookie)');
    t.equal(refused.cookie, '');
    t.match(await (await get(demo, '/metrics')).text(), /tiered_session_channel_state\{state="confirmed"\} 0/, 'the channel is not confirmed');

    const server = await RedisServer.start([], { port });
    t.teardown(() => server.stop());
    t.ok(await until(async () => (await get(demo, '/healthz')).status === 200, 8000), '/healthz turns 200 once Redis is up');
    const ok = await login(demo);
    t.equal(ok.status, 200, `a sign-in works (${ok.body})`);
    t.equal((await get(demo, '/me', ok.cookie)).status, 200, '/me answers 200');
    t.equal((await get(demo, '/', ok.cookie)).status, 200);
  });

  t.test(`the ${framework} demo reads the country only from the header COUNTRY_HEADER names, and its /metrics does not tell whether an id is cached`, async (t) => {
    const plain = await demoOn(t, { REDIS_URL: redis!.url }, script);
    const behindCdn = await demoOn(t, { REDIS_URL: redis!.url, COUNTRY_HEADER: 'cf-ipcountry' }, script);
    for (const [demo, want, what] of [[plain, null, 'COUNTRY_HEADER unset'], [behindCdn, 'DE', 'COUNTRY_HEADER=cf-ipcountry']] as const) {
      const s = await login(demo, { 'cf-ipcountry': 'DE' });
      t.equal(s.status, 200);
      const list = await (await get(demo, '/sessions', s.cookie)).json() as { sessions: { country: string | null }[] };
      t.equal(list.sessions[0]?.country, want, `${what}: a sign-in sending cf-ipcountry: DE is listed with country ${want}`);
    }

    const demo = behindCdn;
    t.ok(await until(async () => (await metric(demo, 'tiered_session_channel_state{state="confirmed"}')) === 1, 5000), 'the channel is confirmed');
    const s = await login(demo);
    const hits = await metric(demo, 'tiered_session_l1_hits_total');
    t.equal((await get(demo, '/me', s.cookie)).status, 200);
    t.equal(await metric(demo, 'tiered_session_l1_hits_total'), hits + 1, 'the session is served from the local cache');
    const token = s.cookie.slice(s.cookie.indexOf('=') + 1);
    const name = s.cookie.slice(0, s.cookie.indexOf('='));
    const probe = async (value: string) => {
      const misses = await metric(demo, 'tiered_session_l1_misses_total');
      const r = await get(demo, '/me', `${name}=${value}`);
      return [r.status, await metric(demo, 'tiered_session_l1_misses_total') - misses];
    };
    const cachedWrong = await probe(`${token.slice(0, 39)}${randomBytes(32).toString('base64url')}`);
    const unknown = await probe(`${randomBytes(29).toString('base64url').slice(0, 38)}.${randomBytes(32).toString('base64url')}`);
    t.same(cachedWrong, [401, 1], 'a wrong secret for a cached id: 401, one miss');
    t.same(unknown, cachedWrong, 'exactly as for an id nobody has');
  });
}
