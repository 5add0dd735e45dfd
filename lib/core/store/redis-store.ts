import type { Redis, Cluster, ChainableCommander } from 'ioredis';
import { ERR_UNAVAILABLE } from '../errors.js';
import type { RedisClient } from '../options.js';
import { BUCKET_LENGTH, HASH_LENGTH, TAG_LENGTH } from '../token.js';
import { CREATE, TOUCH, REVOKE, REVOKE_ALL, UPDATE, LIST } from './scripts.js';

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
  /** When the user last proved their credentials (the sign-in, then each confirmation). */
  authenticatedAt: number;
  device: string | undefined;
  ip: string | undefined;
  country: string | undefined;
  data: string | undefined;
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

type Cmd = (...args: (string | number)[]) => Promise<unknown>;
interface Scripted {
  tieredSessionCreate: Cmd;
  tieredSessionTouch: Cmd;
  tieredSessionRevoke: Cmd;
  tieredSessionRevokeAll: Cmd;
  tieredSessionUpdate: Cmd;
  tieredSessionList: Cmd;
}

const SCRIPTS: [keyof Scripted, number, string][] = [
  ['tieredSessionCreate', 2, CREATE],
  ['tieredSessionTouch', 2, TOUCH],
  ['tieredSessionRevoke', 2, REVOKE],
  ['tieredSessionRevokeAll', 1, REVOKE_ALL],
  ['tieredSessionUpdate', 1, UPDATE],
  ['tieredSessionList', 1, LIST],
];

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
  };
}

/** Marks a failure after the command was sent (a timeout, a dropped connection): it may still have run. */
const kUnknownOutcome = Symbol('tiered-session.unknownOutcome');

/** Whether a failed write may still have landed (it was sent, and no answer came). */
export function isUnknownOutcome(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as Record<symbol, unknown>)[kUnknownOutcome] === true;
}

function pairsToObject(a: string[]): Record<string, string> {
  const o: Record<string, string> = Object.create(null);
  for (let i = 0; i + 1 < a.length; i += 2) o[a[i]] = a[i + 1];
  return o;
}

/**
 * The Redis model. Every call is bounded by `commandTimeout` and fails fast with a 503-coded
 * error while the client is not connected, so nothing piles up in ioredis's offline queue.
 */
export class RedisStore {
  readonly #client: RedisClient;
  readonly #scripted: Scripted;
  readonly #prefix: string;
  readonly #timeout: number;
  readonly #idles: Idles;
  readonly channel: string;
  readonly isCluster: boolean;

  constructor(client: RedisClient, prefix: string, commandTimeout: number, idles: Idles) {
    this.#client = client;
    this.#prefix = prefix;
    this.#timeout = commandTimeout;
    this.#idles = idles;
    this.channel = `${prefix}revoked`;
    this.isCluster = (client as Cluster).isCluster === true;
    for (const [name, numberOfKeys, lua] of SCRIPTS) {
      if (typeof (client as unknown as Scripted)[name] !== 'function') client.defineCommand(name, { numberOfKeys, lua });
    }
    this.#scripted = client as unknown as Scripted;
  }

  get client(): RedisClient { return this.#client; }

  /**
   * `<prefix>{<bucket>}<user>`: every session key of one user starts with it. The bucket (the
   * tag's first 3 characters) is the Redis hash tag, so all of a user's keys share one slot.
   */
  base(tag: string): string { return `${this.#prefix}{${tag.slice(0, BUCKET_LENGTH)}}${tag.slice(BUCKET_LENGTH)}`; }
  sessionKey(publicId: string): string { return this.base(publicId.slice(0, TAG_LENGTH)) + publicId.slice(TAG_LENGTH); }
  /** `<prefix>{<bucket>}u<user>`: the user's index (shorter than any session key, so never one). */
  indexKey(tag: string): string { return `${this.#prefix}{${tag.slice(0, BUCKET_LENGTH)}}u${tag.slice(BUCKET_LENGTH)}`; }

  /**
   * Run one Redis call under the command timeout; any failure becomes ERR_UNAVAILABLE (cause
   * kept). Nothing is sent while the client is not ready, so nothing piles up; a failure after
   * sending is marked as an unknown outcome (see isUnknownOutcome).
   */
  async #run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.#client.status !== 'ready') throw new ERR_UNAVAILABLE({ cause: new Error(`redis client is ${this.#client.status}`) });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${this.#timeout} ms`)), this.#timeout);
    });
    try {
      return await Promise.race([fn(), timeout]);
    } catch (err) {
      const e = new ERR_UNAVAILABLE({ cause: err });
      // A reply that is an error (NOPERM, OOM, a script error) is a known outcome: nothing was written.
      if (!(err instanceof Error && err.name === 'ReplyError')) Object.defineProperty(e, kUnknownOutcome, { value: true });
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  async read(publicId: string): Promise<StoredSession | null> {
    const h = await this.#run('HGETALL', () => this.#client.hgetall(this.sessionKey(publicId)));
    return decodeSession(h, this.#idles);
  }

  /**
   * Create a session. `caps`: the user's total cap and the cap of the new session's device type
   * (0 = none). Returns the public ids the caps evicted.
   */
  async create(tag: string, random: string, now: number, ttl: number, caps: { total: number; type: string; typeCap: number }, record: NewRecord): Promise<string[]> {
    const base = this.base(tag);
    return (await this.#run('create', () => this.#scripted.tieredSessionCreate(
      `${base}${random}`, this.indexKey(tag), random, now, ttl, caps.total, caps.typeCap, caps.type, this.channel, tag, base,
      record.userId, record.secretHash, record.absoluteAt, record.device, record.ip, record.country, record.data,
      record.remembered ? '' : '0',
    ))) as string[];
  }

  async revoke(publicId: string, owner: string, now: number): Promise<boolean> {
    const tag = publicId.slice(0, TAG_LENGTH);
    const n = await this.#run('revoke', () => this.#scripted.tieredSessionRevoke(
      this.sessionKey(publicId), this.indexKey(tag), publicId.slice(TAG_LENGTH), publicId, owner, this.channel, now,
    ));
    return n === 1;
  }

  async revokeAll(tag: string, owner: string, keepPublicId: string | undefined, now: number): Promise<number> {
    const keep = keepPublicId && keepPublicId.startsWith(tag) ? keepPublicId.slice(TAG_LENGTH) : '';
    return (await this.#run('revokeAll', () => this.#scripted.tieredSessionRevokeAll(
      this.indexKey(tag), this.base(tag), tag, keep, owner, this.channel, now,
    ))) as number;
  }

  async update(publicId: string, field: string, value: string, now: number): Promise<boolean> {
    const n = await this.#run('update', () => this.#scripted.tieredSessionUpdate(
      this.sessionKey(publicId), field, value, publicId, this.channel, now,
    ));
    return n === 1;
  }

  async list(tag: string, now: number): Promise<{ publicId: string; session: StoredSession }[]> {
    const rows = (await this.#run('list', () => this.#scripted.tieredSessionList(this.indexKey(tag), this.base(tag), now))) as [string, string[]][];
    const out: { publicId: string; session: StoredSession }[] = [];
    for (const [random, pairs] of rows) {
      const s = decodeSession(pairsToObject(pairs), this.#idles);
      if (s) out.push({ publicId: tag + random, session: s });
    }
    return out;
  }

  /**
   * Write queued touches. On a single Redis: one pipeline. On a Cluster a pipeline must stay
   * in one slot, so touches go one pipeline per user tag. Returns how many were written.
   */
  async touch(items: { publicId: string; now: number }[]): Promise<number> {
    const groups = new Map<string, { publicId: string; now: number }[]>();
    if (this.isCluster) {
      for (const it of items) {
        const tag = it.publicId.slice(0, TAG_LENGTH);
        const g = groups.get(tag);
        if (g) g.push(it); else groups.set(tag, [it]);
      }
    } else groups.set('', items);
    let written = 0;
    await Promise.all([...groups.values()].map(async (group) => {
      const p = this.#client.pipeline() as ChainableCommander & Record<string, Cmd>;
      for (const { publicId, now } of group) {
        p.tieredSessionTouch(this.sessionKey(publicId), this.indexKey(publicId.slice(0, TAG_LENGTH)), publicId.slice(TAG_LENGTH), now, this.#idles.long, this.#idles.short);
      }
      const res = await this.#run('touch', () => p.exec());
      for (const [err, n] of res ?? []) if (!err && n === 1) written++;
    }));
    return written;
  }

  /** The recently-active set read by pre-warm: one key (one slot), scored by last active. */
  get recentKey(): string { return `${this.#prefix}recent`; }

  /** Record recently active ids for pre-warm, trimmed to `cap` members, expiring after `ttl` ms idle. */
  async noteRecent(items: { publicId: string; now: number }[], cap: number, ttl: number): Promise<void> {
    const args: (string | number)[] = [];
    for (const { publicId, now } of items) args.push(now, publicId);
    await this.#run('recent', () => this.#client.pipeline()
      .zadd(this.recentKey, ...args)
      .zremrangebyrank(this.recentKey, 0, -(cap + 1))
      .pexpire(this.recentKey, ttl)
      .exec());
  }

  /** The `n` most recently active ids, newest first. */
  async recent(n: number): Promise<string[]> {
    return this.#run('recent', () => this.#client.zrevrange(this.recentKey, 0, n - 1));
  }

  /** Read many sessions: one pipeline on a single Redis; on a Cluster ioredis routes each read. */
  async readMany(publicIds: string[]): Promise<(StoredSession | null)[]> {
    if (this.isCluster) {
      return this.#run('HGETALL', () => Promise.all(publicIds.map((id) => this.#client.hgetall(this.sessionKey(id)).then((h) => decodeSession(h, this.#idles)))));
    }
    const p = this.#client.pipeline();
    for (const id of publicIds) p.hgetall(this.sessionKey(id));
    const res = await this.#run('HGETALL', () => p.exec());
    return (res ?? []).map(([err, h]) => (err ? null : decodeSession(h as Record<string, string>, this.#idles)));
  }

  /** Publish on the revocation channel (the channel's heartbeat). */
  async publish(message: string): Promise<void> {
    await this.#run('PUBLISH', () => this.#client.publish(this.channel, message));
  }

  /** PING through the main client (health checks). */
  async ping(): Promise<void> {
    await this.#run('PING', () => (this.#client as Redis).ping());
  }
}
