// What both demo servers share: the environment (docs/design.md), the Redis client, the
// demo's users and their credential check, the sign-in body rule, and the page. Each server
// (server.ts on Fastify, express.ts on Express) only wires these to its framework.
import { readFileSync } from 'node:fs';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { Redis, Cluster } from 'ioredis';
import pg from 'pg';
import type { AuditOptions, SessionEvents, StatsSnapshot } from '../../lib/index.js';
import { startPrivateRedis } from './private-redis.js';
import { clusterClient, redisClient as singleClient } from '../redis-client.js';
import { postgresBinDir, privatePostgres, schemaFor } from './private-postgres.js';

const env = process.env;

/** An integer environment variable, or undefined when unset; exits with a message when malformed. */
export function num(name: string): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) {
    console.error(`${name} must be an integer, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
}

export const PORT = num('PORT') ?? 3000;
export const HOST = env.HOST || '127.0.0.1';
export const LOG_LEVEL = env.LOG_LEVEL ?? 'warn';

/**
 * The Redis client: REDIS_CLUSTER_NODES (a Cluster), else REDIS_URL, else a private
 * redis-server from PATH. Created without waiting: the server listens even while Redis is down
 * (/healthz answers 503 until it is back) and recovers by itself.
 */
export async function redisClient(): Promise<{ client: Redis | Cluster; target: string; stop(): void }> {
  let privateRedis: { url: string; stop(): void } | undefined;
  let client: Redis | Cluster;
  let target: string;
  if (env.REDIS_CLUSTER_NODES) {
    const nodes = env.REDIS_CLUSTER_NODES.split(',').map((hp) => {
      const [host, port] = hp.trim().split(':');
      return { host, port: Number(port) };
    });
    client = clusterClient(nodes);
    target = `cluster:${nodes.map((n) => `${n.host}:${n.port}`).sort().join(',')}`;
  } else {
    let url = env.REDIS_URL;
    if (!url) {
      privateRedis = await startPrivateRedis();
      url = privateRedis.url;
    }
    client = singleClient(url);
    target = url;
  }
  client.on('error', () => { /* reconnects by itself; /healthz reports the state */ });
  return {
    client,
    target,
    stop() {
      client.disconnect();
      privateRedis?.stop();
    },
  };
}

/**
 * The demo's secret. Every instance sharing a Redis must use the same one; a real deployment
 * sets SESSION_SECRET from its secret store (at least 32 characters).
 */
export const SECRET = env.SESSION_SECRET || 'demo-only-secret-set-SESSION_SECRET-in-production';

export const KEY_PREFIX = env.KEY_PREFIX || 'demo:';

/**
 * The audit trail (GET /sessions/history): DATABASE_URL → a pg.Pool on it; else a private
 * PostgreSQL from the installed binaries, shared by every demo instance on the same Redis and
 * KEY_PREFIX (private-postgres.ts); else none, said once on stderr (the route then answers 404).
 */
export async function auditOptions(redisTarget: string): Promise<AuditOptions | undefined> {
  const tuning = { sweepInterval: num('AUDIT_SWEEP_INTERVAL_MS'), retentionDays: num('AUDIT_RETENTION_DAYS') };
  if (env.DATABASE_URL) {
    const pool = new pg.Pool({ connectionString: env.DATABASE_URL, max: 4 });
    pool.on('error', () => { /* a dropped idle connection; the audit sink retries and logs */ });
    return { pool, ...tuning };
  }
  const bin = postgresBinDir();
  if (bin === undefined) {
    console.error('History is off: no PostgreSQL binaries found (initdb and postgres in PG_BIN, /usr/lib/postgresql/*/bin or on PATH). ' +
      'Install PostgreSQL (Debian/Ubuntu: apt-get install -y postgresql; macOS: brew install postgresql) or set DATABASE_URL.');
    return undefined;
  }
  try {
    const { pool, schema } = await privatePostgres(bin, schemaFor(redisTarget, KEY_PREFIX));
    return { pool, schema, ...tuning };
  } catch (err) {
    console.error(`History is off: the private PostgreSQL could not be started (${(err as Error).message}). Set DATABASE_URL to use ` +
      `another one.`);
    return undefined;
  }
}

/** The package options from the environment: the same for both demo servers. */
export function sessionOptions(client: Redis | Cluster, audit?: AuditOptions) {
  return {
    client,
    secret: SECRET,
    keyPrefix: KEY_PREFIX,
    idleTimeout: num('IDLE_TIMEOUT_MS'),
    absoluteTimeout: num('ABSOLUTE_TIMEOUT_MS'),
    touchInterval: num('TOUCH_INTERVAL_MS'),
    localCache: { ttl: num('LOCAL_CACHE_TTL_MS') },
    maxSessionsPerUser: num('MAX_SESSIONS_PER_USER'),
    // Only a header a trusted proxy sets (e.g. cf-ipcountry behind Cloudflare); unset, no country.
    countryHeader: env.COUNTRY_HEADER || undefined,
    // Sessions signed in without "remember me" (REMEMBER-less lifetimes, defaults 12 h / 24 h).
    shortSession: { idleTimeout: num('SHORT_IDLE_TIMEOUT_MS'), absoluteTimeout: num('SHORT_ABSOLUTE_TIMEOUT_MS') },
    // New-device detection: a signed device cookie; the page warns of sign-ins from new devices.
    knownDevices: true,
    // Session events: the "new sign-in" email below is sent from a handler, once per sign-in.
    events: true,
    ...(audit ? { audit } : {}),
  };
}

/**
 * What a real app would email on a sign-in from a new device. The demo logs it; a real handler
 * passes `e.id` to its mail provider as the idempotency key (an event may come twice after a
 * failure, always with the same id).
 */
export function mailOnNewDevice(events: SessionEvents, log: (line: string, fields: object) => void): void {
  events.on('created', (e) => {
    if (!e.newDevice) return;
    log('demo: would email the user: "New sign-in to your account"', {
      user: e.userId, device: e.device.name, at: new Date(e.at).toISOString(), idempotencyKey: e.id,
    });
  });
}

// Demo users. A real app checks a password hash; rate limits belong to that check.
const USERS: Record<string, string> = { alice: 'wonderland', bob: 'builder' };
const digest = (s: string) => createHash('sha256').update(s).digest();

/** Constant-time credential check (an unknown user costs the same as a wrong password). */
export function checkPassword(username: string, password: string): boolean {
  const expected = Object.hasOwn(USERS, username) ? USERS[username] : undefined;
  const ok = timingSafeEqual(digest(password), digest(expected ?? '\0no-such-user'));
  return ok && expected !== undefined;
}

export interface LoginBody { username: string; password: string; remember?: boolean }

/** The sign-in body rule (the Fastify server states the same as a JSON schema). */
export const LOGIN_BODY_SCHEMA = {
  type: 'object',
  required: ['username', 'password'],
  additionalProperties: false,
  properties: { username: { type: 'string', maxLength: 64 }, password: { type: 'string', maxLength: 256 }, remember: { type: 'boolean' } },
} as const;

/** The same rule for a server without a schema validator: the body, or undefined when it breaks the rule. */
export function loginBody(body: unknown): LoginBody | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  const b = body as Record<string, unknown>;
  const allowed = Object.keys(LOGIN_BODY_SCHEMA.properties);
  if (Object.keys(b).some((k) => !allowed.includes(k))) return undefined;
  if (typeof b.username !== 'string' || b.username.length > 64) return undefined;
  if (typeof b.password !== 'string' || b.password.length > 256) return undefined;
  if (b.remember !== undefined && typeof b.remember !== 'boolean') return undefined;
  return { username: b.username, password: b.password, ...(b.remember !== undefined ? { remember: b.remember } : {}) };
}

/** How recent a sign-in (or password confirmation) must be to change the display name (RECENT_AUTH_MS, default 5 min). */
export const RECENT_AUTH_MS = num('RECENT_AUTH_MS') ?? 5 * 60_000;

/** A display name: 1-40 characters of text (no control or bidi characters), or undefined. */
export function displayNameOf(body: unknown): string | undefined {
  const v = typeof body === 'object' && body !== null ? (body as Record<string, unknown>).displayName : undefined;
  if (typeof v !== 'string') return undefined;
  const name = v.trim();
  // No control (\p{Cc}), bidi, zero-width or separator characters.
  const unsafe = /[\p{Cc}\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/u;
  return name.length >= 1 && name.length <= 40 && !unsafe.test(name) ? name : undefined;
}

/** The password of a confirmation prompt, or undefined. */
export function passwordOf(body: unknown): string | undefined {
  const v = typeof body === 'object' && body !== null ? (body as Record<string, unknown>).password : undefined;
  return typeof v === 'string' && v.length <= 256 ? v : undefined;
}

/**
 * The demo's own user data (display names) lives in Redis beside the sessions, under its own
 * key prefix and with a TTL: it is the app's data, not the package's.
 */
export function profiles(client: Redis | Cluster) {
  const key = (userId: string) => `${KEY_PREFIX}app:name:${userId}`;
  return {
    get: (userId: string) => client.get(key(userId)).catch(() => null),
    set: (userId: string, name: string) => client.set(key(userId), name, 'EX', 30 * 24 * 3600),
  };
}

export const BAD_DISPLAY_NAME = { statusCode: 400, code: 'DEMO_BAD_DISPLAY_NAME', error: 'Bad Request',
  message: 'A display name is 1-40 characters of text' };
export const WRONG_PASSWORD = { statusCode: 401, code: 'DEMO_WRONG_PASSWORD', error: 'Unauthorized', message: 'Wrong password' };

export const BAD_CREDENTIALS = { statusCode: 401, code: 'DEMO_BAD_CREDENTIALS', error: 'Unauthorized',
  message: 'Wrong username or password' };
export const BAD_BODY = { statusCode: 400, code: 'DEMO_BAD_BODY', error: 'Bad Request', message: 'Expected { username, password }' };

export const PAGE = readFileSync(new URL('./public/index.html', import.meta.url), 'utf8');
export const SCRIPT = readFileSync(new URL('./public/app.js', import.meta.url), 'utf8');
export const CSP = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self'; form-action " +
  "'self'; frame-ancestors 'none'; base-uri 'none'";

/** The routes that never need a session: they answer while Redis is down. */
export const PUBLIC_PATHS = new Set(['/', '/app.js', '/healthz', '/metrics', '/ops']);

const finiteOrNull = (v: number) => (Number.isFinite(v) ? v : null);

/**
 * The page's operations strip (GET /ops): a few aggregates of `stats()`, null where there is
 * nothing to measure yet. No id, no token: the same numbers /metrics serves.
 */
export function operations(s: StatsSnapshot) {
  return {
    hitRatio: finiteOrNull(s.l1HitRatio),
    l2Amplification: finiteOrNull(s.l2Amplification),
    revocationP99Ms: finiteOrNull(s.revocationLatency.p99 * 1000),
    l1Entries: s.l1Size,
    channel: s.channel,
  };
}

/** SIGTERM / SIGINT: close the app (flushes writes, closes the subscriber), then the client. */
export function onShutdown(close: () => Promise<void>, redis: { stop(): void }): void {
  const shutdown = async () => {
    await close();
    redis.stop();
    process.exit(0);
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}
