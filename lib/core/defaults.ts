// Every option's default, once. The resolver (resolve-options.ts) reads its defaults here; the `@default`
// tags of the option types in options.ts and the options table of docs/sessions.md say the same,
// and test/unit/options-table.test.ts checks that they do, row by row.

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** One option's default: its value, the text of its `@default` tag, and (top-level options) its docs/sessions.md cell. */
export interface OptionDefault<T = unknown> {
  /** The value the resolver uses when the option is `undefined`. */
  readonly value: T;
  /** The text after `@default` in the option's TSDoc. */
  readonly tsdoc: string;
  /** The "default" cell of the option's row in docs/sessions.md (top-level options only). */
  readonly docs?: string;
}

function row<T>(value: T, tsdoc: string, docs?: string): OptionDefault<T> {
  return Object.freeze(docs === undefined ? { value, tsdoc } : { value, tsdoc, docs });
}

/** The defaults, by option path (`localCache.ttl` is `ttl` of `localCache`). */
export const DEFAULTS = Object.freeze({
  'client': row(undefined, '', '— (required)'),
  'secret': row(undefined, '', '— (required)'),
  'keyPrefix': row('ts:', "'ts:'", "`'ts:'`"),
  'idleTimeout': row(14 * DAY, '1209600000 (ms, 14 days)', '`1209600000`'),
  'absoluteTimeout': row(30 * DAY, '2592000000 (ms, 30 days)', '`2592000000`'),
  'shortSession': row(undefined, '{ idleTimeout: 12 h, absoluteTimeout: 24 h }', '12 h, 24 h (never longer than the two above)'),
  'shortSession.idleTimeout': row(12 * HOUR, '43200000 (ms, 12 hours)'),
  'shortSession.absoluteTimeout': row(DAY, '86400000 (ms, 24 hours)'),
  'touchInterval': row(60_000, '60000 (ms)', '`60000`'),
  'localCache': row(undefined, '{ max: 10000, ttl: 15000 }', '`{ max: 10000, ttl: 15000 }`'),
  'localCache.max': row(10_000, '10000'),
  'localCache.ttl': row(15_000, '15000 (ms)'),
  'maxSessionsPerUser': row(50, '50', '`50`'),
  'maxSessionsPerUser.total': row(50, '50'),
  'capPolicy': row('evict-oldest' as const, "'evict-oldest'", "`'evict-oldest'`"),
  'commandTimeout': row(1000, '1000 (ms)', '`1000`'),
  'heartbeatInterval': row(1000, '1000 (ms)', '`1000`'),
  'maxDataBytes': row(4096, '4096 (bytes)', '`4096`'),
  'cookie': row(undefined, '', "`__Host-sid`, `true`, `true`, `'lax'`, `'/'`, unset"),
  'cookie.name': row('__Host-sid', "'__Host-sid'"),
  'cookie.secure': row(true, 'true'),
  'cookie.httpOnly': row(true, 'true'),
  'cookie.sameSite': row('lax' as const, "'lax'"),
  'cookie.path': row('/', "'/'"),
  'cookie.domain': row(undefined, 'undefined'),
  'allowedOrigins': row([] as readonly string[], '[]', '`[]`'),
  'countryHeader': row(undefined, 'undefined', 'unset'),
  'maxUserAgentLength': row(512, '512 (chars)', '`512`'),
  'prewarm': row(0, '0', '`0`'),
  'reauthenticateToRevoke': row(0, '0 (ms; never asks)', '`0`'),
  'confirmRevocations': row('auto' as const, "'auto'",
    "`'auto'` (on unless Redis reports that no shard has or had a replica; 1 replica, 500 ms)"),
  'confirmRevocations.replicas': row(1, '1'),
  'confirmRevocations.timeout': row(500, '500 (ms)'),
  'readFrom': row(undefined, '', 'unset'),
  'replicaLagTolerance': row(10_000, '10000 (ms)', '`10000`'),
  'audit': row(undefined, '', 'off'),
  'knownDevices': row(false, 'false', '`false`'),
  'knownDevices.max': row(20, '20'),
  'knownDevices.ttl': row(365 * DAY, '31536000000 (ms, 365 days)'),
  'knownDevices.cookieName': row(undefined, "the session cookie's name + '.device'"),
  'audit.schema': row(undefined, "the connection's search_path"),
  'audit.table': row('tiered_session_audit', "'tiered_session_audit'"),
  'audit.migrate': row(true, 'true'),
  'audit.retentionDays': row(90, '90 (days)'),
  'audit.sweepInterval': row(60_000, '60000 (ms)'),
  'audit.activityInterval': row(15 * 60_000, '900000 (ms, 15 min)'),
  'audit.bufferEvents': row(1_000_000, '1000000'),
  'audit.pollInterval': row(1000, '1000 (ms)'),
  'audit.consume': row(true, 'true'),
  'events': row(undefined, '', 'off'),
  'events.maxAttempts': row(5, '5'),
  'events.retryDelay': row(1000, '1000 (ms)'),
  'events.handlerTimeout': row(30_000, '30000 (ms)'),
  'events.pollInterval': row(200, '200 (ms)'),
  'events.sweepInterval': row(30_000, '30000 (ms)'),
  'events.bufferEvents': row(1_000_000, '1000000'),
  'events.consume': row(true, 'true'),
  'now': row(Date.now, 'Date.now', '`Date.now`'),
  'requestProperty': row('session', "'session'", "`'session'`"),
  'telemetry': row(undefined, "{ sampleEvery: 64, redisTimings: true, openTelemetry: 'auto' }", "`64`, `true`, `'auto'`"),
  'telemetry.sampleEvery': row(64, '64'),
  'telemetry.redisTimings': row(true, 'true'),
  'telemetry.openTelemetry': row('auto' as const, "'auto'"),
  'legacy': row(undefined, '', 'off'),
});

export type OptionPath = keyof typeof DEFAULTS;
