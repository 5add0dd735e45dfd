// Memory per session, in Redis and in the L1.
//
// Redis: on a private redis-server (REDIS_URL is ignored: nobody else may write to it), create N
// sessions through the Fastify plugin's internal manager (`managerOf(app.sessions)`, then
// `create(userId, { device, ip, country })`,
// device parsed from real User-Agent strings, UUID user ids, IPv4/IPv6 addresses), and divide
// the growth of INFO used_memory by N. Done for 1 and for 3 sessions per user (the per-user index
// is shared by a user's sessions), at each N of --sessions / BENCH_SESSIONS (default 100k,1M).
// MEMORY USAGE of sampled keys and their encodings are printed next to it.
//
// L1: growth per entry of the JS heap and of the off-heap typed arrays (the packed table's
// fields), after a full GC, once the L1 holds --l1-entries / BENCH_L1_ENTRIES (default
// 100k,1M) distinct sessions of distinct users: resolved from a Cookie header (a miss here, then
// cached: how every other instance fills) at each count; at the first count also with a busy
// Cookie header and created by sign-in on this instance. RSS growth beside them.
//
// Run: npx tsx --expose-gc benchmarks/memory.ts   (without the flag, GC is exposed through v8 flags)
import { randomUUID } from 'node:crypto';
import v8 from 'node:v8';
import vm from 'node:vm';
import Fastify, { type FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import tieredSession, { parseDevice, type DeviceInfo } from 'tiered-session/fastify';
import type { SessionManager } from '../dist/esm/core/manager.js';
import { managerOf } from '../dist/esm/core/sessions-api.js';
import { readCookie, TOKEN_LENGTH } from '../dist/esm/core/token.js';
import { Histogram, Metrics, OPERATION_BUCKETS, RESOLVE_BUCKETS } from '../dist/esm/core/metrics.js';
import { fastFail, redisTarget, redisVersion, sleep, usedMemory, type RedisTarget } from './support/redis.js';
import { counts } from './support/settings.js';
import { fmt, machineLine, table } from './support/stats.js';
import { SECRET } from './servers/common.js';

const gc: () => void = (globalThis as { gc?: () => void }).gc ?? (() => {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
})();

async function fullGc(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
}

const heap = () => process.memoryUsage();

const UAS = [
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0',
  'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36',
  'Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile ' +
    'Safari/537.36',
];
const DEVICES: DeviceInfo[] = UAS.map((ua) => parseDevice(ua, 512));
const COUNTRIES = ['DE', 'US', 'GB', 'FR', 'IN', 'BR', 'JP', 'NL', 'ES', 'PL'];
const r8 = () => Math.floor(Math.random() * 256);
const hex4 = () => Math.floor(Math.random() * 0x10000).toString(16);
const ip = () => (Math.random() < 0.8 ? `${r8()}.${r8()}.${r8()}.${r8()}` : `2001:db8:${hex4()}:${hex4()}::${hex4()}`);
const meta = (i: number) => ({ device: DEVICES[i % DEVICES.length], ip: ip(), country: COUNTRIES[i % COUNTRIES.length] });

interface PluginApp { app: FastifyInstance; client: Redis; sessions: SessionManager }

async function pluginApp(redis: RedisTarget, localCache: { max: number; ttl: number } | false): Promise<PluginApp> {
  const client = new Redis(redis.url, { ...fastFail, commandTimeout: 10_000 });
  client.on('error', () => {});
  await new Promise<void>((r) => (client.status === 'ready' ? r() : client.once('ready', () => r())));
  const app = Fastify({ logger: false });
  await app.register(tieredSession, { client, secret: SECRET, keyPrefix: redis.prefix, localCache, commandTimeout: 10_000 });
  await app.ready();
  const sessions = managerOf(app.sessions);
  if (localCache !== false) {
    const until = Date.now() + 10_000;
    while (!sessions.cacheTrusted && Date.now() < until) await sleep(5);
    if (!sessions.cacheTrusted) throw new Error('revocation channel not confirmed: the L1 would not be filled');
  }
  return { app, client, sessions };
}

async function closeApp(a: PluginApp): Promise<void> {
  await a.app.close();
  a.client.disconnect();
}

/** Create n sessions, `perUser` per user, `concurrency` in flight; calls `keep` with each result. */
async function createMany(sessions: SessionManager, n: number, perUser: number, keep?: (token: string, id: string) => void): Promise<void> {
  const users = Array.from({ length: Math.ceil(n / perUser) }, () => randomUUID());
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const r = await sessions.create(users[Math.floor(i / perUser)], meta(i));
      keep?.(r.token, r.session.id);
    }
  };
  await Promise.all(Array.from({ length: 256 }, worker));
}

// ---- Redis ---------------------------------------------------------------------------------

async function redisMemory(redis: RedisTarget, n: number, perUser: number): Promise<string[]> {
  await redis.reset();
  await sleep(200);
  const before = await usedMemory(redis.admin);
  const a = await pluginApp(redis, false);
  const sample: string[] = [];
  const every = Math.max(1, Math.floor(n / 1000));
  let k = 0;
  const t0 = Date.now();
  await createMany(a.sessions, n, perUser, (_t, id) => { if (k++ % every === 0) sample.push(id); });
  const secs = (Date.now() - t0) / 1000;
  const stats = a.sessions.stats();
  await closeApp(a);
  await sleep(200);
  const after = await usedMemory(redis.admin);
  const keys = await redis.admin.dbsize();

  const store = a.sessions.store;
  let sessionBytes = 0;
  const tags = new Set<string>();
  for (const id of sample) {
    sessionBytes += Number(await redis.admin.memory('USAGE', store.sessionKey(id), 'SAMPLES', 0));
    tags.add(id.slice(0, 22));
  }
  let indexBytes = 0;
  for (const tag of tags) indexBytes += Number(await redis.admin.memory('USAGE', store.indexKey(tag), 'SAMPLES', 0));
  const encS = await redis.admin.object('ENCODING', store.sessionKey(sample[0]));
  const encI = await redis.admin.object('ENCODING', store.indexKey(sample[0].slice(0, 22)));
  const perSession = (after - before) / n;
  console.log(`  ${fmt(n)} sessions, ${perUser}/user: ${fmt(perSession, 1)} B/session (${fmt(n / secs)} creates/s)`);
  await redis.reset();
  return [
    fmt(n), String(perUser), fmt(keys), `${fmt((after - before) / 2 ** 20, 1)} MiB`, fmt(perSession, 1),
    `${fmt(sessionBytes / sample.length, 1)} (${encS})`, `${fmt(indexBytes / tags.size, 1)} (${encI})`,
    fmt(stats.sessionSize.sum / Math.max(1, stats.sessionSize.count), 1),
    perSession <= 400 ? 'yes' : 'no',
  ];
}

/**
 * The layout's own floor: the same keys (names of the same length, a TTL on each), but each
 * session hash holds one 1-byte field and each index one member. What remains per session is
 * what two keys with expiries cost Redis before any content (dict entries, expiry entries, key
 * strings, object headers). Written by one Lua loop, so the plugin plays no part.
 */
async function layoutFloor(redis: RedisTarget, n: number, perUser: number): Promise<number> {
  await redis.reset();
  await sleep(200);
  const before = await usedMemory(redis.admin);
  const lua = `
    local prefix, from, to, per = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
    for i = from, to do
      local base = prefix .. '{' .. string.format('%022d', math.floor(i / per)) .. '}'
      local rnd = string.format('%016d', i)
      redis.call('HSET', base .. rnd, 'u', '1')
      redis.call('PEXPIRE', base .. rnd, 1209600000)
      redis.call('ZADD', base .. 'u', 1, rnd)
      redis.call('PEXPIRE', base .. 'u', 1209600000)
    end`;
  for (let i = 0; i < n; i += 50_000) await redis.admin.eval(lua, 0, redis.prefix, i, Math.min(n, i + 50_000) - 1, perUser);
  await sleep(200);
  const perSession = (await usedMemory(redis.admin) - before) / n;
  await redis.reset();
  return perSession;
}

// ---- L1 ------------------------------------------------------------------------------------

/**
 * The strings an entry cannot do without, in the plainest container: a Map from a 38-char id to
 * a 43-char secret, plus a 36-char user id per entry, all flat copies. Per entry.
 */
async function l1Floor(n: number): Promise<number> {
  await fullGc();
  const h0 = heap();
  const map = new Map<string, string>();
  const users: string[] = [];
  for (let i = 0; i < n; i++) {
    map.set(flat(`${i}`.padStart(38, 'i')), flat(`${i}`.padStart(43, 's')));
    users.push(flat(randomUUID()));
  }
  await fullGc();
  const bytes = heap().heapUsed - h0.heapUsed;
  if (map.size !== users.length) throw new Error('unreachable');
  return bytes / n;
}

/** Heap bytes of one object `make()` builds, each given 100 observations: 10,000 of them measured after a full GC. */
async function heapEach(make: () => { observe(v: number): void }): Promise<number> {
  const n = 10_000;
  await fullGc();
  const h0 = heap();
  const keep: unknown[] = [];
  for (let i = 0; i < n; i++) {
    const h = make();
    for (let k = 0; k < 100; k++) h.observe((k % 20) * 1e-4);
    keep.push(h);
  }
  await fullGc();
  const bytes = heap().heapUsed - h0.heapUsed;
  if (keep.length !== n) throw new Error('unreachable');
  return bytes / n;
}

/** The metrics' memory: one histogram of each kind, and the whole Metrics object of a registration. */
async function metricsMemory(): Promise<string[][]> {
  return [
    [`a Redis operation histogram (${OPERATION_BUCKETS.length} buckets; 8 per registration)`,
      fmt(await heapEach(() => new Histogram(OPERATION_BUCKETS)), 0)],
    [`the sampled resolve histogram (${RESOLVE_BUCKETS.length} buckets)`, fmt(await heapEach(() => new Histogram(RESOLVE_BUCKETS)), 0)],
    ['all the counters, gauges and histograms of one registration (`Metrics`)', fmt(await heapEach(() => {
      const m = new Metrics();
      return { observe: (v: number) => m.redisOperations.read.observe(v) };
    }), 0)],
  ];
}

const flat = (s: string) => Buffer.from(s, 'latin1').toString('latin1');
const BUSY = '_ga=GA1.1.1387295719.1731651234; _ga_ABCDEF1234=GS1.1.1731651234.3.1.1731652345.0.0.0; theme=dark; ' +
  'consent=%7B%22analytics%22%3Atrue%2C%22ads%22%3Afalse%7D; lang=en-GB; _fbp=fb.1.1731651234567.123456789';

interface L1Growth { heap: number; offHeap: number; rss: number; filled: number }

/** Growth per filled entry of the heap, the off-heap buffers and the RSS across `fill`, between full GCs. */
async function growth(a: PluginApp, fill: () => Promise<void>): Promise<L1Growth> {
  await fullGc();
  const h0 = heap();
  await fill();
  await fullGc();
  const h1 = heap();
  const filled = a.sessions.stats().l1Size;
  return { heap: (h1.heapUsed - h0.heapUsed) / filled, offHeap: (h1.arrayBuffers - h0.arrayBuffers) / filled,
    rss: (h1.rss - h0.rss) / filled, filled };
}

/** Per entry of a full L1 filled by resolving `tokens` from Cookie headers. */
async function l1ByResolve(redis: RedisTarget, tokens: string[], busy: boolean): Promise<L1Growth & { header: number }> {
  const a = await pluginApp(redis, { max: tokens.length + 10, ttl: 3_600_000 });
  let headerLength = 0;
  const g = await growth(a, async () => {
    for (let i = 0; i < tokens.length; i += 500) {
      await Promise.all(tokens.slice(i, i + 500).map((t) => {
        // A Cookie header as the HTTP parser hands it over: one flat string per request.
        const header = flat(busy ? `${BUSY}; __Host-sid=${t}` : `__Host-sid=${t}`);
        headerLength = header.length;
        const token = readCookie(header, '__Host-sid');
        return typeof token === 'string' && token.length === TOKEN_LENGTH ? a.sessions.resolve(token) : null;
      }));
    }
  });
  await closeApp(a);
  return { ...g, header: headerLength };
}

/** Per entry of a full L1 filled by sign-ins on this instance. */
async function l1ByCreate(redis: RedisTarget, n: number): Promise<L1Growth> {
  const a = await pluginApp(redis, { max: n + 10, ttl: 3_600_000 });
  const g = await growth(a, () => createMany(a.sessions, n, 1));
  await closeApp(a);
  return g;
}

// ---- main ----------------------------------------------------------------------------------

async function main(): Promise<void> {
  const sizes = counts('sessions', [100_000, 1_000_000]);
  const l1Sizes = counts('l1-entries', [100_000, 1_000_000]);
  const redis = await redisTarget({ forcePrivate: true });
  const version = await redisVersion(redis.admin);
  const redisRows: string[][] = [];
  console.log('Redis memory per session:');
  for (const n of sizes) {
    for (const perUser of [1, 3]) {
      const row = await redisMemory(redis, n, perUser);
      const floor = await layoutFloor(redis, n, perUser);
      console.log(`    the layout's floor (same keys and TTLs, no content): ${fmt(floor, 1)} B/session`);
      row.splice(5, 0, fmt(floor, 1));
      redisRows.push(row);
    }
  }

  const l1Row = (label: string, r: L1Growth) => [
    label, fmt(r.filled), fmt(r.heap, 1), fmt(r.offHeap, 1), fmt(r.heap + r.offHeap, 1), fmt(r.rss, 1),
  ];
  const l1Rows: string[][] = [];
  for (const [k, n] of l1Sizes.entries()) {
    console.log(`L1 per entry (${fmt(n)} entries):`);
    await redis.reset();
    const tokens: string[] = [];
    {
      const w = await pluginApp(redis, false);
      await createMany(w.sessions, n, 1, (t) => tokens.push(flat(t)));
      await closeApp(w);
    }
    const plain = await l1ByResolve(redis, tokens, false);
    l1Rows.push(l1Row(`${fmt(n)}, resolved from a Cookie header of ${plain.header} bytes (session cookie only)`, plain));
    if (k === 0) {
      const busy = await l1ByResolve(redis, tokens, true);
      l1Rows.push(l1Row(`${fmt(n)}, resolved from a Cookie header of ${busy.header} bytes (7 cookies)`, busy));
      tokens.length = 0;
      l1Rows.push(l1Row(`${fmt(n)}, created by sign-in on this instance`, await l1ByCreate(redis, n)));
      const floor = await l1Floor(n);
      l1Rows.push([`${fmt(n)}, for scale: a plain Map of id → secret, plus the user id (the strings alone)`, fmt(n), fmt(floor, 1),
        '–', fmt(floor, 1), '–']);
    }
    for (const r of l1Rows.slice(k === 0 ? 0 : -1)) console.log(`  ${r[0]}: ${r[2]} B heap + ${r[3]} B off-heap, RSS ${r[5]} B`);
  }
  await redis.stop();
  const metricRows = await metricsMemory();
  for (const r of metricRows) console.log(`  ${r[0]}: ${r[1]} B`);

  const markdown = [
    `### Memory per session (memory.ts): private Redis ${version}`,
    '',
    machineLine(),
    '',
    'Redis: used_memory growth / sessions created through the manager\'s `create()` (target ≤ 400 B per session). ' +
      'MEMORY USAGE columns: average over ~1,000 sampled keys (encoding in brackets); the index is per user. ' +
      '"layout floor" = the same keys with their TTLs but no content (one 1-byte field, one index member), written by a Lua loop.',
    '',
    table(['sessions', 'per user', 'keys', 'used_memory Δ', 'B/session', 'layout floor B/session', 'session hash B', 'user index B',
      'record size B (plugin metric)', '≤ 400 B'], redisRows),
    '',
    'L1: growth per cached entry after a full GC, one user per session: the JS heap (heapUsed), the packed table\'s typed ' +
      'arrays (arrayBuffers: ids, secrets, times, users, flags, index; they double as the cache fills, up to `max`), and the RSS.',
    '',
    table(['L1 entries, filled by', 'entries', 'heap B/entry', 'off-heap B/entry', 'total B/entry', 'RSS B/entry'], l1Rows),
    '',
    'Metrics: heapUsed growth per object after a full GC (10,000 of each, 100 observations each; the bucket bounds are shared):',
    '',
    table(['metrics object', 'heap B'], metricRows),
    '',
  ].join('\n');
  console.log('\n' + markdown);
  // The chart of benchmarks/README.md (benchmarks/charts.ts): B/session per Redis row, then L1.
  const chart = {
    memory: {
      rows: [
        ...redisRows.map((r) => ({ label: `Redis, ${r[0]} sessions, ${r[1]} per user`, bytes: Number(r[4].replace(/,/g, '')),
          strong: r[1] === '1' })),
        ...['L1 entry, resolved (session cookie only)', 'L1 entry, resolved (7 cookies)', 'L1 entry, created by sign-in']
          .map((label, i) => ({ label: `${label}, ${l1Rows[0][1]} entries`, bytes: Number(l1Rows[i][4].replace(/,/g, '')) })),
      ],
      target: { bytes: 400, label: '400 B target (Redis)' },
    },
  };
  if (process.send) process.send({ type: 'result', markdown, chart });
}

await main();
