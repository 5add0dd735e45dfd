// Audit events: what the Lua scripts append to the per-bucket streams, parsed and merged.
//
// A stream entry's fields (all strings; times are epoch ms in decimal):
//   t  type: c created, a activity, r rotated, e ended
//   s  public id (38 chars)   u  user id   w  when (the change's time)
//   c: d device record (name \x1f browser \x1f os \x1f type, '' = null), i ip ('' = none),
//      k country ('' = none), x absolute deadline, p current expiry, v '1' signed in from a new
//      device (knownDevices; absent otherwise: not stored in the table)
//   a: a last active, p current expiry
//   r: n the session's rotation count after this rotation (1, 2, …)
//   e: y reason: sign-out | revoked | everywhere | cap | replaced
import { isPublicId } from '../token.js';
import { DEFAULT_REALM, auditNames, upsertSql, upsertParams, type AuditPool, type AuditTableOptions, type ExplicitEndReason,
  type SessionDelta } from './sql.js';


export type AuditEvent =
  | { t: 'c'; s: string; u: string; w: number; device: [string | null, string | null, string | null,
    string | null]; ip: string | null; country: string | null; x: number; p: number }
  | { t: 'a'; s: string; u: string; w: number; a: number; p: number }
  | { t: 'r'; s: string; u: string; w: number; n: number }
  | { t: 'e'; s: string; u: string; w: number; y: ExplicitEndReason };

const REASONS: ReadonlySet<string> = new Set(['sign-out', 'revoked', 'everywhere', 'cap', 'replaced']);
/** Latest epoch ms a JavaScript Date holds; inside timestamptz's range too. */
const MAX_MS = 8.64e15;
/** Text fields longer than this are cut (the device record's fields are at most 80 characters). */
const TEXT_MAX = 512;

function time(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d{1,16}$/.test(v)) return undefined;
  const n = Number(v);
  return n <= MAX_MS ? n : undefined;
}

// PostgreSQL text cannot hold NUL: drop it (and cap the length) so no value can fail a batch.
function text(v: string | undefined): string | null {
  if (v === undefined || v === '') return null;
  const clean = v.includes('\0') ? v.replaceAll('\0', '') : v;
  return clean === '' ? null : clean.length > TEXT_MAX ? clean.slice(0, TEXT_MAX) : clean;
}

/**
 * Parse one stream entry (its field/value list as XREADGROUP returns it). Answers null for an
 * entry that is not a well-formed event: it is acknowledged and counted, never applied (one bad
 * entry must not block its stream).
 */
export function parseEvent(fields: readonly string[] | null | undefined): AuditEvent | null {
  if (!fields) return null;
  const f: Record<string, string> = Object.create(null);
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]] = fields[i + 1];
  const s = f.s;
  const u = text(f.u);
  const w = time(f.w);
  if (!isPublicId(s) || u === null || w === undefined) return null;
  switch (f.t) {
    case 'c': {
      const x = time(f.x);
      const p = time(f.p);
      if (x === undefined || p === undefined) return null;
      const [name, browser, os, type] = (f.d ?? '').split('\x1f');
      return { t: 'c', s, u, w, device: [text(name), text(browser), text(os), text(type)], ip: text(f.i), country: text(f.k), x, p };
    }
    case 'a': {
      const a = time(f.a);
      const p = time(f.p);
      if (a === undefined || p === undefined) return null;
      return { t: 'a', s, u, w, a, p };
    }
    case 'r': {
      const n = f.n !== undefined && /^\d{1,9}$/.test(f.n) ? Number(f.n) : 0;
      if (n < 1) return null;
      return { t: 'r', s, u, w, n };
    }
    case 'e': {
      if (!REASONS.has(f.y)) return null;
      return { t: 'e', s, u, w, y: f.y as ExplicitEndReason };
    }
    default:
      return null;
  }
}

const max = (a: number | null, b: number | null) => (a === null ? b : b === null ? a : Math.max(a, b));
const min = (a: number | null, b: number | null) => (a === null ? b : b === null ? a : Math.min(a, b));

function emptyDelta(e: AuditEvent): SessionDelta {
  return {
    id: e.s, userId: e.u,
    deviceName: null, deviceBrowser: null, deviceOs: null, deviceType: null, ip: null, country: null,
    createdAt: null, lastActiveAt: null, expiresAt: null, absoluteExpiresAt: null,
    endedAt: null, endReason: null, rotations: 0,
  };
}

/** Fold one event into a session's delta (the same rules as the SQL merge, see upsertSql). */
export function mergeEvent(d: SessionDelta, e: AuditEvent): void {
  switch (e.t) {
    case 'c':
      // Set once: of two creation events (there is one per session; a duplicate is identical)
      // the earliest wins, so the result does not depend on their order.
      if (d.createdAt === null || e.w < d.createdAt) {
        [d.deviceName, d.deviceBrowser, d.deviceOs, d.deviceType] = e.device;
        d.ip = e.ip;
        d.country = e.country;
        d.absoluteExpiresAt = e.x;
      }
      d.createdAt = min(d.createdAt, e.w);
      d.lastActiveAt = max(d.lastActiveAt, e.w);
      d.expiresAt = max(d.expiresAt, e.p);
      break;
    case 'a':
      d.lastActiveAt = max(d.lastActiveAt, e.a);
      d.expiresAt = max(d.expiresAt, e.p);
      break;
    case 'r':
      d.rotations = Math.max(d.rotations, e.n);
      break;
    case 'e':
      if (d.endedAt === null || e.w < d.endedAt || (e.w === d.endedAt && e.y < d.endReason!)) {
        d.endedAt = e.w;
        d.endReason = e.y;
      }
      break;
  }
}

/** Merge a batch of events into one delta per session. */
export function mergeEvents(events: Iterable<AuditEvent>): SessionDelta[] {
  const by = new Map<string, SessionDelta>();
  for (const e of events) {
    let d = by.get(e.s);
    if (d === undefined) by.set(e.s, (d = emptyDelta(e)));
    mergeEvent(d, e);
  }
  return [...by.values()];
}

/**
 * Apply events straight to the table (one upsert statement), without the streams: for tools,
 * backfills and tests. The sink does the same inside its batch transaction.
 */
export async function applyEvents(pool: AuditPool, table: AuditTableOptions, events: Iterable<AuditEvent>): Promise<number> {
  const deltas = mergeEvents(events);
  if (deltas.length === 0) return 0;
  return (await pool.query(upsertSql(auditNames(table)), upsertParams(deltas, table.keyPrefix ?? DEFAULT_REALM))).rowCount ?? 0;
}
