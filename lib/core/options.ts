// The options both adapters share, as the app writes them (TieredSessionOptions and its parts,
// each default in a @default tag: defaults.ts holds the values) and as resolve-options.ts hands
// them to the rest of the package (ResolvedOptions).
import type { Redis, Cluster } from 'ioredis';
import type { AuditPool } from './audit/sql.js';
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
  /** Most entries kept in this process; when full, a new entry takes the place of one not hit lately (CLOCK). @default 10000 */
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

/**
 * New-device detection: a signed, long-lived device cookie and, per user, the devices that signed
 * in recently (hashed). A sign-in from a device not among them is marked `newDevice`.
 */
export interface KnownDevicesOptions {
  /** Devices remembered per user (the most recent sign-ins'); 1 to 1000. @default 20 */
  max?: number;
  /**
   * How long a device stays known after its last sign-in: the device cookie's Max-Age and the
   * set's TTL; at most 400 days (browsers cap a cookie's lifetime there). @default 31536000000 (ms, 365 days)
   */
  ttl?: Milliseconds;
  /** The device cookie's name. @default the session cookie's name + '.device' */
  cookieName?: string;
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
  /**
   * What a sign-in past `maxSessionsPerUser` does: `'evict-oldest'` ends the least recently active
   * session (of the type, then of all); `'refuse'` ends nothing and the sign-in throws 409
   * `…_SESSION_LIMIT` (whoever knows the password cannot sign the owner out by signing in over
   * and over; the app offers the way out, e.g. log out everywhere after a password check).
   * @default 'evict-oldest'
   */
  capPolicy?: 'evict-oldest' | 'refuse';
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
  /** Session events to the app's handlers (`sessions.events.on(…)`); `true` for the defaults; off when absent. */
  events?: boolean | EventOptions;
  /**
   * New-device detection: each sign-in sets a signed device cookie, and a sign-in from a device
   * the user has not signed in from within `ttl` gets `session.newDevice` true (and `newDevice`
   * in the device list). `true` takes the defaults. @default false
   */
  knownDevices?: boolean | KnownDevicesOptions;
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
   * The routes that end other sessions (revoke a device, log out everywhere) answer 403
   * `…_REAUTHENTICATION_REQUIRED` when the caller's last authentication (sign-in or
   * `confirmAuthentication()`) is older than this; 0 never asks. @default 0 (ms; never asks)
   */
  reauthenticateToRevoke?: Milliseconds;
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

/**
 * The event feed (`sessions.events`): every session change, written by the same script as the
 * change, delivered to the handlers the app registers, at least once, through a consumer group
 * the instances share (docs/events.md).
 */
export interface EventOptions {
  /** Tries of the handlers before an event is parked (`sessions.events.parked()`). @default 5 */
  maxAttempts?: number;
  /** The first retry's delay; each next one doubles (with jitter), up to 60 s. @default 1000 (ms) */
  retryDelay?: Milliseconds;
  /**
   * A handler's try that has not settled after this long counts as failed (retried; the stream's
   * later events would otherwise wait behind it for good). @default 30000 (ms)
   */
  handlerTimeout?: Milliseconds;
  /** How often each instance reads the event streams. @default 200 (ms) */
  pollInterval?: Milliseconds;
  /** How often each instance looks for sessions that expired (their `ended` events, reason `expired`). @default 30000 (ms) */
  sweepInterval?: Milliseconds;
  /** Most events the Redis streams hold while no handler takes them (over 256 streams). @default 1000000 */
  bufferEvents?: number;
  /**
   * Whether this instance delivers events to its handlers. `false` on instances that only write
   * (their handlers are never called). At least one instance must consume. @default true
   */
  consume?: boolean;
}

export interface ResolvedEvents {
  readonly maxAttempts: number;
  readonly retryDelay: Milliseconds;
  readonly handlerTimeout: Milliseconds;
  readonly pollInterval: Milliseconds;
  readonly sweepInterval: Milliseconds;
  readonly bufferEvents: number;
  readonly consume: boolean;
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

export interface ResolvedKnownDevices {
  readonly max: number;
  readonly ttl: Milliseconds;
  readonly cookieName: string;
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
  readonly capPolicy: 'evict-oldest' | 'refuse';
  readonly shortSession: Readonly<Required<ShortSessionOptions>>;
  /** 'auto' or a fixed decision; the counts are used whenever confirmation is on. */
  readonly confirmRevocations: { readonly mode: 'auto' | 'on' | 'off'; readonly replicas: number; readonly timeout: Milliseconds };
  readonly readFrom: RedisClient | undefined;
  readonly replicaLagTolerance: Milliseconds;
  readonly audit: ResolvedAudit | undefined;
  readonly events: ResolvedEvents | undefined;
  /** New-device detection; undefined: off. */
  readonly knownDevices: ResolvedKnownDevices | undefined;
  readonly commandTimeout: Milliseconds;
  readonly heartbeatInterval: Milliseconds;
  readonly maxDataBytes: number;
  readonly cookie: ResolvedCookie;
  readonly allowedOrigins: ReadonlySet<string>;
  readonly countryHeader: string | undefined;
  readonly maxUserAgentLength: number;
  readonly prewarm: number;
  readonly reauthenticateToRevoke: Milliseconds;
  readonly now: () => number;
  readonly requestProperty: string;
  readonly telemetry: ResolvedTelemetry;
  /** Cookie overrides that weaken the defaults, to warn about once at start. */
  readonly warnings: readonly string[];
}
