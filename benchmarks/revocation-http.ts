// A revocation end to end, over HTTP, on two server processes: from the moment instance A's
// answer to POST /logout arrives to the first 401 instance B answers for the same cookie.
//
// Two copies of benchmarks/servers/tiered.ts (the Fastify plugin with its defaults, the L1 on)
// share one private Redis. Each trial signs in on A, reads /hello on B twice (the session is
// then in B's L1: a revocation that B did not hear would be served from there), signs out on A,
// and asks B again at once and then back to back until it answers 401; the latency is the time
// from A's answer to that 401 (a request's round trip is its resolution, and the share of trials
// whose first request after the sign-out already answered 401 is printed beside it).
// Beside it, in the same trials, the two requests B answered before the sign-out, timed the same
// way: the first (an L1 miss: B reads the session from Redis) and the second (an L1 hit). After
// the revocation B has dropped the session and reads Redis again, so the miss is that request's
// floor on this host: what the revocation costs beyond it is the package's.
// The in-process figure (the revoking call's return to the drop from B's L1) is propagation.ts.
//
// Settings: --revocations-http / BENCH_REVOCATIONS_HTTP (default 500). Run: npx tsx benchmarks/revocation-http.ts
import http from 'node:http';
import { forkTs, nextMessage, stopChild, type Message } from './support/child.js';
import { redisTarget } from './support/redis.js';
import { childEnv, num } from './support/settings.js';
import { fmt, machineLine, quantileSorted, table } from './support/stats.js';

const TRIALS = Math.round(num('revocations-http', 500, 10));
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

/** One request on a kept-alive connection: its status and Set-Cookie. */
function call(port: number, method: string, path: string, cookie?: string, body?: string) {
  return new Promise<{ status: number; setCookie: string[] }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent, headers: {
      ...(cookie ? { cookie } : {}), ...(body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}),
    } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, setCookie: res.headers['set-cookie'] ?? [] }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function main(): Promise<void> {
  const redis = await redisTarget({ forcePrivate: true });
  const env = childEnv({ BENCH_REDIS_URL: redis.url, BENCH_PREFIX: redis.prefix });
  const a = forkTs('benchmarks/servers/tiered.ts', env);
  const b = forkTs('benchmarks/servers/tiered.ts', env);
  try {
    const [pa, pb] = await Promise.all([a, b].map((c) => nextMessage<Message & { port: number }>(c, 'ready', 60_000)));
    const ms: number[] = [];
    const miss: number[] = [];
    const hit: number[] = [];
    let firstAsk = 0;
    for (let i = 0; i < TRIALS; i++) {
      const login = await call(pa.port, 'POST', '/login', undefined, JSON.stringify({ user: `user-${String(i).padStart(6, '0')}` }));
      const cookie = login.setCookie[0]?.split(';')[0];
      if (login.status !== 200 || cookie === undefined) throw new Error(`POST /login on A answered ${login.status}`);
      for (const into of [miss, hit]) {
        const s0 = performance.now();
        const r = await call(pb.port, 'GET', '/hello', cookie);
        into.push(performance.now() - s0);
        if (r.status !== 200) throw new Error(`GET /hello on B answered ${r.status} before the sign-out`);
      }
      const out = await call(pa.port, 'POST', '/logout', cookie);
      const t0 = performance.now();
      if (out.status !== 204) throw new Error(`POST /logout on A answered ${out.status}`);
      let asks = 0;
      for (;;) {
        asks++;
        const r = await call(pb.port, 'GET', '/hello', cookie);
        if (r.status === 401) break;
        if (performance.now() - t0 > 5000) throw new Error('B still served the session 5 s after the sign-out');
      }
      ms.push(performance.now() - t0);
      if (asks === 1) firstAsk++;
    }
    for (const a of [ms, miss, hit]) a.sort((x, y) => x - y);
    const q = (p: number, of = ms) => fmt(quantileSorted(of, p), 3);
    const row = (what: string, of: number[]) => [what, q(0.5, of), q(0.9, of), q(0.99, of), fmt(of.at(-1)!, 3)];
    const markdown = [
      '### A revocation over HTTP (revocation-http.ts): A answers POST /logout → B answers 401',
      '',
      machineLine(),
      '',
      `Two Fastify servers (defaults, L1 on) on one private Redis; ${fmt(TRIALS)} trials, the session in B's L1 each time; ` +
        'ms from the arrival of A\'s 204 to the arrival of B\'s first 401 (each request B answers takes one loopback round trip).',
      '',
      table(['trials', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'first request after the sign-out already 401'],
        [[fmt(TRIALS), q(0.5), q(0.9), q(0.99), fmt(ms.at(-1)!, 3), `${fmt((100 * firstAsk) / TRIALS, 1)} %`]]),
      '',
      'The same trials\' requests to B before the sign-out, one round trip each (the revocation\'s 401 is an L1 miss too):',
      '',
      table(['B answers', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms'], [
        row('A\'s 204 → B\'s 401 (the revocation)', ms),
        row('a live session not yet in B\'s L1 (a Redis read) → 200', miss),
        row('the same session again (an L1 hit) → 200', hit),
      ]),
      `p99 of the revocation ÷ p99 of B's L1 miss: ${fmt(quantileSorted(ms, 0.99) / quantileSorted(miss, 0.99), 2)}`,
      '',
    ].join('\n');
    console.log(markdown);
    if (process.send) process.send({ type: 'result', markdown });
  } finally {
    agent.destroy();
    await Promise.all([stopChild(a), stopChild(b)]);
    await redis.stop();
  }
}

await main();
