// Redis for the benchmarks: a private redis-server on a free port (the default), or the server
// named by REDIS_URL. A server this process did not start is never flushed: the benchmarks then
// work under a unique key prefix and delete only their own keys.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { freePort } from '../../examples/demo/private-redis.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// The client options the README recommends, as the demo uses them.
export { fastFail } from '../../examples/demo/private-redis.js';

export interface RedisTarget {
  url: string;
  /** True when this process started the server (and so may flush it). */
  owned: boolean;
  /** A key prefix unique to this run: the only keys the benchmarks write. */
  prefix: string;
  /** An admin connection (INFO, FLUSHALL on a private server, cleanup). */
  admin: Redis;
  /** Flush a private server; on a shared one delete this run's keys. */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

const children = new Set<ChildProcess>();
let handlers = false;
/** Kill the private servers when this process ends, Ctrl-C included. */
function killOnExit(): void {
  if (handlers) return;
  handlers = true;
  process.on('exit', () => { for (const c of children) c.kill('SIGKILL'); });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));
}

/**
 * A Redis for one benchmark script. `forcePrivate` ignores REDIS_URL (memory measurements need a
 * server nobody else writes to).
 */
export async function redisTarget(options: { forcePrivate?: boolean; args?: string[] } = {}): Promise<RedisTarget> {
  killOnExit();
  const prefix = `bench${randomBytes(3).toString('hex')}:`;
  const given = options.forcePrivate ? undefined : process.env.REDIS_URL;
  if (given) {
    const admin = new Redis(given, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await admin.connect();
    return {
      url: given, owned: false, prefix, admin,
      reset: () => deletePrefix(admin, prefix),
      stop: async () => { await deletePrefix(admin, prefix); admin.disconnect(); },
    };
  }
  if (spawnSync('redis-server', ['--version']).error) {
    console.error('redis-server was not found on PATH. Install it (Debian/Ubuntu: apt-get install -y redis-server; macOS: brew install ' +
      'redis), or set REDIS_URL.');
    process.exit(1);
  }
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tsbench-redis-'));
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', dir, '--maxmemory-policy', 'noeviction', ...(options.args ?? [])], { stdio: 'ignore' });
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  const url = `redis://127.0.0.1:${port}`;
  const until = Date.now() + 10_000;
  let admin: Redis;
  for (;;) {
    admin = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
    admin.on('error', () => {});
    try {
      await admin.connect();
      await admin.ping();
      break;
    } catch {
      admin.disconnect();
      if (Date.now() > until) throw new Error(`redis-server on port ${port} did not start`);
      await sleep(30);
    }
  }
  return {
    url, owned: true, prefix, admin,
    reset: async () => { await admin.flushall(); },
    stop: async () => {
      admin.disconnect();
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGKILL');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Delete this run's keys on a server we do not own (SCAN with our own fixed prefix, never user input). */
export async function deletePrefix(admin: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await admin.unlink(...keys);
  } while (cursor !== '0');
}

function infoFields(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0 && line[0] !== '#') m.set(line.slice(0, i), line.slice(i + 1));
  }
  return m;
}

/**
 * Total calls from INFO commandstats, leaving out INFO itself (our own probes). Commands that a
 * Lua script runs are counted by Redis too, next to the EVALSHA that ran them.
 */
export async function commandCalls(admin: Redis): Promise<{ total: number; byCommand: Map<string, number> }> {
  const byCommand = new Map<string, number>();
  let total = 0;
  for (const [k, v] of infoFields(await admin.info('commandstats'))) {
    const name = k.replace(/^cmdstat_/, '');
    if (name === 'info') continue;
    const calls = Number(/calls=(\d+)/.exec(v)?.[1] ?? 0);
    byCommand.set(name, calls);
    total += calls;
  }
  return { total, byCommand };
}

/** Seconds of CPU the redis-server has used (user + sys, main thread and children). */
export async function redisCpuSeconds(admin: Redis): Promise<number> {
  const f = infoFields(await admin.info('cpu'));
  return Number(f.get('used_cpu_user') ?? 0) + Number(f.get('used_cpu_sys') ?? 0);
}

export async function usedMemory(admin: Redis): Promise<number> {
  return Number(infoFields(await admin.info('memory')).get('used_memory'));
}

export async function redisVersion(admin: Redis): Promise<string> {
  return infoFields(await admin.info('server')).get('redis_version') ?? '?';
}

/** Subtract two commandstats snapshots: per-command deltas, largest first. */
export function callsDelta(a: Map<string, number>, b: Map<string, number>): [string, number][] {
  const out: [string, number][] = [];
  for (const [k, v] of b) {
    const d = v - (a.get(k) ?? 0);
    if (d > 0) out.push([k, d]);
  }
  return out.sort((x, y) => y[1] - x[1]);
}
