// The audit table in PostgreSQL: its DDL, the merge upsert, and the queries of the sweep and of
// retention (history.ts reads it). Identifiers (schema, table) are validated and quoted; every value
// travels as a parameter ($1…), never spliced into the text.
//
// Times are `timestamptz` in the table (what someone reading it with SQL expects) and epoch
// milliseconds everywhere else. Conversions: in, `to_timestamp($n::float8 / 1000)` (a double
// holds an epoch in ms / 1000 to within 0.12 µs, and to_timestamp rounds to the microsecond, so
// every millisecond comes back exactly); out, `(extract(epoch FROM t) * 1000)::int8` (numeric
// since PostgreSQL 14, exact) read with Number(), whatever type parser the app's pool has.
import { ERR_INVALID_OPTION } from '../errors.js';
import { DEFAULTS } from '../defaults.js';

/** What a query answers: the part of pg's QueryResult the audit code reads. */
export interface AuditQueryResult {
  /** The rows, by column name. */
  rows: Record<string, unknown>[];
  /** Rows affected. */
  rowCount: number | null;
}

/** A client checked out of the pool (pg.PoolClient fits). */
export interface AuditPoolClient {
  /** A parameterised query ($1, $2, …). */
  query(text: string, values?: unknown[]): Promise<AuditQueryResult>;
  /** pg's contract: a truthy argument destroys the connection instead of returning it to the pool. */
  release(destroy?: boolean | Error): void;
  /** pg clients are EventEmitters: a checked-out client needs an 'error' listener while held. */
  on?(event: 'error', listener: (err: Error) => void): unknown;
  /** Removes the listener added with `on` before the client is released. */
  removeListener?(event: 'error', listener: (err: Error) => void): unknown;
}

/**
 * The PostgreSQL pool (a `pg.Pool` fits). Structural on purpose: the package does not depend on
 * `pg` or on `@types/pg`; the app brings both.
 */
export interface AuditPool {
  /** A parameterised query on any pooled connection. */
  query(text: string, values?: unknown[]): Promise<AuditQueryResult>;
  /** Check a client out for a transaction. */
  connect(): Promise<AuditPoolClient>;
}

/** Where the table lives. */
export interface AuditTableOptions {
  /** Schema; default none (the connection's search_path decides). */
  schema?: string;
  /** Table name; default `tiered_session_audit`. At most 48 characters (index names add a suffix). */
  table?: string;
  /**
   * The registration's `keyPrefix`: its realm in the table (registrations may share one). For
   * `migrateAuditTable`, the realm that rows already in a table from before realms are given.
   * Default `'ts:'` (the default keyPrefix).
   */
  keyPrefix?: string;
}

export const DEFAULT_TABLE = DEFAULTS['audit.table'].value;
/** The realm of a table's rows when no keyPrefix is named: the default keyPrefix. */
export const DEFAULT_REALM = DEFAULTS.keyPrefix.value;
export const realmOf = (o: AuditTableOptions) => o.keyPrefix ?? DEFAULT_REALM;

/** End reasons: what the scripts send (`e` events) and what the sweep writes (`expired`). */
export const END_REASONS = ['sign-out', 'revoked', 'everywhere', 'cap', 'replaced', 'expired'] as const;
export type EndReason = (typeof END_REASONS)[number];
/** The reasons a change gives (every one but the sweep's `expired`). */
export type ExplicitEndReason = Exclude<EndReason, 'expired'>;

// A plain SQL identifier. Quoted anyway (so reserved words and capitals are kept as written), but
// nothing that needs escaping is accepted: a name is configuration, and odd characters in it are
// more likely a mistake than a wish.
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const quote = (name: string) => `"${name}"`;

/** The quoted, validated names of the table and its indexes. */
export interface AuditNames {
  /** `"schema"."table"` or `"table"`. */
  table: string;
  /** Unquoted `schema.table` (for messages and the advisory lock key). */
  display: string;
  historyIndex: string;
  sweepIndex: string;
  retentionIndex: string;
  /** Just the index names, unquoted (an index lives in its table's schema). */
  raw: { historyIndex: string; sweepIndex: string; retentionIndex: string };
  /** A quoted name qualified with the table's schema (DROP INDEX needs it). */
  inSchema(quoted: string): string;
}

/** Validate `schema` and `table`; a bad name is an ERR_TIERED_SESSION_INVALID_OPTION naming the option. */
export function auditNames({ schema, table = DEFAULT_TABLE }: AuditTableOptions = {}): AuditNames {
  if (schema !== undefined) {
    if (typeof schema !== 'string' || !IDENT.test(schema) || schema.length > 63) {
      throw new ERR_INVALID_OPTION('schema',
        'expected an SQL identifier: a letter or underscore, then letters, digits or underscores, at most 63 characters');
    }
  }
  if (typeof table !== 'string' || !IDENT.test(table) || table.length > 48) {
    throw new ERR_INVALID_OPTION('table',
      'expected an SQL identifier: a letter or underscore, then letters, digits or underscores, at most 48 characters');
  }
  const raw = { historyIndex: `${table}_user_created`, sweepIndex: `${table}_live_expiry`, retentionIndex: `${table}_ended` };
  const q = (n: string) => (schema === undefined ? quote(n) : `${quote(schema)}.${quote(n)}`);
  return {
    table: q(table),
    display: schema === undefined ? table : `${schema}.${table}`,
    historyIndex: quote(raw.historyIndex),
    sweepIndex: quote(raw.sweepIndex),
    retentionIndex: quote(raw.retentionIndex),
    raw,
    inSchema: (quoted: string) => (schema === undefined ? quoted : `${quote(schema)}.${quoted}`),
  };
}

/**
 * The DDL, in the order it runs. Columns are laid out fixed-width first (five timestamptz, then
 * the int4), text last: no alignment padding between them, about 8 bytes a row saved at 10 M rows.
 */
export function ddl(n: AuditNames): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS ${n.table} (
      created_at          timestamptz,  -- the 'c' event's time; NULL until that event is applied
      last_active_at      timestamptz,  -- coarse: kept current within activityInterval (default 15 min)
      expires_at          timestamptz,  -- the latest expiry known (events, or the sweep reading Redis)
      absolute_expires_at timestamptz,  -- the session's absolute deadline ('c' event, x)
      ended_at            timestamptz,
      rotations           integer NOT NULL DEFAULT 0,
      -- C collation: ids are compared for equality and sorted only for a stable order, so the
      -- cheapest comparison (bytes) is the right one, and it is the same on every server.
      id                  text COLLATE "C" PRIMARY KEY,
      -- The key prefix of the registration that wrote the row: registrations sharing the table
      -- see only their own rows (history, sweep, retention).
      realm               text COLLATE "C" NOT NULL,
      user_id             text COLLATE "C" NOT NULL,
      end_reason          text COLLATE "C" CHECK (end_reason IN ('sign-out', 'revoked', 'everywhere', 'cap', 'replaced', 'expired')),
      device_name         text,
      device_browser      text,
      device_os           text,
      device_type         text,
      ip                  text,  -- as the app gave it (text, not inet: an odd value must not block a batch)
      country             text,
      CHECK ((ended_at IS NULL) = (end_reason IS NULL))
    )`,
    // history(): "a user's sessions live at some moment of [from, to], most recent first". The key
    // (realm, user_id, created_at DESC, id DESC) is the query's equalities + range + ORDER BY, so the scan
    // starts at the user's newest session created <= to and stops after LIMIT matches, no sort.
    // INCLUDE carries every other column the query reads, so the plan is an Index Only Scan: a
    // user's 50 sessions sit on one or two leaf pages instead of 50 scattered heap pages (the
    // rows of one user are written weeks apart). The cost is size (the index holds most of the
    // row again: measured in benchmarks/audit-history.ts) and that a heap page changed since the
    // last VACUUM is still visited (ended sessions' pages settle and become all-visible; the live
    // ones are few). It makes no update less HOT than it already is: every activity event moves
    // expires_at, which the sweep index holds anyway.
    `CREATE INDEX IF NOT EXISTS ${n.historyIndex} ON ${n.table} (realm, user_id, created_at DESC, id DESC)
      INCLUDE (expires_at, ended_at, last_active_at, end_reason, rotations,
               device_name, device_browser, device_os, device_type, ip, country)`,
    // The expiry sweep: "sessions not ended whose expiry has passed", in expiry order. Partial on
    // ended_at IS NULL, so it holds only the sessions not yet ended (a small fraction of a table
    // that keeps 90 days of history) and an ended session leaves it. (expires_at, id) is the
    // sweep's keyset: each batch resumes after the last (expires_at, id) it saw.
    `CREATE INDEX IF NOT EXISTS ${n.sweepIndex} ON ${n.table} (realm, expires_at, id) WHERE ended_at IS NULL`,
    // Retention: "ended more than retentionDays ago, oldest first, 1000 at a time". Partial on
    // ended_at IS NOT NULL: live sessions (NULL) are never candidates, so they are not in it;
    // `ended_at < $1` implies the predicate (a strict operator), so the planner uses it.
    `CREATE INDEX IF NOT EXISTS ${n.retentionIndex} ON ${n.table} (realm, ended_at) WHERE ended_at IS NOT NULL`,
  ];
}

/**
 * Create the table and its indexes if they are missing. Idempotent, and safe to run from several
 * instances at once: the DDL runs in one transaction under an advisory lock keyed by the table's
 * name (concurrent CREATE … IF NOT EXISTS can otherwise fail on pg_type's unique index).
 *
 * A table from before realms gets its `realm` column in place: existing rows are given
 * `options.keyPrefix` (the realm that wrote them), and the three indexes are rebuilt with the
 * realm leading.
 *
 * On a large existing table CREATE INDEX blocks writes while it builds: create a missing index by
 * hand with CREATE INDEX CONCURRENTLY (same definition) before upgrading instead.
 */
export async function migrate(pool: AuditPool, options: AuditTableOptions = {}): Promise<void> {
  const n = auditNames(options);
  const realm = realmOf(options);
  if (typeof realm !== 'string') throw new ERR_INVALID_OPTION('keyPrefix', 'expected a string');
  const c = await pool.connect();
  let failed: unknown;
  try {
    await c.query('BEGIN');
    await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`tiered-session-audit:${n.display}`]);
    const old = await c.query(`SELECT 1 FROM pg_class t WHERE t.oid = to_regclass($1)
      AND NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = t.oid AND attname = 'realm' AND NOT attisdropped)`, [n.table]);
    if (old.rows.length > 0) {
      // A DEFAULT cannot be a parameter: format(%L) quotes the literal inside PostgreSQL. The
      // default fills the existing rows (no rewrite) and is dropped: every insert names its realm.
      const add = await c.query(`SELECT format('ALTER TABLE %s ADD COLUMN realm text COLLATE "C" NOT NULL DEFAULT %L', $1::text, ` +
        `$2::text) AS q`, [n.table, realm]);
      await c.query(String(add.rows[0].q));
      await c.query(`ALTER TABLE ${n.table} ALTER COLUMN realm DROP DEFAULT`);
      for (const idx of [n.historyIndex, n.sweepIndex, n.retentionIndex]) await c.query(`DROP INDEX IF EXISTS ${n.inSchema(idx)}`);
    }
    for (const stmt of ddl(n)) await c.query(stmt);
    await c.query('COMMIT');
  } catch (err) {
    failed = err;
    await c.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    c.release(failed instanceof Error ? failed : undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// The merge upsert.

/**
 * One session's contribution from a batch of events, already merged in memory (the same rules
 * as the SQL below: a multi-row INSERT … ON CONFLICT may not touch one row twice). Times in ms;
 * null = not in this batch.
 */
export interface SessionDelta {
  id: string;
  userId: string;
  deviceName: string | null;
  deviceBrowser: string | null;
  deviceOs: string | null;
  deviceType: string | null;
  ip: string | null;
  country: string | null;
  createdAt: number | null;
  lastActiveAt: number | null;
  expiresAt: number | null;
  absoluteExpiresAt: number | null;
  /** An explicit end (never 'expired': only the sweep writes that). */
  endedAt: number | null;
  endReason: ExplicitEndReason | null;
  /** The largest rotation count seen (absolute), 0 when none. */
  rotations: number;
}

export const ts = (col: string) => `to_timestamp(${col}::float8 / 1000)`;

/**
 * The merge, as one statement over parallel arrays (unnest): one round trip and one plan
 * whatever the batch size. Rows go in id order, so two sinks upserting overlapping batches take
 * their row locks in the same order and cannot deadlock. Every rule is idempotent (x ⊕ x = x) and
 * order-insensitive (commutative, associative), so duplicates and reordering give the same row:
 *   device, ip, country, absolute deadline: set once (COALESCE keeps the first non-null);
 *   created_at: LEAST; last_active_at, expires_at, rotations: GREATEST (LEAST and GREATEST
 *   ignore NULLs); the end: the earliest explicit end wins (ties broken by reason, so the result
 *   does not depend on arrival), and an explicit end replaces the sweep's 'expired'; while a row
 *   stays 'expired', a later-arriving expiry moves ended_at with it (the session lived that long).
 */
export function upsertSql(n: AuditNames): string {
  const explicitWins = `EXCLUDED.ended_at IS NOT NULL AND (s.ended_at IS NULL OR s.end_reason = 'expired'
        OR (EXCLUDED.ended_at, EXCLUDED.end_reason) < (s.ended_at, s.end_reason))`;
  return `INSERT INTO ${n.table} AS s (id, realm, user_id, device_name, device_browser, device_os, device_type, ip, country,
      created_at, last_active_at, expires_at, absolute_expires_at, ended_at, end_reason, rotations)
    SELECT u.id, $16::text, u.user_id, u.dn, u.db, u.dos, u.dt, u.ip, u.country,
      ${ts('u.c')}, ${ts('u.a')}, ${ts('u.p')}, ${ts('u.x')}, ${ts('u.e')}, u.y, u.n
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                $9::int8[], $10::int8[], $11::int8[], $12::int8[], $13::int8[], $14::text[], $15::int4[])
      AS u(id, user_id, dn, db, dos, dt, ip, country, c, a, p, x, e, y, n)
    ORDER BY u.id
    ON CONFLICT (id) DO UPDATE SET
      device_name = COALESCE(s.device_name, EXCLUDED.device_name),
      device_browser = COALESCE(s.device_browser, EXCLUDED.device_browser),
      device_os = COALESCE(s.device_os, EXCLUDED.device_os),
      device_type = COALESCE(s.device_type, EXCLUDED.device_type),
      ip = COALESCE(s.ip, EXCLUDED.ip),
      country = COALESCE(s.country, EXCLUDED.country),
      absolute_expires_at = COALESCE(s.absolute_expires_at, EXCLUDED.absolute_expires_at),
      created_at = LEAST(s.created_at, EXCLUDED.created_at),
      last_active_at = GREATEST(s.last_active_at, EXCLUDED.last_active_at),
      expires_at = GREATEST(s.expires_at, EXCLUDED.expires_at),
      rotations = GREATEST(s.rotations, EXCLUDED.rotations),
      ended_at = CASE
        WHEN ${explicitWins} THEN EXCLUDED.ended_at
        WHEN s.end_reason = 'expired' THEN GREATEST(s.ended_at, EXCLUDED.expires_at)
        ELSE s.ended_at END,
      end_reason = CASE WHEN ${explicitWins} THEN EXCLUDED.end_reason ELSE s.end_reason END`;
}

/** The upsert's parameters: one array per column, rows sorted by id, then the realm. */
export function upsertParams(deltas: SessionDelta[], realm: string): unknown[] {
  const rows = [...deltas].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const col = <T>(f: (d: SessionDelta) => T) => rows.map(f);
  return [
    col((d) => d.id), col((d) => d.userId),
    col((d) => d.deviceName), col((d) => d.deviceBrowser), col((d) => d.deviceOs), col((d) => d.deviceType),
    col((d) => d.ip), col((d) => d.country),
    col((d) => d.createdAt), col((d) => d.lastActiveAt), col((d) => d.expiresAt), col((d) => d.absoluteExpiresAt),
    col((d) => d.endedAt), col((d) => d.endReason), col((d) => d.rotations),
    realm,
  ];
}

// ---------------------------------------------------------------------------------------------
// The sweep and retention (run by the lease holder).

/**
 * Sessions of realm $5 not ended whose expiry is before $1, after the keyset ($2, $3), oldest
 * expiry first, $4 at a time. A range scan of the partial sweep index (index condition on
 * realm and (expires_at, id)).
 */
export function sweepSelectSql(n: AuditNames): string {
  // Output names differ from the columns': ORDER BY must mean the columns (the index order).
  return `SELECT id, (extract(epoch FROM expires_at) * 1000)::int8 AS expires_ms FROM ${n.table}
    WHERE realm = $5 AND ended_at IS NULL AND expires_at < ${ts('$1')}
      AND (expires_at, id) > (${ts('$2')}, $3::text)
    ORDER BY expires_at, id
    LIMIT $4`;
}

/**
 * Sessions whose key is gone from Redis: ended at their expiry, 'expired'. Only if still not
 * ended (an explicit end applied meanwhile stands), and ended_at is the row's expires_at at
 * the moment of the update (an activity event applied since the select counts).
 */
export function sweepExpireSql(n: AuditNames): string {
  return `UPDATE ${n.table} SET ended_at = expires_at, end_reason = 'expired'
    WHERE id = ANY($1::text[]) AND realm = $2 AND ended_at IS NULL`;
}

/** Sessions (of realm $3) still in Redis: activity the buffer has not delivered yet; expiry = now + PTTL, never backwards. */
export function sweepExtendSql(n: AuditNames): string {
  return `UPDATE ${n.table} AS s SET expires_at = GREATEST(s.expires_at, ${ts('v.p')})
    FROM unnest($1::text[], $2::int8[]) AS v(id, p)
    WHERE s.id = v.id AND s.realm = $3 AND s.ended_at IS NULL`;
}

/**
 * Retention: at most $2 rows of realm $3 ended before $1, oldest first. The subquery reads the partial
 * retention index in order and stops at LIMIT; the delete finds each row by primary key. Each
 * call is its own short transaction: row locks on at most $2 rows, no table lock, no rewrite
 * (VACUUM reclaims the space for new rows).
 */
export function retentionSql(n: AuditNames): string {
  return `DELETE FROM ${n.table} WHERE id IN (
      SELECT id FROM ${n.table} WHERE realm = $3 AND ended_at < ${ts('$1')} ORDER BY ended_at LIMIT $2)`;
}
