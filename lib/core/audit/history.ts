// history(): a user's sessions live at some moment of [from, to], read from the audit table
// (sql.ts) by an index scan bounded by the longest a session can live.
import { ERR_BAD_QUERY } from '../errors.js';
import { isWellFormed } from '../token.js';
import { auditNames, realmOf, ts, type AuditNames, type AuditPool, type AuditTableOptions, type EndReason } from './sql.js';


/** A session as history() returns it. Times are epoch ms; null where unknown. */
export interface AuditSessionRow {
  /** The session's public id. */
  id: string;
  /** The session's user. */
  userId: string;
  /** The device parsed at sign-in (each field null when unknown). */
  device: {
    /** A readable name ("Chrome 131 on macOS"). */
    name: string | null;
    /** Browser and major version. */
    browser: string | null;
    /** Operating system. */
    os: string | null;
    /** 'desktop', 'mobile', 'tablet', … */
    type: string | null;
  };
  /** The client address at sign-in. */
  ip: string | null;
  /** The country at sign-in, when a `countryHeader` is configured. */
  country: string | null;
  /** When the session was signed in. */
  createdAt: number | null;
  /** The last activity recorded. */
  lastActiveAt: number | null;
  /** When it would end unless used again. */
  expiresAt: number | null;
  /** When it ended; null while it lives. */
  endedAt: number | null;
  /** Why it ended; null while it lives. */
  endReason: EndReason | null;
  /** How many times its token was rotated. */
  rotations: number;
}

/** Which part of a user's history to read. */
export interface HistoryQuery {
  /** Epoch ms; default: no lower bound. */
  from?: number;
  /** Epoch ms; default: no upper bound. */
  to?: number;
  /** 1..1000, default 100. */
  limit?: number;
}

export const HISTORY_DEFAULT_LIMIT = 100;
export const HISTORY_MAX_LIMIT = 1000;
/** The latest time JavaScript's Date holds (and well inside timestamptz's range). */
const MAX_MS = 8.64e15;

// Named <col>_ms, not <col>: ORDER BY created_at must mean the column (the index's order), not an
// output expression of the same name (which would add a Sort).
const ms = (col: string) => `(extract(epoch FROM ${col}) * 1000)::int8 AS ${col.replace(/_at$/, '_ms')}`;

/**
 * The user's sessions live at some moment of [from, to]: created at or before `to`, and not over
 * before `from` (ended, or if not ended its expiry). Newest first. A session not ended has the
 * expiry of its last delivered activity event: up to activityInterval behind the one in Redis
 * until the sweep reads its PTTL (sweepInterval + sweepGrace after that expiry), so a window
 * ending at "now" can miss a session that is live but quiet. Realm $5 only. With `lifetimeBound`,
 * also created at or after $6 (from − the longest a session can live), which bounds the index
 * range a user with a long history is scanned over.
 */
export function historySql(n: AuditNames, lifetimeBound: boolean): string {
  return `SELECT id, user_id, device_name, device_browser, device_os, device_type, ip, country,
      ${ms('created_at')}, ${ms('last_active_at')}, ${ms('expires_at')}, ${ms('ended_at')},
      end_reason, rotations
    FROM ${n.table}
    WHERE realm = $5 AND user_id = $1 AND created_at <= ${ts('$3')}
      ${lifetimeBound ? `AND created_at >= ${ts('$6')}` : ''}
      AND COALESCE(ended_at, expires_at) >= ${ts('$2')}
    ORDER BY created_at DESC, id DESC
    LIMIT $4`;
}

/** Validated history() parameters: [userId, from, to, limit]. ERR_BAD_QUERY (400) for bad input. */
export function historyParams(userId: string, q: HistoryQuery = {}): [string, number, number, number] {
  if (typeof userId !== 'string' || userId === '') throw new ERR_BAD_QUERY('userId must be a non-empty string');
  const time = (name: string, v: unknown, dflt: number) => {
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < -MAX_MS || v > MAX_MS) {
      throw new ERR_BAD_QUERY(`${name} must be a time in epoch milliseconds`);
    }
    return Math.floor(v);
  };
  const from = time('from', q.from, 0);
  const to = time('to', q.to, MAX_MS);
  if (from > to) throw new ERR_BAD_QUERY('from must not be after to');
  const limit = q.limit ?? HISTORY_DEFAULT_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > HISTORY_MAX_LIMIT) {
    throw new ERR_BAD_QUERY(`limit must be an integer from 1 to ${HISTORY_MAX_LIMIT}`);
  }
  return [userId, from, to, limit];
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : v instanceof Date ? v.getTime() : Number(v));
const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

/** A result row of historySql as the API returns it. */
export function historyRow(r: Record<string, unknown>): AuditSessionRow {
  return {
    id: String(r.id),
    userId: String(r.user_id),
    device: { name: str(r.device_name), browser: str(r.device_browser), os: str(r.device_os), type: str(r.device_type) },
    ip: str(r.ip),
    country: str(r.country),
    createdAt: num(r.created_ms),
    lastActiveAt: num(r.last_active_ms),
    expiresAt: num(r.expires_ms),
    endedAt: num(r.ended_ms),
    endReason: str(r.end_reason) as EndReason | null,
    rotations: Number(r.rotations),
  };
}

/**
 * history() without a sink (e.g. the instance serving the route does not consume): the user's
 * sessions live at some moment of [from, to], most recent first. `maxLifetime` (ms, optional):
 * the longest a session can live (the absolute timeout); bounds the scan for users with a long
 * history. Leave it unset if the absolute timeout was ever larger than it is now. Only the rows
 * of `table.keyPrefix`'s realm.
 */
export async function auditHistory(
  pool: AuditPool, table: AuditTableOptions, userId: string, q: HistoryQuery = {}, maxLifetime?: number,
): Promise<AuditSessionRow[]> {
  const n = auditNames(table);
  const params: unknown[] = [...historyParams(userId, q), realmOf(table)];
  // No row holds a user id with NUL (PostgreSQL text cannot, and sign-in refuses one while audit
  // is on): such an id has no history. Stripping the NUL would answer another user's ("a\0b" → "ab").
  if (userId.includes('\0')) return [];
  // Likewise a lone surrogate: pg sends it as U+FFFD ("carol\uD800" would read "carol\uFFFD"'s
  // rows); list() answers such an id with nothing for the same reason.
  if (!isWellFormed(userId)) return [];
  const bound = maxLifetime !== undefined && Number.isFinite(maxLifetime) && maxLifetime > 0;
  if (bound) params.push((params[1] as number) - maxLifetime);
  const res = await pool.query(historySql(n, bound), params);
  return res.rows.map(historyRow);
}
