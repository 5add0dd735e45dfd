// The event feed's delivery rate: how many events per second one instance hands to its handlers.
//
// One Fastify app with `events: { consume: false }` signs in N sessions (N `created` events wait
// in the 256 bucket streams), then a second instance on the same prefix registers a handler (a
// no-op, or one that awaits a 1 ms timer with --handler-ms, i.e. a slow downstream) and the time
// until all N are delivered and acknowledged is measured. Delivery runs 256 streams side by side,
// one event at a time per stream.
//
// Settings: --sessions / BENCH_SESSIONS (default 20000), BENCH_HANDLER_MS (default 0), REDIS_URL.
// Run: npm run build && npx tsx benchmarks/events.ts
import Fastify, { type FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import tieredSession, { parseDevice } from 'tiered-session/fastify';
import { managerOf } from '../dist/esm/core/sessions-api.js';
import { fastFail, redisTarget, sleep } from './support/redis.js';
import { num } from './support/settings.js';
import { fmt, machineLine, table } from './support/stats.js';
import { SECRET } from './servers/common.js';

const N = num('sessions', 20_000, 1000);
const HANDLER_MS = Number(process.env.BENCH_HANDLER_MS ?? 0);
const UA = 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0';

async function instance(url: string, prefix: string, consume: boolean): Promise<{ app: FastifyInstance; client: Redis }> {
  const client = new Redis(url, fastFail);
  client.on('error', () => {});
  await new Promise<void>((r) => (client.status === 'ready' ? r() : client.once('ready', () => r())));
  const app = Fastify({ logger: false });
  await app.register(tieredSession, { client, secret: SECRET, keyPrefix: prefix, events: { consume, pollInterval: 50 } });
  await app.ready();
  return { app, client };
}

const redis = await redisTarget();
const writer = await instance(redis.url, redis.prefix, false);
const m = managerOf(writer.app.sessions);
const t0 = performance.now();
for (let i = 0; i < N; i += 200) {
  await Promise.all(Array.from({ length: Math.min(200, N - i) }, (_, k) =>
    m.create(`user-${i + k}`, { device: parseDevice(UA, 512), ip: '198.51.100.7', country: 'DE' })));
}
const signInS = (performance.now() - t0) / 1000;

const reader = await instance(redis.url, redis.prefix, true);
let delivered = 0;
const start = performance.now();
reader.app.sessions.events.on('*', HANDLER_MS > 0 ? () => new Promise((r) => setTimeout(r, HANDLER_MS)).then(() => { delivered++; })
  : () => { delivered++; });
const cpu0 = process.cpuUsage();
while (reader.app.sessions.events.stats().delivered < N) await sleep(5);
const seconds = (performance.now() - start) / 1000;
const cpu = process.cpuUsage(cpu0);
const cpuS = (cpu.user + cpu.system) / 1e6;

console.log(`## Event feed delivery (${new Date().toISOString().slice(0, 10)}, ${machineLine()})\n`);
console.log(table(['measure', 'value'], [
  ['events waiting (created, one per sign-in)', fmt(N)],
  ['handler', HANDLER_MS > 0 ? `awaits a ${HANDLER_MS} ms timer` : 'no-op'],
  ['delivered and acknowledged, one instance', `${fmt(N / seconds)} events/s (${fmt(seconds, 2)} s)`],
  ['CPU of the delivering process per event', `${fmt((cpuS / N) * 1e6, 1)} µs`],
  ['sign-ins that wrote them (core, 200 at a time)', `${fmt(N / signInS)} /s`],
]));
if (delivered !== N) throw new Error(`handler saw ${delivered} of ${N}`);
await reader.app.close();
await writer.app.close();
reader.client.disconnect();
writer.client.disconnect();
await redis.reset();
await redis.stop();
