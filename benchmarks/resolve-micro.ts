// ns/op of the hot path, in process, no HTTP: `app.sessions.resolve(token)` on an L1 hit, and the
// whole onRequest path the plugin runs for a request carrying the cookie (readCookie + token
// check + resolve, mirrored from lib/plugin.ts onRequestSession: keep the two in step), also with
// a full isTokenShape() scan before resolve, to price that check. For scale: the loop itself, the
// two ways of hashing the secret that DESIGN.md section 1 weighs (the hot path must not need
// either), and the User-Agent parse that only sign-in pays.
//
// Settings: --iterations / BENCH_ITERATIONS (per case, default 5,000,000), REDIS_URL.
// Run: npx tsx benchmarks/resolve-micro.ts
import { createHash } from 'node:crypto';
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import tieredSession, { parseDevice } from '../dist/esm/index.js';
import { hashSecret, isTokenShape, readCookie, ID_LENGTH, TOKEN_LENGTH } from '../dist/esm/token.js';
import { fastFail, redisTarget } from './support/redis.js';
import { num } from './support/settings.js';
import { fmt, machineLine, median, table } from './support/stats.js';

const ITERATIONS = Math.round(num('iterations', 5_000_000, 1000));
const BATCHES = 10;
const UA = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

const redis = await redisTarget();
const client = new Redis(redis.url, fastFail);
client.on('error', () => {});
await new Promise<void>((r) => (client.status === 'ready' ? r() : client.once('ready', () => r())));

const app = Fastify({ logger: false });
await app.register(tieredSession, { client, keyPrefix: redis.prefix });
await app.ready();
const until = Date.now() + 10_000;
while (!app.sessions.cacheTrusted && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
if (!app.sessions.cacheTrusted) throw new Error('revocation channel not confirmed: the L1 would not be filled');

const { token } = await app.sessions.create('user-000001', { device: parseDevice(UA, 512), ip: '203.0.113.7', country: 'DE' });
const cookieName = '__Host-sid';
const first = app.sessions.resolve(token);
if (first === null || first instanceof Promise) throw new Error('the session is not an L1 hit right after create()');

// Header strings as the HTTP parser hands them over: flat, one allocation.
const flat = (s: string) => Buffer.from(s, 'latin1').toString('latin1');
const onlyCookie = flat(`${cookieName}=${token}`);
const busyCookie = flat(`_ga=GA1.1.1387295719.1731651234; _ga_ABCDEF1234=GS1.1.1731651234.3.1.1731652345.0.0.0; theme=dark; ` +
  `consent=%7B%22analytics%22%3Atrue%2C%22ads%22%3Afalse%7D; ${cookieName}=${token}; lang=en-GB; _fbp=fb.1.1731651234567.123456789`);
const secret = token.slice(ID_LENGTH + 1);

const sessions = app.sessions;
let sink = 0;

function onRequestPath(header: string): void {
  // What lib/plugin.ts onRequestSession does before it touches `request`: the length only,
  // resolve() checks the full shape before any Redis read.
  const t = readCookie(header, cookieName);
  if (typeof t !== 'string' || t.length !== TOKEN_LENGTH) return;
  const r = sessions.resolve(t);
  if (r !== null && !(r instanceof Promise)) sink++;
}

function onRequestPathWithShape(header: string): void {
  const t = readCookie(header, cookieName);
  if (typeof t !== 'string' || !isTokenShape(t)) return;
  const r = sessions.resolve(t);
  if (r !== null && !(r instanceof Promise)) sink++;
}

const cases: [string, () => void][] = [
  ['empty loop (overhead included in every row)', () => { sink++; }],
  ['app.sessions.resolve(token), L1 hit', () => { const r = sessions.resolve(token); if (r !== null && !(r instanceof Promise)) sink++; }],
  ['onRequest path, Cookie: only the session cookie', () => onRequestPath(onlyCookie)],
  [`onRequest path, Cookie: 7 cookies, ${busyCookie.length} bytes`, () => onRequestPath(busyCookie)],
  ['onRequest path + full isTokenShape() first, session cookie only', () => onRequestPathWithShape(onlyCookie)],
  ['for scale: crypto.hash(sha256, secret) (one-shot)', () => { sink += hashSecret(secret).length; }],
  ['for scale: createHash(sha256).update(secret).digest()', () => { sink += createHash('sha256').update(secret).digest('base64url').length; }],
  ['for scale (sign-in only): parseDevice(Chrome UA)', () => { sink += parseDevice(UA, 512).name.length; }],
];

function run(fn: () => void, n: number): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn();
  return Number(process.hrtime.bigint() - t0) / n;
}

const rows: string[][] = [];
const perBatch = Math.max(1, Math.floor(ITERATIONS / BATCHES));
for (const [name, fn] of cases) {
  const hashing = name.startsWith('for scale');
  const n = hashing ? Math.max(1, Math.floor(perBatch / 50)) : perBatch; // hashing and parsing are far slower
  run(fn, n); // warm up (JIT)
  const samples: number[] = [];
  for (let b = 0; b < BATCHES; b++) samples.push(run(fn, n));
  rows.push([name, fmt(median(samples), 1), fmt(Math.min(...samples), 1), fmt(n * BATCHES)]);
  console.log(`${name.padEnd(58)} ${fmt(median(samples), 1).padStart(8)} ns/op (min ${fmt(Math.min(...samples), 1)})`);
}
if (sink === 0) console.log('');

const stats = sessions.stats();
const markdown = [
  `### Hot path in process (resolve-micro.ts): median of ${BATCHES} batches, process.hrtime.bigint`,
  '',
  `${machineLine()}`,
  '',
  table(['operation', 'ns/op (median)', 'ns/op (min)', 'iterations'], rows),
  '',
  `L1 hits counted by the plugin: ${fmt(stats.l1Hits)}, misses: ${fmt(stats.l1Misses)}.`,
  '',
].join('\n');
console.log('\n' + markdown);
if (process.send) process.send({ type: 'result', markdown });

await app.close();
client.disconnect();
await redis.stop();
