import { IncomingMessage } from 'node:http';
import type { Redis, Cluster } from 'ioredis';
import { DEFAULTS as D } from './defaults.js';
import { bool, describe, fail, int, isPlainObject, isRedisClient, orDefault } from './validate.js';
import { auditNames, type AuditPool } from './audit/sql.js';
import type { OpenTelemetryProviders } from './observe/otel.js';
import type { ResolvedTelemetry } from './observe/telemetry.js';

/** A duration in milliseconds. */
export type Milliseconds = number;

/** Either ioredis client: a single `Redis` or a `Cluster`. */
export type RedisClient = Redis | Cluster;

/** The session cookie. The defaults are the safest: `__Host-` prefix, Secure, HttpOnly, SameSite=Lax, Path=/, no Domain. */
export interface CookieOptions {
  /** Cookie name. @default '__Host-sid' */
  name?: string;
  /** @default true */
  secure?: boolean;
  /** @default true */
  httpOnly?: boolean;
  /** @default 'lax' */
  sameSite?: 'lax' | 'strict' | 'none';
  /** @default '/' */
  path?: string;
  /** Leave unset: a `Domain` widens the cookie to every subdomain. @default undefined */
  domain?: string;
}

/** Lifetimes of a session signed in with `remember: false` (a browser-session cookie). */
export interface ShortSessionOptions {
  /** Sliding idle timeout; at most `idleTimeout`. @default 43200000 (ms, 12 hours) */
  idleTimeout?: Milliseconds;
  /** Absolute lifetime from sign-in; at most `absoluteTimeout`. @default 86400000 (ms, 24 hours) */
  absoluteTimeout?: Milliseconds;
}

/**
 * Session caps per user: a total, and per device type as the device parser names them
 * (`desktop`, `mobile`, `tablet`, `bot`, `smarttv`, `console`, `wearable`, `embedded`). A
 * session of a type without a cap counts only toward the total.
 */
export interface SessionCaps {
  /** Live sessions per user across all types; 0 = no total cap. @default 50 */
  total?: number;
  [deviceType: string]: number | undefined;
}

/**
 * The audit trail: one row per session in PostgreSQL (who, which device, from where, created,
 * last active, expires, ended and why), fed through a durable buffer in Redis so that no request
 * waits on PostgreSQL and nothing is lost while it is away.
 */
export interface AuditOptions {
  /** A `pg.Pool` (node-postgres) the app already has. Give it an 'error' listener. */
  pool: AuditPool;
  /** Schema of the table. @default the connection's search_path */
  schema?: string;
  /** Table name (at most 48 characters). @default 'tiered_session_audit' */
  table?: string;
  /** Create the table and its indexes at start (idempotent, safe on every instance at once). @default true */
  migrate?: boolean;
  /** Rows ended longer ago than this are deleted, in small batches. @default 90 (days) */
  retentionDays?: number;
  /** How often expired sessions are recorded (and retention applied), by one instance at a time. @default 60000 (ms) */
  sweepInterval?: Milliseconds;
  /** last_active_at is kept current within this interval (not a write per touch). @default 900000 (ms, 15 min) */
  activityInterval?: Milliseconds;
  /** Most events the Redis buffer holds while PostgreSQL is away (over 256 streams; ~130 bytes each). @default 1000000 */
  bufferEvents?: number;
  /** How often each instance reads the buffer. @default 1000 (ms) */
  pollInterval?: Milliseconds;
  /**
   * Whether this instance moves events from the buffer to PostgreSQL (and may hold the sweep
   * lease). `false` on request-serving instances when workers consume: their requests then pay
   * only the buffer append. At least one instance must consume. @default true
   */
  consume?: boolean;
}

/** Confirming revocations on replicas before answering (Redis `WAIT`). */
export interface ConfirmOptions {
  /** Replicas that must have the change. @default 1 */
  replicas?: number;
  /** Longest wait; shorter than `commandTimeout`. @default 500 (ms) */
  timeout?: Milliseconds;
}

/** The in-process cache (L1) in front of Redis. */
export interface LocalCacheOptions {
  /** Most entries kept in this process. @default 10000 */
  max?: number;
  /** Longest an entry lives without being re-read from Redis: the staleness bound under any fault. @default 15000 (ms) */
  ttl?: Milliseconds;
}

/** What is timed beside the counters, and OpenTelemetry (docs/operations.md, *Metrics*). */
export interface TelemetryOptions {
  /**
   * Time one session resolve in this many requests (`tiered_session_resolve_seconds`), chosen by
   * a counter: the others read no clock. 0 times none. @default 64
   */
  sampleEvery?: number;
  /** Time each Redis call by operation (`tiered_session_redis_operation_seconds`). @default true */
  redisTimings?: boolean;
  /**
   * OpenTelemetry: spans for the Redis calls (the operation, never a key or token) and the
   * metrics through a meter. `'auto'`: the global providers of `@opentelemetry/api` when it is
   * installed (register the SDK's meter provider before the app starts), nothing when it is
   * not; `false`: never; or the providers to use. @default 'auto'
   */
  openTelemetry?: 'auto' | false | OpenTelemetryProviders;
}

/** Options shared by the Fastify plugin and the Express middleware. */
export interface TieredSessionOptions {
  /**
   * An ioredis `Redis` or `Cluster` client (ioredis 5 or 6). The package duplicates it once for
   * its subscriber and leaves it open on close: its lifecycle is the app's. A client created
   * with `lazyConnect: true` is connected at start.
   */
  client: RedisClient;
  /**
   * A server-side key, at least 32 characters, the same on every instance: it keys the HMAC that
   * turns a user id into the user part of session ids, so an id seen in a log does not reveal
   * whose it is. A list rotates it: the first tags new sessions; the sessions made under every
   * listed key keep working, are listed and are revoked with the others, and count toward the
   * caps. Sessions made under a key no longer listed stop working (README: Rotating the secret).
   */
  secret: string | readonly string[];
  /** Prefix of every key and of the revocation channel. @default 'ts:' */
  keyPrefix?: string;
  /** Sliding idle timeout. @default 1209600000 (ms, 14 days) */
  idleTimeout?: Milliseconds;
  /** Absolute lifetime from sign-in; sliding never passes it. @default 2592000000 (ms, 30 days) */
  absoluteTimeout?: Milliseconds;
  /** Last-active is written at most once per this interval per session per instance. @default 60000 (ms) */
  touchInterval?: Milliseconds;
  /** The in-process cache (L1); `false` reads Redis on every request. @default { max: 10000, ttl: 15000 } */
  localCache?: LocalCacheOptions | false;
  /**
   * Signing in past this many live sessions revokes the least recently active one; 0 = no cap.
   * An object caps per device type too: `{ total: 50, mobile: 5, desktop: 10, bot: 1 }`: past a
   * type's cap the least recently active session of that type goes, past the total the least
   * recently active of all. @default 50
   */
  maxSessionsPerUser?: number | SessionCaps;
  /** Lifetimes of sessions signed in with `remember: false`. @default { idleTimeout: 12 h, absoluteTimeout: 24 h } */
  shortSession?: ShortSessionOptions;
  /**
   * Replicated Redis: a revocation (sign-out, revoke, log-out-everywhere, cap eviction,
   * rotation) answers success only once a replica has it (`WAIT`), so a failover cannot undo a
   * change the user was told about; when no replica confirms in time the call fails with
   * `ERR_TIERED_SESSION_NOT_CONFIRMED` (503). `'auto'`: on unless Redis reports that no shard has
   * or had a replica (see the README's *Replicated Redis*).
   * @default 'auto'
   */
  confirmRevocations?: 'auto' | boolean | ConfirmOptions;
  /**
   * A client on a nearby replica (another region's local replica): session reads and the
   * revocation subscriber use it; every write goes to `client`. Reads of an id invalidated in the
   * last `replicaLagTolerance` go to `client` instead.
   */
  readFrom?: RedisClient;
  /**
   * How long an invalidated id is read from the primary rather than from a replica (which may not
   * have the change yet): the replica lag the package tolerates. @default 10000 (ms)
   */
  replicaLagTolerance?: Milliseconds;
  /** The audit trail in PostgreSQL (`GET /sessions/history`); off when absent. */
  audit?: AuditOptions;
  /** Longest any Redis command may take before the request answers 503. @default 1000 (ms) */
  commandTimeout?: Milliseconds;
  /** How often the subscriber connection is pinged to catch a silent break. @default 1000 (ms) */
  heartbeatInterval?: Milliseconds;
  /** Largest session data, as JSON bytes. @default 4096 (bytes) */
  maxDataBytes?: number;
  /** Session cookie attributes. */
  cookie?: CookieOptions;
  /** Origins (scheme://host[:port]) allowed besides the request's own host on state-changing routes. @default [] */
  allowedOrigins?: string[];
  /** A request header set by a trusted proxy holding the ISO-3166 alpha-2 country (e.g. 'cf-ipcountry'). @default undefined */
  countryHeader?: string;
  /** Longest User-Agent parsed at sign-in; longer ones are cut first. @default 512 (chars) */
  maxUserAgentLength?: number;
  /** Fill the local cache at start with up to this many recently active sessions. @default 0 */
  prewarm?: number;
  /**
   * Timings and OpenTelemetry; `false` turns off the timings (counters and gauges stay) and
   * OpenTelemetry. @default { sampleEvery: 64, redisTimings: true, openTelemetry: 'auto' }
   */
  telemetry?: TelemetryOptions | false;
  /** The clock, in epoch milliseconds. Tests inject one; leave it alone otherwise. @default Date.now */
  now?: () => number;
  /**
   * The request property (Fastify: the request decorator) that holds the session. Another name,
   * e.g. `'account'`, lets express-session or @fastify/session keep `session` during a cutover
   * (docs/migrating.md); the app then types the property itself. @default 'session'
   */
  requestProperty?: string;
}

export interface ResolvedCookie {
  readonly name: string;
  readonly secure: boolean;
  readonly httpOnly: boolean;
  readonly sameSite: 'lax' | 'strict' | 'none';
  readonly path: string;
  readonly domain: string | undefined;
}

export interface ResolvedAudit {
  readonly pool: AuditPool;
  readonly schema: string | undefined;
  readonly table: string | undefined;
  readonly migrate: boolean;
  readonly retentionDays: number;
  readonly sweepInterval: Milliseconds;
  readonly activityInterval: Milliseconds;
  readonly bufferEvents: number;
  readonly pollInterval: Milliseconds;
  readonly consume: boolean;
}

export interface ResolvedOptions {
  readonly client: RedisClient;
  /** The listed secrets, the one that tags new sessions first. */
  readonly secrets: readonly string[];
  readonly keyPrefix: string;
  readonly idleTimeout: Milliseconds;
  readonly absoluteTimeout: Milliseconds;
  readonly touchInterval: Milliseconds;
  readonly localCache: Readonly<Required<LocalCacheOptions>> | false;
  /** The total cap (0 = none). */
  readonly maxSessionsPerUser: number;
  /** Caps per device type (each ≥ 1); types without one count only toward the total. */
  readonly capsByType: ReadonlyMap<string, number>;
  readonly shortSession: Readonly<Required<ShortSessionOptions>>;
  /** 'auto' or a fixed decision; the counts are used whenever confirmation is on. */
  readonly confirmRevocations: { readonly mode: 'auto' | 'on' | 'off'; readonly replicas: number; readonly timeout: Milliseconds };
  readonly readFrom: RedisClient | undefined;
  readonly replicaLagTolerance: Milliseconds;
  readonly audit: ResolvedAudit | undefined;
  readonly commandTimeout: Milliseconds;
  readonly heartbeatInterval: Milliseconds;
  readonly maxDataBytes: number;
  readonly cookie: ResolvedCookie;
  readonly allowedOrigins: ReadonlySet<string>;
  readonly countryHeader: string | undefined;
  readonly maxUserAgentLength: number;
  readonly prewarm: number;
  readonly now: () => number;
  readonly requestProperty: string;
  readonly telemetry: ResolvedTelemetry;
  /** Cookie overrides that weaken the defaults, to warn about once at start. */
  readonly warnings: readonly string[];
}

const KNOWN = new Set([
  'client', 'secret', 'keyPrefix', 'idleTimeout', 'absoluteTimeout', 'touchInterval', 'localCache', 'maxSessionsPerUser', 'shortSession',
  'confirmRevocations', 'readFrom', 'replicaLagTolerance', 'audit',
  'commandTimeout', 'heartbeatInterval', 'maxDataBytes', 'cookie', 'allowedOrigins', 'countryHeader',
  'maxUserAgentLength', 'prewarm', 'now', 'requestProperty', 'telemetry',
]);

/** One secret or a non-empty list of distinct ones, each of at least 32 characters. */
function resolveSecrets(v: unknown): readonly string[] {
  const hint = 'at least 32 characters (e.g. `openssl rand -base64 32`)';
  const one = (x: unknown, name: string): string => {
    if (typeof x !== 'string' || x.length < 32) {
      throw fail(name, `expected a string of ${hint}, got ${x === undefined ? 'nothing' : typeof x === 'string' ? `${x.length} ` +
        `characters` : describe(x)}`);
    }
    return x;
  };
  if (!Array.isArray(v)) return Object.freeze([one(v, 'secret')]);
  if (v.length === 0) throw fail('secret', 'expected a string or a non-empty array of strings, got an empty array');
  const out = v.map((x, i) => one(x, `secret[${i}]`));
  out.forEach((x, i) => {
    const first = out.indexOf(x);
    if (first !== i) throw fail(`secret[${i}]`, `duplicates secret[${first}]`);
  });
  return Object.freeze(out);
}

const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const PREFIX = /^[A-Za-z0-9_:.-]{1,64}$/;
const ORIGIN = /^https?:\/\/[^/\s]+$/;
const HEADER = /^[a-z0-9-]{1,64}$/;


function resolveTelemetry(v: unknown): ResolvedTelemetry {
  if (v === false) return Object.freeze({ sampleEvery: 0, redisTimings: false, openTelemetry: false });
  if (v !== undefined && !isPlainObject(v)) throw fail('telemetry',
    `expected false or { sampleEvery, redisTimings, openTelemetry }, got ${describe(v)}`);
  const t = v ?? {};
  for (const k of Object.keys(t)) if (!['sampleEvery', 'redisTimings', 'openTelemetry'].includes(k)) throw fail(`telemetry.${k}`,
    'unknown option');
  const ot = orDefault(t.openTelemetry, D['telemetry.openTelemetry'].value);
  let openTelemetry: ResolvedTelemetry['openTelemetry'];
  if (ot === 'auto' || ot === false) openTelemetry = ot;
  else if (isPlainObject(ot)) {
    for (const k of Object.keys(ot)) {
      if (k !== 'tracerProvider' && k !== 'meterProvider') throw fail(`telemetry.openTelemetry.${k}`, 'unknown option');
    }
    const has = (x: unknown, m: string) => x === undefined ||
      (typeof x === 'object' && x !== null && typeof (x as Record<string, unknown>)[m] === 'function');
    if (!has(ot.tracerProvider, 'getTracer')) throw fail('telemetry.openTelemetry.tracerProvider',
      'expected an OpenTelemetry TracerProvider (with getTracer)');
    if (!has(ot.meterProvider, 'getMeter')) throw fail('telemetry.openTelemetry.meterProvider',
      'expected an OpenTelemetry MeterProvider (with getMeter)');
    openTelemetry = Object.freeze({ ...(ot as OpenTelemetryProviders) });
  } else throw fail('telemetry.openTelemetry', `expected 'auto', false or { tracerProvider, meterProvider }, got ${describe(ot)}`);
  return Object.freeze({
    sampleEvery: int('telemetry.sampleEvery', t.sampleEvery, D['telemetry.sampleEvery'].value, 0, 1_000_000),
    redisTimings: bool('telemetry.redisTimings', t.redisTimings, D['telemetry.redisTimings'].value),
    openTelemetry,
  });
}

/**
 * Validate every shared option, apply defaults, and return a frozen object. Throws a coded error
 * naming the option. `adapterKeys` are the options an adapter validates itself.
 */
export function resolveOptions(opts: unknown, adapterKeys: ReadonlySet<string> = new Set()): ResolvedOptions {
  if (!isPlainObject(opts)) throw fail('options', `expected an object, got ${describe(opts)}`);
  for (const k of Object.keys(opts)) if (!KNOWN.has(k) && !adapterKeys.has(k)) throw fail(k, 'unknown option');
  const o = opts as unknown as TieredSessionOptions;
  if (!isRedisClient(o.client)) throw fail('client', 'expected an ioredis Redis or Cluster client');
  const secrets = resolveSecrets(o.secret);

  const keyPrefix = orDefault(o.keyPrefix, D.keyPrefix.value);
  if (typeof keyPrefix !== 'string' || !PREFIX.test(keyPrefix)) {
    throw fail('keyPrefix', `expected 1-64 characters of [A-Za-z0-9_:.-], got ${describe(keyPrefix)}`);
  }
  const absoluteTimeout = int('absoluteTimeout', o.absoluteTimeout, D.absoluteTimeout.value, 1000);
  const idleTimeout = int('idleTimeout', o.idleTimeout, D.idleTimeout.value, 1000);
  const touchInterval = int('touchInterval', o.touchInterval, D.touchInterval.value, 0);
  if (touchInterval >= idleTimeout) {
    throw fail('touchInterval', `must be shorter than idleTimeout (${idleTimeout} ms), got ${touchInterval}`);
  }

  let localCache: ResolvedOptions['localCache'];
  if (o.localCache === false) localCache = false;
  else if (o.localCache === undefined || isPlainObject(o.localCache)) {
    const lc = o.localCache ?? {};
    for (const k of Object.keys(lc)) if (k !== 'max' && k !== 'ttl') throw fail(`localCache.${k}`, 'unknown option');
    localCache = Object.freeze({
      max: int('localCache.max', lc.max, D['localCache.max'].value, 1, 10_000_000),
      ttl: int('localCache.ttl', lc.ttl, D['localCache.ttl'].value, 1, 24 * 3600_000),
    });
  } else throw fail('localCache', `expected false or { max, ttl }, got ${describe(o.localCache)}`);

  const cookie = resolveCookie(o.cookie);
  const warnings: string[] = [];
  if (!cookie.secure) warnings.push('cookie.secure is false: the session cookie is sent over plain HTTP');
  if (!cookie.httpOnly) warnings.push('cookie.httpOnly is false: page scripts can read the session cookie');
  if (cookie.sameSite === 'none') warnings.push('cookie.sameSite is "none": the cookie rides on cross-site requests');
  if (cookie.domain !== undefined) warnings.push('cookie.domain is set: every subdomain receives the session cookie');

  const allowedOrigins = orDefault(o.allowedOrigins, [...D.allowedOrigins.value]);
  if (!Array.isArray(allowedOrigins) || !allowedOrigins.every((x) => typeof x === 'string' && ORIGIN.test(x))) {
    throw fail('allowedOrigins', 'expected an array of origins such as "https://app.example.com"');
  }
  const countryHeader = o.countryHeader;
  if (countryHeader !== undefined && (typeof countryHeader !== 'string' || !HEADER.test(countryHeader.toLowerCase()))) {
    throw fail('countryHeader', `expected a header name, got ${describe(countryHeader)}`);
  }
  const { total, capsByType } = resolveCaps(o.maxSessionsPerUser);
  const shortSession = resolveShort(o.shortSession, idleTimeout, absoluteTimeout, touchInterval);
  const commandTimeout = int('commandTimeout', o.commandTimeout, D.commandTimeout.value, 10, 60_000);
  const confirmRevocations = resolveConfirm(o.confirmRevocations, commandTimeout);
  if (o.readFrom !== undefined && !isRedisClient(o.readFrom)) throw fail('readFrom',
    'expected an ioredis Redis or Cluster client (on a replica)');
  const now = orDefault(o.now, D.now.value);
  if (typeof now !== 'function') throw fail('now', `expected a function returning epoch ms, got ${describe(now)}`);
  const requestProperty = resolveRequestProperty(o.requestProperty);

  return Object.freeze({
    client: o.client,
    secrets,
    keyPrefix,
    idleTimeout,
    absoluteTimeout,
    touchInterval,
    localCache,
    maxSessionsPerUser: total,
    capsByType,
    shortSession,
    commandTimeout,
    confirmRevocations,
    readFrom: o.readFrom,
    replicaLagTolerance: int('replicaLagTolerance', o.replicaLagTolerance, D.replicaLagTolerance.value, 0, 3600_000),
    audit: resolveAudit(o.audit),
    heartbeatInterval: int('heartbeatInterval', o.heartbeatInterval, D.heartbeatInterval.value, 50, 3600_000),
    maxDataBytes: int('maxDataBytes', o.maxDataBytes, D.maxDataBytes.value, 2, 1024 * 1024),
    cookie,
    allowedOrigins: new Set(allowedOrigins.map((x) => x.toLowerCase())),
    countryHeader: countryHeader?.toLowerCase(),
    maxUserAgentLength: int('maxUserAgentLength', o.maxUserAgentLength, D.maxUserAgentLength.value, 16, 8192),
    prewarm: int('prewarm', o.prewarm, D.prewarm.value, 0, 1_000_000),
    now,
    requestProperty,
    telemetry: resolveTelemetry(o.telemetry),
    warnings: Object.freeze(warnings),
  });
}

/** Names a request already has in Node, Express or Fastify, or that the adapters add. */
const TAKEN = new Set([
  'body', 'params', 'query', 'cookies', 'signedCookies', 'route', 'res', 'next', 'app', 'baseUrl', 'originalUrl', 'path',
  'protocol', 'secure', 'ip', 'ips', 'hostname', 'host', 'subdomains', 'fresh', 'stale', 'xhr', 'get', 'header', 'accepts',
  'acceptsCharsets', 'acceptsEncodings', 'acceptsLanguages', 'is', 'range', 'param', 'id', 'log', 'raw', 'server', 'routeOptions',
  'socket', 'port', 'context', 'validationError', 'sessionStore', 'sessionID', 'signIn', 'signOut', 'rotateSession',
  'updateSession', 'confirmAuthentication', 'constructor', 'prototype', '__proto__',
]);

function resolveRequestProperty(v: unknown): string {
  const name = orDefault(v, D.requestProperty.value);
  if (typeof name !== 'string' || !/^[A-Za-z_$][A-Za-z0-9_$]{0,63}$/.test(name)) {
    throw fail('requestProperty', `expected a property name such as "account", got ${describe(name)}`);
  }
  if (TAKEN.has(name) || name in IncomingMessage.prototype) {
    throw fail('requestProperty', `"${name}" is already a request property; choose another name, such as "account"`);
  }
  return name;
}

const AUDIT_KEYS = new Set(['pool', 'schema', 'table', 'migrate', 'retentionDays', 'sweepInterval', 'activityInterval', 'bufferEvents',
  'pollInterval', 'consume']);

export function resolveAudit(v: unknown): ResolvedAudit | undefined {
  if (v === undefined) return undefined;
  if (!isPlainObject(v)) throw fail('audit', `expected { pool, … }, got ${describe(v)}`);
  for (const k of Object.keys(v)) if (!AUDIT_KEYS.has(k)) throw fail(`audit.${k}`, 'unknown option');
  const pool = v.pool as AuditPool | undefined;
  if (typeof pool !== 'object' || pool === null || typeof pool.query !== 'function' || typeof pool.connect !== 'function') {
    throw fail('audit.pool', 'expected a pg.Pool (an object with query() and connect())');
  }
  for (const k of ['schema', 'table'] as const) {
    if (v[k] !== undefined && typeof v[k] !== 'string') throw fail(`audit.${k}`, `expected a string, got ${describe(v[k])}`);
  }
  const schema = v.schema as string | undefined;
  const table = v.table as string | undefined;
  try {
    auditNames({ schema, table });
  } catch (err) {
    const which = (err as Error).message.includes('"schema"') ? 'schema' : 'table';
    throw fail(`audit.${which}`, (err as Error).message.replace(/^Invalid option "\w+": /, ''));
  }
  const migrate = orDefault(v.migrate, D['audit.migrate'].value);
  if (typeof migrate !== 'boolean') throw fail('audit.migrate', `expected a boolean, got ${describe(migrate)}`);
  const consume = orDefault(v.consume, D['audit.consume'].value);
  if (typeof consume !== 'boolean') throw fail('audit.consume', `expected a boolean, got ${describe(consume)}`);
  return Object.freeze({
    pool, schema, table, migrate,
    retentionDays: int('audit.retentionDays', v.retentionDays, D['audit.retentionDays'].value, 1, 36_500),
    sweepInterval: int('audit.sweepInterval', v.sweepInterval, D['audit.sweepInterval'].value, 100, 24 * 3600_000),
    activityInterval: int('audit.activityInterval', v.activityInterval, D['audit.activityInterval'].value, 0, 24 * 3600_000),
    bufferEvents: int('audit.bufferEvents', v.bufferEvents, D['audit.bufferEvents'].value, 256, 1_000_000_000),
    pollInterval: int('audit.pollInterval', v.pollInterval, D['audit.pollInterval'].value, 10, 60_000),
    consume,
  });
}

function resolveConfirm(v: unknown, commandTimeout: number): ResolvedOptions['confirmRevocations'] {
  // The wait is at most half the command timeout, which bounds the whole call.
  const timeoutDefault = Math.min(D['confirmRevocations.timeout'].value, Math.floor(commandTimeout / 2));
  if (v === undefined || v === 'auto' || typeof v === 'boolean') {
    const mode = v === true ? 'on' : v === false ? 'off' : D.confirmRevocations.value;
    return Object.freeze({ mode, replicas: D['confirmRevocations.replicas'].value, timeout: timeoutDefault });
  }
  if (!isPlainObject(v)) throw fail('confirmRevocations', `expected 'auto', true, false or { replicas, timeout }, got ${describe(v)}`);
  for (const k of Object.keys(v)) if (k !== 'replicas' && k !== 'timeout') throw fail(`confirmRevocations.${k}`, 'unknown option');
  const replicas = int('confirmRevocations.replicas', v.replicas, D['confirmRevocations.replicas'].value, 1, 100);
  const timeout = int('confirmRevocations.timeout', v.timeout, timeoutDefault, 1, 60_000);
  if (timeout >= commandTimeout) {
    throw fail('confirmRevocations.timeout', `must be shorter than commandTimeout (${commandTimeout} ms), got ${timeout}`);
  }
  return Object.freeze({ mode: 'on', replicas, timeout });
}

const DEVICE_TYPE = /^[a-z][a-z0-9-]{0,15}$/;

function resolveCaps(v: unknown): { total: number; capsByType: ReadonlyMap<string, number> } {
  if (v === undefined || typeof v === 'number' || v === null || typeof v !== 'object' || Array.isArray(v)) {
    return { total: int('maxSessionsPerUser', v, D.maxSessionsPerUser.value, 0, 100_000), capsByType: new Map() };
  }
  const caps = new Map<string, number>();
  let total = D['maxSessionsPerUser.total'].value;
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (k === 'total') total = int('maxSessionsPerUser.total', x, D['maxSessionsPerUser.total'].value, 0, 100_000);
    else if (!DEVICE_TYPE.test(k)) throw fail(`maxSessionsPerUser.${k}`,
      'expected "total" or a device type such as "mobile", "desktop", "bot"');
    else if (x !== undefined) caps.set(k, int(`maxSessionsPerUser.${k}`, x, 1, 1, 100_000));
  }
  return { total, capsByType: caps };
}

function resolveShort(v: unknown, idle: number, absolute: number, touchInterval: number): Readonly<Required<ShortSessionOptions>> {
  if (v !== undefined && !isPlainObject(v)) throw fail('shortSession', `expected { idleTimeout, absoluteTimeout }, got ${describe(v)}`);
  const o = (v ?? {}) as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'idleTimeout' && k !== 'absoluteTimeout') throw fail(`shortSession.${k}`, 'unknown option');
  const shortIdle = int('shortSession.idleTimeout', o.idleTimeout, Math.min(D['shortSession.idleTimeout'].value, idle), 1000);
  const shortAbsolute = int('shortSession.absoluteTimeout', o.absoluteTimeout, Math.min(D['shortSession.absoluteTimeout'].value, absolute),
    1000);
  if (shortIdle > idle) throw fail('shortSession.idleTimeout', `must not be longer than idleTimeout (${idle} ms), got ${shortIdle}`);
  if (shortAbsolute > absolute) throw fail('shortSession.absoluteTimeout',
    `must not be longer than absoluteTimeout (${absolute} ms), got ${shortAbsolute}`);
  if (touchInterval >= shortIdle) throw fail('touchInterval',
    `must be shorter than shortSession.idleTimeout (${shortIdle} ms), got ${touchInterval}`);
  return Object.freeze({ idleTimeout: shortIdle, absoluteTimeout: shortAbsolute });
}

function resolveCookie(c: CookieOptions | undefined): ResolvedCookie {
  if (c !== undefined && !isPlainObject(c)) throw fail('cookie', `expected an object, got ${describe(c)}`);
  const o = c ?? {};
  const allowed = ['name', 'secure', 'httpOnly', 'sameSite', 'path', 'domain'];
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw fail(`cookie.${k}`, 'unknown option');
  const name = orDefault(o.name, D['cookie.name'].value);
  if (typeof name !== 'string' || !COOKIE_NAME.test(name) || name.length > 64) {
    throw fail('cookie.name', `expected a cookie name token, got ${describe(name)}`);
  }
  const bool = (k: 'secure' | 'httpOnly') => {
    const v = o[k];
    if (v !== undefined && typeof v !== 'boolean') throw fail(`cookie.${k}`, `expected a boolean, got ${describe(v)}`);
    return v ?? D[`cookie.${k}`].value;
  };
  const secure = bool('secure');
  const httpOnly = bool('httpOnly');
  const sameSite = orDefault(o.sameSite, D['cookie.sameSite'].value);
  if (sameSite !== 'lax' && sameSite !== 'strict' && sameSite !== 'none') {
    throw fail('cookie.sameSite', `expected "lax", "strict" or "none", got ${describe(sameSite)}`);
  }
  const path = orDefault(o.path, D['cookie.path'].value);
  if (typeof path !== 'string' || !/^\/[\x21-\x3a\x3c-\x7e]*$/.test(path)) {
    throw fail('cookie.path', `expected a path starting with "/", got ${describe(path)}`);
  }
  const domain = o.domain;
  if (domain !== undefined && (typeof domain !== 'string' || !/^[A-Za-z0-9.-]{1,253}$/.test(domain))) {
    throw fail('cookie.domain', `expected a host name, got ${describe(domain)}`);
  }
  // Browsers match the cookie prefixes case-insensitively.
  const lower = name.toLowerCase();
  if (lower.startsWith('__host-') && (!secure || path !== '/' || domain !== undefined)) {
    throw fail('cookie.name', 'a "__Host-" cookie must be Secure, have Path=/ and no Domain');
  }
  if (lower.startsWith('__secure-') && !secure) throw fail('cookie.name', 'a "__Secure-" cookie must be Secure');
  if (sameSite === 'none' && !secure) throw fail('cookie.sameSite', 'SameSite=None requires cookie.secure');
  return Object.freeze({ name, secure, httpOnly, sameSite, path, domain });
}
