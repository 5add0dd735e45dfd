// Replicated Redis (issue "Replicas"): what confirming a revocation on a replica costs, and how
// long a Cluster master's death makes its sessions unavailable.
//
// 1. Revocation round trip on a real 3-master × 1-replica Cluster (private processes): the time
//    of one `revoke()` through the manager, with `confirmRevocations` on (the script pipelined
//    with WAIT 1 on the same connection) and off, interleaved, N of each.
// 2. Failover window: a session's master is SIGKILLed; measured from the kill, the time the
//    Cluster takes to promote the replica (every live node agrees, cluster-node-timeout 1000 ms)
//    and the time of the first 200 for an uncached request for a session in that slot (a
//    request every 20 ms). The package's share is the difference. Repeated R times.
//
// Settings: --revocations / BENCH_REVOCATIONS (default 1000 of each), --failovers /
// BENCH_FAILOVERS (default 3). Run: npm run build && npx tsx benchmarks/replicas.ts
import { performance } from 'node:perf_hooks';
import Fastify from 'fastify';
import tieredSession, { parseDevice } from 'tiered-session/fastify';
import { managerOf } from '../dist/esm/core/sessions-api.js';
import type { SessionManager } from '../dist/esm/core/manager.js';
import { ReplicatedCluster, keepingAlive } from '../test/fixtures/replicas.js';
import { num } from './support/settings.js';
import { fmt, machineLine, quantileSorted, table } from './support/stats.js';
import { SECRET } from './servers/common.js';

const N = Math.max(100, Math.round(num('revocations', 1000, 1)));
const FAILOVERS = Math.max(1, Math.round(num('failovers', 3, 1)));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function manager(cluster: ReplicatedCluster, keyPrefix: string, options: Record<string,
  unknown>): Promise<{ m: SessionManager; close(): Promise<void> }> {
  const client = cluster.client();
  const app = Fastify();
  await app.register(tieredSession, { client, secret: SECRET, keyPrefix, routes: false, ...options });
  await app.ready();
  const m = managerOf(app.sessions);
  const until = Date.now() + 10_000;
  while (!m.cacheTrusted && Date.now() < until) await sleep(10);
  return { m, close: async () => { await app.close(); client.disconnect(); } };
}

function stats(xs: number[]): string[] {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => fmt(quantileSorted(s, p), 3);
  return [fmt(s.length), q(0.5), q(0.9), q(0.99), fmt(s.at(-1) ?? NaN, 3)];
}

async function main(): Promise<void> {
  const cluster = await ReplicatedCluster.start();
  const device = parseDevice('Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36');
  try {
    // ---- 1. revocation round trip, WAIT on and off, interleaved --------------------------------
    const prefix = `bench-repl-${process.pid}:`;
    const on = await manager(cluster, prefix, { confirmRevocations: true });
    const off = await manager(cluster, prefix, { confirmRevocations: false });
    const timings = { on: [] as number[], off: [] as number[] };
    let unconfirmed = 0;
    for (let i = 0; i < N; i++) {
      for (const [which, x] of [['on', on], ['off', off]] as const) {
        const { session } = await x.m.create(`u${i % 200}-${which}`, { device });
        const t0 = performance.now();
        try {
          await x.m.revoke(session.id);
        } catch {
          unconfirmed++;
          continue;
        }
        timings[which].push(performance.now() - t0);
      }
    }
    await on.close();
    await off.close();

    // ---- 2. failover window ------------------------------------------------------------------
    const windows: [number, number, number][] = [];
    for (let r = 0; r < FAILOVERS; r++) {
      const { m, close } = await manager(cluster, `${prefix}f${r}:`, { localCache: false, confirmRevocations: false });
      const { session, token } = await m.create(`failover-${r}`, { device });
      const master = await cluster.masterForKey(m.store.sessionKey(session.id));
      const killedAt = performance.now();
      await cluster.killMaster(master);
      let promotedAt = NaN;
      const promoted = cluster.waitForPromotion(master).then(() => { promotedAt = performance.now() - killedAt; });
      let servedAt = NaN;
      const until = Date.now() + 30_000;
      while (!Number.isFinite(servedAt) && Date.now() < until) {
        try {
          if ((await m.resolve(token)) !== null) servedAt = performance.now() - killedAt;
        } catch { /* 503 while the slot has no master */ }
        if (!Number.isFinite(servedAt)) await sleep(20);
      }
      await promoted;
      windows.push([promotedAt, servedAt, servedAt - promotedAt]);
      await close();
      await keepingAlive(cluster.restart(master));
    }

    const markdown = [
      `### Replicated Redis (replicas.ts): 3 masters × 1 replica, cluster-node-timeout 1000 ms, private processes on loopback`,
      '',
      machineLine(),
      '',
      `Revocation round trip, \`revoke()\` through the manager (ms), ${fmt(N)} of each, interleaved:`,
      '',
      table(['confirmRevocations', 'samples', 'p50', 'p90', 'p99', 'max'], [
        ['off (script only)', ...stats(timings.off)],
        ['on (script + WAIT 1, one round trip)', ...stats(timings.on)],
      ]),
      '',
      `- revocations that were not confirmed in time: ${unconfirmed}`,
      '',
      `Failover window, from SIGKILL of the session's master (ms), ${FAILOVERS} run(s):`,
      '',
      table(['run', 'replica promoted (Cluster)', 'first 200 for that slot (package)', "package's share"],
        windows.map(([p, s, d], i) => [String(i + 1), fmt(p, 0), fmt(s, 0), fmt(d, 0)])),
      '',
    ].join('\n');
    console.log(markdown);
    if (process.send) process.send({ type: 'result', markdown });
  } finally {
    await keepingAlive(cluster.stop());
  }
}

await main();
