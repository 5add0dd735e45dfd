import type { Redis, Cluster } from 'ioredis';
import { withTimeout } from './timeout.js';

const field = (info: string, name: string): string | undefined => new RegExp(`^${name}:(.*?)\\r?$`, 'm').exec(info)?.[1];

/**
 * Whether the replica that session reads go to is shown fresh now; while it is not, reads go to
 * the primary. A replica cut off from its primary keeps answering reads, with whatever it had:
 * a session revoked since then would still be found there.
 *
 * `readFrom`: fresh while this instance's channel heartbeats (published on the primary) keep
 * arriving through that replica: the last one within `window` (twice the heartbeat interval),
 * and its lag within `replicaLagTolerance`. A Cluster with `scaleReads`: every replica's
 * `INFO replication` is probed on the same period; the link must be up and the replica must have
 * applied what it read (a replica that reads the stream but does not apply it is behind). One
 * stale replica sends every read to the masters (ioredis picks the replica per command).
 */
export class Freshness {
  readonly #window: number;
  readonly #tolerance: number;
  #provenAt = -Infinity;
  #lag = 0;
  /** Cluster: the last probe found every replica linked and applied. */
  #clusterFresh = false;
  #timer: NodeJS.Timeout | undefined;
  #probing = false;

  constructor(heartbeatMs: number, toleranceMs: number) {
    this.#window = Math.max(2 * heartbeatMs, 250);
    this.#tolerance = toleranceMs;
  }

  /** A heartbeat arrived through the replica, `lagMs` after it was published. */
  proven(lagMs: number): void {
    this.#provenAt = performance.now();
    this.#lag = lagMs;
  }

  /** Reads may go to the replica now. */
  get fresh(): boolean {
    if (this.#timer !== undefined) return this.#clusterFresh;
    return performance.now() - this.#provenAt <= this.#window && this.#lag <= this.#tolerance;
  }

  /** Cluster with scaleReads: probe the replicas now and every heartbeat interval. */
  probe(cluster: Cluster, everyMs: number, timeoutMs: number): void {
    this.#timer = setInterval(() => { void this.#probe(cluster, timeoutMs); }, everyMs);
    this.#timer.unref();
    void this.#probe(cluster, timeoutMs);
  }

  stop(): void { clearInterval(this.#timer); }

  async #probe(cluster: Cluster, timeoutMs: number): Promise<void> {
    if (this.#probing) return;
    this.#probing = true;
    try {
      const replicas = cluster.nodes('slave');
      const ok = await Promise.all(replicas.map((r) => linked(r, timeoutMs)));
      this.#clusterFresh = ok.every(Boolean);
    } finally {
      this.#probing = false;
    }
  }
}

/** A replica's link is up and it has applied everything it read off the link. */
async function linked(r: Redis, timeoutMs: number): Promise<boolean> {
  if (r.status !== 'ready') return false;
  try {
    const info = await withTimeout(r.info('replication'), timeoutMs, 'INFO replication');
    return field(info, 'master_link_status') === 'up' && field(info, 'slave_read_repl_offset') === field(info, 'slave_repl_offset');
  } catch {
    return false;
  }
}
