import type { Redis, Cluster, ChainableCommander } from 'ioredis';
import { ERR_NOT_CONFIRMED } from '../errors.js';
import type { RedisClient } from '../options.js';
import { BUCKET_LENGTH, TAG_LENGTH } from '../token.js';
import { decodeSession, pairsToObject, recordSize, type Idles, type NewRecord, type StoredSession } from './record.js';
import {
  auditStreamKey, channelName, eventStreamKey, indexKey, knownDevicesKey, legacyClaimKey, recentKey, sessionKey, stashKey,
  userBase,
} from './keys.js';
import { boundedCall, type RedisObserver } from './call.js';

import type { ExplicitEndReason } from '../audit/sql.js';
import type { StreamBuffer } from '../audit/trail.js';
import { thenWait, type Acknowledgement, type AckRequirement, type Cmd, type WaitedScript } from './acknowledgement.js';
import { CREATE, TOUCH, REVOKE, REVOKE_ALL, UPDATE, LIST, READ, UNCREATE, PRESENT } from './scripts.js';

interface Scripted {
  tieredSessionCreate: Cmd;
  tieredSessionTouch: Cmd;
  tieredSessionRevoke: Cmd;
  tieredSessionRevokeAll: Cmd;
  tieredSessionUpdate: Cmd;
  tieredSessionList: Cmd;
  tieredSessionRead: Cmd;
  tieredSessionUncreate: Cmd;
  tieredSessionPresent: Cmd;
}

const SCRIPTS: [keyof Scripted, number, string][] = [
  ['tieredSessionCreate', 3, CREATE],
  ['tieredSessionTouch', 2, TOUCH],
  ['tieredSessionRevoke', 2, REVOKE],
  ['tieredSessionRevokeAll', 1, REVOKE_ALL],
  ['tieredSessionUpdate', 1, UPDATE],
  ['tieredSessionList', 1, LIST],
  ['tieredSessionRead', 1, READ],
  ['tieredSessionUncreate', 2, UNCREATE],
  ['tieredSessionPresent', 1, PRESENT],
];

/** Each script as a WAIT follows it: its body, sent by thenWait itself (never ioredis's defined command). */
const WAITED = Object.fromEntries(SCRIPTS.map(([name, keys, lua]) => [name, { lua, keys }])) as Record<keyof Scripted, WaitedScript>;

/** A sign-in's device for the create script (knownDevices on). */
export interface KnownDevice {
  /** The hash of the device id. */
  readonly member: string;
  readonly max: number;
  readonly ttl: number;
  /** Known already (under an older secret's tag, or a takeover): never marked new. */
  readonly known: boolean;
}

/**
 * The Redis model. Every call is bounded by `commandTimeout` and fails fast with a 503-coded
 * error while the client is not connected, so nothing piles up in ioredis's offline queue.
 */
export class RedisStore {
  readonly #client: RedisClient;
  /** Where session reads go: a nearby replica (`readFrom`), or the client itself. */
  readonly #reader: RedisClient;
  /** Reads may be served by a replica (readFrom, or a Cluster with scaleReads), which can lag. */
  readonly replicaReads: boolean;
  readonly #scripted: Scripted;
  /**
   * Revocations wait for this many replicas (at most `timeout` ms) before they count as done;
   * undefined: no acknowledgement. Set by the manager (it decides 'auto' from the topology).
   */
  acknowledgedBy: AckRequirement | undefined;
  /** confirmRevocations 'auto': read again before a revocation while replication is unknown. */
  acknowledgement: Acknowledgement | undefined;
  /** The audit's and the event feed's streams: which are on, per-stream length cap, TTL, activity interval (ms); undefined: both off. */
  readonly #audit: StreamBuffer | undefined;
  readonly #prefix: string;
  readonly #timeout: number;
  readonly #idles: Idles;
  readonly channel: string;
  readonly isCluster: boolean;
  /** Times the calls (metrics, spans); set by the manager. */
  observer: RedisObserver | undefined;

  constructor(client: RedisClient, prefix: string, commandTimeout: number, idles: Idles, readFrom?: RedisClient,
    audit?: StreamBuffer) {
    this.#client = client;
    this.#audit = audit;
    this.#reader = readFrom ?? client;
    const scaleReads = (client as Cluster).isCluster ? (client as Cluster).options.scaleReads : 'master';
    this.replicaReads = readFrom !== undefined || (scaleReads !== undefined && scaleReads !== 'master');
    this.#prefix = prefix;
    this.#timeout = commandTimeout;
    this.#idles = idles;
    this.channel = channelName(prefix);
    this.isCluster = (client as Cluster).isCluster === true;
    for (const [name, numberOfKeys, lua] of SCRIPTS) {
      if (typeof (client as unknown as Scripted)[name] !== 'function') client.defineCommand(name, { numberOfKeys, lua });
      if (readFrom !== undefined && typeof (readFrom as unknown as Scripted)[name] !== 'function') readFrom.defineCommand(name,
        { numberOfKeys, lua });
    }
    this.#scripted = client as unknown as Scripted;
  }

  get client(): RedisClient { return this.#client; }

  /** `<prefix>{<bucket>}<user>`: every session key of one user starts with it (keys.ts). */
  base(tag: string): string { return userBase(this.#prefix, tag); }
  sessionKey(publicId: string): string { return sessionKey(this.#prefix, publicId); }
  /** `<prefix>{<bucket>}o`: the audit buffer of the bucket of `tagOrId` (a tag or a public id). */
  auditStream(tagOrId: string): string { return auditStreamKey(this.#prefix, tagOrId); }

  /** The scripts' trailing argument for a user's bucket: the event stream, the audit stream ('' = off), cap, TTL, joined by '|'. */
  #auditArg(tagOrId: string): string {
    const a = this.#audit;
    if (a === undefined) return '|||';
    return `${a.events ? eventStreamKey(this.#prefix, tagOrId) : ''}|${a.audit ? this.auditStream(tagOrId) : ''}|${a.cap}|${a.ttl}`;
  }

  /** `<prefix>{<bucket>}u<user>`: the user's index. */
  indexKey(tag: string): string { return indexKey(this.#prefix, tag); }

  /** One call under the command timeout (call.ts): ERR_UNAVAILABLE on any failure, never queued while not ready. */
  #run<T>(what: string, fn: () => Promise<T>, client: RedisClient = this.#client): Promise<T> {
    return boundedCall(client, this.#timeout, this.observer, what, fn);
  }

  /**
   * Read one session: from the reader (a replica, where reads go to replicas), or with `primary`
   * from the primary itself: a replica may not have a change the instance already heard of.
   */
  async read(publicId: string, primary = false): Promise<StoredSession | null> {
    const key = this.sessionKey(publicId);
    let h: Record<string, string>;
    if (!primary || !this.replicaReads) h = await this.#run('HGETALL', () => this.#reader.hgetall(key), this.#reader);
    else if (this.#reader !== this.#client) h = await this.#run('HGETALL', () => this.#client.hgetall(key));
    // A Cluster with scaleReads sends HGETALL to replicas; a script always runs on the master.
    else h = pairsToObject(await this.#run('read', () => this.#scripted.tieredSessionRead(key)) as string[]);
    return decodeSession(h, this.#idles);
  }

  /**
   * Run a script; when revocations are acknowledged, sent with its body (EVAL, never by SHA:
   * thenWait says why) and pipelined with WAIT on the same connection (the script's node). The
   * change is applied either way; when fewer replicas than required acknowledge it in time,
   * throws ERR_NOT_CONFIRMED carrying the script's result as `applied`.
   */
  async #revoking(what: string, name: keyof Scripted, args: (string | number)[], acknowledge = true): Promise<unknown> {
    if (acknowledge) await this.#decided();
    const c = acknowledge ? this.acknowledgedBy : undefined;
    if (c === undefined) return this.#run(what, () => this.#scripted[name](...args));
    const [applied, acked] = await this.#run(what, () => thenWait(this.#client, WAITED[name], args, c));
    if (acked < c.replicas) throw Object.assign(new ERR_NOT_CONFIRMED(), { applied, acked });
    return applied;
  }

  /** `<prefix>legacy:<name>` set if absent, for `ms`: true for the first caller only. */
  async claim(name: string, ms: number): Promise<boolean> {
    return (await this.#run('SET', () => this.#client.set(legacyClaimKey(this.#prefix, name), '1', 'PX', ms, 'NX'))) === 'OK';
  }

  /** Undo a create its caller gave up on: the session goes, what its cap eviction removed comes back. */
  async uncreate(publicId: string, now: number, at = now): Promise<boolean> {
    const tag = publicId.slice(0, TAG_LENGTH);
    const n = await this.#run('uncreate', () => this.#scripted.tieredSessionUncreate(
      this.sessionKey(publicId), this.indexKey(tag), publicId.slice(TAG_LENGTH), publicId, this.channel, now, this.base(tag), at,
      this.#auditArg(publicId),
    ));
    return n === 1;
  }

  /** Drop what a create's eviction kept for an undo, once the create is acknowledged. */
  async dropStash(publicId: string): Promise<void> {
    await this.#run('DEL', () => this.#client.del(stashKey(this.#prefix, publicId)));
  }

  /**
   * WAIT for the replicas on the node of `publicId`'s slot (after a create that evicted sessions).
   * The WAIT follows a write of its own on the same connection (PRESENT): WAIT counts the
   * connection's last write, and a connection that wrote nothing yet (one to a newly promoted
   * master, after a failover) would be confirmed at once, whatever that node holds. A node without
   * the new session lost the create, and its evictions with it: not confirmed.
   */
  async acknowledgeOn(publicId: string): Promise<void> {
    await this.#decided();
    const c = this.acknowledgedBy;
    if (c === undefined) return;
    const key = this.sessionKey(publicId);
    const [present, acked] = await this.#run('WAIT', () => thenWait(this.#client, WAITED.tieredSessionPresent, [key], c));
    if (present !== 1 || acked < c.replicas) throw Object.assign(new ERR_NOT_CONFIRMED(), { acked });
  }

  /** Replication not read yet (or the last read failed): read it now, so the decision precedes the answer. */
  async #decided(): Promise<void> {
    if (this.acknowledgement?.state === 'unknown') await this.acknowledgement.refresh();
  }

  /**
   * Create a session. `caps`: the user's total cap and the cap of the new session's device type
   * (0 = none). `device` (knownDevices on): the member of the user's known devices, how many the
   * set keeps, its TTL, and whether the device is known already (elsewhere). Returns the public
   * ids the caps evicted and whether the device was new, or null when `refuse` is set and the
   * user is at a cap (nothing was written).
   */
  async create(tag: string, random: string, now: number, ttl: number, caps: { total: number; type: string; typeCap: number },
    record: NewRecord, refuse = false, device?: KnownDevice): Promise<{ evicted: string[]; newDevice: boolean } | null> {
    const base = this.base(tag);
    const out = await this.#run('create', () => this.#scripted.tieredSessionCreate(
      `${base}${random}`, this.indexKey(tag), knownDevicesKey(this.#prefix, tag),
      `${random}|${now}|${ttl}|${caps.total}|${caps.typeCap}|${caps.typeCap > 0 ? caps.type : ''}|${this.channel}|${tag}|${base}|` +
      `${record.secretHash}|${record.absoluteAt}|${record.remembered ? '' : '0'}|${refuse ? 'refuse' : ''}|` +
      (device === undefined ? '|0|0|' : `${device.member}|${device.max}|${device.ttl}|${device.known ? '1' : ''}`),
      record.userId, record.device, record.ip, record.country, record.data, this.#auditArg(tag),
    ));
    if (out === -1) return null;
    const [flag, ...evicted] = out as string[];
    return { evicted, newDevice: flag === '1' };
  }

  /** `<prefix>{<bucket>}k<user>`: the user's known devices under one tag. */
  knownDevicesKey(tag: string): string { return knownDevicesKey(this.#prefix, tag); }

  /** Whether `member` is among the devices known under `tag` (an older secret's), seen within `ttl` ms of `now`. */
  async knownUnder(tag: string, member: string, now: number, ttl: number): Promise<boolean> {
    const score = await this.#run('ZSCORE', () => this.#client.zscore(this.knownDevicesKey(tag), member));
    return score !== null && Number(score) > now - ttl;
  }

  /**
   * Revoke one session; `reason` is what the audit trail records (sign-out, revoked, replaced).
   * `now` is the broadcast's send time (revocation latency); `at` the change's time by the
   * app's clock, which the audit trail records (default `now`). With `secretHash`, only the
   * session that secret opens (a revocation by token), checked on the primary.
   */
  async revoke(publicId: string, owner: string, now: number, reason: ExplicitEndReason = 'revoked', at = now, secretHash = '',
    acknowledge = true): Promise<boolean> {
    const tag = publicId.slice(0, TAG_LENGTH);
    const n = await this.#revoking('revoke', 'tieredSessionRevoke', [
      this.sessionKey(publicId), this.indexKey(tag), publicId.slice(TAG_LENGTH), publicId, owner, this.channel, now, reason, at,
      secretHash, this.#auditArg(publicId),
    ], acknowledge);
    return n === 1;
  }

  /** Revoke every session of a user but `keepPublicId`; `now` and `at` as for revoke(). */
  async revokeAll(tag: string, owner: string, keepPublicId: string | undefined, now: number, at = now): Promise<string[]> {
    const keep = keepPublicId && keepPublicId.startsWith(tag) ? keepPublicId.slice(TAG_LENGTH) : '';
    return (await this.#revoking('revokeAll', 'tieredSessionRevokeAll', [
      this.indexKey(tag), this.base(tag), tag, keep, owner, this.channel, now, at, '', this.#auditArg(tag),
    ])) as string[];
  }

  /** End every session in the user index `key` (one found by {@link indexKeys}), whoever it belongs to. */
  async revokeIndex(key: string, now: number, at = now): Promise<string[]> {
    // `<prefix>{<bucket>}u<rest of the tag>`: the tag is the bucket and the rest.
    const open = this.#prefix.length;
    const tag = key.slice(open + 1, open + 1 + BUCKET_LENGTH) + key.slice(open + BUCKET_LENGTH + 3);
    return (await this.#revoking('revokeAll', 'tieredSessionRevokeAll', [
      key, this.base(tag), tag, '', '', this.channel, now, at, '1', this.#auditArg(tag),
    ])) as string[];
  }

  /**
   * Every user index under this prefix, a batch per SCAN reply, on every master of a Cluster.
   * The pattern matches index keys only: a session key, a stash and an audit stream are longer
   * or shorter after the bucket.
   */
  async *indexKeys(): AsyncGenerator<string[]> {
    const match = `${this.#prefix}{${'?'.repeat(BUCKET_LENGTH)}}u${'?'.repeat(TAG_LENGTH - BUCKET_LENGTH)}`;
    const c = this.#client as Cluster;
    const nodes: (Redis | Cluster)[] = c.isCluster === true ? c.nodes('master') : [this.#client];
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await this.#run('scan', () => node.scan(cursor, 'MATCH', match, 'COUNT', 1000));
        cursor = next;
        if (keys.length > 0) yield keys;
      } while (cursor !== '0');
    }
  }

  /** Replace a live session's data (JSON); false when it is gone. `now` and `at` as for revoke(). */
  setData(publicId: string, json: string, now: number, at = now): Promise<boolean> {
    return this.update(publicId, 'j', json, now, at);
  }

  /** Bytes of a new session's hash (record.ts). */
  sizeOf(r: NewRecord, now: number): number { return recordSize(this.#prefix, r, now); }

  /** Set one field of a live session (never recreating it); `now` and `at` as for revoke(). */
  async update(publicId: string, field: 'j', value: string, now: number, at = now): Promise<boolean> {
    const n = await this.#revoking('update', 'tieredSessionUpdate', [
      this.sessionKey(publicId), field, value, publicId, this.channel, now, at, '', this.#auditArg(publicId),
    ], false);
    return n === 1;
  }

  /**
   * Give a live session a new secret hash, acknowledged by replicas like a revocation (the old
   * token must not come back). Answers the session's rotation count after it, 0 when the session
   * is gone. `replayOf` (a count this rotation made before) applies it again only where that
   * count was lost, unacknowledged. `authenticatedAt` (a re-authentication) is set in the same
   * step as the new hash.
   */
  async rotate(publicId: string, secretHash: string, now: number, at = now, replayOf?: number, authenticatedAt?: number): Promise<number> {
    const value = authenticatedAt === undefined ? secretHash : `${secretHash}:${authenticatedAt}`;
    return Number(await this.#revoking('rotate', 'tieredSessionUpdate', [
      this.sessionKey(publicId), 'h', value, publicId, this.channel, now, at, replayOf ?? '', this.#auditArg(publicId),
    ], replayOf === undefined));
  }

  async list(tag: string, now: number): Promise<{ publicId: string; session: StoredSession }[]> {
    const rows = (await this.#run('list', () => this.#scripted.tieredSessionList(this.indexKey(tag), this.base(tag), now))) as [string,
      string[]][];
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
        p.tieredSessionTouch(this.sessionKey(publicId), this.indexKey(publicId.slice(0, TAG_LENGTH)), publicId.slice(TAG_LENGTH), now,
          this.#idles.long, this.#idles.short, publicId, this.#audit?.activity ?? 0, this.#auditArg(publicId));
      }
      const res = await this.#run('touch', () => p.exec());
      for (const [err, n] of res ?? []) if (!err && n === 1) written++;
    }));
    return written;
  }

  /** The recently-active set read by pre-warm: one key (one slot), scored by last active. */
  get recentKey(): string { return recentKey(this.#prefix); }

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

  /**
   * Read many sessions: one pipeline on a single Redis; on a Cluster ioredis routes each read.
   * Ids for which `primary` holds are read from the primary, as read() does with `primary`.
   */
  async readMany(publicIds: string[], primary: (publicId: string) => boolean = () => false): Promise<(StoredSession | null)[]> {
    if (!this.replicaReads) return this.#readMany(publicIds, this.#reader);
    const near: string[] = [];
    const out = await Promise.all(publicIds.map((id) => {
      if (primary(id)) return this.read(id, true).catch(() => null);
      near.push(id);
      return undefined;
    }));
    const got = await this.#readMany(near, this.#reader);
    let k = 0;
    return out.map((s) => (s === undefined ? got[k++] : s));
  }

  async #readMany(publicIds: string[], reader: RedisClient): Promise<(StoredSession | null)[]> {
    if (publicIds.length === 0) return [];
    if ((reader as Cluster).isCluster) {
      return this.#run('HGETALL', () =>
        Promise.all(publicIds.map((id) => reader.hgetall(this.sessionKey(id)).then((h) => decodeSession(h, this.#idles)))), reader);
    }
    const p = reader.pipeline();
    for (const id of publicIds) p.hgetall(this.sessionKey(id));
    const res = await this.#run('HGETALL', () => p.exec(), reader);
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
