import type { Redis, Cluster } from 'ioredis';
import type { RedisClient } from '../options.js';
import { withTimeout } from './timeout.js';

/**
 * Whether revocations wait for a replica (confirmRevocations: 'auto'). `unknown` (not read yet,
 * or the last read failed) confirms: a replica nobody could see must not turn confirmation off.
 */
export type AcknowledgementState = 'on' | 'off' | 'unknown';

/** One line of CLUSTER NODES: id, flags, master id ('-' for a master), slot ranges present. */
interface NodeLine { id: string; flags: string[]; master: string; slots: boolean }

function parseNodes(text: string): NodeLine[] {
  const out: NodeLine[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(' ');
    if (f.length < 8) continue;
    out.push({ id: f[0], flags: f[2].split(','), master: f[3], slots: f.length > 8 });
  }
  return out;
}

const field = (info: string, name: string): string | undefined => new RegExp(`^${name}:(.*?)\\r?$`, 'm').exec(info)?.[1];

/**
 * Reads replication from Redis itself, never from the client's pool: ioredis fills a Cluster's
 * pool from CLUSTER SLOTS, which leaves out a replica that has not replicated anything yet, and
 * does not refresh it by itself.
 *
 * Cluster: every master's CLUSTER NODES (each master's replicas by master id). Single / Sentinel:
 * the primary's INFO replication (`connected_slaves`, or `repl_backlog_active:1`: a replica was
 * attached and its link may have just dropped). Either way a shard that has had a replica since
 * start stays replicated (its replica may be frozen or cut off, which is when confirming matters).
 */
export class Acknowledgement {
  readonly #client: RedisClient;
  readonly #timeout: number;
  readonly #onChange: (state: AcknowledgementState, detail: Record<string, unknown>) => void;
  #state: AcknowledgementState = 'unknown';
  /** Cluster node ids ever seen in a shard with a replica (its master or a replica of it). */
  readonly #replicated = new Set<string>();
  /** Single / Sentinel: a replica was seen since start. */
  #seen = false;
  #inflight: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(client: RedisClient, timeoutMs: number, onChange: (state: AcknowledgementState, detail: Record<string, unknown>) => void) {
    this.#client = client;
    this.#timeout = timeoutMs;
    this.#onChange = onChange;
  }

  get state(): AcknowledgementState { return this.#state; }

  /** Read now, then every `everyMs`. */
  async start(everyMs = 5000): Promise<void> {
    await this.refresh();
    this.#timer = setInterval(() => { void this.refresh(); }, everyMs);
    this.#timer.unref();
  }

  stop(): void { clearInterval(this.#timer); }

  /** Read the topology (one read at a time); never throws: a failed read is `unknown`. */
  refresh(): Promise<void> {
    this.#inflight ??= (async () => {
      let next: AcknowledgementState;
      let detail: Record<string, unknown>;
      try {
        ({ next, detail } = await this.#read());
      } catch (err) {
        next = 'unknown';
        detail = { err };
      }
      if (next !== this.#state) {
        this.#state = next;
        this.#onChange(next, detail);
      }
    })().finally(() => { this.#inflight = undefined; });
    return this.#inflight;
  }

  async #read(): Promise<{ next: AcknowledgementState; detail: Record<string, unknown> }> {
    if ((this.#client as Cluster).isCluster) return this.#readCluster(this.#client as Cluster);
    const info = await this.#bounded(this.#client as Redis, (r) => r.info('replication'));
    const replicas = Number(field(info, 'connected_slaves') ?? 0);
    if (replicas > 0 || field(info, 'repl_backlog_active') === '1' || field(info, 'role') === 'slave') this.#seen = true;
    return { next: this.#seen ? 'on' : 'off', detail: { connectedReplicas: replicas } };
  }

  async #readCluster(cluster: Cluster): Promise<{ next: AcknowledgementState; detail: Record<string, unknown> }> {
    const views = await Promise.all(cluster.nodes('master').map((n) =>
      this.#bounded(n, (r) => r.cluster('NODES') as Promise<string>).catch(() => undefined)));
    const answered = views.filter((v): v is string => typeof v === 'string');
    if (answered.length === 0) throw new Error('no master answered CLUSTER NODES');
    const masters = new Set<string>();
    for (const text of answered) {
      for (const n of parseNodes(text)) {
        if (n.flags.includes('master') && n.slots && !n.flags.includes('fail')) masters.add(n.id);
        if (n.flags.includes('slave') && n.master !== '-' && !n.flags.includes('fail') && !n.flags.includes('noaddr')) {
          this.#replicated.add(n.master);
          this.#replicated.add(n.id);
        }
      }
    }
    const shards = [...masters].filter((id) => this.#replicated.has(id)).length;
    return { next: shards > 0 ? 'on' : 'off', detail: { masters: masters.size, replicatedShards: shards } };
  }

  /** One command on one connection, within the timeout; an idle pool node is connected first. */
  #bounded<T>(r: Redis, fn: (r: Redis) => Promise<T>): Promise<T> {
    return withTimeout((async () => {
      if (r.status === 'wait') await r.connect();
      else if (r.status !== 'ready') await new Promise<void>((resolve, reject) => {
        r.once('ready', resolve);
        setTimeout(() => { r.off('ready', resolve); reject(new Error(`redis client is ${r.status}`)); }, this.#timeout).unref();
      });
      return fn(r);
    })(), this.#timeout, 'replication read');
  }
}

/** A command as ioredis exposes it (defined scripts included). */
export type Cmd = (...args: (string | number)[]) => Promise<unknown>;

/** How many replicas must acknowledge a change, within how many ms (WAIT's arguments). */
export interface AckRequirement { readonly replicas: number; readonly timeout: number }

/** A Cluster's redirection: the command went to a node that does not serve its key, and did not run. */
const isRedirect = (err: unknown): boolean => err instanceof Error && /^(MOVED|ASK) /.test(err.message);

/** A script as {@link thenWait} sends it: its body and how many of its arguments are keys. */
export interface WaitedScript { readonly lua: string; readonly keys: number }

/**
 * The script `s` then WAIT, in one pipeline to the node serving the script's first key (WAIT
 * counts the writes its own connection made before it). Answers the script's result and the
 * replicas that acknowledged.
 *
 * The script goes as EVAL with its body, never by its SHA: a node that lacks it (SCRIPT FLUSH, a
 * promoted replica) answers EVALSHA with NOSCRIPT, and ioredis answers a defined command's
 * NOSCRIPT by sending the script again on its own, after the WAIT has already answered for a
 * connection that wrote nothing new: the revocation would be confirmed by nobody. (ioredis also
 * marks a connection as holding a script once it has sent it, even when the node answered MOVED
 * and never ran it.) A pipeline that met NOSCRIPT and ran again would wait twice, past the
 * command timeout, whenever the replica is slow. The body costs a revocation about 3 KB on the
 * wire and a SHA1 in Redis (docs/decisions.md).
 *
 * A Cluster client whose slot map is stale (a failover, a resharding) sends the pipeline to a
 * node that no longer serves the key: the script answers MOVED or ASK, and the WAIT answers
 * there. ioredis follows a pipeline's redirect only when every command in it was redirected
 * alike, and learns nothing from this one, so every later revocation on those slots would fail
 * the same way. Then the script runs alone (the client follows the redirect and mends its map)
 * and the WAIT goes after it, to the node it ran on; if that cannot be acknowledged (the WAIT's
 * pipeline was redirected too), the change is applied but not acknowledged (acked 0).
 */
export async function thenWait(client: RedisClient, s: WaitedScript, args: (string | number)[],
  c: AckRequirement): Promise<[unknown, number]> {
  const res = (await client.pipeline().eval(s.lua, s.keys, ...args).wait(c.replicas, c.timeout).exec()) ?? [];
  if (!isRedirect(res[0]?.[0])) {
    for (const [err] of res) if (err) throw err;
    return [res[0]?.[1], res[1]?.[1] as number];
  }
  const applied = await client.eval(s.lua, s.keys, ...args);
  const [[pttlErr] = [null], [err, acked] = [null, 0]] = (await client.pipeline().pttl(String(args[0])).wait(c.replicas, c.timeout)
    .exec()) ?? [];
  return [applied, pttlErr || err ? 0 : acked as number];
}
