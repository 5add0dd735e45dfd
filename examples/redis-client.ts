// The ioredis clients the README recommends, one per topology. Every example, the demo, the
// benchmarks and the fault check build their clients here, so what is tested is what the README
// shows. Default ioredis options queue commands and retry for 10-70 s while Redis is away; these
// answer within about a second instead (a request answers 503, nothing hangs).
import { Redis, Cluster } from 'ioredis';

/** Fail fast while Redis is away: one retry, no offline queue, 1 s to connect and per command. */
export const failFast = {
  maxRetriesPerRequest: 1,
  enableOfflineQueue: false,
  connectTimeout: 1000,
  commandTimeout: 1000,
  retryStrategy: (times: number) => Math.min(times * 100, 1000),
};

/** One Redis, or a primary (with or without replicas) by its URL. */
export function redisClient(url: string): Redis {
  return new Redis(url, failFast);
}

/** A Redis Cluster (masters and their replicas); reads go to masters (ioredis's default `scaleReads`). */
export function clusterClient(nodes: { host: string; port: number }[]): Cluster {
  return new Cluster(nodes, {
    redisOptions: failFast,
    enableOfflineQueue: false,
    clusterRetryStrategy: failFast.retryStrategy,
  });
}

/** A primary found through Sentinel; the package adds a replica subscriber itself. */
export function sentinelClient(sentinels: { host: string; port: number }[], name: string): Redis {
  return new Redis({ sentinels, name, ...failFast, sentinelRetryStrategy: failFast.retryStrategy });
}
