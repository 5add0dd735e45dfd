import { randomBytes } from 'node:crypto';
import type { Redis, Cluster } from 'ioredis';
import type { RedisClient } from '../options.js';

/**
 * `connecting` until first proven; `confirmed` while proven; `down` after a lapse (reconnecting);
 * `refused` when Redis refuses SUBSCRIBE or PUBLISH on the channel (an ACL without the channel's
 * rights: retried with backoff, but no retry will help until the ACL changes).
 */
export type ChannelState = 'connecting' | 'confirmed' | 'down' | 'refused';

export interface ChannelEvents {
  /** Ids revoked elsewhere (or here); `sentAt` is the publisher's epoch ms. */
  onRevoked(ids: string[], sentAt: number): void;
  /** The channel may have lost messages: every cached entry must go. */
  onInterrupted(reason: string): void;
  /** The state changed (called once per change, never per request). */
  onState(state: ChannelState, reason: string, err: unknown): void;
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

/**
 * The revocation channel: a dedicated subscriber connection duplicated from the user's client.
 *
 * Pub/sub is at-most-once, so the channel is trusted ("confirmed") only while it is proven to
 * deliver: after (re)subscribing, and then every `heartbeatMs`, the instance publishes a
 * heartbeat through its main connection and must receive it back on the subscriber within
 * `heartbeatMs`. That one round trip covers a closed socket, a silently dead one, a paused
 * server and, on a Cluster, the internal subscriber node. Whenever the proof lapses the owner
 * is told to drop every cached entry, and the subscriber is reconnected.
 */
export class RevocationChannel {
  readonly #client: RedisClient;
  #sub: Redis | undefined;
  /** Round-robin position over the cluster's masters for the subscriber connection. */
  #node = 0;
  /** Heartbeats seen while the subscriber was not connected (a dead cluster node is left after 2). */
  #downBeats = 0;
  readonly #channel: string;
  readonly #events: ChannelEvents;
  readonly #heartbeatMs: number;
  readonly #publish: (message: string) => Promise<unknown>;
  readonly #nonce = randomBytes(6).toString('base64url');
  #seq = 0;
  #pending: { token: string; resolve: () => void } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #confirmed = false;
  #closing = false;
  #confirming = false;
  #state: ChannelState = 'connecting';
  /** Consecutive failures to confirm: the reconnect delay grows with it. */
  #failures = 0;
  #retry: NodeJS.Timeout | undefined;

  constructor(
    client: RedisClient,
    channel: string,
    heartbeatMs: number,
    publish: (message: string) => Promise<unknown>,
    events: ChannelEvents,
  ) {
    this.#channel = channel;
    this.#events = events;
    this.#heartbeatMs = heartbeatMs;
    this.#publish = publish;
    this.#client = client;
    this.#attach();
  }

  /**
   * A plain connection, whatever the client: on a Cluster, ioredis's own subscriber is internal
   * and silently moves between nodes (a message published during the move is lost and nothing
   * tells us), so the channel subscribes on one master itself. Classic PUBLISH reaches every
   * node of a cluster, so one node hears everything; if it dies the next master is used.
   */
  #attach(): void {
    let sub: Redis;
    if ((this.#client as Cluster).isCluster) {
      const masters = (this.#client as Cluster).nodes('master');
      if (masters.length === 0) return; // not connected yet: the heartbeat attaches later
      // A node connection is a plain ioredis Redis: duplicate it with subscriber settings.
      sub = masters[this.#node++ % masters.length].duplicate({ lazyConnect: true, enableOfflineQueue: true });
    } else {
      sub = (this.#client as Redis).duplicate({ lazyConnect: true, enableOfflineQueue: true });
    }
    this.#sub = sub;
    sub.on('message', (ch: string, msg: string) => { if (ch === this.#channel && sub === this.#sub) this.#message(msg); });
    sub.on('ready', () => { if (sub === this.#sub) void this.#confirm(); });
    sub.on('close', () => { if (sub === this.#sub) this.#interrupt('subscriber connection closed', undefined); });
    sub.on('error', () => { /* surfaced as close + reconnect; the app's own client logs */ });
  }

  /** True while the channel is proven to deliver: only then may the local cache be filled. */
  get confirmed(): boolean { return this.#confirmed; }

  async start(): Promise<void> {
    this.#timer = setInterval(() => { void this.#heartbeat(); }, this.#heartbeatMs);
    this.#timer.unref();
    try {
      await this.#sub?.connect();
    } catch {
      // Redis is down at start: ioredis keeps retrying; misses answer 503 meanwhile.
    }
  }

  async stop(): Promise<void> {
    this.#closing = true;
    this.#confirmed = false;
    clearInterval(this.#timer);
    clearTimeout(this.#retry);
    this.#sub?.disconnect();
  }

  get state(): ChannelState { return this.#state; }

  #setState(state: ChannelState, reason: string, err: unknown): void {
    if (state === this.#state || this.#closing) return;
    this.#state = state;
    this.#events.onState(state, reason, err);
  }

  #message(msg: string): void {
    if (msg.startsWith(HEARTBEAT)) {
      if (this.#pending && msg.endsWith(this.#pending.token)) this.#pending.resolve();
      return;
    }
    const bar = msg.indexOf('|');
    if (bar < 1) return;
    this.#events.onRevoked(msg.slice(bar + 1).split(','), Number(msg.slice(0, bar)));
  }

  #interrupt(reason: string, err: unknown): void {
    this.#confirmed = false;
    if (this.#closing) return;
    this.#events.onInterrupted(reason);
    // A refusal lasts until a confirmation: the closes it causes do not turn it into "down".
    this.#setState(isRefusal(err) || this.#state === 'refused' ? 'refused' : 'down', reason, err);
  }

  /** Publish a heartbeat and wait for it on the subscriber; rejects after heartbeatMs. */
  #roundTrip(): Promise<void> {
    const token = `${this.#nonce}:${++this.#seq}`;
    let timer: NodeJS.Timeout | undefined;
    return new Promise<void>((resolve, reject) => {
      this.#pending = { token, resolve };
      timer = setTimeout(() => reject(new Error('heartbeat not received')), this.#heartbeatMs);
      this.#publish(HEARTBEAT + token).catch(reject);
    }).finally(() => {
      clearTimeout(timer);
      if (this.#pending?.token === token) this.#pending = undefined;
    });
  }

  async #confirm(): Promise<void> {
    const sub = this.#sub;
    if (this.#confirming || this.#closing || sub === undefined) return;
    this.#confirming = true;
    try {
      await sub.subscribe(this.#channel);
      await this.#roundTrip();
      if (this.#closing || sub !== this.#sub) return;
      // Anything cached before the proof may have missed a message: start clean.
      this.#events.onInterrupted('subscriber confirmed after (re)connect');
      this.#confirmed = true;
      this.#failures = 0;
      this.#setState('confirmed', 'heartbeat round trip', undefined);
    } catch (err) {
      this.#broken('subscription could not be confirmed', err);
    } finally {
      this.#confirming = false;
    }
  }

  async #heartbeat(): Promise<void> {
    if (this.#closing || this.#pending || this.#retry !== undefined) return;
    if (!this.#confirmed) {
      // Not proven yet (e.g. the first confirmation failed while Redis was down): try again.
      if (this.#sub?.status === 'ready') {
        this.#downBeats = 0;
        void this.#confirm();
      } else if ((this.#sub === undefined || ++this.#downBeats >= 2) && (this.#client as Cluster).isCluster) {
        // The subscriber's node stays away: move to the next master.
        this.#downBeats = 0;
        this.#replace();
      }
      return;
    }
    try {
      await this.#roundTrip();
    } catch (err) {
      this.#broken('subscriber heartbeat missed', err);
    }
  }

  /**
   * A silent break or a refusal: drop the cache and, after a backoff that grows with consecutive
   * failures, reconnect the subscriber (on a Cluster, on the next master), which re-confirms on
   * ready. The backoff keeps a permanent refusal (an ACL) from becoming a reconnect storm.
   */
  #broken(reason: string, err: unknown): void {
    if (this.#closing) return;
    this.#interrupt(reason, err);
    const cluster = (this.#client as Cluster).isCluster;
    const sub = this.#sub;
    if (!cluster && sub?.status !== 'ready') return; // ioredis is already reconnecting it
    this.#failures++;
    if (!cluster) sub!.disconnect();
    clearTimeout(this.#retry);
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      if (this.#closing) return;
      if (cluster) this.#replace();
      else this.#sub?.connect().catch(() => { /* retried by ioredis; the heartbeat watches */ });
    }, backoff(this.#failures));
    this.#retry.unref();
  }

  /** Drop the subscriber connection and open one on the next master. */
  #replace(): void {
    const old = this.#sub;
    this.#sub = undefined;
    old?.disconnect();
    this.#attach();
    const next = this.#sub as Redis | undefined;
    next?.connect().catch(() => { /* retried by ioredis; the heartbeat watches */ });
  }
}
