import type { Cluster } from 'ioredis';
import { LocalCache } from './local-cache.js';
import type { Logger } from './log.js';
import { Metrics, type StatsSnapshot } from './metrics.js';
import type { ResolvedOptions } from './options.js';
import type { Session, SessionData, SessionInfo } from './session-data.js';
import { RedisStore } from './store/redis-store.js';
import { RevocationChannel, type ChannelState, type Change } from './store/channel.js';
import { Acknowledgement, type AcknowledgementState } from './store/acknowledgement.js';
import { Freshness } from './store/freshness.js';
import { RevocationReplay } from './replay.js';
import { AuditTrail, streamBuffer } from './audit/trail.js';
import { EventFeed } from './events/feed.js';
import { Telemetry } from './observe/telemetry.js';
import type { AuditSessionRow, HistoryQuery } from './audit/history.js';
import type { ExplicitEndReason } from './audit/sql.js';
import { Resolving } from './resolving.js';
import { preciseNow } from './session-parts.js';
import { UserTags } from './user-tags.js';
import { Writing, type CreateInput } from './writing.js';

export type { CreateInput } from './writing.js';

/**
 * The session manager: the Redis model (L2) underneath, the local cache (L1) in front, the
 * revocation channel that keeps the two coherent, and the throttled touch queue. One per
 * registration (Fastify) or middleware (Express). Framework-neutral: it speaks of user ids,
 * tokens and public ids, never of requests. It wires the parts and runs their lifecycle:
 * resolving.ts answers what a token opens, writing.ts changes sessions, audit/trail.ts keeps
 * the history, store/ knows Redis.
 */
export class SessionManager {
  readonly #o: ResolvedOptions;
  readonly #store: RedisStore;
  readonly #l1: LocalCache;
  readonly #channel: RevocationChannel | undefined;
  readonly #log: Logger;
  readonly #tags: UserTags;
  #closed = false;
  /** confirmRevocations: 'auto': replication as Redis reports it (read at start and every 5 s). */
  readonly #ack: Acknowledgement | undefined;
  /** Where reads can go to a replica: whether it is shown fresh now (else the primary is read). */
  readonly #fresh: Freshness | undefined;
  /** Recent revocations, applied again after the connection to Redis was interrupted (a failover may have lost them). */
  readonly #replay: RevocationReplay;
  /** The client's `ready` listener (a reconnection may follow a failover). */
  #onReady: (() => void) | undefined;
  /** The audit trail (every instance consumes; one at a time sweeps). */
  readonly #audit: AuditTrail | undefined;
  /** The event feed (events on; delivery starts with the first handler). */
  readonly events: EventFeed | undefined;
  readonly metrics = new Metrics();
  readonly #telemetry: Telemetry;
  /** Reads: a token to its session (the hot path), pre-warm, touches, the device list. */
  readonly resolving: Resolving;
  /** Writes: create, revoke, rotate, update, re-authenticate. */
  readonly writing: Writing;

  constructor(options: ResolvedOptions, log: Logger) {
    this.#o = options;
    this.#log = log;
    this.#store = new RedisStore(options.client, options.keyPrefix, options.commandTimeout,
      { long: options.idleTimeout, short: options.shortSession.idleTimeout }, options.readFrom,
      streamBuffer(options.audit, options.events));
    this.#audit = AuditTrail.of(options, log);
    const buffer = streamBuffer(options.audit, options.events);
    if (options.events !== undefined) {
      this.events = new EventFeed({
        client: options.client, keyPrefix: options.keyPrefix, events: options.events, commandTimeout: options.commandTimeout,
        bufferCap: buffer!.cap, bufferTtl: buffer!.ttl, logger: log, now: options.now,
      });
    }
    const ack = options.confirmRevocations;
    if (ack.mode === 'on') this.#store.acknowledgedBy = ack;
    if (ack.mode === 'auto') {
      // Unknown acknowledges: until Redis says there is no replica, revocations WAIT.
      this.#store.acknowledgedBy = ack;
      this.#ack = new Acknowledgement(options.client, options.commandTimeout, (state, detail) => this.#acknowledgement(state, detail));
      this.#store.acknowledgement = this.#ack;
    }
    this.#telemetry = new Telemetry(this.metrics, options.telemetry, () => this.prometheus());
    this.#store.observer = this.#telemetry;
    this.metrics.acknowledgement = ack.mode === 'off' ? 'off' : ack.mode === 'on' ? 'on' : 'unknown';
    // Where reads may come from a lagging replica, invalidated ids are remembered for the
    // tolerated lag and read from the primary meanwhile.
    this.#l1 = new LocalCache(options.localCache, () => this.cacheTrusted,
      this.#store.replicaReads ? options.replicaLagTolerance : 0);
    this.#replay = new RevocationReplay({
      revoke: (id) => this.#store.revoke(id, '', preciseNow(), 'revoked', this.#o.now(), '', false),
      rotate: (id, secretHash, count) => this.#store.rotate(id, secretHash, preciseNow(), this.#o.now(), count),
    }, log);
    if (this.#store.replicaReads) this.#fresh = new Freshness(options.heartbeatInterval, options.replicaLagTolerance);
    this.#tags = new UserTags(options.secrets, options.keyPrefix);
    const parts = {
      o: options, store: this.#store, l1: this.#l1, log, metrics: this.metrics, replay: this.#replay, tags: this.#tags,
      trusted: () => this.cacheTrusted, closed: () => this.#closed,
    };
    this.resolving = new Resolving(parts, this.#fresh);
    this.writing = new Writing(parts, this.resolving);
    // With readFrom the channel runs even without a local cache: its heartbeats through that
    // replica are what shows it fresh.
    if (options.localCache || options.readFrom !== undefined) {
      this.metrics.channelState = 'connecting';
      this.#channel = new RevocationChannel(
        options.client, options.readFrom, this.#store.channel, options.heartbeatInterval,
        (msg) => this.#store.publish(msg),
        {
          onRevoked: (ids, sentAt, change) => this.#received(ids, sentAt, change),
          onInterrupted: () => { this.#l1.clear(); this.#replay.interrupted(); },
          onState: (state, reason, err) => this.#channelState(state, reason, err),
          onReplicaProof: (lagMs) => this.#fresh?.proven(lagMs),
        },
      );
    }
  }

  /** The Redis model underneath (keys, scripts): for tests and tools. */
  get store(): RedisStore { return this.#store; }

  /** The channel is proven to deliver, so the local cache may serve and be filled. */
  get cacheTrusted(): boolean { return this.#channel?.proven === true; }

  /** The local cache, for tests. */
  get localCache(): LocalCache { return this.#l1; }

  async start(): Promise<void> {
    await this.#telemetry.start();
    const c = this.#o.client;
    // A client made with `lazyConnect: true` waits for its first command; the fast-fail path
    // never sends one while the client is not ready, so without this it would never connect.
    if (c.status === 'wait') c.connect().catch(() => { /* retried by ioredis; requests answer 503 meanwhile */ });
    const r = this.#o.readFrom;
    if (r !== undefined && r.status === 'wait') r.connect().catch(() => {});
    // Every reconnection of the client after the first: a failover may have lost recent revocations.
    let connected = c.status === 'ready';
    this.#onReady = () => { if (connected) this.#replay.interrupted(); connected = true; };
    c.on('ready', this.#onReady);
    await this.#ack?.start();
    const reader = r ?? c;
    if (this.#fresh !== undefined && (reader as { isCluster?: boolean }).isCluster === true) {
      this.#fresh.probe(reader as Cluster, this.#o.heartbeatInterval, this.#o.commandTimeout);
    }
    await this.#channel?.start();
    // Reads go to readFrom once a heartbeat has come through it: wait (bounded) for the first,
    // so a new instance reads locally from its first request.
    if (r !== undefined) await this.resolving.trusted();
    if (this.#audit !== undefined) void this.#audit.start();
    if (this.#o.prewarm > 0 && this.#l1.enabled) {
      try {
        await this.resolving.prewarm(this.#o.prewarm);
      } catch (err) {
        this.#log.debug({ err }, 'tiered-session: pre-warm failed');
      }
    }
  }

  /** A user's sessions live at any moment in [from, to], most recent first (audit on; else null). */
  history(userId: string, q: HistoryQuery = {}): Promise<AuditSessionRow[]> | null {
    return this.#audit === undefined ? null : this.#audit.history(userId, q);
  }

  /** Flush pending touches and close the subscriber. The app's own client is left open. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#telemetry.close();
    this.#ack?.stop();
    this.#replay.close();
    if (this.#onReady !== undefined) this.#o.client.off('ready', this.#onReady);
    this.#fresh?.stop();
    await this.#audit?.close();
    await this.events?.close();
    await this.resolving.close();
    await this.#channel?.stop();
    this.#l1.clear();
  }

  /** The user's tag: every key and session id of the user's new sessions carries it. */
  tagOf(userId: string): string { return this.#tags.first(userId); }

  /** The user's tag under each listed secret, the first secret's first (README: Rotating the secret). */
  tagsOf(userId: string): string[] { return this.#tags.of(userId); }

  // ---- the parts' calls, by name (resolving.ts, writing.ts) --------------------------------

  /** See Resolving.resolve. */
  resolve(token: string): Session | null | Promise<Session | null> { return this.resolving.resolve(token); }
  /** See Resolving.resolveAt. */
  resolveAt(s: string, at: number): Session | null | Promise<Session | null> { return this.resolving.resolveAt(s, at); }
  /** Write every queued touch now, in one pipeline (one per user slot on a Cluster). */
  flushTouches(): Promise<void> { return this.resolving.flushTouches(); }
  /** A user's live sessions, most recently active first. */
  list(userId: string): Promise<SessionInfo[]> { return this.resolving.list(userId); }

  /** Create a session for `userId`. Returns the session and the token (for the cookie only). */
  create(userId: string, input: CreateInput): Promise<{ session: Session; token: string; evicted: string[] }> {
    return this.writing.create(userId, input);
  }
  /** See Writing.claim. */
  claim(name: string, ms: number): Promise<boolean> { return this.writing.claim(name, ms); }
  /** See Writing.revoke. */
  revoke(publicId: string, owner?: string, reason: ExplicitEndReason = 'revoked'): Promise<boolean> {
    return this.writing.revoke(publicId, owner, reason);
  }
  /** See Writing.revokeToken. */
  revokeToken(token: string, reason: ExplicitEndReason): Promise<boolean> { return this.writing.revokeToken(token, reason); }
  /** See Writing.revokeAll. */
  revokeAll(userId: string, options: { keep?: string } = {}): Promise<number> { return this.writing.revokeAll(userId, options); }
  /** See Writing.revokeEveryone. */
  revokeEveryone(): Promise<number> { return this.writing.revokeEveryone(); }
  /** See Writing.rotate. */
  rotate(publicId: string): Promise<string> { return this.writing.rotate(publicId); }
  /** See Writing.update. */
  update(session: Session, data: SessionData): Promise<Session> { return this.writing.update(session, data); }
  /** See Writing.reauthenticate. */
  reauthenticate(session: Session): Promise<{ session: Session; token: string }> { return this.writing.reauthenticate(session); }

  // ---- coherence -------------------------------------------------------------------------

  /** Drop ids from L1 and void any fill of them that is in flight. */
  invalidate(ids: Iterable<string>): void { this.#l1.invalidate(ids); }

  #received(ids: string[], sentAt: number, change: Change | undefined): void {
    this.#l1.invalidate(ids);
    if (change !== undefined) this.#replay.heard(ids, change);
    this.metrics.revocationsReceived += ids.length;
    if (Number.isFinite(sentAt)) this.metrics.revocationLatency.observe(Math.max(0, preciseNow() - sentAt) / 1000);
  }

  #channelState(state: ChannelState, reason: string, err: unknown): void {
    this.metrics.channelState = state;
    if (state === 'confirmed') this.#log.info({ channel: this.#store.channel },
      `tiered-session: revocation channel confirmed; local cache on (${reason})`);
    else if (state === 'refused') {
      this.#log.error({ err, channel: this.#store.channel },
        `tiered-session: Redis refused the revocation channel (${reason}); the local cache stays off and every request reads Redis. ` +
        `Grant the Redis user SUBSCRIBE and PUBLISH on the channel (ACL: &${this.#store.channel} +subscribe +publish); see the README's ` +
          `Redis ACL.`);
    } else this.#log.warn({ err, channel: this.#store.channel },
      `tiered-session: revocation channel down (${reason}); local cache cleared and off until it is confirmed again`);
  }

  /** confirmRevocations 'auto': WAIT unless Redis says no shard has (or had) a replica; one log line per change. */
  #acknowledgement(state: AcknowledgementState, detail: Record<string, unknown>): void {
    this.#store.acknowledgedBy = state === 'off' ? undefined : this.#o.confirmRevocations;
    this.metrics.acknowledgement = state;
    if (state === 'on') this.#log.info(detail, 'tiered-session: replicas found: revocations wait for one (WAIT)');
    else if (state === 'off') this.#log.info(detail, 'tiered-session: no replica: revocations no longer wait for one');
    else this.#log.warn(detail, 'tiered-session: replication could not be read: revocations wait for a replica (WAIT) until it can');
  }

  /** Redis answers PING within the command timeout. */
  async healthy(): Promise<boolean> {
    try {
      await this.#store.ping();
      return true;
    } catch {
      return false;
    }
  }

  stats(): StatsSnapshot { return this.metrics.snapshot(this.#l1.size, this.#l1.clears); }

  prometheus(): string {
    const text = this.metrics.prometheus(this.#l1.size, this.#l1.clears);
    return text + (this.#audit?.prometheus() ?? '') + (this.events?.prometheus() ?? '');
  }
}
