// Every shared option validated, its default applied (defaults.ts), frozen: resolveOptions. A
// bad option throws a coded error naming it (validate.ts).
import { IncomingMessage } from 'node:http';
import { DEFAULTS as D } from './defaults.js';
import { bool, describe, fail, int, isPlainObject, isRedisClient, orDefault } from './validate.js';
import { auditNames, type AuditPool } from './audit/sql.js';
import type { OpenTelemetryProviders } from './observe/otel.js';
import type { ResolvedTelemetry } from './observe/telemetry.js';
import type {
  CookieOptions, ResolvedAudit, ResolvedCookie, ResolvedEvents, ResolvedKnownDevices, ResolvedOptions, ShortSessionOptions,
  TieredSessionOptions,
} from './options.js';

const KNOWN = new Set([
  'client', 'secret', 'keyPrefix', 'idleTimeout', 'absoluteTimeout', 'touchInterval', 'localCache', 'maxSessionsPerUser', 'capPolicy',
  'shortSession',
  'confirmRevocations', 'readFrom', 'replicaLagTolerance', 'audit', 'events', 'knownDevices',
  'commandTimeout', 'heartbeatInterval', 'maxDataBytes', 'cookie', 'allowedOrigins', 'countryHeader',
  'maxUserAgentLength', 'prewarm', 'reauthenticateToRevoke', 'now', 'requestProperty', 'telemetry',
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
  const capPolicy = orDefault(o.capPolicy, D.capPolicy.value);
  if (capPolicy !== 'evict-oldest' && capPolicy !== 'refuse') {
    throw fail('capPolicy', `expected "evict-oldest" or "refuse", got ${describe(capPolicy)}`);
  }
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
    capPolicy,
    shortSession,
    commandTimeout,
    confirmRevocations,
    readFrom: o.readFrom,
    replicaLagTolerance: int('replicaLagTolerance', o.replicaLagTolerance, D.replicaLagTolerance.value, 0, 3600_000),
    audit: resolveAudit(o.audit),
    events: resolveEvents(o.events),
    knownDevices: resolveKnownDevices(o.knownDevices, cookie),
    heartbeatInterval: int('heartbeatInterval', o.heartbeatInterval, D.heartbeatInterval.value, 50, 3600_000),
    maxDataBytes: int('maxDataBytes', o.maxDataBytes, D.maxDataBytes.value, 2, 1024 * 1024),
    cookie,
    allowedOrigins: new Set(allowedOrigins.map((x) => x.toLowerCase())),
    countryHeader: countryHeader?.toLowerCase(),
    maxUserAgentLength: int('maxUserAgentLength', o.maxUserAgentLength, D.maxUserAgentLength.value, 16, 8192),
    prewarm: int('prewarm', o.prewarm, D.prewarm.value, 0, 1_000_000),
    reauthenticateToRevoke: int('reauthenticateToRevoke', o.reauthenticateToRevoke, D.reauthenticateToRevoke.value, 0, 365 * 86_400_000),
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

const EVENT_KEYS = new Set(['maxAttempts', 'retryDelay', 'handlerTimeout', 'pollInterval', 'sweepInterval', 'bufferEvents', 'consume']);

export function resolveEvents(v: unknown): ResolvedEvents | undefined {
  if (v === undefined || v === false) return undefined;
  const e: Record<string, unknown> = v === true ? {} : isPlainObject(v) ? v : {};
  if (v !== true && !isPlainObject(v)) throw fail('events', `expected true, false or { maxAttempts, … }, got ${describe(v)}`);
  for (const k of Object.keys(e)) if (!EVENT_KEYS.has(k)) throw fail(`events.${k}`, 'unknown option');
  const consume = orDefault(e.consume, D['events.consume'].value);
  if (typeof consume !== 'boolean') throw fail('events.consume', `expected a boolean, got ${describe(consume)}`);
  return Object.freeze({
    maxAttempts: int('events.maxAttempts', e.maxAttempts, D['events.maxAttempts'].value, 1, 100),
    retryDelay: int('events.retryDelay', e.retryDelay, D['events.retryDelay'].value, 1, 3_600_000),
    handlerTimeout: int('events.handlerTimeout', e.handlerTimeout, D['events.handlerTimeout'].value, 1, 3_600_000),
    pollInterval: int('events.pollInterval', e.pollInterval, D['events.pollInterval'].value, 10, 60_000),
    sweepInterval: int('events.sweepInterval', e.sweepInterval, D['events.sweepInterval'].value, 100, 24 * 3600_000),
    bufferEvents: int('events.bufferEvents', e.bufferEvents, D['events.bufferEvents'].value, 256, 1_000_000_000),
    consume,
  });
}

/** Browsers keep a cookie at most 400 days: a longer device TTL would outlive its cookie. */
const MAX_DEVICE_TTL = 400 * 24 * 3600_000;

function resolveKnownDevices(v: unknown, cookie: ResolvedCookie): ResolvedKnownDevices | undefined {
  const d = orDefault(v, D.knownDevices.value);
  if (d === false) return undefined;
  if (d !== true && !isPlainObject(d)) throw fail('knownDevices', `expected true, false or { max, ttl, cookieName }, got ${describe(d)}`);
  const o = d === true ? {} : d;
  for (const k of Object.keys(o)) if (k !== 'max' && k !== 'ttl' && k !== 'cookieName') throw fail(`knownDevices.${k}`, 'unknown option');
  const cookieName = orDefault(o.cookieName, `${cookie.name}.device`);
  if (typeof cookieName !== 'string' || !COOKIE_NAME.test(cookieName) || cookieName.length > 72) {
    throw fail('knownDevices.cookieName', `expected a cookie name token, got ${describe(cookieName)}`);
  }
  if (cookieName === cookie.name) throw fail('knownDevices.cookieName', 'must differ from the session cookie\'s name');
  // The device cookie is always Path=/ without Domain; only Secure is the session cookie's choice.
  if (/^__(host|secure)-/i.test(cookieName) && !cookie.secure) {
    throw fail('knownDevices.cookieName', 'a "__Host-" or "__Secure-" cookie must be Secure (cookie.secure is false)');
  }
  return Object.freeze({
    max: int('knownDevices.max', o.max, D['knownDevices.max'].value, 1, 1000),
    ttl: int('knownDevices.ttl', o.ttl, D['knownDevices.ttl'].value, 60_000, MAX_DEVICE_TTL),
    cookieName,
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
