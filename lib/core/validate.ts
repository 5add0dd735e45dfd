// The validation helpers every option resolver uses (resolve-options.ts, legacy.ts, the adapters): each
// refusal is a coded ERR_TIERED_SESSION_INVALID_OPTION naming the option.
import { ERR_INVALID_OPTION } from './errors.js';
import type { RedisClient } from './options.js';

export const fail = (name: string, why: string) => new ERR_INVALID_OPTION(name, why);

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function int(name: string, v: unknown, dflt: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw fail(name, `expected an integer from ${min} to ${max}, got ${describe(v)}`);
  }
  return v;
}

export function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  return Array.isArray(v) ? 'an array' : typeof v;
}

export function bool(name: string, v: unknown, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw fail(name, `expected true or false, got ${describe(v)}`);
  return v;
}

/** `undefined` alone means "use the default"; `null` and every other value are validated as given. */
export function orDefault<T>(v: T | undefined, dflt: T): T {
  return v === undefined ? dflt : v;
}

export function isRedisClient(v: unknown): v is RedisClient {
  if (typeof v !== 'object' || v === null) return false;
  const c = v as Record<string, unknown>;
  return typeof c.duplicate === 'function' && typeof c.evalsha === 'function' && typeof c.pipeline === 'function';
}

