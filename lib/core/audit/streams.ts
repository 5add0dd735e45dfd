// The audit's Redis side: the 256 bucket streams `<prefix>{<bucket>}o` the store's scripts append
// to, the consumer group `audit` they create with each stream, the sink's own scripts (acknowledge,
// lease, reap), and the plumbing every Redis call of the sink goes through: refused at once while
// the client is not ready, bounded by the plugin's commandTimeout, and sent as few round trips as
// the topology allows (one pipeline on a single Redis, one per master on a Cluster).
import type { ChainableCommander, Cluster } from 'ioredis';
import type { RedisClient } from '../options.js';
import { BUCKETS, BUCKET_LENGTH } from '../token.js';
import { auditLeaseKey, auditStreamKey } from '../store/keys.js';
import { withTimeout } from '../store/timeout.js';
import type { Logger } from '../log.js';

/** The consumer group every script creates with its audit stream (at id 0). */
export const AUDIT_GROUP = 'audit';

/** Which streams an AuditStreams reads: its group, the key of a bucket's stream, and who it is in log lines. */
export interface StreamKind {
  readonly group: string;
  readonly keyOf: (prefix: string, bucket: string) => string;
  readonly label: string;
}

const AUDIT_KIND: StreamKind = { group: AUDIT_GROUP, keyOf: auditStreamKey, label: 'audit sink' };

/** What the Redis side reports to: an up/down gauge, a logger, a clock. */
export interface StreamsContext {
  readonly metrics: { redisUp: boolean };
  readonly log: Logger;
  readonly now: () => number;
}

/** XACK then XDEL, atomically: an entry is never acknowledged but left in the stream. */
const ACK = `
local n = redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))
redis.call('XDEL', KEYS[1], unpack(ARGV, 2))
return n`;

/** Take or keep the lease: 1 when ARGV[1] holds it for ARGV[2] ms now. */
const LEASE = `
local cur = redis.call('GET', KEYS[1])
if not cur then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * Forget consumers of the group with nothing pending: ARGV[3] ~= '' → only that one (this
 * instance at close); else every other one idle for more than ARGV[2] ms (instances long gone).
 * Atomic, so a consumer cannot receive an entry between the check and its removal (removing a
 * consumer drops its pending entries from the group).
 */
const REAP = `
local cs = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if type(cs) ~= 'table' or cs.err then return 0 end
local removed = 0
for _, c in ipairs(cs) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  local mine = ARGV[3] ~= '' and f['name'] == ARGV[3]
  local stale = ARGV[3] == '' and f['idle'] > tonumber(ARGV[2])
  if f['pending'] == 0 and (mine or stale) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    removed = removed + 1
  end
end
return removed`;

const COMMANDS: [string, number, string][] = [
  ['tieredSessionAuditAck', 1, ACK],
  ['tieredSessionAuditLease', 1, LEASE],
  ['tieredSessionAuditRelease', 1, RELEASE],
  ['tieredSessionAuditReap', 1, REAP],
];

/** The client and its pipelines, seen with the sink's scripts and the stream commands ioredis types loosely. */
export type Loose = Record<string, (...args: (string | number)[]) => unknown>;
/** One command's reply in a pipeline: its error or its value. */
export type Reply = [Error | null, unknown];

export const isNoGroup = (err: unknown) => err instanceof Error && err.message.startsWith('NOGROUP');

/** One bucket stream, as this consumer last saw it. */
export interface StreamState {
  readonly bucket: string;
  readonly key: string;
  readonly slot: number;
  /** '0': this consumer's pending entries come first; '>': new entries. */
  cursor: '0' | '>';
  /** The last read said NOGROUP: the stream does not exist (or lost its group). */
  absent: boolean;
  /** XAUTOCLAIM's cursor. */
  claimCursor: string;
}

/** A Redis failure of the sink's own (the client's status, a timeout, a reply error). */
class RedisCallError extends Error {
  constructor(what: string, cause: unknown) {
    super(`redis ${what}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

export class AuditStreams {
  /** Every bucket's stream, bucket i at slot i × 64. */
  readonly all: StreamState[];
  readonly #client: RedisClient;
  readonly #loose: Loose;
  readonly #prefix: string;
  readonly #timeout: number;
  readonly #isCluster: boolean;
  readonly #c: StreamsContext;
  readonly #kind: StreamKind;
  readonly #slotOfBucket = new Map<string, number>();
  /** The client was ready once: a client not ready after that is an outage, not a start. */
  everReady = false;
  #downSince = 0;

  constructor(c: StreamsContext, client: RedisClient, prefix: string, commandTimeout: number, kind: StreamKind = AUDIT_KIND) {
    this.#c = c;
    this.#kind = kind;
    this.#client = client;
    this.#loose = client as unknown as Loose;
    this.#prefix = prefix;
    this.#timeout = commandTimeout;
    this.#isCluster = (client as Cluster).isCluster === true;
    this.all = BUCKETS.map((bucket, i) => {
      this.#slotOfBucket.set(bucket, i * 64);
      return { bucket, key: kind.keyOf(prefix, bucket), slot: i * 64, cursor: '0' as const, absent: false, claimCursor: '0-0' };
    });
    for (const [name, numberOfKeys, lua] of COMMANDS) {
      if (typeof this.#loose[name] !== 'function') client.defineCommand(name, { numberOfKeys, lua });
    }
  }

  /** The consumer group these streams are read through. */
  get group(): string { return this.#kind.group; }

  get ready(): boolean { return this.#client.status === 'ready'; }

  /** The slot of a session id's bucket (its stream's slot). */
  slotOf(publicId: string): number { return this.#slotOfBucket.get(publicId.slice(0, BUCKET_LENGTH)) ?? 0; }

  /** One Redis call under commandTimeout, refused at once while the client is not ready. */
  async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.#client.status !== 'ready') throw new RedisCallError(what, new Error(`client is ${this.#client.status}`));
    this.everReady = true;
    try {
      return await withTimeout(fn(), this.#timeout, what);
    } catch (err) {
      throw err instanceof RedisCallError ? err : new RedisCallError(what, err);
    }
  }

  /**
   * One command per item, as few round trips as the topology allows: one pipeline on a single
   * Redis; on a Cluster one pipeline per master (items grouped by the node serving their slot;
   * ioredis requires a pipeline's keys to share a node). The whole call is bounded by
   * commandTimeout; a pipeline that fails or times out answers its error for each of its items.
   */
  async perSlot<T extends { slot: number }>(
    what: string, items: T[], add: (p: ChainableCommander, item: T) => void): Promise<Map<T, Reply>>;
  async perSlot<T extends { slot: number }>(
    what: string, items: T[], add: (p: ChainableCommander, item: T) => void, per: number): Promise<Map<T, Reply[]>>;
  async perSlot<T extends { slot: number }>(
    what: string, items: T[], add: (p: ChainableCommander, item: T) => void, per?: number): Promise<Map<T, Reply | Reply[]>> {
    const out = new Map<T, Reply | Reply[]>();
    const k = per ?? 1;
    if (items.length === 0) return out;
    const groups = new Map<string, T[]>();
    if (!this.#isCluster) groups.set('', items);
    else {
      const slots = (this.#client as unknown as { slots?: string[][] }).slots;
      for (const it of items) {
        const node = slots?.[it.slot]?.join(';') ?? `?${it.slot}`;
        const g = groups.get(node);
        if (g) g.push(it); else groups.set(node, [it]);
      }
    }
    const one = (res: Reply[] | null | undefined, i: number): Reply => res?.[i] ?? [new Error('no reply'), null];
    await Promise.all([...groups.values()].map(async (group) => {
      let res: Reply[] | null | undefined;
      try {
        res = (await this.call(what, () => {
          const p = this.#client.pipeline();
          for (const it of group) add(p, it);
          return p.exec();
        })) as Reply[] | null;
      } catch (err) {
        res = group.flatMap(() => Array.from({ length: k }, (): Reply => [err as Error, null]));
      }
      group.forEach((it, i) => {
        out.set(it, per === undefined ? one(res, i) : Array.from({ length: k }, (_, j) => one(res, i * k + j)));
      });
    }));
    return out;
  }

  /** Acknowledge and delete entries, one script call per stream. */
  ack(per: Map<StreamState, { ids: string[] }>): Promise<Map<StreamState, Reply>> {
    return this.perSlot('XACK', [...per.keys()], (p, st) => {
      (p as unknown as Loose).tieredSessionAuditAck(st.key, this.#kind.group, ...per.get(st)!.ids);
    });
  }

  /** Take the sweep lease, or keep it if `holder` has it: answers whether `holder` holds it now. */
  async lease(holder: string, ttl: number): Promise<boolean> {
    const got = await this.call('lease', () =>
      this.#loose.tieredSessionAuditLease(auditLeaseKey(this.#prefix), holder, ttl) as Promise<number>);
    return got === 1;
  }

  async release(holder: string): Promise<void> {
    await this.call('lease release', () => this.#loose.tieredSessionAuditRelease(auditLeaseKey(this.#prefix), holder) as Promise<unknown>);
  }

  /** Forget consumers with nothing pending: `only` (this instance, at close), or else every one idle longer than `idle` ms. */
  async reap(idle: number, only: string): Promise<void> {
    await this.perSlot('reap', this.all.filter((s) => !s.absent), (p, st) => {
      (p as unknown as Loose).tieredSessionAuditReap(st.key, this.#kind.group, idle, only);
    });
  }

  /** Record a Redis failure (logged once per outage); answers it, to be thrown. */
  down(err: unknown): unknown {
    this.#c.metrics.redisUp = false;
    if (this.#downSince === 0) {
      this.#downSince = this.#c.now();
      this.#c.log.error({ err }, `tiered-session: ${this.#kind.label}: Redis unavailable; retrying with backoff`);
    }
    return err;
  }

  up(): void {
    this.#c.metrics.redisUp = true;
    if (this.#downSince !== 0) {
      this.#c.log.info({ downMs: this.#c.now() - this.#downSince }, `tiered-session: ${this.#kind.label}: Redis reachable again`);
      this.#downSince = 0;
    }
  }
}
