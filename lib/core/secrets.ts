// Rotation of `secret`: a user has one tag per listed secret. New sessions take the first
// secret's tag; the others hold the sessions made before a rotation. Each tag keeps its own
// Redis slot, so the caps across tags are planned here, from the tags' listed sessions.
import type { StoredSession } from './store/record.js';

export interface Caps { total: number; type: string; typeCap: number }

/** A listed session of the user: under the new tag (`current`) or under an older one. */
export interface Row { publicId: string; session: StoredSession; current: boolean }

/** The device type: the encoded device's last field (as the create script reads it). */
function typeOf(s: StoredSession): string {
  const d = s.device ?? '';
  return d.slice(d.lastIndexOf('\x1f') + 1);
}

/**
 * The create script's eviction rule (the type's cap first, then the total; least recently
 * active first) applied to the user's sessions under every tag, for one new session. Returns
 * the older tags' sessions to evict, and the caps the create script must apply to the new
 * tag alone so that it evicts exactly the rest: each cap less the older sessions that stay.
 */
export function planCaps(rows: readonly Row[], caps: Caps): { evict: string[]; caps: Caps } {
  const byActivity = (p: Row, q: Row) => p.session.lastActiveAt - q.session.lastActiveAt;
  const gone = new Set<Row>();
  if (caps.typeCap > 0) {
    const ofType = rows.filter((r) => typeOf(r.session) === caps.type).sort(byActivity);
    for (let i = 0; i < ofType.length - caps.typeCap + 1; i++) gone.add(ofType[i]);
  }
  const left = rows.length - gone.size;
  if (caps.total > 0 && left >= caps.total) {
    let n = left - caps.total + 1;
    for (const r of [...rows].sort(byActivity)) {
      if (n === 0) break;
      if (!gone.has(r)) { gone.add(r); n--; }
    }
  }
  const olderKept = rows.filter((r) => !r.current && !gone.has(r));
  return {
    evict: rows.filter((r) => !r.current && gone.has(r)).map((r) => r.publicId),
    caps: {
      total: caps.total > 0 ? caps.total - olderKept.length : 0,
      type: caps.type,
      typeCap: caps.typeCap > 0 ? caps.typeCap - olderKept.filter((r) => typeOf(r.session) === caps.type).length : 0,
    },
  };
}
