// `npm run bench`: the whole benchmark suite, in one run.
//
// 1. HTTP, one server process alive at a time: each server under benchmarks/servers/ (Fastify
//    and Express) is started as a child process on loopback, warmed up, measured with autocannon
//    (driven from this process) or wrk, and stopped before the next one starts. The order
//    alternates every round (round 1 forward, round 2 reversed, …) and the report gives medians
//    over the rounds, with every ratio taken against the bare server of the same framework
//    (bare Fastify, bare Express) measured in the same round.
// 2. Sign-in throughput: POST /login through each adapter against its framework's bare POST of
//    the same body.
// 3. resolve-micro.ts, propagation.ts, revocation-http.ts, memory.ts and replicas.ts, each as a
//    child process.
//
// Settings (CLI flag or environment): --duration / BENCH_DURATION (s, default 10),
// --warmup / BENCH_WARMUP (s, 3), --connections / BENCH_CONNECTIONS (50), --rounds /
// BENCH_ROUNDS (3), --only / BENCH_ONLY and --skip / BENCH_SKIP (comma-separated keys of
// servers, frameworks (fastify, express) or parts: http, login, micro, propagation,
// revocation-http, memory, replicas; a server's baseline is measured with it unless skipped by
// name), REDIS_URL (use that server instead of a private one: never flushed, only this run's keys
// are deleted), plus the settings of the other scripts (BENCH_SESSIONS, BENCH_L1_ENTRIES,
// BENCH_ITERATIONS, BENCH_REVOCATIONS, BENCH_REVOCATIONS_HTTP).
import autocannon, { type Options, type RequestSpec, type Result } from 'autocannon';
import { UA, USER } from './servers/common.js';
import { PostgresServer } from '../test/fixtures/postgres.js';
import { ask, forkTs, nextMessage, runScript, stopChild, type Message } from './support/child.js';
import { callsDelta, commandCalls, redisCpuSeconds, redisTarget, redisVersion, sleep, type RedisTarget } from './support/redis.js';
import { childEnv, list, num, raw } from './support/settings.js';
import { wrk, wrkAvailable } from './support/wrk.js';
import { MicroHistogram, fmt, machineLine, median, table } from './support/stats.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { chartFiles, type ChartInput } from './charts.js';

const DURATION = num('duration', 10, 1);
const WARMUP = num('warmup', 3, 0);
const CONNECTIONS = num('connections', 50, 1);
const ROUNDS = Math.max(1, Math.round(num('rounds', 3, 1)));
const ONLY = list('only');
const SKIP = list('skip') ?? [];
/** autocannon (default, in this process) or wrk (one C thread, a separate process: a higher ceiling). */
const LOADGEN = raw('loadgen') ?? 'autocannon';
if (LOADGEN !== 'autocannon' && LOADGEN !== 'wrk') throw new Error(`--loadgen must be autocannon or wrk, not ${LOADGEN}`);
if (LOADGEN === 'wrk' && !wrkAvailable()) throw new Error('--loadgen wrk: wrk is not on PATH (apt-get install -y wrk)');
/** Extra node flags for the server processes, e.g. BENCH_SERVER_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof'. */
const SERVER_NODE_ARGS = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean);


interface Scenario {
  key: string;
  label: string;
  script: string;
  env?: Record<string, string>;
  kind: 'get' | 'login';
  /**
   * GET scenarios: `shared` signs in once and every connection sends that cookie (the L1-hit
   * steady state); `per-connection` signs in once per connection, so no two requests in flight
   * carry the same session (the plugin coalesces concurrent reads of one id, which would hide
   * the Redis cost of `localCache: false`); `none` sends a cookie nobody reads.
   */
  sessions?: 'shared' | 'per-connection' | 'none';
  /** The scenario this one is compared with, in the same round. */
  baseline: string;
}

const FASTIFY_SESSION = '@fastify/session + connect-redis 9';
const SCENARIOS: Scenario[] = [
  // Fastify: every ratio against bare Fastify of the same round.
  { key: 'bare', label: 'bare Fastify 5, no session (Fastify ceiling)', script: 'benchmarks/servers/bare.ts', kind: 'get', sessions: 'none',
    baseline: 'bare' },
  { key: 'tiered', label: 'tiered-session/fastify, L1 hit', script: 'benchmarks/servers/tiered.ts', kind: 'get', sessions: 'shared',
    baseline: 'bare' },
  { key: 'tiered-no-l1', label: 'tiered-session/fastify, localCache: false', script: 'benchmarks/servers/tiered.ts',
    env: { BENCH_LOCAL_CACHE: '0' }, kind: 'get', sessions: 'per-connection', baseline: 'bare' },
  { key: 'fsession', label: `${FASTIFY_SESSION}, rolling: true (default)`, script: 'benchmarks/servers/fastify-session.ts', kind: 'get',
    sessions: 'per-connection', baseline: 'bare' },
  { key: 'fsession-no-rolling', label: `${FASTIFY_SESSION}, rolling: false`, script: 'benchmarks/servers/fastify-session.ts',
    env: { BENCH_ROLLING: '0' }, kind: 'get', sessions: 'per-connection', baseline: 'bare' },
  { key: 'tiered-no-telemetry', label: 'tiered-session/fastify, L1 hit, telemetry: false (metrics off)',
    script: 'benchmarks/servers/tiered.ts', env: { BENCH_TELEMETRY: '0' }, kind: 'get', sessions: 'shared', baseline: 'bare' },
  // The L1 at scale: the same hit with 10 k or 1 M other sessions cached (the p99 and the GC pauses).
  { key: 'tiered-l1-10k', label: 'tiered-session/fastify, L1 hit, 10,000 other sessions cached', script: 'benchmarks/servers/tiered.ts',
    env: { BENCH_L1_FILL: '10000' }, kind: 'get', sessions: 'shared', baseline: 'bare' },
  { key: 'tiered-l1-1m', label: 'tiered-session/fastify, L1 hit, 1,000,000 other sessions cached', script: 'benchmarks/servers/tiered.ts',
    env: { BENCH_L1_FILL: '1000000' }, kind: 'get', sessions: 'shared', baseline: 'bare' },
  { key: 'naive', label: 'naive preHandler, one ioredis GET', script: 'benchmarks/servers/naive.ts', kind: 'get',
    sessions: 'per-connection', baseline: 'bare' },
  // The audit trail on (a private PostgreSQL; the sink polls the 256 streams every second).
  { key: 'tiered-audit', label: 'tiered-session/fastify, L1 hit, audit on', script: 'benchmarks/servers/tiered.ts',
    env: { BENCH_AUDIT: '1' }, kind: 'get', sessions: 'shared', baseline: 'bare' },
  // Express: every ratio against bare Express of the same round.
  { key: 'express-bare', label: 'bare Express 5, no session (Express ceiling)', script: 'benchmarks/servers/express-bare.ts', kind: 'get',
    sessions: 'none', baseline: 'express-bare' },
  { key: 'express-bare-layers', label: 'bare Express 5 + two no-op layers (where the adapter mounts its two)',
    script: 'benchmarks/servers/express-bare.ts', env: { BENCH_NOOP_LAYERS: '1' }, kind: 'get', sessions: 'none',
    baseline: 'express-bare' },
  { key: 'express-tiered', label: 'tiered-session/express, L1 hit', script: 'benchmarks/servers/express-tiered.ts', kind: 'get',
    sessions: 'shared', baseline: 'express-bare' },
  { key: 'express-tiered-no-telemetry', label: 'tiered-session/express, L1 hit, telemetry: false (metrics off)',
    script: 'benchmarks/servers/express-tiered.ts', env: { BENCH_TELEMETRY: '0' }, kind: 'get', sessions: 'shared',
      baseline: 'express-bare' },
  { key: 'express-tiered-no-l1', label: 'tiered-session/express, localCache: false', script: 'benchmarks/servers/express-tiered.ts',
    env: { BENCH_LOCAL_CACHE: '0' }, kind: 'get', sessions: 'per-connection', baseline: 'express-bare' },
  { key: 'express-session', label: 'express-session + connect-redis 9 (defaults)', script: 'benchmarks/servers/express-session.ts',
    kind: 'get', sessions: 'per-connection', baseline: 'express-bare' },
  // Sign-in, against the same framework's bare POST of the same body.
  { key: 'bare-login', label: 'bare Fastify, POST /login (same body, no session)', script: 'benchmarks/servers/bare.ts', kind: 'login',
    baseline: 'bare-login' },
  { key: 'tiered-login', label: 'tiered-session/fastify, POST /login (reply.signIn)', script: 'benchmarks/servers/tiered.ts', kind: 'login',
    baseline: 'bare-login' },
  // The floors: the sign-in's own script with its arguments and nothing of the package's JS around
  // it; any sign-in that writes Redis once before it answers (32 random bytes, one SET, a cookie).
  { key: 'script-login', label: 'the sign-in\'s script alone: POST /login sends it through the store, no package JS around it',
    script: 'benchmarks/servers/tiered.ts', env: { BENCH_LOGIN: 'script' }, kind: 'login', baseline: 'bare-login' },
  // The control: the script alone after as much busy JS as a sign-in's own (8 µs in process).
  { key: 'script-login-js', label: 'the sign-in\'s script alone after 8 µs of busy JS (a sign-in\'s own JS, measured in process)',
    script: 'benchmarks/servers/tiered.ts', env: { BENCH_LOGIN: 'script', BENCH_LOGIN_SPIN_US: '8' }, kind: 'login',
    baseline: 'bare-login' },
  { key: 'tiered-login-no-l1', label: 'tiered-session/fastify, POST /login, localCache: false (the sign-in without its L1 fill)',
    script: 'benchmarks/servers/tiered.ts', env: { BENCH_LOCAL_CACHE: '0' }, kind: 'login', baseline: 'bare-login' },
  { key: 'tiered-login-autopipelining', label: 'tiered-session/fastify, POST /login, a control: the client with enableAutoPipelining ' +
    '(not the README\'s)', script: 'benchmarks/servers/tiered.ts', env: { BENCH_AUTOPIPELINING: '1' }, kind: 'login',
    baseline: 'bare-login' },
  { key: 'naive-login', label: 'naive POST /login: one ioredis SET, a cookie (the one Redis write alone)',
    script: 'benchmarks/servers/naive.ts', kind: 'login', baseline: 'bare-login' },
  { key: 'tiered-login-audit', label: 'tiered-session/fastify, POST /login, audit on (appends only; a worker consumes)',
    script: 'benchmarks/servers/tiered.ts', env: { BENCH_AUDIT: '1', BENCH_AUDIT_CONSUME: '0' }, kind: 'login', baseline: 'bare-login' },
  { key: 'tiered-login-audit-consuming', label: 'tiered-session/fastify, POST /login, audit on, consuming in-process',
    script: 'benchmarks/servers/tiered.ts', env: { BENCH_AUDIT: '1' }, kind: 'login', baseline: 'bare-login' },
  { key: 'tiered-login-events', label: 'tiered-session/fastify, POST /login, events on (appends only; a worker delivers)',
    script: 'benchmarks/servers/tiered.ts', env: { BENCH_EVENTS: '1' }, kind: 'login', baseline: 'bare-login' },
  { key: 'tiered-login-events-consuming', label: 'tiered-session/fastify, POST /login, events on, delivered in-process to a no-op handler',
    script: 'benchmarks/servers/tiered.ts', env: { BENCH_EVENTS: 'consume' }, kind: 'login', baseline: 'bare-login' },
  { key: 'express-bare-login', label: 'bare Express, POST /login (same body, no session)', script: 'benchmarks/servers/express-bare.ts',
    kind: 'login', baseline: 'express-bare-login' },
  { key: 'express-tiered-login', label: 'tiered-session/express, POST /login (req.signIn)', script: 'benchmarks/servers/express-tiered.ts',
    kind: 'login', baseline: 'express-bare-login' },
];

/**
 * Ratios between two servers beyond each one's baseline (median over rounds of the per-round
 * ratio), printed under the tables when both were measured.
 */
const COMPARISONS: [string, string][] = [
  // The metrics' cost on the L1 hit: timings on (the default) over off, in the same round.
  ['tiered', 'tiered-no-telemetry'],
  ['express-tiered', 'express-tiered-no-telemetry'],
  ['tiered-audit', 'tiered'],
  ['tiered-login-audit', 'tiered-login'],
  ['tiered-login-audit-consuming', 'tiered-login'],
  ['tiered-login-events', 'tiered-login'],
  ['tiered-login-events-consuming', 'tiered-login'],
  ['tiered', 'fsession'],
  ['tiered', 'fsession-no-rolling'],
  ['tiered', 'naive'],
  ['tiered-login', 'naive-login'],
  ['tiered-login', 'script-login'],
  ['script-login', 'naive-login'],
  ['tiered-login', 'script-login-js'],
  ['tiered-login', 'tiered-login-no-l1'],
  ['tiered-login-autopipelining', 'tiered-login'],
  ['script-login-js', 'script-login'],
  ['express-tiered', 'express-session'],
  ['express-tiered-no-l1', 'express-session'],
  ['express-bare', 'bare'],
  ['express-tiered', 'tiered'],
  ['tiered-l1-1m', 'tiered-l1-10k'],
  ['express-tiered', 'express-bare-layers'],
];

/** Pairs whose p99 latencies are compared (median over rounds of the ratio in the same round). */
const P99_COMPARISONS: [string, string][] = [['tiered-l1-1m', 'tiered-l1-10k']];

const partOf = (sc: Scenario) => (sc.kind === 'get' ? 'http' : 'login');
const frameworkOf = (sc: Scenario) => (sc.key.startsWith('express') ? 'express' : 'fastify');
const named = (names: string[], sc: Scenario) => names.includes(sc.key) || names.includes(partOf(sc)) || names.includes(frameworkOf(sc));
/**
 * --only / --skip take server keys (bare, tiered, …), frameworks (fastify, express) and part
 * names (http, login, micro, propagation, memory). A wanted server brings its baseline along (its
 * ratio needs it) unless --skip names that baseline itself.
 */
const scenarioWanted = (sc: Scenario): boolean => {
  if (ONLY === undefined || named(ONLY, sc)) return !named(SKIP, sc);
  return !SKIP.includes(sc.key) && SCENARIOS.some((o) => o.baseline === sc.key && o.key !== sc.key && scenarioWanted(o));
};
const partWanted = (part: string) => (ONLY === undefined || ONLY.includes(part)) && !SKIP.includes(part);

interface Measurement {
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  non2xx: number;
  errors: number;
  cmdsPerReq: number;
  topCommands: [string, number][];
  serverCpuUsPerReq: number;
  redisCpuUsPerReq: number;
  /** Share of resolved requests answered from L1 (plugin servers). */
  l1HitRatio?: number;
  /** Garbage collections in the server during the measured window (what `--trace-gc` prints, counted). */
  gc?: Gc;
  error?: string;
}

// ---- one scenario --------------------------------------------------------------------------

interface Request {
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  /** One header set per connection (connection i sends perConnection[i]). */
  perConnection?: Record<string, string>[];
  /** A fresh body per request. */
  body?: () => string;
  /** Sign-in bodies are `{"user":"<userPrefix><9 digits>"}`. */
  userPrefix?: string;
}

function cookiePair(res: Response): string {
  const set = res.headers.getSetCookie();
  if (set.length === 0) throw new Error(`POST /login answered ${res.status} without Set-Cookie`);
  return set[0].split(';')[0];
}

const jsonHeaders = { 'content-type': 'application/json', 'user-agent': UA };

async function signIn(base: string, user: string): Promise<string> {
  const res = await fetch(`${base}/login`, { method: 'POST', headers: jsonHeaders, body: JSON.stringify({ user }) });
  if (res.status !== 200) throw new Error(`POST /login answered ${res.status}: ${await res.text()}`);
  return cookiePair(res);
}

async function checkHello(base: string, headers: Record<string, string>, user = USER): Promise<void> {
  const res = await fetch(`${base}/hello`, { headers });
  const json = await res.json() as { user?: string };
  if (res.status !== 200 || json.user !== user) throw new Error(`GET /hello with the session cookie answered ${res.status} ` +
    `${JSON.stringify(json)}`);
}

/** Sign in (or not), check the server answers as expected, and return the request to measure. */
async function prepare(sc: Scenario, base: string): Promise<Request> {
  if (sc.kind === 'login') {
    const res = await fetch(`${base}/login`, { method: 'POST', headers: jsonHeaders, body: JSON.stringify({ user: 'u-check' }) });
    const json = await res.json() as { userId?: string };
    if (res.status !== 200 || json.userId !== 'u-check') throw new Error(`POST /login answered ${res.status} ${JSON.stringify(json)}`);
    // Distinct users (as real sign-ins are), fixed-width so every body has the same length.
    const run = Math.random().toString(36).slice(2, 8).padEnd(6, '0');
    let n = 0;
    return {
      method: 'POST', path: '/login', headers: jsonHeaders, userPrefix: `u-${run}-`,
      body: () => `{"user":"u-${run}-${String(n++).padStart(9, '0')}"}`,
    };
  }
  const common = { 'user-agent': UA, accept: 'application/json' };
  if (sc.sessions === 'none') {
    // The same Cookie header shape the plugin servers get, ignored.
    const headers = { ...common, cookie: `sid=${'A'.repeat(38)}.${'B'.repeat(43)}` };
    await checkHello(base, headers);
    return { method: 'GET', path: '/hello', headers };
  }
  if (sc.sessions === 'shared') {
    const headers = { ...common, cookie: await signIn(base, USER) };
    await checkHello(base, headers);
    return { method: 'GET', path: '/hello', headers };
  }
  // One user per connection (same id length as USER, so every answer has the same size).
  const perConnection: Record<string, string>[] = [];
  for (let i = 0; i < CONNECTIONS; i++) {
    const user = `user-${String(i + 1).padStart(6, '0')}`;
    const headers = { ...common, cookie: await signIn(base, user) };
    await checkHello(base, headers, user);
    perConnection.push(headers);
  }
  return { method: 'GET', path: '/hello', headers: perConnection[0], perConnection };
}

async function cannon(base: string, req: Request, seconds: number, hist?: MicroHistogram): Promise<Result> {
  const spec: RequestSpec = { method: req.method, path: req.path, headers: req.headers };
  const makeBody = req.body;
  if (makeBody !== undefined) {
    spec.body = makeBody();
    spec.setupRequest = (r) => ({ ...r, body: makeBody() });
  }
  const options: Options = { url: base, connections: CONNECTIONS, duration: seconds, requests: [spec] };
  const perConnection = req.perConnection;
  if (perConnection !== undefined) {
    let conn = 0;
    options.setupClient = (client) => client.setHeaders(perConnection[conn++ % perConnection.length]);
  }
  const inst = autocannon(options);
  if (hist !== undefined) inst.on('response',
    (_c: unknown, status: number, _b: number, ms: number) => { if (status < 300) hist.record(ms); });
  return await inst;
}

interface Driven { requests: number; seconds: number; p50: number; p99: number; non2xx: number; errors: number }

/** Load `base` with the chosen generator for `seconds`. p50/p99 in ms, of 2xx answers (autocannon) or all (wrk). */
async function drive(base: string, req: Request, seconds: number): Promise<Driven> {
  if (LOADGEN === 'wrk') {
    // A fresh run tag per call: wrk's counter restarts, and sign-ins must stay distinct users.
    const tag = Math.random().toString(36).slice(2, 6).padEnd(4, '0');
    return wrk(base, {
      method: req.method, path: req.path, headers: req.headers, rotate: req.perConnection,
      userBodyPrefix: req.userPrefix === undefined ? undefined : `${req.userPrefix}${tag}-`,
    }, CONNECTIONS, seconds);
  }
  const hist = new MicroHistogram();
  const r = await cannon(base, req, seconds, hist);
  return { requests: r.requests.total, seconds: r.duration, p50: hist.quantile(0.5), p99: hist.quantile(0.99), non2xx: r.non2xx,
    errors: r.errors };
}

interface Gc { minor: number; minorMs: number; major: number; majorMs: number; maxMs: number }
interface Probe extends Message { cpu: NodeJS.CpuUsage; gc: Gc; stats?: { l1Hits: number; l1Misses: number } }

const unmeasured = (error: string): Measurement => ({
  rps: NaN, p50: NaN, p99: NaN, requests: 0, non2xx: 0, errors: 0, cmdsPerReq: NaN, topCommands: [],
  serverCpuUsPerReq: NaN, redisCpuUsPerReq: NaN, error,
});

const hitRatio = (hits: number, misses: number) => (hits + misses > 0 ? hits / (hits + misses) : NaN);

/** The private PostgreSQL of the audit scenarios (started only when one of them runs). */
let postgres: PostgresServer | undefined;

async function measure(sc: Scenario, redis: RedisTarget, pilot = false): Promise<Measurement> {
  await redis.reset();
  const audit = sc.env?.BENCH_AUDIT === '1' ? { BENCH_DATABASE_URL: (postgres ??= await PostgresServer.start()).url } : {};
  const child = forkTs(sc.script, childEnv({ BENCH_REDIS_URL: redis.url, BENCH_PREFIX: redis.prefix, ...sc.env, ...audit }),
    SERVER_NODE_ARGS);
  try {
    const { port } = await nextMessage<Message & { port: number }>(child, 'ready', 60_000);
    const base = `http://127.0.0.1:${port}`;
    const req = await prepare(sc, base);
    if (WARMUP > 0 || pilot) await drive(base, req, Math.max(WARMUP, 1));
    if (pilot) return unmeasured('pilot run, not measured');

    const calls0 = await commandCalls(redis.admin);
    const rcpu0 = await redisCpuSeconds(redis.admin);
    const p0 = await ask<Probe>(child, 'probe');
    const r = await drive(base, req, DURATION);
    const p1 = await ask<Probe>(child, 'probe');
    const rcpu1 = await redisCpuSeconds(redis.admin);
    const calls1 = await commandCalls(redis.admin);

    const requests = r.requests;
    const cpuUs = (p1.cpu.user + p1.cpu.system) - (p0.cpu.user + p0.cpu.system);
    const m: Measurement = {
      rps: requests / r.seconds,
      p50: r.p50,
      p99: r.p99,
      requests,
      non2xx: r.non2xx,
      errors: r.errors,
      cmdsPerReq: (calls1.total - calls0.total) / requests,
      topCommands: callsDelta(calls0.byCommand, calls1.byCommand).slice(0, 6).map(([k, v]) => [k, v / requests]),
      serverCpuUsPerReq: cpuUs / requests,
      redisCpuUsPerReq: ((rcpu1 - rcpu0) * 1e6) / requests,
      l1HitRatio: p1.stats && p0.stats ? hitRatio(p1.stats.l1Hits - p0.stats.l1Hits, p1.stats.l1Misses - p0.stats.l1Misses) : undefined,
      gc: { minor: p1.gc.minor - p0.gc.minor, minorMs: p1.gc.minorMs - p0.gc.minorMs, major: p1.gc.major - p0.gc.major,
        majorMs: p1.gc.majorMs - p0.gc.majorMs, maxMs: p1.gc.maxMs },
    };
    if (m.non2xx > 0 || m.errors > 0) m.error = `${m.non2xx} non-2xx answers, ${m.errors} errors`;
    return m;
  } catch (err) {
    return unmeasured((err as Error).message);
  } finally {
    await stopChild(child);
  }
}

// ---- report --------------------------------------------------------------------------------

function httpReport(scenarios: Scenario[], results: Map<string, Measurement[]>, kind: 'get' | 'login'): string {
  const list = scenarios.filter((s) => s.kind === kind);
  if (list.length === 0) return '';
  const ratios = (sc: Scenario) => {
    const base = results.get(sc.baseline);
    return (results.get(sc.key) ?? []).map((m, round) => m.rps / (base?.[round]?.rps ?? NaN));
  };
  const rows = list.map((sc) => {
    const ms = results.get(sc.key) ?? [];
    const med = (f: (m: Measurement) => number) => median(ms.map(f));
    const problems = ms.map((m, i) => (m.error ? `round ${i + 1}: ${m.error}` : '')).filter(Boolean).join('; ');
    return [
      sc.label,
      fmt(med((m) => m.rps)),
      sc.key === sc.baseline ? '1.00' : fmt(median(ratios(sc)), 2),
      fmt(med((m) => m.p50), 3),
      fmt(med((m) => m.p99), 3),
      fmt(med((m) => m.cmdsPerReq), 2),
      fmt(med((m) => m.serverCpuUsPerReq), 1),
      fmt(med((m) => m.redisCpuUsPerReq), 1),
      problems || 'none',
    ];
  });
  const title = kind === 'get'
    ? `GET /hello`
    : `POST /login (sign-in: a new session per request, distinct user ids)`;
  const label = (key: string) => SCENARIOS.find((s) => s.key === key)?.label ?? key;
  const perRound = (a: string, b: string) => {
    const x = results.get(a) ?? [];
    const y = results.get(b) ?? [];
    return x.map((m, i) => m.rps / (y[i]?.rps ?? NaN));
  };
  const both = ([a, b]: [string, string]) => list.some((s) => s.key === a) && list.some((s) => s.key === b);
  const comparisons = COMPARISONS.filter(both);
  const p99s = P99_COMPARISONS.filter(both);
  const out = [
    `### ${title}: ${CONNECTIONS} connections, ${DURATION} s measured after ${WARMUP} s warm-up, median of ${ROUNDS} round(s)`,
    '',
    table(['server', 'req/s', `ratio to bare ${kind === 'get' ? '(same framework)' : 'POST (same framework)'}`, 'p50 ms', 'p99 ms',
      'Redis cmds/req', 'server CPU µs/req', 'Redis CPU µs/req', 'errors'], rows),
    '',
    ...(comparisons.length === 0 ? [] : [
      'Between servers (median over rounds of the ratio of req/s in the same round; per round in brackets):',
      '',
      ...comparisons.map(([a, b]) => {
        const rs = perRound(a, b);
        return `- ${label(a)} / ${label(b)}: **${fmt(median(rs), 2)}** (${rs.map((r) => fmt(r, 2)).join(' / ')})`;
      }),
      '',
    ]),
    ...(p99s.length === 0 ? [] : [
      'p99 latency between servers (median over rounds of the ratio of p99 in the same round; per round in brackets):',
      '',
      ...p99s.map(([a, b]) => {
        const x = results.get(a) ?? [];
        const y = results.get(b) ?? [];
        const rs = x.map((m, i) => m.p99 / (y[i]?.p99 ?? NaN));
        return `- ${label(a)} / ${label(b)}: **${fmt(median(rs), 2)}** (${rs.map((r) => fmt(r, 2)).join(' / ')})`;
      }),
      '',
    ]),
    'Garbage collection in the server during the measured window (median over rounds; the events `--trace-gc` prints, counted ' +
      'by a `gc` PerformanceObserver):',
    '',
    table(['server', 'scavenges', 'scavenge ms', 'mark-compacts', 'mark-compact ms', 'longest pause ms'], list.map((sc) => {
      const ms = (results.get(sc.key) ?? []).filter((m) => m.gc !== undefined);
      const med = (f: (g: Gc) => number, d = 0) => fmt(median(ms.map((m) => f(m.gc!))), d);
      return [sc.label, med((g) => g.minor), med((g) => g.minorMs, 1), med((g) => g.major), med((g) => g.majorMs, 1),
        med((g) => g.maxMs, 2)];
    })),
    '',
    'Per round (req/s, and the ratio to the baseline of the same round):',
    '',
    table(['server', ...Array.from({ length: ROUNDS }, (_, i) => `round ${i + 1}${i % 2 ? ' (reversed)' : ''}`)], list.map((sc) => {
      const rs = ratios(sc);
      return [sc.label, ...(results.get(sc.key) ?? []).map((m, i) => `${fmt(m.rps)} (${fmt(rs[i], 2)})`)];
    })),
    '',
    'Redis commands per request by command (last round; script-internal calls are counted by Redis as well):',
    '',
    ...list.map((sc) => {
      const last = (results.get(sc.key) ?? []).at(-1);
      const cmds = last?.topCommands.map(([k, v]) => `${k} ${fmt(v, 3)}`).join(', ') || 'none';
      const hits = last?.l1HitRatio !== undefined &&
        Number.isFinite(last.l1HitRatio) ? ` — L1 hit ratio ${fmt(100 * last.l1HitRatio, 2)} %` : '';
      return `- ${sc.label}: ${cmds}${hits}`;
    }),
    '',
  ];
  return out.join('\n');
}

// ---- charts --------------------------------------------------------------------------------

/** GET /hello per framework, from the medians over rounds (only a framework whose bare server ran). */
function httpChart(scenarios: Scenario[], results: Map<string, Measurement[]>): ChartInput['http'] {
  const out: NonNullable<ChartInput['http']> = [];
  for (const [framework, bare] of [['Fastify', 'bare'], ['Express', 'express-bare']] as const) {
    const base = results.get(bare);
    if (base === undefined || base.length === 0) continue;
    const servers = scenarios.filter((sc) => sc.kind === 'get' && sc.baseline === bare).map((sc) => {
      const ms = results.get(sc.key) ?? [];
      return {
        label: sc.label,
        rps: median(ms.map((m) => m.rps)),
        ratio: median(ms.map((m, i) => m.rps / (base[i]?.rps ?? NaN))),
        strong: sc.key === 'tiered' || sc.key === 'express-tiered',
      };
    });
    out.push({ framework, servers });
  }
  return out;
}

/**
 * Write the charts of this run beside benchmarks/README.md: after a full run (no --only or
 * --skip), or any run with BENCH_CHARTS=1; never with BENCH_CHARTS=0.
 */
function writeCharts(input: ChartInput): void {
  const setting = process.env.BENCH_CHARTS;
  if (setting === '0' || (setting !== '1' && (ONLY !== undefined || SKIP.length > 0))) return;
  const dir = new URL('./charts/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  for (const [file, svg] of chartFiles(input)) {
    writeFileSync(new URL(file, dir), svg);
    console.log(`chart: benchmarks/charts/${file}`);
  }
}

// ---- main ----------------------------------------------------------------------------------

async function main(): Promise<void> {
  const sections: string[] = [];
  const charts: ChartInput = {};
  const header = [
    '## tiered-session benchmarks',
    '',
    `- machine: ${machineLine()}`,
    `- settings: ${LOADGEN === 'wrk' ? 'wrk (1 thread)' : 'autocannon'}, ${CONNECTIONS} connections, ${WARMUP} s warm-up + ${DURATION} s ` +
      `measure per server, ${ROUNDS} round(s), one server process alive at a time`,
  ];

  const scenarios = SCENARIOS.filter(scenarioWanted);
  if (scenarios.length > 0) {
    const redis = await redisTarget();
    header.push(`- Redis: ${redis.owned ? 'private redis-server' : `REDIS_URL (shared: command counts include other clients' traffic)`} ` +
      `${await redisVersion(redis.admin)}`);
    console.log(header.join('\n') + '\n');
    const results = new Map<string, Measurement[]>(scenarios.map((s) => [s.key, []]));
    // A discarded pilot (start, sign in, warm-up, stop) so that the first server measured does
    // not also pay for warming the load generator, Redis and the module cache.
    process.stdout.write(`pilot (not measured): ${scenarios[0].label}\n`);
    await measure(scenarios[0], redis, true);
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? scenarios : [...scenarios].reverse();
      for (const sc of order) {
        process.stdout.write(`round ${round + 1}/${ROUNDS}  ${sc.label.padEnd(62)} `);
        const m = await measure(sc, redis);
        results.get(sc.key)!.push(m);
        console.log(m.error && !Number.isFinite(m.rps)
          ? `FAILED: ${m.error}`
          : `${fmt(m.rps).padStart(8)} req/s  p50 ${fmt(m.p50, 3)} ms  p99 ${fmt(m.p99, 3)} ms  ${fmt(m.cmdsPerReq,
            2)} cmds/req  ${fmt(m.serverCpuUsPerReq, 1)} µs CPU/req${m.error ? `  (${m.error})` : ''}`);
        await sleep(300);
      }
    }
    await redis.stop();
    await postgres?.stop();
    sections.push(httpReport(scenarios, results, 'get'), httpReport(scenarios, results, 'login'));
    charts.http = httpChart(scenarios, results);
  } else {
    console.log(header.join('\n') + '\n');
  }

  const scripts: [string, string, string[]][] = [
    ['micro', 'benchmarks/resolve-micro.ts', []],
    ['propagation', 'benchmarks/propagation.ts', []],
    ['revocation-http', 'benchmarks/revocation-http.ts', []],
    ['memory', 'benchmarks/memory.ts', ['--expose-gc']],
    ['replicas', 'benchmarks/replicas.ts', []],
  ];
  for (const [part, script, nodeArgs] of scripts) {
    if (!partWanted(part)) continue;
    console.log(`\n--- ${script} ---`);
    const { code, result } = await runScript(script, childEnv(), nodeArgs);
    if (code !== 0 || result === undefined) sections.push(`### ${script}\n\nFAILED (exit code ${code})\n`);
    else sections.push(String(result.markdown));
    if (result?.chart !== undefined) Object.assign(charts, result.chart);
  }
  writeCharts(charts);

  console.log('\n\n' + [header.join('\n'), '', ...sections.filter(Boolean)].join('\n'));
}

await main();
