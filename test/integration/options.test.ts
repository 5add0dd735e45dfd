// Options: every validation branch of resolveOptions (through app.ready(), as an app sees it),
// the defaults, the cookie prefix rules, the one-time warnings for weakened cookies, and the
// behaviour of `localCache: false` and of `routes` against a real redis-server.
import t from 'tap';
import type { Test } from 'tap';
import Fastify, { type FastifyInstance } from 'fastify';
import { Redis, type Cluster } from 'ioredis';
import { tieredSession, type FastifySessionOptions as TieredSessionOptions } from '../../lib/fastify/index.js';
import { resolveOptions as resolveCore } from '../../lib/core/resolve-options.js';
import { managerOf } from '../../lib/core/sessions-api.js';
import { TEST_SECRET } from '../fixtures/apps.js';

/** The shared options, resolved (the secret is required; these tests are about the others). */
const resolveOptions = (o: unknown) =>
  resolveCore(typeof o === 'object' && o !== null && !('secret' in o) ? { secret: TEST_SECRET, ...o } : o);
import { eachTarget, makeApp, tokenOf, cacheTrusted, type Target, type TestApp } from '../fixtures/targets.js';

/** Run `fn` on the single-server target only. */
const onSingle = (t: Test, fn: (t: Test, target: Target) => Promise<void>) => eachTarget(t, fn, { only: ['single'] });

const CODE = 'ERR_TIERED_SESSION_INVALID_OPTION';
const DAY = 24 * 3600_000;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/** A real ioredis client that never connects (port 1 refuses; validation needs no server). */
function unconnected(t: Test): Redis {
  const c = new Redis({ host: '127.0.0.1', port: 1, lazyConnect: true, enableOfflineQueue: false, retryStrategy: () => null });
  c.on('error', () => {});
  t.teardown(() => c.disconnect());
  return c;
}


/** Register with `options` and report how ready() ended. */
async function readyOutcome(t: Test, options: unknown): Promise<{ app: FastifyInstance; err: (Error & { code?: string }) | undefined }> {
  const app = Fastify();
  t.teardown(() => app.close());
  const withSecret = typeof options === 'object' && options !== null && !Array.isArray(options) && !('secret' in options)
    ? { secret: TEST_SECRET, ...options } : options;
  app.register(tieredSession, withSecret as TieredSessionOptions);
  try {
    await app.ready();
    return { app, err: undefined };
  } catch (err) {
    return { app, err: err as Error & { code?: string } };
  }
}

function show(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (typeof v === 'function') return 'a function';
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  const s = JSON.stringify(v);
  return s.length > 40 ? `${s.slice(0, 37)}…` : s;
}

// ---------------------------------------------------------------------------------------------
// Bad values: [option named in the error, options patch (merged over { client }), why]
// ---------------------------------------------------------------------------------------------

type Row = [name: string, patch: Record<string, unknown>, why: string];

const rows: Row[] = [];

// The client.
rows.push(['client', { client: undefined }, 'a missing client']);
rows.push(['client', { client: {} }, 'an empty object as client']);
rows.push(['client', { client: 'redis://127.0.0.1:6379' }, 'a URL string as client']);
rows.push(['client', { client: { duplicate() {} } }, 'an object with only duplicate() as client']);
rows.push(['client', { client: null }, 'a null client']);

// Unknown options, top level and nested.
rows.push(['idletimeout', { idletimeout: 1000 }, 'a misspelt option']);
rows.push(['secret', { secret: 'keyboard cat' }, 'a secret shorter than 32 characters']);
rows.push(['secret', { secret: undefined }, 'no secret']);
rows.push(['secret', { secret: Buffer.alloc(32) }, 'a Buffer as secret']);
rows.push(['secret', { secret: [] }, 'an empty list of secrets']);
rows.push(['secret[1]', { secret: [TEST_SECRET, 'keyboard cat'] }, 'a listed secret shorter than 32 characters']);
rows.push(['secret[0]', { secret: [undefined, TEST_SECRET] }, 'a hole in the list of secrets']);
rows.push(['secret[2]', { secret: [TEST_SECRET, `${TEST_SECRET}-2`, TEST_SECRET] }, 'a secret listed twice']);
rows.push(['resave', { resave: false }, 'an option from another session library']);
rows.push(['store', { store: {} }, 'an unknown "store" option']);
rows.push(['cookie.maxAge', { cookie: { maxAge: 10 } }, 'an unknown cookie attribute']);
rows.push(['localCache.size', { localCache: { size: 5 } }, 'an unknown localCache option']);
rows.push(['routes.prefx', { routes: { prefx: '/devices' } }, 'an unknown (misspelt) routes option']);

// keyPrefix.
for (const v of ['', 'x'.repeat(65), 'a b', '{tag}', 'pre*', 'é:', 5, true]) {
  rows.push(['keyPrefix', { keyPrefix: v }, `keyPrefix ${show(v)}`]);
}

// Integer options: below the minimum, above the maximum, and not an integer at all.
const ints: [name: string, min: number, max: number][] = [
  ['idleTimeout', 1000, MAX_SAFE],
  ['absoluteTimeout', 1000, MAX_SAFE],
  ['touchInterval', 0, MAX_SAFE],
  ['maxSessionsPerUser', 0, 100_000],
  ['commandTimeout', 10, 60_000],
  ['heartbeatInterval', 50, 3_600_000],
  ['maxDataBytes', 2, 1024 * 1024],
  ['maxUserAgentLength', 16, 8192],
  ['prewarm', 0, 1_000_000],
  ['reauthenticateToRevoke', 0, 365 * DAY],
  ['localCache.max', 1, 10_000_000],
  ['localCache.ttl', 1, DAY],
];
const patchFor = (name: string, v: unknown): Record<string, unknown> =>
  name.startsWith('localCache.') ? { localCache: { [name.slice('localCache.'.length)]: v } } : { [name]: v };
for (const [name, min, max] of ints) {
  const bad: [unknown, string][] = [
    [min - 1, `one below the minimum ${min}`],
    [max === MAX_SAFE ? 2 ** 53 : max + 1, 'one above the maximum'],
    [min + 0.5, 'a fraction'],
    [String(Math.max(min, 1000)), 'a numeric string'],
    [NaN, 'NaN'],
    [Infinity, 'Infinity'],
    [null, 'null'],
    [true, 'a boolean'],
  ];
  for (const [v, why] of bad) rows.push([name, patchFor(name, v), `${name} ${show(v)} (${why})`]);
}

// touchInterval must be shorter than idleTimeout.
rows.push(['touchInterval', { idleTimeout: 5000, touchInterval: 5000 }, 'touchInterval equal to idleTimeout']);
rows.push(['touchInterval', { idleTimeout: 5000, touchInterval: 6000 }, 'touchInterval longer than idleTimeout']);
rows.push(['touchInterval', { touchInterval: 14 * DAY }, 'touchInterval equal to the default idleTimeout']);

// capPolicy.
for (const v of ['evict', 'Refuse', '', true, null]) rows.push(['capPolicy', { capPolicy: v }, `capPolicy ${show(v)}`]);

// localCache.
for (const v of [true, 'on', 0, [], null]) rows.push(['localCache', { localCache: v }, `localCache ${show(v)}`]);

// cookie.
for (const v of ['sid', [], true, null]) rows.push(['cookie', { cookie: v }, `cookie ${show(v)}`]);
for (const v of ['', 'a b', 'a;b', 'a=b', 'sid\u0000', 'sïd', 'x'.repeat(65), 5]) {
  rows.push(['cookie.name', { cookie: { name: v } }, `cookie.name ${show(v)}`]);
}
for (const k of ['secure', 'httpOnly']) {
  for (const v of ['true', 1, 0, null]) rows.push([`cookie.${k}`, { cookie: { name: 'sid', [k]: v } }, `cookie.${k} ${show(v)}`]);
}
for (const v of ['Lax', 'None', 'strict ', '', true]) {
  rows.push(['cookie.sameSite', { cookie: { sameSite: v } }, `cookie.sameSite ${show(v)}`]);
}
for (const v of ['', 'app', '/a;b', '/a b', '/a\u007f', '/ä', 5]) {
  rows.push(['cookie.path', { cookie: { name: 'sid', path: v } }, `cookie.path ${show(v)}`]);
}
for (const v of ['', 'a b', 'exa_mple.com', 'example.com;secure', 'x'.repeat(254), 5, null]) {
  rows.push(['cookie.domain', { cookie: { name: 'sid', domain: v } }, `cookie.domain ${show(v)}`]);
}

// routes.
for (const v of [true, 'x', [], null, 0]) rows.push(['routes', { routes: v }, `routes ${show(v)}`]);
for (const v of ['', 'sessions', '/', '/sessions/', '/a b', '/a//b', '/a?b', 5]) {
  rows.push(['routes.prefix', { routes: { prefix: v } }, `routes.prefix ${show(v)}`]);
}

// allowedOrigins.
for (const v of ['https://app.example.com', ['app.example.com'], ['https://app.example.com/'], ['https://app.example.com/path'],
  [5], ['ftp://app.example.com'], ['https://ok.example.com', 'bad'], {}]) {
  rows.push(['allowedOrigins', { allowedOrigins: v }, `allowedOrigins ${show(v)}`]);
}

// countryHeader.
for (const v of ['', 'cf ipcountry', 'cf_ipcountry', 'cf-ipcountry:', 'x'.repeat(65), 5, null]) {
  rows.push(['countryHeader', { countryHeader: v }, `countryHeader ${show(v)}`]);
}

// now.
for (const v of [5, 'Date.now', {}]) rows.push(['now', { now: v }, `now ${show(v)}`]);

// events.
for (const v of ['on', 1, 0, [], null]) rows.push(['events', { events: v }, `events ${show(v)}`]);
rows.push(['events.retries', { events: { retries: 3 } }, 'an unknown events key']);
for (const v of [0, 101, 2.5, '5', null]) {
  rows.push(['events.maxAttempts', { events: { maxAttempts: v } }, `events.maxAttempts ${show(v)}`]);
}
for (const v of [0, -1, 'soon']) rows.push(['events.retryDelay', { events: { retryDelay: v } }, `events.retryDelay ${show(v)}`]);
for (const v of [0, 3_600_001]) rows.push(['events.handlerTimeout', { events: { handlerTimeout: v } }, `events.handlerTimeout ${show(v)}`]);
for (const v of [9, 60_001]) rows.push(['events.pollInterval', { events: { pollInterval: v } }, `events.pollInterval ${show(v)}`]);
for (const v of [99, 'hourly']) rows.push(['events.sweepInterval', { events: { sweepInterval: v } }, `events.sweepInterval ${show(v)}`]);
for (const v of [255, 1.5]) rows.push(['events.bufferEvents', { events: { bufferEvents: v } }, `events.bufferEvents ${show(v)}`]);
for (const v of ['yes', 1]) rows.push(['events.consume', { events: { consume: v } }, `events.consume ${show(v)}`]);

// knownDevices.
for (const v of ['on', 1, 0, [], null]) rows.push(['knownDevices', { knownDevices: v }, `knownDevices ${show(v)}`]);
rows.push(['knownDevices.maximum', { knownDevices: { maximum: 5 } }, 'an unknown knownDevices key']);
for (const v of [0, 1001, 2.5, '20', null]) rows.push(['knownDevices.max', { knownDevices: { max: v } }, `knownDevices.max ${show(v)}`]);
for (const v of [59_999, 401 * DAY, 1.5, '1d', null]) {
  rows.push(['knownDevices.ttl', { knownDevices: { ttl: v } }, `knownDevices.ttl ${show(v)}`]);
}
for (const v of ['', 'a b', 'a;b', 'dév', 'x'.repeat(73), 5, null, '__Host-sid']) {
  rows.push(['knownDevices.cookieName', { knownDevices: { cookieName: v } }, `knownDevices.cookieName ${show(v)}`]);
}
rows.push(['knownDevices.cookieName', { cookie: { name: 'sid', secure: false }, knownDevices: { cookieName: '__Host-dev' } },
  'a "__Host-" device cookie while cookie.secure is false']);
rows.push(['knownDevices.cookieName', { cookie: { name: 'sid', secure: false }, knownDevices: { cookieName: '__secure-dev' } },
  'a "__Secure-" device cookie (any case) while cookie.secure is false']);

t.test('every invalid option value makes ready() reject with ERR_TIERED_SESSION_INVALID_OPTION and a message naming the option',
  async (t) => {
  for (const [name, patch, why] of rows) {
    await t.test(`${why} is refused, naming "${name}"`, async (t) => {
      const client = unconnected(t);
      const { err } = await readyOutcome(t, { client, ...patch });
      t.ok(err, 'ready() rejects');
      t.equal(err?.code, CODE, 'with the invalid-option code');
      t.ok(err?.message.includes(`"${name}"`), `the message names "${name}": ${err?.message}`);
      t.equal(client.status, 'wait', 'the client was never connected');
    });
  }
});

t.test('knownDevices: off by default and with false; true takes the defaults; the device cookie is named after the session cookie',
  async (t) => {
  t.equal(resolveOptions({ client: unconnected(t) }).knownDevices, undefined, 'absent: off');
  t.equal(resolveOptions({ client: unconnected(t), knownDevices: false }).knownDevices, undefined, 'false: off');
  t.same(resolveOptions({ client: unconnected(t), knownDevices: true }).knownDevices,
    { max: 20, ttl: 365 * DAY, cookieName: '__Host-sid.device' }, 'true: 20 devices, 365 days, __Host-sid.device');
  t.same(resolveOptions({ client: unconnected(t), knownDevices: {} }).knownDevices,
    { max: 20, ttl: 365 * DAY, cookieName: '__Host-sid.device' }, '{}: the same');
  t.same(resolveOptions({ client: unconnected(t), cookie: { name: 'sid', secure: false }, knownDevices: { max: 1, ttl: 60_000 } })
    .knownDevices, { max: 1, ttl: 60_000, cookieName: 'sid.device' }, 'the edges, and the name follows cookie.name');
  t.same(resolveOptions({ client: unconnected(t), knownDevices: { max: 1000, ttl: 400 * DAY, cookieName: '__Host-dev' } }).knownDevices,
    { max: 1000, ttl: 400 * DAY, cookieName: '__Host-dev' }, 'the upper edges, and a name of its own');
});

t.test('a list of secrets: kept in order; a refused one is named by its place, never shown', async (t) => {
  const two = [`${TEST_SECRET}-new`, TEST_SECRET];
  t.strictSame(resolveOptions({ client: unconnected(t), secret: two }).secrets, two, 'the list, the new secret first');
  t.strictSame(resolveOptions({ client: unconnected(t), secret: TEST_SECRET }).secrets, [TEST_SECRET], 'one string: a list of one');
  const short = 'short-but-secret-value';
  for (const secret of [[TEST_SECRET, short], [TEST_SECRET, TEST_SECRET]]) {
    let err: Error | undefined;
    try { resolveOptions({ client: unconnected(t), secret }); } catch (e) { err = e as Error; }
    t.ok(err?.message.includes('"secret[1]"'), `refused naming "secret[1]": ${err?.message}`);
    t.notOk(err?.message.includes(short) || err?.message.includes(TEST_SECRET), 'the message does not hold the secret');
  }
});

t.test('options that are not an object at all are refused with a coded error naming "options"', async (t) => {
  for (const v of ['redis://127.0.0.1:6379', 42, [1, 2], true]) {
    const { err } = await readyOutcome(t, v);
    t.equal(err?.code, CODE, `${show(v)} is refused with the invalid-option code`);
    t.ok(err?.message.includes('"options"'), `the message names "options": ${err?.message}`);
  }
  // The same branch, called directly (register() turns null into {} before the plugin sees it).
  for (const v of [null, undefined, 'x', 0]) {
    t.throws(() => resolveOptions(v), { code: CODE, message: /"options"/ }, `resolveOptions(${show(v)}) is refused`);
  }
});

t.test('the prefix rules of "__Host-" and "__Secure-" cookies are enforced', async (t) => {
  const refused: [Record<string, unknown>, string, string][] = [
    [{ secure: false }, 'cookie.name', 'the default "__Host-sid" without Secure'],
    [{ name: '__Host-sid', secure: false }, 'cookie.name', 'a "__Host-" cookie without Secure'],
    [{ name: '__Host-sid', path: '/app' }, 'cookie.name', 'a "__Host-" cookie with a Path other than /'],
    [{ name: '__Host-sid', domain: 'example.com' }, 'cookie.name', 'a "__Host-" cookie with a Domain'],
    [{ name: '__Secure-sid', secure: false }, 'cookie.name', 'a "__Secure-" cookie without Secure'],
    [{ name: 'sid', sameSite: 'none', secure: false }, 'cookie.sameSite', 'SameSite=None without Secure'],
  ];
  for (const [cookie, name, why] of refused) {
    const { err } = await readyOutcome(t, { client: unconnected(t), cookie });
    t.equal(err?.code, CODE, `${why} is refused`);
    t.ok(err?.message.includes(`"${name}"`), `…naming "${name}": ${err?.message}`);
  }
  const accepted: [Record<string, unknown>, string][] = [
    [{}, 'the default "__Host-sid"'],
    [{ name: '__Host-app', sameSite: 'strict' }, 'a "__Host-" cookie with the defaults otherwise'],
    [{ name: '__Secure-sid', path: '/app', domain: 'example.com' }, 'a "__Secure-" cookie with a Path and a Domain'],
    [{ name: 'sid', secure: false }, 'a plain cookie without Secure'],
    [{ name: 'sid', sameSite: 'none' }, 'SameSite=None with Secure'],
  ];
  for (const [cookie, why] of accepted) {
    const { err } = await readyOutcome(t, { client: unconnected(t), cookie, localCache: false });
    t.equal(err, undefined, `${why} is accepted`);
  }
});

t.test('the cookie prefix rules also hold when the prefix is written in another case, as browsers match it case-insensitively',
  async (t) => {
  // RFC 6265bis: a name that *case-insensitively* begins with "__Host-" / "__Secure-" is held to
  // the prefix rules by the browser, which silently drops such a cookie without Secure.
  for (const [cookie, why] of [
    [{ name: '__host-sid', secure: false }, '"__host-sid" without Secure'],
    [{ name: '__HOST-sid', path: '/app' }, '"__HOST-sid" with Path=/app'],
    [{ name: '__secure-sid', secure: false }, '"__secure-sid" without Secure'],
  ] as [Record<string, unknown>, string][]) {
    const { err } = await readyOutcome(t, { client: unconnected(t), cookie, localCache: false });
    t.equal(err?.code, CODE, `${why} is refused at ready()`);
  }
});

t.test('values at the edges of every range are accepted and kept as given', async (t) => {
  const client = unconnected(t);
  for (const [name, min, max] of ints) {
    // touchInterval must stay below idleTimeout: test it against the largest idleTimeout.
    for (const v of [min, name === 'touchInterval' ? max - 1 : max]) {
      let patch = patchFor(name, v);
      if (name === 'touchInterval') patch = { ...patch, idleTimeout: MAX_SAFE, shortSession: { idleTimeout: MAX_SAFE } };
      if (name === 'idleTimeout') patch = { ...patch, touchInterval: 0 };
      const r = resolveOptions({ client, ...patch }) as unknown as Record<string, unknown>;
      const got = name.startsWith('localCache.') ? (r.localCache as Record<string, unknown>)[name.slice(11)] : r[name];
      t.equal(got, v, `${name} = ${v} is kept`);
    }
  }
  const r = resolveOptions({ client, idleTimeout: 5000, touchInterval: 4999 });
  t.equal(r.touchInterval, 4999, 'touchInterval one below idleTimeout is accepted');
  t.same(resolveOptions({ client, localCache: {} }).localCache, { max: 10_000, ttl: 15_000 }, 'localCache {} means the default cache');
  t.equal(resolveOptions({ client, countryHeader: 'CF-IPCountry' }).countryHeader, 'cf-ipcountry',
    'the country header is matched in lower case');
  t.same([...resolveOptions({ client, allowedOrigins: ['https://App.Example.com:8443'] }).allowedOrigins], ['https://app.example.com:8443'],
    'allowed origins are compared in lower case');
  t.equal((await readyOutcome(t, { client, localCache: false, routes: { prefix: '/api/v1/devices' } })).err, undefined,
    'a nested routes prefix is accepted');
  const { err } = await readyOutcome(t, {
    client, keyPrefix: 'a', idleTimeout: 1000, absoluteTimeout: 1000, touchInterval: 0, maxSessionsPerUser: 0,
    commandTimeout: 10, heartbeatInterval: 50, maxDataBytes: 2, maxUserAgentLength: 16, prewarm: 0,
    localCache: { max: 1, ttl: 1 }, routes: { prefix: '/x' }, allowedOrigins: [], countryHeader: 'x', now: () => 0,
  });
  t.equal(err, undefined, 'an app with every option at its minimum becomes ready');
});

t.test('an option set to undefined means its default, exactly as if it were left out', async (t) => {
  const client = unconnected(t);
  const all: Record<string, undefined> = {};
  for (const k of ['keyPrefix', 'idleTimeout', 'absoluteTimeout', 'touchInterval', 'localCache', 'maxSessionsPerUser',
    'commandTimeout', 'heartbeatInterval', 'maxDataBytes', 'cookie', 'allowedOrigins', 'countryHeader',
    'maxUserAgentLength', 'prewarm', 'reauthenticateToRevoke', 'capPolicy', 'now', 'shortSession', 'confirmRevocations', 'readFrom',
    'replicaLagTolerance', 'audit', 'events', 'requestProperty', 'telemetry', 'knownDevices']) all[k] = undefined;
  const r = resolveOptions({ client, ...all,
    cookie: { name: undefined, secure: undefined, httpOnly: undefined, sameSite: undefined, path: undefined, domain: undefined } });
  t.same(r, resolveOptions({ client }), 'the resolved options equal those of { client } alone');
  const { now, warnings, client: c, allowedOrigins, capsByType, ...rest } = r;
  t.same([...allowedOrigins], [], 'no extra allowed origin');
  t.same([...capsByType], [], 'no cap per device type');
  t.equal(c, client, 'the client is the one given');
  t.equal(now, Date.now, 'now defaults to Date.now');
  t.same([...warnings], [], 'no warning');
  t.strictSame(rest, {
    keyPrefix: 'ts:', idleTimeout: 14 * DAY, absoluteTimeout: 30 * DAY, touchInterval: 60_000,
    localCache: { max: 10_000, ttl: 15_000 }, maxSessionsPerUser: 50, commandTimeout: 1000, heartbeatInterval: 1000,
    secrets: [TEST_SECRET], maxDataBytes: 4096, countryHeader: undefined,
    maxUserAgentLength: 512, prewarm: 0, reauthenticateToRevoke: 0, capPolicy: 'evict-oldest',
    shortSession: { idleTimeout: 12 * 3600_000, absoluteTimeout: DAY },
    confirmRevocations: { mode: 'auto', replicas: 1, timeout: 500 }, readFrom: undefined, replicaLagTolerance: 10_000, audit: undefined,
    events: undefined, knownDevices: undefined, requestProperty: 'session',
    telemetry: { sampleEvery: 64, redisTimings: true, openTelemetry: 'auto' },
    cookie: { name: '__Host-sid', secure: true, httpOnly: true, sameSite: 'lax', path: '/', domain: undefined },
  }, 'the defaults are the documented ones');

  const { app, err } = await readyOutcome(t, { client, ...all, routes: undefined, localCache: false });
  t.equal(err, undefined, 'an app with every option undefined becomes ready');
  t.equal(managerOf(app.sessions).store.channel, 'ts:revoked', 'the default key prefix scopes the channel');
  t.ok(managerOf(app.sessions).store.sessionKey('A'.repeat(38)).startsWith('ts:{'), 'and the keys');
  t.equal((await app.inject({ url: '/sessions' })).statusCode, 401, 'the device routes are at /sessions (401 without a session)');
});

t.test('null is not undefined: an option set to null is refused, never silently replaced by its default', async (t) => {
  // README: "`undefined` alone means "use the default"; nothing is silently replaced."
  const nulls: [string, Record<string, unknown>][] = [
    ['keyPrefix', { keyPrefix: null }],
    ['capPolicy', { capPolicy: null }],
    ['cookie.name', { cookie: { name: null } }],
    ['cookie.sameSite', { cookie: { sameSite: null } }],
    ['cookie.path', { cookie: { name: 'sid', path: null } }],
    ['routes.prefix', { routes: { prefix: null } }],
    ['allowedOrigins', { allowedOrigins: null }],
    ['now', { now: null }],
  ];
  for (const [name, patch] of nulls) {
    const { err } = await readyOutcome(t, { client: unconnected(t), localCache: false, ...patch });
    t.equal(err?.code, CODE, `${name}: null is refused`);
    t.ok(err?.message.includes(`"${name}"`), `…naming "${name}": ${err?.message ?? 'ready() resolved'}`);
  }
});

// ---------------------------------------------------------------------------------------------
// Against a real server
// ---------------------------------------------------------------------------------------------

interface LogLine { level: string; msg: string }

/** The test app on the current adapter, with its log lines captured. */
async function loggedApp(t: Test, client: Redis | Cluster,
  options: Partial<TieredSessionOptions>): Promise<{ app: TestApp; lines: LogLine[] }> {
  const lines: LogLine[] = [];
  const app = await makeApp(t, client, options, { logs: lines });
  return { app, lines };
}

const warnings = (lines: LogLine[]) => lines.filter((l) => l.level === 'warn').map((l) => l.msg);

function setCookieLine(res: { headers: Record<string, unknown> }, name: string): string {
  const raw = res.headers['set-cookie'];
  const all = (Array.isArray(raw) ? raw : [raw]) as string[];
  return all.find((l) => typeof l === 'string' && l.startsWith(`${name}=`)) ?? '';
}

t.test('each weakening cookie override logs exactly one warning, once, and takes effect', async (t) => {
  await onSingle(t, async (t, target) => {
    const cases: [string, Record<string, unknown>, RegExp, (line: string) => boolean][] = [
      ['secure: false', { name: 'sid', secure: false }, /cookie\.secure/, (l) => !/;\s*Secure/i.test(l)],
      ['httpOnly: false', { httpOnly: false }, /cookie\.httpOnly/, (l) => !/;\s*HttpOnly/i.test(l)],
      ['sameSite: "none"', { sameSite: 'none' }, /cookie\.sameSite/, (l) => /;\s*SameSite=None/i.test(l)],
      ['domain', { name: '__Secure-sid', domain: 'example.com' }, /cookie\.domain/, (l) => /;\s*Domain=example\.com/i.test(l)],
    ];
    for (const [what, cookie, re, effect] of cases) {
      await t.test(`${what} logs one warning naming the attribute`, async (t) => {
        const { app, lines } = await loggedApp(t, target.client(), { keyPrefix: target.prefix(), cookie });
        const name = (cookie.name as string | undefined) ?? '__Host-sid';
        const login = await app.inject({ method: 'POST', url: '/login', payload: { user: 'w' } });
        t.equal(login.statusCode, 200);
        t.ok(effect(setCookieLine(login, name)), `the Set-Cookie line reflects it: ${setCookieLine(login, name)}`);
        const token = tokenOf(login, name)!;
        for (let i = 0; i < 3; i++) t.equal((await app.inject({ url: '/me', cookies: { [name]: token } })).statusCode, 200);
        await app.inject({ method: 'POST', url: '/logout', cookies: { [name]: token } });
        const w = warnings(lines);
        t.equal(w.length, 1, `exactly one warning after start and several requests: ${JSON.stringify(w)}`);
        t.match(w[0], re);
      });
    }

    await t.test('three weakening overrides together log three warnings, one each', async (t) => {
      const { lines } = await loggedApp(t, target.client(), {
        keyPrefix: target.prefix(), cookie: { name: 'sid', httpOnly: false, sameSite: 'none', domain: 'example.com' },
      });
      const w = warnings(lines);
      t.equal(w.length, 3, JSON.stringify(w));
      for (const re of [/cookie\.httpOnly/, /cookie\.sameSite/, /cookie\.domain/]) {
        t.equal(w.filter((m) => re.test(m)).length, 1, `one warning matches ${re}`);
      }
    });

    await t.test('the safe defaults and safe overrides log no warning', async (t) => {
      for (const cookie of [undefined, { sameSite: 'strict' as const }, { name: '__Host-app' }]) {
        const { app, lines } = await loggedApp(t, target.client(), { keyPrefix: target.prefix(), cookie });
        const name = cookie?.name ?? '__Host-sid';
        const login = await app.inject({ method: 'POST', url: '/login', payload: { user: 'w' } });
        const line = setCookieLine(login, name);
        t.match(line, /;\s*Secure/i, `${name} is Secure`);
        t.match(line, /;\s*HttpOnly/i, `${name} is HttpOnly`);
        t.notMatch(line, /Domain=/i, `${name} has no Domain`);
        t.same(warnings(lines), [], `no warning for ${JSON.stringify(cookie)}`);
      }
    });
  });
});

t.test('the default cookie is __Host-sid; Secure; HttpOnly; SameSite=Lax; Path=/; no Domain; Max-Age = the absolute lifetime',
  async (t) => {
  await onSingle(t, async (t, target) => {
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix(), absoluteTimeout: 3 * DAY, idleTimeout: DAY });
    const login = await app.inject({ method: 'POST', url: '/login', payload: { user: 'd' } });
    const line = setCookieLine(login, '__Host-sid');
    t.ok(tokenOf(login), 'the cookie carries a token');
    t.match(line, /;\s*Secure(;|$)/i);
    t.match(line, /;\s*HttpOnly(;|$)/i);
    t.match(line, /;\s*SameSite=Lax(;|$)/i);
    t.match(line, /;\s*Path=\/(;|$)/);
    t.notMatch(line, /Domain=/i);
    const maxAge = Number(/Max-Age=(\d+)/i.exec(line)?.[1]);
    t.ok(Math.abs(maxAge - 3 * 24 * 3600) <= 2, `Max-Age ${maxAge} is the remaining absolute lifetime (3 days)`);
  });
});

t.test('localCache: false serves every request from Redis, and a revocation is exact at once', async (t) => {
  await onSingle(t, async (t, target) => {
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix(), localCache: false });
    t.equal(app.sessions.cacheTrusted, false, 'there is no revocation channel to trust');
    const login = await app.inject({ method: 'POST', url: '/login', payload: { user: 'nc' } });
    t.equal(login.statusCode, 200);
    const token = tokenOf(login)!;
    const before = await target.commandCalls('hgetall');
    for (let i = 0; i < 5; i++) {
      const me = await app.inject({ url: '/me', cookies: { '__Host-sid': token } });
      t.equal(me.statusCode, 200);
      t.equal(me.json().userId, 'nc');
    }
    t.equal(await target.commandCalls('hgetall') - before, 5, 'one Redis read per request: nothing is cached');
    const s = app.sessions.stats();
    t.equal(s.l1Hits, 0, 'no local-cache hit');
    t.equal(s.l1Size, 0, 'no local-cache entry');
    const list = await app.inject({ url: '/sessions', cookies: { '__Host-sid': token } });
    t.equal(list.statusCode, 200);
    t.equal(list.json().sessions.length, 1, 'the device list works');
    t.equal((await app.inject({ method: 'POST', url: '/logout', cookies: { '__Host-sid': token } })).statusCode, 204);
    t.equal((await app.inject({ url: '/me', cookies: { '__Host-sid': token } })).statusCode, 401, 'revoked: 401 on the very next request');
  });
});

t.test('routes: false registers no device routes, while the plugin otherwise works', async (t) => {
  await onSingle(t, async (t, target) => {
    const keyPrefix = target.prefix();
    const off = await makeApp(t, target.client(), { keyPrefix, routes: false });
    const on = await makeApp(t, target.client(), { keyPrefix });
    for (const [app, expected, what] of [[on, 'found', 'with the default'], [off, 'missing', 'with routes: false']] as const) {
      const login = await app.inject({ method: 'POST', url: '/login', payload: { user: 'r' } });
      const token = tokenOf(login)!;
      const other = tokenOf(await app.inject({ method: 'POST', url: '/login', payload: { user: 'r' } }))!;
      const id = login.json().id as string;
      const cookies = { '__Host-sid': other };
      const list = await app.inject({ url: '/sessions', cookies });
      const del = await app.inject({ method: 'DELETE', url: `/sessions/${id}`, cookies });
      const everywhere = await app.inject({ method: 'POST', url: '/sessions/logout-everywhere', cookies, payload: { keepCurrent: true } });
      if (expected === 'missing') {
        t.equal(list.statusCode, 404, `GET /sessions is 404 ${what}`);
        t.equal(del.statusCode, 404, `DELETE /sessions/:id is 404 ${what}`);
        t.equal(everywhere.statusCode, 404, `POST /sessions/logout-everywhere is 404 ${what}`);
        t.equal((await app.inject({ url: '/me', cookies: { '__Host-sid': token } })).statusCode, 200, 'and nothing was revoked');
        t.equal((await app.sessions.list('r')).length >= 2, true, 'app.sessions still works');
      } else {
        t.equal(list.statusCode, 200, `GET /sessions is 200 ${what}`);
        t.equal(del.statusCode, 204, `DELETE /sessions/:id is 204 ${what}`);
        t.equal(everywhere.statusCode, 200, `POST /sessions/logout-everywhere is 200 ${what}`);
      }
    }
  });
});

t.test('routes: { prefix: "/devices" } moves every device route there', async (t) => {
  await onSingle(t, async (t, target) => {
    const app = await makeApp(t, target.client(), { keyPrefix: target.prefix(), routes: { prefix: '/devices' } });
    await cacheTrusted(app);
    const a = await app.inject({ method: 'POST', url: '/login', payload: { user: 'dev' } });
    const b = await app.inject({ method: 'POST', url: '/login', payload: { user: 'dev' } });
    const c = await app.inject({ method: 'POST', url: '/login', payload: { user: 'dev' } });
    const cookies = { '__Host-sid': tokenOf(a)! };
    t.equal((await app.inject({ url: '/sessions', cookies })).statusCode, 404, 'GET /sessions is gone');
    t.equal((await app.inject({ method: 'POST', url: '/sessions/logout-everywhere', cookies })).statusCode, 404,
      'POST /sessions/logout-everywhere is gone');
    const list = await app.inject({ url: '/devices', cookies });
    t.equal(list.statusCode, 200, 'GET /devices lists the sessions');
    t.equal(list.headers['cache-control'], 'no-store');
    const sessions = list.json().sessions as { id: string; current: boolean }[];
    t.equal(sessions.length, 3);
    t.same([sessions[0].id, sessions[0].current], [a.json().id, true], 'current first');
    t.equal((await app.inject({ method: 'DELETE', url: `/devices/${b.json().id}`, cookies })).statusCode, 204,
      'DELETE /devices/:id revokes one');
    t.equal((await app.inject({ url: '/me', cookies: { '__Host-sid': tokenOf(b)! } })).statusCode, 401, 'that device is signed out');
    const all = await app.inject({ method: 'POST', url: '/devices/logout-everywhere', cookies, payload: { keepCurrent: true } });
    t.equal(all.statusCode, 200, 'POST /devices/logout-everywhere works');
    t.same(all.json(), { revoked: 1 });
    t.equal((await app.inject({ url: '/me', cookies: { '__Host-sid': tokenOf(c)! } })).statusCode, 401);
    t.equal((await app.inject({ url: '/me', cookies })).statusCode, 200, 'the kept session still works');
  });
});

t.test('Fastify\'s standard register options: logLevel and logSerializers are accepted and logLevel applies to the plugin\'s own log ' +
  'lines; prefix is refused, pointing at routes.prefix', async (t) => {
  await eachTarget(t, async (t, target) => {
    // A weakened cookie makes the plugin log one warning at start.
    const cookie = { httpOnly: false };
    const loud = await loggedApp(t, target.client(), { keyPrefix: target.prefix(), cookie });
    t.equal(warnings(loud.lines).length, 1, 'without logLevel the plugin\'s warning is logged');

    const serializers = { req: (r: { method: string }) => ({ method: r.method }) };
    const { app, lines } = await loggedApp(t, target.client(), {
      keyPrefix: target.prefix(), cookie, logLevel: 'error', logSerializers: serializers,
    } as Partial<TieredSessionOptions>);
    const login = await app.inject({ method: 'POST', url: '/login', payload: { user: 'quiet' } });
    t.equal(login.statusCode, 200, 'an app registered with logLevel and logSerializers works');
    t.equal((await app.inject({ url: '/me', cookies: { '__Host-sid': tokenOf(login)! } })).statusCode, 200);
    await cacheTrusted(app);
    t.same(warnings(lines), [], 'logLevel "error" silences the plugin\'s warnings');
    t.notOk(lines.some((l) => /tiered-session/.test(l.msg) && (l.level === 'info' || l.level === 'debug')),
      'and its info and debug lines (the channel confirmation)');
    await cacheTrusted(loud.app);
    t.ok(loud.lines.some((l) => l.level === 'info' && /revocation channel confirmed/.test(l.msg)),
      'while the app without logLevel logs the channel confirmation at info');

    for (const prefix of ['/auth', '/']) {
      const { err } = await readyOutcome(t, { client: unconnected(t), prefix });
      t.equal(err?.code, CODE, `prefix ${JSON.stringify(prefix)} is refused with the invalid-option code`);
      t.ok(err?.message.includes('"prefix"'), `the message names "prefix": ${err?.message}`);
      t.ok(err?.message.includes('routes: { prefix }') || err?.message.includes('routes.prefix'), 'and points at routes.prefix');
    }
    const { err } = await readyOutcome(t, { client: unconnected(t), logLevel: 'loud' });
    t.equal(err?.code, CODE, 'an unknown logLevel is refused');
    t.ok(err?.message.includes('"logLevel"'), String(err?.message));
  }, { only: ['single'], adapters: ['fastify'] });
});
