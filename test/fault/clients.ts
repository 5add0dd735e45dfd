// The README's clients (examples/redis-client.ts), from the ioredis major under test: TS_IOREDIS=6
// builds the same clients with the same options (failFast) from ioredis 6.
import type { Redis, Cluster } from 'ioredis';
import * as readme from '../../examples/redis-client.js';

export interface ClientFactory {
  redisClient(url: string): Redis;
  clusterClient(nodes: { host: string; port: number }[]): Cluster;
  sentinelClient(sentinels: { host: string; port: number }[], name: string): Redis;
}

export async function clients(): Promise<ClientFactory> {
  if (process.env.TS_IOREDIS !== '6') return readme;
  const { Redis: R, Cluster: C } = (await import('ioredis6')) as unknown as typeof import('ioredis');
  const { failFast } = readme;
  return {
    redisClient: (url) => new R(url, failFast),
    clusterClient: (nodes) => new C(nodes,
      { redisOptions: failFast, enableOfflineQueue: false, clusterRetryStrategy: failFast.retryStrategy }),
    sentinelClient: (sentinels, name) => new R({ sentinels, name, ...failFast, sentinelRetryStrategy: failFast.retryStrategy }),
  };
}
