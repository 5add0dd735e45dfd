import { ERR_DATA_NOT_SERIALIZABLE, ERR_DATA_TOO_LARGE } from './errors.js';
import type { DeviceInfo } from './device.js';

/**
 * The app's own per-session data. Augment it to type `session.data`:
 *
 * ```ts
 * declare module 'tiered-session' {
 *   interface SessionData { role?: 'admin' | 'user' }
 * }
 * ```
 */
export interface SessionData {}

/** The session a request resolved to. Immutable (deeply): change data with the adapter's `updateSession()`. */
export interface Session {
  /** Public id: shown in the device list, used by the revoke route. Not a credential. */
  readonly id: string;
  /** The user the session belongs to: the id the app passed to `signIn()`. */
  readonly userId: string;
  /** The app's data (`SessionData`), deeply frozen: change it with the adapter's `updateSession()`. */
  readonly data: Readonly<SessionData>;
  /** Epoch ms. */
  readonly createdAt: number;
  /** Epoch ms: the session ends then, however active it is. */
  readonly absoluteExpiresAt: number;
  /** False when signed in with `remember: false`: a browser-session cookie and the short lifetimes. */
  readonly remembered: boolean;
  /** Epoch ms: when the user last proved their credentials (the sign-in, then each confirmation). */
  readonly authenticatedAt: number;
  /**
   * Signed in from a device the user had not signed in from within `knownDevices.ttl` (no valid
   * device cookie, or one the user's known devices do not hold). Always false with `knownDevices` off.
   */
  readonly newDevice: boolean;
}

/** One entry of a user's device list. Times are epoch ms. */
export interface SessionInfo {
  /** Public id of the session: what `DELETE /sessions/:id` takes. Not a credential. */
  readonly id: string;
  /** The session's user. */
  readonly userId: string;
  /** The device parsed from the User-Agent at sign-in. */
  readonly device: DeviceInfo;
  /** The client address at sign-in (as the framework reports it: set its trust-proxy option), or null. */
  readonly ip: string | null;
  /** The country from the `countryHeader` at sign-in, or null when none is configured. */
  readonly country: string | null;
  /** When the user signed in (epoch ms). */
  readonly createdAt: number;
  /** The last recorded activity (epoch ms; written at most every `touchInterval`). */
  readonly lastActiveAt: number;
  /** When the session ends unless used again (epoch ms): the idle deadline, capped by the absolute one. */
  readonly expiresAt: number;
  /** False when signed in with `remember: false`. */
  readonly remembered: boolean;
  /** Signed in from a device new to the user (`knownDevices`); false with the option off. */
  readonly newDevice: boolean;
}

/** The data of a session without any: one frozen object, shared. */
export const EMPTY_DATA: Readonly<SessionData> = Object.freeze({});

/** Validate session data as plain JSON and return its serialised form ('' for none). */
export function serialiseData(data: unknown, maxBytes: number): string {
  const check = (v: unknown, path: string, depth: number): void => {
    if (depth > 32) throw new ERR_DATA_NOT_SERIALIZABLE(`${path} is nested too deeply`);
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new ERR_DATA_NOT_SERIALIZABLE(`${path} is ${v}`);
      return;
    }
    if (Array.isArray(v)) { v.forEach((x, i) => check(x, `${path}[${i}]`, depth + 1)); return; }
    if (typeof v === 'object') {
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) throw new ERR_DATA_NOT_SERIALIZABLE(`${path} is a ${proto?.constructor?.name ??
        'non-plain object'}`);
      for (const k of Object.keys(v)) {
        if (k === '__proto__') throw new ERR_DATA_NOT_SERIALIZABLE(`${path} has a "__proto__" key`);
        check((v as Record<string, unknown>)[k], `${path}.${k}`, depth + 1);
      }
      return;
    }
    throw new ERR_DATA_NOT_SERIALIZABLE(`${path} is a ${typeof v}`);
  };
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new ERR_DATA_NOT_SERIALIZABLE('data must be an object');
  }
  check(data, 'data', 0);
  const json = JSON.stringify(data);
  const bytes = Buffer.byteLength(json);
  if (bytes > maxBytes) throw new ERR_DATA_TOO_LARGE(bytes, maxBytes);
  return json === '{}' ? '' : json;
}

/** Freeze a parsed JSON value all the way down: one object is shared by every request that hits L1. */
function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null) {
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
    Object.freeze(v);
  }
  return v;
}

/** Stored data as the app sees it: parsed and deeply frozen. */
export function parseData(json: string | undefined): Readonly<SessionData> {
  if (!json) return EMPTY_DATA;
  try {
    return deepFreeze(JSON.parse(json) as SessionData);
  } catch {
    return EMPTY_DATA;
  }
}

const UNKNOWN_DEVICE: DeviceInfo = Object.freeze({ name: 'Unknown device', browser: null, os: null, type: null });

/** The device record: its four fields joined by \x1f (a control character parseDevice never emits). */
const SEP = '\x1f';
const field = (f: string | null) => (f === null ? '' : f.includes(SEP) ? f.replaceAll(SEP, ' ') : f);
export const encodeDevice = (d: DeviceInfo) => `${field(d.name)}${SEP}${field(d.browser)}${SEP}${field(d.os)}${SEP}${field(d.type)}`;

export function decodeDevice(record: string | undefined): DeviceInfo {
  if (!record) return UNKNOWN_DEVICE;
  const [name, browser, os, type] = record.split(SEP);
  return { name: name || 'Unknown device', browser: browser || null, os: os || null, type: type || null };
}
