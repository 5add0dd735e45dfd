// Revocation propagation between two processes on loopback, through one Redis.
//
// Process A (this script) and process B (this script again, forked with BENCH_ROLE=peer) each
// run the Fastify plugin on the same Redis and key prefix, and drive its internal SessionManager
// (`managerOf(app.sessions)`). A creates the sessions; B resolves every one of them so they sit
// in its L1, and waits until its revocation channel is confirmed. Then A revokes one session at
// a time; B wraps its local cache's `invalidate` (every drop from L1 goes through it: the
// channel's messages and the manager's own calls) and reports, over IPC, the moment the id left
// its L1 (performance.timeOrigin + performance.now()). Latency = B's drop time
// − the time A's `revoke()` call returned. It can be slightly negative: Redis may write the
// published message to B's socket before its reply to A. Both processes read the same system
// clock; the offset between their timeOrigins is estimated by IPC ping-pong and printed.
// B's own publish→drop histogram (`stats().revocationLatency`, ms clock, bucket upper bounds) is
// printed too.
//
// Settings: --revocations / BENCH_REVOCATIONS (default 2000, at least 1000 for the report),
// REDIS_URL. Run: npx tsx benchmarks/propagation.ts
import { performance } from 'node:perf_hooks';
import Fastify, { type FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import tieredSession, { parseDevice } from 'tiered-session/fastify';
import type { SessionManager } from '../dist/esm/core/manager.js';
import { managerOf } from '../dist/esm/core/sessions-api.js';
import { forkTs, nextMessage, stopChild, type Message } from './support/child.js';
import { fastFail, redisTarget, sleep } from './support/redis.js';
import { childEnv, num } from './support/settings.js';
import { fmt, machineLine, quantileSorted, table } from './support/stats.js';
import { SECRET } from './servers/common.js';

const now = () => performance.timeOrigin + performance.now();
const UAS = [
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0',
];

async function pluginApp(url: string, prefix: string,
  cacheMax: number): Promise<{ app: FastifyInstance; client: Redis; sessions: SessionManager }> {
  const client = new Redis(url, fastFail);
  client.on('error', () => {});
  await new Promise<void>((r) => (client.status === 'ready' ? r() : client.once('ready', () => r())));
  const app = Fastify({ logger: false });
  // A long L1 ttl so every entry is still cached when its revocation arrives, however long the run.
  await app.register(tieredSession, { client, secret: SECRET, keyPrefix: prefix, localCache: { max: cacheMax, ttl: 3_600_000 } });
  await app.ready();
  const sessions = managerOf(app.sessions);
  const until = Date.now() + 10_000;
  while (!sessions.cacheTrusted && Date.now() < until) await sleep(5);
  if (!sessions.cacheTrusted) throw new Error('revocation channel not confirmed within 10 s');
  return { app, client, sessions };
}

// ---- process B -----------------------------------------------------------------------------

async function peer(): Promise<void> {
  const send = (m: Message) => process.send!(m);
  const tokens: string[] = await new Promise((resolve) => {
    process.once('message', (m: { type: string; tokens: string[] }) => resolve(m.tokens));
  });
  const { app, client, sessions } = await pluginApp(process.env.BENCH_REDIS_URL!, process.env.BENCH_PREFIX!, tokens.length + 1000);

  // Fill L1: each token is a miss (one Redis read), then a hit.
  for (let i = 0; i < tokens.length; i += 200) {
    await Promise.all(tokens.slice(i, i + 200).map((t) => sessions.resolve(t)));
  }
  let cached = 0;
  for (const t of tokens) {
    const r = sessions.resolve(t);
    if (r !== null && !(r instanceof Promise)) cached++;
  }

  const l1 = sessions.localCache;
  const original = l1.invalidate.bind(l1);
  l1.invalidate = (ids: Iterable<string>) => {
    const list = [...ids];
    const before = l1.size;
    original(list);
    const t = now();
    const dropped = before - l1.size;
    send({ type: 'drop', ids: list, t, dropped });
  };

  process.on('message', async (m: { type: string; t0?: number }) => {
    if (m.type === 'ping') send({ type: 'pong', t0: m.t0, tB: now() });
    else if (m.type === 'check') {
      // Every revoked token must now miss L1 and resolve to nothing.
      let served = 0;
      let alive = 0;
      for (const t of tokens) {
        const r = sessions.resolve(t);
        if (r !== null && !(r instanceof Promise)) served++;
        else if (r instanceof Promise && (await r.catch(() => null)) !== null) alive++;
      }
      send({ type: 'check', served, alive, stats: sessions.stats() });
    } else if (m.type === 'stop') {
      await app.close();
      client.disconnect();
      process.exit(0);
    }
  });
  send({ type: 'ready', cached, l1Size: sessions.stats().l1Size });
}

// ---- process A -----------------------------------------------------------------------------

interface Drop extends Message { ids: string[]; t: number; dropped: number }

async function main(): Promise<void> {
  const N = Math.max(1, Math.round(num('revocations', 2000, 1)));
  const redis = await redisTarget();
  const { app, client, sessions } = await pluginApp(redis.url, redis.prefix, N + 1000);

  const created: { id: string; token: string }[] = [];
  for (let i = 0; i < N; i += 200) {
    const batch = await Promise.all(Array.from({ length: Math.min(200, N - i) }, (_, k) =>
      sessions.create(`user-${(i + k) % Math.ceil(N / 3)}`, {
      device: parseDevice(UAS[(i + k) % UAS.length], 512), ip: `198.51.100.${(i + k) % 250}`, country: 'DE',
    })));
    for (const b of batch) created.push({ id: b.session.id, token: b.token });
  }

  const child = forkTs('benchmarks/propagation.ts',
    childEnv({ BENCH_ROLE: 'peer', BENCH_REDIS_URL: redis.url, BENCH_PREFIX: redis.prefix }));
  try {
    child.send({ type: 'tokens', tokens: created.map((c) => c.token) });
    const ready = await nextMessage<Message & { cached: number; l1Size: number }>(child, 'ready', 120_000);
    if (ready.cached !== N) throw new Error(`process B has only ${ready.cached} of ${N} sessions in L1`);

    // Clock offset between the two processes' timeOrigins (NTP-style, best of 200 round trips).
    let best = { rtt: Infinity, offset: 0 };
    for (let i = 0; i < 200; i++) {
      const t0 = now();
      const pong = nextMessage<Message & { tB: number }>(child, 'pong');
      child.send({ type: 'ping', t0 });
      const { tB } = await pong;
      const t1 = now();
      if (t1 - t0 < best.rtt) best = { rtt: t1 - t0, offset: tB - (t0 + t1) / 2 };
    }

    // Drops arrive as messages; index them by id.
    const waiting = new Map<string, (d: Drop) => void>();
    const early = new Map<string, Drop>();
    child.on('message', (m: Drop) => {
      if (m?.type !== 'drop') return;
      for (const id of m.ids) {
        const w = waiting.get(id);
        if (w) { waiting.delete(id); w(m); } else early.set(id, m);
      }
    });

    const latencies: number[] = [];
    let missed = 0;
    let notCached = 0;
    for (const { id } of created) {
      const got = new Promise<Drop | null>((resolve) => {
        const timer = setTimeout(() => { waiting.delete(id); resolve(null); }, 1000);
        waiting.set(id, (d) => { clearTimeout(timer); resolve(d); });
      });
      await sessions.revoke(id);
      const returned = now();
      const e = early.get(id);
      if (e) { early.delete(id); waiting.delete(id); }
      const drop = e ?? await got;
      if (drop === null) { missed++; continue; }
      if (drop.dropped < 1) notCached++;
      latencies.push(drop.t - returned);
      // Desynchronise from timers and heartbeats: 0-1 ms before the next revocation.
      await sleep(Math.random() < 0.5 ? 0 : 1);
    }

    const check = await (async () => {
      const p = nextMessage<Message & { served: number; alive: number;
        stats: { revocationLatency: { count: number; p50: number; p99: number; sum: number }; revocationsReceived: number } }>(child,
          'check', 120_000);
      child.send({ type: 'check' });
      return p;
    })();

    const sorted = [...latencies].sort((a, b) => a - b);
    const q = (p: number) => quantileSorted(sorted, p);
    const mean = latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length);
    const rl = check.stats.revocationLatency;
    const ms = (v: number) => fmt(v, 3);
    const markdown = [
      `### Revocation propagation (propagation.ts): ${fmt(N)} revocations, one at a time, two processes, ` +
        `${redis.owned ? 'private' : 'shared'} Redis on loopback`,
      '',
      machineLine(),
      '',
      'From the return of `revoke()` in process A to the L1 drop in process B (ms, as measured):',
      '',
      table(['samples', 'min', 'p50', 'p90', 'p99', 'max', 'mean', 'target p99'], [[
        fmt(latencies.length), ms(q(0)), ms(q(0.5)), ms(q(0.9)), ms(q(0.99)), ms(sorted.at(-1) ?? NaN), ms(mean),
          '≤ 5 ms (docs/design.md: p50 < 0.5, p99 < 3)',
      ]]),
      '',
      `- no drop reported within 1 s: ${missed}; drops of an id that was not in B's L1: ${notCached}`,
      `- after the run, revoked tokens still served from B's L1: ${check.served}; still valid in Redis: ${check.alive}`,
      `- clock offset between the processes' timeOrigins (best of 200 IPC round trips): ${fmt(best.offset * 1000,
        1)} µs (IPC round trip ${fmt(best.rtt * 1000, 1)} µs); latencies above are not corrected for it`,
      `- B's own publish→drop histogram (\`stats().revocationLatency\`: Date.now() resolution, bucket upper bounds, includes A's script ` +
        `round trip): ` +
        `count ${fmt(rl.count)}, p50 ≤ ${fmt(rl.p50 * 1000, 2)} ms, p99 ≤ ${fmt(rl.p99 * 1000,
          2)} ms, mean ${fmt((rl.sum / Math.max(1, rl.count)) * 1000, 3)} ms`,
      '',
    ].join('\n');
    console.log(markdown);
    // The chart of benchmarks/README.md (benchmarks/charts.ts).
    const chart = {
      revocation: {
        samples: latencies.length,
        quantiles: [['p50', 0.5], ['p90', 0.9], ['p99', 0.99], ['p99.9', 0.999]].map(([label, p]) =>
          ({ label: label as string, ms: q(p as number) }))
          .concat([{ label: 'max', ms: sorted.at(-1) ?? NaN }]),
      },
    };
    if (process.send) process.send({ type: 'result', markdown, chart });
  } finally {
    await stopChild(child);
    await app.close();
    client.disconnect();
    await redis.stop();
  }
}

if (process.env.BENCH_ROLE === 'peer') await peer();
else await main();
