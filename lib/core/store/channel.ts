import { randomBytes } from 'node:crypto';
import type { Redis, Cluster } from 'ioredis';
import type { RedisClient } from '../options.js';

/**
 * `connecting` until first proven; `confirmed` while proven (the name the metrics publish); `down` after a lapse (reconnecting);
 * `refused` when Redis refuses SUBSCRIBE or PUBLISH on the channel (an ACL without the channel's
 * rights: retried with backoff, but no retry will help until the ACL changes).
 */
export type ChannelState = 'connecting' | 'confirmed' | 'down' | 'refused';

/**
 * What a broadcast says happened: 'ended' (sessions revoked), 'restored' (sessions a timed-out
 * sign-in's undo brought back from its cap eviction), or the session's rotation count after a
 * rotation.
 */
export type Change = 'ended' | 'restored' | number;

export interface ChannelEvents {
  /**
   * Ids changed elsewhere (or here): every cached copy goes. `sentAt` is the publisher's epoch
   * ms; `change` what happened when the message says.
   */
  onRevoked(ids: string[], sentAt: number, change: Change | undefined): void;
  /** The channel may have lost messages: every cached entry must go. */
  onInterrupted(reason: string): void;
  /** The state changed (called once per change, never per request). */
  onState(state: ChannelState, reason: string, err: unknown): void;
  /**
   * With `readFrom`: this instance's heartbeat arrived through that replica, `lagMs` after it was
   * sent to the primary (the replica had the primary's stream as of then).
   */
  onReplicaProof?(lagMs: number): void;
}

/** A refusal by ACL (NOPERM), possibly wrapped as the cause of the store's 503 error. */
function isRefusal(err: unknown): boolean {
  for (let e = err, i = 0; e instanceof Error && i < 3; e = (e as { cause?: unknown }).cause, i++) {
    if (e.message.startsWith('NOPERM')) return true;
  }
  return false;
}

/** Reconnect delay after `n` consecutive failures: 100 ms doubling to 30 s. */
const backoff = (n: number) => Math.min(100 * 2 ** Math.max(0, n - 1), 30_000);

const HEARTBEAT = 'hb|';

type RoundTrip = { outcome: 'heard' | 'unheard' | 'unpublished'; token: string; err?: unknown };

/** Where a subscriber connects: a fixed duplicate, or the next cluster node (moves on failure). */
type Placement = { kind: 'duplicate'; of: Redis; role?: 'slave' } | { kind: 'cluster' };

/** One subscriber connection and what the heartbeat knows about it. */
interface Sub {
  readonly placement: Placement;
  conn: Redis | undefined;
  /** Subscribed and its socket open. */
  live: boolean;
  /** The heartbeat token it received last. */
  heard: string;
  /** Consecutive failures: the reconnect delay grows with it. */
  failures: number;
  retry: NodeJS.Timeout | undefined;
}

/**
 * The revocation channel: dedicated subscriber connections duplicated from the app's client.
 *
 * Pub/sub is at-most-once, so the channel is trusted only while it is proven to
 * deliver: every `heartbeatMs` the instance publishes a heartbeat through its main connection
 * and at least one subscriber must receive it within `heartbeatMs`. Trust is withdrawn (and the
 * owner told to drop every cached entry) when a heartbeat that was published reaches no
 * subscriber (a silently dead socket), or when every subscriber connection has closed. A
 * heartbeat that cannot be published at all (the primary is down or paused) proves nothing
 * either way but withdraws nothing: no revocation can be published through it either, and the
 * local cache's `ttl` bounds what any partition could hide.
 *
 * Replicated topologies get two subscribers on different nodes (on a Cluster: two nodes; under
 * Sentinel: the master and a replica), so one node's death interrupts nothing: classic PUBLISH
 * reaches every node of a Cluster and every replica of a primary, so any one of them hears every
 * revocation. With `readFrom`, the one subscriber is on that replica.
 */
export class RevocationChannel {
  readonly #client: RedisClient;
  readonly #readFrom: RedisClient | undefined;
  readonly #subs: Sub[] = [];
  /** Round-robin position over the cluster's nodes for subscriber placement. */
  #node = 0;
  readonly #channel: string;
  readonly #events: ChannelEvents;
  readonly #heartbeatMs: number;
  readonly #publish: (message: string) => Promise<unknown>;
  readonly #nonce = randomBytes(6).toString('base64url');
  #seq = 0;
  /** The heartbeat in flight: its token and the resolver called when one subscriber hears it. */
  #pending: { token: string; heard: () => void; sentAt: number } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #proven = false;
  #closing = false;
  #state: ChannelState = 'connecting';
  /** Recent messages, so that a message heard by two subscribers is handled once. */
  readonly #seen = new Set<string>();

  constructor(
    client: RedisClient,
    readFrom: RedisClient | undefined,
    channel: string,
    heartbeatMs: number,
    publish: (message: string) => Promise<unknown>,
    events: ChannelEvents,
  ) {
    this.#client = client;
    this.#readFrom = readFrom;
    this.#channel = channel;
    this.#events = events;
    this.#heartbeatMs = heartbeatMs;
    this.#publish = publish;
    for (const placement of placements(client, readFrom)) {
      this.#subs.push({ placement, conn: undefined, live: false, heard: '', failures: 0, retry: undefined });
    }
  }

  /** True while the channel is proven to deliver: only then may the local cache be filled. */
  get proven(): boolean { return this.#proven; }

  get state(): ChannelState { return this.#state; }

  async start(): Promise<void> {
    this.#timer = setInterval(() => { void this.#heartbeat(); }, this.#heartbeatMs);
    this.#timer.unref();
    await Promise.all(this.#subs.map((s) => this.#connect(s)));
  }

  async stop(): Promise<void> {
    this.#closing = true;
    this.#proven = false;
    clearInterval(this.#timer);
    for (const s of this.#subs) {
      clearTimeout(s.retry);
      s.conn?.disconnect();
    }
  }

  /** Open (or reopen) a subscriber's connection; it subscribes and joins the heartbeat once ready. */
  async #connect(s: Sub): Promise<void> {
    if (this.#closing) return;
    const conn = this.#open(s.placement);
    if (conn === undefined) return; // a cluster not connected yet: the heartbeat retries
    s.conn = conn;
    s.live = false;
    conn.on('message', (ch: string, msg: string) => { if (ch === this.#channel && s.conn === conn) this.#message(s, msg); });
    conn.on('ready', () => { if (s.conn === conn) void this.#subscribe(s, conn); });
    conn.on('close', () => { if (s.conn === conn) this.#closed(s); });
    // No more reconnects (a cluster node's connection never retries: the next node is tried).
    conn.on('end', () => { if (s.conn === conn) this.#failed(s, 'subscriber connection ended', undefined); });
    conn.on('error', () => { /* surfaced as close + reconnect; the app's own client logs */ });
    try {
      await conn.connect();
    } catch {
      // Redis is down (or this node is): ioredis keeps retrying; misses answer 503 meanwhile.
    }
  }

  /**
   * A plain connection, whatever the client: on a Cluster, ioredis's own subscriber is internal
   * and silently moves between nodes (a message published during the move is lost and nothing
   * tells us), so the channel picks its nodes itself.
   */
  #open(p: Placement): Redis | undefined {
    // Subscribed again by #subscribe on every ready: ioredis's own resubscription would send a
    // SUBSCRIBE whose rejection (a close during reconnect) nothing handles.
    const opts = { lazyConnect: true, enableOfflineQueue: true, autoResubscribe: false };
    if (p.kind === 'duplicate') return p.of.duplicate(p.role ? { ...opts, role: p.role } : opts);
    const nodes = (this.#client as Cluster).nodes('all');
    if (nodes.length === 0) return undefined;
    // Another node than the other subscribers use, when there is one.
    const used = new Set(this.#subs.map((s) => s.conn).filter(Boolean).map((c) => `${c!.options.host}:${c!.options.port}`));
    for (let i = 0; i < nodes.length; i++) {
      const n = nodes[this.#node++ % nodes.length];
      if (!used.has(`${n.options.host}:${n.options.port}`) || i === nodes.length - 1) return n.duplicate(opts);
    }
    return undefined;
  }

  async #subscribe(s: Sub, conn: Redis): Promise<void> {
    try {
      await conn.subscribe(this.#channel);
      if (s.conn !== conn || this.#closing) return;
      s.live = true;
      // Not proven yet: prove it now rather than at the next tick.
      if (!this.#proven && this.#pending === undefined) void this.#heartbeat();
    } catch (err) {
      this.#failed(s, 'subscription refused', err);
    }
  }

  #message(s: Sub, msg: string): void {
    if (msg.startsWith(HEARTBEAT)) {
      // Only this instance's own, current heartbeat proves this subscriber delivers: another
      // instance's (or an old one of ours) says nothing about whether ours got through.
      const p = this.#pending;
      if (p !== undefined && msg.length === HEARTBEAT.length + p.token.length && msg.endsWith(p.token)) {
        s.heard = p.token;
        if (s.placement.kind === 'duplicate' &&
          s.placement.of === this.#readFrom) this.#events.onReplicaProof?.(performance.now() - p.sentAt);
        p.heard();
      }
      return;
    }
    const bar = msg.indexOf('|');
    if (bar < 1) return;
    if (this.#subs.length > 1) {
      // Every subscriber hears every message: pass each one on once.
      if (this.#seen.has(msg)) return;
      this.#seen.add(msg);
      if (this.#seen.size > 4096) this.#seen.delete(this.#seen.values().next().value!);
    }
    // `<sentAt>|`, `<sentAt>!|` ended, `<sentAt>+|` restored, `<sentAt>r<n>|` the nth rotation
    // (lib/core/store/scripts.ts).
    const mark = msg.charCodeAt(bar - 1);
    const r = msg.lastIndexOf('r', bar);
    const change: Change | undefined = mark === 33 ? 'ended' : mark === 43 ? 'restored' : r > 0 ? Number(msg.slice(r + 1, bar)) : undefined;
    const sentAt = Number(msg.slice(0, change === undefined ? bar : typeof change === 'number' ? r : bar - 1));
    this.#events.onRevoked(msg.slice(bar + 1).split(','), sentAt, change);
  }

  /** A subscriber's socket closed: when it was the last one open, trust goes (messages may be lost). */
  #closed(s: Sub): void {
    s.live = false;
    if (this.#closing) return;
    if (!this.#subs.some((x) => x.live)) this.#lapse('subscriber connection closed', undefined);
  }

  #lapse(reason: string, err: unknown): void {
    const was = this.#proven;
    this.#proven = false;
    if (this.#closing) return;
    if (was) this.#events.onInterrupted(reason);
    // A refusal lasts until the channel is proven again: the closes it causes do not turn it into "down".
    this.#setState(isRefusal(err) || this.#state === 'refused' ? 'refused' : 'down', reason, err);
  }

  #setState(state: ChannelState, reason: string, err: unknown): void {
    if (state === this.#state || this.#closing) return;
    this.#state = state;
    this.#events.onState(state, reason, err);
  }

  /**
   * Drop a subscriber's connection and open a new one (on a Cluster, on the next node) after a
   * backoff that grows with its consecutive failures, so a permanent refusal (an ACL) never
   * becomes a reconnect storm.
   */
  #failed(s: Sub, reason: string, err: unknown): void {
    if (this.#closing) return;
    if (isRefusal(err)) this.#lapse(reason, err);
    s.failures++;
    s.live = false;
    const old = s.conn;
    s.conn = undefined;
    old?.disconnect();
    clearTimeout(s.retry);
    s.retry = setTimeout(() => {
      s.retry = undefined;
      void this.#connect(s);
    }, backoff(s.failures));
    s.retry.unref();
    if (!this.#subs.some((x) => x.live) && this.#proven) this.#lapse(reason, err);
  }

  /**
   * Publish a heartbeat. 'heard': a subscriber got it; 'unheard': Redis answered the publish and
   * no subscriber got it within heartbeatMs after that (messages are being lost); 'unpublished':
   * the publish failed or timed out (a primary down or paused proves nothing either way).
   */
  #roundTrip(): Promise<RoundTrip> {
    const token = `${this.#nonce}:${++this.#seq}`;
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      this.#pending = { token, heard: () => { clearTimeout(timer); resolve({ outcome: 'heard', token }); }, sentAt: performance.now() };
      this.#publish(HEARTBEAT + token).then(
        () => { timer = setTimeout(() => resolve({ outcome: 'unheard', token }), this.#heartbeatMs); },
        (err) => resolve({ outcome: 'unpublished', token, err }),
      );
    });
  }

  async #heartbeat(): Promise<void> {
    if (this.#closing || this.#pending !== undefined) return;
    for (const s of this.#subs) if (s.conn === undefined && s.retry === undefined) void this.#connect(s);
    const ready = this.#subs.filter((s) => s.live);
    if (ready.length === 0) return;
    let r: RoundTrip;
    try {
      r = await this.#roundTrip();
      // Give the other subscribers the rest of the interval to hear the same heartbeat.
      if (r.outcome === 'heard' && ready.some((s) => s.heard !== r.token)) {
        await new Promise((resolve) => setTimeout(resolve, Math.min(50, this.#heartbeatMs / 4)));
      }
    } finally {
      this.#pending = undefined;
    }
    if (this.#closing) return;
    if (r.outcome === 'unpublished') {
      // Nothing can be revoked through a primary this instance cannot write to; an ACL refusal
      // of PUBLISH is the exception (nothing will ever be heard).
      if (isRefusal(r.err)) this.#lapse('heartbeat publish refused', r.err);
      return;
    }
    if (r.outcome === 'unheard') {
      this.#lapse('subscriber heartbeat missed', undefined);
      for (const s of ready) this.#failed(s, 'subscriber heartbeat missed', undefined);
      return;
    }
    for (const s of ready) {
      if (s.heard === r.token) s.failures = 0;
      else this.#failed(s, 'subscriber heartbeat missed', undefined);
    }
    if (!this.#proven) {
      // Anything cached before the proof may have missed a message: start clean.
      this.#events.onInterrupted('subscriber proven after (re)connect');
      this.#proven = true;
      this.#setState('confirmed', 'heartbeat round trip', undefined);
    }
  }
}

/** Where the subscribers go, for a client (and the optional nearby replica). */
function placements(client: RedisClient, readFrom: RedisClient | undefined): Placement[] {
  if ((client as Cluster).isCluster) return [{ kind: 'cluster' }, { kind: 'cluster' }];
  const main = client as Redis;
  // A nearby replica: revocations are heard from it, so the heartbeat measures exactly the lag
  // of the replica this instance reads from.
  if (readFrom !== undefined && !(readFrom as Cluster).isCluster) return [{ kind: 'duplicate', of: readFrom as Redis }];
  // Under Sentinel: the master, and a replica that survives the master's death.
  const sentinels = (main.options as { sentinels?: unknown[] }).sentinels;
  if (Array.isArray(sentinels) && sentinels.length > 0) {
    return [{ kind: 'duplicate', of: main }, { kind: 'duplicate', of: main, role: 'slave' }];
  }
  return [{ kind: 'duplicate', of: main }];
}
