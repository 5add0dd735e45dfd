// ns/op of the hot path, in process, no HTTP. The path both adapters run for a request carrying
// the cookie is `SessionFlows.resolveInto(header, request, done)` (lib/core/flows.ts: readCookie,
// the manager's resolve, the L1 hit written to the request, `done()`); it is measured here on a
// SessionFlows over the plugin's own manager (the internal SessionManager, reached through
// `managerOf(app.sessions)`), for a Cookie header holding only the session cookie and for a busy
// one; with a full isTokenShape() scan first, to price that check; and its parts on their own
// (the cookie scan, the L1 lookup, the clock), so a change to any of them shows where it lands.
// For scale: the loop itself, the two ways of hashing the secret that docs/design.md's budget weighs
// (the hot path must not need either), and the User-Agent parse that only sign-in pays.
//
// Settings: --iterations / BENCH_ITERATIONS (per case, default 5,000,000), REDIS_URL.
// Run: npm run build && npx tsx benchmarks/resolve-micro.ts
import { createHash } from 'node:crypto';
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import tieredSession, { parseDevice } from 'tiered-session/fastify';
import { SessionFlows } from '../dist/esm/core/flows.js';
import { coarseNow } from '../dist/esm/core/local-cache.js';
import { resolveOptions } from '../dist/esm/core/resolve-options.js';
import { managerOf } from '../dist/esm/core/sessions-api.js';
import { hashSecret, isTokenShape, readCookie, secretMatches, secretMatchesAt, tokenAt, ID_LENGTH } from '../dist/esm/core/token.js';
import { fastFail, redisTarget } from './support/redis.js';
import { num } from './support/settings.js';
import { fmt, machineLine, median, table } from './support/stats.js';
import { SECRET } from './servers/common.js';

const ITERATIONS = Math.round(num('iterations', 5_000_000, 1000));
const BATCHES = 10;
const UA = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

const redis = await redisTarget();
const client = new Redis(redis.url, fastFail);
client.on('error', () => {});
await new Promise<void>((r) => (client.status === 'ready' ? r() : client.once('ready', () => r())));

const app = Fastify({ logger: false });
const options = { client, secret: SECRET, keyPrefix: redis.prefix };
await app.register(tieredSession, options);
await app.ready();
const manager = managerOf(app.sessions);
const until = Date.now() + 10_000;
while (!manager.cacheTrusted && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
if (!manager.cacheTrusted) throw new Error('revocation channel not confirmed: the L1 would not be filled');
// The same flows the plugin builds, over its manager (same options, so the same cookie name).
const flows = new SessionFlows(resolveOptions(options), manager);

const { token } = await manager.create('user-000001', { device: parseDevice(UA, 512), ip: '203.0.113.7', country: 'DE' });
const cookieName = flows.cookieName;
const first = manager.resolve(token);
if (first === null || first instanceof Promise) throw new Error('the session is not an L1 hit right after create()');
const l1 = manager.localCache;

// Header strings as the HTTP parser hands them over: flat, one allocation.
const flat = (s: string) => Buffer.from(s, 'latin1').toString('latin1');
const onlyCookie = flat(`${cookieName}=${token}`);
const busyCookie = flat(`_ga=GA1.1.1387295719.1731651234; _ga_ABCDEF1234=GS1.1.1731651234.3.1.1731652345.0.0.0; theme=dark; ` +
  `consent=%7B%22analytics%22%3Atrue%2C%22ads%22%3Afalse%7D; ${cookieName}=${token}; lang=en-GB; _fbp=fb.1.1731651234567.123456789`);
const secret = token.slice(ID_LENGTH + 1);
const TOKEN_CHARS = token.length;
// The token as a request has it: a slice of the header (V8 keeps a SlicedString pointing into the
// header), and, for contrast, a flat copy of it.
const slicedToken = onlyCookie.slice(cookieName.length + 1);
const flatToken = flat(token);
const cachedSecret = flat(secret);

let sink = 0;
// A request-shaped target (the adapters write `session` on the request) and a `done` that counts.
const target: { session: unknown } = { session: null };
const done = (err?: Error) => { if (err === undefined && target.session !== null) sink++; };

function resolveIntoPath(header: string): void {
  target.session = null;
  flows.resolveInto(header, target as { session: null }, done);
}

function pathWithShape(header: string): void {
  // The path with a full token-shape scan before resolve (resolve checks only the length and the
  // dot before the L1 lookup, and the full shape before any Redis read).
  const t = readCookie(header, cookieName);
  if (typeof t !== 'string' || !isTokenShape(t)) return;
  const r = manager.resolve(t);
  if (r !== null && !(r instanceof Promise)) sink++;
}

/** A case: its name, the operation, and what to set before its batches (the sampling). */
const cases: [string, () => void, (() => void)?][] = [
  ['empty loop (overhead included in every row)', () => { sink++; }],
  ['resolveInto(header), Cookie: only the session cookie', () => resolveIntoPath(onlyCookie)],
  // The metrics' cost: the default times one resolve in 64 (a countdown on every request).
  ['resolveInto(header), session cookie only, telemetry: false (no countdown, nothing timed)', () => resolveIntoPath(onlyCookie), () =>
    manager.metrics.sampleResolves(0)],
  ['resolveInto(header), session cookie only, every resolve timed (sampleEvery: 1)', () => resolveIntoPath(onlyCookie), () =>
    manager.metrics.sampleResolves(1)],
  [`resolveInto(header), Cookie: 7 cookies, ${busyCookie.length} bytes`, () => resolveIntoPath(busyCookie), () =>
    manager.metrics.sampleResolves(64)],
  ['readCookie + full isTokenShape() + resolve, session cookie only', () => pathWithShape(onlyCookie)],
  ['part: manager.resolve(token), L1 hit (one token string)',
    () => { const r = manager.resolve(token); if (r !== null && !(r instanceof Promise)) sink++; }],
  ['part: readCookie, session cookie only', () => { sink += (readCookie(onlyCookie, cookieName) as string).length; }],
  [`part: readCookie, 7 cookies`, () => { sink += (readCookie(busyCookie, cookieName) as string).length; }],
  ['part: tokenAt (the session cookie found in place), session cookie only', () => { sink += tokenAt(onlyCookie, cookieName); }],
  // The clock as the hot path reads it: coarseNow(), one Date.now() a turn of the event loop
  // (these loops run within one turn, so it is read once).
  ['part: L1 find (the packed index, the id read in place in the header, the ttl check)',
    () => { if (l1.find(onlyCookie, onlyCookie.indexOf('=') + 1, coarseNow()) >= 0) sink++; }],
  ['part: L1 find + secret proof + the Session object (a recent hit: kept built)', () => {
    const at = onlyCookie.indexOf('=') + 1;
    const slot = l1.find(onlyCookie, at, coarseNow());
    if (slot >= 0 && l1.proves(slot, onlyCookie, at) && l1.session(slot) !== null) sink++;
  }],
  // What any check of the token in JS pays before comparing anything: each of its 81 characters
  // read from the header once (the id's 38, the secret's 43).
  ['for scale: the token\'s 81 characters read from the header (charCodeAt), nothing else', () => {
    const at = onlyCookie.indexOf('=') + 1;
    let x = 0;
    for (let i = 0; i < ID_LENGTH; i++) x += onlyCookie.charCodeAt(at + i);
    for (let i = ID_LENGTH + 1; i < TOKEN_CHARS; i++) x += onlyCookie.charCodeAt(at + i);
    sink += x & 1;
  }],
  ['part: secretMatchesAt (43 chars, constant time), read in place in the header',
    () => { if (secretMatchesAt(cachedSecret, onlyCookie, onlyCookie.indexOf('=') + 1)) sink++; }],
  ['part: secretMatches (43 chars, constant time), token sliced from the header',
    () => { if (secretMatches(cachedSecret, slicedToken)) sink++; }],
  ['part: secretMatches (43 chars, constant time), a flat token', () => { if (secretMatches(cachedSecret, flatToken)) sink++; }],
  ['part: Date.now()', () => { sink += Date.now() & 1; }],
  ['part: performance.now()', () => { sink += performance.now() & 1; }],
  ['for scale: crypto.hash(sha256, secret) (one-shot)', () => { sink += hashSecret(secret).length; }],
  ['for scale: createHash(sha256).update(secret).digest()',
    () => { sink += createHash('sha256').update(secret).digest('base64url').length; }],
  ['for scale (sign-in only): parseDevice(Chrome UA)', () => { sink += parseDevice(UA, 512).name.length; }],
];

function run(fn: () => void, n: number): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn();
  return Number(process.hrtime.bigint() - t0) / n;
}

const rows: string[][] = [];
const perBatch = Math.max(1, Math.floor(ITERATIONS / BATCHES));
for (const [name, fn, setup] of cases) {
  setup?.();
  const hashing = name.startsWith('for scale') && !name.includes('charCodeAt');
  const n = hashing ? Math.max(1, Math.floor(perBatch / 50)) : perBatch; // hashing and parsing are far slower
  run(fn, n); // warm up (JIT)
  const samples: number[] = [];
  for (let b = 0; b < BATCHES; b++) samples.push(run(fn, n));
  rows.push([name, fmt(median(samples), 1), fmt(Math.min(...samples), 1), fmt(n * BATCHES)]);
  console.log(`${name.padEnd(64)} ${fmt(median(samples), 1).padStart(8)} ns/op (min ${fmt(Math.min(...samples), 1)})`);
}
if (sink === 0) console.log('');

const stats = app.sessions.stats();
const markdown = [
  `### Hot path in process (resolve-micro.ts): median of ${BATCHES} batches, process.hrtime.bigint`,
  '',
  `${machineLine()}`,
  '',
  table(['operation', 'ns/op (median)', 'ns/op (min)', 'iterations'], rows),
  '',
  `L1 hits counted by the manager: ${fmt(stats.l1Hits)}, misses: ${fmt(stats.l1Misses)}.`,
  '',
].join('\n');
console.log('\n' + markdown);
if (process.send) process.send({ type: 'result', markdown });

await app.close();
client.disconnect();
await redis.stop();
