// What the session manager's parts share (resolving.ts, writing.ts): the options, the store, the
// local cache, the replay, the counters, and a few helpers.
import type { LocalCache } from './local-cache.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { ResolvedOptions } from './options.js';
import type { RevocationReplay } from './replay.js';
import type { RedisStore } from './store/redis-store.js';
import type { UserTags } from './user-tags.js';

export interface SessionParts {
  readonly o: ResolvedOptions;
  readonly store: RedisStore;
  readonly l1: LocalCache;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly replay: RevocationReplay;
  readonly tags: UserTags;
  /** The revocation channel is proven now: the local cache may serve and be filled. */
  readonly trusted: () => boolean;
  /** The manager was closed. */
  readonly closed: () => boolean;
}

/** Epoch milliseconds with sub-millisecond precision: revocation latency is measured in µs. */
export const preciseNow = () => performance.timeOrigin + performance.now();

/**
 * A flat copy of a string. Slices of a request's Cookie header would keep the whole header
 * alive for as long as the L1 entry lives; entries hold copies instead (misses only).
 */
export const own = (s: string) => Buffer.from(s, 'latin1').toString('latin1');

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

/** The idle timeout of a session of this kind. */
export const idleOf = (o: ResolvedOptions, remembered: boolean): number => (remembered ? o.idleTimeout : o.shortSession.idleTimeout);
