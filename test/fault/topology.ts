// The three topologies of the fault check, built on the suite's fixtures, and the faults each can
// suffer. Every fault both breaks and heals, and answers the window it was active in (epoch ms),
// so the checker knows which sign-ins the README lets a failover lose.
import type { Endpoint } from './app.js';
import { RedisServer, sleep } from '../fixtures/redis.js';
import { ReplicatedCluster, SentinelSet, withAdmin } from '../fixtures/replicas.js';
import { DelayProxy } from '../fixtures/proxy.js';

export type TopologyName = 'single' | 'sentinel' | 'cluster';
export const TOPOLOGIES: readonly TopologyName[] = ['single', 'sentinel', 'cluster'];

export type FaultName = 'master-kill' | 'replica-stop' | 'link-cut' | 'stall' | 'slow-link' | 'pg-down' | 'instance-kill';
export const FAULTS: readonly FaultName[] = ['master-kill', 'replica-stop', 'link-cut', 'stall', 'slow-link', 'pg-down', 'instance-kill'];

/** What a fault did: when it started and healed, and whether a primary may have been replaced meanwhile. */
export interface FaultWindow { start: number; healed: number; failover: boolean; note: string }

export interface Topology {
  readonly name: TopologyName;
  /** The endpoint instance `i` is configured with. */
  endpoint(i: number): Endpoint;
  /** The Redis faults this topology can suffer (pg-down and instance-kill are the cell's). */
  readonly faults: readonly FaultName[];
  inject(fault: FaultName): Promise<FaultWindow>;
  /** Wait until every node is back, linked and agreed (between cells). */
  settle(): Promise<void>;
  stop(): Promise<void>;
}

const REDIS_FAULTS: readonly FaultName[] = ['master-kill', 'replica-stop', 'link-cut', 'stall'];
const FAST_SYNC = ['--repl-diskless-sync-delay', '0'];

async function info(port: number, section: string): Promise<Record<string, string>> {
  const text = await withAdmin(port, (r) => r.info(section));
  const out: Record<string, string> = {};
  for (const line of text.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

// Each server's pid, from INFO server while it answers (a stopped one cannot tell us).
const pids = new Map<RedisServer, number>();

/** Signal a redis-server (SIGSTOP freezes it, SIGCONT thaws it). */
export async function signal(server: RedisServer, sig: 'SIGSTOP' | 'SIGCONT'): Promise<void> {
  let pid = pids.get(server);
  if (sig === 'SIGSTOP' || pid === undefined) {
    pid = Number((await info(server.port, 'server')).process_id);
    pids.set(server, pid);
  }
  process.kill(pid, sig);
}

/** SIGSTOP `server` for `ms`, then SIGCONT (also when the wait throws). */
async function freeze(server: RedisServer, ms: number): Promise<void> {
  await signal(server, 'SIGSTOP');
  try { await sleep(ms); } finally { await signal(server, 'SIGCONT'); }
}

async function until(what: string, ms: number, fn: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    try { if (await fn()) return; } catch { /* not yet */ }
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(200);
  }
}

/**
 * Stall a primary past the command timeout (1 s) three times: commands sent meanwhile time out
 * on the client and then run when it thaws (a sign-in answered 503 that landed, and its undo).
 */
async function stall(server: RedisServer): Promise<void> {
  for (let i = 0; i < 3; i++) {
    if (i > 0) await sleep(2000);
    await freeze(server, 1500);
  }
}

/** Cut every replica's link of `primary` again and again for `ms` (CLIENT KILL TYPE replica). */
async function cutLinks(ports: number[], ms: number): Promise<void> {
  const end = Date.now() + ms;
  if (ms === 0) {
    // One cut that must happen: a frozen replica that kept its link would get every byte on SIGCONT.
    for (const p of ports) {
      for (let attempt = 1; ; attempt++) {
        const killed = await withAdmin(p, (r) => r.client('KILL', 'TYPE', 'replica') as Promise<number>, 3000).catch(() => 0);
        if (killed > 0) break;
        if (attempt >= 5) throw new Error(`CLIENT KILL TYPE replica on ${p} cut nothing`);
        await sleep(100);
      }
    }
    return;
  }
  while (Date.now() < end) {
    for (const p of ports) await withAdmin(p, (r) => r.client('KILL', 'TYPE', 'replica')).catch(() => {});
    await sleep(300);
  }
}

/**
 * A primary with one replica (the README's production shape). The apps reach the primary through
 * a proxy, and the replica replicates through another, so the link can be slowed (50 ms) or
 * paused; instance 1 reads from the replica (`readFrom`, the README's region set-up).
 */
export class Single implements Topology {
  readonly name = 'single' as const;
  readonly faults = [...REDIS_FAULTS, 'slow-link'] as const;
  private constructor(readonly primary: RedisServer, readonly replica: RedisServer, readonly front: DelayProxy,
    readonly link: DelayProxy) {}

  static async start(): Promise<Single> {
    const primary = await RedisServer.start([...FAST_SYNC]);
    const front = await DelayProxy.start({ targetPort: primary.port, delayMs: 0 });
    const link = await DelayProxy.start({ targetPort: primary.port, delayMs: 0 });
    const replica = await RedisServer.start(['--replicaof', '127.0.0.1', String(link.port), ...FAST_SYNC]);
    const s = new Single(primary, replica, front, link);
    await s.settle();
    return s;
  }

  endpoint(i: number): Endpoint {
    return { kind: 'single', url: `redis://127.0.0.1:${this.front.port}`, ...(i === 1 ? { readFromUrl: this.replica.url } : {}) };
  }

  async inject(fault: FaultName): Promise<FaultWindow> {
    const start = Date.now();
    switch (fault) {
      case 'master-kill': {
        // The replica frozen first, so the primary dies holding writes the replica never got;
        // then the replica is promoted, and the old primary comes back from it and takes over
        // again (the apps' address is the primary's).
        await signal(this.replica, 'SIGSTOP');
        try {
          await cutLinks([this.primary.port], 0);
          await sleep(2000);
          await this.primary.kill();
        } finally {
          await signal(this.replica, 'SIGCONT');
        }
        await withAdmin(this.replica.port, (r) => r.replicaof('NO', 'ONE'));
        await sleep(1000);
        const args = this.primary.extraArgs;
        args.push('--replicaof', '127.0.0.1', String(this.replica.port));
        await this.primary.restart();
        args.splice(args.indexOf('--replicaof'), 3);
        await until('old primary synced from the promoted replica', 20_000, async () =>
          (await info(this.primary.port, 'replication')).master_link_status === 'up');
        await withAdmin(this.primary.port, (r) => r.replicaof('NO', 'ONE'));
        await withAdmin(this.replica.port, (r) => r.replicaof('127.0.0.1', this.link.port));
        await this.settle();
        return { start, healed: Date.now(), failover: true,
          note: 'replica SIGSTOP and its link cut, 2 s, primary SIGKILL, replica promoted, primary back from it' };
      }
      case 'replica-stop':
        await freeze(this.replica, 3000);
        return { start, healed: Date.now(), failover: false, note: 'replica SIGSTOP 3 s' };
      case 'link-cut':
        this.link.pause();
        await sleep(5000);
        this.link.resume();
        return { start, healed: Date.now(), failover: false, note: 'replication link paused 5 s (proxy)' };
      case 'stall':
        await stall(this.primary);
        return { start, healed: Date.now(), failover: false, note: 'primary SIGSTOP 1.5 s, 3 times, 2 s apart' };
      case 'slow-link':
        this.front.setDelay(50);
        this.link.setDelay(50);
        await sleep(8000);
        this.front.setDelay(0);
        this.link.setDelay(0);
        return { start, healed: Date.now(), failover: false, note: 'apps→primary and replication 50 ms each way, 8 s' };
      default:
        throw new Error(`single: no fault ${fault}`);
    }
  }

  async settle(): Promise<void> {
    await until('single: replica linked', 30_000, async () => (await info(this.replica.port, 'replication')).master_link_status === 'up');
  }

  async stop(): Promise<void> {
    await this.front.close();
    await this.link.close();
    await this.replica.stop();
    await this.primary.stop();
  }
}

/** A primary, 2 replicas and 3 sentinels (quorum 2, down-after 1 s). */
export class Sentinel implements Topology {
  readonly name = 'sentinel' as const;
  readonly faults = REDIS_FAULTS;
  private constructor(readonly set: SentinelSet) {}

  static async start(): Promise<Sentinel> { return new Sentinel(await SentinelSet.start()); }

  endpoint(): Endpoint {
    return { kind: 'sentinel', sentinels: this.set.sentinels.map((s) => ({ host: '127.0.0.1', port: s.port })), name: this.set.name };
  }

  async inject(fault: FaultName): Promise<FaultWindow> {
    const start = Date.now();
    const master = (await this.set.currentMaster()).server;
    const replica = (await this.set.replicas())[0];
    switch (fault) {
      case 'master-kill': {
        await signal(replica, 'SIGSTOP');
        let old;
        try {
          await cutLinks([master.port], 0);
          await sleep(2000);
          old = await this.set.killMaster();
        } finally {
          await signal(replica, 'SIGCONT');
        }
        await this.set.waitForFailover(30_000);
        await this.set.restart(old, 30_000);
        return { start, healed: Date.now(), failover: true,
          note: 'a replica SIGSTOP, replica links cut, 2 s, master SIGKILL, failover, old master back as replica' };
      }
      case 'replica-stop':
        await freeze(replica, 3000);
        return { start, healed: Date.now(), failover: false, note: 'a replica SIGSTOP 3 s' };
      case 'link-cut':
        await cutLinks([master.port], 3000);
        return { start, healed: Date.now(), failover: false, note: 'CLIENT KILL TYPE replica on the master every 300 ms for 3 s' };
      case 'stall':
        await stall(master);
        // down-after is 1 s: Sentinel may fail over meanwhile.
        return { start, healed: Date.now(), failover: true, note: 'master SIGSTOP 1.5 s, 3 times, 2 s apart' };
      default:
        throw new Error(`sentinel: no fault ${fault}`);
    }
  }

  async settle(): Promise<void> {
    await until('sentinel: one master, every replica linked to it', 40_000, async () => {
      const m = await this.set.currentMaster();
      if ((await info(m.port, 'replication')).role !== 'master') return false;
      for (const s of this.set.servers) {
        if (s === m.server) continue;
        const i = await info(s.port, 'replication');
        if (i.role !== 'slave' || Number(i.master_port) !== m.port || i.master_link_status !== 'up') return false;
      }
      return true;
    });
  }

  stop(): Promise<void> { return this.set.stop(); }
}

/** Redis Cluster, 3 masters + 3 replicas (node timeout 1 s); the client reads masters (default `scaleReads`). */
export class Cluster implements Topology {
  readonly name = 'cluster' as const;
  readonly faults = REDIS_FAULTS;
  private constructor(readonly cluster: ReplicatedCluster) {}

  /**
   * `withFresh` is called as soon as the cluster is created, with the endpoint, before its
   * replicas have replicated anything: apps started there connect as apps started together with
   * their Redis do.
   */
  static async start(withFresh?: (endpoint: Endpoint) => Promise<void>): Promise<Cluster> {
    const onCreated = withFresh && ((nodes: RedisServer[]) => withFresh(Cluster.#endpoint(nodes)));
    return new Cluster(await ReplicatedCluster.start(onCreated ? { onCreated } : {}));
  }

  static #endpoint(nodes: RedisServer[]): Endpoint {
    return { kind: 'cluster', nodes: nodes.map((n) => ({ host: '127.0.0.1', port: n.port })) };
  }

  endpoint(): Endpoint { return Cluster.#endpoint(this.cluster.nodes); }

  async inject(fault: FaultName): Promise<FaultWindow> {
    const start = Date.now();
    const masters = await this.cluster.masters();
    const master = masters[Math.floor(Math.random() * masters.length)];
    const replica = (await this.cluster.replicasOf(master))[0];
    switch (fault) {
      case 'master-kill': {
        await signal(replica, 'SIGSTOP');
        try {
          // Cut too: bytes already in the frozen replica's socket would otherwise reach it on SIGCONT.
          await cutLinks([master.port], 0);
          await sleep(2000);
          // Not killMaster(): it asks every node, and the frozen one would not answer.
          await master.kill();
        } finally {
          await signal(replica, 'SIGCONT');
        }
        await this.cluster.waitForPromotion(master, 30_000);
        await this.cluster.restart(master, 30_000);
        return { start, healed: Date.now(), failover: true,
          note: `replica ${replica.port} SIGSTOP and links cut, 2 s, its master ${master.port} SIGKILL, promotion, old master back` };
      }
      case 'replica-stop':
        await freeze(replica, 3000);
        return { start, healed: Date.now(), failover: false, note: `replica ${replica.port} SIGSTOP 3 s` };
      case 'link-cut':
        await cutLinks(masters.map((m) => m.port), 3000);
        return { start, healed: Date.now(), failover: false, note: 'CLIENT KILL TYPE replica on every master every 300 ms for 3 s' };
      case 'stall':
        await stall(master);
        // The node timeout is 1 s: its replica may be promoted meanwhile.
        return { start, healed: Date.now(), failover: true, note: `master ${master.port} SIGSTOP 1.5 s, 3 times, 2 s apart` };
      default:
        throw new Error(`cluster: no fault ${fault}`);
    }
  }

  async settle(): Promise<void> {
    await until('cluster: 3 masters, 3 linked replicas, state ok', 40_000, async () => {
      const roles = await this.cluster.roles();
      if (roles.some((r) => !r.alive)) return false;
      if (roles.filter((r) => r.role === 'master' && r.slots.length > 0).length !== 3) return false;
      for (const r of roles) {
        if (!/cluster_state:ok/.test(await withAdmin(r.server.port, (a) => a.cluster('INFO') as Promise<string>))) return false;
        if (r.role === 'replica' && (await info(r.server.port, 'replication')).master_link_status !== 'up') return false;
      }
      return true;
    });
  }

  stop(): Promise<void> { return this.cluster.stop(); }
}

export async function startTopology(name: TopologyName): Promise<Topology> {
  return name === 'single' ? Single.start() : name === 'sentinel' ? Sentinel.start() : Cluster.start();
}
