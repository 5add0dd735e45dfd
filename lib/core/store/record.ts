// The session hash's fields, in one place: what each one-letter field holds (docs/design.md,
// Redis layout), how a stored hash reads back, and how big a new one is.
import { HASH_LENGTH, ID_LENGTH } from '../token.js';

/** A session as stored in Redis, fields decoded. */
export interface StoredSession {
  userId: string;
  secretHash: string;
  createdAt: number;
  lastActiveAt: number;
  absoluteAt: number;
  expiresAt: number;
  /** False for a session signed in without "remember me" (the short lifetimes apply). */
  remembered: boolean;
  /** When the user last proved their credentials (the sign-in, then each re-authentication). */
  authenticatedAt: number;
  device: string | undefined;
  ip: string | undefined;
  country: string | undefined;
  data: string | undefined;
  /** How often its secret was rotated (0: never). */
  rotations: number;
  /** Signed in from a device the user had not signed in from (knownDevices; field `v`). */
  newDevice: boolean;
}

/** A new session's record, as the create script writes it ('' = field absent). */
export interface NewRecord {
  userId: string;
  secretHash: string;
  absoluteAt: number;
  device: string;
  ip: string;
  country: string;
  data: string;
  remembered: boolean;
}

/** The idle timeouts readers need to compute a session's expiry (it is not stored). */
export interface Idles {
  readonly long: number;
  readonly short: number;
}

/**
 * Decode a session hash. Its expiry is not stored (the key's TTL carries it): it is
 * min(last active + its idle timeout, absolute deadline), as every writer computes it.
 */
export function decodeSession(h: Record<string, string>, idles: Idles): StoredSession | null {
  // A secret hash of any other length is not one this plugin wrote: no session (a pre-warmed
  // entry tells a hash from a secret by length, so a 43-character value must never get there).
  if (!h.u || h.h?.length !== HASH_LENGTH || !h.x) return null;
  const lastActiveAt = Number(h.a);
  const absoluteAt = Number(h.x);
  const remembered = h.r !== '0';
  const createdAt = Number(h.c);
  return {
    userId: h.u,
    secretHash: h.h,
    createdAt,
    lastActiveAt,
    absoluteAt,
    expiresAt: Math.min(lastActiveAt + (remembered ? idles.long : idles.short), absoluteAt),
    remembered,
    authenticatedAt: h.t === undefined ? createdAt : Number(h.t),
    device: h.d,
    ip: h.i,
    country: h.k,
    data: h.j,
    rotations: h.n === undefined ? 0 : Number(h.n),
    newDevice: h.v === '1',
  };
}

export function pairsToObject(a: string[]): Record<string, string> {
  const o: Record<string, string> = Object.create(null);
  for (let i = 0; i + 1 < a.length; i += 2) o[a[i]] = a[i + 1];
  return o;
}

/**
 * Bytes of a new session's hash as the create script writes it: the key
 * `<prefix>{bucket}user random`, then each field present: a one-letter name and its value.
 */
export function recordSize(prefix: string, r: NewRecord, now: number): number {
  let size = prefix.length + 2 + ID_LENGTH;
  const fields = [r.userId, r.secretHash, String(now), String(now), String(r.absoluteAt), r.device, r.ip, r.country, r.data,
    r.remembered ? '' : '0'];
  for (const v of fields) if (v !== '') size += 1 + v.length;
  return size;
}
