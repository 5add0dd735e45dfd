// Writing: every change to sessions. Create (with the caps across a user's tags, and the undo of a
// create whose outcome is unknown), revoke one, revoke by token, revoke all, rotate, update the
// data, re-authenticate. Each write that ends a session is acknowledged by replicas where that is
// on, and drops the ids from this instance's local cache at once.
import { isIP } from 'node:net';
import type { DeviceInfo } from './device.js';
import { ERR_BAD_USER_ID, ERR_NOT_CONFIRMED, ERR_NOT_FOUND, ERR_SESSION_LIMIT } from './errors.js';
import type { LocalCache } from './local-cache.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { ResolvedOptions } from './options.js';
import type { RevocationReplay } from './replay.js';
import type { Resolving } from './resolving.js';
import { planCaps, type Caps, type Row } from './secrets.js';
import { encodeDevice, parseData, serialiseData, type Session, type SessionData } from './session-data.js';
import { idleOf, preciseNow, sleep, type SessionParts } from './session-parts.js';
import type { ExplicitEndReason } from './audit/sql.js';
import type { NewRecord } from './store/record.js';
import { isUnknownOutcome } from './store/call.js';
import type { KnownDevice, RedisStore } from './store/redis-store.js';
import type { UserTags } from './user-tags.js';
import { ID_LENGTH, hashSecret, isPublicId, isTokenShape, isWellFormed, newRandomAndSecret, newSecret } from './token.js';

export interface CreateInput {
  device: DeviceInfo;
  ip?: string | null;
  country?: string | null;
  data?: SessionData;
  /** false: the short lifetimes (a browser-session cookie). @default true */
  remember?: boolean;
  /**
   * With knownDevices on: the sign-in's device, as the member of the user's known devices (the
   * hash of its id), and `known` to count it as known whatever the set says (a takeover).
   */
  knownDevice?: { readonly member: string; readonly known?: boolean };
}

export class Writing {
  readonly metrics: Metrics;
  readonly #o: ResolvedOptions;
  readonly #tags: UserTags;
  readonly #store: RedisStore;
  readonly #replay: RevocationReplay;
  readonly #l1: LocalCache;
  /** For the pre-warm's recent set (a new session is recent). */
  readonly #resolving: Resolving;
  readonly #log: Logger;
  readonly #closed: () => boolean;
  /** Ids of creates whose outcome is unknown (timed out after sending): revoked once Redis answers. */
  readonly #orphans = new Set<string>();
  /** Replicas did not acknowledge the last revocation (logged once per change). */
  #unacknowledged = false;

  constructor(p: SessionParts, resolving: Resolving) {
    ({ o: this.#o, store: this.#store, l1: this.#l1, log: this.#log, replay: this.#replay, tags: this.#tags, closed: this.#closed } = p);
    this.metrics = p.metrics;
    this.#resolving = resolving;
  }

  /** Whether a session id carries its user's tag under a listed secret. */
  #tagListed(id: string, userId: string): boolean { return this.#tags.listed(id, userId); }

  /** Create a session for `userId`. Returns the session and the token (for the cookie only). */
  async create(userId: string, input: CreateInput): Promise<{ session: Session; token: string; evicted: string[] }> {
    if (typeof userId !== 'string' || userId.length === 0 || userId.length > 512) {
      throw new ERR_BAD_USER_ID('expected a non-empty string of at most 512 characters');
    }
    // Lone surrogates all encode to the same UTF-8 replacement bytes: two different ids would
    // share one Redis user.
    if (!isWellFormed(userId)) throw new ERR_BAD_USER_ID('the string is not well-formed UTF-16 (it has a lone surrogate)');
    // PostgreSQL text cannot hold NUL: the audit row would name another user ("a\0b" as "ab").
    if (this.#o.audit !== undefined && userId.includes('\0')) {
      throw new ERR_BAD_USER_ID('with audit on, it must not contain NUL (PostgreSQL text cannot hold it)');
    }
    const dat = input.data === undefined ? '' : serialiseData(input.data, this.#o.maxDataBytes);
    const now = this.#o.now();
    const tag = this.#tags.first(userId);
    const { random, secret } = newRandomAndSecret();
    const id = tag + random;
    const remembered = input.remember !== false;
    const absoluteAt = now + (remembered ? this.#o.absoluteTimeout : this.#o.shortSession.absoluteTimeout);
    const ttl = Math.min(idleOf(this.#o, remembered), absoluteAt - now);
    const ip = typeof input.ip === 'string' && isIP(input.ip) !== 0 ? input.ip : '';
    const record: NewRecord = {
      userId, secretHash: hashSecret(secret), absoluteAt, device: encodeDevice(input.device),
      ip, country: input.country || '', data: dat, remembered,
    };
    const type = input.device.type ?? '';
    let caps = { total: this.#o.maxSessionsPerUser, type, typeCap: this.#o.capsByType.get(type) ?? 0 };
    // Held from before the write: a revocation of this user that overtakes the create's reply
    // (log-out-everywhere on another instance) voids the fill below.
    const t = this.#l1.hold(id);
    try {
      this.metrics.redisWrites++;
      let evicted: string[] = [];
      // Sessions under a rotated secret's tag count toward the caps too (another slot: evicted first).
      if (this.#o.secrets.length > 1 && (caps.total > 0 || caps.typeCap > 0)) {
        ({ caps, evicted } = await this.#capOlderTags(userId, tag, now, caps));
      }
      // Known devices off: no await (a sign-in's JS before its one write is its cost twice over).
      const kd = this.#o.knownDevices;
      const device = kd === undefined || input.knownDevice === undefined ? undefined
        : await this.#device(userId, tag, now, input.knownDevice, kd);
      let created: { evicted: string[]; newDevice: boolean } | null;
      try {
        created = await this.#store.create(tag, random, now, ttl, caps, record, this.#o.capPolicy === 'refuse', device);
      } catch (err) {
        this.metrics.redisErrors++;
        if (isUnknownOutcome(err)) this.#orphan(id);
        throw err;
      }
      if (created === null) throw new ERR_SESSION_LIMIT();
      const byCreate = created.evicted;
      evicted = evicted.concat(byCreate);
      this.#l1.invalidate(byCreate);
      if (byCreate.length > 0) {
        // Kept from now, not from the acknowledgement: a failover while it is awaited can bring an
        // evicted session back in Redis, and a read meanwhile must not take it into the L1.
        const withdraw = this.#replay.notePending(byCreate);
        // A cap eviction is a revocation: the sign-in succeeds only once a replica has it.
        try {
          await this.#acknowledged(() => this.#store.acknowledgeOn(id));
        } catch (err) {
          // Not acknowledged (503): the undo may bring the evicted sessions back, as it should.
          withdraw();
          this.#orphan(id);
          throw err;
        }
        // Acknowledged: the evicted sessions will not be needed back (their stash expires anyway).
        this.#store.dropStash(id).catch(() => {});
      }
      if (this.#o.prewarm > 0) this.#resolving.noteRecent([{ publicId: id, now }]);
      this.metrics.sessionSize.observe(this.#store.sizeOf(record, now));
      const session: Session = Object.freeze({
        // The id is a new string of two flat parts, not a slice of a request's header: no copy.
        id, userId, data: parseData(dat), createdAt: now, absoluteExpiresAt: absoluteAt, remembered, authenticatedAt: now,
        newDevice: created.newDevice,
      });
      this.#l1.fill(t, session, secret, now);
      return { session, token: `${session.id}.${secret}`, evicted };
    } finally {
      this.#l1.release(id, t);
    }
  }

  /**
   * The create script's known-devices arguments (the option on). The set is per tag: with a
   * rotated secret, a device the user signed in from under an older secret is in that tag's set
   * (another slot), read here, one ZSCORE per older tag, only during a rotation.
   */
  async #device(userId: string, tag: string, now: number, d: NonNullable<CreateInput['knownDevice']>,
    kd: NonNullable<ResolvedOptions['knownDevices']>): Promise<KnownDevice> {
    let known = d.known === true;
    for (const t of this.#o.secrets.length > 1 && !known ? this.#tags.of(userId) : []) {
      if (t !== tag && await this.#store.knownUnder(t, d.member, now, kd.ttl)) {
        known = true;
        break;
      }
    }
    return { member: d.member, max: kd.max, ttl: kd.ttl, known };
  }

  /**
   * A create that timed out after it was sent may still land. Its caller was told it failed, so
   * the session must not appear later in the device list or count toward the cap, and sessions
   * its cap eviction removed must come back: undo it once Redis answers again (an undo of a
   * create that never ran is a no-op).
   */
  #orphan(id: string): void {
    if (this.#orphans.has(id)) return;
    this.#orphans.add(id);
    void (async () => {
      for (let attempt = 0; attempt < 120 && !this.#closed(); attempt++) {
        await sleep(Math.min(250 * 2 ** attempt, 5000));
        try {
          await this.#store.uncreate(id, preciseNow(), this.#o.now());
          this.#l1.invalidate([id]);
          this.#orphans.delete(id);
          return;
        } catch { /* Redis still away: try again */ }
      }
      this.#orphans.delete(id);
      this.#log.warn({ sessionId: id }, 'tiered-session: could not clean up a sign-in that timed out');
    })();
  }

  async #write<T>(fn: () => Promise<T>): Promise<T> {
    this.metrics.redisWrites++;
    try {
      return await this.#acknowledged(fn);
    } catch (err) {
      this.metrics.redisErrors++;
      throw err;
    }
  }

  /** Run an acknowledged write, logging once when replicas stop acknowledging and once when they do again. */
  async #acknowledged<T>(fn: () => Promise<T>): Promise<T> {
    try {
      const out = await fn();
      if (this.#unacknowledged && this.#store.acknowledgedBy !== undefined) {
        this.#unacknowledged = false;
        this.#log.info({}, 'tiered-session: replicas confirm revocations again');
      }
      return out;
    } catch (err) {
      if (err instanceof ERR_NOT_CONFIRMED) {
        this.metrics.unconfirmed++;
        if (!this.#unacknowledged) {
          this.#unacknowledged = true;
          this.#log.warn({ replicas: this.#store.acknowledgedBy?.replicas, timeout: this.#store.acknowledgedBy?.timeout },
            'tiered-session: a revocation was applied on the primary but no replica confirmed it in time; it answers 503 (a failover ' +
              'could undo it)');
        }
      }
      throw err;
    }
  }

  /** Claim `name` for `ms` across instances (the takeover of an old session): true for the first caller only. */
  async claim(name: string, ms: number): Promise<boolean> {
    return this.#write(() => this.#store.claim(name, ms));
  }

  /**
   * Revoke one session. With `owner`, only when it belongs to that user (the routes' owner
   * check); unknown and foreign ids both answer false. Every instance drops it from L1.
   */
  async revoke(publicId: string, owner?: string, reason: ExplicitEndReason = 'revoked'): Promise<boolean> {
    if (!isPublicId(publicId)) return false;
    // Two checks, on purpose: the tag check keeps another user's id from ever reaching Redis;
    // the script's stored-owner check holds even for a tag collision or a caller of the store.
    if (owner !== undefined && (!isWellFormed(owner) || !this.#tagListed(publicId, owner))) return false;
    try {
      return this.#noted(publicId, await this.#write(() => this.#store.revoke(publicId, owner ?? '', preciseNow(), reason, this.#o.now())));
    } finally {
      // Applied or maybe applied (an unacknowledged or timed-out revoke): this instance forgets it either way.
      this.#l1.invalidate([publicId]);
    }
  }

  /**
   * Revoke the session a token opens (sign-out, a sign-in over a carried cookie), checked against
   * its secret on the primary: whatever this instance's cache or a replica said, a token whose
   * session was evicted by a sign-in still being undone cannot come back. False when it opened none.
   */
  async revokeToken(token: string, reason: ExplicitEndReason): Promise<boolean> {
    if (!isTokenShape(token)) return false;
    const publicId = token.slice(0, ID_LENGTH);
    const secretHash = hashSecret(token.slice(ID_LENGTH + 1));
    try {
      return this.#noted(publicId, await this.#write(() =>
        this.#store.revoke(publicId, '', preciseNow(), reason, this.#o.now(), secretHash)));
    } finally {
      this.#l1.invalidate([publicId]);
    }
  }

  /** A revocation this instance made (it may not hear its own broadcast): kept for a replay. */
  #noted(publicId: string, revoked: boolean): boolean {
    if (revoked) this.#replay.note([publicId]);
    return revoked;
  }

  /** Revoke every session of `userId` (log out everywhere, password change, ban), optionally keeping one. */
  async revokeAll(userId: string, options: { keep?: string } = {}): Promise<number> {
    // Such an id has no session (create refuses it), and its UTF-8 bytes are another user's.
    if (!isWellFormed(userId)) return 0;
    const tags = this.#tags.of(userId);
    const ids = tags.flatMap((tag) => this.#l1.idsWithPrefix(tag)).filter((k) => k !== options.keep);
    try {
      let n = 0;
      for (const tag of tags) {
        const gone = await this.#write(() => this.#store.revokeAll(tag, userId, options.keep, preciseNow(), this.#o.now()));
        this.#replay.note(gone);
        n += gone.length;
      }
      return n;
    } finally {
      // The broadcast reaches this instance too; dropping now makes the caller's next request exact.
      this.#l1.invalidate(ids);
    }
  }

  /**
   * End every session of every user under this key prefix (a breach, a forced sign-out of all):
   * each user's index as log out everywhere ends it, found by SCAN on every master; every
   * instance hears each user's broadcast, and this one clears its whole local cache. Sessions
   * signed in while it runs may stay. Returns how many it ended.
   */
  async revokeEveryone(): Promise<number> {
    let n = 0;
    try {
      for await (const keys of this.#store.indexKeys()) {
        const gone = await Promise.all(keys.map((k) => this.#write(() => this.#store.revokeIndex(k, preciseNow(), this.#o.now()))));
        for (const ids of gone) {
          this.#replay.note(ids);
          n += ids.length;
        }
      }
      return n;
    } finally {
      this.#l1.clear();
    }
  }

  /** Give a session a new secret (privilege change). The old token stops working everywhere. */
  async rotate(publicId: string): Promise<string> {
    return this.#rotate(publicId, this.#o.now());
  }

  /**
   * A new secret for the session (acknowledged like a revocation: the old token must not come
   * back), and with `authenticatedAt` the re-authentication's time set in the same step.
   */
  async #rotate(publicId: string, at: number, authenticatedAt?: number): Promise<string> {
    const secret = newSecret();
    const secretHash = hashSecret(secret);
    let count: number;
    try {
      count = await this.#write(() => this.#store.rotate(publicId, secretHash, preciseNow(), at, undefined, authenticatedAt));
    } finally {
      this.#l1.invalidate([publicId]);
    }
    if (count === 0) throw new ERR_NOT_FOUND();
    // A replay re-applies the hash only: a confirmation a failover lost leaves an older
    // `authenticatedAt`, which asks for the password sooner, never later.
    this.#replay.noteRotation(publicId, secretHash, count);
    return `${publicId}.${secret}`;
  }

  /** Replace a session's data. Conditional on the session still existing: it is never recreated. */
  async update(session: Session, data: SessionData): Promise<Session> {
    const dat = serialiseData(data, this.#o.maxDataBytes);
    const ok = await this.#write(() => this.#store.setData(session.id, dat, preciseNow()));
    this.#l1.invalidate([session.id]);
    if (!ok) throw new ERR_NOT_FOUND();
    return Object.freeze({ ...session, data: parseData(dat) });
  }

  /**
   * The user proved their credentials again (a password prompt, a second factor): the session
   * gets a new token, as at a sign-in, and its `authenticatedAt` moves to now, both in one step in
   * Redis; the old token stops working and every instance drops its cached copy.
   */
  async reauthenticate(session: Session): Promise<{ session: Session; token: string }> {
    const now = this.#o.now();
    const token = await this.#rotate(session.id, now, now);
    return { session: Object.freeze({ ...session, authenticatedAt: now }), token };
  }

  /**
   * The caps across a user's tags: evicts what the caps remove from the older tags' sessions
   * and returns the caps the create script applies to the new tag alone (lib/core/secrets.ts).
   */
  async #capOlderTags(userId: string, tag: string, now: number, caps: Caps): Promise<{ caps: Caps; evicted: string[] }> {
    const rows: Row[] = [];
    const read = async (t: string) => {
      this.metrics.redisReads++;
      for (const r of await this.#store.list(t, now)) if (r.session.userId === userId) rows.push({ ...r, current: t === tag });
    };
    // The older tags first: once their sessions are gone (most of a rotation), one read each.
    await Promise.all(this.#tags.of(userId).filter((t) => t !== tag).map(read));
    if (rows.length === 0) return { caps, evicted: [] };
    await read(tag);
    const plan = planCaps(rows, caps);
    // Refused: the older tags' sessions count, and none of them may go (the create script
    // refuses on the new tag's caps, less the older sessions that stay).
    if (this.#o.capPolicy === 'refuse' && plan.evict.length > 0) throw new ERR_SESSION_LIMIT();
    const evicted: string[] = [];
    for (const id of plan.evict) if (await this.revoke(id, userId, 'cap')) evicted.push(id);
    return { caps: plan.caps, evicted };
  }
}
